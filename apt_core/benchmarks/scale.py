"""``python -m apt_core bench --shape ml-1m|yelp``: time and peak memory of every stage at scale.

At the shape of ML-1M (6040 users x 3706 items, 1M ratings) or Yelp (14,575 x 25,602,
570k ratings) -- the real files when they are present (``--data-dir``), else the synthetic
set of that shape (:mod:`apt_core.data.synthetic`) -- each stage of the pipeline runs once
(or ``repeats`` times) in this process:

split, MF fit (the authors' recipe), ranking of every user (target and test HR), every
registered attack (its budget: 3%, Yelp 5%), every registered defense fitted on the data
poisoned by the Average attack, and one APT influence vector (what APT computes per
regeneration).

Time is ``time.perf_counter`` around the stage (median of the repeats), beside the CPU
seconds of this process (``time.process_time``, all threads): on a shared machine the
wall time includes waiting for a core, the CPU time does not.  Memory is the
peak resident set size of this process while the stage ran, sampled every 10 ms by a
thread reading ``/proc/self/statm``, and the increase of that peak over the resident size
just before the stage (what the stage itself needed).  Nothing is estimated.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.errors import AptError


@dataclass
class StageRow:
    stage: str
    median_s: float
    repeats: int
    cpu_s: float  # CPU seconds of this process (all threads), median: on a shared machine wall time includes waiting
    peak_mb: float  # peak RSS of the process during the stage
    extra_mb: float  # peak minus the RSS just before the stage
    note: str = ""


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # not Linux: fall back to the lifetime peak
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Context manager: the peak RSS (MB) while the block ran, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.before = self.peak = 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.before = self.peak = _rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def measure(stage: str, fn: Callable[[], object], repeats: int = 1, note: str | Callable[[object], str] = "") -> tuple[StageRow, object]:
    """Run ``fn`` ``repeats`` times; the row (median time, peak memory over all repeats) and the last result."""
    times, cpu, result = [], [], None
    with PeakMemory() as mem:
        for _ in range(max(1, repeats)):
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    text = note(result) if callable(note) else note
    return StageRow(stage, float(np.median(times)), len(times), float(np.median(cpu)), mem.peak, mem.peak - mem.before, text), result


def load_shaped(shape: str, data_dir: str | None = None):
    """The real data set of that name when its files are found, else the synthetic one of its shape."""
    from apt_core.data import load_dataset
    from apt_core.data.synthetic import SHAPES, shaped

    if shape not in SHAPES:
        raise AptError(f"unknown shape {shape!r}: choose one of {', '.join(sorted(SHAPES))}")
    try:
        return load_dataset(shape, data_dir), True
    except AptError:
        return shaped(shape), False


def run_scale_bench(shape: str = "ml-1m", data_dir: str | None = None, repeats: int = 1, device: str = "auto",
                    epochs: int = 25, stages: tuple[str, ...] | None = None, out=print) -> list[StageRow]:
    """Time and memory of every stage at ``shape`` (see the module docstring); prints a table, returns the rows.

    ``stages``: only the stages whose name starts with one of these (e.g. ``("attack",)``).
    """
    from apt_core.attacks import ATTACKS, make_attack
    from apt_core.data import leave_one_out, select_targets
    from apt_core.data.split import attack_budget
    from apt_core.defenses import DEFENSES, make_defense
    from apt_core.experiments.pipeline import Prepared, defense_context
    from apt_core.evaluation.metrics import evaluate
    from apt_core.models.mf import MFConfig, fit_mf
    from apt_core.runtime.devices import device_label, resolve_device

    dev = resolve_device(device)
    rows: list[StageRow] = []

    def wanted(name: str) -> bool:
        return stages is None or any(name.startswith(s) for s in stages)

    def add(row: StageRow) -> None:
        rows.append(row)
        out(f"  {row.stage}: {row.median_s:.2f} s wall, {row.cpu_s:.2f} s CPU, peak {row.peak_mb:.0f} MB (+{row.extra_mb:.0f} MB) {row.note}")

    row, (data, real) = measure("load data", lambda: load_shaped(shape, data_dir))
    row.note = f"{data.name}: {data.n_users} users, {data.n_items} items, {data.n_ratings} ratings" + ("" if real else " (synthetic)")
    add(row)
    yelp = shape == "yelp"
    k = 1000 if yelp else 50
    row, split = measure("leave-one-out split", lambda: leave_one_out(data, 0), repeats)
    add(row)
    pool = "unpopular"
    try:
        targets = select_targets(split, pool, 5, 0)
    except AptError:
        pool = "random"
        targets = select_targets(split, pool, 5, 0)
    cfg = MFConfig(epochs=epochs)
    seeds = iter(range(10_000))
    row, model = measure(f"MF fit, {epochs} epochs ({dev.type})", lambda: fit_mf(split.train, cfg, dev, next(seeds)), repeats,
                         f"{len(split.train)} ratings, d = {cfg.dim if hasattr(cfg, 'dim') else 64}")
    add(row)
    if wanted("rank"):
        add(measure(f"rank all users (target + test HR@{k})", lambda: evaluate(model, split, targets, k), repeats,
                    f"{split.n_users} users x {split.n_items} items")[0])

    budget = attack_budget(split.train, 0.05 if yelp else 0.03, None)
    poisoned = split.train
    for name in ATTACKS:
        if not wanted(f"attack {name}") and not (name == "average" and wanted("defense")):
            continue
        attack = make_attack(name)
        try:
            row, fake = measure(f"attack {name}", lambda: attack.generate(split.train, targets, budget.n_fake_users, budget.n_filler, 0, dev),
                                repeats, f"{budget.n_fake_users} fake users x {budget.n_filler} fillers, {pool} targets")
        except Exception as exc:  # one failing stage is reported, the others still run
            row, fake = StageRow(f"attack {name}", float("nan"), 0, float("nan"), float("nan"), float("nan"), f"failed: {exc}"), None
        if wanted(f"attack {name}"):
            add(row)
        if name == "average" and fake is not None:
            poisoned = fake.inject(split.train)

    # The pipeline's defense context (clean training data as the defense's service users, as in run_scenario).
    prepared = Prepared(data, split, targets, budget, cfg)
    for name in DEFENSES:
        if name == "none" or not wanted(f"defense {name}"):
            continue
        ctx = defense_context(prepared, dev, 0)
        defense = make_defense(name)
        try:
            row, _ = measure(f"defense {name} fit", lambda: defense.fit(poisoned, ctx), repeats,
                             "on the Average-poisoned data" if poisoned is not split.train else "on the clean data")
        except Exception as exc:
            row = StageRow(f"defense {name} fit", float("nan"), 0, float("nan"), float("nan"), float("nan"), f"failed: {exc}")
        add(row)

    if wanted("influence"):
        add(_influence_row(poisoned, dev, cfg, repeats))
    out(format_rows(rows, f"{data.name}, {device_label(dev)}, torch {torch.__version__}"))
    return rows


def _influence_row(train, dev, cfg, repeats: int) -> StageRow:
    """One APT influence vector (APT's default solver) after 15 epochs of MF, as APT meets it."""
    from apt_core.defenses import make_defense
    from apt_core.influence.mf import RatingStructure, influence_vector, probe_users
    from apt_core.models.mf import MFTrainer

    solver = getattr(make_defense("apt"), "solver", "cg")

    trainer = MFTrainer(train.n_users, train.n_items, cfg, dev, 0)
    u, i, r = trainer.tensors(train)
    trainer.train_epochs(u, i, r, 15)
    probe = probe_users(train.users, train.normalised_ratings, train.n_users, 10)

    def once():
        st = RatingStructure.build(u, i, train.n_users, train.n_items)
        return influence_vector(trainer.P, trainer.Q, u, i, r, probe, solver=solver, structure=st)

    try:
        row, res = measure(f"influence vector ({solver}, APT per regeneration)", once, repeats)
        cg = getattr(res, "cg", None)
        row.note = f"{len(train)} ratings" + (f", CG {cg.iterations} it" if cg is not None else "")
        return row
    except Exception as exc:
        return StageRow("influence vector (APT, per regeneration)", float("nan"), 0, float("nan"), float("nan"), float("nan"), f"failed: {exc}")


def format_rows(rows: list[StageRow], title: str) -> str:
    width = max(len(r.stage) for r in rows)
    head = f"{'stage':<{width}}  {'wall s':>8}  {'CPU s':>8}  {'n':>2}  {'peak MB':>8}  {'+MB':>7}  note"
    lines = [f"APT Lab benchmark at scale: {title}", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.stage:<{width}}  {r.median_s:>8.2f}  {r.cpu_s:>8.2f}  {r.repeats:>2}  {r.peak_mb:>8.0f}  {r.extra_mb:>7.0f}  {r.note}")
    return "\n".join(lines)

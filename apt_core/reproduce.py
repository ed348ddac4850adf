"""``python -m apt_core reproduce``: the paper's Tables 2-3 and Figs. 1-3, ours beside the paper's.

Grid (DESIGN section 7): for each target set (``random``, ``unpopular``) and each attack
(Average, Random, AUSH, PGA, TNA -- those registered; a missing one is reported, not
faked), one :class:`~apt_core.experiment.Scenario` with the defenses PCMF, AT, APT-rand and
APT, 3% attack (5% on Yelp), 5% ERM users, K = 50, the MF recipe of section 3, ``--seeds``
repetitions.  Every scenario goes through the artifact cache, so the clean model of a seed
is trained once for all attacks, and a second identical command is answered from disk.

APT's ERM statistics default to ``clean`` here: that is the authors' setting, the one the
paper's numbers come from (an oracle no real defender has; ``--erm-stats observed`` gives
the honest variant).  The output folder receives:

- ``table2_target_hr.{csv,md}``: target HR@50 per (targets, attack) x phase, mean ± sd over
  seeds, APT with the paper's significance stars against the best baseline, RI, and the
  paper's number beside ours where DESIGN section 7 gives one (empty cells otherwise);
- ``table3_test_hr.{csv,md}``: the same layout for test HR@50 (generalisation);
- ``per_seed.csv``: every phase x seed x scenario;
- ``fig1_rank_shift.html`` (+ ``.csv``), ``fig2_attack_size.html`` (+ ``.csv``),
  ``fig3_erm_fraction.html`` (+ ``.csv``): the figures (plotly, offline: ``plotly.min.js``
  is written once beside them) and the tidy data behind each;
- ``report.md``: settings, wall time, cache use, the tables, notes on what did not reproduce.

``--quick``: sample data, 1 seed, 5 epochs, two attacks, short sweeps: a CI smoke test that
runs the whole pipeline in well under a minute.
"""
from __future__ import annotations

import dataclasses
import os
import queue as _queue
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from apt_core.errors import CancelledError, ConfigError

ProgressFn = Callable[[float, str], object]

PAPER_ATTACKS = ("average", "random", "aush", "pga", "tna")
PAPER_PHASES = ("origin", "attack", "pcmf", "at", "apt-rand", "apt")
PAPER_DEFENSES = ("pcmf", "at", "apt-rand", "apt")
TARGET_SETS = ("random", "unpopular")
ATTACK_LABELS = {"average": "Average", "random": "Random", "aush": "AUSH", "pga": "PGA", "tna": "TNA", "bandwagon": "Bandwagon"}


@dataclass(frozen=True)
class PaperValue:
    """A number the paper reports: exact (low == high) or a range DESIGN gives over several cells."""

    low: float
    high: float
    note: str = ""

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        return f"{self.low:.4f}" if self.exact else f"{self.low:.4g}–{self.high:.4g}†"


def _v(x: float) -> PaperValue:
    return PaperValue(x, x)


def _r(lo: float, hi: float, note: str) -> PaperValue:
    return PaperValue(lo, hi, note)


_ATT = "range over the five attacks (DESIGN section 7 gives no per-attack value)"
_GEN = "range over the attacks; DESIGN section 7 does not say for which target set"

#: The paper's numbers, exactly as DESIGN section 7 gives them; nothing else.
#: key: (dataset, targets, metric, attack, phase); attack None = same for every attack.
PAPER: dict[tuple, PaperValue] = {}


def _fill_paper() -> None:
    per_attack_unpop = {
        "attack": (0.9292, 0.5199, 0.9773, 0.5576, 0.9897),
        "apt": (0.0009, 0.0007, 0.0015, 0.0002, 0.0019),
        "at": (0.8572, 0.4265, 0.9112, 0.5402, 0.9336),
    }
    for phase, values in per_attack_unpop.items():
        for attack, value in zip(PAPER_ATTACKS, values):
            PAPER[("ml-100k", "unpopular", "target_hr", attack, phase)] = _v(value)
    PAPER[("ml-100k", "unpopular", "target_hr", None, "origin")] = _v(0.0)
    PAPER[("ml-100k", "random", "target_hr", None, "origin")] = _v(0.0460)
    PAPER[("ml-100k", "random", "target_hr", None, "attack")] = _r(0.2366, 0.5774, _ATT)
    PAPER[("ml-100k", "random", "target_hr", None, "apt")] = _r(0.039, 0.087, _ATT)
    PAPER[("filmtrust", "unpopular", "target_hr", None, "attack")] = _r(0.032, 0.669, _ATT)
    PAPER[("filmtrust", "unpopular", "target_hr", None, "apt")] = _r(0.004, 0.021, _ATT)
    for targets in TARGET_SETS:
        PAPER[("ml-100k", targets, "test_hr", None, "origin")] = _v(0.2106)
        PAPER[("ml-100k", targets, "test_hr", None, "apt")] = _r(0.217, 0.230, _GEN)
        PAPER[("ml-100k", targets, "test_hr", None, "at")] = _r(0.18, 0.19, _GEN)
        PAPER[("filmtrust", targets, "test_hr", None, "origin")] = _v(0.8539)
        PAPER[("filmtrust", targets, "test_hr", None, "apt")] = _r(0.833, 0.839, _GEN)
        PAPER[("filmtrust", targets, "test_hr", None, "at")] = _r(0.73, 0.77, _GEN)


_fill_paper()

#: headline of the paper, quoted in the report
PAPER_HEADLINE = "APT cuts the attacks' effect by over 88% on average (RI), and improves test HR on three of four datasets."


def paper_value(dataset: str, targets: str, metric: str, attack: str, phase: str) -> PaperValue | None:
    """The paper's number for one cell, or None where DESIGN section 7 gives none."""
    key = dataset.lower()
    return PAPER.get((key, targets, metric, attack, phase)) or PAPER.get((key, targets, metric, None, phase))


@dataclass
class ReproduceConfig:
    """Settings of one ``reproduce`` run (the CLI's flags)."""

    dataset: str = "ml-100k"
    data_dir: str | None = None
    seeds: int = 5
    seed: int = 0
    out: str = "reproduce-out"
    attacks: tuple[str, ...] = PAPER_ATTACKS
    target_sets: tuple[str, ...] = TARGET_SETS
    defenses: tuple[str, ...] = PAPER_DEFENSES
    attack_size: float | None = None  # None: 3% (5% on Yelp)
    erm_fraction: float = 0.05
    erm_stats: str = "clean"
    epochs: int = 25
    k: int | None = None  # None: 50 (1000 on Yelp)
    device: str = "auto"
    figures: bool = True
    fig_attack: str = "average"
    fig_targets: str = "unpopular"
    fig_seeds: int | None = None  # None: min(seeds, 3): the sweeps are the costly part
    attack_sizes: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05)
    erm_fractions: tuple[float, ...] = (0.0, 0.05, 0.10, 0.15, 0.20)
    fig_defenses: tuple[str, ...] = ("at", "apt")
    quick: bool = False
    jobs: int = 1  # worker processes that fill the cache in parallel (1: everything in this process)

    @classmethod
    def quick_config(cls, **overrides) -> "ReproduceConfig":
        """Tiny settings for CI: sample data, 1 seed, 5 epochs, 2 attacks, 3-point sweeps."""
        base = dict(dataset="sample", seeds=1, epochs=5, attacks=("average", "random"), attack_sizes=(0.01, 0.03, 0.05),
                    erm_fractions=(0.0, 0.05, 0.1), quick=True)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def resolved_attack_size(self) -> float:
        if self.attack_size is not None:
            return self.attack_size
        return 0.05 if self.dataset.lower() == "yelp" else 0.03

    def resolved_k(self) -> int:
        if self.k is not None:
            return self.k
        return 1000 if self.dataset.lower() == "yelp" else 50


@dataclass
class ReproduceResult:
    config: ReproduceConfig
    out: Path
    table2: pd.DataFrame
    table3: pd.DataFrame
    per_seed: pd.DataFrame
    files: list[Path]
    wall_seconds: float
    cache_hits: int
    cache_misses: int
    skipped: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)


def _available(names: Sequence[str], registry: Sequence[str], kind: str, skipped: list[str]) -> tuple[str, ...]:
    keep = []
    for n in names:
        if n in registry:
            keep.append(n)
        else:
            skipped.append(f"{kind} {n!r} is not implemented in this build (not in the registry): its cells are empty")
    return tuple(keep)


def _scenario(cfg: ReproduceConfig, attack: str, targets: str, defenses: tuple[str, ...], seeds: int):
    from apt_core.experiment import Scenario

    return Scenario(dataset=cfg.dataset, data_dir=cfg.data_dir, attack=attack, attack_size=cfg.resolved_attack_size(),
                    targets=targets, defenses=defenses, erm_fraction=cfg.erm_fraction, erm_stats=cfg.erm_stats,
                    k=cfg.resolved_k(), epochs=cfg.epochs, seeds=seeds, seed=cfg.seed, device=cfg.device)


def _table(results: dict, cfg: ReproduceConfig, metric: str) -> pd.DataFrame:
    """Long table: one row per (targets, attack, phase) with ours (mean, sd), stars, RI and the paper's."""
    rows = []
    dataset = cfg.dataset.lower()
    for (targets, attack), res in results.items():
        # Stars are the paper's robustness test (lower target HR is better); test HR gets none.
        sig = res.significance() if metric == "target_hr" else None
        by_phase = {r["phase"]: r for r in res.rows()}
        for phase in PAPER_PHASES:
            r = by_phase.get(phase)
            pv = paper_value(dataset, targets, metric, attack, phase)
            rows.append({
                "dataset": res.data.name, "targets": targets, "attack": attack, "phase": phase,
                "mean": None if r is None else r[metric], "sd": None if r is None else r[f"{metric}_sd"],
                "n_seeds": None if r is None else len(res.phase(phase).target_hr),
                "ri": None if r is None else r["ri"],
                "p_value": sig.test.p_value if (sig is not None and phase == sig.method) else None,
                "stars": sig.marker if (sig is not None and phase == sig.method) else "",
                "baseline": sig.baseline if (sig is not None and phase == sig.method) else None,
                "paper": None if pv is None else (pv.low if pv.exact else None),
                "paper_low": None if pv is None else pv.low,
                "paper_high": None if pv is None else pv.high,
                "paper_note": "" if pv is None else pv.note,
            })
    return pd.DataFrame(rows)


def _cell(mean, sd, stars: str, pv: PaperValue | None, n_seeds=None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        ours = "n/a"
    elif sd is None or pd.isna(sd) or (n_seeds is not None and not pd.isna(n_seeds) and n_seeds < 2):
        ours = f"{mean:.4f}{stars}"  # one seed: no spread to show (a "± 0" would claim one)
    else:
        ours = f"{mean:.4f} ± {sd:.4f}{stars}"
    return f"{ours} ({pv})" if pv is not None else ours


def table_markdown(table: pd.DataFrame, metric_label: str, show_ri: bool = True) -> str:
    """Wide Markdown: per target set, attacks as rows, phases as columns; ``ours ± sd (paper)``.

    ``show_ri``: add APT's RI (a target-HR quantity, so only for the robustness table).
    """
    out = []
    for targets in dict.fromkeys(table["targets"]):
        part = table[table["targets"] == targets]
        out.append(f"**{metric_label}, {targets} targets** — ours mean ± sd over seeds (paper in parentheses)\n")
        header = ["attack", *PAPER_PHASES] + (["RI (APT)"] if show_ri else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for attack in dict.fromkeys(part["attack"]):
            rows = part[part["attack"] == attack].set_index("phase")
            cells = [ATTACK_LABELS.get(attack, attack)]
            for phase in PAPER_PHASES:
                r = rows.loc[phase]
                pv = None
                if r["paper_low"] is not None and not pd.isna(r["paper_low"]):
                    pv = PaperValue(float(r["paper_low"]), float(r["paper_high"]))
                cells.append(_cell(r["mean"], r["sd"], r["stars"], pv, r.get("n_seeds")))
            if show_ri:
                ri = rows.loc["apt", "ri"]
                cells.append("–" if ri is None or pd.isna(ri) else f"{ri:.3f}")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append("Mean ± sample sd over seeds (mean only with one seed). Stars on APT: paired t-test over seeds against the best baseline (lowest mean among PCMF, AT, "
               "APT-rand): * p < 0.05, ** p < 0.01, *** p < 0.001 (none with one seed); ↑ before the stars: APT is "
               "significantly *worse* (higher target HR) than that baseline. "
               "† a range that DESIGN section 7 gives over several attacks (or without the target set), "
               "not a per-cell value. No parentheses: DESIGN section 7 gives no paper number for that cell.")
    return "\n".join(out)


class TextProgress:
    """Progress on stderr: a redrawn bar on a terminal, one line per 5% (or stage) otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_bucket = -1
        self.t0 = time.perf_counter()

    def __call__(self, fraction: float, stage: str) -> bool:
        if not self.enabled:
            return True
        elapsed = time.perf_counter() - self.t0
        bar = "#" * int(30 * fraction)
        line = f"[{bar:<30}] {fraction * 100:5.1f}% {elapsed:6.0f}s {stage[:70]}"
        if self.tty:
            self.stream.write("\r" + line.ljust(120))
            if fraction >= 1.0:
                self.stream.write("\n")
        else:
            bucket = int(fraction * 20)
            if bucket != self.last_bucket:
                self.stream.write(line + "\n")
                self.last_bucket = bucket
        self.stream.flush()
        return True


def _fully_cached(scenario, cache, data) -> bool:
    from apt_core.cache import CacheMiss
    from apt_core.experiment import run_scenario

    try:
        run_scenario(scenario, cache=cache, data=data, cache_only=True)
        return True
    except CacheMiss:
        return False


def default_jobs() -> int:
    """Worker processes for ``reproduce``: one per core, at most 2 (a 2-core laptop is the target)."""
    return max(1, min(2, os.cpu_count() or 1))


def _warm_worker(scenario, cache_root: str, task_id: int, messages) -> tuple[int, float]:
    """Run one scenario in a worker process only to fill the artifact cache; progress goes to ``messages``."""
    from apt_core.cache import ArtifactCache
    from apt_core.experiment import run_scenario
    from apt_core.runtime import configure_threads

    # One thread per worker: the workers themselves use the cores.
    configure_threads(1)
    t0 = time.perf_counter()

    def report(fraction: float, stage: str) -> bool:
        try:
            messages.put_nowait((task_id, float(fraction), stage))
        except Exception:  # progress is best effort; never fail a run over it
            pass
        return True

    run_scenario(scenario, progress=report, cache=ArtifactCache(cache_root))
    return task_id, time.perf_counter() - t0


def warm_cache(waves: list[list[tuple[object, float, str]]], cache_root: Path, jobs: int, progress: ProgressFn | None,
               done: float, units: float) -> float:
    """Run ``(scenario, weight, label)`` tasks in ``jobs`` processes, wave after wave; returns the new ``done``.

    Each wave starts when the previous one finished, so a task never recomputes an artifact
    that an earlier wave is still producing (the clean models are trained before the first
    wave; Fig. 3 points reuse the grid's fake profiles).  Workers are spawned, not forked:
    forking a process whose OpenMP pool is running can deadlock.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from multiprocessing.managers import SyncManager

    from apt_core.procs import die_with_parent, pdeathsig_wanted, stop_pool

    ctx = mp.get_context("spawn")
    # Every helper process dies with this one (a killed parent leaves no orphans, see apt_core.procs).
    guard = (os.getpid(), pdeathsig_wanted())
    manager = SyncManager(ctx=ctx)
    manager.start(initializer=die_with_parent, initargs=guard)
    with manager:
        messages = manager.Queue()
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=die_with_parent, initargs=guard)
        try:
            for wave in waves:
                if not wave:
                    continue
                fractions = {i: 0.0 for i in range(len(wave))}
                labels = {i: label for i, (_, _, label) in enumerate(wave)}
                pending = {pool.submit(_warm_worker, sc, str(cache_root), i, messages) for i, (sc, _, _) in enumerate(wave)}
                last = ""
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        task_id, _ = fut.result()  # re-raises a worker's error here
                        fractions[task_id] = 1.0
                    while True:
                        try:
                            task_id, fraction, stage = messages.get_nowait()
                        except _queue.Empty:
                            break
                        fractions[task_id] = max(fractions[task_id], fraction)
                        last = f"{labels[task_id]}: {stage}"
                    if progress is not None:
                        current = done + sum(fractions[i] * wave[i][1] for i in fractions)
                        running = sum(0 < f < 1 for f in fractions.values())
                        if progress(min(1.0, current / units), f"[{jobs} workers, {running} busy] {last}") is False:
                            for fut in pending:
                                fut.cancel()
                            raise CancelledError("reproduce cancelled")
                done += sum(w for _, w, _ in wave)
        except BaseException:
            stop_pool(pool)  # an error, Ctrl-C or SIGTERM: kill the workers, do not wait for their tasks
            raise
        pool.shutdown(wait=True)
    return done


def reproduce(cfg: ReproduceConfig, progress: ProgressFn | None = None, cache=None, store=None) -> ReproduceResult:
    """Run the grid and the figure sweeps, write everything to ``cfg.out``; see the module docstring.

    ``cache``: an ArtifactCache (None: no cache).  ``store``: a RunStore to record every
    scenario in the history (None: not recorded).
    """
    from apt_core.attacks import ATTACKS
    from apt_core.data import load_dataset
    from apt_core.defenses import DEFENSES
    from apt_core.experiment import run_scenario
    from apt_core.plots.results import rank_shift_boxplot, rank_shift_frame, sweep_figure, sweep_summary
    from apt_core.sweeps import sweep

    if cfg.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {cfg.seeds}")
    wall0 = time.perf_counter()
    data = load_dataset(cfg.dataset, cfg.data_dir)  # once, shared by every scenario here
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    attacks = _available(cfg.attacks, list(ATTACKS), "attack", skipped)
    defenses = _available(cfg.defenses, list(DEFENSES), "defense", skipped)
    if not attacks:
        raise ConfigError(f"none of the attacks {', '.join(cfg.attacks)} is available; available: {', '.join(ATTACKS) or 'none'}")
    fig_seeds = cfg.fig_seeds or min(cfg.seeds, 3)
    fig_defenses = tuple(d for d in cfg.fig_defenses if d in defenses)
    fig_attack = cfg.fig_attack if cfg.fig_attack in attacks else attacks[0]

    # Work units for the progress bar: scenarios x seeds, plus the sweep points.
    grid = [(t, a) for t in cfg.target_sets for a in attacks]
    units = len(grid) * cfg.seeds
    if cfg.figures:
        units += (len(cfg.attack_sizes) + len(cfg.erm_fractions)) * fig_seeds
    done = 0.0
    stats0 = (cache.stats.hits, cache.stats.misses) if cache is not None else (0, 0)

    def tick(weight: float, label: str):
        def inner(fraction: float, stage: str) -> object:
            if progress is not None and progress(min(1.0, (done + fraction * weight) / units), f"{label}: {stage}") is False:
                raise CancelledError(f"reproduce cancelled during {label}")
            return True

        return inner

    tmp_cache = None
    if cfg.jobs > 1:
        from apt_core.cache import ArtifactCache

        if cache is None:
            # Workers hand their results over through the cache; without one, use a throw-away folder.
            tmp_cache = tempfile.TemporaryDirectory(prefix="apt-reproduce-")
            cache = ArtifactCache(tmp_cache.name)
            stats0 = (0, 0)
        from apt_core.experiment import Scenario

        # Clean models first (shared by every attack and target set), here, one per seed.
        clean = Scenario(dataset=cfg.dataset, data_dir=cfg.data_dir, k=cfg.resolved_k(), epochs=cfg.epochs, seeds=max(cfg.seeds, fig_seeds),
                         seed=cfg.seed, device=cfg.device)
        run_scenario(clean, progress=tick(0, "clean models"), cache=cache, data=data)
        wave1 = [(_scenario(cfg, a, t, defenses, cfg.seeds), cfg.seeds, f"{t} targets, {a}") for t, a in grid]
        wave2 = []
        if cfg.figures:
            fig_targets = cfg.fig_targets if cfg.fig_targets in cfg.target_sets else cfg.target_sets[0]
            base = _scenario(cfg, fig_attack, fig_targets, fig_defenses, fig_seeds)
            for v in cfg.attack_sizes:
                if v != cfg.resolved_attack_size():
                    wave1.append((dataclasses.replace(base, attack_size=v), fig_seeds, f"Fig. 2 attack size {v:g}"))
            apt_only = tuple(d for d in fig_defenses if d == "apt") or fig_defenses
            for v in cfg.erm_fractions:
                if v != cfg.erm_fraction:
                    wave2.append((dataclasses.replace(base, defenses=apt_only, erm_fraction=v), fig_seeds, f"Fig. 3 ERM share {v:g}"))
        # Expensive scenarios (more defenses, more seeds) first, so the two workers finish together.
        wave1.sort(key=lambda t: -t[1] * (1 + len(t[0].defenses)))
        # Already answered by the cache (a repeated command): no worker needed for those.
        wave1 = [t for t in wave1 if not _fully_cached(t[0], cache, data)]
        wave2 = [t for t in wave2 if not _fully_cached(t[0], cache, data)]
        outer = progress
        # The workers do the work (0-90% of the bar); the pass below only reads the cache.
        if wave1 or wave2:
            warm_cache([wave1, wave2], cache.root, cfg.jobs, (lambda f, s: outer(0.9 * f, s)) if outer else None, 0.0, units)
        if outer is not None:
            progress = lambda f, s: outer(0.9 + 0.1 * f, s)  # noqa: E731
        done = 0.0

    results = {}
    run_ids: list[str] = []
    for targets, attack in grid:
        scenario = _scenario(cfg, attack, targets, defenses, cfg.seeds)
        res = run_scenario(scenario, progress=tick(cfg.seeds, f"{targets} targets, {attack}"), cache=cache, data=data)
        results[(targets, attack)] = res
        if store is not None:
            from apt_core.store import HistoryError

            try:
                # once=True: a rerun after a kill does not record a finished scenario twice
                run_ids.append(store.record(res, label="reproduce", once=True))
            except HistoryError as exc:
                skipped.append(f"results not recorded in the history: {exc}")
                store = None  # the tables are still written; one warning is enough
        done += cfg.seeds

    table2 = _table(results, cfg, "target_hr")
    table3 = _table(results, cfg, "test_hr")
    per_seed = pd.concat([
        pd.DataFrame(res.to_json()["per_seed"]).assign(targets=t, attack=a) for (t, a), res in results.items()
    ], ignore_index=True)
    files: list[Path] = []

    def write(name: str, text: str) -> None:
        from apt_core.cache import atomic_write_bytes

        atomic_write_bytes(out / name, text.encode())
        files.append(out / name)

    write("table2_target_hr.csv", table2.to_csv(index=False))
    write("table3_test_hr.csv", table3.to_csv(index=False))
    write("per_seed.csv", per_seed.to_csv(index=False))
    md2 = table_markdown(table2, "Target HR@%d" % cfg.resolved_k())
    md3 = table_markdown(table3, "Test HR@%d" % cfg.resolved_k(), show_ri=False)
    write("table2_target_hr.md", md2 + "\n")
    write("table3_test_hr.md", md3 + "\n")

    figure_notes = []
    if cfg.figures:
        def save_fig(fig, name: str) -> None:
            # "directory": plotly.min.js is written once beside the figures, so they open offline.
            fig.write_html(out / name, include_plotlyjs="directory")
            files.append(out / name)

        fig_targets = cfg.fig_targets if cfg.fig_targets in cfg.target_sets else cfg.target_sets[0]
        key = (fig_targets, fig_attack)
        frame = rank_shift_frame(results[key])
        ds = results[key].data.name
        save_fig(rank_shift_boxplot(frame, title=f"Fig. 1 — rank shift of {fig_targets} targets under the "
                                     f"{ATTACK_LABELS.get(fig_attack, fig_attack)} attack, {ds} ({cfg.seeds} seeds)"), "fig1_rank_shift.html")
        q = frame.groupby("phase", sort=False)["rank_shift"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95]).reset_index()
        write("fig1_rank_shift.csv", q.to_csv(index=False))

        base = _scenario(cfg, fig_attack, fig_targets, fig_defenses, fig_seeds)
        frame2 = sweep(base, "attack_size", list(cfg.attack_sizes), progress=tick(len(cfg.attack_sizes) * fig_seeds, "Fig. 2 sweep"), cache=cache, data=data)
        done += len(cfg.attack_sizes) * fig_seeds
        write("fig2_attack_size.csv", frame2.to_csv(index=False))
        save_fig(sweep_figure(frame2, "attack_size", "target_hr", title=f"Fig. 2 — target HR@{cfg.resolved_k()} against attack size "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds}, {fig_seeds} seeds)"), "fig2_attack_size.html")
        save_fig(sweep_figure(frame2[frame2["ri"].notna()], "attack_size", "ri", title=f"Fig. 2b — RI against attack size "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds})"), "fig2_attack_size_ri.html")

        apt_only = tuple(d for d in fig_defenses if d == "apt") or fig_defenses
        base3 = dataclasses.replace(base, defenses=apt_only, attack_size=cfg.resolved_attack_size())
        frame3 = sweep(base3, "erm_fraction", list(cfg.erm_fractions), progress=tick(len(cfg.erm_fractions) * fig_seeds, "Fig. 3 sweep"), cache=cache, data=data)
        done += len(cfg.erm_fractions) * fig_seeds
        write("fig3_erm_fraction.csv", frame3.to_csv(index=False))
        save_fig(sweep_figure(frame3, "erm_fraction", "target_hr", title=f"Fig. 3 — target HR@{cfg.resolved_k()} against the share of ERM users "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds}, {fig_seeds} seeds)"), "fig3_erm_fraction.html")
        save_fig(sweep_figure(frame3, "erm_fraction", "test_hr", title=f"Fig. 3b — test HR@{cfg.resolved_k()} against the share of ERM users ({ds})"),
                 "fig3_erm_fraction_test_hr.html")
        figure_notes = [
            f"Figures use the {ATTACK_LABELS.get(fig_attack, fig_attack)} attack on {fig_targets} targets with {fig_seeds} seed(s); "
            f"Fig. 2 sweeps the attack size over {', '.join(f'{v:.0%}' for v in cfg.attack_sizes)} (defenses: {', '.join(fig_defenses) or 'none'}), "
            f"Fig. 3 the ERM share over {', '.join(f'{v:.0%}' for v in cfg.erm_fractions)} (defense: {', '.join(apt_only) or 'none'}).",
        ]
    wall = time.perf_counter() - wall0
    hits = cache.stats.hits - stats0[0] if cache is not None else 0
    misses = cache.stats.misses - stats0[1] if cache is not None else 0
    if progress is not None:
        progress(1.0, "done")
    report = _report(cfg, results, md2, md3, wall, hits, misses, skipped, figure_notes, defenses, attacks)
    write("report.md", report)
    if tmp_cache is not None:
        tmp_cache.cleanup()
    return ReproduceResult(cfg, out, table2, table3, per_seed, files, wall, hits, misses, skipped, run_ids)


def timing_markdown(results: dict) -> str:
    """Mean seconds per seed of each stage, per attack (both target sets pooled; fit times as measured,
    also when the artifact came from the cache)."""
    cols = ["generate attack", "origin", "attack", *[p for p in PAPER_DEFENSES]]
    per: dict[str, dict[str, list[float]]] = {}
    for (_, attack), res in results.items():
        d = per.setdefault(attack, {c: [] for c in cols})
        d["generate attack"] += [v for v in res.attack_seconds if v is not None]
        for p in res.phases:
            if p.phase in d:
                d[p.phase] += list(p.seconds)
    lines = ["| attack | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for attack, d in per.items():
        cells = [f"{np.mean(v):.1f}" if v else "–" for v in (d[c] for c in cols)]
        lines.append(f"| {ATTACK_LABELS.get(attack, attack)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Seconds per seed (fit or generation time as measured when the artifact was made; "
                 "with --jobs > 1 two fits ran at once, so each is slower than alone).")
    return "\n".join(lines)


def _report(cfg, results, md2, md3, wall, hits, misses, skipped, figure_notes, defenses, attacks) -> str:
    from apt_core.store import package_versions

    any_res = next(iter(results.values()))
    d = any_res.data
    v = package_versions()
    lines = [
        f"# APT Lab reproduction: {d.name}" + (" (quick CI settings)" if cfg.quick else ""),
        "",
        f"- data: {d.name}, {d.n_users} users, {d.n_items} items, {d.n_ratings} ratings; leave-one-out split seed {cfg.seed}",
        f"- attacks: {', '.join(ATTACK_LABELS.get(a, a) for a in attacks)}; size {cfg.resolved_attack_size():.0%} of real users; "
        f"defenses: {', '.join(defenses)}; ERM users {cfg.erm_fraction:.0%}, ERM statistics `{cfg.erm_stats}`"
        + (" (the authors' oracle setting, as in the paper)" if cfg.erm_stats == "clean" else ""),
        f"- MF: {cfg.epochs} epochs (DESIGN section 3 recipe); HR@{cfg.resolved_k()}; {cfg.seeds} seed(s) "
        f"({cfg.seed}..{cfg.seed + cfg.seeds - 1}); device {any_res.device}",
        f"- wall time: {wall:.1f} s with {cfg.jobs} worker process(es); artifact cache: {hits} hits, {misses} misses"
        + (" (counted in this process; the workers filled the cache)" if cfg.jobs > 1 else ""),
        f"- versions: apt_core {v['apt_core']}, torch {v['torch']}, numpy {v['numpy']}, python {v['python']}",
        "",
    ]
    for s in skipped:
        lines.append(f"- **not run**: {s}")
    if skipped:
        lines.append("")
    lines += ["## Where the time goes", "", timing_markdown(results), ""]
    lines += ["## Table 2: robustness (target HR)", "", md2, "", "## Table 3: generalisation (test HR)", "", md3, ""]
    if figure_notes:
        lines += ["## Figures", "", *figure_notes,
                  "", "Files: `fig1_rank_shift.html`, `fig2_attack_size.html`, `fig2_attack_size_ri.html`, "
                  "`fig3_erm_fraction.html`, `fig3_erm_fraction_test_hr.html` (data in the matching `.csv`).", ""]
    ri = [r.row(res.phase("origin"), res.phase("attack"))["ri"] for res in results.values() for r in res.phases if r.phase == "apt"]
    ri = [x for x in ri if x is not None]
    ours = (f"Ours: APT's mean RI over the {len(ri)} attack x target cells with a defined RI is {np.mean(ri):.3f} "
            f"(min {np.min(ri):.3f}, max {np.max(ri):.3f}).") if ri else "Ours: APT's RI is undefined here (APT did not run or no attack moved HR)."
    lines += ["## The paper's claim", "", f"> {PAPER_HEADLINE}", "", ours, "",
              "Our numbers are measured, not copied: compare each cell with the paper's in parentheses. "
              "Where they differ, the difference is a result, not an error to be tuned away.", ""]
    return "\n".join(lines)

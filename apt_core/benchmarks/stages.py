"""``python -m apt_core bench``: timings of each stage, printed as a table.

Every figure is a median over ``repeats`` runs measured here, in this process, with
``time.perf_counter``; nothing is estimated.  Memory of the ML-1M-shaped fit is the peak
resident set of a child process that does only that fit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.data import leave_one_out, load_dataset
from apt_core.errors import AptError
from apt_core.evaluation.metrics import evaluate
from apt_core.models.mf import MFConfig, fit_mf
from apt_core.runtime.devices import device_label, resolve_device


@dataclass
class BenchRow:
    stage: str
    median_s: float
    min_s: float
    repeats: int
    note: str = ""


def time_it(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def synthetic_ml1m_shape(seed: int = 0, n_users: int = 6040, n_items: int = 3706, n_ratings: int = 1_000_209):
    """A random rating set with ML-1M's shape (users, items, ratings, long-tail items)."""
    from apt_core.data.dataset import Interactions, RatingScale

    rng = np.random.default_rng(seed)
    pop = 1.0 / (np.arange(n_items) + 10.0)
    pop /= pop.sum()
    users = rng.integers(0, n_users, n_ratings)
    items = rng.choice(n_items, n_ratings, p=pop)
    key = np.unique(users * n_items + items)
    users, items = key // n_items, key % n_items
    ratings = rng.integers(1, 6, len(key)).astype(np.float32)
    return Interactions(users, items, ratings, n_users, n_items, RatingScale(1, 5, 1))


def _ml1m_memory_child() -> None:
    import resource

    data = synthetic_ml1m_shape()
    t0 = time.perf_counter()
    fit_mf(data, MFConfig(), "cpu", 0)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "n_ratings": len(data)}))


def run_bench(dataset: str = "ml-100k", data_dir: str | None = None, repeats: int = 5, device: str = "auto", include_ml1m: bool = True, include_attacks: bool = True, include_defenses: bool = True, out=print,
              apt_datasets: tuple[str, ...] = ("filmtrust",), include_victims: bool = True, include_batched: bool = True) -> list[BenchRow]:
    # Imported here, not at the top: the ML-1M memory child imports this module and should
    # measure the fit, not the pipeline's imports.
    from apt_core.experiments.pipeline import Scenario, defense_context, prepare

    dev = resolve_device(device)
    rows: list[BenchRow] = []
    t0 = time.perf_counter()
    try:
        data = load_dataset(dataset, data_dir)
    except AptError as exc:
        out(f"note: {exc}; benchmarking the bundled sample data instead")
        data = load_dataset("sample")
    rows.append(BenchRow(f"load {data.name}", time.perf_counter() - t0, time.perf_counter() - t0, 1, f"{data.n_ratings} ratings"))
    med, mn = time_it(lambda: leave_one_out(data, 0), repeats)
    rows.append(BenchRow("leave-one-out split", med, mn, repeats))
    # The pipeline's own first stage (seed 0: the split, 5 random targets, a 3% attack budget), so
    # the stages are timed on what run_scenario hands them.
    prepared = prepare(Scenario(attack="average", attack_size=0.03, targets="random", n_targets=5, seed=0), data)
    split, targets, cfg = prepared.split, prepared.targets, prepared.mf_config
    fit_mf(split.train, cfg, dev, 0)  # warm-up (allocator, kernels)
    seeds = iter(range(1000))
    med, mn = time_it(lambda: fit_mf(split.train, cfg, dev, next(seeds)), repeats)
    mf_seconds = med
    rows.append(BenchRow(f"MF fit, {cfg.epochs} epochs ({dev.type})", med, mn, repeats, f"{len(split.train)} ratings"))
    model = fit_mf(split.train, cfg, dev, 0)
    med, mn = time_it(lambda: evaluate(model, split, targets, 50), repeats)
    rows.append(BenchRow("rank all users (target + test HR@50)", med, mn, repeats, f"{split.n_users} users x {split.n_items} items"))

    if include_attacks:
        from apt_core.attacks import ATTACKS, make_attack

        budget = prepared.budget
        for name in ATTACKS:
            attack = make_attack(name)
            attack_repeats = repeats if name in ("random", "average", "bandwagon") else max(1, min(3, repeats))
            med, mn = time_it(lambda: attack.generate(split.train, targets, budget.n_fake_users, budget.n_filler, 0, dev), attack_repeats)
            rows.append(BenchRow(f"attack {name}", med, mn, attack_repeats, f"{budget.n_fake_users} fake users x {budget.n_filler} fillers"))

    if include_defenses:
        from apt_core.defenses import DEFENSES, make_defense

        poisoned = split.train
        for name in DEFENSES:
            if name == "none":
                continue
            ctx = defense_context(prepared, dev, 0)
            defense = make_defense(name)
            def_repeats = max(1, min(3, repeats))
            med, mn = time_it(lambda: defense.fit(poisoned, ctx), def_repeats)
            # ERM defenses say which item statistics they used (the bench fits their defaults).
            stats = f", {defense.erm_stats} stats" if getattr(defense, "erm_stats", None) else ""
            rows.append(BenchRow(f"defense {name} fit", med, mn, def_repeats, f"{med / mf_seconds:.1f}x plain MF{stats}"))

    if include_batched:  # B fits one by one against one batch (issue 22; apt_core.benchmarks.batched)
        from apt_core.benchmarks.batched import bench_batched
        from apt_core.experiments.pipeline import generate_attack

        scenario = Scenario(attack="average", attack_size=0.03, targets="random", n_targets=5, seed=0)
        poisoned = generate_attack(scenario, prepared, 0, dev)[0].profiles.inject(split.train)
        rows.extend(BenchRow(*row) for row in bench_batched(prepared, poisoned, dev))

    if include_defenses:
        for name in apt_datasets:
            if name != data.name:
                rows.extend(bench_apt_on(name, data_dir, dev, repeats, out))

    if include_victims:  # LightGCN / NeuMF fits and APT's autograd influence (apt_core.benchmarks.victims)
        from apt_core.benchmarks.victims import bench_victims

        victim_rows = bench_victims(split, dev, time_it, repeats, synthetic_ml1m_shape() if include_ml1m else None)
        rows.extend(BenchRow(*row) for row in victim_rows)

    if include_ml1m:
        env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        proc = subprocess.run(
            [sys.executable, "-c", "from apt_core.benchmarks.stages import _ml1m_memory_child; _ml1m_memory_child()"],
            capture_output=True, text=True, env=env,
        )
        if proc.returncode == 0:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(BenchRow("MF fit, ML-1M-shaped synthetic (cpu)", info["seconds"], info["seconds"], 1, f"peak memory {info['peak_mb']:.0f} MB, {info['n_ratings']} ratings"))
        else:
            rows.append(BenchRow("MF fit, ML-1M-shaped synthetic (cpu)", float("nan"), float("nan"), 0, f"failed: {proc.stderr.strip().splitlines()[-1:]}"))
    if include_ml1m:
        rows.extend(bench_influence_ml1m(dev, repeats))
    out(format_table(rows, device_label(dev)))
    return rows


def bench_apt_on(dataset: str, data_dir: str | None, dev: torch.device, repeats: int = 3, out=print) -> list[BenchRow]:
    """Plain MF and APT (default settings: the ``paper`` preset's solver and schedule) on
    another data set, e.g. FilmTrust, where APT regenerates every 3 epochs from epoch 4."""
    from apt_core.defenses import make_defense
    from apt_core.experiments.pipeline import Scenario, defense_context, prepare

    try:
        data = load_dataset(dataset, data_dir)
    except AptError as exc:
        out(f"note: {exc}; skipping the {dataset} rows")
        return []
    prepared = prepare(Scenario(dataset=data.name, seed=0), data)
    split, cfg = prepared.split, prepared.mf_config
    fit_mf(split.train, cfg, dev, 0)  # warm-up
    reps = max(1, min(3, repeats))
    mf_med, mf_min = time_it(lambda: fit_mf(split.train, cfg, dev, 0), reps)
    rows = [BenchRow(f"MF fit, {cfg.epochs} epochs, {data.name} ({dev.type})", mf_med, mf_min, reps, f"{len(split.train)} ratings")]
    apt = make_defense("apt")
    ctx = defense_context(prepared, dev, 0)
    med, mn = time_it(lambda: apt.fit(split.train, ctx), reps)
    rows.append(BenchRow(f"defense apt fit, {data.name}", med, mn, reps, f"{med / mf_med:.1f}x plain MF ({apt.resolved_solver()}, {apt.erm_stats} stats)"))
    return rows


def bench_influence_ml1m(dev: torch.device, repeats: int = 3, pretrain_epochs: int = 15) -> list[BenchRow]:
    """One APT influence vector on an ML-1M-shaped synthetic set (CG, identity, LiSSA by Lanczos).

    The factors come from ``pretrain_epochs`` of MF, APT's T_pre on ML-1M, so the Hessian is
    the one APT meets at its first regeneration; the timed call is what APT runs per
    regeneration (plus building the sparsity structure, which APT does once per fit), on
    each device present (the CPU always, CUDA when a GPU exists).
    """
    from apt_core.influence.mf import RatingStructure, influence_vector, probe_users
    from apt_core.models.mf import MFTrainer

    data = synthetic_ml1m_shape()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(dev if dev.type == "cuda" else torch.device("cuda"))
    rows = []
    for device in devices:
        trainer = MFTrainer(data.n_users, data.n_items, MFConfig(), device, 0)
        u, i, r = trainer.tensors(data)
        trainer.train_epochs(u, i, r, pretrain_epochs)
        probe = probe_users(data.users, data.normalised_ratings, data.n_users, 10)
        reps = max(1, min(3, repeats))
        for solver in ("cg", "identity", "lissa-lanczos"):
            info = {}

            def once():
                # As in APT: the sparsity structure is built once per fit, here per call.
                st = RatingStructure.build(u, i, data.n_users, data.n_items)
                info["res"] = influence_vector(trainer.P, trainer.Q, u, i, r, probe, solver=solver, structure=st)

            med, mn = time_it(once, reps)
            cg = info["res"].cg
            lz = info["res"].lanczos
            note = f"{len(data)} ratings" + (f", CG {cg.iterations} it, residual {cg.residual:.1e}" if cg else "") + \
                (f", Lanczos {lz.iterations} products" if lz else "")
            rows.append(BenchRow(f"influence vector ({solver}), ML-1M-shaped synthetic ({device.type})", med, mn, reps, note))
    return rows


def format_table(rows: list[BenchRow], device: str) -> str:
    width = max(len(r.stage) for r in rows)
    lines = [f"APT Lab benchmark on {device}, torch {torch.__version__}", f"{'stage':<{width}}  {'median s':>9}  {'min s':>8}  {'n':>3}  note"]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        lines.append(f"{r.stage:<{width}}  {r.median_s:>9.3f}  {r.min_s:>8.3f}  {r.repeats:>3}  {r.note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- loading

#: code run in a child process to time one load of a CSV and report its peak memory; kept to
#: ``load_csv`` alone so the same child measures older versions of the loader too.
_LOAD_CHILD = (
    "import json, resource, sys, time\n"
    "from apt_core.data import load_csv\n"
    "t0 = time.perf_counter()\n"
    "data = load_csv(sys.argv[1])\n"
    "seconds = time.perf_counter() - t0\n"
    "peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "try:\n"  # Linux: VmHWM is this program's own peak (ru_maxrss also counts the parent's at fork)
    "    peak_kb = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
    "except (OSError, StopIteration, ValueError):\n"
    "    pass\n"
    "print(json.dumps({'seconds': seconds, 'peak_mb': peak_kb / 1024, 'n_ratings': data.n_ratings}))\n"
)


def write_synthetic_csv(path: str, n_rows: int, seed: int = 0, n_users: int | None = None, n_items: int | None = None) -> int:
    """Write an ``user,item,rating,timestamp`` CSV of ``n_rows`` random ratings (with header); returns its size in bytes."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_users = n_users or max(10, n_rows // 100)
    n_items = n_items or max(10, min(50_000, n_rows // 50))
    frame = pd.DataFrame({
        "user": rng.integers(1, n_users + 1, n_rows),
        "item": rng.integers(1, n_items + 1, n_rows),
        "rating": rng.integers(1, 6, n_rows),
        "timestamp": rng.integers(880_000_000, 890_000_000, n_rows),
    })
    frame.to_csv(path, index=False)
    return os.path.getsize(path)


def bench_load(n_rows: int, repeats: int = 1, pythonpath: str | None = None) -> list[BenchRow]:
    """Time ``load_csv`` on a synthetic ``n_rows``-row CSV written to a temporary folder (deleted after).

    Each load runs in a fresh child process, so its peak resident memory (``ru_maxrss``) is
    the loader's alone (plus the interpreter and imports, about 100-150 MB).  ``pythonpath``
    points the child at another checkout (to measure an older loader on the same file).
    """
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="apt-bench-load-") as tmp:
        path = os.path.join(tmp, "ratings.csv")
        size = write_synthetic_csv(path, n_rows)
        times, peaks = [], []
        env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        env["PYTHONPATH"] = pythonpath or os.pathsep.join(p for p in sys.path if p)
        for _ in range(max(1, repeats)):
            # cwd: the temporary folder, so ``-c`` does not import apt_core from wherever we run
            proc = subprocess.run([sys.executable, "-c", _LOAD_CHILD, path], capture_output=True, text=True, env=env, cwd=tmp)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                rows.append(BenchRow(f"load CSV, {n_rows} rows", float("nan"), float("nan"), 0, f"failed: {tail}"))
                return rows
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            times.append(info["seconds"])
            peaks.append(info["peak_mb"])
        rows.append(BenchRow(f"load CSV, {n_rows} rows ({size / 1e6:.0f} MB)", float(np.median(times)), float(np.min(times)),
                             len(times), f"peak memory {max(peaks):.0f} MB (child process)"))
    return rows

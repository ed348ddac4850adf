"""``bench``'s batched stage (issue 22): B fits one by one against the same B fits in one batch.

Each row times the same jobs -- the same seeds, data and settings -- twice in this process:
one by one (``fit_mf`` / ``Defense.fit``, the reference path) and batched (``fit_mf_batch`` /
``Defense.fit_many``).  The note gives the CPU time of both (``time.process_time``: on a shared
machine the wall time also counts the other processes) and the largest difference in any
factor, so a row that got faster by computing something else would show it.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from apt_core.models.mf import fit_mf
from apt_core.models.mf_batch import fit_mf_batch


def _timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _largest_difference(one: list, batched: list) -> float:
    return max(max(float((a.P - b.P).abs().max()), float((a.Q - b.Q).abs().max())) for a, b in zip(one, batched))


def bench_batched(prepared, poisoned, device, n_models: int = 8) -> list[tuple]:
    """Rows ``(stage, batched wall s, batched wall s, 1, note)`` for :class:`apt_core.benchmarks.stages.BenchRow`.

    ``prepared``: the bench's :class:`~apt_core.experiments.preparation.Prepared`; ``poisoned``: its
    training data with an attack's profiles (the data the grid's defenses share)."""
    from apt_core.defenses import make_defense
    from apt_core.experiments.pipeline import defense_context

    cfg, train = prepared.mf_config, prepared.split.train
    rows = []
    seeds = list(range(n_models))
    one, w1, c1 = _timed(lambda: [fit_mf(train, cfg, device, s) for s in seeds])
    batched, w2, c2 = _timed(lambda: fit_mf_batch([train] * n_models, seeds, cfg, device))
    rows.append((f"batched: {n_models} MF fits, {n_models} seeds", w2, w2, 1,
                 f"one by one {w1:.2f} s wall / {c1:.2f} s CPU; batched {c2:.2f} s CPU; {w1 / w2:.1f}x wall; "
                 f"largest factor difference {_largest_difference(one, batched):.1e}"))
    # The grid's shape: one poisoned data set, one seed, the ERM settings of APT-rand / APT / AT side by side.
    for name, settings in (("apt-rand", [dict(erm_fraction=f, erm_stats=s) for f in (0.02, 0.05, 0.10, 0.20) for s in ("observed", "clean")]),
                           ("apt", [dict(erm_fraction=f, erm_stats="clean") for f in (0.02, 0.05, 0.10, 0.20)]),
                           ("at", [dict(epsilon=e) for e in (0.01, 0.03, 0.1)])):
        jobs = [(make_defense(name, **kw), poisoned, defense_context(prepared, device, 0)) for kw in settings]
        one, w1, c1 = _timed(lambda: [d.fit(t, c) for d, t, c in jobs])
        batched, w2, c2 = _timed(lambda: type(jobs[0][0]).fit_many(jobs))
        rows.append((f"batched: {len(jobs)} {name} fits, one data set and seed", w2, w2, 1,
                     f"one by one {w1:.2f} s wall / {c1:.2f} s CPU; batched {c2:.2f} s CPU; {w1 / w2:.1f}x wall; "
                     f"largest factor difference {_largest_difference([r.model for r in one], [r.model for r in batched]):.1e}"))
    return rows

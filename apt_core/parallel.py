"""Fill the artifact cache in worker processes (``reproduce --jobs N``).

Workers only compute and store artifacts; the parent process then reads every result back
from the cache, so a parallel run reports exactly what a serial one would.
"""
from __future__ import annotations

import os
import queue as _queue
import time
from pathlib import Path

from apt_core.errors import CancelledError
from apt_core.scenario import ProgressFn


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

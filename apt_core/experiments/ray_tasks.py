"""The Ray engine's tasks: a plan's units grouped into batches, one Ray task per batch (issue 22).

:func:`plan_tasks` groups the units of :func:`apt_core.experiments.engine.plan_units` with the local
engine's own rule (:func:`apt_core.experiments.batching.group_fits`, ``per_data``): on a CPU worker
a task holds the batched defenses' fits on one training data set (up to ``CPU_BATCH``; in one
process they share the plain-MF prefix and APT's first influence solve), a defense that does not
batch fits alone, and with fewer fit tasks than workers the largest is split; on a GPU a task is
one batch that fills the device (up to ``GPU_BATCH``, every data set of one shape).  An attack's
profiles and a seed's detectors stay one task each.

:func:`run_task` is what a worker runs: the fits through
:func:`apt_core.experiments.batching.compute_units` (the local engine's batched fill, so every
model and evaluation lands under its one-by-one cache key and a rerun on either engine answers
from the cache), the other units through :func:`apt_core.experiments.pipeline.compute_unit` and
:func:`apt_core.experiments.detection_run.run_detection`.  A task whose worker dies is rerun by
Ray; the rerun finds in the cache what the killed try had written (each batch of a task writes
its members when it ends) and fits only the rest.

A task's name is its process title on the worker (``ray::apt:batch of 4: apt seeds 0-3, sample``):
what ``ps`` shows and what the kill tests look for.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Sequence

from apt_core.experiments.plan import STAGE_DETECTION, STAGE_PROFILES

#: the units that fit no model: one Ray task each
NOT_FITS = (STAGE_PROFILES, STAGE_DETECTION)


@dataclass(frozen=True)
class RayTask:
    """One Ray task: ``units`` (:class:`apt_core.experiments.engine.Unit`) computed together, under ``name``."""

    units: tuple
    name: str

    @property
    def fits(self) -> bool:
        """Whether the task fits models (a batch), rather than making profiles or running the detectors."""
        return self.units[0].unit not in NOT_FITS


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {','.join(map(str, seeds))}" if len(seeds) <= 6 else f"{len(seeds)} seeds"


def task_name(units: Sequence) -> str:
    """``apt:[batch of N: ]STAGE+STAGE seed(s) S, DATASET``: the stages in the order the task runs them."""
    stages = "+".join(dict.fromkeys(u.unit for u in units))
    seeds = sorted({u.scenario.seed + u.rep for u in units})
    datasets = ",".join(dict.fromkeys(u.scenario.dataset for u in units))
    head = f"batch of {len(units)}: " if len(units) > 1 else ""
    return f"apt:{head}{stages} {_seeds_text(seeds)}, {datasets}"


def plan_tasks(units: Sequence, workers: int | None = None) -> list[RayTask]:
    """``units`` as Ray tasks: the profiles first (the fits on poisoned data wait for them), then the
    fits in the batches of :func:`~apt_core.experiments.batching.group_fits` (``per_data``), then the detectors.

    ``workers`` (the CPUs Ray has; None: no limit): with fewer CPU fit tasks than that, the largest
    is split in two until there are as many (or none holds two fits) -- a sweep whose points share
    one data set would otherwise keep one worker busy and the others idle; two halves side by side
    beat one shared plain-MF prefix.
    """
    from apt_core.experiments.batching import group_fits
    from apt_core.runtime.devices import resolve_device

    units = list(units)
    fits = [u for u in units if u.unit not in NOT_FITS]
    batches = [tuple(fits[i] for i in batch) for batch in group_fits(fits, per_data=True)]
    on_cpu = [b for b in batches if resolve_device(b[0].scenario.device).type == "cpu"]
    while workers is not None and len(on_cpu) < workers and max(map(len, on_cpu), default=0) > 1:
        largest = max(on_cpu, key=len)
        half = (len(largest) + 1) // 2
        at = batches.index(largest)
        batches[at: at + 1] = [largest[:half], largest[half:]]
        at = on_cpu.index(largest)
        on_cpu[at: at + 1] = [largest[:half], largest[half:]]
    groups = [(u,) for u in units if u.unit == STAGE_PROFILES] + batches
    groups += [(u,) for u in units if u.unit == STAGE_DETECTION]
    return [RayTask(group, task_name(group)) for group in groups]


def run_task(units: list, cache_root: str, store_models: bool, data_index: list, *refs) -> list[dict]:
    """One Ray task: compute ``units`` into the cache at ``cache_root``; one summary per unit, in order
    (unit, seconds, cpu_seconds, cached, pid, task, task_units).  ``refs``: the data sets (``data_index[i]``:
    unit i's, None: it loads its own), then the profiles' results the task waited for."""
    from apt_core.experiments.batching import compute_units
    from apt_core.experiments.pipeline import compute_unit
    from apt_core.runtime.devices import configure_threads
    from apt_core.storage.cache import ArtifactCache

    configure_threads()  # APT_NUM_THREADS from the engine's WORKER_ENV: one thread per task
    cache = ArtifactCache(cache_root, store_models=store_models)
    data = {id(u.scenario): refs[i] for u, i in zip(units, data_index) if i is not None}
    name, pid = task_name(units), os.getpid()
    rows = []
    t0, c0 = time.perf_counter(), time.process_time()
    if units[0].unit == STAGE_DETECTION:
        from apt_core.experiments.detection_run import run_detection

        run_detection(units[0].scenario, cache=cache, data=data.get(id(units[0].scenario)), reps=[units[0].rep])
        cached = [cache.stats.misses == 0]
        spent = [time.perf_counter() - t0]
    elif units[0].unit == STAGE_PROFILES:
        cached = [compute_unit(units[0].scenario, units[0].rep, units[0].unit, cache, data.get(id(units[0].scenario)))]
        spent = [time.perf_counter() - t0]
    else:
        # the task's fits, batched as the local engine batches them (one group: no split beyond it)
        report = compute_units(units, cache, lambda s: data.get(id(s)), batch_size=len(units), workers=1)
        held = {id(u) for u in report.cached_units}
        cached = [id(u) in held for u in units]
        share = {id(u): s for u, s in report.unit_seconds}
        # the task's time (data, split, popularity included) spread over its fits by their batch shares
        wall, total = time.perf_counter() - t0, sum(share.values())
        spent = [wall * share.get(id(u), 0.0) / total if total > 0 else wall / len(units) for u in units]
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    for u, was_cached, seconds in zip(units, cached, spent):
        rows.append({"unit": u.unit, "seconds": seconds, "cpu_seconds": cpu * seconds / wall if wall > 0 else 0.0,
                     "cached": bool(was_cached), "pid": pid, "task": name, "task_units": len(units)})
    return rows

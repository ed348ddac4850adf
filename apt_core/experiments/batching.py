"""Batched training of a plan's units (issue 22): many fits of one defense in one MF batch.

:func:`compute_units` takes units of scenarios' plans (:func:`apt_core.experiments.engine.plan_units`:
the origin, attack and defense fits of each seed; the attack's profiles) and computes into the
artifact cache every one the cache lacks, under the keys the one-by-one pipeline reads and
writes (:class:`apt_core.experiments.pipeline.UnitRun`): first the fake profiles, then the fits,
grouped by defense class and data set and handed to :meth:`apt_core.defenses.base.Defense.fit_many`
in batches (MF, AT, APT, APT-rand train stacked; :mod:`apt_core.models.mf_batch`).  Afterwards
``run_scenario`` answers every scenario from the cache, exactly as after a one-by-one run.

Which fits batch: all that share a data set's shape (its items) and MF recipe -- the seeds of
``reproduce --seeds 5``, the positions of the classroom grid, the points of a sweep.  Jobs on
the same data with the same seed also share their plain-MF epochs (APT's pre-training, AT's
warm-up).  A batch whose fit diverges is refitted one by one, so the error names its phase.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from apt_core.defenses import make_defense
from apt_core.errors import CancelledError, DivergedError
from apt_core.evaluation.metrics import evaluate
from apt_core.experiments.artifacts import Keys, eval_payload, keeps_model, model_payload
from apt_core.experiments.plan import STAGE_PROFILES, plan
from apt_core.experiments.preparation import Prepared, prepare
from apt_core.experiments.scenario import ProgressFn, Scenario
from apt_core.models.mf_batch import PretrainStore
from apt_core.runtime.devices import resolve_device

#: fits per batch on a CPU: beyond a few dozen the stacked tensors stop saving time
CPU_BATCH = 64
#: fits per batch on a GPU: enough to fill the device for data sets of ML-100K's size
GPU_BATCH = 256
#: the order batches run in: shortest plain-MF prefix first (see compute_units)
PREFIX_ORDER = {"at": 0, "apt": 1, "apt-rand": 1, "none": 2}


@dataclass
class BatchReport:
    """What :func:`compute_units` did: fits computed, batches, fits already cached, seconds."""

    n_fits: int = 0
    n_batches: int = 0
    n_cached: int = 0
    seconds: float = 0.0


@dataclass
class _Job:
    unit: object
    run: object  # UnitRun
    defense: object
    train: object
    model_key: str
    eval_key: str


def _prepared_key(scenario: Scenario) -> tuple:
    """The fields :func:`prepare` reads (data, split seed, targets, attack budget, MF recipe, victim)."""
    return (scenario.dataset, scenario.data_dir, scenario.rating_scale, scenario.seed, scenario.targets, scenario.n_targets,
            scenario.attack, scenario.attack_size, scenario.filler, scenario.poison_file, scenario.epochs, scenario.victim,
            scenario.victim_feedback, scenario.device)


def compute_units(units: Sequence, cache, data_of: Callable[[Scenario], object] | None = None, progress: ProgressFn | None = None,
                  batch_size: int | None = None, workers: int | None = None) -> BatchReport:
    """Compute ``units`` (``.scenario``, ``.rep``, ``.unit``: :class:`apt_core.experiments.engine.Unit`)
    into ``cache``, the fits in batches of at most ``batch_size`` (None: :data:`CPU_BATCH`,
    :data:`GPU_BATCH` on CUDA), ``workers`` batches at a time in threads (None: on a CPU as many
    as torch's threads, ``APT_NUM_THREADS``, default two; on a GPU one).  ``progress(fraction,
    text)`` returning False cancels."""
    from apt_core.experiments.pipeline import UnitRun

    t0 = time.perf_counter()
    report = BatchReport()
    prepared: dict[tuple, tuple[Prepared, Keys]] = {}
    poisoned: dict[str, object] = {}  # one Interactions object per data set: equal data, one object

    def setup(scenario: Scenario) -> tuple[Prepared, Keys]:
        key = _prepared_key(scenario)
        if key not in prepared:
            prep = prepare(scenario, data_of(scenario) if data_of is not None else None)
            prepared[key] = (prep, Keys(prep.data, prep.split, resolve_device(scenario.device), prep.mf_config, prep.victim))
        return prepared[key]

    def tell(fraction: float, text: str) -> None:
        if progress is not None and progress(min(1.0, fraction), text) is False:
            raise CancelledError("cancelled during the batched fits")

    units = list(units)
    profiles = [u for u in units if u.unit == STAGE_PROFILES]
    for i, u in enumerate(profiles):  # attacks first: the fits on poisoned data read their profiles
        tell(0.2 * i / max(1, len(profiles)), f"fake users of attack {i + 1} of {len(profiles)} ({u.scenario.attack})")
        prep, keys = setup(u.scenario)
        planned = plan(u.scenario).unit(u.rep, u.unit)
        UnitRun(u.scenario, prep, resolve_device(u.scenario.device), planned.seed, cache, keys).fake()
    jobs: list[_Job] = []
    for u in units:
        if u.unit == STAGE_PROFILES or u.unit not in {p.stage for p in plan(u.scenario).units_of(u.rep)}:
            continue  # detection units: run_scenario / run_detection compute them
        prep, keys = setup(u.scenario)
        planned = plan(u.scenario).unit(u.rep, u.unit)
        run = UnitRun(u.scenario, prep, resolve_device(u.scenario.device), planned.seed, cache, keys)
        if planned.on_poisoned_data:
            train, train_key = run.poisoned()
            train = poisoned.setdefault(train_key, train)
        else:
            train, train_key = prep.split.train, keys.split
        defense = make_defense(planned.defense, **u.scenario.method_params(planned.defense))
        model_key = keys.model(train_key, defense, planned.seed)
        eval_key = keys.evaluation(model_key, prep.targets)
        if cache.load("eval", eval_key) is not None:
            report.n_cached += 1
            continue
        jobs.append(_Job(u, run, defense, train, model_key, eval_key))
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        device = resolve_device(job.unit.scenario.device)
        # On a CPU a batch is the jobs on one data set (what they share there is the plain-MF
        # prefix; members step one after the other, see BatchedMFTrainer.chunk_size); on a GPU
        # every data set of the same shape goes into one stack.
        data = id(job.train) if device.type == "cpu" else None
        groups.setdefault((type(job.defense), job.run.prepared.data.name, job.train.n_items, str(device), data), []).append(job)
    batches = []
    for (cls, _, _, device, _), members in groups.items():
        size = batch_size or (GPU_BATCH if device.startswith("cuda") else CPU_BATCH)
        size = size if cls.batched else 1
        batches += [members[i: i + size] for i in range(0, len(members), size)]
    # Shortest plain-MF prefix first (AT's warm-up, then APT's and APT-rand's T_pre, then plain
    # MF): each later batch on the same data and seed resumes from the state the earlier one kept.
    batches.sort(key=lambda b: PREFIX_ORDER.get(b[0].defense.name, len(PREFIX_ORDER)))
    store = PretrainStore()
    detect_lock = threading.Lock()
    done = [0]
    stop = threading.Event()

    def progress_of(batch: list[_Job]) -> ProgressFn:
        name = batch[0].defense.name
        label = f"{len(batch)} {name} models together" if len(batch) > 1 else f"one {name} model"

        def inner(fraction: float, text: str = "") -> object:
            if stop.is_set():
                raise CancelledError("cancelled during the batched fits")
            tell(0.2 + 0.8 * (done[0] + fraction * len(batch)) / max(1, len(jobs)),
                 f"training {label} ({done[0]} of {len(jobs)} models done)")
            return True

        return inner

    def one(batch: list[_Job]) -> None:
        try:
            _fit_batch(batch, cache, progress_of(batch), store, detect_lock)
        except BaseException:
            stop.set()  # the other workers stop at their next epoch
            raise
        done[0] += len(batch)

    workers = _workers(batches) if workers is None else max(1, int(workers))
    if workers == 1:
        for batch in batches:
            one(batch)
    else:
        import torch

        # Each worker one thread: B batches on B cores (ops release the GIL; one op on two
        # threads gains little on these small kernels, two batches side by side gain ~2x).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                for future in [pool.submit(one, batch) for batch in batches]:
                    future.result()
        finally:
            torch.set_num_threads(threads)
    report.n_fits, report.n_batches = sum(len(b) for b in batches), len(batches)
    report.seconds = time.perf_counter() - t0
    return report


def _workers(batches: list[list[_Job]]) -> int:
    """Batches side by side: torch's CPU threads (the run's thread budget) when every batch runs on
    the CPU, else one (a GPU batch fills the device on its own)."""
    import torch

    on_cpu = all(resolve_device(b[0].unit.scenario.device).type == "cpu" for b in batches)
    return max(1, min(len(batches), torch.get_num_threads())) if on_cpu and batches else 1


def _one_at_a_time(detect, lock: threading.Lock | None):
    """``detect`` (the cache's, ``DefenseContext.detect_with``) under ``lock``: two batches on one
    data set (APT's and APT-rand's trusted statistics) run its detector once, the second reads
    the first's result from the cache instead of computing it at the same time."""
    if detect is None or lock is None:
        return detect

    def locked(detector, data, seed):
        with lock:
            return detect(detector, data, seed)

    return locked


def _fit_batch(batch: list[_Job], cache, progress: ProgressFn, store: PretrainStore | None = None,
               lock: threading.Lock | None = None) -> None:
    """Fit one batch and write each job's model and evaluation, as ``_fit_evaluate`` writes a single fit."""
    contexts = []
    for j, job in enumerate(batch):
        ctx = replace(job.run.ctx, progress=progress if j == 0 else None, pretrained=store,
                      detect_with=_one_at_a_time(job.run.ctx.detect_with, lock))
        contexts.append(ctx)
    t0 = time.perf_counter()
    try:
        results = type(batch[0].defense).fit_many([(job.defense, job.train, ctx) for job, ctx in zip(batch, contexts)])
    except DivergedError:
        # One member diverged: fit one by one, so the error names its phase and what to change.
        for job in batch:
            job.run.fit(plan(job.unit.scenario).unit(job.unit.rep, job.unit.unit))
        return
    share = (time.perf_counter() - t0) / len(batch)  # each fit's share of the batch's time
    for job, result in zip(batch, results):
        prep = job.run.prepared
        ev = evaluate(result.model, prep.split, prep.targets, job.unit.scenario.k)
        diagnostics = result.diagnostics or {}
        # the writer of pipeline._fit_evaluate_once (tests/test_mf_batch.py compares the entries)
        payload = model_payload(result.model, share, diagnostics, keeps_model(cache, job.defense.name))
        if payload["state"] is not None:
            cache.save("model", job.model_key, payload)
        cache.save("eval", job.eval_key, eval_payload(ev, share, payload["diagnostics"]))

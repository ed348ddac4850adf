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

The grouping is one function, :func:`group_fits`, from the units alone (no data loaded): the Ray
engine groups its tasks with it (:mod:`apt_core.experiments.ray_tasks`) and each task runs
:func:`compute_units` on its batch.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from apt_core.defenses import DEFENSES, make_defense
from apt_core.errors import CancelledError, DivergedError
from apt_core.evaluation.metrics import evaluate
from apt_core.experiments.artifacts import Keys, eval_payload, keeps_model, model_payload
from apt_core.experiments.plan import FAKE_ATTACK, FAKE_FILE, FAKE_NONE, STAGE_ORIGIN, STAGE_PROFILES, plan
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
    """What :func:`compute_units` did: fits computed, batches, fits already cached, seconds;
    ``cached_units`` the units whose evaluation the cache held, ``unit_seconds`` (unit, its share of
    its batch's wall time) for each fit computed (a Ray task's per-unit timings)."""

    n_fits: int = 0
    n_batches: int = 0
    n_cached: int = 0
    seconds: float = 0.0
    cached_units: list = field(default_factory=list)
    unit_seconds: list = field(default_factory=list)


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


def fit_data_key(unit) -> tuple:
    """The training data of fit unit ``unit``, from its scenario and plan alone (nothing loaded):
    the clean split (:func:`_prepared_key`), and on poisoned data the fake profiles' source (the
    attack, its parameters and the repetition's seed; or the poison file).  Equal keys, equal data."""
    scenario = unit.scenario
    planned = plan(scenario).unit(unit.rep, unit.unit)
    base = _prepared_key(scenario)
    if not planned.on_poisoned_data or planned.fake_source == FAKE_NONE:
        return base
    if planned.fake_source == FAKE_FILE:
        return base + (FAKE_FILE,)
    return base + (FAKE_ATTACK, planned.seed, repr(sorted(scenario.method_params(scenario.attack).items())))


def group_fits(units: Sequence, batch_size: int | None = None, per_data: bool = False) -> list[list[int]]:
    """The fit units of ``units`` (``.scenario``, ``.rep``, ``.unit``) in batches, as indices: the one
    grouping rule of both engines (:func:`compute_units`, the Ray engine's tasks).

    A batch is one defense class on one data set and device; on a CPU also one training data set
    (:func:`fit_data_key`: what members share there is the plain-MF prefix and the first influence
    solve; they step one after the other, see ``BatchedMFTrainer.cpu_chunk``), on a GPU every data
    set of that shape in one stack; at most ``batch_size`` fits (None: :data:`CPU_BATCH`,
    :data:`GPU_BATCH` on CUDA), one for a class that does not batch.  Shortest plain-MF prefix first.

    ``per_data`` (a Ray task's group): on a CPU the batched classes' fits on one training data set
    form one group (up to the size), so that in one process they share their plain-MF prefix across
    defenses (:class:`~apt_core.models.mf_batch.PretrainStore`); on a GPU a group is one batch.
    """
    groups: dict[tuple, list[int]] = {}
    for i, u in enumerate(units):
        cls = DEFENSES.get(plan(u.scenario).unit(u.rep, u.unit).defense)
        device = resolve_device(u.scenario.device)
        cpu = device.type == "cpu"
        whose = None if per_data and cpu and cls.batched else cls
        data = (u.scenario.dataset, u.scenario.data_dir, u.scenario.rating_scale)
        groups.setdefault((whose, data, str(device), fit_data_key(u) if cpu else None), []).append(i)
    batches = []
    for (whose, _, device, _), members in groups.items():
        size = batch_size or (GPU_BATCH if device.startswith("cuda") else CPU_BATCH)
        size = size if whose is None or whose.batched else 1
        batches += [members[i: i + size] for i in range(0, len(members), size)]

    # AT's warm-up, then APT's and APT-rand's T_pre, then plain MF: each later batch on the same
    # data and seed resumes from the state the earlier one kept.
    def prefix(i: int) -> int:
        name = plan(units[i].scenario).unit(units[i].rep, units[i].unit).defense
        return PREFIX_ORDER.get(name, len(PREFIX_ORDER))

    batches = [sorted(b, key=prefix) for b in batches]
    batches.sort(key=lambda b: prefix(b[0]))
    return batches


def compute_units(units: Sequence, cache, data_of: Callable[[Scenario], object] | None = None, progress: ProgressFn | None = None,
                  batch_size: int | None = None, workers: int | None = None) -> BatchReport:
    """Compute ``units`` (``.scenario``, ``.rep``, ``.unit``: :class:`apt_core.experiments.engine.Unit`)
    into ``cache``, the fits in batches of at most ``batch_size`` (None: :data:`CPU_BATCH`,
    :data:`GPU_BATCH` on CUDA), ``workers`` batches at a time in threads (None: on a CPU as many
    as torch's threads, ``APT_NUM_THREADS``, default two; on a GPU one).  ``progress(fraction,
    text)`` returning False cancels."""
    from apt_core.experiments.pipeline import UnitRun, _popularity_reference

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
        if planned.stage == STAGE_ORIGIN:  # the popularity row comes with the clean model (as compute_unit does)
            _popularity_reference(prep.split, prep.targets, u.scenario.k, 1, resolve_device(u.scenario.device), cache, keys)
        defense = make_defense(planned.defense, **u.scenario.method_params(planned.defense))
        model_key = keys.model(train_key, defense, planned.seed)
        eval_key = keys.evaluation(model_key, prep.targets)
        if cache.load("eval", eval_key) is not None:
            report.n_cached += 1
            report.cached_units.append(u)
            continue
        jobs.append(_Job(u, run, defense, train, model_key, eval_key))
    # the engines' one grouping rule (group_fits): a batch is one class on one data set (on a CPU)
    batches = [[jobs[i] for i in batch] for batch in group_fits([job.unit for job in jobs], batch_size)]
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
            seconds = _fit_batch(batch, cache, progress_of(batch), store, detect_lock)
            report.unit_seconds.extend((job.unit, s) for job, s in zip(batch, seconds))
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
               lock: threading.Lock | None = None) -> list[float]:
    """Fit one batch and write each job's model and evaluation, as ``_fit_evaluate`` writes a single fit;
    returns each job's seconds (its share of the batch's wall time)."""
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
        seconds = []
        for job in batch:
            t1 = time.perf_counter()
            job.run.fit(plan(job.unit.scenario).unit(job.unit.rep, job.unit.unit))
            seconds.append(time.perf_counter() - t1)
        return seconds
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
    return [share] * len(batch)

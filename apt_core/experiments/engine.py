"""Where ``reproduce`` and sweeps compute: in this process (``local``) or as Ray tasks (``ray``).

``local`` is sequential: every scenario runs through :func:`~apt_core.experiments.pipeline.run_scenario`
here, one after the other.  ``ray`` first plans the *units* of all scenarios -- one unit is
one phase of one repetition (the clean model, the attack's fake profiles, MF on the poisoned
data, one defense; :func:`apt_core.experiments.plan.plan`) -- drops the units that two
scenarios share (the clean model of a seed serves every attack; Fig. 3's points reuse the
grid's profiles), and runs them as Ray tasks, one task per batch of fits
(:mod:`apt_core.experiments.ray_tasks`: the local engine's batches, ``batching.group_fits``, computed
by its ``compute_units``; an attack's profiles and a seed's detectors one task each), through the
same stages ``run_scenario`` runs.  A task on poisoned data waits for its profiles (a Ray
dependency), nothing else waits.

The artifact cache is the only hand-over: each task writes what it computed (atomic
writes; a batch writes each fit under its one-by-one key), then the caller reads every scenario
back with ``run_scenario`` from the cache, as the local engine would -- so both engines report
the same numbers, and a rerun after a kill (or Ray's retry of a killed task) finds every finished
unit there.  On a cluster the cache folder must be on storage every
node sees (``--cache-dir``) and apt_core must be installed on every node.  Only the driver
writes the run history.

Faults: a task whose worker process dies is retried by Ray (``max_retries``, default 3);
a task that raises is not (the error is the same on every try) and its error is raised
here.  A local Ray instance started here is stopped when the work ends, and its processes
never outlive this one (:mod:`apt_core.runtime.ray_reaper`).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from apt_core.errors import AptError, CancelledError, ConfigError
from apt_core.experiments.plan import (ERM_FIELDS, FAKE_ATTACK, FAKE_NONE, STAGE_ATTACK, STAGE_DETECTION, STAGE_ORIGIN,
                                       STAGE_PROFILES, erm_fields, plan)
from apt_core.experiments.plan import Unit as PlanUnit
from apt_core.experiments.scenario import ProgressFn, Scenario

if TYPE_CHECKING:
    import pandas as pd

ENGINES = ("local", "ray")

#: environment of every Ray worker: OpenMP threads sleep when idle and torch uses one
#: thread per task (each task holds one CPU of Ray's; more threads only fight for it)
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "APT_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

#: how often Ray reruns a task whose worker died (a crash, a kill, a lost node)
MAX_RETRIES = 3


class EngineError(AptError):
    """The Ray engine cannot run (Ray missing, cluster unreachable, a task failed for good)."""


@dataclass(frozen=True)
class EngineConfig:
    """How to run the work: ``engine`` local|ray; ``address`` of a Ray cluster (None: start a local
    instance; ``auto``: join the running one); ``jobs``: CPUs of a local instance (None: Ray's
    default, every core); ``gpu_share``: the share of a GPU each task asks for with ``--device cuda``."""

    engine: str = "local"
    address: str | None = None
    jobs: int | None = None
    gpu_share: float = 0.5
    max_retries: int = MAX_RETRIES

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}")
        if self.engine == "local" and self.address is not None:
            raise ConfigError("--ray-address needs --engine ray")
        if not 0 < self.gpu_share <= 1:
            raise ConfigError(f"the GPU share per task must lie in (0, 1], got {self.gpu_share}")


#: the unit that runs every shilling detector on one seed's poisoned data (reproduce's detection table)
UNIT_DETECTION = STAGE_DETECTION


@dataclass(frozen=True)
class Unit:
    """One Ray task: stage ``unit`` (origin, profiles, attack, a defense or detection) of repetition ``rep`` of ``scenario``."""

    scenario: Scenario
    rep: int
    unit: str
    ident: tuple
    needs: tuple | None  # the ident of the unit whose artifact this one reads first
    label: str


def _neutral(scenario: Scenario, unit: PlanUnit) -> Scenario:
    """``scenario`` with the fields that do not change ``unit``'s artifact set to defaults.

    Two units with equal neutral scenarios (and repetition) compute the same artifact, so one
    task serves both.  Fields not named here count: a new field keeps units apart (safe).
    """
    base = Scenario()
    drop = {"defenses": ("none",), "seeds": 1, "k": base.k}
    if unit.fake_source == FAKE_NONE:  # trained on the clean data: no attack setting reaches it
        drop.update(attack="none", attack_size=base.attack_size, filler=None, poison_file=None)
    # Declared parameters count only for the methods the unit runs: the attack's when it
    # generates the unit's profiles, and the unit's defense's.
    owners = ({scenario.attack} if unit.fake_source == FAKE_ATTACK else set()) | {unit.defense}
    drop["params"] = tuple((k, v) for k, v in scenario.params if k.rpartition(".")[0] in owners)
    kept = erm_fields(unit.defense)  # the ERM settings only count for a defense that declares them
    drop.update({name: getattr(base, name) for name in ERM_FIELDS if name not in kept})
    return dataclasses.replace(scenario, **drop)


def plan_units(scenarios: Sequence[tuple[Scenario, str]], detections: Sequence[tuple[Scenario, str]] = ()) -> list[Unit]:
    """The distinct units of ``(scenario, label)`` pairs (each scenario's :func:`~apt_core.experiments.plan.plan`),
    profiles before the fits that read them; ``detections``: scenarios whose every shilling detector
    runs as one more unit per seed (:meth:`~apt_core.experiments.plan.ScenarioPlan.detection_units`)."""
    units: dict[tuple, Unit] = {}
    planned = [(plan(scenario), label, False) for scenario, label in scenarios]
    planned += [(plan(scenario), label, True) for scenario, label in detections]
    for scenario_plan, label, detection in planned:
        scenario = scenario_plan.scenario
        for unit in scenario_plan.detection_units() if detection else scenario_plan.units:
            ident = (_neutral(scenario, unit), unit.rep, unit.stage)
            need = scenario_plan.needs(unit)
            needs = None if need is None else (_neutral(scenario, need), need.rep, need.stage)
            if ident not in units:
                units[ident] = Unit(scenario, unit.rep, unit.stage, ident, needs, f"{label}: seed {unit.seed} {unit.stage}")
    return list(units.values())


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray, an optional extra: pip install 'apt-lab[ray]' "
                          "(or pip install 'ray>=2.9'); --engine local runs without it") from None
    return ray


def ray_available() -> bool:
    try:
        _import_ray()
        return True
    except EngineError:
        return False


@contextmanager
def ray_session(cfg: EngineConfig) -> Iterator[object]:
    """Connect to Ray for the block: the running session, a cluster (``cfg.address``) or a new local instance.

    A local instance started here is shut down at the end, and a reaper process
    (:mod:`apt_core.runtime.ray_reaper`) kills whatever of it is left if this process dies first.
    """
    ray = _import_ray()
    if ray.is_initialized():  # the caller (a test, a notebook) owns this session
        yield ray
        return
    for name, value in WORKER_ENV.items():
        os.environ.setdefault(name, value)  # a local instance's processes inherit this environment
    kwargs = dict(log_to_driver=False, runtime_env={"env_vars": dict(WORKER_ENV)})
    if cfg.address not in (None, "", "local", "auto"):
        check_reachable(cfg.address)  # ray.init would print "Connecting..." for minutes
    reaper = None
    with stdout_to_stderr():
        try:
            if cfg.address in (None, "", "local"):
                reaper = start_reaper()
                # address="local": always a new instance, never a cluster someone else started
                ray.init(address="local", num_cpus=cfg.jobs, include_dashboard=False, **kwargs)
            else:
                ray.init(address=cfg.address, **kwargs)
        except ConnectionError as exc:
            _stop_reaper(reaper)
            raise EngineError(f"cannot reach the Ray cluster at {cfg.address!r}: {exc}") from None
        except BaseException:
            _stop_reaper(reaper)
            raise
        try:
            yield ray
        finally:
            try:
                ray.shutdown()
            finally:
                _stop_reaper(reaper)


#: seconds to wait for a Ray address to accept a connection before giving up
REACH_TIMEOUT_S = 5.0


def check_reachable(address: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail in seconds, naming the address, when nothing listens at ``host:port`` (or ``ray://host:port``)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise EngineError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc)).lower()
        raise EngineError(f"cannot reach the Ray cluster at {address!r}: {reason} (waited at most {timeout:g} s)") from None


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 to descriptor 2 for the block.

    Ray's own processes and threads print to stdout (a dead worker's coloured
    "(raylet) A worker died ..." lines, 700-2400 characters); under ``--json`` stdout must carry
    the JSON alone.  The processes Ray starts in the block inherit the redirected descriptor.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no descriptor 1 (a closed stdout): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


def start_reaper() -> subprocess.Popen:
    """Start the process that kills this process's Ray processes once it has gone (see :mod:`apt_core.runtime.ray_reaper`)."""
    import apt_core

    root = os.path.dirname(os.path.dirname(os.path.abspath(apt_core.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    # Its own session: a Ctrl-C in the terminal reaches this process (which shuts Ray down and
    # then closes the pipe) rather than killing the reaper before it could clean up.
    return subprocess.Popen([sys.executable, "-m", "apt_core.runtime.ray_reaper", str(os.getpid())], stdin=subprocess.PIPE,
                            env=env, start_new_session=True)


def _stop_reaper(reaper: subprocess.Popen | None) -> None:
    if reaper is None:
        return
    try:
        reaper.stdin.close()  # end of file: "the session is over, sweep and exit"
        reaper.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()
        reaper.wait()


def run_units_on_ray(units: Sequence[Unit], cache, cfg: EngineConfig, data_by_scenario=None,
                     progress: ProgressFn | None = None) -> list[dict]:
    """Run ``units`` as Ray tasks that write into ``cache``, the fits in batches, one task per batch
    (:func:`apt_core.experiments.ray_tasks.plan_tasks`); returns one summary per unit (unit, label,
    attack, seconds, cpu_seconds, cached, pid, task, task_units).

    ``data_by_scenario(scenario)``: the loaded data set of a scenario (None: each task loads
    it); it is put in Ray's object store once per data set and shared by the tasks.
    ``progress(fraction, stage)`` returning False cancels (the running tasks are killed).
    """
    from apt_core.experiments.ray_tasks import plan_tasks, run_task
    from apt_core.runtime.devices import resolve_device

    if not units:
        return []
    with ray_session(cfg) as ray:
        tasks = plan_tasks(units, workers=int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(run_task)
        ref_of: dict[tuple, object] = {}  # a unit's ident -> the task computing it
        by_ref: dict[object, object] = {}
        data_refs: dict[int, object] = {}
        for task in tasks:
            args, index = [], []
            for u in task.units:
                data = data_by_scenario(u.scenario) if data_by_scenario is not None else None
                if data is not None and id(data) not in data_refs:
                    data_refs[id(data)] = ray.put(data)
                index.append(None if data is None else len(args))
                if data is not None:
                    args.append(data_refs[id(data)])
            needs = list(dict.fromkeys(ref_of[u.needs] for u in task.units if u.needs is not None and u.needs in ref_of))
            cuda = resolve_device(task.units[0].scenario.device).type == "cuda"
            # on a GPU a batch fills the device (the local engine's rule); a single unit takes its share
            gpus = (1.0 if task.fits and len(task.units) > 1 else cfg.gpu_share) if cuda else 0
            ref = remote.options(num_cpus=1, num_gpus=gpus, max_retries=cfg.max_retries, retry_exceptions=False,
                                 name=task.name).remote(list(task.units), str(cache.root), cache.store_models, index,
                                                        *args, *needs)
            for u in task.units:
                ref_of[u.ident] = ref
            by_ref[ref] = task
        pending = list(by_ref)
        results, total = [], len(units)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    task = by_ref[ref]
                    rows = _get(ray, ref, f"{task.name[4:]} ({task.units[0].label})")
                    results += [dict(row, label=u.label, attack=u.scenario.attack) for u, row in zip(task.units, rows)]
                if progress is not None and progress(len(results) / total, f"[Ray, {total - len(results)} units left] "
                                                     + (by_ref[done[-1]].name[4:] if done else "")) is False:
                    raise CancelledError("cancelled while the Ray tasks ran")
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or gone: nothing to stop
                    pass
            raise
    return results


def _get(ray, ref, label: str) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, AptError):
            raise cause from None  # a user-fixable error: the same one-line message as the local engine
        raise EngineError(f"{label} failed on Ray: {exc}") from None
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.TaskUnschedulableError) as exc:
        raise EngineError(f"{label}: its worker died on every one of {MAX_RETRIES + 1} tries ({type(exc).__name__})") from None


def fill_cache(scenarios: Sequence[tuple[Scenario, str]], cache, cfg: EngineConfig, data_by_scenario=None,
               progress: ProgressFn | None = None, detections: Sequence[tuple[Scenario, str]] = ()) -> list[dict]:
    """Compute every unit of ``scenarios`` that the cache lacks, on the engine of ``cfg``.

    Scenarios the cache already answers in full are skipped without starting anything (a
    repeated command costs no Ray start).  With the local engine the fits are computed here in
    batches (:func:`apt_core.experiments.batching.compute_units`: the seeds, points and
    positions that share a data set train as one MF batch) and ``[]`` is returned; without a
    cache the caller's sequential ``run_scenario`` pass computes one by one.  With Ray the same
    batches run one per task (:func:`run_units_on_ray`) and each unit's summary is returned.
    """
    cfg.validate()
    if cfg.engine == "local" and cache is None:
        return []
    if cache is None:
        raise ConfigError("--engine ray hands results over through the artifact cache: drop --no-cache")
    def data_of(s: Scenario):
        return data_by_scenario(s) if data_by_scenario is not None else None

    todo = [(s, label) for s, label in scenarios if not fully_cached(s, cache, data_of(s))]
    if cfg.engine == "local":
        from apt_core.experiments.batching import compute_units

        compute_units(plan_units(todo), cache, data_of if data_by_scenario is not None else None, progress)
        return []
    todo_detections = [(s, label) for s, label in detections if not detection_cached(s, cache, data_of(s))]
    return run_units_on_ray(plan_units(todo, todo_detections), cache, cfg, data_by_scenario, progress)


def data_loader(data=None):
    """``scenario -> RatingData``: ``data`` for every scenario when given, else each data set loaded once."""
    from apt_core.data import load_dataset

    memo: dict[tuple, object] = {}

    def load(scenario: Scenario):
        if data is not None:
            return data
        key = (scenario.dataset, scenario.data_dir, scenario.rating_scale)
        if key not in memo:
            memo[key] = load_dataset(scenario.dataset, scenario.data_dir, scale=scenario.rating_scale)
        return memo[key]

    return load


def _answered_by_cache(compute) -> bool:
    """Whether ``compute()`` (a cache-only run) finds everything it needs in the cache."""
    from apt_core.storage.cache import CacheMiss

    try:
        compute()
        return True
    except CacheMiss:
        return False


def fully_cached(scenario: Scenario, cache, data=None) -> bool:
    """Whether ``cache`` answers ``scenario`` in full (nothing would be computed)."""
    from apt_core.experiments.pipeline import run_scenario

    return _answered_by_cache(lambda: run_scenario(scenario, cache=cache, data=data, cache_only=True))


def detection_cached(scenario: Scenario, cache, data=None) -> bool:
    """Whether ``cache`` holds every detector's result on every seed of ``scenario``."""
    from apt_core.experiments.detection_run import run_detection

    return _answered_by_cache(lambda: run_detection(scenario, cache=cache, data=data, cache_only=True, with_stealth=False))


def stage_name(unit: str, attack: str) -> str:
    """The stage a unit's time belongs to, in words (for ``timings.csv`` and its shares)."""
    if unit == STAGE_ORIGIN:
        return "MF on clean data"
    if unit == STAGE_PROFILES:
        return f"attack generation ({attack})"
    if unit == STAGE_ATTACK:
        return "MF on poisoned data"
    if unit == UNIT_DETECTION:
        return "shilling detectors"
    return f"defense {unit}"


def stage_shares(summaries: Sequence[dict]) -> "pd.DataFrame":
    """Task summaries (from :func:`run_units_on_ray`) summed by stage: units, task seconds, CPU
    seconds and each stage's share of the summed task time, largest first."""
    import pandas as pd

    cols = ["stage", "units", "task_seconds", "cpu_seconds", "share"]
    if not summaries:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame([{"stage": stage_name(s["unit"], s.get("attack", "")), "task_seconds": s["seconds"],
                           "cpu_seconds": s["cpu_seconds"]} for s in summaries])
    out = frame.groupby("stage").agg(units=("task_seconds", "size"), task_seconds=("task_seconds", "sum"),
                                     cpu_seconds=("cpu_seconds", "sum")).reset_index()
    total = out["task_seconds"].sum()
    out["share"] = out["task_seconds"] / total if total > 0 else 0.0
    return out.sort_values("task_seconds", ascending=False, ignore_index=True)[cols]

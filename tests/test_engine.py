"""The work units behind ``--engine ray``, checked without Ray: same artifacts as run_scenario, shared units planned
once, a clear error without Ray, and the reaper that keeps a killed driver's Ray processes from living on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apt_core.storage.cache import ArtifactCache
from apt_core.experiments.engine import EngineConfig, EngineError, fill_cache, plan_units
from apt_core.errors import ConfigError
from apt_core.experiments.pipeline import Scenario, compute_unit, run_scenario, scenario_units

ROOT = Path(__file__).resolve().parents[1]


def _base(**kw) -> Scenario:
    return Scenario(**{**dict(dataset="sample", attack="average", targets="unpopular", defenses=("at", "apt"), epochs=2, seeds=2), **kw})


def test_units_write_exactly_what_run_scenario_reads(tmp_path):
    """Every unit computed on its own, in plan order: run_scenario then finds all in the cache, same numbers as a fresh run."""
    scenario = _base()
    cache = ArtifactCache(tmp_path / "c")
    units = plan_units([(scenario, "s")])
    assert [(u.rep, u.unit) for u in units] == scenario_units(scenario)
    for u in units:
        assert compute_unit(u.scenario, u.rep, u.unit, cache) is False  # each computed once, never twice
    cached = run_scenario(scenario, cache=cache, cache_only=True)  # raises CacheMiss if a unit were missing
    fresh = run_scenario(scenario)
    for a, b in zip(fresh.phases, cached.phases):
        assert a.phase == b.phase and a.target_hr == b.target_hr and a.test_hr == b.test_hr
    assert compute_unit(scenario, 0, "apt", cache) is True  # a repeated unit is answered by the cache


def test_plan_shares_units_between_scenarios():
    grid = [(_base(attack="average"), "avg"), (_base(attack="random"), "rnd")]
    erm = [(_base(defenses=("apt",), erm_fraction=f), f"erm {f}") for f in (0.0, 0.1)]
    units = plan_units(grid + erm)
    kinds = [u.unit for u in units]
    # one clean model per seed for everything; profiles and MF-on-poison per attack and seed
    assert kinds.count("origin") == 2 and kinds.count("profiles") == 4 and kinds.count("attack") == 4
    # APT per ERM share (0.05 from the grid, 0.0 and 0.1 from the sweep) and attack; AT only from the grid
    assert kinds.count("apt") == 2 * 2 + 2 * 2 and kinds.count("at") == 4
    idents = {u.ident for u in units}
    assert all(u.needs in idents for u in units if u.unit not in ("origin", "profiles"))
    assert all(u.needs is None for u in units if u.unit in ("origin", "profiles"))
    # no attack: no profiles unit, defenses fit on the clean data with no dependency
    clean = plan_units([(_base(attack="none", defenses=("at",), seeds=1), "clean")])
    assert [u.unit for u in clean] == ["origin", "at"] and clean[1].needs is None


def test_detection_units_read_the_grid_profiles_and_fill_the_detection_cache(tmp_path):
    """reproduce's detection table as units: one per seed, after the profiles it shares with the
    grid, and what the units write answers the detection cache-only."""
    from apt_core.experiments.detection_run import run_detection
    from apt_core.experiments.engine import UNIT_DETECTION, detection_cached
    from apt_core.experiments.ray_tasks import plan_tasks, run_task

    grid = _base(defenses=("at",))
    detect = _base(defenses=("none",))
    units = plan_units([(grid, "grid")], [(detect, "detectors")])
    detection = [u for u in units if u.unit == UNIT_DETECTION]
    assert [u.rep for u in detection] == [0, 1]
    profiles = {u.ident for u in units if u.unit == "profiles"}
    assert len(profiles) == 2 and all(u.needs in profiles for u in detection)  # the grid's own profiles, not new ones
    cache = ArtifactCache(tmp_path / "c")
    assert not detection_cached(detect, cache)
    summaries = [row for task in plan_tasks(units) for row in run_task(list(task.units), str(cache.root), True, [None] * len(task.units))]
    assert [s["cached"] for s in summaries if s["unit"] == UNIT_DETECTION] == [False, False]
    assert detection_cached(detect, cache)
    reader = ArtifactCache(tmp_path / "c")
    run_detection(detect, cache=reader, cache_only=True)
    assert reader.stats.writes == 0


def test_ray_tasks_are_the_local_engines_batches_grouped_per_data_set():
    """On a CPU a Ray task holds the batched defenses' fits on one training data set (they share the
    plain-MF prefix in one process), a defense that does not batch fits alone, the profiles come
    first; and every batch the local engine forms (the same group_fits) lies inside one task."""
    from apt_core.experiments.batching import group_fits
    from apt_core.experiments.ray_tasks import plan_tasks

    scenario = _base(defenses=("at", "apt", "pcmf"), device="cpu")
    units = plan_units([(scenario, "s")], [(scenario, "d")])
    tasks = plan_tasks(units)
    assert [t.name for t in tasks] == [
        "apt:profiles seed 0, sample", "apt:profiles seed 1, sample",
        "apt:batch of 3: at+apt+attack seed 0, sample", "apt:batch of 3: at+apt+attack seed 1, sample",
        "apt:batch of 2: origin seeds 0-1, sample",  # both seeds train on the same clean split
        "apt:pcmf seed 0, sample", "apt:pcmf seed 1, sample",
        "apt:detection seed 0, sample", "apt:detection seed 1, sample"]
    assert sorted(id(u) for t in tasks for u in t.units) == sorted(id(u) for u in units)  # each unit in one task
    task_of = {id(u): i for i, t in enumerate(tasks) for u in t.units}
    fits = [u for u in units if u.unit not in ("profiles", "detection")]
    for batch in group_fits(fits):
        assert len({task_of[id(fits[i])] for i in batch}) == 1


def test_ray_tasks_split_a_one_data_set_sweep_to_keep_the_workers_busy():
    """Three ERM points of APT on one poisoned data set are one batch; with more workers than fit tasks
    the largest task is split (a worker would idle), every fit still in exactly one task."""
    from apt_core.experiments.ray_tasks import plan_tasks

    points = [(_base(defenses=("apt",), seeds=1, erm_fraction=f, device="cpu"), f"erm {f}") for f in (0.0, 0.05, 0.1)]
    units = plan_units(points)

    def fit_tasks(workers):
        return [t for t in plan_tasks(units, workers=workers) if t.fits]

    assert sorted(len(t.units) for t in fit_tasks(None)) == [1, 4]  # the clean model; 3 APT points and plain MF
    assert sorted(len(t.units) for t in fit_tasks(2)) == [1, 4]  # as many tasks as workers already
    split = fit_tasks(3)
    assert sorted(len(t.units) for t in split) == [1, 2, 2]
    assert sorted(id(u) for t in split for u in t.units) == sorted(id(u) for u in units if u.unit != "profiles")


def test_engine_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown engine"):
        EngineConfig(engine="spark").validate()
    with pytest.raises(ConfigError, match="needs --engine ray"):
        EngineConfig(engine="local", address="auto").validate()
    with pytest.raises(ConfigError, match="at least 1"):
        EngineConfig(engine="ray", jobs=0).validate()


def test_ray_engine_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    from apt_core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where it is not installed
    with pytest.raises(EngineError, match=r"pip install 'apt-lab\[ray\]'"):
        fill_cache([(_base(seeds=1), "s")], ArtifactCache(tmp_path / "c"), EngineConfig(engine="ray"))
    rc = main(["sweep", "--param", "attack_size", "--values", "0.01", "--attack", "average", "--epochs", "1",
               "--engine", "ray", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs Ray" in err and "Traceback" not in err
    # without a cache the Ray engine has no way to hand results back: refused before anything starts
    with pytest.raises(ConfigError, match="--no-cache"):
        fill_cache([(_base(seeds=1), "s")], None, EngineConfig(engine="ray"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reaper reads /proc (Linux)")
def test_reaper_kills_the_ray_processes_of_a_killed_driver(tmp_path):
    """A stand-in driver with one Ray-named child and one other child: SIGKILL the driver; the Ray one goes, the other stays."""
    pids = tmp_path / "pids"
    driver = subprocess.Popen(["bash", "-c", f"(exec -a ray::IDLE sleep 60) & echo $! > {pids}; "
                               f"sleep 60 & echo $! >> {pids}; wait"], start_new_session=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    reaper = subprocess.Popen([sys.executable, "-m", "apt_core.runtime.ray_reaper", str(driver.pid)], stdin=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
            time.sleep(0.1)
        ray_child, other_child = (int(p) for p in pids.read_text().split())
        time.sleep(1.5)  # the reaper looks every 0.5 s
        driver.kill()
        driver.wait()
        reaper.wait(timeout=20)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(ray_child):
            time.sleep(0.1)
        assert not _alive(ray_child), "the Ray process outlived its driver"
        assert _alive(other_child), "the reaper touched a process that is not Ray's"
    finally:
        for pid in (locals().get("ray_child"), locals().get("other_child")):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if reaper.poll() is None:
            reaper.kill()

"""``--engine ray`` on a local 2-CPU Ray: same tables as the local engine, answered from the cache the
second time, a worker killed mid-task is retried, a killed driver's rerun picks up the finished units and
leaves no Ray process behind.  One Ray instance serves the module (a start costs seconds)."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from apt_core.runtime.ray_reaper import descendants as _descendants
from proc_support import busy_workers, kill_leftovers, survivors

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install -e '.[ray]'")

from apt_core.storage.cache import ArtifactCache  # noqa: E402
from apt_core.experiments.engine import EngineConfig, fill_cache, ray_session  # noqa: E402
from apt_core.experiments.pipeline import Scenario, run_scenario  # noqa: E402
from apt_core.reporting.reproduce import ReproduceConfig, reproduce  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LINUX = Path("/proc/self/stat").exists()
TABLES = ("table2_target_hr.csv", "table3_test_hr.csv", "per_seed.csv", "fig2_attack_size.csv", "fig3_erm_fraction.csv", "detection.csv")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for the module, through the engine's own session (reaper included)."""
    with ray_session(EngineConfig(engine="ray", jobs=2)) as r:
        yield r


def _quick(tmp_path: Path, name: str, **kw) -> ReproduceConfig:
    """--quick on one attack and one target set with two-point sweeps: every kind of unit (origin, fake
    profiles, attack, each paper defense, the two sweeps, detection) still runs on both engines; the
    full quick grid (2 attacks x 2 target sets, 3-point sweeps) ran the same code paths about 3 times over."""
    return ReproduceConfig.quick_config(out=str(tmp_path / name), attacks=("average",), target_sets=("unpopular",),
                                        attack_sizes=(0.01, 0.03), erm_fractions=(0.0, 0.05), **kw)


def test_reproduce_on_ray_writes_the_local_tables_then_answers_from_the_cache(tmp_path, local_ray):
    reproduce(_quick(tmp_path, "local"), cache=ArtifactCache(tmp_path / "c-local"))
    cache = ArtifactCache(tmp_path / "c-ray")
    on_ray = reproduce(_quick(tmp_path, "ray", engine="ray"), cache=cache)
    # Every artifact came from a Ray task: this process wrote none of them, it only read them back.
    assert cache.stats.writes == 0 and on_ray.cache_hits > 0
    for name in TABLES:
        a = pd.read_csv(tmp_path / "local" / name)
        b = pd.read_csv(tmp_path / "ray" / name)
        keep = [c for c in a.columns if c != "seconds"]  # fit and detector times are measurements, everything else must be equal
        pd.testing.assert_frame_equal(a[keep], b[keep], obj=name)
    assert (tmp_path / "local" / "table2_target_hr.md").read_text() == (tmp_path / "ray" / "table2_target_hr.md").read_text()
    # Where the time went: one timing row per computed unit, summed by stage in the report.
    timings = pd.read_csv(tmp_path / "ray" / "timings.csv")
    assert len(timings) == len(on_ray.unit_timings) > 0 and (timings["cpu_seconds"] >= 0).all()
    assert {"origin", "profiles", "attack", "apt", "detection"} <= set(timings["unit"])  # the detectors ran on Ray too
    # Ray ran batches, one task each: a seed's AT, APT, APT-rand and plain MF on one poisoned data set
    # (with Fig. 3's APT points on it) in one task, so fewer tasks than units (a task of n units has n rows).
    n_tasks = round((1 / timings["task_units"]).sum())
    apt_tasks = timings[timings["unit"] == "apt"]
    assert n_tasks < len(timings) and (apt_tasks["task_units"] > 1).all()
    assert set(timings[timings["task"].isin(apt_tasks["task"])]["unit"]) >= {"at", "apt", "attack"}
    assert "## Time by stage" in (tmp_path / "ray" / "report.md").read_text()
    assert not (tmp_path / "local" / "timings.csv").exists()
    # Again: every scenario is answered by the cache, so no task is even planned.
    again = ArtifactCache(tmp_path / "c-ray")
    res = reproduce(_quick(tmp_path, "ray2", engine="ray"), cache=again)
    assert again.stats.misses == 0 and again.stats.writes == 0 and res.unit_timings == []
    pd.testing.assert_frame_equal(res.table2, on_ray.table2)


@pytest.mark.skipif(not LINUX, reason="finds the worker through /proc")
def test_a_worker_killed_mid_batch_is_retried_and_keeps_its_finished_members(tmp_path, local_ray):
    """One Ray task fits AT, APT and plain MF on one seed's poisoned data (a batch: AT first, its
    warm-up is the shortest plain-MF prefix).  Its worker is killed once AT's result is written,
    while APT trains: Ray reruns the task on a live worker, which reads AT from the cache (same file,
    untouched) and fits only APT; the cache then answers the scenario as a fresh one-by-one run."""
    scenario = Scenario(dataset="sample", attack="average", targets="unpopular", defenses=("at", "apt"), epochs=30, seeds=1)
    cache = ArtifactCache(tmp_path / "c")
    # The clean model, the profiles and plain MF on the poisoned data first (local engine), so that
    # the only evaluations the Ray run writes are the batch's own.
    fill_cache([(dataclasses.replace(scenario, defenses=("none",)), "prefill")], cache, EngineConfig("local"))
    before = set((tmp_path / "c" / "eval").rglob("*.pt"))
    killed: list[int] = []
    first: dict[Path, int] = {}
    stop = threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            written = set((tmp_path / "c" / "eval").rglob("*.pt")) - before
            busy = busy_workers(os.getpid(), "apt")
            if written and busy:  # AT's result is in the cache, APT is training: kill the batch's worker
                first.update({p: p.stat().st_mtime_ns for p in written})
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        results = fill_cache([(scenario, "kill test")], cache, EngineConfig(engine="ray"))
    finally:
        stop.set()
        thread.join()
    assert killed, "the batch's worker was never seen busy after AT's result was written: nothing was killed"
    rows = {r["unit"]: r for r in results}
    # one task held the three fits, and its rerun ran on another worker
    assert rows["at"]["task"] == rows["apt"]["task"] == rows["attack"]["task"] and rows["at"]["task_units"] == 3
    assert rows["apt"]["pid"] != killed[0] and rows["at"]["pid"] == rows["apt"]["pid"]
    # the rerun read AT's result (written by the killed try) instead of fitting it again; APT it fitted
    assert rows["at"]["cached"] and rows["attack"]["cached"] and not rows["apt"]["cached"]
    assert len(first) == 1 and all(p.stat().st_mtime_ns == t for p, t in first.items())
    cached = run_scenario(scenario, cache=cache, cache_only=True)  # complete, despite the kill
    fresh = run_scenario(scenario)
    for a, b in zip(fresh.phases, cached.phases):
        assert (a.phase, a.target_hr, a.test_hr) == (b.phase, b.target_hr, b.test_hr)


@pytest.mark.skipif(not LINUX, reason="lists the driver's processes through /proc")
def test_killed_driver_leaves_no_ray_process_and_its_rerun_uses_the_finished_units(tmp_path, local_ray):
    cache_dir = tmp_path / "c"
    env = dict(os.environ, PYTHONPATH=str(ROOT), APT_HISTORY_DB=str(tmp_path / "h.sqlite"))
    cmd = [sys.executable, "-m", "apt_core", "reproduce", "--quick", "--engine", "ray", "--jobs", "2", "--no-progress",
           "--no-history", "--no-figures", "--out", str(tmp_path / "out"), "--cache-dir", str(cache_dir), "--epochs", "40",
           "--attacks", "average", "--targets", "unpopular", "--defense", "at,apt"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            seen |= _descendants(proc.pid)
            evals = list((cache_dir / "eval").rglob("*.pt")) if (cache_dir / "eval").exists() else []
            if evals and busy_workers(proc.pid):
                break  # some units finished, others are running: the worst moment to die
            assert proc.poll() is None, f"reproduce ended early: {proc.stderr.read().decode()[-2000:]}"
            time.sleep(0.1)
        else:
            pytest.fail("no unit finished in time")
        seen |= _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in survivors(seen, 20)}
        assert not left, f"process(es) outlived the killed driver: {left}"
    finally:
        kill_leftovers(proc, seen)
    finished = {p: p.stat().st_mtime_ns for p in cache_dir.rglob("*.pt")}
    assert finished
    cache = ArtifactCache(cache_dir)
    cfg = ReproduceConfig.quick_config(out=str(tmp_path / "out2"), engine="ray", epochs=40, attacks=("average",),
                                       target_sets=("unpopular",), defenses=("at", "apt"))
    cfg.figures = False
    res = reproduce(cfg, cache=cache)
    # Every unit finished before the kill was read, not recomputed: its file is untouched.
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert res.cache_hits >= len([p for p in finished if p.parent.parent.name == "eval"])
    measured = res.table2[res.table2["phase"].isin(["origin", "attack", "at", "apt"])]
    assert measured["mean"].notna().all()

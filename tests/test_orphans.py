"""No orphans, ever (issue 15): ``reproduce --engine ray --jobs 2`` leaves no process behind when its
parent gets SIGTERM (it unwinds, cancels the tasks and shuts Ray down).  SIGKILL, where nothing unwinds
and the reaper cleans up, is tested with the rerun in test_ray_engine.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apt_core.runtime.ray_reaper import descendants as _descendants
from proc_support import busy_workers, kill_leftovers, survivors

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to list child processes")
pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install -e '.[ray]'")


@pytest.mark.parametrize("sig", [signal.SIGTERM], ids=["SIGTERM"])
def test_reproduce_workers_die_with_their_parent(tmp_path, sig):
    env = dict(os.environ, APT_CACHE_DIR=str(tmp_path / "root"), APT_HISTORY_DB=str(tmp_path / "h.sqlite"),
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "apt_core", "reproduce", "--quick", "--engine", "ray", "--jobs", "2", "--no-progress",
           "--no-history", "--no-figures", "--out", str(tmp_path / "out"), "--epochs", "20"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 300  # a Ray start on a busy 2-core machine takes tens of seconds
        while time.monotonic() < deadline:
            seen |= _descendants(proc.pid)
            if busy_workers(proc.pid):
                break
            assert proc.poll() is None, f"reproduce ended before its workers started: {proc.stderr.read().decode()[-2000:]}"
            time.sleep(0.1)
        else:
            pytest.fail("the worker processes never started")
        time.sleep(1.0)  # let them get to work
        seen |= _descendants(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        left = survivors(seen, 10)
        assert not left, f"{len(left)} process(es) outlived the parent: {left}"
    finally:
        kill_leftovers(proc, seen)

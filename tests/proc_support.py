"""What the process tests share (Linux /proc): our Ray workers under a process, waiting for
processes to go, and killing what a failed test leaves behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from apt_core.runtime.ray_reaper import alive, descendants  # the reaper's own walk of /proc


def busy_workers(root: int, unit: str | None = None) -> list[int]:
    """Ray workers under ``root`` running one of our tasks, or only a task that computes ``unit``.

    A task's title is ``ray::apt:[batch of N: ]STAGE+STAGE seed(s) ...`` (apt_core.experiments.ray_tasks.task_name).
    """
    stage = rb"(?:batch of \d+: )?(?:[\w-]+\+)*" + re.escape(unit.encode()) + rb"(?=[+ ])" if unit else b""
    pattern = re.compile(rb"^ray::apt:" + stage)
    found = []
    for pid in descendants(root):
        try:
            if pattern.match(Path(f"/proc/{pid}/cmdline").read_bytes()):
                found.append(pid)
        except OSError:
            pass
    return found


def survivors(pids: set[int], seconds: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``seconds`` for them to go."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def kill_leftovers(proc: subprocess.Popen, pids: set[int]) -> None:
    """A test's cleanup: ``proc`` and every process of ``pids`` still alive, killed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def import_probe(*modules: str) -> str:
    """A ``python -c`` script that runs ``python -m apt_core ARGS`` and then writes on stderr
    whether each of ``modules`` was imported, e.g. ``TORCH=False PANDAS=False`` (the start-up
    tests' check that a command never imports them: by import, not by time)."""
    flags = " ".join(f"{m.upper()}=%s" for m in modules)
    loaded = ", ".join(f"{m!r} in sys.modules" for m in modules)
    return ("import runpy, sys\n"
            "sys.argv = ['apt_core'] + sys.argv[1:]\n"
            "try:\n"
            "    runpy.run_module('apt_core', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            f"sys.stderr.write('\\n{flags}' % ({loaded},))\n")

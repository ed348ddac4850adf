"""Kill a local Ray instance's processes once the process that started it is gone.

``python -m apt_core.runtime.ray_reaper DRIVER_PID``, started by :func:`apt_core.experiments.engine.ray_session`
with a pipe on its standard input.  Why it exists: when the driver of a local Ray instance
is killed (SIGKILL, the OOM killer, a closed terminal), Ray's GCS server, raylet and
workers die with it, but its dashboard and runtime-env agents (Ray 2.x) stay behind for
good, about 100 MB each.  APT Lab promises that nothing it starts outlives it.

Every half second the reaper records the driver's descendants that belong to Ray (their
command line names Ray; a start time guards against a reused pid).  When the pipe reaches
end of file (the driver closed it after ``ray.shutdown()``, or died) or the driver's pid is
gone, it sends SIGKILL to every recorded process still alive, then exits.  It ignores
SIGINT (a Ctrl-C goes to the driver, which shuts Ray down first) and touches nothing it
did not see descend from the driver.  Linux only (``/proc``); elsewhere it just waits.
"""
from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

POLL_SECONDS = 0.5
RAY_MARKERS = (b"ray::", b"/ray/", b"raylet", b"gcs_server", b"ray.")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has exited: only its entry waits to be reaped)."""
    return _stat(pid) is not None


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    return children


def descendants(root: int) -> set[int]:
    children = _children_map()
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def is_ray_process(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(m in cmd for m in RAY_MARKERS)


def reap(driver: int, stream=None, poll: float = POLL_SECONDS) -> int:
    """Watch ``driver`` until ``stream`` ends or the driver is gone; kill what was recorded; return the count."""
    stream = sys.stdin if stream is None else stream
    me = os.getpid()
    seen: dict[int, int] = {}
    linux = Path("/proc/self/stat").exists()
    fd = stream.fileno()
    while True:
        if linux:
            for pid in descendants(driver):
                if pid != me and pid not in seen and is_ray_process(pid):
                    st = _stat(pid)
                    if st is not None:
                        seen[pid] = st[1]
        ready, _, _ = select.select([fd], [], [], poll)
        if ready and not os.read(fd, 4096):
            break  # end of file: the session is over (or the driver died)
        if linux and _stat(driver) is None:
            break
    killed = 0
    for pid, started in seen.items():
        st = _stat(pid)
        if st is not None and st[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

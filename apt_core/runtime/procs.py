"""Child processes that never outlive their parent (``reproduce --jobs N`` and its helpers).

A worker pool's processes each hold a copy of torch (about 460 MB).  If the parent is
killed (SIGKILL, an out-of-memory kill, a closed terminal) they must not stay behind, and a
SIGTERM to the parent must stop them too.  Two guards, both installed in every child by
:func:`die_with_parent` (pass it as the pool's or manager's ``initializer``):

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the child when the thread
  that started it ends.  Only requested when that thread is the parent's main thread (a
  pool started from a short-lived thread would otherwise lose its workers early);
- everywhere: a daemon thread that polls ``os.getppid()`` and ends the child once the
  parent has gone (the child is re-parented, so its parent id changes).

The parent side, :func:`terminate_on_sigterm`, turns SIGTERM into ``KeyboardInterrupt`` so
the pool's cleanup runs (:func:`stop_pool` kills the workers instead of waiting for them).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

PR_SET_PDEATHSIG = 1
#: seconds between the watchdog's looks at the parent
POLL_SECONDS = 0.5


def pdeathsig_wanted() -> bool:
    """Whether children started from the current thread may use PR_SET_PDEATHSIG (see module doc)."""
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _set_pdeathsig() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, poll: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: nobody will read our result; no cleanup to run
        time.sleep(poll)


def die_with_parent(parent_pid: int, use_pdeathsig: bool = False, poll: float = POLL_SECONDS) -> None:
    """Make this (child) process end when ``parent_pid`` ends.  Call first thing in the child."""
    if use_pdeathsig:
        _set_pdeathsig()
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, poll), name="apt-parent-watchdog", daemon=True).start()


def stop_pool(pool) -> None:
    """Stop a ``ProcessPoolExecutor`` now: cancel queued tasks and kill running workers.

    ``shutdown(wait=True)`` would wait for running tasks (minutes of training) to finish.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for p in processes:
        try:
            p.join(timeout=5)
        except (OSError, ValueError, AssertionError, AttributeError):
            pass


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (``finally`` blocks run, pools are stopped)."""


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

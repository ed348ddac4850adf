"""Safe mode for a served dashboard: what a visitor on the network may and may not do.

A plain ``streamlit run app.py`` on a laptop listens on 127.0.0.1 (``.streamlit/config.toml``)
and trusts its one user.  A teacher who serves a class (``--server.address 0.0.0.0``) lets
anyone on the network drive it; safe mode then limits what they can reach:

- data folders only from an allow-list (``APT_LAB_DATA_DIRS``, folders separated by
  ``os.pathsep``; ``APT_DATA_DIR`` is always allowed), never a typed path;
- uploads in one private folder per browser session (see ``pages/_shared/uploads.py``);
- deleting history and heavy runs (several seeds, sweeps) need the presenter password
  (``presenter_password`` in ``.streamlit/secrets.toml`` or ``APT_LAB_PRESENTER_PASSWORD``);
  without a password they are switched off;
- at most ``APT_LAB_MAX_RUNS`` runs at once (default 2); later ones wait in a queue; every
  computation a page starts (the Theory page's simulation too) goes through that queue, with a
  time budget (``APT_LAB_RUN_SECONDS``, default 900) and, where it can be estimated before the
  start, a memory budget (``APT_LAB_RUN_MEMORY_GB``, default 2);
- presenter mode (which hides controls) only after the presenter password, when one is set;
- data-file error messages do not quote the offending field (it could be a line of a
  private file).

Safe mode is on when ``APT_LAB_SAFE_MODE`` is 1/true/on, off when it is 0/false/off, and
otherwise on exactly when the server listens on an address that is not loopback.
This module is pure Python (no Streamlit), so the rules are unit-tested directly.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import re
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

SAFE_ENV = "APT_LAB_SAFE_MODE"
DIRS_ENV = "APT_LAB_DATA_DIRS"
PASSWORD_ENV = "APT_LAB_PRESENTER_PASSWORD"
MAX_RUNS_ENV = "APT_LAB_MAX_RUNS"
DEFAULT_MAX_RUNS = 2

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def is_loopback(address: str | None) -> bool:
    """True for 127.x, ::1 and ``localhost``; False for an empty address (every interface)."""
    if not address:
        return False
    address = address.strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def safe_mode_enabled(server_address: str | None, env: dict | None = None) -> bool:
    """The environment's explicit choice, else on when the server is reachable from other machines."""
    env = os.environ if env is None else env
    value = str(env.get(SAFE_ENV, "")).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return not is_loopback(server_address)


def allowed_data_dirs(env: dict | None = None) -> list[Path]:
    """The configured allow-list (``APT_LAB_DATA_DIRS`` plus ``APT_DATA_DIR``), resolved, existing only."""
    env = os.environ if env is None else env
    raw = [p for p in str(env.get(DIRS_ENV, "")).split(os.pathsep) if p.strip()]
    if env.get("APT_DATA_DIR"):
        raw.append(env["APT_DATA_DIR"])
    out: list[Path] = []
    for p in raw:
        path = Path(p).expanduser().resolve()
        if path.is_dir() and path not in out:
            out.append(path)
    return out


def check_data_dir(data_dir: str | None, allowed: list[Path]) -> str | None:
    """``data_dir`` if it is one of ``allowed`` (exactly, after resolving links), else PermissionError."""
    if not data_dir:
        return None
    path = Path(data_dir).expanduser().resolve()
    if path not in allowed:
        raise PermissionError("this server only reads the data folders its operator configured")
    return str(path)


def check_password(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no configured password means nobody is a presenter."""
    if not expected or not given:
        return False
    return hmac.compare_digest(str(given).encode(), str(expected).encode())


# A quoted value as Python's repr writes it: a backslash escapes the next character, so a
# field holding both quote kinds ('it\\'s "x"') is matched whole, not up to its first quote.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
# An absolute path (POSIX or Windows): the folder part is the server's business, not a visitor's.
_ABS_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:\\|/)(?:[^\s,:;'\"()]+[/\\])+(?=[^\s,:;'\"()/\\]*)")


def redact(message: str) -> str:
    """Drop quoted field values (they may be lines of a private file) and the folders of absolute paths.

    ``/srv/class-data/ml-100k/u.data, line 3: ...`` becomes ``u.data, line 3: ...``: the file's
    name and the line stay (the visitor needs them), the server's folder layout does not.
    """
    return _ABS_PATH.sub("", _QUOTED.sub("'…'", message))


@dataclass
class PasswordGate:
    """Presenter-password checks with a lockout: after ``max_failures`` wrong guesses in a row,
    every guess (right or wrong) is refused for ``lockout_s`` seconds, doubling on each further
    lockout.  One gate per server process (the app keeps it in ``st.cache_resource``), so a
    visitor cannot reset it by opening a new session.  ``clock`` is injectable for tests.
    """

    max_failures: int = 5
    lockout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _lockouts: int = field(default=0, init=False)
    _locked_until: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def locked_for(self) -> float:
        """Seconds until guesses are accepted again (0 when they are)."""
        with self._lock:
            return max(0.0, self._locked_until - self.clock())

    def check(self, given: str | None, expected: str | None) -> bool:
        """True for the right password outside a lockout; counts wrong guesses."""
        with self._lock:
            if self.clock() < self._locked_until:
                return False
            if check_password(given, expected):
                self._failures = 0
                return True
            self._failures += 1
            if self._failures >= self.max_failures:
                self._locked_until = self.clock() + self.lockout_s * (2 ** self._lockouts)
                self._lockouts += 1
                self._failures = 0
            return False


class RunSlots:
    """At most ``limit`` runs at once, first come first served; the rest wait in a queue.

    One instance per server process (the app keeps it in ``st.cache_resource``), shared by
    every session's script thread.
    """

    def __init__(self, limit: int = DEFAULT_MAX_RUNS):
        self.limit = max(1, int(limit))
        self._cond = threading.Condition()
        self._running = 0
        self._queue: deque = deque()

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    @contextmanager
    def slot(self, on_wait: Callable[[int], object] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Hold one run slot for the ``with`` body.  While queued, ``on_wait(ahead)`` is called
        every ``poll`` seconds with the number of runs queued before this one; it may raise
        (a cancelled session), which leaves the queue cleanly."""
        me = object()
        with self._cond:
            self._queue.append(me)
        admitted = False
        try:
            while True:
                with self._cond:
                    if self._queue[0] is me and self._running < self.limit:
                        self._queue.popleft()
                        self._running += 1
                        admitted = True
                        self._cond.notify_all()
                        break
                    ahead = self._queue.index(me)
                if on_wait is not None:
                    on_wait(ahead)
                with self._cond:
                    self._cond.wait(timeout=poll)
            yield
        finally:
            with self._cond:
                if admitted:
                    self._running -= 1
                elif me in self._queue:
                    self._queue.remove(me)
                self._cond.notify_all()


def max_runs(env: dict | None = None) -> int:
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get(MAX_RUNS_ENV, DEFAULT_MAX_RUNS)))
    except ValueError:
        return DEFAULT_MAX_RUNS


RUN_SECONDS_ENV = "APT_LAB_RUN_SECONDS"
RUN_MEMORY_ENV = "APT_LAB_RUN_MEMORY_GB"


@dataclass(frozen=True)
class RunBudget:
    """What one run of a served dashboard may use: ``seconds`` of wall time (a run past it stops
    at its next progress update with a message) and ``memory_bytes`` (a computation whose memory
    can be estimated before it starts, the Theory page's simulation, is refused above it).
    Defaults for the machine this was measured on (2 cores, 24 GB, ``APT_LAB_MAX_RUNS`` = 2 at
    once): 15 minutes and 2 GB."""

    seconds: float = 900.0
    memory_bytes: int = 2 * 2**30


def run_budget(env: dict | None = None) -> RunBudget:
    """The budget from ``APT_LAB_RUN_SECONDS`` and ``APT_LAB_RUN_MEMORY_GB`` (a malformed or
    non-positive value keeps the default)."""
    env = os.environ if env is None else env
    default = RunBudget()

    def positive(name: str, fallback: float) -> float:
        try:
            value = float(env.get(name, fallback))
        except ValueError:
            return fallback
        return value if value > 0 and value == value and value != float("inf") else fallback

    return RunBudget(positive(RUN_SECONDS_ENV, default.seconds),
                     int(positive(RUN_MEMORY_ENV, default.memory_bytes / 2**30) * 2**30))

"""Exceptions with messages meant for people (CLI and dashboard show them verbatim)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class AptError(Exception):
    """Base class for every error APT Lab reports to a user instead of a traceback."""


class DataError(AptError):
    """A data file or data-set name could not be used (malformed file, unknown name...)."""


class ConfigError(AptError, ValueError):
    """An argument is out of range or names something that does not exist."""


class CancelledError(AptError):
    """A long run was cancelled by its caller (progress callback returned False)."""


class AptWarning(UserWarning):
    """Something a user should know that does not stop the work (duplicate rows, a cache that
    cannot be written...).  The CLI prints each as one ``warning: ...`` line on stderr; the
    dashboard shows it beside the result."""


_collectors = threading.local()


def warn(message: str) -> None:
    """Issue an :class:`AptWarning` (the message names its file or run, so distinct ones all show).

    Besides Python's warning (the CLI prints it as ``warning: ...``), the message goes to
    every :func:`collect_warnings` block open in this thread (the dashboard shows those).
    """
    import warnings

    for notes in getattr(_collectors, "stack", ()):
        if message not in notes:
            notes.append(message)
    warnings.warn(message, AptWarning, stacklevel=3)


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Collect the messages :func:`warn` issues in this thread inside the block.

    Thread-local, unlike ``warnings.catch_warnings``: concurrent dashboard sessions each get
    their own messages.
    """
    stack = getattr(_collectors, "stack", None)
    if stack is None:
        stack = _collectors.stack = []
    notes: list[str] = []
    stack.append(notes)
    try:
        yield notes
    finally:
        stack.remove(notes)


class DivergedError(AptError):
    """Training diverged: a loss, a factor or a score is NaN or infinite.

    Raised instead of evaluating such a model: ranks count strictly higher scores and NaN
    never compares higher, so a NaN model would otherwise rank every item first (HR = 1.0).
    """


class BudgetError(AptError):
    """A computation would exceed, or ran past, the budget a served dashboard gives each run
    (time: ``APT_LAB_RUN_SECONDS``, memory: ``APT_LAB_RUN_MEMORY_GB``; apt_core.runtime.serving)."""


_deadlines = threading.local()


@contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Inside the block, :func:`check_deadline` raises :class:`BudgetError` once ``seconds`` have
    passed (None: no limit).  Thread-local: each dashboard session's script thread has its own.
    Long loops call :func:`check_deadline` (a cooperative limit: no thread is killed)."""
    import time

    stack = getattr(_deadlines, "stack", None)
    if stack is None:
        stack = _deadlines.stack = []
    stack.append((None if seconds is None else time.monotonic() + seconds, seconds, what))
    try:
        yield
    finally:
        stack.pop()


def check_deadline() -> None:
    """Raise :class:`BudgetError` when an enclosing :func:`deadline` has passed (cheap: call it often)."""
    import time

    for end, seconds, what in getattr(_deadlines, "stack", ()):
        if end is not None and time.monotonic() > end:
            raise BudgetError(f"{what} stopped after {seconds:g} s: this server's time budget per run "
                              "(APT_LAB_RUN_SECONDS); choose smaller settings")

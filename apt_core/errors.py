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

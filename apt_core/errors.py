"""Exceptions with messages meant for people (CLI and dashboard show them verbatim)."""
from __future__ import annotations


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


def warn(message: str) -> None:
    """Issue an :class:`AptWarning` (the message names its file or run, so distinct ones all show)."""
    import warnings

    warnings.warn(message, AptWarning, stacklevel=3)

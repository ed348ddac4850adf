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


class DivergedError(AptError):
    """Training diverged: a loss, a factor or a score is NaN or infinite.

    Raised instead of evaluating such a model: ranks count strictly higher scores and NaN
    never compares higher, so a NaN model would otherwise rank every item first (HR = 1.0).
    """

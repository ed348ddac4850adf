"""Where APT Lab keeps files on disk: one cache root for downloads, artifacts and the run history.

The bottom layer (standard library only), so the data loaders, the artifact cache and the run
history can all ask for the same folder without importing each other.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """``$APT_CACHE_DIR`` or ``~/.cache/apt_lab`` (downloads, ``artifacts/`` and ``history.sqlite``)."""
    return Path(os.environ.get("APT_CACHE_DIR", Path.home() / ".cache" / "apt_lab")).expanduser()


def default_history_path() -> Path:
    """``$APT_HISTORY_DB`` or ``<cache root>/history.sqlite``."""
    env = os.environ.get("APT_HISTORY_DB")
    return Path(env).expanduser() if env else default_cache_root() / "history.sqlite"

"""APT Lab core library: poisoning attacks and defenses for matrix-factorisation recommenders.

Importing ``apt_core`` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the caller chose a policy)
*before* torch is imported anywhere through this package.  Torch's OpenMP workers otherwise
spin while idle, and on a small machine shared with Streamlit or pytest that slows training
50-150x.  The thread count is chosen in :func:`apt_core.runtime.devices.configure_threads`.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from apt_core.errors import AptError, DataError  # noqa: E402

__all__ = ["AptError", "DataError", "__version__"]

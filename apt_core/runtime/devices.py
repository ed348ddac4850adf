"""Device and thread selection, shared by the library, the CLI and the app."""
from __future__ import annotations

import os

import torch

from apt_core.errors import ConfigError

_DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda`` into a torch device, failing clearly if CUDA is absent."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA device is available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(_DEVICE_CHOICES)}")


def configure_threads(n_threads: int | None = None) -> int:
    """Set torch's intra-op thread count.

    The MF workloads here are many small kernels; beyond two threads the synchronisation
    costs more than it saves, so the default is ``min(2, cpu count)`` unless
    ``APT_NUM_THREADS`` says otherwise.
    """
    if n_threads is None:
        env = os.environ.get("APT_NUM_THREADS")
        n_threads = int(env) if env else min(2, os.cpu_count() or 1)
    n_threads = max(1, int(n_threads))
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    return n_threads


def device_label(device: torch.device) -> str:
    """Human-readable badge text, e.g. ``CPU (2 threads)`` or ``CUDA (NVIDIA H100)``."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"

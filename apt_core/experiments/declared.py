"""Every registered method's declared parameters as plain data, readable without importing the methods.

``python -m apt_core params`` lists the parameters of every attack, defense and detector.  The
classes live in modules that import torch (seconds and hundreds of MB to start), while what
``params`` prints is plain data.  So :func:`declared_methods` keeps that data as JSON under the
cache root, named by a SHA-256 of apt_core's source files: the first call after an edit of
apt_core reads the registries (importing torch) and writes the copy; every later call reads the
copy and imports no model code.  A copy that cannot be read or written is ignored (the
registries answer), and a process that has already imported the registries reads them directly
(so a method a plug-in registered there is listed too).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

#: the package whose source names the copy (this file's grandparent folder)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
#: the registries :func:`live_declarations` reads, in the order ``params`` lists them
REGISTRY_MODULES = ("apt_core.attacks", "apt_core.defenses", "apt_core.detection")


def source_digest(root: Path | None = None) -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file under ``root`` (default:
    apt_core's own folder; a few milliseconds)."""
    root = Path(root or PACKAGE_ROOT)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def live_declarations() -> dict[str, dict]:
    """``name -> {"kind", "summary", "params"}`` from the registries (imports every method), as
    plain JSON data: exactly what a copy reads back."""
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.detection import DETECTORS
    from apt_core.params import describe_params

    methods = {**{n: ("attack", c) for n, c in ATTACKS.items()}, **{n: ("defense", c) for n, c in DEFENSES.items()},
               **{n: ("detector", c) for n, c in DETECTORS.items()}}
    data = {n: {"kind": kind, "summary": cls.summary, "params": describe_params(cls)} for n, (kind, cls) in methods.items()}
    return json.loads(json.dumps(data, default=str))


def declared_methods(folder: Path | str | None = None) -> dict[str, dict]:
    """Every registered method's declaration (:func:`live_declarations`), from the copy kept for this
    source in ``folder`` (default ``<cache root>/declared/``) when there is one (see the module docstring)."""
    if all(m in sys.modules for m in REGISTRY_MODULES):
        return live_declarations()
    from apt_core.storage.paths import default_cache_root

    path = (Path(folder) if folder is not None else default_cache_root() / "declared") / f"{source_digest()}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    data = live_declarations()
    _keep(path, data)
    return data


def _keep(path: Path, data: dict) -> None:
    """Write the copy and remove those of older sources (one file per source; a failure is ignored)."""
    from apt_core.storage.outputs import atomic_write_bytes

    try:
        atomic_write_bytes(path, json.dumps(data, sort_keys=False).encode("utf-8"))
        for old in path.parent.glob("*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass

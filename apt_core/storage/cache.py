"""On-disk artifact cache keyed by content hashes: nobody waits twice for the same result.

Layout: ``<root>/<kind>/<key[:2]>/<key>.pt`` with ``root`` = ``$APT_CACHE_DIR/artifacts``
(default ``~/.cache/apt_lab/artifacts``; the data-download cache and the run history live
beside it).  Kinds written by :func:`apt_core.experiments.pipeline.run_scenario`:

``fake``   fake profiles of one attack run (users, items, ratings arrays);
``model``  a fitted recommender: its ``state_dict()`` (tensors only) + class name, the fit
           time and the defense's diagnostics -- only for the models that are kept (the
           undefended MF models, those a caller asks for, every one with ``store_models``);
``eval``   the evaluation of a model on one target set: rank arrays and predicted ratings,
           the fit time and the diagnostics the pages read.

Why evaluations are cached beside models: a defense's model class may not be rebuildable
from tensors (PCMF and APT are written by others and may hold extra state), while the ranks
are all the metrics need.  So a repeated scenario never even loads a model; the stored
clean model is re-used when only the targets change (random vs unpopular targets share it).

Keys (see :func:`stable_hash`) are SHA-256 of canonical JSON of everything that determines
the artifact, including a fingerprint of the source code that made it and the torch/numpy
versions.  The code is :func:`method_fingerprint`: the method's module and every apt_core
module it imports, read statically at every level of the files
(:mod:`apt_core.storage.import_graph`: imports inside functions count), plus the code of every
registry entry the method names (:func:`entries_named_by`: a detector, a victim).  So editing
an attack, a defense, a detector, a cut, a solver or a victim invalidates the cached outputs
that ran it instead of silently serving stale numbers, and leaves everything else cached.  A
change of the experiment glue that alters what an artifact means bumps ``CACHE_FORMAT`` in
:mod:`apt_core.experiments.scenario`.  docs/architecture.md ("What a cache key covers") and
:mod:`apt_core.experiments.pipeline` document what goes into each key.

Safety:
- atomic writes: bytes go to a temporary file in the same folder, are fsynced, then
  ``os.replace``d onto the final name; a killed run leaves at most a stray ``*.tmp`` file
  (ignored, removed by :meth:`ArtifactCache.clear` once it is 10 minutes old -- a younger
  one may be another run's write in progress), never a half-written entry;
- a write that fails (read-only folder, disk full) is a warning, never a failed run;
- corruption: every entry starts with a magic line and the SHA-256 of its payload; a
  mismatch, a truncated file or a failed load counts as corrupt: the entry is deleted and
  the caller rebuilds it;
- no pickle: payloads are ``torch.save`` of dicts of tensors and plain values, read back
  with ``torch.load(weights_only=True)`` (numpy arrays travel as tagged tensors).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from apt_core.storage.outputs import atomic_write_bytes  # noqa: F401 -- re-exported: internal writers import it from here

if TYPE_CHECKING:
    from apt_core.storage.import_graph import SourceTree

# torch is imported inside the functions that need it, so computing keys (stable_hash) stays
# a light import for processes that only look things up.

MAGIC = b"APTLAB-CACHE-1\n"
#: a temporary file older than this (seconds) was left by a killed writer; younger ones are in flight
TMP_STALE_SECONDS = 600.0
_NP_TAG = "__ndarray__"


def _canonical(obj):
    """JSON-able canonical form: tuples -> lists, numpy scalars -> python, floats by repr."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"ndarray_sha256": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return _canonical(obj.item())
    if isinstance(obj, float):
        # repr is exact and stable; NaN/inf are spelled out so JSON stays valid.
        return repr(obj) if not math.isfinite(obj) else float(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, Path) or type(obj).__name__ == "device":
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return {"__class__": type(obj).__qualname__, **_canonical(asdict(obj))}
    return repr(obj)


def stable_hash(obj) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``: equal descriptions give equal keys in any process."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def array_fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


#: modules whose code shapes every artifact even where the artifact's own code does not import
#: them (the pipeline calls them around every fit: training loop, metrics, devices, data)
ALWAYS_HASHED = ("apt_core.models.mf", "apt_core.evaluation.metrics", "apt_core.runtime.devices", "apt_core.data.dataset")


@dataclass(frozen=True)
class CodeSources:
    """The source an artifact's code consists of (see :func:`code_sources`).

    ``tree``: the scanned apt_core source; ``modules``: the static closure's module names
    (``package``: name -> file);
    ``outside``: module name -> file of a method defined outside apt_core (a plug-in);
    ``texts``: source text of objects that have no file (a notebook's class), or their name.
    """

    tree: "SourceTree"
    modules: tuple[str, ...]
    outside: dict[str, Path]
    texts: tuple[str, ...]

    @property
    def package(self) -> dict[str, Path]:
        return {m: self.tree.path(m) for m in self.modules}

    def fingerprint(self) -> str:
        """SHA-256 over every module's name and file content, then the texts."""
        from apt_core.storage.import_graph import read_file

        h = hashlib.sha256()
        for name in self.modules:
            h.update(name.encode() + b"\0" + self.tree.digest(name).encode())
        for name, path in self.outside.items():
            try:
                digest = read_file(path, name)[1]
            except OSError:
                digest = "<missing>"
            h.update(name.encode() + b"\0" + digest.encode())
        for text in self.texts:
            h.update(b"\0" + text.encode())
        return h.hexdigest()


def _defining_modules(obj) -> list[tuple[str, object]]:
    """``(module name, object)`` for ``obj`` and, for a class, each base class in its MRO."""
    import inspect

    if inspect.ismodule(obj):
        return [(obj.__name__, obj)]
    targets = list(inspect.getmro(obj)) if inspect.isclass(obj) else [obj]
    return [(getattr(t, "__module__", None) or "", t) for t in targets]


def code_sources(*objects, root: Path | None = None) -> CodeSources:
    """The source files whose code ``objects`` (classes, functions, modules) run.

    Read statically (:mod:`apt_core.storage.import_graph`), never from what this process has
    imported, so every process computes the same set: the apt_core modules defining each
    object and its base classes, every apt_core module they import anywhere in their files
    (inside functions too), transitively, the ``__init__`` of every package on the way, and
    :data:`ALWAYS_HASHED`.  An object defined outside apt_core (a plug-in) adds its own file
    (or its source text) and that file's apt_core imports; base classes outside apt_core
    (``abc.ABC``, ``torch.nn.Module``) are left to :func:`environment_fingerprint`.

    ``root``: the folder holding the ``apt_core`` source to read (default: the one this
    process runs); the objects are mapped to it by module name (the tests edit a copy).
    """
    import inspect
    import sys

    from apt_core.storage.import_graph import SourceTree, read_file, resolve

    tree = SourceTree.scan(root)
    modules = tree.files
    seeds = set(ALWAYS_HASHED)
    outside: dict[str, Path] = {}
    texts: list[str] = []
    for obj in objects:
        for i, (name, target) in enumerate(_defining_modules(obj)):
            if name in modules:
                seeds.add(name)
                continue
            if i > 0:
                continue  # a base class from outside apt_core (abc, torch): versioned by the environment
            path = getattr(sys.modules.get(name), "__file__", None)
            if path and str(path).endswith(".py") and Path(path).is_file():
                outside[name] = Path(path)
                try:
                    names = read_file(Path(path), name)[0] or ()
                except OSError:
                    names = ()
                seeds |= resolve(names, modules)
            else:
                try:
                    texts.append(inspect.getsource(target))
                except (OSError, TypeError):
                    texts.append(f"{name}:{getattr(target, '__qualname__', repr(target))}")
    followed, packages = tree.closure(seeds)
    return CodeSources(tree, tuple(sorted(followed | packages)), dict(sorted(outside.items())), tuple(texts))


def code_modules(*objects, root: Path | None = None) -> dict[str, Path]:
    """Module name -> file of every module in :func:`code_sources` of ``objects`` (apt_core and outside)."""
    sources = code_sources(*objects, root=root)
    return {**sources.package, **sources.outside}


def code_fingerprint(*objects, root: Path | None = None) -> str:
    """SHA-256 of the source of :func:`code_sources` of ``objects``: names and file contents.

    So an edit to a detector's file changes the keys of the defenses and detections that run
    it (``remove-cogroup``, APT-trusted, the detection table), while the clean model's key,
    whose code imports no detector, stays.  Cheap once the files are parsed (parses and
    digests are cached per process by modification time and size), and cheaper when asked
    again (:data:`_FINGERPRINTS`, checked against each file's mtime and size).
    """
    from apt_core.storage.import_graph import Stamp

    key = _object_key(objects, root)
    remembered = _FINGERPRINTS.get(key) if key is not None else None
    if remembered is not None and remembered[1].current():
        return remembered[0]
    sources = code_sources(*objects, root=root)
    fingerprint = sources.fingerprint()
    if key is not None and not sources.texts:  # a text (an object without a file) is never remembered
        if len(_FINGERPRINTS) >= 4096:
            _FINGERPRINTS.clear()
        files = tuple(sources.tree.files[m] for m in sources.modules) + tuple(Stamp.of_file(p) for p in sources.outside.values())
        _FINGERPRINTS[key] = (fingerprint, Stamp(files, sources.tree.folders))
    return fingerprint


def _object_key(objects: tuple, root: Path | None) -> tuple | None:
    """What :func:`code_fingerprint` is asked about: each object's module, name and identity (a
    class redefined under the same name is another object); None for an object without a name."""
    key = []
    for obj in objects:
        module = getattr(obj, "__name__", None) if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if not module or not name:
            return None
        key.append((module, name, id(obj)))
    return (None if root is None else str(root), tuple(key))


#: this process's fingerprints by :func:`_object_key`, each with the :class:`~apt_core.storage.import_graph.Stamp`
#: of the files it hashed and of the package folders: given again only while the stamp is current, so an
#: edit while the process runs (the dashboard, a notebook) still changes the key.  Why: a ``reproduce``
#: asks about 200 times; a check stats the 40-80 paths of the closure and the folders instead of walking
#: and stat-ing the whole source (about 120 files) and re-hashing the closure's key.
_FINGERPRINTS: dict[tuple, tuple[str, "Stamp"]] = {}


def entries_named_by(obj) -> list:
    """The registry entries (classes) whose code ``obj`` (an attack, defense or detector) runs by name.

    Two declared ways to name one, so no key builder keeps a list of special cases:

    - a declared parameter whose ``choices`` are a registry's names
      (``Param("detector", ..., choices=DETECTORS.live_names())``): the entry its value names;
    - a ``code_entries()`` method on the object, for a name fixed by the class rather than a
      parameter (``remove-cogroup`` runs the detector ``cogroup``).

    A name the registry does not know is skipped (validation refuses it elsewhere).
    """
    from apt_core.errors import ConfigError

    found: list = []
    for spec in getattr(type(obj), "params", ()):
        registry = getattr(spec.choices, "registry", None)
        value = getattr(obj, spec.name, None)
        if registry is not None and isinstance(value, str):
            try:
                found.append(registry.lookup(value))
            except (ConfigError, KeyError):
                continue
    hook = getattr(obj, "code_entries", None)
    if callable(hook):
        found.extend(hook())
    return found


def method_fingerprint(obj, root: Path | None = None) -> str:
    """:func:`code_fingerprint` of an attack, defense or detector *instance*: its class's code and
    the code of every registry entry it names (:func:`entries_named_by`)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return code_fingerprint(cls, *entries_named_by(obj), root=root)


def environment_fingerprint() -> dict:
    """Library versions that can change numerics (part of every key)."""
    import torch

    return {"torch": torch.__version__.split("+")[0], "numpy": np.__version__}


def to_storable(obj):
    """Convert numpy arrays/scalars to what ``torch.load(weights_only=True)`` accepts; raise TypeError otherwise."""
    import torch

    if isinstance(obj, dict):
        return {str(k): to_storable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_storable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("object arrays cannot be cached")
        return {_NP_TAG: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot cache a value of type {type(obj).__name__}")


def from_storable(obj):
    if isinstance(obj, dict):
        if set(obj) == {_NP_TAG}:
            return obj[_NP_TAG].numpy()
        return {k: from_storable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_storable(v) for v in obj]
    return obj


def storable_subset(d: dict) -> tuple[dict, list[str]]:
    """The entries of ``d`` that can be cached, and the names of those that cannot."""
    keep, dropped = {}, []
    for k, v in d.items():
        try:
            keep[str(k)] = to_storable(v)
        except TypeError:
            dropped.append(str(k))
    return keep, dropped


class CacheMiss(LookupError):
    """Raised by ``run_scenario(..., cache_only=True)`` when an artifact would have to be computed."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    write_errors: int = 0
    by_kind: dict = field(default_factory=dict)
    #: the files of the entries read (a remembered ``reproduce`` checks they are all still there)
    hit_paths: set = field(default_factory=set)

    def count(self, kind: str, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        self.by_kind.setdefault(kind, {}).setdefault(what, 0)
        self.by_kind[kind][what] += 1


class ArtifactCache:
    """Content-addressed artifact cache (see module docstring).  ``root=None``: the default folder.

    ``store_models``: keep every fitted model's tensors (the CLI's ``--keep-models``).  By
    default only the undefended MF models and those a caller asks for are kept; every other
    fit keeps its evaluation, which answers every table and figure
    (:func:`apt_core.experiments.artifacts.keeps_model`).
    """

    def __init__(self, root: str | Path | None = None, store_models: bool = False):
        if root is None:
            from apt_core.storage.paths import default_cache_root

            root = default_cache_root() / "artifacts"
        self.root = Path(root).expanduser()
        self.store_models = store_models
        self.stats = CacheStats()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.pt"

    def load(self, kind: str, key: str) -> dict | None:
        """The stored payload, or None on a miss; a corrupt entry is deleted and reported as a miss."""
        import torch

        path = self.path(kind, key)
        try:
            raw = path.read_bytes()
        except OSError:  # absent, or unreadable (permissions): a miss, never a failed run
            self.stats.count(kind, "misses")
            return None
        try:
            if not raw.startswith(MAGIC):
                raise ValueError("bad header")
            digest, payload = raw[len(MAGIC): len(MAGIC) + 64], raw[len(MAGIC) + 65:]
            if hashlib.sha256(payload).hexdigest().encode() != digest:
                raise ValueError("checksum mismatch")
            obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
            if not isinstance(obj, dict):
                raise ValueError("payload is not a dict")
            out = from_storable(obj)
        except Exception:  # any failure to read back = corrupt: rebuild rather than crash
            self.stats.count(kind, "corrupt")
            self.stats.count(kind, "misses")
            try:
                path.unlink()
            except OSError:
                pass
            return None
        self.stats.count(kind, "hits")
        self.stats.hit_paths.add(str(path))
        return out

    def save(self, kind: str, key: str, payload: dict) -> Path | None:
        """Store ``payload`` (dict of arrays/tensors/plain values) atomically under ``key``.

        The cache is an optimisation: a write that fails (read-only or full folder, a
        concurrent ``cache --clear``) is reported once as a warning and the run carries on;
        returns None then.
        """
        import torch

        buf = io.BytesIO()
        torch.save(to_storable(payload), buf)
        body = buf.getvalue()
        data = MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
        path = self.path(kind, key)
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            self.stats.count(kind, "write_errors")
            if self.stats.write_errors == 1:
                from apt_core.errors import warn

                warn(f"artifact cache {self.root} cannot be written ({exc.strerror or exc}); "
                     "the run goes on without caching (results are not affected)")
            return None
        self.stats.count(kind, "writes")
        return path

    def entries(self) -> list[Path]:
        return sorted(self.root.rglob("*.pt")) if self.root.exists() else []

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.entries())

    def clear(self, stale_after: float = TMP_STALE_SECONDS) -> int:
        """Delete every finished entry; returns the number of entries removed.

        Temporary files are another run's write in progress unless they are older than
        ``stale_after`` seconds (a write takes well under a second; an old one was left by
        a killed run): younger ones are left alone, so clearing during runs never breaks
        them.  An entry that vanishes meanwhile (another clear) is not an error.
        """
        import time

        n = 0
        if not self.root.exists():
            return 0
        now = time.time()
        for p in list(self.root.rglob("*")):
            try:
                if not p.is_file():
                    continue
                if p.suffix == ".pt" or self.root / "reproduce" in p.parents:  # remembered reproduce runs too
                    p.unlink()
                    n += 1
                elif p.name.endswith(".tmp") and now - p.stat().st_mtime > stale_after:
                    p.unlink()
            except FileNotFoundError:
                continue
        return n

"""The static import graph of apt_core's source, read with ``ast`` (never by importing anything).

Two users share this one reader: the code fingerprints in the cache keys
(:func:`apt_core.storage.cache.code_fingerprint`) and the architecture test
(``tests/test_architecture.py``: no import cycle, layers only import downwards).

What counts as an import of module ``m``:

- every ``import`` / ``from ... import`` statement anywhere in ``m``'s file: at module level,
  inside functions and methods, under ``if TYPE_CHECKING`` -- a function-level import is still
  code the module runs (the old fingerprint walked the imported *objects* and missed those);
- ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one, and ``pkg``;
- relative imports are resolved against ``m``'s own package;
- only modules of the package itself (``apt_core``) are kept: third-party code enters the
  cache keys through their versions (:func:`apt_core.storage.cache.environment_fingerprint`).

Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``: :func:`enclosing_packages`
names them; each user decides what to do with them (see :func:`closure`).

Parsing is cached per process by each file's modification time and size, so asking again
(each cache key, each ``reproduce`` scenario) re-reads only the files that changed.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "apt_core"


def default_root() -> Path:
    """The folder that holds the imported ``apt_core`` package (the source this process runs)."""
    return Path(__file__).resolve().parents[2]


def package_modules(root: Path | None = None, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> file of every module of ``package`` under ``root`` (a package is named by its ``__init__``)."""
    return {name: Path(path) for name, (path, _, _) in _listing(str(default_root() if root is None else root), package).items()}


def _listing(root: str, package: str, folders: list | None = None) -> dict[str, tuple[str, int, int]]:
    """Module name -> (file, mtime_ns, size), walked with ``os.scandir`` (pathlib costs 10x more here).

    ``folders``: given, each package folder's ``(path, mtime_ns)`` is appended, stat-ed *before*
    it is listed (a file added during the walk changes the folder's time after the stat)."""
    out: dict[str, tuple[str, int, int]] = {}
    todo = [(os.path.join(root, package), package)]
    while todo:
        folder, dotted = todo.pop()
        try:
            if folders is not None:
                folders.append((folder, os.stat(folder).st_mtime_ns))
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name.isidentifier():
                    todo.append((entry.path, f"{dotted}.{entry.name}"))
            elif entry.name.endswith(".py") and entry.is_file():
                stem = entry.name[:-3]
                if stem == "__init__" or stem.isidentifier():
                    st = entry.stat()
                    out[dotted if stem == "__init__" else f"{dotted}.{stem}"] = (entry.path, st.st_mtime_ns, st.st_size)
    return dict(sorted(out.items()))


def owner(name: str, modules: dict[str, Path] | set[str]) -> str | None:
    """The module that ``name`` (a module, or an attribute of one) lives in, or None outside ``modules``."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def enclosing_packages(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the packages whose ``__init__`` runs before module ``name``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_names(source: str, module: str, is_package: bool, filename: str = "<source>") -> list[str]:
    """Every absolute dotted name ``source`` imports, at any level of the file (SyntaxError if unparsable).

    ``from pkg import a`` gives ``pkg.a`` (the submodule, if ``a`` is one) and ``pkg``.
    """
    names: list[str] = []
    for node in _statements(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names += [f"{target}.{a.name}" for a in node.names if a.name != "*"] + [target]
    return names


def _statements(tree: ast.AST):
    """Every statement of a parsed file, at any depth (an import is a statement, so expressions
    need not be walked: a third of the time of ``ast.walk``)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                todo.extend(c for c in children if isinstance(c, (ast.stmt, ast.excepthandler, getattr(ast, "match_case", ast.stmt))))


@functools.lru_cache(maxsize=4096)
def _read(path: str, mtime_ns: int, size: int, module: str, is_package: bool) -> tuple[tuple[str, ...] | None, str]:
    """(imported names or None when the file does not parse, SHA-256 of its bytes); cached by mtime and size."""
    with open(path, "rb") as fh:
        data = fh.read()
    digest = hashlib.sha256(data).hexdigest()
    try:
        names: tuple[str, ...] | None = tuple(imported_names(data.decode("utf-8"), module, is_package, path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        names = None  # a file being edited: its bytes still enter the fingerprint
    return names, digest


def read_file(path: Path | str, module: str) -> tuple[tuple[str, ...] | None, str]:
    """``(imported names, SHA-256)`` of one source file; ``(None, digest)`` when it does not parse.

    ``module`` is the file's dotted name (relative imports are resolved against it).  Raises
    OSError when the file cannot be read.
    """
    st = os.stat(path)
    return _read(str(path), st.st_mtime_ns, st.st_size, module, os.path.basename(path) == "__init__.py")


def resolve(names: tuple[str, ...] | list[str], modules: dict | set, package: str = PACKAGE) -> set[str]:
    """The modules of ``package`` (among ``modules``) that the imported ``names`` refer to."""
    out: set[str] = set()
    for name in names:
        if name == package or name.startswith(package + "."):
            found = owner(name, modules)
            if found is not None:
                out.add(found)
    return out


@dataclass(frozen=True)
class Stamp:
    """The stat of the files a value was computed from and of the folders holding the package:
    ``files``: (path, mtime_ns, size); ``folders``: (path, mtime_ns).  :meth:`current` is True
    while none of them changed: an edited file has another mtime or size, a module added,
    removed or renamed changes its folder's time (which can change what an import resolves to).
    Used to remember a code fingerprint per process without missing an edit made meanwhile."""

    files: tuple[tuple[str, int, int], ...]
    folders: tuple[tuple[str, int], ...]

    @staticmethod
    def of_file(path: Path | str) -> tuple[str, int, int]:
        try:
            st = os.stat(path)
        except OSError:
            return (str(path), -1, -1)
        return (str(path), st.st_mtime_ns, st.st_size)

    def current(self) -> bool:
        for path, mtime_ns, size in self.files:
            if Stamp.of_file(path) != (path, mtime_ns, size):
                return False
        for path, mtime_ns in self.folders:
            try:
                if os.stat(path).st_mtime_ns != mtime_ns:
                    return False
            except OSError:
                return False
        return True


@dataclass(frozen=True)
class SourceTree:
    """The modules of one package's source as they are on disk now (see :meth:`scan`).

    ``files``: module name -> (file, mtime_ns, size).  A file is parsed only when asked
    (:meth:`imports`), and each parse is cached per process by (file, mtime, size), so a
    closure costs a folder walk plus the files that changed since the last ask.
    """

    root: str
    package: str
    files: dict[str, tuple[str, int, int]]
    #: ``(path, mtime_ns)`` of every package folder, taken before it was listed (empty when not scanned)
    folders: tuple[tuple[str, int], ...] = ()

    @classmethod
    def scan(cls, root: Path | str | None = None, package: str = PACKAGE) -> "SourceTree":
        root = str(default_root() if root is None else root)
        folders: list[tuple[str, int]] = []
        files = _listing(root, package, folders)
        return cls(root, package, files, tuple(sorted(folders)))

    def path(self, module: str) -> Path:
        return Path(self.files[module][0])

    def _read(self, module: str) -> tuple[tuple[str, ...] | None, str]:
        path, mtime_ns, size = self.files[module]
        return _read(path, mtime_ns, size, module, path.endswith("__init__.py"))

    def digest(self, module: str) -> str:
        """SHA-256 of the module's file (``"<missing>"`` when it vanished since the scan)."""
        try:
            return self._read(module)[1]
        except OSError:
            return "<missing>"

    def parses(self, module: str) -> bool:
        try:
            return self._read(module)[0] is not None
        except OSError:
            return False

    def imports(self, module: str) -> set[str]:
        """The package's modules that ``module`` imports anywhere in its file, without itself
        (enclosing packages not added; an unparsable or vanished file imports nothing)."""
        try:
            names = self._read(module)[0] or ()
        except OSError:
            names = ()
        return resolve(names, self.files, self.package) - {module}

    def closure(self, seeds: set[str] | list[str]) -> tuple[set[str], set[str]]:
        """``(followed, packages)``: every module reachable from ``seeds`` through imports, and
        the enclosing packages of those that are not themselves reached.

        Why a package that is only *enclosing* is not followed: importing
        ``apt_core.defenses.none`` runs ``apt_core/defenses/__init__.py``, which imports every
        defense to register it; following that would put every defense (and through APT every
        detector) into the clean model's code.  The ``__init__``'s own text still counts (the
        fingerprint hashes ``packages`` too); a module that *uses* the package (``from
        apt_core.detection import make_detector``) imports it, and so follows it with
        everything it registers.
        """
        followed, packages = _closure(self.root, self.package, tuple(self.files.items()), frozenset(seeds))
        return set(followed), set(packages)


@functools.lru_cache(maxsize=1024)
def _closure(root: str, package: str, files: tuple, seeds: frozenset) -> tuple[frozenset, frozenset]:
    """:meth:`SourceTree.closure`, memoised on every file's (path, mtime, size): a grid or a
    ``reproduce`` asks for the same closures many times while no file changes."""
    tree = SourceTree(root, package, dict(files))
    followed: set[str] = set()
    todo = [s for s in seeds if s in tree.files]
    while todo:
        mod = todo.pop()
        if mod in followed:
            continue
        followed.add(mod)
        todo.extend(t for t in tree.imports(mod) if t not in followed)
    packages = {p for m in followed for p in enclosing_packages(m) if p in tree.files} - followed
    return frozenset(followed), frozenset(packages)


def import_graph(root: Path | None = None, package: str = PACKAGE, strict: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports itself (anywhere in its file), without itself.

    Enclosing packages are *not* added (see :func:`enclosing_packages`).  ``strict``: a file
    that does not parse raises its SyntaxError (the architecture test); otherwise it has no edges.
    """
    tree = SourceTree.scan(root, package)
    if strict:
        for mod in tree.files:
            if not tree.parses(mod):
                ast.parse(tree.path(mod).read_text(), str(tree.path(mod)))  # raises with the location
    return {mod: tree.imports(mod) for mod in tree.files}

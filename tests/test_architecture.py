"""The library's shape: no import cycle inside ``apt_core``, layers only import downwards, no Streamlit.

Imports are read statically (``ast``), at every level of a file -- module level, inside
functions and under ``if TYPE_CHECKING`` -- because a function-level import is still a
dependency: it only hides a cycle until the function runs.  Importing ``a.b.c`` also runs
``a/__init__.py`` and ``a/b/__init__.py``, so a module depends on those packages too -- except
on its own enclosing packages, which Python has already begun to import before the module runs
(``attacks/average.py`` importing ``attacks/_common.py`` is no cycle with ``attacks/__init__.py``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from apt_core.storage.import_graph import enclosing_packages, package_modules
from apt_core.storage.import_graph import import_graph as shared_import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "apt_core"

#: The layers, bottom first.  A module may import its own layer and the layers below it,
#: never one above.  A new module must be placed here (the test says so when it is not).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("apt_core", "apt_core.errors", "apt_core.runtime.devices", "apt_core.registry", "apt_core.params", "apt_core.storage.paths", "apt_core.storage.outputs",
              "apt_core.stats", "apt_core.theory.simulation", "apt_core.reporting.paper", "apt_core.runtime.procs", "apt_core.runtime.serving",
              "apt_core.runtime.ray_reaper", "apt_core.theory.bounds", "apt_core.theory.checks", "apt_core.storage.import_graph")),
    ("data, models and metrics", ("apt_core.data", "apt_core.models", "apt_core.evaluation.metrics")),
    ("attacks and defenses", ("apt_core.influence.solvers", "apt_core.influence.mf", "apt_core.influence.autograd", "apt_core.attacks", "apt_core.defenses", "apt_core.evaluation.stealth", "apt_core.detection")),
    ("experiment", ("apt_core.storage.cache", "apt_core.experiments.scenario", "apt_core.experiments.artifacts", "apt_core.experiments.results",
                    "apt_core.experiments.plan", "apt_core.experiments.preparation", "apt_core.experiments.pipeline", "apt_core.experiments.batching", "apt_core.experiments.sweeps", "apt_core.experiments.demo", "apt_core.experiments.detection_run", "apt_core.benchmarks.stages", "apt_core.benchmarks.batched", "apt_core.benchmarks.victims",
                    "apt_core.experiments.engine", "apt_core.experiments.ray_tasks", "apt_core.benchmarks.scale", "apt_core.experiments.grid", "apt_core.experiments.declared")),
    ("store, reproduce and figures", ("apt_core.storage.history", "apt_core.plots", "apt_core.reporting.report", "apt_core.reporting.reproduce", "apt_core.reporting.replay")),
    ("command line", ("apt_core.cli_args", "apt_core.cli_commands", "apt_core.cli", "apt_core.__main__")),
]


def import_graph() -> dict[str, set[str]]:
    """module -> the apt_core modules it imports (statically, anywhere in the file) and their packages.

    The reader is the library's own (:mod:`apt_core.storage.import_graph`, which the cache
    keys' code fingerprints use too); this test adds the packages each import runs, except the
    module's own enclosing packages.
    """
    files = package_modules(ROOT)
    imports = shared_import_graph(ROOT, strict=True)
    graph: dict[str, set[str]] = {}
    for mod, targets in imports.items():
        own = set(enclosing_packages(mod)) | ({mod} if files[mod].name == "__init__.py" else set())
        runs = {p for t in targets for p in enclosing_packages(t) if p in files and p not in own}
        graph[mod] = (targets | runs) - {mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


#: The role packages' ``__init__`` modules hold only a docstring: they sit in the base layer
#: themselves, while each module inside them keeps its own layer above.
ROLE_PACKAGES = ("apt_core.benchmarks", "apt_core.evaluation", "apt_core.experiments", "apt_core.influence",
                 "apt_core.reporting", "apt_core.runtime", "apt_core.storage", "apt_core.theory")


def _layer_of(module: str) -> int | None:
    if module in ROLE_PACKAGES:
        return 0
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # The package itself ("apt_core", its __init__) matches only itself, not everything below it.
            inside = module.startswith(prefix + ".") and prefix != "apt_core"
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def test_cycle_finder_finds_a_cycle():
    # The checker itself must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_apt_core():
    found = cycles(import_graph())
    assert not found, "import cycles inside apt_core:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package", ROLE_PACKAGES)
def test_role_packages_hold_only_a_docstring(package: str):
    # They sit in the base layer (see _layer_of), which is only true while they import nothing.
    init = ROOT / Path(*package.split(".")) / "__init__.py"
    body = ast.parse(init.read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), \
        f"{init.relative_to(ROOT)} should hold only its docstring"


def test_every_module_has_a_layer():
    missing = sorted(m for m in import_graph() if _layer_of(m) is None)
    assert not missing, f"place these modules in a layer of tests/test_architecture.py: {missing}"


def test_no_module_imports_a_higher_layer():
    bad = []
    for mod, targets in sorted(import_graph().items()):
        mine = _layer_of(mod)
        for target in sorted(targets):
            theirs = _layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{mod} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_apt_core_never_imports_streamlit(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__"):
            names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        else:
            continue
        assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names), f"{path.name} imports streamlit"

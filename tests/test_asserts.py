"""The tests themselves: no assert that cannot fail.

A static scan of tests/ for the shapes of assert that always pass, whatever the code does:
a literal, tuple or generator (``assert (x, "msg")`` is a non-empty tuple), ``... or True``,
``len(x) >= 0``, the same expression on both sides of ``==``, an imported name (``assert
save_upload`` is a function, always truthy) and an attribute of a fresh call result
(``assert Cache(path).load`` is a bound method, always truthy).  Each rule has no
false positives on purpose; subtler vacuous asserts still need a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _why_vacuous(test: ast.expr, imported: set[str] = frozenset()) -> str | None:
    if isinstance(test, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.JoinedStr, ast.GeneratorExp, ast.Lambda)):
        return "a literal, tuple, generator or lambda is always truthy (or always falsy)"
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        if any(isinstance(v, ast.Constant) and v.value for v in test.values):
            return "'or <true constant>' always passes"
    if isinstance(test, ast.Name) and test.id in imported:
        return "an imported module, class or function is always truthy"
    if isinstance(test, ast.Attribute) and isinstance(test.value, ast.Call):
        return "an attribute of a fresh call result is usually a bound method (always truthy): call it or compare it"
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, (ast.Eq, ast.Is, ast.LtE, ast.GtE)) and ast.dump(left) == ast.dump(right):
            return "both sides are the same expression"
        if (isinstance(op, ast.GtE) and isinstance(left, ast.Call) and getattr(left.func, "id", "") == "len"
                and isinstance(right, ast.Constant) and right.value == 0):
            return "len(...) >= 0 always holds"
    return None


def vacuous_asserts(path: Path) -> list[str]:
    source = path.read_text()
    tree = ast.parse(source)
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            why = _why_vacuous(node.test, imported)
            if why:
                found.append(f"{path.name}:{node.lineno}: {ast.get_source_segment(source, node)} -- {why}")
    return found


def test_no_vacuous_asserts_in_the_tests():
    files = sorted(TESTS.glob("test_*.py"))
    assert len(files) > 10
    found = [line for f in files for line in vacuous_asserts(f)]
    assert found == [], "\n".join(found)


def test_the_scan_catches_each_shape(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "from cache import Cache, helper\n"
        "def test_x(tmp_path):\n"
        "    assert Cache(tmp_path).load\n"
        "    assert (1 == 2, 'message')\n"
        "    assert f(1) == f(1)\n"
        "    assert len(x) >= 0\n"
        "    assert x or True\n"
        "    assert (y for y in [])\n"
        "    assert Cache(tmp_path).load()\n"  # fine: called
        "    assert x.enabled\n"  # fine: an attribute of a name
        "    assert helper\n"
        "    assert flag\n"  # fine: not an import
    )
    found = vacuous_asserts(bad)
    assert [int(line.split(":")[1]) for line in found] == [3, 4, 5, 6, 7, 8, 11]

"""The per-process memo of code fingerprints (apt_core/storage/cache.py, ``code_fingerprint``):
asked again, a fingerprint is not recomputed while its files and folders are unchanged, and an
edit made while the process runs still changes the key (the memo is keyed by each file's path,
mtime_ns and size, never simply per process).  Edits are made to a copy of the source."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from apt_core.defenses import make_defense
from apt_core.storage import import_graph
from apt_core.storage.cache import method_fingerprint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(ROOT / "apt_core", root / "apt_core", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def scans(monkeypatch) -> list:
    """Every full walk of a source tree made from now on (one per fingerprint computed afresh)."""
    seen: list = []
    original = import_graph.SourceTree.scan.__func__

    def counting(cls, root=None, package=import_graph.PACKAGE):
        seen.append(str(root))
        return original(cls, root, package)

    monkeypatch.setattr(import_graph.SourceTree, "scan", classmethod(counting))
    return seen


def _touch_later(path: Path) -> None:
    """Move the file's modification time forward (an edit within the clock's resolution is not
    what is tested here; a different time is)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_asked_again_the_fingerprint_is_remembered(copy_root, scans):
    apt = make_defense("apt")
    first = method_fingerprint(apt, copy_root)
    walked = len(scans)
    assert walked >= 1
    assert [method_fingerprint(apt, copy_root) for _ in range(3)] == [first] * 3
    assert len(scans) == walked, "an unchanged source must not be walked again"


def test_an_edit_of_equal_size_in_the_closure_changes_the_key(copy_root, scans):
    apt = make_defense("apt")
    before = method_fingerprint(apt, copy_root)
    path = copy_root / "apt_core" / "influence" / "solvers.py"
    text = path.read_text()
    i = text.index("\n\n")
    path.write_text(text[:i] + " " + text[i + 1:])  # one newline becomes a space: same size, other bytes
    assert path.stat().st_size == len(text.encode())
    _touch_later(path)
    after = method_fingerprint(apt, copy_root)
    assert after != before
    path.write_text(text)
    _touch_later(path)
    assert method_fingerprint(apt, copy_root) == before, "the original bytes give the original key again"


def test_an_edit_outside_the_closure_keeps_the_key_and_the_memo(copy_root, scans):
    clean = make_defense("none")
    before = method_fingerprint(clean, copy_root)
    walked = len(scans)
    path = copy_root / "apt_core" / "detection" / "cogroup.py"  # the clean model runs no detector
    path.write_text(path.read_text() + "\n# edited\n")
    assert method_fingerprint(clean, copy_root) == before
    assert len(scans) == walked, "an edit to a file outside the closure does not invalidate it"


def test_a_module_added_to_a_package_is_noticed(copy_root, scans):
    clean = make_defense("none")
    before = method_fingerprint(clean, copy_root)
    walked = len(scans)
    (copy_root / "apt_core" / "detection" / "added_by_the_memo_test.py").write_text("X = 1\n")
    assert method_fingerprint(clean, copy_root) == before  # imported by nothing the clean model runs
    assert len(scans) == walked + 1, "a new file changes its folder's time: the closure is computed again"


def test_the_same_object_under_two_roots_is_two_keys(copy_root):
    apt = make_defense("apt")
    assert method_fingerprint(apt, copy_root) == method_fingerprint(apt, ROOT)
    path = copy_root / "apt_core" / "influence" / "solvers.py"
    path.write_text(path.read_text() + "\n\ndef _edited():\n    return 1\n")
    assert method_fingerprint(apt, copy_root) != method_fingerprint(apt, ROOT)

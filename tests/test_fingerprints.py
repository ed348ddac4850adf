"""Code fingerprints in the cache keys: an edit to the code an artifact runs is a miss, an edit
to code it does not run is not (apt_core/storage/cache.py, apt_core/storage/import_graph.py).

The edits are made to a copy of the ``apt_core`` source (``code_fingerprint(..., root=copy)``
reads the copy for the modules of the objects given); the reviewer's reproduction runs the
command line in subprocesses whose ``PYTHONPATH`` points at the copy.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apt_core.attacks import make_attack
from apt_core.defenses import make_defense
from apt_core.detection import DETECTORS, make_detector
from apt_core.experiments.artifacts import victim_code_object
from apt_core.models import popularity
from apt_core.storage.cache import code_fingerprint, code_modules, entries_named_by, method_fingerprint
from apt_core.storage.import_graph import SourceTree, imported_names

ROOT = Path(__file__).resolve().parents[1]


def _copy_source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(ROOT / "apt_core", root / "apt_core", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "sample_data").symlink_to(ROOT / "sample_data")  # the sample data set is found beside the package
    return root


def _source_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the ``apt_core`` source under ``root`` (no byte-code caches), by relative path."""
    base = root / "apt_core"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def _faithful_copy(tmp_path: Path, tries: int = 5) -> tuple[Path, dict[str, str]]:
    """A copy of the source and its artifacts' keys, which must equal the keys read from the original.

    People edit the original while the tests run (another session's change to ``models/`` made this
    comparison fail once): the keys are compared only when the copy still equals the original, byte
    for byte, before and after the original's keys were read; otherwise the copy is made again.
    """
    for attempt in range(tries):
        root = _copy_source(tmp_path / f"copy-{attempt}")
        copied = _source_bytes(root)
        keys = _code_of_artifacts(root)
        if _source_bytes(ROOT) != copied:
            continue
        original = _code_of_artifacts(ROOT)
        if _source_bytes(ROOT) != copied:
            continue
        assert keys == original, "a faithful copy must give the same keys as the original"
        return root, keys
    pytest.fail(f"the apt_core source changed during each of {tries} copies: no faithful copy to compare")


def _edit(root: Path, relative: str) -> None:
    """Change a file's code (a new function at its end: its bytes and its size change)."""
    path = root / "apt_core" / relative
    path.write_text(path.read_text() + "\n\ndef _edited_by_the_fingerprint_test():\n    return 1\n")


def _code_of_artifacts(root: Path | None) -> dict[str, str]:
    """The code part of the keys of several artifacts, read from the source under ``root``."""
    return {
        "model none (clean MF)": method_fingerprint(make_defense("none"), root),
        "model pcmf": method_fingerprint(make_defense("pcmf"), root),
        "model remove-cogroup": method_fingerprint(make_defense("remove-cogroup"), root),
        "model remove-rdma": method_fingerprint(make_defense("remove-rdma"), root),
        "model apt-trusted": method_fingerprint(make_defense("apt-trusted"), root),
        "model apt --erm-stats trusted": method_fingerprint(make_defense("apt", erm_stats="trusted"), root),
        "model apt": method_fingerprint(make_defense("apt"), root),
        "detection cogroup": method_fingerprint(make_detector("cogroup"), root),
        "detection rdma": method_fingerprint(make_detector("rdma"), root),
        "detection influence": method_fingerprint(make_detector("influence"), root),
        "fake average": method_fingerprint(make_attack("average"), root),
        "popularity": code_fingerprint(popularity, root=root),
        "victim neumf": code_fingerprint(victim_code_object("neumf"), root=root),
    }


#: file edited -> (artifacts whose key must change, artifacts whose key must not)
EDITS = {
    "a detector": ("detection/cogroup.py",
                   ["model remove-cogroup", "model apt-trusted", "model apt --erm-stats trusted", "detection cogroup"],
                   ["model none (clean MF)", "model pcmf", "detection rdma", "fake average", "popularity", "victim neumf"]),
    "the cuts": ("detection/cuts.py",
                 ["detection cogroup", "detection rdma", "detection influence", "model remove-cogroup", "model remove-rdma", "model apt-trusted"],
                 ["model none (clean MF)", "model pcmf", "fake average", "popularity"]),
    "the solvers": ("influence/solvers.py",
                    ["model apt", "model apt-trusted", "model apt --erm-stats trusted", "detection influence"],
                    ["model none (clean MF)", "model pcmf", "detection cogroup", "detection rdma", "fake average", "popularity"]),
    "MF's influence": ("influence/mf.py",
                       ["model apt", "model apt-trusted", "detection influence"],
                       ["model none (clean MF)", "model pcmf", "detection cogroup", "fake average", "popularity"]),
    "a victim": ("models/neumf.py",
                 ["victim neumf"],
                 ["detection cogroup", "detection influence", "fake average", "popularity"]),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_an_edit_misses_the_artifacts_that_run_the_code_and_only_those(tmp_path, what):
    relative, changed, unchanged = EDITS[what]
    root, before = _faithful_copy(tmp_path)
    _edit(root, relative)
    after = _code_of_artifacts(root)
    assert [a for a in changed if after[a] == before[a]] == [], f"editing {relative} must miss these keys"
    assert [a for a in unchanged if after[a] != before[a]] == [], f"editing {relative} must leave these keys"


def test_imports_are_read_at_every_level_of_a_file():
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        import apt_core.errors
        if TYPE_CHECKING:
            from apt_core.data.dataset import Interactions
        def fit():
            from apt_core.detection import make_detector
            from . import cuts
            from .. import registry
    """)
    names = imported_names(source, "apt_core.detection.base", is_package=False)
    tree = SourceTree.scan()
    from apt_core.storage.import_graph import resolve

    assert resolve(names, tree.files) >= {"apt_core.errors", "apt_core.data.dataset", "apt_core.detection",
                                          "apt_core.detection.cuts", "apt_core.registry"}


def test_the_always_hashed_modules_exist():
    """A module moved without updating ALWAYS_HASHED would silently drop out of every key."""
    from apt_core.storage.cache import ALWAYS_HASHED

    assert set(ALWAYS_HASHED) <= set(SourceTree.scan().files)


def test_the_statement_walk_finds_every_import_a_full_walk_finds():
    """The reader walks statements only (faster); on apt_core's own files it must miss nothing."""
    import ast

    from apt_core.storage.import_graph import _statements

    for path in sorted((ROOT / "apt_core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        full = sorted(ast.dump(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        fast = sorted(ast.dump(n) for n in _statements(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        assert fast == full, path


def test_the_closure_follows_function_level_imports_and_hashes_enclosing_packages():
    mods = code_modules(type(make_defense("remove-cogroup")))
    # remove.py imports the detectors inside fit(); the detectors import the cuts.
    assert {"apt_core.defenses.remove", "apt_core.detection", "apt_core.detection.cogroup", "apt_core.detection.cuts"} <= set(mods)
    clean = code_modules(type(make_defense("none")))
    # The defenses package's __init__ runs first, so its text counts, but its imports (every
    # defense) are not the clean model's code.
    assert "apt_core.defenses" in clean
    assert not any(m.startswith(("apt_core.detection", "apt_core.attacks", "apt_core.influence")) for m in clean)


def _plugin(tmp_path: Path, name: str, body: str):
    """Import a module file from outside apt_core (what a plug-in is)."""
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return path, module


TOY_DETECTOR = '''
import numpy as np
from apt_core.detection.base import Detector


class ToyDetector(Detector):
    name = "toy-fingerprint"
    summary = "scores by user id (a test)"

    def _scores(self, data):
        return np.arange(data.n_users, dtype=float)
'''


def test_a_detector_registered_outside_apt_core_enters_the_keys_of_the_defenses_naming_it(tmp_path):
    path, module = _plugin(tmp_path, "fingerprint_toy_detector", TOY_DETECTOR)
    DETECTORS.register(module.ToyDetector)
    try:
        trusted = make_defense("apt-trusted", detector="toy-fingerprint")
        remove = make_defense("remove-toy-fingerprint")
        assert module.ToyDetector in entries_named_by(trusted) and module.ToyDetector in entries_named_by(remove)
        keys = [method_fingerprint(trusted), method_fingerprint(remove), method_fingerprint(make_detector("toy-fingerprint"))]
        clean = method_fingerprint(make_defense("none"))
        path.write_text(TOY_DETECTOR.replace("np.arange(data.n_users, dtype=float)", "np.zeros(data.n_users)"))
        again = [method_fingerprint(trusted), method_fingerprint(remove), method_fingerprint(make_detector("toy-fingerprint"))]
        assert all(a != b for a, b in zip(keys, again))
        assert method_fingerprint(make_defense("none")) == clean
        # APT-trusted with the built-in detector does not run the plug-in.
        assert module.ToyDetector not in entries_named_by(make_defense("apt-trusted"))
    finally:
        del DETECTORS["toy-fingerprint"]
        sys.modules.pop("fingerprint_toy_detector", None)


def _env(root: Path, cache: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "4321", "APT_CACHE_DIR": str(cache),
            "OMP_WAIT_POLICY": "PASSIVE", "APT_NUM_THREADS": "1"}


def _cli_start(root: Path, cache: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "apt_core", "run", "--dataset", "sample", "--attack", "average",
                             "--defense", "remove-cogroup", "--epochs", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(root, cache), cwd=cwd)


def _cli_result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def _cli_run(root: Path, cache: Path, cwd: Path) -> dict:
    return _cli_result(_cli_start(root, cache, cwd))


def test_the_reviewers_reproduction_misses_after_a_detector_edit(tmp_path):
    """issue 20: remove-cogroup, then CoGroup._scores returns zeros: the rerun must not answer from the cache."""
    root = _copy_source(tmp_path)
    cache = tmp_path / "cache"
    first = _cli_run(root, cache, tmp_path)
    path = root / "apt_core" / "detection" / "cogroup.py"
    text = path.read_text()
    head = "    def _scores(self, data: Interactions"
    at = text.index(head)
    body = text.index(":\n", at) + 2  # the end of the def line
    path.write_text(text[:body] + "        return np.zeros(data.n_users)  # the reviewer's edit\n" + text[body:])
    # The edited rerun and a run on an empty cache share nothing: side by side (a second core).
    runs = [_cli_start(root, cache, tmp_path), _cli_start(root, tmp_path / "fresh-cache", tmp_path)]
    try:
        edited, fresh = (_cli_result(run) for run in runs)
    finally:
        for run in runs:  # one failed or timed out: do not leave the other running
            if run.poll() is None:
                run.kill()
                run.wait()

    def row(result: dict) -> dict:
        return next(r for r in result["rows"] if r["phase"] == "remove-cogroup")

    # Nobody flagged: the defense keeps every user, unlike the unedited detector.
    assert row(edited)["detection"]["n_flagged"] == 0 < row(first)["detection"]["n_flagged"]
    assert row(edited)["target_hr"] == row(fresh)["target_hr"] and row(edited)["ri"] == row(fresh)["ri"]
    # The detection and the defended model were recomputed; the clean model, the fake profiles
    # and the attacked model (no detector in their code) still came from the cache.
    assert edited["cache"]["misses"] > 0 and edited["cache"]["hits"] > 0

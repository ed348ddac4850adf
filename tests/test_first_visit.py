"""A first visit to the dashboard: the first paint waits for no model code, and any page starts the
classroom grid's build without waiting for it (issue 22 item 2, issue 23 "First visit")."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _top_level_imports(path: Path) -> list[str]:
    """The modules a file imports when it runs (its module level; not inside functions)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != "__future__":
            names.append(node.module)
    return names


def test_the_app_and_the_home_page_paint_before_torch_is_imported():
    modules = sorted(set(_top_level_imports(ROOT / "app.py") + _top_level_imports(ROOT / "pages" / "overview.py")))
    assert "streamlit" in modules and "pages._shared.grid_panel" in modules
    probe = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_a_grid_build_starts_at_once_and_prepares_its_inputs_in_its_own_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path))
    from pages._shared.grid_panel import GridBuilder

    release = threading.Event()

    def inputs():  # stands for importing the model code and loading the data
        release.wait(30)
        return [], None

    t0 = time.perf_counter()
    builder = GridBuilder(inputs)
    assert time.perf_counter() - t0 < 1.0 and not builder.done and builder.text == "starting"
    release.set()
    deadline = time.time() + 30
    while not builder.done and time.time() < deadline:
        time.sleep(0.05)
    assert builder.done and builder.error is None and builder.report.n_points == 0

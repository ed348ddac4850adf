"""``python -m apt_core grid``: the classroom grid precomputed from the command line (issue 22, item 4)."""
from __future__ import annotations

import json

import numpy as np

from apt_core.cli import main


def _tiny_file(tmp_path):
    """80 users, 120 items (over the classroom's K = 50); the last 20 items have 1 to 3 ratings (unpopular targets exist)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(80):
        for i in rng.choice(100, size=15, replace=False):
            rows.append(f"{u},{i},{int(rng.integers(1, 6))}")
    for i in range(100, 120):
        for u in range(1 + i % 3):
            rows.append(f"{u},{i},{int(rng.integers(1, 6))}")
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_grid_precomputes_the_positions_the_dashboard_reads(tmp_path, capsys):
    from apt_core.data import load_dataset
    from apt_core.experiments.grid import GridSpec, classroom_base, grid_scenarios, is_cached
    from apt_core.storage.cache import ArtifactCache

    path = _tiny_file(tmp_path)
    cache_dir = tmp_path / "cache"
    argv = ["grid", "--dataset", str(path), "--limit", "3", "--cache-dir", str(cache_dir), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["positions"] == 3 and first["computed"] == 3 and first["already_cached"] == 0
    assert first["seconds"] >= 0 and first["cache_mb"] > 0 and first["keep_models"] is False
    # The positions are the dashboard's: its first view (the classroom base) is answered from the cache.
    data = load_dataset(str(path), None)
    positions = grid_scenarios(classroom_base(str(path)), GridSpec().available())
    cache = ArtifactCache(cache_dir)
    assert [is_cached(sc, cache, data) for sc in positions[:4]] == [True, True, True, False]
    # A second run computes nothing; the text summary says how long it took.
    assert main(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert "3 positions of the classroom grid ready in" in out and "0 computed, 3 already cached" in out


def test_grid_progress_names_each_position_in_words(tmp_path):
    from apt_core.data import load_dataset
    from apt_core.experiments.grid import GridSpec, build_grid, classroom_base, grid_scenarios
    from apt_core.storage.cache import ArtifactCache

    path = _tiny_file(tmp_path)
    positions = grid_scenarios(classroom_base(str(path)), GridSpec().available())[:2]
    texts: list[str] = []
    build_grid(positions, ArtifactCache(tmp_path / "c"), lambda f, text: texts.append(text), data=load_dataset(str(path), None))
    assert texts[0] == "position 1 of 2: Average attack on 3%, APT (5% ERM users, observed statistics)"
    assert texts[-1] == "all 2 positions ready"
    assert not any("epoch" in t or "seed" in t for t in texts), "the inner stage moves the bar, not the words"
    # position 2 is trained in the batched fill: its words say what is being trained, and how far
    assert any(t.startswith("positions 2-2 of 2, in batches: training ") and "models done)" in t for t in texts), texts

"""What the artifact cache keeps: evaluations always, defended models only with --keep-models (issue 22)."""
from __future__ import annotations

import io
import json

import pytest
import torch

from apt_core.cli import main
from apt_core.experiments.artifacts import UNREAD_DIAGNOSTICS, UNREAD_ROUND_DIAGNOSTICS, kept_diagnostics
from apt_core.storage.cache import MAGIC

# APT-rand regenerates its ERM users from epoch 1 on, so its diagnostics hold rounds (4 epochs).
RUN = ["run", "--dataset", "sample", "--attack", "average", "--defense", "apt-rand", "--epochs", "4", "--seeds", "1",
       "--param", "apt-rand.t_pre=1", "--param", "apt-rand.t_inter=1", "--json", "--no-history"]


def _payloads(root, kind: str) -> list[dict]:
    out = []
    for path in sorted((root / kind).rglob("*.pt")):
        raw = path.read_bytes()
        out.append(torch.load(io.BytesIO(raw[len(MAGIC) + 65:]), weights_only=True))
    return out


def _numbers(out: dict) -> list[dict]:
    """The rows without the fit times (a fresh fit's time is its own)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in out["rows"]]


def _run(capsys, cache_dir, *extra) -> dict:
    assert main([*RUN, "--cache-dir", str(cache_dir), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_without_keep_models_no_defended_model_is_stored_and_a_rerun_gives_the_same_numbers(tmp_path, capsys):
    cache_dir = tmp_path / "lean"
    first = _run(capsys, cache_dir)
    models = _payloads(cache_dir, "model")
    # Only the undefended MF models (origin, attack) keep their tensors; APT-rand's does not.
    assert len(models) == 2 and all(m["diagnostics"].get("defense") != "apt-rand" for m in models)
    evals = _payloads(cache_dir, "eval")
    defended = [e for e in evals if e["diagnostics"].get("defense") == "apt-rand"]
    assert len(defended) == 1 and defended[0]["diagnostics"]["rounds"], "the evaluation keeps the rounds the pages read"
    assert all(k not in defended[0]["diagnostics"] for k in UNREAD_DIAGNOSTICS)
    assert all(k not in r for r in defended[0]["diagnostics"]["rounds"] for k in UNREAD_ROUND_DIAGNOSTICS)
    again = _run(capsys, cache_dir)
    assert again["cache"]["misses"] == 0 and again["rows"] == first["rows"]

    kept_dir = tmp_path / "kept"
    kept = _run(capsys, kept_dir, "--keep-models")
    assert _numbers(kept) == _numbers(first)
    models = _payloads(kept_dir, "model")
    assert len(models) == 3 and any(m["diagnostics"].get("defense") == "apt-rand" and m["state"] for m in models)
    full = next(m for m in models if m["diagnostics"].get("defense") == "apt-rand")["diagnostics"]
    assert "last_erm" in full and "erm_items" in full["rounds"][0], "a kept model's entry keeps its diagnostics whole"
    lean_bytes = sum(p.stat().st_size for p in cache_dir.rglob("*.pt"))
    kept_bytes = sum(p.stat().st_size for p in kept_dir.rglob("*.pt"))
    assert lean_bytes < kept_bytes


def test_a_caller_that_asks_for_the_models_gets_them_from_the_cache(tmp_path):
    from apt_core.experiments.pipeline import Scenario, run_scenario
    from apt_core.storage.cache import ArtifactCache

    scenario = Scenario(dataset="sample", attack="average", defenses=("apt-rand",), epochs=3, seeds=1,
                        params={"apt-rand.t_pre": 1, "apt-rand.t_inter": 1})
    cache = ArtifactCache(tmp_path)
    run_scenario(scenario, cache=cache)  # the grid's way: evaluations only for the defense
    asked = run_scenario(scenario, cache=cache, keep_models=True)  # the Lesson's way: refits APT-rand once, keeps it
    again = run_scenario(scenario, cache=ArtifactCache(tmp_path), keep_models=True, cache_only=True)
    assert set(again.models[0]) == {"origin", "attack", "apt-rand"}
    assert again.rows() == asked.rows()


def test_kept_diagnostics_leaves_the_input_alone():
    diag = {"defense": "apt", "last_erm": {"users": [1]}, "rounds": [{"epoch": 3, "erm_items": [1, 2], "influence": [0.5]}]}
    lean = kept_diagnostics(diag)
    assert lean == {"defense": "apt", "rounds": [{"epoch": 3, "influence": [0.5]}]}
    assert "last_erm" in diag and "erm_items" in diag["rounds"][0]


@pytest.mark.parametrize("argv", [["run"], ["sweep", "--values", "1"], ["reproduce"], ["detect"]])
def test_keep_models_is_a_flag_of_every_cached_command(argv):
    from apt_core.cli import build_parser

    assert build_parser(argv).parse_args([*argv, "--keep-models"]).keep_models is True

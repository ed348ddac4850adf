"""--scale declares a rating file's scale; the CLI's JSON is strict (no NaN/Infinity)."""
from __future__ import annotations

import json
import math

import pytest

from apt_core.cli import main
from apt_core.cli_args import dump_json


def _file(tmp_path, stray: str | None = None):
    rows = [f"{u},{i},{1 + (u * 3 + i) % 5}" for u in range(30) for i in range(12)]
    if stray is not None:
        rows[5] = f"0,5,{stray}"
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_data_refuses_a_stray_rating_and_accepts_it_declared(tmp_path, capsys):
    path = _file(tmp_path, "1000")
    assert main(["data", "--dataset", str(path)]) == 2
    assert "far above every other rating" in capsys.readouterr().err
    assert main(["data", "--dataset", str(path), "--scale", "1..1000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_ratings"] == 360


def test_a_declared_scale_refuses_ratings_outside_it(tmp_path, capsys):
    assert main(["data", "--dataset", str(_file(tmp_path, "7")), "--scale", "1..5"]) == 2
    assert "line 6: rating 7 is outside the scale 1..5" in capsys.readouterr().err


def test_a_named_data_set_keeps_its_own_scale(capsys):
    assert main(["data", "--dataset", "sample", "--scale", "1..10"]) == 2
    assert "has its own scale" in capsys.readouterr().err


def test_bad_scale_text_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "--dataset", str(_file(tmp_path)), "--scale", "five"]) == 2
    assert "LO..HI" in capsys.readouterr().err


def test_json_never_carries_nan_or_infinity():
    text = dump_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -math.inf}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert "NaN" not in text and "Infinity" not in text


def test_a_declared_scale_is_part_of_the_scenario():
    from apt_core.experiments.scenario import Scenario

    assert Scenario().key() != Scenario(rating_scale="1..5").key()
    assert Scenario(rating_scale="1..5").to_config()["rating_scale"] == "1..5"

"""CLI: run --json with the cache and history, reproduce --quick, history and cache subcommands."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from apt_core.cli import main


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.delenv("APT_HISTORY_DB", raising=False)
    return tmp_path


def _run_json(capsys, *extra):
    assert main(["run", "--dataset", "sample", "--epochs", "2", "--seeds", "2", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_uses_cache_and_records_history(dirs, capsys):
    first = _run_json(capsys)
    assert first["cache"]["hits"] == 0 and first["cache"]["misses"] > 0
    second = _run_json(capsys)
    assert second["cache"]["misses"] == 0 and second["rows"] == first["rows"]
    assert (dirs / "root" / "artifacts").is_dir()
    # history: two runs, newest first, readable as JSON by the CLI
    assert main(["history", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 2 and runs[0]["dataset"] == "sample"
    assert main(["history", "--show", runs[0]["run_id"]]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == second["rows"]
    assert main(["history", "--export", str(dirs / "h.csv")]) == 0
    capsys.readouterr()
    assert len(pd.read_csv(dirs / "h.csv")) == 2 * 3 * 2  # runs x phases x seeds
    assert main(["history", "--delete", runs[1]["run_id"]]) == 0
    capsys.readouterr()
    assert main(["history"]) == 0
    assert "1 run(s) shown" in capsys.readouterr().out


def test_run_no_cache_no_history(dirs, capsys):
    out = _run_json(capsys, "--no-cache", "--no-history")
    assert out["cache"] == {"hits": 0, "misses": 0}
    assert not (dirs / "root" / "artifacts").exists()
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cache_subcommand_and_cache_dir(dirs, capsys):
    _run_json(capsys, "--cache-dir", str(dirs / "c"), "--no-history")
    assert main(["cache", "--cache-dir", str(dirs / "c")]) == 0
    text = capsys.readouterr().out
    assert "entries" in text and "model" in text and "eval" in text
    assert main(["cache", "--cache-dir", str(dirs / "c"), "--clear"]) == 0
    assert "removed" in capsys.readouterr().out
    assert list((dirs / "c").rglob("*.pt")) == []


def test_history_errors_are_one_line(dirs, capsys):
    assert main(["history", "--show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: 'nope' is not a run id")
    assert main(["history", "--show", "20261201-093015-1a2b3c4d"]) == 2
    assert capsys.readouterr().err.startswith("error: no run with id")


def test_text_output_says_why_two_seeds_get_no_stars(dirs, capsys):
    assert main(["run", "--dataset", "sample", "--attack", "random", "--defense", "at,apt", "--epochs", "2", "--seeds", "2", "--no-cache", "--no-history"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("APT vs ")]
    assert len(line) == 1 and "over 2 seeds" in line[0] and "no stars with fewer than 3 seeds" in line[0]
    assert "*" not in line[0]


def test_diverged_model_is_one_error_line_not_a_perfect_score(dirs, capsys, monkeypatch):
    # Before: NaN factors ranked every item first and this run printed target/test HR = 1.0.
    from apt_core.models.mf import MFTrainer

    monkeypatch.setattr(MFTrainer, "_adagrad_update", lambda self, gP, gQ: self.Q.fill_(float("nan")))
    assert main(["run", "--dataset", "sample", "--epochs", "2", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the 'origin' model diverged: ")
    assert "lower the MF learning rate" in lines[0]


def test_reproduce_quick(dirs, capsys):
    """The CI variant: the whole pipeline (tables, figures, report) on the sample data."""
    out = dirs / "rep"
    assert main(["reproduce", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Target HR@50" in printed
    for name in ["table2_target_hr.csv", "table2_target_hr.md", "table3_test_hr.csv", "table3_test_hr.md", "per_seed.csv",
                 "fig1_rank_shift.html", "fig2_attack_size.html", "fig3_erm_fraction.html", "report.md"]:
        assert (out / name).is_file(), name
    t2 = pd.read_csv(out / "table2_target_hr.csv")
    assert set(t2["targets"]) == {"random", "unpopular"}
    assert set(t2["phase"]) == {"origin", "attack", "pcmf", "at", "apt-rand", "apt", "popularity"}
    assert "plotly" in (out / "fig2_attack_size.html").read_text()[:5000].lower()
    fig2 = pd.read_csv(out / "fig2_attack_size.csv")
    assert sorted(set(fig2["attack_size"])) == [0.01, 0.03, 0.05]
    report = (out / "report.md").read_text()
    assert "wall time" in report and "Table 2" in report
    # Repeating the command is answered from the cache (no new misses).
    assert main(["reproduce", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert "0 misses" in capsys.readouterr().out

"""The command line's JSON contract (docs/cli.md) and its error behaviour."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"phase", "target_hr", "target_hr_sd", "test_hr", "test_hr_sd", "ri", "rank_shift_median", "seconds"}


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE", APT_NUM_THREADS="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "apt_core", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_run_json_contract_on_sample(tmp_path):
    proc = run_cli("run", "--dataset", "sample", "--epochs", "5", "--json", env_extra={"APT_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"config", "dataset", "targets", "rows"} <= set(out)
    assert out["dataset"] == {"name": "sample", "n_users": 600, "n_items": 996, "n_ratings": 41225}
    assert len(out["targets"]) == 5
    phases = [r["phase"] for r in out["rows"]]
    assert phases[:2] == ["origin", "attack"]
    assert phases[-1] == "popularity" and out["rows"][-1]["ri"] is None  # appended last: rows[0]/rows[1] keep their meaning
    for row in out["rows"]:
        assert ROW_KEYS <= set(row)
        assert 0.0 <= row["test_hr"] <= 1.0
    assert out["rows"][0]["ri"] is None and out["rows"][1]["ri"] is None


def test_run_json_on_real_ml100k(data_dir, tmp_path):
    proc = run_cli("run", "--dataset", "ml-100k", "--data-dir", str(data_dir), "--json", env_extra={"APT_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dataset"]["n_ratings"] == 100000
    origin = out["rows"][0]
    assert 0.19 <= origin["test_hr"] <= 0.25  # paper 0.2106, authors' code 0.214-0.223
    popularity = out["rows"][-1]
    # The honest yardstick: on ML-100K ranking by popularity beats MF's test HR.
    assert popularity["phase"] == "popularity" and popularity["test_hr"] > origin["test_hr"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--attack", "zzz"], "unknown attack 'zzz': choose one of none"),
        (["--defense", "none,zzz"], "unknown defense 'zzz'"),
        (["--attack-size", "1.5", "--attack", "none"], "--attack-size must lie in (0, 1]"),
        (["--dataset", "no-such-set"], "unknown data set 'no-such-set'"),
        (["--targets", "99999999"], "unknown item id"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--targets", "3,3"], "duplicate target item id(s): 3"),
    ],
)
def test_run_errors_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    from apt_core.cli import main

    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path))
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_malformed_file_from_cli(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,5\n1,3,five\n")
    proc = run_cli("run", "--dataset", str(bad), env_extra={"APT_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert f"{bad}, line 2: rating 'five' is not a number" in proc.stderr
    assert "Traceback" not in proc.stderr

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


@pytest.fixture
def cli(tmp_path, monkeypatch, capfd):
    """``apt_core.cli.main`` in this process, as :func:`run_cli` runs it in a subprocess (cache under ``tmp_path``).

    Each subprocess spent about 7 s of a loaded 2-core machine importing torch and pandas; the
    command's own work and its output (stdout and stderr captured at the file descriptors, so a
    library writing to descriptor 1 still breaks the JSON) are the same.
    ``test_run_json_contract_on_sample`` keeps the real ``python -m apt_core`` process.
    """
    from apt_core.cli import main

    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)

    def run(*args: str) -> subprocess.CompletedProcess:
        capfd.readouterr()  # what came before is not this command's output
        code = main(list(args))
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["apt_core", *args], code, out, err)

    return run


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


def test_run_json_on_real_ml100k(data_dir, cli):
    proc = cli("run", "--dataset", "ml-100k", "--data-dir", str(data_dir), "--json")
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


def test_malformed_file_from_cli(tmp_path, cli):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,5\n1,3,five\n")
    proc = cli("run", "--dataset", str(bad))
    assert proc.returncode == 2
    assert f"{bad}, line 2: rating 'five' is not a number" in proc.stderr
    assert "Traceback" not in proc.stderr


def _check_ri_fields(rows: list[dict]) -> None:
    """Every row says why it has no RI, or has one; defended rows say how far below the clean level they went."""
    from apt_core.evaluation.metrics import RI_UNDEFINED_REASONS

    origin = rows[0]["target_hr"]
    for row in rows:
        assert (row["ri"] is None) == (row["ri_undefined_reason"] is not None), row
        assert row["ri_undefined_reason"] is None or row["ri_undefined_reason"] in RI_UNDEFINED_REASONS
        if row["phase"] in ("origin", "attack", "popularity"):
            assert row["ri_undefined_reason"] == "not-a-defense" and row["below_clean"] is None
            continue
        assert row["below_clean"] == pytest.approx(max(0.0, origin - row["target_hr"]))
        assert row["over_correction"] == (row["ri"] is not None and row["ri"] > 1)
        assert (row["ri_note"] == "over-correction") == row["over_correction"]


def test_run_json_ri_fields_on_sample_1pct(cli):
    proc = cli("run", "--dataset", "sample", "--attack", "average", "--attack-size", "0.01", "--defense", "apt",
               "--epochs", "5", "--json", "--no-history")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    _check_ri_fields(out["rows"])
    rows = {r["phase"]: r for r in out["rows"]}
    lift = rows["attack"]["target_hr"] - rows["origin"]["target_hr"]
    from apt_core.evaluation.metrics import ri_undefined_reason

    assert rows["apt"]["ri_undefined_reason"] == ri_undefined_reason(rows["origin"]["target_hr"], rows["attack"]["target_hr"])
    assert rows["apt"]["attack_lift"] == pytest.approx(lift)
    for seed_row in out["per_seed"]:  # one seed: the per-seed RI is the row's
        if seed_row["phase"] == "apt":
            assert seed_row["ri"] == rows["apt"]["ri"] and seed_row["ri_undefined_reason"] == rows["apt"]["ri_undefined_reason"]


def test_poison_file_that_lowers_target_hr_gets_no_ri(tmp_path, cli):
    """A hand-made poison file (fake users rate the targets at the bottom, popular items at the top) lowers target HR:
    no defended row may print an RI (the old formula printed 2.6 and 36.5 here), and the table says why."""
    import numpy as np

    from apt_core.data.loaders import load_dataset

    data = load_dataset("sample")
    counts = np.bincount(data.interactions.items, minlength=data.n_items)
    order = np.argsort(-counts, kind="stable")
    targets = order[20:25]  # popular enough that the clean model recommends them (origin HR well above 0)
    fake = np.zeros((30, data.n_items), dtype=np.float32)  # the authors' .npy layout: rating / scale maximum
    fake[:, order[:40]] = 1.0
    fake[:, targets] = data.scale.minimum / data.scale.maximum
    poison = tmp_path / "lowers.npy"
    np.save(poison, fake)
    ids = ",".join(str(data.item_ids[t]) for t in targets)
    args = ("run", "--dataset", "sample", "--poison-file", str(poison), "--targets", ids, "--defense", "apt", "--no-history")
    proc = cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {r["phase"]: r for r in out["rows"]}
    assert rows["attack"]["target_hr"] < rows["origin"]["target_hr"], rows  # the premise: this file lowers HR
    _check_ri_fields(out["rows"])
    assert rows["apt"]["ri"] is None and rows["apt"]["ri_undefined_reason"] == "attack-did-not-lift"
    assert all(s["ri"] is None for s in out["per_seed"])
    text = cli(*args)  # from the cache: the text table of the same run
    assert text.returncode == 0, text.stderr
    apt_line = next(line for line in text.stdout.splitlines() if line.startswith("apt "))
    assert "attack did not lift" in apt_line

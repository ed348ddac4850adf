"""scripts/adaptive_suite.py: per-repetition records, mean ± sd, --by-repetition order (issue 21).

No training: ``run_setting`` is replaced by a fake that returns ``run --json`` objects built from
per-repetition numbers, the way the CLI reports them (``per_seed`` per phase and seed; detection
counts as means over the run's repetitions)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("adaptive_suite", ROOT / "scripts" / "adaptive_suite.py")
suite = importlib.util.module_from_spec(_spec)
sys.modules["adaptive_suite"] = suite  # its dataclasses look their module up while the classes are built
_spec.loader.exec_module(suite)

N_USERS = 100
#: per setting label, per repetition: (defended target HR, RI, test HR, users dropped, of them real)
TRUTH = {
    "a": [(0.10, 0.90, 0.25, 20, 0), (0.20, 0.80, 0.24, 25, 1), (0.00, 1.00, 0.26, 28, 3)],
    "b": [(0.30, 0.70, 0.22, 10, 0), (0.40, 0.60, 0.21, 12, 2), (0.50, 0.50, 0.20, 16, 0)],
}


def fake_run(label: str, seeds: int, first_seed: int = 0) -> dict:
    reps = TRUTH[label][:seeds]
    per_seed = []
    for r, (hr, ri, test, _, _) in enumerate(reps):
        seed = first_seed + r
        per_seed += [{"phase": "origin", "seed": seed, "target_hr": 0.0, "test_hr": 0.2, "ri": None, "seconds": 1.0},
                     {"phase": "attack", "seed": seed, "target_hr": 1.0, "test_hr": 0.19, "ri": None, "seconds": 1.0},
                     {"phase": "guard", "seed": seed, "target_hr": hr, "test_hr": test, "ri": ri, "seconds": 2.0}]
    mean = lambda k: sum(rep[k] for rep in reps) / len(reps)  # noqa: E731
    rows = [{"phase": "origin", "target_hr": 0.0, "test_hr": 0.2, "ri": None},
            {"phase": "attack", "target_hr": 1.0, "test_hr": 0.19, "ri": None},
            {"phase": "guard", "target_hr": mean(0), "test_hr": mean(2), "ri": 0.0,
             "detection": {"n_flagged": mean(3), "real_flagged": mean(4), "auc": 1.0}},
            {"phase": "popularity", "target_hr": 0.0, "test_hr": 0.31, "ri": None}]
    return {"config": {"seed": first_seed, "seeds": seeds}, "dataset": {"n_users": N_USERS}, "rows": rows, "per_seed": per_seed}


@pytest.fixture
def runs(monkeypatch):
    calls: list[tuple[str, int]] = []

    def run_setting(s, args, cache_dir, seed=None, seeds=None):
        calls.append((s.label, seeds))
        return fake_run(s.label, seeds)

    monkeypatch.setattr(suite, "adaptive_settings", lambda: [suite.Setting("a", "subset"), suite.Setting("b", "subset")])
    monkeypatch.setattr(suite, "run_setting", run_setting)
    return calls


def test_by_repetition_runs_every_setting_before_the_next_repetition_and_recovers_each_repetition(runs, tmp_path):
    out = tmp_path / "suite.json"
    assert suite.main(["--data-dir", "x", "--suite", "adaptive", "--seeds", "3", "--by-repetition", "--out", str(out)]) == 0
    assert runs == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    records = json.loads(out.read_text())["records"]
    for label, truth in TRUTH.items():
        mine = sorted((r for r in records if r["setting"] == label), key=lambda r: r["rep"])
        assert [r["rep"] for r in mine] == [0, 1, 2] and [r["seed"] for r in mine] == [0, 1, 2]
        assert [r["ri"] for r in mine] == [t[1] for t in truth]
        assert [r["dropped"] for r in mine] == pytest.approx([t[3] for t in truth])
        assert [r["real_dropped"] for r in mine] == pytest.approx([t[4] for t in truth])
        assert not any(r["dropped_is_mean"] for r in mine)
        assert all(r["popularity_test_hr"] == 0.31 for r in mine)


def test_summary_is_mean_and_sd_over_repetitions_of_the_mean_over_settings(runs, tmp_path):
    out = tmp_path / "suite.json"
    suite.main(["--data-dir", "x", "--suite", "adaptive", "--seeds", "3", "--by-repetition", "--out", str(out)])
    sm = json.loads(out.read_text())["summary"]["guard"]
    per_rep = [(TRUTH["a"][r][1] + TRUTH["b"][r][1]) / 2 for r in range(3)]
    assert sm["mean_ri_per_rep"] == pytest.approx(per_rep)
    mean, sd = suite.mean_sd(per_rep)
    assert sm["mean_ri"] == pytest.approx([mean, sd])
    assert sm["lowest_setting"] == "b" and sm["lowest_ri"][0] == pytest.approx(0.6)
    assert sm["max_real_dropped"] == pytest.approx(3) and sm["max_real_dropped_share"] == pytest.approx(3 / N_USERS)
    assert sm["repetitions_complete"] == [0, 1, 2]


def test_a_repetition_missing_a_setting_is_left_out_of_the_mean():
    records = [{"setting": s, "defense": "guard", "rep": k, "ri": ri, "test_hr": 0.2, "origin_test_hr": 0.2,
                "popularity_test_hr": 0.3, "real_dropped": 0, "real_dropped_share": 0.0, "below_half": False}
               for s, k, ri in (("a", 0, 1.0), ("b", 0, 0.5), ("a", 1, 0.0))]
    sm = suite.summary(records)["guard"]
    assert sm["repetitions_complete"] == [0]
    assert sm["mean_ri"][0] == pytest.approx(0.75) and sm["mean_ri"][1] is None
    assert sm["repetitions_per_setting"] == {"a": [0, 1], "b": [0]}


def test_without_by_repetition_detection_counts_are_marked_as_means(runs, tmp_path):
    out = tmp_path / "suite.json"
    suite.main(["--data-dir", "x", "--suite", "adaptive", "--seeds", "2", "--out", str(out)])
    records = json.loads(out.read_text())["records"]
    assert runs == [("a", 2), ("b", 2)]
    assert all(r["dropped_is_mean"] for r in records)
    assert [r["ri"] for r in records if r["setting"] == "a"] == [TRUTH["a"][0][1], TRUTH["a"][1][1]]


def test_out_inside_the_repository_is_refused(runs):
    with pytest.raises(SystemExit):
        suite.main(["--data-dir", "x", "--suite", "adaptive", "--out", str(ROOT / "results.json")])
    assert runs == []


def test_stop_after_a_past_time_starts_no_run(runs, capsys):
    assert suite.main(["--data-dir", "x", "--suite", "adaptive", "--seeds", "2", "--by-repetition", "--stop-after", "00:00"]) == 0
    assert runs == []
    assert "stopped: it is past 00:00 UTC" in capsys.readouterr().out


def test_resume_runs_only_the_missing_repetitions_and_keeps_the_earlier_records(runs, tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    suite.main(["--data-dir", "x", "--suite", "adaptive", "--seeds", "2", "--by-repetition", "--out", str(first)])
    runs.clear()
    suite.main(["--data-dir", "x", "--suite", "adaptive", "--defenses", "guard", "--seeds", "3", "--by-repetition",
                "--resume", str(first), "--out", str(second)])
    assert runs == [("a", 3), ("b", 3)]
    records = json.loads(second.read_text())["records"]
    assert sorted((r["setting"], r["rep"]) for r in records) == [(s, k) for s in "ab" for k in range(3)]
    third = {r["setting"]: r for r in records if r["rep"] == 2}
    assert third["a"]["dropped"] == pytest.approx(TRUTH["a"][2][3]) and third["b"]["real_dropped"] == pytest.approx(TRUTH["b"][2][4])

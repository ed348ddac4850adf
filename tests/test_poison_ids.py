"""One id space for users: poison CSVs, ``--targets`` and the JSON speak the data set's own item ids.

The data set here is the sample with its ids moved (users 5000 + 3u, items 94 + 7i): its
dense indices are neither the ids nor the ids minus one, so a mix-up of the two reads other
items (or none) and fails.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from apt_core.cli import main
from apt_core.data import load_dataset
from apt_core.errors import ConfigError
from apt_core.experiments.pipeline import Scenario, run_scenario

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def offset_csv(tmp_path_factory):
    frame = pd.read_csv(ROOT / "sample_data" / "ratings.csv")
    frame["user"] = 5000 + 3 * frame["user"]
    frame["item"] = 94 + 7 * frame["item"]
    path = tmp_path_factory.mktemp("offset") / "offset.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def offset_data(offset_csv):
    return load_dataset(str(offset_csv))


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.delenv("APT_HISTORY_DB", raising=False)
    return tmp_path


def _unpopular_ids(data, n: int = 3) -> list[int]:
    """``n`` rarely rated items (3-10 ratings), spread over the catalogue, as the data set's ids."""
    counts = data.interactions.item_counts
    rare = [j for j in np.argsort(counts, kind="stable") if 3 <= counts[j] <= 10]
    return [int(data.item_ids[j]) for j in rare[: 8 * n : 8]]


def _hand_written_poison(path, data, target_ids: list[int], n_fake: int = 30, seed: int = 0) -> None:
    """What a user would write: each fake user rates the targets 5 (by the data set's ids) and
    20 popular filler items near their mean, at most 4 (so the 5s name exactly the targets)."""
    counts = data.interactions.item_counts
    means = data.interactions.item_means()
    popular = np.argsort(-counts, kind="stable")[:100]
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_fake):
        rows += [(user, t, 5) for t in target_ids]
        rows += [(user, int(data.item_ids[j]), int(np.clip(round(means[j]), 1, 4))) for j in rng.choice(popular, 20, replace=False)]
    pd.DataFrame(rows, columns=["user", "item_id", "rating"]).to_csv(path, index=False)


def test_offset_data_ids_are_not_dense_indices(offset_data):
    ids = offset_data.item_ids
    assert not np.array_equal(ids, np.arange(len(ids))) and not np.array_equal(ids, np.arange(len(ids)) + 1)


def test_poison_csv_in_the_data_sets_ids_pushes_exactly_the_named_targets(tmp_path, offset_csv, offset_data):
    targets = _unpopular_ids(offset_data)
    poison = tmp_path / "poison.csv"
    _hand_written_poison(poison, offset_data, targets)
    result = run_scenario(Scenario(dataset=str(offset_csv), poison_file=str(poison), targets=tuple(targets), epochs=10, device="cpu"),
                          keep_models=True)
    # the poisoned training data: the injected users' 5s fall on exactly the named items
    fake = result.fake_profiles[0]
    assert sorted(offset_data.item_ids[fake.items[fake.ratings == 5]].tolist()) == sorted(targets * fake.n_fake_users)
    # each named item's hit ratio rises
    origin = result.phase("origin").evaluations[0].per_target_hr()
    attacked = result.phase("attack").evaluations[0].per_target_hr()
    assert (attacked > origin).all(), (origin, attacked)
    out = result.to_json()
    assert out["targets"] == targets and out["config"]["attack"] == "file"
    assert offset_data.item_ids[out["target_indices"]].tolist() == targets
    # the tables the reports and pages show speak the same ids
    from apt_core.plots.results import rank_shift_frame, reached_users_frame

    shifts = rank_shift_frame(result)
    assert set(shifts["target"]) == set(targets) and set(shifts["user"]) <= set(offset_data.user_ids.tolist())
    assert set(reached_users_frame(result)["user"]) <= set(offset_data.user_ids.tolist())


def test_flagged_users_show_the_data_sets_user_ids():
    from apt_core.plots.detection import flagged_users_frame

    users, items, ratings = np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]), np.array([5.0, 1.0, 5.0, 5.0])
    frame = flagged_users_frame(np.array([0.1, 0.9, 0.5, 0.8]), np.array([False, True, False, True]), np.array([False, False, True, True]),
                                users, items, ratings, 5.0, user_ids=np.array([5003, 5006, 5009]))
    assert frame["user"].tolist() == [5006, "injected 1"]


def test_run_json_targets_are_the_ids_given(homes, capsys, offset_csv, offset_data):
    targets = _unpopular_ids(offset_data, 2)
    argv = ["run", "--dataset", str(offset_csv), "--targets", ",".join(map(str, targets)), "--attack", "average",
            "--epochs", "2", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["targets"] == targets == out["config"]["targets"] == out["target_ids"]
    assert offset_data.item_ids[out["target_indices"]].tolist() == targets
    assert main(["run", "--dataset", str(offset_csv), "--targets", ",".join(map(str, targets)), "--attack", "average",
                 "--epochs", "2", "--no-history"]) == 0
    text = capsys.readouterr().out
    assert "targets (the data set's item ids): " + ", ".join(map(str, targets)) in text


def test_poison_round_trip_gives_the_attacks_result(homes, capsys, offset_csv, offset_data):
    targets = ",".join(map(str, _unpopular_ids(offset_data)))
    common = ["--dataset", str(offset_csv), "--targets", targets, "--epochs", "3", "--seed", "4"]
    out = homes / "fake.csv"
    assert main(["poison", *common, "--attack", "average", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["targets"] == [int(t) for t in targets.split(",")]
    written = pd.read_csv(out)
    assert list(written.columns) == ["user", "item_id", "rating"]
    assert set(written["item_id"]) <= set(offset_data.item_ids.tolist())
    assert set(summary["targets"]) <= set(written["item_id"])
    assert main(["run", *common, "--attack", "average", "--defense", "pcmf", "--json", "--no-cache", "--no-history"]) == 0
    attacked = json.loads(capsys.readouterr().out)
    assert main(["run", *common, "--poison-file", str(out), "--defense", "pcmf", "--json", "--no-cache", "--no-history"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    keys = ("phase", "target_hr", "test_hr", "rank_shift_median")
    assert [{k: r[k] for k in keys} for r in from_file["rows"]] == [{k: r[k] for k in keys} for r in attacked["rows"]]
    assert from_file["targets"] == attacked["targets"]
    assert from_file["config"]["attack"] == "file" and from_file["config"]["poison_file_name"] == "fake.csv"
    assert attacked["config"]["attack"] == "average"


def test_detect_and_history_name_the_poison_file(homes, capsys, offset_csv, offset_data):
    import hashlib

    targets = _unpopular_ids(offset_data, 2)
    poison = homes / "mine.csv"
    _hand_written_poison(poison, offset_data, targets, n_fake=10)
    digest = hashlib.sha256(poison.read_bytes()).hexdigest()
    ids = ",".join(map(str, targets))
    assert main(["detect", "--dataset", str(offset_csv), "--poison-file", str(poison), "--targets", ids,
                 "--detectors", "pca", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["attack"] == "file" and report["config"]["poison_file_sha256"] == digest
    assert report["targets"] == targets
    assert main(["run", "--dataset", str(offset_csv), "--poison-file", str(poison), "--targets", ids, "--epochs", "2", "--json"]) == 0
    capsys.readouterr()
    assert main(["history", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["attack"] == "file"
    assert main(["history", "--show", runs[0]["run_id"]]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["poison_file_name"] == "mine.csv" and config["poison_file_sha256"] == digest


def test_poison_file_with_an_attack_is_an_error(homes, capsys, offset_csv):
    assert main(["run", "--dataset", str(offset_csv), "--poison-file", "x.csv", "--attack", "pga", "--no-history"]) == 2
    assert "a poison file replaces the attack" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="replaces the attack"):
        Scenario(poison_file="x.csv", attack="average").validate()


def test_old_poison_csv_is_refused_with_what_changed(homes, capsys, offset_csv):
    old = homes / "old.csv"
    old.write_text("user,item,rating\n0,3,5\n")
    assert main(["run", "--dataset", str(offset_csv), "--poison-file", str(old), "--epochs", "2", "--no-history"]) == 2
    err = capsys.readouterr().err
    assert "old.csv line 1" in err and "item_id" in err and "item_index" in err

"""Export/import of fake profiles (CSV and the authors' .npy) and the ``poison`` subcommand."""
from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest

from apt_core.attacks import make_attack
from apt_core.attacks.io import load_profiles, save_profiles
from apt_core.cli import add_poison_parser
from apt_core.errors import ConfigError, DataError


@pytest.fixture
def fake(tiny):
    return make_attack("average").generate(tiny, [4, 9], 6, 8, 0)


def _same(a, b) -> None:
    assert a.n_fake_users == b.n_fake_users and a.n_items == b.n_items
    ka = np.lexsort((a.items, a.users))
    kb = np.lexsort((b.items, b.users))
    assert np.array_equal(a.users[ka], b.users[kb])
    assert np.array_equal(a.items[ka], b.items[kb])
    assert np.allclose(a.ratings[ka], b.ratings[kb])


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_round_trip(tmp_path, tiny, fake, suffix):
    path = save_profiles(fake, tmp_path / f"poison{suffix}", tiny.scale)
    _same(fake, load_profiles(path, tiny))


def test_npy_is_the_authors_dense_normalised_layout(tmp_path, tiny, fake):
    path = save_profiles(fake, tmp_path / "p.npy", tiny.scale)
    arr = np.load(path, allow_pickle=False)
    assert arr.shape == (6, tiny.n_items) and arr.dtype == np.float32
    assert arr.max() == 1.0 and set(np.unique(arr[arr > 0]) * 5) <= {1, 2, 3, 4, 5}


def test_npy_continuous_values_snap_to_grid(tmp_path, tiny):
    arr = np.zeros((2, tiny.n_items))
    arr[0, 3] = 0.61  # 3.05 -> 3
    arr[1, 5] = 0.05  # below the scale minimum 1 (0.2 normalised) -> 1
    np.save(tmp_path / "c.npy", arr)
    fake = load_profiles(tmp_path / "c.npy", tiny)
    assert fake.n_fake_users == 2 and sorted(fake.ratings.tolist()) == [1.0, 3.0]


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((3, 7)), "shape"),
        (np.zeros(30), "shape"),
        (np.full((2, 30), 2.0), r"\(0, 1\]"),
        (np.full((2, 30), -0.5), r"\(0, 1\]"),
        (np.full((2, 30), np.nan), "finite"),
        (np.zeros((0, 30)), "no fake users"),
    ],
)
def test_npy_bad_files(tmp_path, tiny, arr, match):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(DataError, match=match):
        load_profiles(tmp_path / "bad.npy", tiny)


def test_npy_pickles_are_refused_not_loaded(tmp_path, tiny):
    obj = np.array([{"payload": 1}, None], dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(DataError, match="numeric"):
        load_profiles(tmp_path / "obj.npy", tiny)
    (tmp_path / "raw.npy").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError):
        load_profiles(tmp_path / "raw.npy", tiny)


@pytest.mark.parametrize(
    "text, match",
    [
        ("user,item_index,rating\n0,1,7\n", "off the scale"),
        ("user,item_index,rating\n0,1,0\n", "off the scale"),
        ("user,item_index,rating\n0,30,3\n", "line 2: item index '30' is out of range"),
        ("user,item_id,rating\n0,1,3\n0,1,4\n", "line 3: fake user 0 rates item 1 a second time"),
        ("user,item_id,rating\n0,1\n", "line 2: every row must have 3 columns"),
        ("user,item_id,rating\n0,1,3\n0,x,3\n", "line 3: item id 'x' is not an item"),
        ("user,item_id,rating\n0,1,high\n", "line 2: rating 'high' is not a number"),
        ("user,item_id,rating\n-1,1,3\n", "non-negative whole number"),
        ("user,item_id,rating\n0.5,1,3\n", "non-negative whole number"),
        ("user,item_id,rating\n0,1,nan\n", "finite"),
        ("user,item_id,rating\n", "no fake ratings"),
        ("", "empty"),
        ("0,1,3\n", "expected the header user,item_id,rating"),
        ("user,item,rating\n0,1,3\n", "ambiguous"),
    ],
)
def test_csv_bad_files(tmp_path, tiny, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        load_profiles(tmp_path / "bad.csv", tiny)


def test_csv_snaps_ratings_and_renumbers_users(tmp_path, tiny):
    (tmp_path / "p.csv").write_text("# a comment\nuser,item_id,rating\n3,1,3.4\n\n3,2,4.6\n7,1,5\n")
    fake = load_profiles(tmp_path / "p.csv", tiny)
    assert fake.n_fake_users == 2
    assert fake.users.tolist() == [0, 0, 1] and fake.ratings.tolist() == [3.0, 5.0, 5.0]


# -- the data set's own ids: a data set whose item ids are neither the dense indices nor off by one

@pytest.fixture
def offset_data(tiny):
    """``tiny`` with user ids 1000 + 3u and item ids 101 + 7j (dense index j)."""
    from apt_core.data.dataset import build_rating_data

    return build_rating_data("offset", 1000 + 3 * tiny.users, 101 + 7 * tiny.items, tiny.ratings, tiny.scale)


def test_csv_holds_the_data_sets_own_item_ids(tmp_path, offset_data, fake):
    train = offset_data.interactions
    path = save_profiles(fake, tmp_path / "p.csv", train.scale, offset_data.item_ids)
    lines = path.read_text().splitlines()
    assert lines[0] == "user,item_id,rating"
    written = {int(line.split(",")[1]) for line in lines[1:]}
    assert written == {101 + 7 * j for j in set(fake.items.tolist())}
    _same(fake, load_profiles(path, train, offset_data.item_ids))


def test_hand_written_csv_names_items_by_id(tmp_path, offset_data):
    train, ids = offset_data.interactions, offset_data.item_ids
    (tmp_path / "p.csv").write_text("user,item_id,rating\n0,108,5\n0,101,2\n1,108,5\n")
    fake = load_profiles(tmp_path / "p.csv", train, ids)
    assert ids[fake.items].tolist() == [108, 101, 108]
    # the same numbers as dense indices are other items
    (tmp_path / "d.csv").write_text("user,item_index,rating\n0,1,5\n0,0,2\n")
    assert ids[load_profiles(tmp_path / "d.csv", train, ids).items].tolist() == [108, 101]


def test_unknown_item_id_names_the_id_the_file_and_the_line(tmp_path, offset_data):
    (tmp_path / "p.csv").write_text("user,item_id,rating\n0,101,5\n0,102,5\n")
    with pytest.raises(DataError, match=r"p.csv line 3: item id '102' is not an item of the data set \(ids 101\.\."):
        load_profiles(tmp_path / "p.csv", offset_data.interactions, offset_data.item_ids)


def test_csv_without_ids_is_written_as_dense_indices(tmp_path, tiny, fake):
    path = save_profiles(fake, tmp_path / "p.csv", tiny.scale)
    assert path.read_text().splitlines()[0] == "user,item_index,rating"


def test_unknown_suffix_and_missing_file(tmp_path, tiny, fake):
    with pytest.raises(ConfigError, match=".csv or .npy"):
        save_profiles(fake, tmp_path / "p.json", tiny.scale)
    with pytest.raises(ConfigError, match=".csv or .npy"):
        load_profiles(tmp_path / "p.txt", tiny)
    with pytest.raises(DataError, match="not found"):
        load_profiles(tmp_path / "missing.csv", tiny)


def test_poison_file_drives_a_scenario(tmp_path, sample_split):
    from apt_core.experiments.pipeline import Scenario, run_scenario

    train = sample_split.train
    fake = make_attack("average").generate(train, [5, 6], 10, 20, 0)
    path = save_profiles(fake, tmp_path / "p.npy", train.scale)
    result = run_scenario(Scenario(dataset="sample", poison_file=str(path), targets=(5, 6), epochs=3, device="cpu"))
    assert result.fake_profiles[0].n_fake_users == 10
    assert [r["phase"] for r in result.rows()][:2] == ["origin", "attack"]


def test_poison_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_poison_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "fake.csv"
    args = parser.parse_args(["poison", "--dataset", "sample", "--attack", "average", "--targets", "unpopular", "--out", str(out), "--json", "--device", "cpu"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_fake_users"] == 18 and out.is_file()
    assert 0.2 < summary["stealth"]["mean_corr_fake"] < 0.9
    args = parser.parse_args(["poison", "--dataset", "sample", "--out", str(out)])
    with pytest.raises(ConfigError, match="needs an attack"):
        args.func(args)

"""Loaders on the real files and on small files the tests write (ML-1M, Yelp/NCF, CSV)."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.data import RatingScale, leave_one_out, load_csv, load_dataset, load_ncf_split
from apt_core.data.loaders import load_movielens_1m, load_yelp
from apt_core.errors import DataError


def test_ml100k_real(ml100k):
    s = ml100k.summary()
    assert (s["n_users"], s["n_items"], s["n_ratings"]) == (943, 1682, 100000)
    assert ml100k.scale == RatingScale(1, 5, 1)
    assert ml100k.title(0) == "Toy Story (1995)"
    assert ml100k.item_ids[0] == 1 and ml100k.user_ids[0] == 1


def test_filmtrust_real(data_dir):
    data = load_dataset("filmtrust", data_dir)
    # The paper's filter (>= 15 ratings) and keep-last deduplication of the 3 repeated pairs.
    assert (data.n_users, data.n_items, data.n_ratings) == (796, 2011, 30880)
    assert data.scale == RatingScale(0.5, 4.0, 0.5)
    assert np.all(data.scale.on_grid(data.interactions.ratings))


def test_reference_split_matches_files(data_dir):
    data = load_ncf_split(data_dir / "reference-splits" / "ml-100k")
    split = leave_one_out(data, seed=123)
    assert len(split.train) == 99057
    assert (split.test_items >= 0).sum() == 943
    # The authors' 0-based ids are kept as original ids.
    assert data.user_ids[0] == 0
    ft = load_ncf_split(data_dir / "reference-splits" / "filmtrust")
    assert ft.scale.maximum == 8.0 and len(leave_one_out(ft).train) == 30084


def test_ml1m_format(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n2::30::1::1\n")
    (folder / "movies.dat").write_text("10::Alpha (2000)::Drama\n20::Beta (1999)::Comedy\n30::Gamma::Horror\n", encoding="latin-1")
    data = load_movielens_1m(tmp_path)
    assert (data.n_users, data.n_items, data.n_ratings) == (2, 3, 4)
    assert data.title(0) == "Alpha (2000)" and data.title(2) == "Gamma"
    assert load_dataset(str(folder)).n_ratings == 4


def test_yelp_ncf_format(tmp_path):
    folder = tmp_path / "yelp"
    folder.mkdir()
    (folder / "yelp.train.rating").write_text("0\t0\t5\t1\n0\t1\t3\t1\n1\t1\t4\t1\n1\t2\t2\t1\n")
    (folder / "yelp.test.rating").write_text("0\t2\t4\t1\n1\t0\t1\t1\n")
    data = load_yelp(tmp_path)
    split = leave_one_out(data)
    assert data.n_ratings == 6 and len(split.train) == 4
    assert split.test_items.tolist() == [2, 0]


def test_yelp_missing_says_where(tmp_path):
    with pytest.raises(DataError, match="yelp.train.rating"):
        load_yelp(tmp_path)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty"),
        ("user,item,rating\n", "header but no ratings"),
        ("1,2,4\n1,3\n", "line 2: expected 3 to 4 columns"),
        ("1,2,4\n2,3,abc\n", "line 2: rating 'abc' is not a number"),
        ("1\t2\t4\n2\t3\t-1\n", "line 2: rating -1 must be positive"),
        ("1,2,4,5,6\n", "line 1: expected 3 to 4 columns"),
    ],
)
def test_malformed_csv(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        load_csv(path)
    assert str(path) in str(info.value)


def test_rating_outside_known_scale(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t0\n1\t2\t7\t0\n")
    with pytest.raises(DataError, match=r"u.data, line 2: rating 7 is outside the scale 1..5"):
        load_dataset("ml-100k", tmp_path)


def test_csv_header_strings_and_duplicates(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,timestamp\nalice,x,4,1\nbob,x,2,2\nalice,y,1,3\nalice,x,5,4\n")
    data = load_csv(path)
    assert (data.n_users, data.n_items, data.n_ratings) == (2, 2, 3)
    alice, x = list(data.user_ids).index("alice"), list(data.item_ids).index("x")
    inter = data.interactions
    mask = (inter.users == alice) & (inter.items == x)
    assert inter.ratings[mask].tolist() == [5.0]  # duplicated pair: keep the last


def test_unknown_dataset_lists_known():
    with pytest.raises(DataError, match="sample, ml-100k, ml-1m, filmtrust, yelp"):
        load_dataset("nope-not-a-dataset")


def test_missing_download_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("APT_DATA_DIR", raising=False)
    import urllib.request

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("ml-1m", tmp_path / "empty")


def test_item_index_unknown_ids(sample_data):
    assert sample_data.item_index([1, 2]).tolist() == [0, 1]
    with pytest.raises(DataError, match="unknown item id"):
        sample_data.item_index([99999])


def test_sample_is_generated_by_committed_script(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "sample_data" / "make_sample.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "ratings.csv").read_bytes() == (root / "sample_data" / "ratings.csv").read_bytes()
    assert (tmp_path / "items.csv").read_bytes() == (root / "sample_data" / "items.csv").read_bytes()


def test_sample_shape(sample_data, sample_split):
    counts = sample_split.train.item_counts
    # Long tail: an unpopular pool for targets, and a few very popular items.
    assert ((counts >= 1) & (counts < 5)).sum() >= 50
    assert counts.max() > 20 * np.median(counts)
    assert sample_data.title(0) != "item 1"

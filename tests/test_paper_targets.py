"""``--targets paper``: the authors' fixed targets, only on the authors' split files."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.data import leave_one_out, load_dataset, load_ncf_split
from apt_core.data.paper_targets import AUTHORS_SPLITS, PAPER_TARGET_MODES, paper_targets
from apt_core.errors import ConfigError
from conftest import make_tiny


def _reference(data_dir, name):
    prefix = data_dir / "reference-splits" / name
    if not prefix.with_name(f"{name}.train.rating").is_file():
        pytest.skip(f"the authors' {name} split is not in {data_dir}")
    return load_dataset(str(prefix))


@pytest.mark.parametrize("name, mode, expected", [
    ("ml-100k", "paper", [1485, 1320, 821, 1562, 1531]),
    ("ml-100k", "paper-random", [1018, 946, 597, 575, 516]),
    ("filmtrust", "paper-unpopular", [1576, 926, 942, 848, 107]),
    ("filmtrust", "paper-random", [539, 117, 1600, 1326, 208]),
])
def test_paper_targets_on_the_authors_splits(data_dir, name, mode, expected):
    data = _reference(data_dir, name)
    split = leave_one_out(data, 0)
    t = paper_targets(data, split, mode)
    assert t.tolist() == expected
    # the dense ids are the files' own ids, and unpopular ones are rated 1-4 times in train
    assert [int(data.item_ids[i]) for i in t] == expected
    if PAPER_TARGET_MODES[mode] == "unpopular":
        assert ((split.train.item_counts[t] >= 1) & (split.train.item_counts[t] < 5)).all()


def test_paper_targets_refused_on_a_split_made_here(data_dir):
    data = load_dataset("ml-100k", data_dir)  # same data set, same shape, our own split
    assert (data.n_users, data.n_items) == (943, 1682)
    with pytest.raises(ConfigError, match="authors' split files"):
        paper_targets(data, leave_one_out(data, 0), "paper")


def _write_split(tmp_path, n_users, n_items, name="x", shift=0):
    rng = np.random.default_rng(0)
    train, test = [], []
    for u in range(n_users):
        items = rng.choice(n_items, 3, replace=False)
        train += [f"{u}\t{i + shift}\t{1 + (u + i) % 5}" for i in items[:2]]
        test.append(f"{u}\t{items[2] + shift}\t3")
    for i in range(n_items):  # every item id present
        train.append(f"{i % n_users}\t{i + shift}\t4")
    (tmp_path / f"{name}.train.rating").write_text("\n".join(train) + "\n")
    (tmp_path / f"{name}.test.rating").write_text("\n".join(test) + "\n")
    return load_ncf_split(tmp_path / name)


def test_paper_targets_refused_on_other_splits(tmp_path):
    small = _write_split(tmp_path, 30, 40)
    with pytest.raises(ConfigError, match="none of the authors' splits"):
        paper_targets(small, leave_one_out(small, 0), "paper")
    # the authors' shape but not their files (training ratings differ)
    fake = _write_split(tmp_path, 943, 1682, "ml-100k")
    with pytest.raises(ConfigError, match="training ratings"):
        paper_targets(fake, leave_one_out(fake, 0), "paper")
    # ids not 0-based
    shifted = _write_split(tmp_path, 943, 1682, "shifted", shift=1)
    with pytest.raises(ConfigError, match="0-based"):
        paper_targets(shifted, leave_one_out(shifted, 0), "paper")


def test_unknown_paper_mode_and_data_without_a_fixed_split():
    from apt_core.data.dataset import RatingData

    tiny = make_tiny(20, 10)
    data = RatingData("tiny", tiny, np.arange(20), np.arange(10))
    with pytest.raises(ConfigError, match="no fixed test file"):
        paper_targets(data, leave_one_out(data, 0), "paper")
    with pytest.raises(ConfigError, match="unknown paper target set"):
        paper_targets(data, leave_one_out(data, 0), "paper-popular")
    assert {s.name for s in AUTHORS_SPLITS} == {"ml-100k", "ml-1m", "filmtrust", "yelp"}


# --- through the command line ----------------------------------------------------------

@pytest.fixture
def cli_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.delenv("APT_HISTORY_DB", raising=False)
    return tmp_path


def test_cli_targets_paper_on_the_authors_split(data_dir, cli_dirs, capsys):
    import json

    from apt_core.cli import main

    prefix = data_dir / "reference-splits" / "filmtrust"
    if not prefix.with_name("filmtrust.train.rating").is_file():
        pytest.skip("the authors' FilmTrust split is not available")
    for mode, expected in (("paper", [1576, 926, 942, 848, 107]), ("paper-random", [539, 117, 1600, 1326, 208])):
        assert main(["run", "--dataset", str(prefix), "--targets", mode, "--epochs", "1", "--no-history", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["targets"] == expected and out["target_ids"] == expected and out["config"]["targets"] == mode


def test_cli_refuses_paper_targets_elsewhere(cli_dirs, capsys):
    from apt_core.cli import main

    assert main(["run", "--dataset", "sample", "--targets", "paper", "--epochs", "1", "--no-history"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --targets paper needs the APT authors' split files") and "Traceback" not in err
    # A misspelled target word reads as a text item id (data sets may have those): unknown, with the words listed.
    assert main(["run", "--dataset", "sample", "--targets", "paper-popular", "--epochs", "1", "--no-history"]) == 2
    err = capsys.readouterr().err
    assert "unknown item id(s) for sample: paper-popular" in err and "paper-unpopular" in err

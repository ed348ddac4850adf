"""One record per data set; the README's method table generated from the declarations."""
from __future__ import annotations

from pathlib import Path

import pytest

from apt_core.data import loaders
from apt_core.data.loaders import DATASETS, DatasetSpec, dataset_spec, load_csv, load_dataset, register_dataset
from apt_core.defenses.erm import DATASET_SETTINGS, dataset_key, settings_for
from apt_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_records_feed_apt_settings_and_aliases():
    assert list(DATASET_SETTINGS) == [n for n, s in DATASETS.items() if s.apt]
    assert DATASET_SETTINGS["filmtrust"].r_plus == 0.25 and DATASET_SETTINGS["ml-100k"].m_star == 400
    assert dataset_key("MovieLens-100K") == "ml-100k" and dataset_key("ML1M") == "ml-1m" and dataset_key("sample") == "other"
    assert dataset_spec("movielens100k").name == "ml-100k"
    downloadable = {n for n, s in DATASETS.items() if s.archive is not None}
    assert downloadable == {"ml-100k", "ml-1m", "filmtrust"}
    assert all(s.archive.md5 for n, s in DATASETS.items() if n.startswith("ml-")), "GroupLens publishes checksums"


def test_adding_a_data_set_is_one_record(tmp_path, monkeypatch):
    """A new record is loadable by name, gets APT's per-data-set schedule, and needs nothing else."""
    path = tmp_path / "tiny.csv"
    path.write_text("user,item,rating\n" + "\n".join(f"{u},{i},{1 + (u * i) % 5}" for u in range(6) for i in range(5)) + "\n")
    monkeypatch.setattr(loaders, "DATASETS", dict(DATASETS))
    spec = register_dataset(DatasetSpec("tiny-test", "Tiny (test)", lambda data_dir=None: load_csv(path, name="tiny-test"),
                                        aliases=("tinytest",), apt={"t": 5.0, "t_pre": 1, "t_inter": 1, "m_star": 3, "r_plus": 0.1}))
    assert load_dataset("tiny-test").n_ratings == 30 and load_dataset("tinytest").name == "tiny-test"
    assert settings_for("tiny-test", 5).m_star == 3 and dataset_key("TINY-TEST") == "tiny-test"
    with pytest.raises(ConfigError, match="already taken"):
        register_dataset(DatasetSpec("other-name", "x", spec.load, aliases=("tiny-test",)))
    with pytest.raises(ConfigError, match="needs a name"):
        register_dataset(DatasetSpec(" ", "x", spec.load))


def test_readme_method_table_is_generated_from_the_declarations():
    from scripts.method_table import BEGIN, END, method_table

    text = (ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "README.md must hold the generated method table"
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == method_table().strip(), "README method table is stale: run `python scripts/method_table.py --write`"


def test_method_table_lists_every_method_and_parameter():
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from scripts.method_table import method_table

    table = method_table()
    for name, cls in {**ATTACKS, **DEFENSES}.items():
        assert f"`{name}`" in table and cls.paper in table and cls.threat_model in table
        for p in cls.params:
            assert f"`{p.name}`" in table

"""A rating file cannot shift its scale silently: non-finite ratings and far outliers are errors with file and line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apt_core.data.dataset import RatingScale
from apt_core.data.loaders import load_csv, load_ncf_split
from apt_core.errors import DataError


def _write(tmp_path: Path, rows: list[str], name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def _ratings(n_users: int = 6, n_items: int = 5) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"{u},{i},{int(rng.integers(1, 6))}" for u in range(n_users) for i in range(n_items)]


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_rating_is_an_error_with_its_line(tmp_path, bad):
    rows = _ratings()
    rows[7] = f"1,2,{bad}"
    with pytest.raises(DataError, match=r"r\.csv, line 8: .*is not a (finite )?number"):
        load_csv(_write(tmp_path, rows))


@pytest.mark.parametrize("stray", ["1000", "1e300", "16"])
def test_a_far_outlier_cannot_become_the_scale_maximum(tmp_path, stray):
    rows = _ratings()
    rows[3] = f"0,3,{stray}"
    with pytest.raises(DataError, match=r"line 4: rating .* is far above every other rating .*--scale 1\.\."):
        load_csv(_write(tmp_path, rows))


def test_a_declared_scale_accepts_what_it_declares(tmp_path):
    rows = _ratings()
    rows[3] = "0,3,1000"
    data = load_csv(_write(tmp_path, rows), scale=RatingScale(1.0, 1000.0, 1.0))
    assert data.scale.maximum == 1000.0


@pytest.mark.parametrize("values", [(1, 2, 3, 4, 5), (0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), (10, 20, 50, 100)])
def test_real_scales_still_load(tmp_path, values):
    rows = [f"{u},{i},{values[(u + i) % len(values)]}" for u in range(8) for i in range(len(values))]
    data = load_csv(_write(tmp_path, rows))
    assert data.scale.maximum == pytest.approx(max(values))


def test_a_common_top_value_is_a_scale_not_a_typo(tmp_path):
    # A "like" file of 1s and 5s: 5 is more than 3 times 1, but half the ratings carry it.
    rows = [f"{u},{i},{1 if (u + i) % 2 else 5}" for u in range(8) for i in range(6)]
    assert load_csv(_write(tmp_path, rows)).scale.maximum == 5.0


def test_ncf_split_checks_each_file(tmp_path):
    train = [f"{u}\t{i}\t{1 + (u + i) % 5}" for u in range(5) for i in range(4)]
    test = [f"{u}\t4\t3" for u in range(5)]
    test[2] = "2\t4\tinf"
    _write(tmp_path, train, "d.train.rating")
    _write(tmp_path, test, "d.test.rating")
    with pytest.raises(DataError, match=r"d\.test\.rating, line 3: .*not a finite number"):
        load_ncf_split(tmp_path / "d")

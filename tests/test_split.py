"""Leave-one-out split, target selection and attack budgets (DESIGN section 2)."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.data import attack_budget, leave_one_out, select_targets
from apt_core.errors import ConfigError


def test_leave_one_out_holds_out_one_per_user(sample_data):
    split = leave_one_out(sample_data, seed=3)
    inter = sample_data.interactions
    assert len(split.train) + (split.test_items >= 0).sum() == len(inter)
    assert np.all(split.test_items >= 0)  # every sample user has >= 8 ratings
    train_keys = set((split.train.users * inter.n_items + split.train.items).tolist())
    test_keys = np.arange(inter.n_users) * inter.n_items + split.test_items
    assert not train_keys.intersection(test_keys.tolist())
    all_keys = set((inter.users * inter.n_items + inter.items).tolist())
    assert set(test_keys.tolist()) <= all_keys


def test_split_is_seeded(sample_data):
    a, b, c = leave_one_out(sample_data, 1), leave_one_out(sample_data, 1), leave_one_out(sample_data, 2)
    assert np.array_equal(a.test_items, b.test_items)
    assert not np.array_equal(a.test_items, c.test_items)


def test_targets_unpopular_and_random(sample_split):
    counts = sample_split.train.item_counts
    t = select_targets(sample_split, "unpopular", 5, seed=0)
    assert len(t) == 5 and np.all((counts[t] >= 1) & (counts[t] < 5))
    assert np.array_equal(t, select_targets(sample_split, "unpopular", 5, seed=0))
    r = select_targets(sample_split, "random", 5, seed=1)
    assert len(np.unique(r)) == 5


def test_targets_explicit_validated(sample_split):
    assert select_targets(sample_split, [3, 1]).tolist() == [3, 1]
    with pytest.raises(ConfigError, match="duplicate"):
        select_targets(sample_split, [1, 1])
    with pytest.raises(ConfigError, match="out of range"):
        select_targets(sample_split, [10**6])
    with pytest.raises(ConfigError, match="empty"):
        select_targets(sample_split, [])
    with pytest.raises(ConfigError, match="unknown target mode"):
        select_targets(sample_split, "famous")


def test_budget(sample_split):
    b = attack_budget(sample_split.train, 0.03)
    assert b.n_fake_users == round(0.03 * 600)
    assert b.n_filler == round(len(sample_split.train) / 600)
    assert attack_budget(sample_split.train, 0.05, n_filler=7).n_filler == 7
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="attack-size"):
            attack_budget(sample_split.train, bad)
    with pytest.raises(ConfigError, match="filler"):
        attack_budget(sample_split.train, 0.03, n_filler=10**6)

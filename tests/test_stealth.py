"""Stealth statistics: fake profiles next to the real users."""
from __future__ import annotations

import json

import numpy as np
import pytest

from apt_core.attacks import make_attack
from apt_core.data.split import attack_budget, select_targets
from apt_core.evaluation.stealth import infer_targets, stealth_statistics


@pytest.fixture(scope="module")
def setting(sample_split):
    train = sample_split.train
    targets = select_targets(sample_split, "unpopular", 5, 0)
    budget = attack_budget(train, 0.03)
    return train, targets, budget


def _stats(setting, name, **params):
    train, targets, budget = setting
    fake = make_attack(name, **params).generate(train, targets, budget.n_fake_users, budget.n_filler, 0)
    return stealth_statistics(train, fake, targets)


def test_aush_profiles_are_closer_to_real_ones_than_random(setting):
    rand = _stats(setting, "random")
    aush = _stats(setting, "aush")
    # Filler popularity: AUSH's fillers are real users' items; Random's are uniform draws.
    gap = lambda s: abs(np.log(s.filler_popularity_fake / s.filler_popularity_real))  # noqa: E731
    assert gap(aush) < gap(rand)
    # Nearest real user: AUSH's profiles sit much closer to some real profile.
    assert aush.nn_distance_fake < rand.nn_distance_fake
    # Ratings follow the items' means as real ratings do; Random's ignore them.
    assert abs(aush.mean_corr_fake - aush.mean_corr_real) < abs(rand.mean_corr_fake - rand.mean_corr_real)


def test_average_correlates_with_item_means_random_does_not(setting):
    assert _stats(setting, "average").mean_corr_fake > 0.3
    assert abs(_stats(setting, "random").mean_corr_fake) < 0.15


def test_fields_and_serialisation(setting):
    train, targets, _ = setting
    s = _stats(setting, "random")
    d = s.to_dict()
    json.dumps(d)
    assert d["n_real_users"] == train.n_real_users
    assert np.isclose(sum(s.rating_hist_fake), 1) and np.isclose(sum(s.rating_hist_real), 1)
    assert 0 <= s.tv_distance <= 1 and s.wasserstein >= 0
    assert 0 <= s.nn_distance_real <= 1 and 0 <= s.nn_distance_fake <= 1
    assert len(s.rows()) == 6


def test_identical_fakes_have_zero_distribution_distance(tiny):
    from apt_core.attacks.base import FakeProfiles

    # Fake users that copy real users exactly: same histogram, nearest distance 0.
    rows = tiny.users < 3
    fake = FakeProfiles(tiny.users[rows], tiny.items[rows], tiny.ratings[rows], 3, tiny.n_items)
    s = stealth_statistics(tiny, fake, targets=np.zeros(0, np.int64))
    assert s.nn_distance_fake == pytest.approx(0.0, abs=1e-9)
    assert s.profile_size_fake == pytest.approx(np.bincount(tiny.users)[:3].mean())


def test_targets_are_inferred(setting):
    train, targets, budget = setting
    fake = make_attack("average").generate(train, targets, budget.n_fake_users, budget.n_filler, 0)
    assert set(infer_targets(fake, train.scale.maximum).tolist()) == set(targets.tolist())

"""The adaptive attacks of docs/detection.md ("Attackers who know the detector"): ``subset``
(k of the n targets per account, decoy and framing accounts), ``segment`` (Burke et al.) and
``adaptive`` (the strongest subset variant the product's detector does not flag).  The
registry-wide rules (budget, grid, determinism, bad arguments) are in test_conformance.py."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from apt_core.attacks import make_attack
from apt_core.data.dataset import Interactions, RatingScale
from apt_core.detection import make_detector
from apt_core.errors import ConfigError
from conftest import make_tiny

TARGETS = np.array([2, 5, 7, 11, 13])


@pytest.fixture(scope="module")
def data() -> Interactions:
    return make_tiny(n_users=300, n_items=120, density=0.08, seed=3)


def _rows(fake, u):
    sel = fake.users == u
    return fake.items[sel], fake.ratings[sel]


@pytest.mark.parametrize("n_fake", [10, 7, 13])
def test_subset_rates_k_targets_per_account_balanced_over_targets(data, n_fake):
    fake = make_attack("subset", k=3).generate(data, TARGETS, n_fake, 8, random_state=1)
    for u in range(n_fake):
        items, ratings = _rows(fake, u)
        is_target = np.isin(items, TARGETS)
        assert is_target.sum() == 3, "each account rates exactly k targets"
        assert np.all(ratings[is_target] == data.scale.maximum)
        assert (~is_target).sum() == 8, "the full filler budget, as Average's"
    per_target = np.array([(fake.items == t).sum() for t in TARGETS])
    assert per_target.sum() == 3 * n_fake
    assert per_target.max() - per_target.min() <= 1, f"unbalanced: {per_target}"


def test_subset_shade_rates_the_other_targets_one_step_below_the_maximum(data):
    """``shade``: the k top-rated targets and the fillers are those of the plain attack (same
    seed); the other n - k targets get one grid step below the maximum."""
    plain = make_attack("subset", k=2).generate(data, TARGETS, 9, 6, random_state=3)
    shaded = make_attack("subset", k=2, shade=True).generate(data, TARGETS, 9, 6, random_state=3)
    below = data.scale.maximum - data.scale.step
    for u in range(9):
        p_items, p_ratings = _rows(plain, u)
        s_items, s_ratings = _rows(shaded, u)
        assert set(TARGETS.tolist()) <= set(s_items.tolist()), "a shaded account rates every target"
        top = s_items[np.isin(s_items, TARGETS) & (s_ratings == data.scale.maximum)]
        assert sorted(top.tolist()) == sorted(p_items[np.isin(p_items, TARGETS)].tolist())
        rest = np.isin(s_items, TARGETS) & ~np.isin(s_items, top)
        assert rest.sum() == len(TARGETS) - 2 and np.all(s_ratings[rest] == below)
        keep = ~np.isin(s_items, TARGETS)
        np.testing.assert_array_equal(s_items[keep], p_items[~np.isin(p_items, TARGETS)])
        np.testing.assert_array_equal(s_ratings[keep], p_ratings[~np.isin(p_items, TARGETS)])


@pytest.mark.parametrize("n_targets,k", [(12, 6), (16, 8)], ids=["enumerated", "one-at-a-time"])
def test_subset_balance_with_many_targets(data, n_targets, k):
    targets = np.arange(20, 20 + n_targets)
    fake = make_attack("subset", k=k).generate(data, targets, 11, 3, random_state=0)
    per_target = np.array([(fake.items == t).sum() for t in targets])
    assert per_target.sum() == 11 * k and per_target.max() - per_target.min() <= 1, per_target


def test_subset_spreads_target_pairs(data):
    """With 10 accounts x 3 of 5 targets every pair of targets is shared by exactly 3 accounts
    (30 pair slots over 10 pairs): the greedy design evens out the pairs, not only the targets."""
    fake = make_attack("subset", k=3).generate(data, TARGETS, 10, 5, random_state=4)
    per_pair = []
    for a, b in itertools.combinations(TARGETS, 2):
        per_pair.append(sum(1 for u in range(10) if {a, b} <= set(_rows(fake, u)[0].tolist())))
    assert max(per_pair) - min(per_pair) <= 1, per_pair


def test_subset_default_k_and_refused_k(data):
    fake = make_attack("subset").generate(data, TARGETS, 6, 4, random_state=0)
    assert all(np.isin(_rows(fake, u)[0], TARGETS).sum() == len(TARGETS) - 1 for u in range(6))
    with pytest.raises(ConfigError, match="subset.k"):
        make_attack("subset", k=6).generate(data, TARGETS, 6, 4)


def _brute_force_top_pair(data: Interactions, exclude) -> tuple[int, int]:
    top = data.ratings == data.scale.maximum
    liked = [set(data.items[top & (data.users == u)].tolist()) - set(exclude) for u in range(data.n_users)]
    counts: dict[tuple[int, int], int] = {}
    for s in liked:
        for pair in itertools.combinations(sorted(s), 2):
            counts[pair] = counts.get(pair, 0) + 1
    return min(counts, key=lambda p: (-counts[p], p))


def _most_surprising_pair(data: Interactions, exclude) -> tuple[int, int]:
    from apt_core.detection.cogroup import pair_surprise

    _, S, _ = pair_surprise(data)
    S = S.toarray()
    S[list(exclude), :] = S[:, list(exclude)] = -1
    i, j = np.unravel_index(np.argmax(np.triu(S, 1)), S.shape)
    return int(i), int(j)


def test_clique_framing_top_rates_a_planted_triangle(data):
    """``framing_rule="clique"`` finds three items whose three pairs a group of real fans top-rates
    together (planted here: 25 users give 5 stars to items 40, 41, 42) and every framing account
    top-rates all three out of its filler budget."""
    fans = np.arange(25)
    keep = ~(np.isin(data.users, fans) & np.isin(data.items, [40, 41, 42]))
    users = np.concatenate([data.users[keep], np.repeat(fans, 3)])
    items = np.concatenate([data.items[keep], np.tile([40, 41, 42], len(fans))])
    ratings = np.concatenate([data.ratings[keep], np.full(3 * len(fans), data.scale.maximum, np.float32)])
    planted = Interactions(users, items, ratings, data.n_users, data.n_items, data.scale)
    result = make_attack("subset", k=2, framing=0.3, framing_rule="clique").run(planted, TARGETS, 10, 6, random_state=0)
    assert [sorted(t) for t in result.diagnostics["framing_pairs"]][0] == [40, 41, 42]
    for u in range(result.diagnostics["pushers"], 10):
        items_u, ratings_u = _rows(result.profiles, u)
        assert {40, 41, 42} <= set(items_u[ratings_u == data.scale.maximum].tolist())
        assert len(items_u) == 6, "the clique's three items come out of the filler budget"


@pytest.mark.parametrize("rule", ["count", "surprise"])
def test_decoy_and_framing_accounts_inside_the_budget(data, rule):
    result = make_attack("subset", k=2, decoys=0.25, framing=0.2, framing_rule=rule).run(data, TARGETS, 20, 6, random_state=2)
    fake, diag = result.profiles, result.diagnostics
    assert fake.n_fake_users == 20, "decoys and framing accounts are shares of the budget, not extra accounts"
    assert (diag["pushers"], diag["decoys"], diag["framing"]) == (11, 5, 4)
    decoy_pair = diag["decoy_items"]
    counts = data.real_item_counts
    assert not set(decoy_pair) & set(TARGETS.tolist())
    assert all(counts[i] <= np.quantile(counts, 0.1) for i in decoy_pair), "decoy items are obscure"
    frame_pair = tuple(diag["framing_pairs"][0])
    expected = (_brute_force_top_pair if rule == "count" else _most_surprising_pair)(data, TARGETS.tolist())
    assert frame_pair == expected
    for u in range(20):
        items, ratings = _rows(fake, u)
        at_max = set(items[ratings == data.scale.maximum].tolist())
        n_targets = np.isin(items, TARGETS).sum()
        assert len(items) - n_targets <= 6
        if u < 11:
            assert n_targets == 2
        elif u < 16:
            assert n_targets == 0 and set(decoy_pair) <= at_max
        else:
            assert n_targets == 0 and set(frame_pair) <= at_max
    poisoned = fake.inject(data)
    assert poisoned.n_real_users == data.n_users, "decoy and framing accounts are fake users, never counted"


def test_decoys_and_framing_need_a_pair_in_the_filler_budget(data):
    with pytest.raises(ConfigError, match="at least 2"):
        make_attack("subset", decoys=0.5).generate(data, TARGETS, 10, 1)


def test_segment_rates_the_targets_fans_favourites_max_and_fillers_min():
    """Users who rated the targets top-rate items 20..24; everybody else top-rates 30..39
    (more often overall): the segment must be the fans' items, not the popular ones."""
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    targets = np.array([0, 1])
    for u in range(80):
        fan = u < 20
        liked = np.arange(20, 25) if fan else rng.choice(np.arange(30, 40), 6, replace=False)
        other = rng.choice(np.arange(40, 60), 5, replace=False)
        rated = np.concatenate([liked, other] + ([targets[u % 2 : u % 2 + 1]] if fan else []))
        users += [u] * len(rated)
        items += rated.tolist()
        ratings += [5.0] * len(liked) + rng.integers(1, 4, len(other)).tolist() + ([3.0] if fan else [])
    data = Interactions(np.array(users), np.array(items), np.array(ratings, np.float32), 80, 60, RatingScale(1, 5, 1))
    fake = make_attack("segment", segment_size=5).generate(data, targets, 6, 9, random_state=0)
    for u in range(6):
        row_items, row_ratings = _rows(fake, u)
        rating_of = dict(zip(row_items.tolist(), row_ratings.tolist()))
        assert all(rating_of[i] == 5.0 for i in range(20, 25)), "the segment at the maximum"
        assert all(rating_of[t] == 5.0 for t in targets)
        fillers = [i for i in rating_of if i not in set(range(20, 25)) | set(targets.tolist())]
        assert len(fillers) == 4 and all(rating_of[i] == 1.0 for i in fillers), "fillers at the minimum"


def test_adaptive_returns_a_variant_the_detector_does_not_flag_and_is_deterministic(data):
    n_fake = 15
    first = make_attack("adaptive").run(data, TARGETS, n_fake, 10, random_state=5)
    again = make_attack("adaptive").run(data, TARGETS, n_fake, 10, random_state=5)
    assert np.array_equal(first.profiles.items, again.profiles.items) and np.array_equal(first.profiles.users, again.profiles.users)
    assert np.array_equal(first.profiles.ratings, again.profiles.ratings)
    assert first.diagnostics == again.diagnostics
    diag = first.diagnostics
    tried = diag["tried"]
    assert tried[0]["k"] == len(TARGETS) and tried[0]["flagged_pushers"] > 0, "the full attack is caught here (else the test shows nothing)"
    assert diag["evaded"] and diag["chosen"] == tried[-1]
    assert all(t["flagged_pushers"] > 0 for t in tried[:-1]), "stronger variants were tried first and caught"
    assert all(t["strength"] >= diag["chosen"]["strength"] for t in tried)
    # An independent check: the product's detector on the returned profiles flags no pushing account.
    flagged = make_detector("cogroup").detect(first.profiles.inject(data)).flagged[data.n_users:]
    assert not flagged[: diag["pushers"]].any()
    per_account = np.bincount(first.profiles.users[np.isin(first.profiles.items, TARGETS)], minlength=n_fake)
    assert np.all(per_account[: diag["pushers"]] == diag["chosen"]["k"])


def test_adaptive_other_seed_other_profiles(data):
    a = make_attack("adaptive").generate(data, TARGETS, 15, 10, random_state=5)
    b = make_attack("adaptive").generate(data, TARGETS, 15, 10, random_state=6)
    assert not (np.array_equal(a.items, b.items) and np.array_equal(a.ratings, b.ratings))


def test_adaptive_says_so_when_every_variant_is_caught(data):
    """A detector that flags every user: all variants are tried, none evades, and the one with
    the fewest flagged pushing accounts is returned with evaded False."""
    from apt_core.detection import DETECTORS
    from apt_core.detection.base import Detector

    class FlagsEveryone(Detector):
        name = "test-flags-everyone"

        def _scores(self, data):
            return np.ones(data.n_users)

        def detect(self, data, random_state=0):
            result = super().detect(data, random_state)
            result.flagged[:] = True
            return result

    DETECTORS[FlagsEveryone.name] = FlagsEveryone
    try:
        result = make_attack("adaptive", detector=FlagsEveryone.name, decoys=0.4).run(data, TARGETS, 10, 6, random_state=0)
    finally:
        del DETECTORS[FlagsEveryone.name]
    diag = result.diagnostics
    assert not diag["evaded"] and len(diag["tried"]) == 2 * len(TARGETS)
    assert diag["chosen"]["flagged_pushers"] == min(t["flagged_pushers"] for t in diag["tried"]) == 6, "4 of the 10 are decoys"


def test_subset_shade_steps_sets_how_far_below_the_maximum_the_shaded_targets_go(data):
    one = make_attack("subset", k=2, shade=True).generate(data, TARGETS, 9, 6, random_state=3)
    two = make_attack("subset", k=2, shade=True, shade_steps=2).generate(data, TARGETS, 9, 6, random_state=3)
    top = data.scale.maximum
    for fake, level in ((one, top - data.scale.step), (two, top - 2 * data.scale.step)):
        on_targets = fake.ratings[np.isin(fake.items, TARGETS)]
        assert set(np.unique(on_targets).tolist()) == {level, top}
    np.testing.assert_array_equal(one.items, two.items)  # the same accounts, only the shaded level moves

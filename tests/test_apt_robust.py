"""apt-robust's mechanics on small data: capped statistics, the removal cap, decoys that cannot
switch other items' statistics, nobody flagged on clean random data."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.data.dataset import Interactions, RatingScale
from apt_core.defenses import make_defense
from apt_core.defenses.apt_robust import burst_items, cap_flags, capped_statistics, co_rated_links, linked_ratings, null_floor
from apt_core.detection.base import DetectionResult
from apt_core.detection import make_detector
from conftest import make_tiny


def _with_accounts(clean: Interactions, profiles: list[list[tuple[int, float]]]) -> Interactions:
    """``clean`` plus one injected account per profile (item, rating) list."""
    users, items, ratings = [], [], []
    for k, profile in enumerate(profiles):
        for item, rating in profile:
            users.append(k)
            items.append(item)
            ratings.append(rating)
    return clean.with_injected(np.array(users), np.array(items), np.array(ratings), len(profiles))


def _detection(flagged: np.ndarray) -> DetectionResult:
    return DetectionResult("stub", flagged.astype(np.float64), flagged.astype(bool), 0.5, "stub")


def test_a_push_cannot_raise_an_items_centre_above_the_global_mean():
    clean = make_tiny(60, 30, seed=1)
    target = 3
    poisoned = _with_accounts(clean, [[(target, 5.0)] for _ in range(40)])
    means, _ = capped_statistics(poisoned)
    g = float(poisoned.ratings.mean())
    assert poisoned.item_means()[target] > g + 0.5  # the push did raise the observed mean
    assert means[target] <= g + 1e-9
    assert np.all(means <= g + 1e-9)
    low = poisoned.item_means() < g
    assert np.allclose(means[low], poisoned.item_means()[low])  # an honest low item keeps its own mean


def test_flagged_decoys_do_not_switch_the_statistics_of_items_they_never_rated():
    clean = make_tiny(60, 30, seed=2)
    targets, decoy_pair = [3, 4], [20, 21]
    pushers = [[(t, 5.0) for t in targets] for _ in range(15)]
    decoys = [[(i, 5.0) for i in decoy_pair] for _ in range(6)]
    data = _with_accounts(clean, pushers + decoys)
    robust = make_defense("apt-robust", max_removed=0.5, alpha=0.0)  # a stub detection: no null floor
    nobody = np.zeros(data.n_users, bool)
    only_decoys = nobody.copy()
    only_decoys[clean.n_users + 15:] = True  # the detector caught the decoys, not the pushers
    _, stats_none = robust.plan(data, _detection(nobody))
    dropped, stats_decoys = robust.plan(data, _detection(only_decoys))
    assert dropped.sum() == 6
    untouched = np.setdiff1d(np.arange(data.n_items), decoy_pair)
    g_none, g_decoys = float(data.ratings.mean()), float(data.ratings[~only_decoys[data.users]].mean())
    # Each untouched item keeps min(own mean, global mean): only the global mean moved, by the decoys' share.
    assert np.all(stats_decoys.means[untouched] <= g_decoys + 1e-9)
    assert np.abs(stats_decoys.means[untouched] - stats_none.means[untouched]).max() <= abs(g_decoys - g_none) + 1e-9
    for t in targets:  # the hidden pushers' 5s are capped at the global mean either way
        assert stats_decoys.means[t] <= g_decoys + 1e-9 < data.item_means()[t]


def test_the_removal_cap_keeps_the_highest_scores():
    scores = np.arange(100, dtype=np.float64)
    flagged = scores >= 50
    capped = cap_flags(flagged, scores, 10)
    assert capped.sum() == 10 and np.array_equal(np.flatnonzero(capped), np.arange(90, 100))
    assert np.array_equal(cap_flags(flagged, scores, 80), flagged)
    robust = make_defense("apt-robust", max_removed=0.02, alpha=0.0)
    data = make_tiny(200, 30, seed=3)
    every = np.ones(data.n_users, bool)
    dropped, _ = robust.plan(data, DetectionResult("stub", np.arange(data.n_users, dtype=float), every, 0.0, "stub"))
    assert dropped.sum() == int(np.floor(0.02 * data.n_users))


def test_the_null_floor_unflags_scores_a_popularity_null_explains():
    data = make_tiny(50, 20, seed=7)
    floor = null_floor(data.n_items, 0.05)
    assert floor == pytest.approx(np.log(20 * 19 / 2 / 0.05))
    scores = np.where(np.arange(data.n_users) < 5, floor + 1.0, floor - 1.0)
    every = np.ones(data.n_users, bool)
    dropped, _ = make_defense("apt-robust", max_removed=1.0).plan(data, DetectionResult("cogroup", scores, every, 0.0, "gap"))
    assert np.array_equal(np.flatnonzero(dropped), np.arange(5))


def test_drop_suspects_false_drops_nobody():
    data = make_tiny(50, 20, seed=4)
    dropped, _ = make_defense("apt-robust", drop_suspects=False).plan(data, _detection(np.ones(data.n_users, bool)))
    assert not dropped.any()


def test_clean_random_data_flags_nobody():
    rng = np.random.default_rng(5)
    n_users, n_items = 300, 80
    mask = rng.random((n_users, n_items)) < 0.15
    users, items = np.nonzero(mask)
    data = Interactions(users, items, rng.integers(1, 6, len(users)).astype(np.float32), n_users, n_items, RatingScale(1, 5, 1))
    robust = make_defense("apt-robust", max_removed=1.0)
    detector = robust.make_detector()
    assert detector.rank == 2
    # (the gap rule alone can flag a few here: most rank-2 scores are 0, so any gap beats the
    # median's distance from the minimum; the null floor is what keeps them)
    dropped, _ = robust.plan(data, detector.detect(data))
    assert not dropped.any()


def test_one_shared_pair_is_not_enough_to_be_flagged_but_a_pushed_triple_is():
    rng = np.random.default_rng(6)
    n_users, n_items = 300, 80
    mask = rng.random((n_users, n_items)) < 0.1
    users, items = np.nonzero(mask)
    clean = Interactions(users, items, rng.integers(1, 5, len(users)).astype(np.float32), n_users, n_items, RatingScale(1, 5, 1))
    filler = lambda k: [(int(i), 3.0) for i in rng.choice(np.arange(30, 80), 8, replace=False)]  # noqa: E731
    framing = [[(10, 5.0), (11, 5.0)] + filler(k) for k in range(15)]
    pushers = [[(0, 5.0), (1, 5.0), (2, 5.0)] + filler(k) for k in range(15)]
    data = _with_accounts(clean, framing + pushers)
    flagged = make_detector("cogroup", rank=2).detect(data).flagged
    assert not flagged[n_users : n_users + 15].any()  # one pair each: not flagged at rank 2
    assert flagged[n_users + 15 :].all()
    assert not flagged[:n_users].any()


def test_top_steps_one_catches_accounts_that_shade_the_targets_they_do_not_top_rate():
    """``subset.shade``-like accounts: one target at 5, the other two at 4 (one pair of fives at
    most: never two surprising top pairs).  Counting a 4 as a top rating (``top_steps=1``)
    gives each account the three target pairs again; the clean users (random ratings) stay out."""
    rng = np.random.default_rng(7)
    n_users, n_items = 300, 80
    mask = rng.random((n_users, n_items)) < 0.1
    users, items = np.nonzero(mask)
    clean = Interactions(users, items, rng.integers(1, 6, len(users)).astype(np.float32), n_users, n_items, RatingScale(1, 5, 1))
    filler = lambda: [(int(i), 3.0) for i in rng.choice(np.arange(30, 80), 8, replace=False)]  # noqa: E731
    shaded = [[(t, 5.0 if t == k % 3 else 4.0) for t in range(3)] + filler() for k in range(20)]
    data = _with_accounts(clean, shaded)
    # the cap raised so that it is not what stops the 20 accounts (5% of 320 is 16)
    plain, wide = make_defense("apt-robust", max_removed=0.1), make_defense("apt-robust", top_steps=1, max_removed=0.1)
    dropped_plain, _ = plain.plan(data, plain.make_detector().detect(data))
    dropped_wide, _ = wide.plan(data, wide.make_detector().detect(data))
    assert not dropped_plain.any()
    assert dropped_wide[n_users:].all() and not dropped_wide[:n_users].any()


def test_item_side_evidence_centres_a_pushed_item_at_its_ratings_below_the_maximum():
    clean = make_tiny(80, 30, seed=8)
    target = 5
    poisoned = _with_accounts(clean, [[(target, 5.0)] for _ in range(40)])
    burst = burst_items(poisoned, 0.05)
    assert burst[target]
    plain, _ = capped_statistics(poisoned)
    centre, spread = capped_statistics(poisoned, burst=burst)
    below = (poisoned.items == target) & (poisoned.ratings < 5)
    assert centre[target] == pytest.approx(min(float(poisoned.ratings[below].mean()), float(poisoned.ratings.mean())))
    assert np.all(centre <= plain + 1e-9)  # the item-side rule only ever lowers a centre
    assert not burst_items(clean, 0.05).any()  # uniform random ratings: no item has a burst of top ratings


def test_a_fit_reports_only_the_users_it_dropped_and_respects_the_cap():
    from apt_core.defenses import DefenseContext
    from apt_core.models.mf import MFConfig

    rng = np.random.default_rng(9)
    n_users, n_items = 200, 60
    mask = rng.random((n_users, n_items)) < 0.2
    users, items = np.nonzero(mask)
    clean = Interactions(users, items, rng.integers(1, 6, len(users)).astype(np.float32), n_users, n_items, RatingScale(1, 5, 1))
    pushers = [[(0, 5.0), (1, 5.0), (2, 5.0), (3, 5.0)] + [(int(i), 3.0) for i in rng.choice(np.arange(10, 60), 8, replace=False)]
               for _ in range(20)]
    data = _with_accounts(clean, pushers)
    robust = make_defense("apt-robust", max_removed=0.05, t_pre=2, t_inter=2, m_star=5)
    ctx = DefenseContext(MFConfig(dim=4, epochs=4, batch_size=256, lr=0.5), "cpu", 0, "tiny", clean)
    diag = robust.fit(data, ctx).diagnostics
    cap = int(np.floor(0.05 * data.n_users))
    assert diag["removal_cap"] == cap and diag["users_dropped"] == len(diag["flagged_users"]) <= cap
    assert diag["detector_flagged"] >= diag["users_dropped"] > 0
    assert np.all(np.asarray(diag["flagged_users"]) >= n_users)  # only pushing accounts dropped


def _random_clean(seed: int, n_users: int = 300, n_items: int = 80, density: float = 0.1, high: int = 5) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    return Interactions(users, items, rng.integers(1, high + 1, len(users)).astype(np.float32), n_users, n_items, RatingScale(1, 5, 1))


def test_push_evidence_keeps_a_group_that_top_rates_well_liked_items_and_drops_one_that_pushes():
    """Two groups the rank-2 detector flags alike: fans of three well-liked items (their other
    raters give them 4s) and pushers of three items the other raters rate low.  With
    ``push_evidence`` only the pushers are dropped; without it both are."""
    rng = np.random.default_rng(10)
    clean = _random_clean(10)
    liked, pushed = (clean.items >= 10) & (clean.items < 13), clean.items < 3
    ratings = np.where(liked, 4.0, np.where(pushed, np.minimum(clean.ratings, 3.0), clean.ratings))
    clean = Interactions(clean.users, clean.items, ratings.astype(np.float32), clean.n_users, clean.n_items, clean.scale)
    filler = lambda: [(int(i), 3.0) for i in rng.choice(np.arange(30, 80), 8, replace=False)]  # noqa: E731
    fans = [[(10, 5.0), (11, 5.0), (12, 5.0)] + filler() for _ in range(15)]
    pushers = [[(0, 5.0), (1, 5.0), (2, 5.0)] + filler() for _ in range(15)]
    data = _with_accounts(clean, fans + pushers)
    n = clean.n_users
    gated, plain = make_defense("apt-robust", max_removed=0.5, push_evidence=True), make_defense("apt-robust", max_removed=0.5)
    scores = gated.make_detector().scores(data)
    assert np.all(scores[n:] >= null_floor(data.n_items, 0.05))  # by the pairs alone the fans look like the pushers
    detection = DetectionResult("cogroup", scores, np.arange(data.n_users) >= n, 0.0, "stub")
    dropped_plain, _ = plain.plan(data, detection)
    dropped_gated, _ = gated.plan(data, detection)
    assert dropped_plain[n:].all()
    assert not dropped_gated[n : n + 15].any() and dropped_gated[n + 15 :].all()
    assert not dropped_gated[:n].any()


def test_burst_links_leave_shaded_ratings_out_of_a_pushed_items_centre():
    """Shading accounts top-rate four of five targets and rate the fifth one step below the
    maximum, which lifts each target's "ratings below the maximum" centre.  ``burst_links``
    leaves those linked ratings out: the centre comes back to the real ratings below the maximum."""
    rng = np.random.default_rng(11)
    clean = _random_clean(11)
    targets = np.arange(5)
    filler = lambda: [(int(i), 3.0) for i in rng.choice(np.arange(30, 80), 8, replace=False)]  # noqa: E731
    shaded = [[(int(t), 4.0 if t == a % 5 else 5.0) for t in targets] + filler() for a in range(40)]
    data = _with_accounts(clean, shaded)
    burst = burst_items(data, 0.05)
    assert burst[targets].all()
    floor = null_floor(data.n_items, 0.05)
    linked = linked_ratings(data, burst, floor)
    fake_shades = (data.users >= clean.n_users) & np.isin(data.items, targets) & (data.ratings == 4.0)
    assert linked[fake_shades].all()
    # a real rating is linked only where its user top-rates another target (the co-top-rated pairs are the pushers')
    top_other = {(int(u), int(i)) for u, i, r in zip(data.users, data.items, data.ratings) if i < 5 and r == 5.0}
    for r in np.flatnonzero(linked & (data.users < clean.n_users)):
        u = int(data.users[r])
        assert any(((u, int(t)) in top_other) and t != data.items[r] for t in targets)
    nobody = _detection(np.zeros(data.n_users, bool))
    _, lifted = make_defense("apt-robust", drop_suspects=False).plan(data, nobody)
    _, linked_out = make_defense("apt-robust", drop_suspects=False, burst_links=True).plan(data, nobody)
    g = float(data.ratings.mean())
    for t in targets:
        kept_below = data.ratings[(data.items == t) & (data.ratings < 5) & ~linked]
        assert linked_out.means[t] == pytest.approx(min(float(kept_below.mean()), g))
        assert linked_out.means[t] < lifted.means[t]


def test_pair_links_leave_a_shading_push_out_of_the_targets_centres():
    """Each account top-rates three of five targets and rates the other two one step below: the
    targets' share of fives stays modest, but every target pair is co-rated 4-5 by every account.
    ``pair_links`` centres each target at most at the mean of its ratings without those links."""
    rng = np.random.default_rng(12)
    clean = _random_clean(12)
    low = clean.items < 5  # the targets' real ratings are 1-3
    clean = Interactions(clean.users, clean.items, np.where(low, np.minimum(clean.ratings, 3.0), clean.ratings).astype(np.float32),
                         clean.n_users, clean.n_items, clean.scale)
    targets = np.arange(5)
    filler = lambda: [(int(i), 3.0) for i in rng.choice(np.arange(30, 80), 8, replace=False)]  # noqa: E731
    shaded = [[(int(t), 5.0 if (t - a) % 5 < 3 else 4.0) for t in targets] + filler() for a in range(30)]
    data = _with_accounts(clean, shaded)
    links = co_rated_links(data, null_floor(data.n_items, 0.05), steps=1)
    fake_targets = (data.users >= clean.n_users) & np.isin(data.items, targets)
    assert links[fake_targets].all() and not links[data.users < clean.n_users].any()
    nobody = _detection(np.zeros(data.n_users, bool))
    _, plain = make_defense("apt-robust", drop_suspects=False, item_alpha=0.0).plan(data, nobody)
    _, linked = make_defense("apt-robust", drop_suspects=False, item_alpha=0.0, pair_links=True).plan(data, nobody)
    g = float(data.ratings.mean())
    for t in targets:
        real = clean.ratings[clean.items == t]
        assert plain.means[t] == pytest.approx(g)  # the push lifts the target's mean above the global cap
        assert linked.means[t] == pytest.approx(min(float(real.mean()), g))

"""Hand-computed metric cases (DESIGN section 4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.data.dataset import Interactions, RatingScale
from apt_core.data.split import Split
from apt_core.errors import AptError
from apt_core.evaluation.metrics import evaluate, hit_ratio, prediction_shift, rank_items, rank_shift, robustness_improvement

SCALE = RatingScale(1, 5, 1)


class FixedScores:
    """A model with a fixed score matrix (users x items)."""

    def __init__(self, scores):
        self.scores = torch.tensor(scores, dtype=torch.float32)
        self.n_users, self.n_items = self.scores.shape

    def score_users(self, users):
        return self.scores[users]


def _train(pairs, n_users, n_items, n_real=None):
    users, items = zip(*pairs)
    return Interactions(np.array(users), np.array(items), np.full(len(pairs), 4.0), n_users, n_items, SCALE, n_real if n_real is not None else n_users)


def test_rated_items_are_masked_not_multiplied():
    # User 0 rated item 0, whose score is very negative: the authors' 0/1 multiplication
    # would give it score 0 > target's -1; -inf masking keeps it out of the ranking.
    scores = [[-5.0, -1.0, -2.0, -0.5]]
    train = _train([(0, 0)], 1, 4)
    ranks = rank_items(FixedScores(scores), train, np.array([1, 2, 0]))
    assert ranks.tolist() == [[1, 2, -1]]  # item 3 beats item 1; item 0 is rated -> undefined


def test_hit_ratio_counts_only_defined_pairs():
    ranks = np.array([[0, 5, -1], [49, 50, -1]])
    assert hit_ratio(ranks, 50) == pytest.approx(3 / 4)
    assert np.isnan(hit_ratio(np.full((2, 2), -1), 50))


def test_evaluate_excludes_fake_users():
    # 2 real users + 1 fake user (row 2). The fake user ranks target 1 first; real users don't.
    scores = [[3.0, 1.0, 2.0], [3.0, 0.0, 2.0], [0.0, 9.0, 0.0]]
    train = _train([(0, 0), (1, 0), (2, 1)], 3, 3, n_real=2)
    split = Split(train, np.array([2, 2, -1]), np.zeros(3, np.float32), 0)
    ev = evaluate(FixedScores(scores), split, np.array([1]), k=1)
    assert ev.target_ranks.shape == (2, 1)
    assert ev.target_ranks.ravel().tolist() == [1, 1]
    assert ev.target_hr == 0.0
    assert ev.test_ranks.tolist() == [0, 0] and ev.test_hr == 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_are_refused_not_ranked_first(bad):
    # NaN never compares higher, so the old ranking gave a NaN target rank 0 (a hit for any K).
    scores = [[0.0, bad, 0.5, 0.9], [0.0, 0.2, 0.3, 0.1]]
    train = _train([(0, 0), (1, 0)], 2, 4)
    with pytest.raises(AptError, match="scores contain (NaN|inf)"):
        rank_items(FixedScores(scores), train, np.array([1, 2]))


def test_a_nan_model_gets_no_hit_ratio():
    train = _train([(0, 0), (1, 0)], 2, 4)
    split = Split(train, np.array([3, 3]), np.zeros(2, np.float32), 0)
    with pytest.raises(AptError, match="NaN"):
        evaluate(FixedScores(np.full((2, 4), np.nan)), split, np.array([1, 2]), k=1)


def test_rank_shift_and_prediction_shift():
    train = _train([(0, 0), (1, 0)], 2, 4)
    split = Split(train, np.array([3, 3]), np.zeros(2, np.float32), 0)
    before = evaluate(FixedScores([[0, 0.1, 0.5, 0.9], [0, 0.2, 0.3, 0.1]]), split, np.array([1]), k=1)
    after = evaluate(FixedScores([[0, 0.95, 0.5, 0.9], [0, 0.25, 0.3, 0.1]]), split, np.array([1]), k=1)
    assert before.target_ranks.ravel().tolist() == [2, 1]
    assert after.target_ranks.ravel().tolist() == [0, 1]
    assert rank_shift(before, after).tolist() == [2, 0]
    assert prediction_shift(before, after) == pytest.approx(5 * (0.85 + 0.05) / 2)


def test_robustness_improvement():
    assert robustness_improvement(0.1, 0.0, 0.5) == pytest.approx(0.8)
    assert robustness_improvement(0.5, 0.0, 0.5) == pytest.approx(0.0)
    assert robustness_improvement(0.6, 0.1, 0.1) is None  # the attack moved nothing
    assert robustness_improvement(float("nan"), 0.0, 0.5) is None


def test_chunked_ranking_equals_unchunked(sample_split):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(sample_split.n_users, sample_split.n_items))
    model = FixedScores(scores)
    items = np.array([1, 5, 9])
    small = rank_items(model, sample_split.train, items, chunk_elements=2000)
    big = rank_items(model, sample_split.train, items)
    assert np.array_equal(small, big)
    # Brute force for one user.
    u = 7
    rated = set(sample_split.train.user_items(u).tolist())
    for j, t in enumerate(items):
        if t in rated:
            assert big[u, j] == -1
        else:
            expect = sum(1 for i in range(sample_split.n_items) if i not in rated and scores[u, i] > scores[u, t])
            assert big[u, j] == expect


def test_ranks_are_the_brute_force_counts_with_ties_masks_and_skipped_pairs(sample_split):
    """Each rank counts the unrated items scored strictly higher (ties do not count), for shared
    and per-user item lists (-1 skipped), whatever the chunk size."""
    rng = np.random.default_rng(1)
    train = sample_split.train
    scores = rng.integers(0, 6, size=(train.n_users, train.n_items)).astype(np.float32)  # many ties
    rated = np.zeros_like(scores, dtype=bool)
    rated[train.users, train.items] = True
    per_user = rng.integers(-1, train.n_items, size=(train.n_real_users, 4))
    expected = np.full(per_user.shape, -1)
    for u in range(train.n_real_users):
        free = np.where(rated[u], -np.inf, scores[u])
        for j, item in enumerate(per_user[u]):
            if item >= 0 and not rated[u, item]:
                expected[u, j] = int((free > scores[u, item]).sum())
    for chunk in (500, 1 << 24):
        assert np.array_equal(rank_items(FixedScores(scores), train, per_user, chunk_elements=chunk), expected)
        shared = rank_items(FixedScores(scores), train, np.array([0, 3]), chunk_elements=chunk)
        assert np.array_equal(shared, rank_items(FixedScores(scores), train, np.tile([0, 3], (train.n_real_users, 1)), chunk_elements=chunk))

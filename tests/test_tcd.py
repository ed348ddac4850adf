"""TCD's mechanics (apt_core/defenses/tcd.py): which pairs get pseudo-ratings, what mask_rate 0
means, sampling, the authors' sparse Adadelta, and that fake users never reach the metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.data.dataset import Interactions, RatingScale
from apt_core.data.split import Split
from apt_core.defenses import DefenseContext, make_defense
from apt_core.defenses.tcd import TCD, AdadeltaMFTrainer, AUTHORS_MF
from apt_core.evaluation.metrics import evaluate
from apt_core.models.mf import MFConfig, MFModel, fit_mf
from conftest import make_tiny

FAST = MFConfig(dim=8, epochs=5, batch_size=64, lr=0.5)


@pytest.fixture(scope="module")
def data() -> Interactions:
    return make_tiny(n_users=50, n_items=40, density=0.2, seed=3)


@pytest.fixture(scope="module")
def two_models(data) -> tuple[MFModel, MFModel]:
    return fit_mf(data, FAST, "cpu", 1), fit_mf(data, FAST, "cpu", 2)


def _dense_rounded(model: MFModel, scale: RatingScale) -> np.ndarray:
    with torch.no_grad():
        scores = model.score_users(torch.arange(model.n_users)).numpy().astype(np.float64)
    return np.round(scores * scale.maximum / scale.step)


def test_pseudo_ratings_are_exactly_the_unrated_pairs_where_both_models_agree(data, two_models):
    first, second = two_models
    k1, k2 = _dense_rounded(first, data.scale), _dense_rounded(second, data.scale)
    rated = np.zeros((data.n_users, data.n_items), bool)
    rated[data.users, data.items] = True
    expected = (k1 == k2) & ~rated
    assert 0 < expected.sum() < (~rated).sum(), "the fixture must have both agreeing and disagreeing unrated pairs"
    # a small chunk forces several user chunks
    u, i, r = TCD().pseudo_ratings(first, second, data, np.random.default_rng(0), chunk_elements=97)
    got = np.zeros_like(rated)
    got[u, i] = True
    assert len(u) == expected.sum() and np.array_equal(got, expected)
    assert not rated[u, i].any()
    np.testing.assert_allclose(r, k1[u, i] * data.scale.step / data.scale.maximum, rtol=1e-6)


def test_grid_follows_the_data_set_step(two_models, data):
    """FilmTrust-like grid (step 0.5): values are multiples of step/max, finer than whole stars."""
    half = Interactions(data.users, data.items, np.clip(data.ratings * 0.8, 0.5, 4.0) // 0.5 * 0.5 + 0.5, data.n_users, data.n_items, RatingScale(0.5, 4.0, 0.5))
    _, _, r = TCD().pseudo_ratings(*two_models, half, np.random.default_rng(0))
    grid_index = r * 4.0 / 0.5
    np.testing.assert_allclose(grid_index, np.round(grid_index), atol=1e-4)


def test_mask_rate_and_max_pairs_subsample(data, two_models):
    full = len(TCD().pseudo_ratings(*two_models, data, np.random.default_rng(0))[0])
    half = TCD(mask_rate=0.5).pseudo_ratings(*two_models, data, np.random.default_rng(0))
    again = TCD(mask_rate=0.5).pseudo_ratings(*two_models, data, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(half, again)), "seeded"
    assert 0.35 * full < len(half[0]) < 0.65 * full
    cells = data.n_users * data.n_items
    sampled = TCD(max_pairs=cells // 4).pseudo_ratings(*two_models, data, np.random.default_rng(0))
    assert 0.1 * full < len(sampled[0]) < 0.4 * full
    assert len(TCD(mask_rate=0.0).pseudo_ratings(*two_models, data, np.random.default_rng(0))[0]) == 0


def test_mask_rate_zero_is_plain_mf_with_the_same_seed(data):
    context = DefenseContext(FAST, "cpu", 4, "test")
    tcd = make_defense("tcd", mask_rate=0.0).fit(data, context)
    plain = make_defense("none").fit(data, context)
    assert torch.equal(tcd.model.P, plain.model.P) and torch.equal(tcd.model.Q, plain.model.Q)
    assert tcd.diagnostics["pseudo_ratings_mean"] == 0


def test_pseudo_ratings_change_the_model(data):
    context = DefenseContext(FAST, "cpu", 4, "test")
    tcd = make_defense("tcd").fit(data, context)
    plain = make_defense("none").fit(data, context)
    assert tcd.diagnostics["pseudo_ratings_mean"] > 0
    assert not torch.equal(tcd.model.P, plain.model.P)


def test_pre_at_least_the_epochs_is_plain_mf(data):
    context = DefenseContext(FAST, "cpu", 2, "test")
    tcd = make_defense("tcd", pre=FAST.epochs).fit(data, context)
    plain = make_defense("none").fit(data, context)
    assert torch.equal(tcd.model.P, plain.model.P)


def test_fake_users_get_pseudo_ratings_but_never_count_in_metrics(data):
    """Pseudo-ratings cover every account (the defender cannot tell them apart); the metrics
    read real users only, so changing the fake users' factors changes no number."""
    rng = np.random.default_rng(0)
    n_fake = 5
    users = np.repeat(np.arange(n_fake), 6)
    items = np.concatenate([rng.choice(data.n_items, 6, replace=False) for _ in range(n_fake)])
    poisoned = data.with_injected(users, items, np.full(len(users), 5.0, np.float32), n_fake)
    fitted = make_defense("tcd").fit(poisoned, DefenseContext(FAST, "cpu", 0, "test"))
    assert fitted.model.P.shape[0] == poisoned.n_users
    split = Split(data, np.full(data.n_users, -1), np.zeros(data.n_users, np.float32), 0)
    targets = np.array([0, 7])
    before = evaluate(fitted.model, split, targets, k=5)
    P = fitted.model.P.clone()
    P[data.n_users:] = 100.0
    after = evaluate(MFModel(P, fitted.model.Q), split, targets, k=5)
    assert before.target_ranks.shape == (data.n_users, 2)
    assert np.array_equal(before.target_ranks, after.target_ranks)
    first, second = fit_mf(poisoned, FAST, "cpu", 1), fit_mf(poisoned, FAST, "cpu", 2)
    u, _, _ = TCD().pseudo_ratings(first, second, poisoned, np.random.default_rng(0))
    assert (u >= data.n_users).any(), "fake users get pseudo-ratings too (as in the authors' code)"


def test_authors_adadelta_moves_only_the_rows_of_the_batch():
    trainer = AdadeltaMFTrainer(6, 5, AUTHORS_MF.with_(dim=4), "cpu", 0)
    P0, Q0 = trainer.P.clone(), trainer.Q.clone()
    users, items, ratings = torch.tensor([0, 1, 1]), torch.tensor([2, 3, 2]), torch.tensor([0.8, 0.2, 1.0])
    trainer.train_epochs(users, items, ratings, 1)
    moved_users = (trainer.P != P0).any(1).nonzero().squeeze(1).tolist()
    moved_items = (trainer.Q != Q0).any(1).nonzero().squeeze(1).tolist()
    assert moved_users == [0, 1] and moved_items == [2, 3]
    assert (trainer.acc_P[2:] == 0).all() and (trainer.delta_Q[[0, 1, 4]] == 0).all()


def test_authors_recipe_uses_its_own_factors_and_epochs(data):
    model = TCD(recipe="authors")
    result = model.fit(data, DefenseContext(FAST, "cpu", 0, "test"))
    assert result.diagnostics["epochs"] == AUTHORS_MF.epochs and result.model.P.shape[1] == AUTHORS_MF.dim
    assert np.isfinite(result.diagnostics["final_loss"])


def test_clip_compares_and_labels_on_the_scale_only(data, two_models):
    first, second = two_models
    scale = data.scale
    lo, hi = scale.minimum / scale.step, scale.maximum / scale.step
    k1, k2 = (np.clip(_dense_rounded(m, scale), lo, hi) for m in two_models)
    rated = np.zeros((data.n_users, data.n_items), bool)
    rated[data.users, data.items] = True
    u, i, r = TCD(clip=True).pseudo_ratings(first, second, data, np.random.default_rng(0))
    assert len(u) == ((k1 == k2) & ~rated).sum()
    assert r.min() >= scale.minimum / scale.maximum - 1e-6 and r.max() <= 1 + 1e-6


# --- implicit-feedback victims: pseudo-interactions from top-k agreement (our adaptation) ---

def _dense_scores(model) -> np.ndarray:
    with torch.no_grad():
        return model.score_users(torch.arange(model.n_users)).numpy().astype(np.float64)


def test_implicit_pseudo_interactions_are_the_unrated_pairs_in_both_top_k(data, two_models):
    """Brute force: mask rated cells, take each model's top k per user, intersect."""
    k = 4
    rated = np.zeros((data.n_users, data.n_items), bool)
    rated[data.users, data.items] = True
    tops = []
    for model in two_models:
        scores = np.where(rated, -np.inf, _dense_scores(model))
        top = np.zeros_like(rated)
        np.put_along_axis(top, np.argsort(-scores, axis=1, kind="stable")[:, :k], True, axis=1)
        tops.append(top & ~rated)
    expected = tops[0] & tops[1]
    assert 0 < expected.sum() < k * data.n_users, "the fixture must have agreeing and disagreeing top-k pairs"
    u, i, r = TCD(top_k=k).pseudo_interactions(*two_models, data, np.random.default_rng(0), chunk_elements=97)
    got = np.zeros_like(rated)
    got[u, i] = True
    assert len(u) == expected.sum() and np.array_equal(got, expected)
    assert not rated[u, i].any() and np.bincount(u, minlength=data.n_users).max() <= k
    assert np.all(r == 1.0)


def test_implicit_top_k_larger_than_the_unrated_items_never_labels_a_rated_item(data, two_models):
    u, i, _ = TCD(top_k=data.n_items).pseudo_interactions(*two_models, data, np.random.default_rng(0))
    rated = np.zeros((data.n_users, data.n_items), bool)
    rated[data.users, data.items] = True
    assert not rated[u, i].any()
    assert len(u) == (~rated).sum(), "with k = the catalogue both lists hold every unrated item"


def test_implicit_mask_rate_subsamples_and_is_seeded(data, two_models):
    full = len(TCD(top_k=8).pseudo_interactions(*two_models, data, np.random.default_rng(0))[0])
    half = TCD(top_k=8, mask_rate=0.5).pseudo_interactions(*two_models, data, np.random.default_rng(1))
    again = TCD(top_k=8, mask_rate=0.5).pseudo_interactions(*two_models, data, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(half, again))
    assert 0.3 * full < len(half[0]) < 0.7 * full
    assert len(TCD(mask_rate=0.0).pseudo_interactions(*two_models, data, np.random.default_rng(0))[0]) == 0


@pytest.fixture(scope="module")
def lightgcn_context():
    from apt_core.models.victims import default_victim_config

    victim = default_victim_config("lightgcn", 3).with_(dim=8, batch_size=128)
    return DefenseContext(FAST, "cpu", 5, "test", victim=victim)


def test_implicit_victim_gets_top_k_pseudo_interactions_not_rounded_logits(data, lightgcn_context):
    """The rounded-logit rule would hand an implicit victim most of the matrix as interactions;
    the implicit mode adds at most top_k per user, and says which rule it used."""
    result = make_defense("tcd", top_k=3).fit(data, lightgcn_context)
    d = result.diagnostics
    assert d["pseudo_labels"].startswith("top-3") and d["top_k"] == 3
    assert 0 < d["pseudo_ratings_mean"] <= 3 * data.n_users
    assert result.model.P.shape == (data.n_users, 8)
    explicit = make_defense("tcd").fit(data, DefenseContext(FAST, "cpu", 5, "test"))
    assert explicit.diagnostics["pseudo_labels"] == "rounded-rating agreement" and explicit.diagnostics["top_k"] is None


def test_implicit_mask_rate_zero_is_the_plain_victim(data, lightgcn_context):
    from apt_core.models.victims import victim_trainer

    tcd = make_defense("tcd", mask_rate=0.0).fit(data, lightgcn_context)
    trainer = victim_trainer(data.n_users, data.n_items, lightgcn_context.victim, "cpu", lightgcn_context.random_state)
    trainer.train_epochs(*trainer.tensors(data), lightgcn_context.victim.epochs)
    assert torch.equal(tcd.model.P, trainer.model().P) and torch.equal(tcd.model.Q, trainer.model().Q)

"""The MF victim: the authors' recipe, determinism, gradients, and the paper's accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.data import select_targets
from apt_core.evaluation.metrics import evaluate
from apt_core.models import MFConfig, MFTrainer, fit_mf, fit_popularity, mf_batch_gradients


def test_hand_gradients_match_autograd(tiny):
    g = torch.Generator().manual_seed(0)
    P = torch.randn(tiny.n_users, 8, generator=g, dtype=torch.float64)
    Q = torch.randn(tiny.n_items, 8, generator=g, dtype=torch.float64)
    u, i = torch.from_numpy(tiny.users[:50]), torch.from_numpy(tiny.items[:50])
    r = torch.from_numpy(tiny.normalised_ratings[:50]).double()
    gP, gQ, loss = mf_batch_gradients(P, Q, u, i, r, reg=0.01)
    P2, Q2 = P.clone().requires_grad_(), Q.clone().requires_grad_()
    pu, qi = P2[u], Q2[i]
    ref = ((pu * qi).sum(1) - r).pow(2).mean() + 0.01 * (pu.pow(2).sum(1) + qi.pow(2).sum(1)).mean()
    ref.backward()
    assert torch.allclose(gP, P2.grad) and torch.allclose(gQ, Q2.grad)


def _plain_gradients(P, Q, u, i, r, reg):
    """The gradient as plain tensor expressions (fresh tensors, no out=): the reference."""
    pu, qi = P.index_select(0, u), Q.index_select(0, i)
    err = (pu * qi).sum(1) - r
    scale = 2.0 / len(r)
    coef = (err * scale).unsqueeze(1)
    if reg > 0:
        gP = torch.zeros_like(P).index_add_(0, u, coef * qi + (scale * reg) * pu)
        gQ = torch.zeros_like(Q).index_add_(0, i, coef * pu + (scale * reg) * qi)
    else:
        gP = torch.zeros_like(P).index_add_(0, u, coef * qi)
        gQ = torch.zeros_like(Q).index_add_(0, i, coef * pu)
    return gP, gQ, (err * err).mean()


@pytest.mark.parametrize("reg", [0.0, 0.01])
def test_gradient_workspace_is_the_plain_gradient_bit_for_bit(tiny, reg):
    """MFTrainer's steps write into buffers kept between minibatches: the same bits as the
    plain expressions and as fresh tensors, for full and shorter minibatches in any order and a
    grown P, with and without the reg term."""
    from apt_core.models.mf import GradientWorkspace

    g = torch.Generator().manual_seed(0)
    P, Q = torch.randn(tiny.n_users, 8, generator=g), torch.randn(tiny.n_items, 8, generator=g)
    u, i, r = torch.from_numpy(tiny.users), torch.from_numpy(tiny.items), torch.from_numpy(tiny.normalised_ratings)
    ws = GradientWorkspace()
    for n in (64, 17, 64, 1, len(r)):
        expected = _plain_gradients(P, Q, u[:n], i[:n], r[:n], reg)
        fresh = mf_batch_gradients(P, Q, u[:n], i[:n], r[:n], reg)
        got = mf_batch_gradients(P, Q, u[:n], i[:n], r[:n], reg, ws)
        assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(expected, fresh, got))
    P = torch.cat([P, torch.randn(3, 8, generator=g)])  # ERM users added: a taller gradient
    assert all(torch.equal(a, b) for a, b in zip(_plain_gradients(P, Q, u, i, r, reg), mf_batch_gradients(P, Q, u, i, r, reg, ws)))


def test_seeded_determinism(tiny):
    cfg = MFConfig(epochs=3, dim=8, batch_size=64)
    a, b, c = fit_mf(tiny, cfg, "cpu", 1), fit_mf(tiny, cfg, "cpu", 1), fit_mf(tiny, cfg, "cpu", 2)
    assert torch.equal(a.P, b.P) and torch.equal(a.Q, b.Q)
    assert not torch.equal(a.P, c.P)


def test_training_reduces_loss(tiny):
    # The authors' learning rate of 10 is tuned to batches of 4096 ratings; a tiny matrix in
    # batches of 64 needs a smaller one.
    trainer = MFTrainer(tiny.n_users, tiny.n_items, MFConfig(dim=8, batch_size=64, lr=0.5), "cpu", 0)
    tensors = trainer.tensors(tiny)
    trainer.train_epochs(*tensors, 1)
    first = trainer.last_loss
    trainer.train_epochs(*tensors, 20)
    assert trainer.last_loss < 0.5 * first


def test_resume_equals_one_run(tiny):
    cfg = MFConfig(epochs=4, dim=8, batch_size=64)
    whole = fit_mf(tiny, cfg, "cpu", 5)
    trainer = MFTrainer(tiny.n_users, tiny.n_items, cfg, "cpu", 5)
    tensors = trainer.tensors(tiny)
    trainer.train_epochs(*tensors, 2)
    trainer.train_epochs(*tensors, 2)
    assert torch.allclose(trainer.model().P, whole.P)


def test_config_rejects_bad_values():
    from apt_core.errors import ConfigError

    with pytest.raises(ConfigError):
        MFConfig(epochs=-1)
    with pytest.raises(ConfigError):
        MFConfig(lr=0)


def test_ml100k_test_hr_matches_paper(ml100k_split):
    """Paper: 0.2106; the authors' code reruns at 0.214-0.223.  Popularity: about 0.33."""
    targets = select_targets(ml100k_split, "random", 5, 0)
    ev = evaluate(fit_mf(ml100k_split.train, MFConfig(), "cpu", 0), ml100k_split, targets, 50)
    assert 0.19 <= ev.test_hr <= 0.25
    pop = evaluate(fit_popularity(ml100k_split.train), ml100k_split, targets, 50)
    assert 0.28 <= pop.test_hr <= 0.36


def test_filmtrust_test_hr_matches_paper(data_dir):
    """Paper: 0.8539."""
    from apt_core.data import leave_one_out, load_dataset

    split = leave_one_out(load_dataset("filmtrust", data_dir), 0)
    ev = evaluate(fit_mf(split.train, MFConfig(), "cpu", 0), split, np.array([0]), 50)
    assert 0.82 <= ev.test_hr <= 0.88

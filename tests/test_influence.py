"""Influence machinery: closed-form MF Hessian-vector products against autograd, CG, influence vector."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.influence.mf import mf_hvp
from apt_core.influence.solvers import CGInfo, conjugate_gradient
from conftest import make_tiny


def _problem(seed: int = 0, dim: int = 4, dtype=torch.float64):
    data = make_tiny(12, 9, 0.4, seed)
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(data.n_users, dim, generator=g, dtype=dtype) * 0.5
    Q = torch.randn(data.n_items, dim, generator=g, dtype=dtype) * 0.5
    users = torch.from_numpy(data.users)
    items = torch.from_numpy(data.items)
    ratings = torch.from_numpy(data.normalised_ratings).to(dtype)
    return P, Q, users, items, ratings


def _loss(P, Q, users, items, ratings):
    err = (P[users] * Q[items]).sum(1) - ratings
    return (err * err).mean()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_mf_hvp_matches_autograd(seed, damping):
    P, Q, users, items, ratings = _problem(seed)
    g = torch.Generator().manual_seed(seed + 10)
    vP = torch.randn(P.shape, generator=g, dtype=P.dtype)
    vQ = torch.randn(Q.shape, generator=g, dtype=Q.dtype)
    _, (aP, aQ) = torch.autograd.functional.hvp(lambda p, q: _loss(p, q, users, items, ratings), (P, Q), (vP, vQ))
    hP, hQ = mf_hvp(P, Q, users, items, ratings, vP, vQ, damping)
    torch.testing.assert_close(hP, aP + damping * vP, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hQ, aQ + damping * vQ, rtol=1e-10, atol=1e-12)


def test_mf_hvp_is_symmetric():
    P, Q, users, items, ratings = _problem(2)
    g = torch.Generator().manual_seed(3)
    a = (torch.randn(P.shape, generator=g, dtype=P.dtype), torch.randn(Q.shape, generator=g, dtype=Q.dtype))
    b = (torch.randn(P.shape, generator=g, dtype=P.dtype), torch.randn(Q.shape, generator=g, dtype=Q.dtype))
    Ha = mf_hvp(P, Q, users, items, ratings, *a)
    Hb = mf_hvp(P, Q, users, items, ratings, *b)
    lhs = sum((x * y).sum() for x, y in zip(b, Ha))
    rhs = sum((x * y).sum() for x, y in zip(a, Hb))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-10)


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(20, 20, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b1 = torch.randn(12, generator=g, dtype=torch.float64)
    b2 = torch.randn(8, generator=g, dtype=torch.float64)

    def matvec(v):
        y = A @ torch.cat(v)
        return y[:12], y[12:]

    (x1, x2), info = conjugate_gradient(matvec, (b1, b2), max_iter=100, tol=1e-10)
    assert isinstance(info, CGInfo) and info.converged
    x_ref = torch.linalg.solve(A, torch.cat([b1, b2]))
    torch.testing.assert_close(torch.cat([x1, x2]), x_ref, rtol=1e-6, atol=1e-8)
    true_res = float(torch.linalg.norm(torch.cat([b1, b2]) - A @ torch.cat([x1, x2])) / torch.linalg.norm(torch.cat([b1, b2])))
    assert true_res <= 1e-8
    assert info.residual <= 1e-10


def test_conjugate_gradient_reports_non_convergence():
    A = torch.diag(torch.logspace(0, 6, 50, dtype=torch.float64))
    b = (torch.ones(50, dtype=torch.float64),)
    _, info = conjugate_gradient(lambda v: (A @ v[0],), b, max_iter=3, tol=1e-12)
    assert info.iterations == 3 and not info.converged and info.residual > 1e-12


def test_conjugate_gradient_on_mf_hessian_with_damping():
    P, Q, users, items, ratings = _problem(4)
    g = torch.Generator().manual_seed(5)
    b = (torch.randn(P.shape, generator=g, dtype=P.dtype), torch.randn(Q.shape, generator=g, dtype=Q.dtype))
    damping = 1.0  # large enough that H + damping I is positive definite on this random point
    (wP, wQ), info = conjugate_gradient(lambda v: mf_hvp(P, Q, users, items, ratings, *v, damping), b, max_iter=200, tol=1e-9)
    assert info.converged
    hP, hQ = mf_hvp(P, Q, users, items, ratings, wP, wQ, damping)
    torch.testing.assert_close(hP, b[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(hQ, b[1], rtol=1e-6, atol=1e-7)


def test_sparse_operator_matches_mf_hvp_and_gradient():
    from apt_core.influence.mf import RatingStructure, mf_hvp_operator
    from apt_core.models.mf import mf_batch_gradients

    P, Q, users, items, ratings = _problem(6)
    g = torch.Generator().manual_seed(7)
    v = (torch.randn(P.shape, generator=g, dtype=P.dtype), torch.randn(Q.shape, generator=g, dtype=Q.dtype))
    st = RatingStructure.build(users, items, P.shape[0], Q.shape[0])
    matvec, (dP, dQ), (gP, gQ) = mf_hvp_operator(P, Q, users, items, ratings, 0.2, st)
    hP, hQ = matvec(v)
    rP, rQ = mf_hvp(P, Q, users, items, ratings, *v, 0.2)
    torch.testing.assert_close(hP, rP)
    torch.testing.assert_close(hQ, rQ)
    eP, eQ, _ = mf_batch_gradients(P, Q, users, items, ratings, 0.0)
    torch.testing.assert_close(gP, eP)
    torch.testing.assert_close(gQ, eQ)
    # The diagonal: H e_k for unit vectors, read at k.
    H = torch.autograd.functional.hessian(lambda p, q: _loss(p, q, users, items, ratings), (P, Q))
    diagP = torch.diagonal(H[0][0].reshape(P.numel(), P.numel())).reshape(P.shape)
    diagQ = torch.diagonal(H[1][1].reshape(Q.numel(), Q.numel())).reshape(Q.shape)
    torch.testing.assert_close(dP, diagP + 0.2)
    torch.testing.assert_close(dQ, diagQ + 0.2)

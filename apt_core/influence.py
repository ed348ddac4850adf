"""Influence machinery for MF: exact Hessian-vector products, a CG solver, APT's influence vector.

The MF training loss (DESIGN section 3, ratings normalised to (0, 1]) is

    L(P, Q) = (1/N) * sum_{(u,i,r)} (p_u . q_i - r)^2 .

Its Hessian is never formed: with e_ui = p_u . q_i - r and the directional change
de_ui = vP_u . q_i + p_u . vQ_i of the residual along (vP, vQ),

    (H v)_P[u] = (2/N) sum_i (de_ui q_i + e_ui vQ_i)
    (H v)_Q[i] = (2/N) sum_u (de_ui p_u + e_ui vP_u)

which costs two gathers and two ``index_add`` over the ratings, O(ratings x d), the same as
one gradient.  :func:`conjugate_gradient` solves ``(H + damping I) w = g`` with it and reports
its residual, and :func:`influence_vector` is APT's Eq. 4-5 (Wu et al., SIGIR 2021) in the
closed form of DESIGN section 6, step 4.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.errors import ConfigError

Tensors = tuple[torch.Tensor, ...]


def mf_hvp(
    P: torch.Tensor,
    Q: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    vP: torch.Tensor,
    vQ: torch.Tensor,
    damping: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Hessian-vector product (closed form, O(ratings x d)) of the MF training loss
    L(P, Q) = (1/N) * sum_{(u,i,r)} (p_u . q_i - r)^2   (N = len(ratings), ratings normalised)
    with respect to (P, Q), applied to (vP, vQ); returns (H v)_P + damping*vP, (H v)_Q + damping*vQ."""
    pu = P.index_select(0, users)
    qi = Q.index_select(0, items)
    vpu = vP.index_select(0, users)
    vqi = vQ.index_select(0, items)
    err = (pu * qi).sum(1) - ratings
    derr = (vpu * qi).sum(1) + (pu * vqi).sum(1)
    scale = 2.0 / max(1, len(ratings))
    a = (derr * scale).unsqueeze(1)
    b = (err * scale).unsqueeze(1)
    hP = torch.zeros_like(P).index_add_(0, users, a * qi + b * vqi)
    hQ = torch.zeros_like(Q).index_add_(0, items, a * pu + b * vpu)
    if damping:
        hP.add_(vP, alpha=damping)
        hQ.add_(vQ, alpha=damping)
    return hP, hQ


@dataclass
class CGInfo:
    iterations: int
    residual: float  # final ||b - A x|| / ||b||
    converged: bool


def _dot(a: Tensors, b: Tensors) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def conjugate_gradient(
    matvec: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]],
    b: tuple[torch.Tensor, ...],
    max_iter: int = 50,
    tol: float = 1e-5,
) -> tuple[tuple[torch.Tensor, ...], CGInfo]:
    """Solve A x = b for a symmetric operator given as matvec over tuples of tensors.

    Starts from x = 0.  Stops when ||b - A x|| / ||b|| <= tol or after ``max_iter``
    iterations; the returned :class:`CGInfo` says which, with the final relative residual.
    CG assumes A positive definite; MF's Hessian is only positive semi-definite near a
    minimum (and may be indefinite away from it), so callers add damping.  If a direction
    of non-positive curvature shows up the solver stops there and reports not converged,
    keeping the best iterate so far instead of diverging.
    """
    if max_iter < 0 or tol < 0:
        raise ConfigError("conjugate_gradient: max_iter and tol must be non-negative")
    b = tuple(b)
    x = tuple(torch.zeros_like(t) for t in b)
    r = tuple(t.clone() for t in b)
    p = tuple(t.clone() for t in b)
    b_norm = float(torch.sqrt(_dot(b, b)))
    if b_norm == 0.0:
        return x, CGInfo(0, 0.0, True)
    rs = _dot(r, r)
    rel = float(torch.sqrt(rs)) / b_norm
    it = 0
    while it < max_iter and rel > tol:
        Ap = matvec(p)
        curvature = _dot(p, Ap)
        if float(curvature) <= 0.0:
            break
        alpha = rs / curvature
        x = tuple(xi.add(pi, alpha=float(alpha)) for xi, pi in zip(x, p))
        r = tuple(ri.sub(api, alpha=float(alpha)) for ri, api in zip(r, Ap))
        rs_new = _dot(r, r)
        beta = rs_new / rs
        p = tuple(ri.add(pi, alpha=float(beta)) for ri, pi in zip(r, p))
        rs = rs_new
        it += 1
        rel = float(torch.sqrt(rs)) / b_norm
    return x, CGInfo(it, rel, rel <= tol)

"""Influence machinery for MF: exact Hessian-vector products and APT's influence vector.

The MF training loss (docs/protocol.md, ratings normalised to (0, 1]) is

    L(P, Q) = (1/N) * sum_{(u,i,r)} (p_u . q_i - r)^2 .

Its Hessian is never formed: with e_ui = p_u . q_i - r and the directional change
de_ui = vP_u . q_i + p_u . vQ_i of the residual along (vP, vQ),

    (H v)_P[u] = (2/N) sum_i (de_ui q_i + e_ui vQ_i)
    (H v)_Q[i] = (2/N) sum_u (de_ui p_u + e_ui vP_u)

which costs two gathers and two ``index_add`` over the ratings, O(ratings x d), the same as
one gradient.  The solvers of :mod:`apt_core.influence.solvers` use it:
:func:`~apt_core.influence.solvers.conjugate_gradient` solves ``(H + damping I) w = g`` and
reports its residual, :func:`~apt_core.influence.solvers.lissa_recursion` is LiSSA's recursion
on the full-data Hessian and :func:`~apt_core.influence.solvers.lanczos_filter` applies LiSSA's
spectral filter in a few dozen products; :func:`lissa_stochastic` here is LiSSA as the APT
authors ran it (1000 minibatch steps of MF's Hessian).  :func:`influence_vector` is APT's Eq. 4-5 (Wu et al., SIGIR 2021) in the closed
form of APT's step 4 in docs/algorithms.md.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from apt_core.errors import ConfigError
from apt_core.influence.solvers import (  # noqa: F401 -- CGInfo, LanczosInfo: the solvers' reports, named here too
    CGInfo,
    LanczosInfo,
    LissaSettings,
    Tensors,
    conjugate_gradient,
    lanczos_filter,
    lissa_filter,
    lissa_recursion,
)

# torch marks sparse CSR "beta" with a warning on every construction; the products used here
# (CSR x dense, sampled_addmm) are stable and tested against dense autograd in the tests.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


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


def lissa_stochastic(
    P: torch.Tensor,
    Q: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    g: Tensors,
    settings: LissaSettings = LissaSettings(),
    seed: int = 0,
) -> Tensors:
    """The authors' stochastic LiSSA on MF's exact minibatch Hessian-vector products.

    Minibatches are consecutive slices of a seeded permutation of the ratings, reshuffled
    when a pass runs out (a data feeder's ``next_batch``); a batch at least as large as the
    data is the full-batch recursion.  Each batch Hessian is an unbiased estimate of the
    full-data one, so the result scatters around :func:`lissa_filter` applied to the
    full-data Hessian, which :func:`lissa_recursion` and :func:`lanczos_filter` compute
    deterministically (not exactly its mean: the batches of one pass are disjoint, which
    adds a bias of second order in H).  At APT's model states on ML-100K and FilmTrust the
    two rank items alike (Spearman >= 0.9999; ``scripts/lissa_agreement.py``).
    """
    s = settings
    n = len(ratings)
    gen = torch.Generator().manual_seed(int(seed))
    batch = min(int(s.batch_size), n)
    perm, pos = None, n
    w = tuple(t.clone() for t in g)
    for _ in range(int(s.steps)):
        if pos + batch > n:
            perm = torch.randperm(n, generator=gen).to(users.device)
            pos = 0
        idx = perm[pos:pos + batch]
        pos += batch
        hP, hQ = mf_hvp(P, Q, users.index_select(0, idx), items.index_select(0, idx), ratings.index_select(0, idx), w[0], w[1])
        w = (
            g[0].add(w[0], alpha=1.0 - s.damping).sub_(hP, alpha=1.0 / s.scale),
            g[1].add(w[1], alpha=1.0 - s.damping).sub_(hQ, alpha=1.0 / s.scale),
        )
    return tuple(t / s.scale for t in w)


SOLVERS = ("cg", "identity", "lissa", "lissa-full", "lissa-lanczos")
PRECONDITIONERS = ("jacobi", "none")
ER_LOSSES = ("mean", "per-rating")


@dataclass
class InfluenceResult:
    """One influence vector over items and how it was obtained."""

    values: np.ndarray  # (n_items,) I_j; negative = adding ratings of j lowers the empirical risk
    probe_users: np.ndarray  # the users z of Eq. 4 (smallest rating-vector norm)
    solver: str
    cg: CGInfo | None  # None for solver="identity"
    damping: float  # absolute lambda added to H
    solution: Tensors | None = field(default=None, repr=False)  # w = (H + lambda I)^-1 grad L_ER
    lanczos: LanczosInfo | None = None  # for solver="lissa-lanczos"


def probe_users(users: np.ndarray, ratings: np.ndarray, n_users: int, n_probe: int) -> np.ndarray:
    """The ``n_probe`` users with the smallest rating-vector L2 norm (the authors' ``cal_neighbor``).

    Users without any rating are skipped (their norm 0 says nothing about the data).
    """
    sq = np.bincount(users, weights=np.asarray(ratings, dtype=np.float64) ** 2, minlength=n_users)
    has = np.bincount(users, minlength=n_users) > 0
    candidates = np.flatnonzero(has)
    order = np.argsort(np.sqrt(sq[candidates]), kind="stable")
    return candidates[order[: max(1, int(n_probe))]]


def er_gradient(
    P: torch.Tensor, Q: torch.Tensor, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, er_loss: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of APT's empirical-risk loss L_ER over (P, Q).

    ``"mean"``: the authors' code, sigmoid(MSE); its gradient is sigmoid'(MSE) * grad MSE, the
    MSE gradient up to a positive factor, which changes neither the sign nor the order of the
    influence vector, so the factor is dropped.  ``"per-rating"``: the paper's
    sum_z sigmoid((r - r_hat)^2) (normalised by N), each residual weighted by sigmoid'(e^2).
    """
    if er_loss not in ER_LOSSES:
        raise ConfigError(f"er_loss must be one of {', '.join(ER_LOSSES)}, got {er_loss!r}")
    pu = P.index_select(0, users)
    qi = Q.index_select(0, items)
    err = (pu * qi).sum(1) - ratings
    coef = err * (2.0 / max(1, len(ratings)))
    if er_loss == "per-rating":
        s = torch.sigmoid(err * err)
        coef = coef * s * (1 - s)
    coef = coef.unsqueeze(1)
    gP = torch.zeros_like(P).index_add_(0, users, coef * qi)
    gQ = torch.zeros_like(Q).index_add_(0, items, coef * pu)
    return gP, gQ


@dataclass
class RatingStructure:
    """The sparsity pattern of a rating set, sorted once for repeated sparse products.

    ``order`` sorts the ratings by (user, item) (CSR rows = users); ``tperm`` re-sorts that
    order by (item, user) for the transposed matrix.  Sparse CSR x dense products are several
    times faster than ``index_add`` scatters on a CPU, and run on CUDA unchanged.
    """

    order: torch.Tensor
    users: torch.Tensor
    items: torch.Tensor
    crow: torch.Tensor
    ccol: torch.Tensor
    tperm: torch.Tensor
    t_users: torch.Tensor
    n_users: int
    n_items: int

    @classmethod
    def build(cls, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> "RatingStructure":
        device = users.device
        u = users.cpu().numpy()
        i = items.cpu().numpy()
        order = np.lexsort((i, u))
        su, si = u[order], i[order]
        tperm = np.lexsort((su, si))
        crow = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(su, minlength=n_users), out=crow[1:])
        ccol = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(si, minlength=n_items), out=ccol[1:])
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        return cls(t(order), t(su), t(si), t(crow), t(ccol), t(tperm), t(su[tperm]), int(n_users), int(n_items))

    def by_user(self, values: torch.Tensor) -> torch.Tensor:
        """(n_users x n_items) CSR matrix with ``values`` given in this structure's order."""
        return torch.sparse_csr_tensor(self.crow, self.items, values, (self.n_users, self.n_items), check_invariants=False)

    def by_item(self, values: torch.Tensor) -> torch.Tensor:
        """The transpose, (n_items x n_users) CSR, from values in this structure's order."""
        return torch.sparse_csr_tensor(self.ccol, self.t_users, values.index_select(0, self.tperm), (self.n_items, self.n_users), check_invariants=False)


def mf_hvp_operator(
    P: torch.Tensor,
    Q: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    damping: float = 0.0,
    structure: RatingStructure | None = None,
) -> tuple[Callable[[Tensors], Tensors], Tensors, Tensors]:
    """``(matvec, diagonal, gradient)`` of the MF loss at fixed (P, Q), for many products.

    The same product as :func:`mf_hvp` plus ``damping * v``, but what does not change while a
    solver runs (gathered factors, residuals, the sparsity pattern) is computed once, and the
    scatters are sparse CSR products.  ``diagonal`` is H's exact diagonal plus damping (the
    residual terms of H sit only in the P-Q cross blocks), for a Jacobi preconditioner;
    ``gradient`` is the loss gradient (which the same sparse matrices give for free).
    """
    st = structure or RatingStructure.build(users, items, P.shape[0], Q.shape[0])
    r = ratings.index_select(0, st.order)
    scale = 2.0 / max(1, len(r))
    pattern = st.by_user(torch.zeros_like(r))
    # Sampled dense-dense products (SDDMM) give p_u . q_i on the observed pairs without
    # materialising the gathered (ratings x d) factor rows: >10x faster than gathers on CPU.
    b = torch.sparse.sampled_addmm(pattern, P, Q.T, beta=0.0).values().sub_(r).mul_(scale)
    B, Bt = st.by_user(b), st.by_item(b)

    def matvec(v: Tensors) -> Tensors:
        vP, vQ = v
        # de_ui = vP_u . q_i + p_u . vQ_i = [vP, P]_u . [Q, vQ]_i on the observed pairs.
        a = torch.sparse.sampled_addmm(pattern, torch.cat([vP, P], 1), torch.cat([Q, vQ], 1).T, beta=0.0).values().mul_(scale)
        hP = st.by_user(a) @ Q + B @ vQ
        hQ = st.by_item(a) @ P + Bt @ vP
        if damping:
            hP.add_(vP, alpha=damping)
            hQ.add_(vQ, alpha=damping)
        return hP, hQ

    ones = torch.full_like(r, scale)
    dP = (st.by_user(ones) @ (Q * Q)).add_(damping)
    dQ = (st.by_item(ones) @ (P * P)).add_(damping)
    return matvec, (dP, dQ), (B @ Q, Bt @ P)


def influence_vector(
    P: torch.Tensor,
    Q: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    probe: np.ndarray | torch.Tensor,
    solver: str = "cg",
    damping: float = 10.0,
    max_iter: int = 30,
    tol: float = 1e-2,
    er_loss: str = "mean",
    preconditioner: str = "jacobi",
    x0: Tensors | None = None,
    structure: RatingStructure | None = None,
    lissa: LissaSettings | None = None,
    seed: int = 0,
    lanczos_max_iter: int = 40,
    lanczos_tol: float = 1e-3,
) -> InfluenceResult:
    """APT's influence of each item on the empirical risk (Eq. 4-5; APT's step 4 in docs/algorithms.md).

    ``P, Q``: the model's factors for the users of the observed data D (ERM rows excluded)
    and all items; ``users, items, ratings``: D with normalised ratings.  Solves
    ``(H + lambda I) w = grad L_ER`` by (Jacobi-preconditioned) CG on exact HVPs
    (``solver="cg"``), takes ``w = grad L_ER`` (``"identity"``), or applies LiSSA's filter
    ``w = f(H) grad L_ER`` (:func:`lissa_filter`, settings ``lissa``, default the authors'):
    ``"lissa"`` runs the authors' stochastic recursion (seeded by ``seed``), ``"lissa-full"``
    the same recursion with the full-data Hessian (deterministic),
    ``"lissa-lanczos"`` the same filter by Lanczos in at most ``lanczos_max_iter`` products.
    It then returns, for each item j,

        I_j = (2/n) sum_{z in probe} (w_P[z] . q_j + p_z . w_Q[j]),

    the derivative of -grad L_ER^T H^-1 grad_theta L(z) with respect to the probe users'
    rating of j (n = number of users of D).  ``damping`` is relative: lambda = damping x the
    mean diagonal entry of H, so one setting suits data sets of any size and factor scale.
    MF's Hessian is indefinite away from an exact minimum (the residual terms), and after a
    few Adagrad epochs it is: on ML-100K a damping below ~10 made CG meet negative
    curvature, hence the default.  ``x0`` warm-starts CG (APT passes the previous round's w).
    """
    if solver not in SOLVERS:
        raise ConfigError(f"influence solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ConfigError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, got {preconditioner!r}")
    if damping < 0:
        raise ConfigError(f"influence damping must be non-negative, got {damping}")
    probe_t = torch.as_tensor(np.asarray(probe), dtype=torch.long, device=P.device)
    structure = structure or RatingStructure.build(users, items, P.shape[0], Q.shape[0])
    # One pass gives H's products, its diagonal and the MSE gradient (= grad L_ER of the
    # authors' sigmoid(MSE) up to a positive factor, which changes no sign or order).
    matvec0, (hP, hQ), (gP, gQ) = mf_hvp_operator(P, Q, users, items, ratings, 0.0, structure)
    if er_loss != "mean":
        gP, gQ = er_gradient(P, Q, users, items, ratings, er_loss)
    info = None
    lanczos_info = None
    lam = 0.0
    if solver == "cg":
        lam = damping * float(hP.sum() + hQ.sum()) / (hP.numel() + hQ.numel())

        def matvec(v: Tensors) -> Tensors:
            h = matvec0(v)
            return h[0].add_(v[0], alpha=lam), h[1].add_(v[1], alpha=lam)

        for attempt in range(3):
            precond = None
            if preconditioner == "jacobi" and lam > 0:
                iP, iQ = 1.0 / (hP + lam), 1.0 / (hQ + lam)
                precond = lambda r, iP=iP, iQ=iQ: (r[0] * iP, r[1] * iQ)  # noqa: E731
            (wP, wQ), info = conjugate_gradient(matvec, (gP, gQ), max_iter, tol, precond, x0)
            if not (info.negative_curvature and info.residual > 0.5) or lam == 0:
                break
            # H + lambda I is not positive definite here (far from a minimum): CG broke
            # down before it got anywhere.  Levenberg-Marquardt style: 10x the damping.
            lam *= 10.0
            x0 = None
    elif solver == "identity":
        wP, wQ = gP, gQ
    else:
        settings = lissa or LissaSettings()
        if solver == "lissa":
            wP, wQ = lissa_stochastic(P, Q, users, items, ratings, (gP, gQ), settings, seed)
        elif solver == "lissa-full":
            wP, wQ = lissa_recursion(matvec0, (gP, gQ), settings)
        else:
            fn = lambda lam: lissa_filter(lam, settings.steps, settings.scale, settings.damping)  # noqa: E731
            (wP, wQ), lanczos_info = lanczos_filter(matvec0, (gP, gQ), fn, lanczos_max_iter, lanczos_tol)
    n = P.shape[0]
    sum_w = wP.index_select(0, probe_t).sum(0)
    sum_p = P.index_select(0, probe_t).sum(0)
    values = (Q @ sum_w + wQ @ sum_p) * (2.0 / max(1, n))
    return InfluenceResult(values.detach().cpu().double().numpy(), probe_t.cpu().numpy(), solver, info, lam, (wP, wQ), lanczos_info)

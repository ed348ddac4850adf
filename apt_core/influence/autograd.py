"""APT's influence for any differentiable victim, by autograd Hessian-vector products.

MF's influence has a closed form (:func:`apt_core.influence.mf.influence_vector`, the fast
path).  For other victims (LightGCN, NeuMF) the same quantity (Wu et al., SIGIR 2021, Eq. 4-5)

    I_j = -(1/n) sum_{z in probe} w . d/d(z,j) grad_theta L(z, theta),   (H + lambda I) w = grad L_ER

is computed here from three functions of the parameter list theta:

- ``loss(theta)``: the victim's training loss on the observed data D (H = its Hessian;
  Hessian-vector products by double backward, no matrix is formed);
- ``er_loss(theta)``: the empirical risk L_ER (default: the training loss itself; for MF's
  ``"mean"`` L_ER, sigmoid(MSE), that is the same direction up to a positive factor);
- ``probe_scores(theta)``: the scores of the probe users z over every item.

What "d/d(z,j)" means depends on how the victim reads a rating (``kind``):

- ``"explicit"`` (squared error on the rating r): the derivative with respect to the probe
  user's rating of j, which gives I_j = (2/n) sum_z J_f(z,j) w with J_f the Jacobian of the
  score; on MF this is exactly the closed form (the test checks it).
- ``"logloss"`` (NeuMF, an interaction is a positive with loss -log sigmoid(f)): the
  influence of adding the interaction (z, j) (Koh & Liang's up-weighting),
  I_j = (1/n) sum_z (1 - sigmoid(f_zj)) J_f(z,j) w.
- ``"bpr"`` (LightGCN, loss -log sigmoid(f_zj - f_zk) with a uniform negative k): the same
  with the expected negative, I_j = (1/n) sum_z (1 - sigmoid(f_zj - mean_k f_zk)) (J_f(z,j) w - mean_k J_f(z,k) w).

Negative I_j: an ERM interaction (explicit: a higher rating) on item j lowers the empirical
risk, the items APT's ERM users pick.  J_f w for all items at once is one Jacobian-vector
product, taken with the double-backward trick (so any op with a backward works, sparse
propagation included).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from apt_core.errors import ConfigError
from apt_core.influence.mf import SOLVERS, InfluenceResult
from apt_core.influence.solvers import LissaSettings, conjugate_gradient, lanczos_filter, lissa_filter, lissa_recursion

KINDS = ("explicit", "logloss", "bpr")
Params = list[torch.Tensor]


def _grads(out: torch.Tensor, params: Params, **kw) -> list[torch.Tensor]:
    gs = torch.autograd.grad(out, params, allow_unused=True, **kw)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def hvp_operator(loss: Callable[[Params], torch.Tensor], params: Params) -> Callable[[tuple], tuple]:
    """``v -> H v`` of ``loss`` at ``params`` (exact, by double backward; the graph is built once)."""
    grads = torch.autograd.grad(loss(params), params, create_graph=True, allow_unused=True)
    live = [k for k, g in enumerate(grads) if g is not None and g.requires_grad]

    def matvec(v: tuple) -> tuple:
        if not live:
            return tuple(torch.zeros_like(p) for p in params)
        hv = torch.autograd.grad([grads[k] for k in live], params, grad_outputs=[v[k] for k in live], retain_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(p) if h is None else h.detach() for p, h in zip(params, hv))

    return matvec


def score_jvp(probe_scores: Callable[[Params], torch.Tensor], params: Params, w: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, J_S w)``: the probe scores and their directional derivative along ``w``.

    Double-backward trick: g(u) = J^T u is linear in u, and d/du (g(u) . w) = J w.
    """
    s = probe_scores(params)
    u = torch.zeros_like(s, requires_grad=True)
    gs = torch.autograd.grad(s, params, grad_outputs=u, create_graph=True, allow_unused=True)
    dot = sum((g * wk).sum() for g, wk in zip(gs, w) if g is not None)
    if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
        return s.detach(), torch.zeros_like(s)
    (js,) = torch.autograd.grad(dot, u)
    return s.detach(), js.detach()


def item_influence(s: torch.Tensor, js: torch.Tensor, n: int, kind: str) -> torch.Tensor:
    """Combine probe scores ``s`` and ``J_S w`` into I over items (see the module docstring)."""
    if kind == "explicit":
        return js.sum(0) * (2.0 / max(1, n))
    if kind == "logloss":
        return ((1 - torch.sigmoid(s)) * js).sum(0) / max(1, n)
    if kind == "bpr":
        margin = s - s.mean(1, keepdim=True)
        return ((1 - torch.sigmoid(margin)) * (js - js.mean(1, keepdim=True))).sum(0) / max(1, n)
    raise ConfigError(f"influence kind must be one of {', '.join(KINDS)}, got {kind!r}")


def mean_hessian_diagonal(matvec: Callable[[tuple], tuple], params: Params, n_samples: int = 4, random_state: int = 0) -> float:
    """Scale of H's diagonal: the mean |diag(H)| by Hutchinson's estimator (Rademacher probes, seeded).

    diag(H) ~ mean_k v_k * (H v_k) elementwise.  The mean *absolute* entry, not the trace: a
    victim's Hessian away from a minimum is indefinite and its trace can be near zero or
    negative, which would leave CG undamped.
    """
    gen = torch.Generator().manual_seed(int(random_state))
    acc = [torch.zeros_like(p) for p in params]
    for _ in range(max(1, n_samples)):
        v = tuple((torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params)
        for a, vk, hk in zip(acc, v, matvec(v)):
            a.add_(vk * hk)
    total = sum(float(a.abs().sum()) for a in acc) / max(1, n_samples)
    return total / max(1, sum(p.numel() for p in params))


def autograd_influence(
    params: Params,
    loss: Callable[[Params], torch.Tensor],
    probe_scores: Callable[[Params], torch.Tensor],
    n: int,
    probe: np.ndarray,
    kind: str = "explicit",
    solver: str = "identity",
    damping: float = 10.0,
    max_iter: int = 30,
    tol: float = 1e-2,
    er_loss: Callable[[Params], torch.Tensor] | None = None,
    absolute_damping: float | None = None,
    x0: tuple | None = None,
    random_state: int = 0,
    lissa: LissaSettings | None = None,
    lanczos_max_iter: int = 40,
    lanczos_tol: float = 1e-3,
) -> InfluenceResult:
    """APT's influence vector over items for a victim given by its loss and scores.

    ``solver="identity"``: w = grad L_ER (APT's default, what the authors' truncated LiSSA
    effectively computes); ``"cg"``: CG on (H + lambda I) w = grad L_ER with exact HVPs,
    lambda = ``damping`` x H's mean absolute diagonal (Hutchinson estimate) unless
    ``absolute_damping`` is given; no preconditioner (a general victim's diagonal is not
    free).  As in the MF path, CG that meets negative curvature at once retries with 10x
    the damping.  ``"lissa-full"``: the authors' LiSSA recursion (``lissa`` settings) with
    the full-data Hessian; ``"lissa-lanczos"``: the same spectral filter by Lanczos (about 10
    products).  ``"lissa"`` (the authors' *stochastic* minibatch recursion, MF only) is
    computed as ``"lissa-lanczos"`` here -- the filter the stochastic recursion approximates
    (the result's ``solver`` says so): 1000 minibatch products per round are out of reach
    for a neural victim on a CPU.  ``n``: number of users of D (Eq. 4's 1/n).
    """
    if solver not in SOLVERS:
        raise ConfigError(f"influence solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if kind not in KINDS:
        raise ConfigError(f"influence kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if damping < 0 or (absolute_damping is not None and absolute_damping < 0):
        raise ConfigError(f"influence damping must be non-negative, got {damping}")
    g = tuple(t.detach() for t in _grads((er_loss or loss)(params), params))
    info, lam, lanczos_info = None, 0.0, None
    if solver in ("lissa", "lissa-full", "lissa-lanczos"):
        settings = lissa or LissaSettings()
        h0 = hvp_operator(loss, params)
        if solver == "lissa-full":
            w = lissa_recursion(h0, g, settings)
        else:
            solver = "lissa-lanczos"
            fn = lambda lam_: lissa_filter(lam_, settings.steps, settings.scale, settings.damping)  # noqa: E731
            w, lanczos_info = lanczos_filter(h0, g, fn, lanczos_max_iter, lanczos_tol)
    elif solver == "cg":
        h0 = hvp_operator(loss, params)
        lam = float(absolute_damping) if absolute_damping is not None else damping * mean_hessian_diagonal(h0, params, random_state=random_state)

        for _ in range(3):
            def matvec(v: tuple, lam=lam) -> tuple:
                return tuple(h.add(vk, alpha=lam) for h, vk in zip(h0(v), v))

            w, info = conjugate_gradient(matvec, g, max_iter, tol, None, x0)
            if not (info.negative_curvature and info.residual > 0.5) or lam == 0:
                break
            lam *= 10.0
            x0 = None
    else:
        w = g
    if not all(bool(torch.isfinite(t).all()) for t in w):
        # LiSSA's filter (or an undamped solve) blew up along negative curvature: fall back
        # to the gradient itself, and say so in the result's solver name.
        w, solver = g, f"identity ({solver} was not finite)"
    s, js = score_jvp(probe_scores, params, w)
    values = item_influence(s, js, n, kind)
    return InfluenceResult(values.detach().cpu().double().numpy(), np.asarray(probe), solver, info, lam, tuple(w), lanczos_info)


def mf_autograd_influence(P: torch.Tensor, Q: torch.Tensor, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor,
                          probe: np.ndarray, **kw) -> InfluenceResult:
    """The general path applied to MF (for checking it against MF's closed form)."""
    params = [P.detach().clone().requires_grad_(True), Q.detach().clone().requires_grad_(True)]
    probe_t = torch.as_tensor(np.asarray(probe), dtype=torch.long, device=P.device)

    def loss(p: Params) -> torch.Tensor:
        return ((p[0].index_select(0, users) * p[1].index_select(0, items)).sum(1) - ratings).pow(2).mean()

    return autograd_influence(params, loss, lambda p: p[0].index_select(0, probe_t) @ p[1].T, P.shape[0], probe, "explicit", **kw)


def victim_influence(trainer, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, n: int, probe: np.ndarray,
                     random_state: int = 0, **kw) -> InfluenceResult:
    """APT's influence for a neural victim's trainer (:mod:`apt_core.models.victims`) on data D.

    ``users, items, ratings``: D only (ERM users excluded, as in the MF path); the loss is the
    victim's own training loss on D with one seeded negative sample, so H is well defined.
    """
    cfg = trainer.config
    kind = "explicit" if cfg.feedback == "explicit" else trainer.implicit_loss
    loss = trainer.influence_loss(users, items, ratings, random_state)
    probe_t = torch.as_tensor(np.asarray(probe), dtype=torch.long, device=trainer.device)
    return autograd_influence(list(trainer.params), loss, lambda p: trainer.user_scores(trainer.encode(p), probe_t), n, probe,
                              kind, random_state=random_state, **kw)

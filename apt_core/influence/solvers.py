"""Solvers for a symmetric operator given only as a matrix-vector product: CG, LiSSA, Lanczos.

Nothing here knows about MF: an operator is a function on tuples of tensors (the Hessian of
a model's loss applied to its parameters, :func:`apt_core.influence.mf.mf_hvp_operator` or
autograd's :mod:`apt_core.influence.autograd`).  :func:`conjugate_gradient` solves
``A x = b`` and reports its residual; :func:`lissa_recursion` is LiSSA's recursion with the
full operator and :func:`lissa_filter` its spectral filter, which :func:`lanczos_filter`
applies in a few dozen products.  The stochastic LiSSA the APT authors ran needs minibatch
Hessians of MF, so it lives with MF (:func:`apt_core.influence.mf.lissa_stochastic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from apt_core.errors import ConfigError

Tensors = tuple[torch.Tensor, ...]


@dataclass
class CGInfo:
    iterations: int
    residual: float  # final ||b - A x|| / ||b||
    converged: bool
    negative_curvature: bool = False  # stopped at a direction with p^T A p <= 0 (A not PD)


def _dot(a: Tensors, b: Tensors) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def conjugate_gradient(
    matvec: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]],
    b: tuple[torch.Tensor, ...],
    max_iter: int = 50,
    tol: float = 1e-5,
    preconditioner: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
    x0: tuple[torch.Tensor, ...] | None = None,
) -> tuple[tuple[torch.Tensor, ...], CGInfo]:
    """Solve A x = b for a symmetric operator given as matvec over tuples of tensors.

    Starts from ``x0`` (default 0).  Stops when ||b - A x|| / ||b|| <= tol or after
    ``max_iter`` iterations; the returned :class:`CGInfo` says which, with the final
    relative residual (of the recurrence, which equals the true one up to rounding).
    ``preconditioner(r)`` applies M^-1 (symmetric positive definite, e.g. the inverse
    diagonal): preconditioned CG, same answer in fewer iterations when A's diagonal varies.
    CG assumes A positive definite; MF's Hessian is only positive semi-definite near a
    minimum (and may be indefinite away from it), so callers add damping.  If a direction
    of non-positive curvature shows up the solver stops there and reports not converged
    instead of stepping along it.
    """
    if max_iter < 0 or tol < 0:
        raise ConfigError("conjugate_gradient: max_iter and tol must be non-negative")
    b = tuple(b)
    b_norm = float(torch.sqrt(_dot(b, b)))
    if x0 is None:
        x = tuple(torch.zeros_like(t) for t in b)
        r = tuple(t.clone() for t in b)
    else:
        x = tuple(t.clone() for t in x0)
        r = tuple(bi - ai for bi, ai in zip(b, matvec(x)))
    if b_norm == 0.0:
        return tuple(torch.zeros_like(t) for t in b), CGInfo(0, 0.0, True)
    z = preconditioner(r) if preconditioner is not None else r
    p = tuple(t.clone() for t in z)
    rz = _dot(r, z)
    rel = float(torch.sqrt(_dot(r, r))) / b_norm
    it = 0
    negative = False
    # On an indefinite operator the residual can grow before non-positive curvature shows:
    # return the iterate with the smallest residual seen, not the last one.
    best_x, best_rel = x, rel
    while it < max_iter and rel > tol:
        Ap = matvec(p)
        curvature = _dot(p, Ap)
        if float(curvature) <= 0.0:
            negative = True
            break
        alpha = float(rz / curvature)
        x = tuple(xi.add(pi, alpha=alpha) for xi, pi in zip(x, p))
        r = tuple(ri.sub(api, alpha=alpha) for ri, api in zip(r, Ap))
        z = preconditioner(r) if preconditioner is not None else r
        rz_new = _dot(r, z)
        beta = float(rz_new / rz)
        p = tuple(zi.add(pi, alpha=beta) for zi, pi in zip(z, p))
        rz = rz_new
        it += 1
        rel = float(torch.sqrt(_dot(r, r))) / b_norm
        if rel < best_rel:
            best_x, best_rel = x, rel
    return best_x, CGInfo(it, best_rel, best_rel <= tol, negative)


@dataclass(frozen=True)
class LissaSettings:
    """LiSSA (Agarwal et al. 2017, as Koh & Liang's influence code runs it): from w = g,
    ``steps`` updates ``w <- g + (1 - damping) w - H_batch w / scale``, result ``w / scale``,
    with H_batch the Hessian of the mean loss over ``batch_size`` ratings.

    The defaults are what the APT authors ran: 1000 steps, batch 16384, scale 1, no damping.
    """

    steps: int = 1000
    batch_size: int = 16384
    scale: float = 1.0
    damping: float = 0.0

    def __post_init__(self) -> None:
        if int(self.steps) < 0 or int(self.batch_size) < 1:
            raise ConfigError(f"LiSSA needs steps >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if not (float(self.scale) > 0 and np.isfinite(self.scale)) or not (0.0 <= float(self.damping) < 1.0):
            raise ConfigError(f"LiSSA needs scale > 0 and damping in [0, 1), got {self.scale}, {self.damping}")


def lissa_filter(lam, steps: int = 1000, scale: float = 1.0, damping: float = 0.0) -> np.ndarray:
    """The spectral filter of the deterministic LiSSA recursion: it returns ``f(H) g`` with

        f(lambda) = (1/s) sum_{k=0}^{K} rho^k = (1/s) (1 - rho^(K+1)) / (1 - rho),
        rho = 1 - damping - lambda / s,  K = steps,

    i.e. (1 - (1 - lambda)^(K+1)) / lambda for the authors' scale 1 and no damping: about
    1/lambda for eigenvalues lambda >> 1/K, about K+1 (a multiple of the identity) for
    lambda << 1/K, and exponentially large for negative eigenvalues (the recursion diverges
    along them; MF's Hessian has some away from an exact minimum).
    """
    lam = np.asarray(lam, dtype=np.float64)
    n = int(steps) + 1
    x = float(damping) + lam / float(scale)  # = 1 - rho
    rho = 1.0 - x
    out = np.empty_like(x)
    tiny = np.abs(x) < 1e-12
    pos = (rho > 0) & ~tiny
    with np.errstate(over="ignore", invalid="ignore"):
        # 1 - rho^n = -expm1(n log rho): exact also where rho^n is close to 1.
        out[pos] = -np.expm1(n * np.log1p(-x[pos])) / x[pos]
        rest = ~pos & ~tiny
        out[rest] = (1.0 - rho[rest] ** n) / x[rest]
    out[tiny] = n
    return out / float(scale)


def lissa_recursion(matvec: Callable[[Tensors], Tensors], g: Tensors, settings: LissaSettings = LissaSettings()) -> Tensors:
    """The LiSSA recursion with the full-data Hessian instead of minibatch ones:
    ``settings.steps`` Hessian-vector products, deterministic; returns ``lissa_filter(H) g``."""
    s = settings
    w = tuple(t.clone() for t in g)
    for _ in range(int(s.steps)):
        h = matvec(w)
        w = tuple(gi.add(wi, alpha=1.0 - s.damping).sub_(hi, alpha=1.0 / s.scale) for gi, wi, hi in zip(g, w, h))
    return tuple(t / s.scale for t in w)


@dataclass
class LanczosInfo:
    iterations: int  # Hessian-vector products used
    change: float  # relative change of the estimate over the last check (convergence measure)
    converged: bool
    ritz_min: float  # extreme eigenvalues of H seen by the Krylov space
    ritz_max: float


def lanczos_filter(
    matvec: Callable[[Tensors], Tensors],
    b: Tensors,
    fn: Callable[[np.ndarray], np.ndarray],
    max_iter: int = 40,
    tol: float = 1e-3,
    check_every: int = 2,
    min_iter: int = 6,
    reorthogonalise: int = 1,
) -> tuple[Tensors, LanczosInfo]:
    """``f(A) b`` for a symmetric operator ``A`` by the Lanczos method: ``|b| V_k f(T_k) e_1``.

    The Krylov space of ``k`` products holds the best polynomial of degree < k in A applied
    to b, so a smooth filter (LiSSA's is a polynomial of degree 1000 that a polynomial of
    degree ~10 matches on MF's spectrum) costs ``k`` products instead of 1000.  Vectors are
    kept in ``b``'s dtype and re-orthogonalised ``reorthogonalise`` times against all earlier
    ones (k is small); T_k and f(T_k) are float64.  Stops when the estimate's coefficients
    change by less than ``tol`` (relative) between checks every ``check_every`` steps (from
    ``min_iter`` on), at ``max_iter``, or when the Krylov space is exhausted.
    """
    shapes = [t.shape for t in b]
    sizes = [t.numel() for t in b]

    def split(x: torch.Tensor) -> Tensors:
        return tuple(p.view(sh) for p, sh in zip(torch.split(x, sizes), shapes))

    v = torch.cat([t.reshape(-1) for t in b])
    bnorm = float(torch.linalg.norm(v.double()))
    if bnorm == 0.0:
        return tuple(torch.zeros_like(t) for t in b), LanczosInfo(0, 0.0, True, 0.0, 0.0)
    max_iter = max(1, min(int(max_iter), v.numel()))
    V = torch.empty(max_iter, v.numel(), dtype=v.dtype, device=v.device)
    V[0] = v / bnorm
    alphas: list[float] = []
    betas: list[float] = []
    prev = None
    change, converged, exhausted, k = float("inf"), False, False, 0

    def estimate(k: int) -> tuple[np.ndarray, np.ndarray]:
        T = np.diag(alphas[:k]) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
        theta, S = np.linalg.eigh(T)
        return S @ (fn(theta) * S[0]), theta

    for k in range(1, max_iter + 1):
        w = torch.cat([t.reshape(-1) for t in matvec(split(V[k - 1]))])
        a = float(V[k - 1].double() @ w.double())
        alphas.append(a)
        w.add_(V[k - 1], alpha=-a)
        if k > 1:
            w.add_(V[k - 2], alpha=-betas[-1])
        # Re-orthogonalise against all earlier vectors (classical Gram-Schmidt): cheap for a
        # few dozen vectors, and it keeps converged Ritz values from reappearing.
        for _ in range(int(reorthogonalise)):
            w -= V[:k].T @ (V[:k] @ w)
        beta = float(torch.linalg.norm(w.double()))
        exhausted = beta <= 1e-10 * abs(a) + 1e-300
        done = k == max_iter or exhausted
        if (k >= min_iter and (k - min_iter) % check_every == 0) or done:
            y, theta = estimate(k)
            if prev is not None:
                full = np.zeros(k)
                full[: len(prev)] = prev
                change = float(np.linalg.norm(y - full) / max(np.linalg.norm(y), 1e-300))
                converged = change <= tol
            prev = y
            if converged or done:
                break
        betas.append(beta)
        V[k] = w / beta
    y, theta = estimate(k)
    x = (V[:k].T @ torch.from_numpy(y).to(V)) * bnorm
    return split(x), LanczosInfo(k, change, converged or exhausted, float(theta.min()), float(theta.max()))

"""PCMF: a single user factor matrix; items are represented through the users who rated them.

Paper: Christos G. Bampis, Cristian Rusu, Hazem Hajj, Alan C. Bovik, "Robust Matrix
Factorization for Collaborative Filtering in Recommender Systems" (Bampis et al. 2017), the
"PCMF" baseline of Wu et al., SIGIR 2021.

Threat model: robustness by construction rather than by detection; no profile is removed.
Budget: none.  Prediction R̂ = U Uᵀ Y with U ∈ R^{n×d} and Y the (normalised) training
matrix: item j's factor is z_j = Σ_v Y_vj u_v, the rating-weighted sum of its raters'
factors, so an item is only as strong as the users behind it.  Fitted by minibatch MSE on the
observed ratings with Adam; the gradient in closed form (two CSR products per step, Yᵀ and Y
both kept in CSR: autograd's own backward of a CSR product transposes it every step).

Our choice (the paper leaves it open for this setting): Y's columns are divided by the
square root of the item's rating count, so that z_j of a popular item does not grow with its
popularity and one learning rate fits every item; set ``normalise=False`` for the raw product.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult, Param
from apt_core.errors import CancelledError, DivergedError
from apt_core.models.mf import MFModel, glorot_uniform
from apt_core.runtime.devices import resolve_device


class PCMFModel(MFModel):
    """Fitted PCMF: user factors U and the derived item factors Z = Yᵀ U (scores U Zᵀ)."""


class AdamState:
    """``torch.optim.Adam([U], lr)`` on CPU/GPU, stepped with an explicit gradient: the same
    function Adam.step calls (``torch.optim.adam.adam``, its defaults: single-tensor or foreach
    as Adam would pick), the same state (float32 step counter, zero moments), so the same bits
    (``tests/test_defenses.py``).  Constructing ``torch.optim.Adam`` imports torch._dynamo (2.7 s of
    CPU in a fresh process, measured), which a first grid build would otherwise pay for nothing."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        from torch.optim.adam import adam

        self._adam, self.param, self.lr, self.betas, self.eps = adam, param, float(lr), betas, float(eps)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
        self.step_count = torch.tensor(0.0)  # on the CPU, where Adam keeps it unless capturable or fused

    def step(self, grad: torch.Tensor) -> None:
        self._adam([self.param], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count], foreach=None, capturable=False,
                   differentiable=False, fused=None, grad_scale=None, found_inf=None, has_complex=False, decoupled_weight_decay=False,
                   amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr, weight_decay=0.0, eps=self.eps, maximize=False)


class PCMF(Defense):
    """Single-factor-matrix MF, R̂ = U Uᵀ Y (Bampis et al. 2017)."""

    name = "pcmf"
    summary = "PCMF: one user factor matrix, item factors = rating-weighted sums of their raters' factors"
    divergence_hint = "lower PCMF's learning rate (lr)"
    paper = "Bampis, Rusu, Hajj, Bovik 2017"
    threat_model = "none beyond the data: robust by construction, no profile removed"
    params = (
        Param("dim", int, None, "factor dimension (None: the MF recipe's)", low=1, high=1024, optional=True),
        Param("lr", float, 0.01, "Adam learning rate", low=0.0, low_open=True, high=10.0),
        Param("epochs", int, None, "training epochs (None: the run's epochs)", low=1, high=1000, optional=True),
        Param("batch_size", int, 4096, "ratings per minibatch", low=1, high=1_000_000),
        Param("normalise", bool, True, "divide Y's columns by sqrt(item count) (our choice; False: the raw product)"),
        Param("reg", float, 0.0, "L2 penalty on the user factors", low=0.0, high=1000.0),
    )

    def __init__(self, dim: int | None = None, lr: float = 0.01, epochs: int | None = None, batch_size: int = 4096, normalise: bool = True, reg: float = 0.0):
        self._set_declared(locals())

    def _batch_gradient(self, U: torch.Tensor, yt, y, u: torch.Tensor, i: torch.Tensor, r: torch.Tensor,
                        grad_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form gradient of the batch loss w.r.t. U, and the loss.

        loss = mean_b (u_b . z_b - r_b)^2 (+ reg mean |u_b|^2) with Z = Y^T U.  With
        c_b = 2 (u_b . z_b - r_b) / B:  dU[u_b] += c_b z_b (+ 2 reg u_b / B) directly, and
        through Z, dZ[i_b] += c_b u_b, dU += Y dZ.  The same arithmetic as autograd through
        the sparse product, without building and walking its graph every step (the graph cost
        more than the arithmetic on ML-100K; at ML-1M size the two products dominate).
        """
        pu = U.index_select(0, u)
        zi = (yt @ U).index_select(0, i)  # only the batch's rows of Z are needed, but one CSR product is the fast way
        err = (pu * zi).sum(1) - r
        coef = (err * (2.0 / len(r))).unsqueeze(1)
        grad_z.zero_()
        grad_z.index_add_(0, i, coef * pu)
        grad = y @ grad_z
        grad.index_add_(0, u, coef * zi)
        loss = (err * err).mean()
        if self.reg > 0:
            grad.index_add_(0, u, (2.0 * self.reg / len(r)) * pu)
            loss = loss + self.reg * (pu * pu).sum(1).mean()
        return grad, loss

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        cfg = context.mf_config
        device = resolve_device(context.device)
        dim = int(self.dim or cfg.dim)
        epochs = int(self.epochs or cfg.epochs)
        gen = torch.Generator().manual_seed(int(context.random_state))
        users = torch.from_numpy(train.users).to(device)
        items = torch.from_numpy(train.items).to(device)
        ratings = torch.from_numpy(train.normalised_ratings).to(device)
        values = ratings.clone()
        if self.normalise:
            counts = torch.from_numpy(train.item_counts.astype(np.float32)).to(device)
            values = values / counts.index_select(0, items).clamp_min(1).sqrt()
        # Yᵀ as a sparse (items x users) matrix: Z = Yᵀ U in one sparse-dense product.
        yt = torch.sparse_coo_tensor(torch.stack([items, users]), values, (train.n_items, train.n_users), check_invariants=False).coalesce().to_sparse_csr()
        y = torch.sparse_coo_tensor(torch.stack([users, items]), values, (train.n_users, train.n_items), check_invariants=False).coalesce().to_sparse_csr()
        U = glorot_uniform(train.n_users, dim, gen, device)
        opt = AdamState(U, lr=self.lr)
        n = len(ratings)
        grad_z = torch.zeros(train.n_items, dim, device=device)
        loss = torch.tensor(math.nan)
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            for start in range(0, n, self.batch_size):
                idx = perm[start : start + self.batch_size]
                with torch.no_grad():
                    grad, loss = self._batch_gradient(U, yt, y, users.index_select(0, idx), items.index_select(0, idx),
                                                      ratings.index_select(0, idx), grad_z)
                    opt.step(grad)
            # A diverged Adam fit (too large an lr) makes U or the loss NaN/inf; stop here
            # rather than return a model that ranks every item first.
            if n:
                last = float(loss.detach())
                if not math.isfinite(last):
                    raise DivergedError(f"its training loss became {last} at epoch {epoch + 1} (PCMF learning rate {self.lr:g})")
                if not bool(torch.isfinite(U.detach()).all()):
                    raise DivergedError(f"its factors became NaN/inf at epoch {epoch + 1} (PCMF learning rate {self.lr:g})")
            if context.progress is not None and context.progress((epoch + 1) / max(1, epochs), f"pcmf: epoch {epoch + 1}/{epochs}") is False:
                raise CancelledError("training cancelled")
        with torch.no_grad():
            U_final = U.detach().clone()
            Z = yt @ U_final
        return DefenseResult(PCMFModel(U_final, Z), {"defense": self.name, "final_loss": float(loss.detach()) if n else math.nan, "dim": dim, "epochs": epochs})

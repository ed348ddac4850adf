"""Matrix factorisation exactly as the APT authors trained their victim (docs/protocol.md).

``r_hat = p_u . q_i`` (no biases), d = 64, Glorot-uniform initialisation, mean squared error
over a minibatch of observed ratings (batch 4096, reshuffled every epoch), negligible L2
(1e-12), Adagrad with learning rate 10 and initial accumulator 0.1, 25 epochs.

Gradients are written out by hand instead of using autograd: the loss is a sum of dot
products, its gradient is two ``index_add`` calls, and skipping the autograd graph makes a
25-epoch ML-100K fit several times faster on a CPU.  Adagrad on a dense gradient that is
zero on untouched rows is identical to TensorFlow's sparse Adagrad on embedding lookups
(duplicates are summed in both), so the update matches the authors' optimiser.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError, DivergedError
from apt_core.runtime.devices import resolve_device


@dataclass(frozen=True)
class MFConfig:
    """Hyper-parameters of the victim MF (the authors' defaults)."""

    dim: int = 64
    epochs: int = 25
    lr: float = 10.0
    batch_size: int = 4096
    init_accumulator: float = 0.1
    # The authors' 1e-12 is below float32 resolution next to the data gradient: it changes
    # no bit of the result, so the default skips the term (set it > 0 to regularise).
    reg: float = 0.0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"MF dimension must be >= 1, got {self.dim}")
        if self.epochs < 0:
            raise ConfigError(f"--epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0 or self.batch_size < 1 or self.init_accumulator <= 0:
            raise ConfigError("MF learning rate, batch size and initial accumulator must be positive")

    def with_(self, **changes) -> "MFConfig":
        return replace(self, **changes)


def glorot_uniform(rows: int, cols: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    limit = math.sqrt(6.0 / (rows + cols))
    return (torch.rand(rows, cols, generator=generator, device="cpu") * 2 - 1).mul_(limit).to(device)


class MFModel:
    """A fitted MF recommender: user factors ``P`` and item factors ``Q``."""

    def __init__(self, user_factors: torch.Tensor, item_factors: torch.Tensor):
        self.P = user_factors
        self.Q = item_factors
        self.n_users, self.n_items = user_factors.shape[0], item_factors.shape[0]

    @property
    def device(self) -> torch.device:
        return self.P.device

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.P.index_select(0, users) @ self.Q.T

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.P.index_select(0, users) * self.Q.index_select(0, items)).sum(-1)

    def to(self, device: torch.device | str) -> "MFModel":
        return MFModel(self.P.to(device), self.Q.to(device))

    def state_dict(self) -> dict:
        return {"P": self.P.detach().cpu(), "Q": self.Q.detach().cpu()}

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> "MFModel":
        return cls(state["P"].to(device), state["Q"].to(device))


class FreshTensors:
    """Where :func:`mf_batch_gradients` puts its intermediates and gradients by default: new
    tensors at every call (the gradients stay valid after the next call)."""

    def rows(self, name: str, n: int, like: torch.Tensor, dim: int | None) -> torch.Tensor:
        return torch.empty((n,) if dim is None else (n, dim), dtype=like.dtype, device=like.device)

    def zeros_like(self, name: str, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)


class GradientWorkspace(FreshTensors):
    """Buffers :func:`mf_batch_gradients` writes into, kept from one minibatch to the next.

    The same kernels on the same inputs as with fresh tensors, so the same bits; only the
    outputs are written into tensors allocated once.  A fresh minibatch's tensors (a few 1 MB
    blocks) cost more than their arithmetic on a CPU: glibc hands such blocks back to the
    system and takes them again, page fault by page fault, at every step.  Measured on the
    sample data (loaded machine, one thread): 5.0-5.6 ms a gradient with fresh tensors,
    1.1-1.5 ms here.  The returned gradients are overwritten by the next call: use them (the
    Adagrad step) before calling again.
    """

    def __init__(self) -> None:
        self._rows: dict[str, torch.Tensor] = {}
        self._full: dict[str, torch.Tensor] = {}

    def rows(self, name: str, n: int, like: torch.Tensor, dim: int | None) -> torch.Tensor:
        """The first ``n`` rows of a buffer of at least ``n`` rows (``dim`` columns, or a vector)."""
        shape = (n,) if dim is None else (n, dim)
        buf = self._rows.get(name)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != shape[1:] or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._rows[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf[:n]

    def zeros_like(self, name: str, t: torch.Tensor) -> torch.Tensor:
        buf = self._full.get(name)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype or buf.device != t.device:
            buf = self._full[name] = torch.empty_like(t)
        return buf.zero_()


def mf_batch_gradients(
    P: torch.Tensor, Q: torch.Tensor, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, reg: float,
    workspace: FreshTensors | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense gradients of ``mean((p_u.q_i - r)^2) + reg * mean(|p_u|^2 + |q_i|^2)`` over a batch.

    Returns ``(grad_P, grad_Q, loss)``.  Rows not in the batch get zero gradient.
    ``workspace``: a :class:`GradientWorkspace` to write into its kept buffers (the training
    loops: the results are overwritten by its next call); None: fresh tensors.  Either way the
    same kernels in the same order, so the same bits (``tests/test_mf.py``).
    """
    out = workspace if workspace is not None else FreshTensors()
    n, dim = len(ratings), P.shape[1]
    # index_select is several times faster than advanced indexing on CPU.
    pu = torch.index_select(P, 0, users, out=out.rows("pu", n, P, dim))
    qi = torch.index_select(Q, 0, items, out=out.rows("qi", n, Q, dim))
    err = torch.sum(torch.mul(pu, qi, out=out.rows("prod", n, P, dim)), 1, out=out.rows("err", n, P, None)).sub_(ratings)
    scale = 2.0 / n
    coef = torch.mul(err, scale, out=out.rows("coef", n, P, None)).unsqueeze(1)
    scaled = out.rows("scaled", n, P, dim)
    # the reg term, when there is one, is added to the data term: coef * q_i + (scale * reg) * p_u
    penalty = out.rows("penalty", n, P, dim) if reg > 0 else None
    torch.mul(coef, qi, out=scaled)
    if penalty is not None:
        scaled.add_(torch.mul(pu, scale * reg, out=penalty))
    gP = out.zeros_like("gP", P).index_add_(0, users, scaled)
    torch.mul(coef, pu, out=scaled)
    if penalty is not None:
        scaled.add_(torch.mul(qi, scale * reg, out=penalty))
    gQ = out.zeros_like("gQ", Q).index_add_(0, items, scaled)
    loss = torch.mul(err, err, out=out.rows("sq", n, P, None)).mean()
    return gP, gQ, loss


class MFTrainer:
    """Stateful MF training (factors + Adagrad accumulators) that can resume.

    Defenses that change the training set between epochs (APT regenerates its ERM users) call
    :meth:`train_epochs` repeatedly; the optimiser state carries over, as in the paper.
    ``gradient_hook(P, Q, users, items, ratings) -> (gP, gQ)`` lets a defense replace the
    plain gradient (adversarial training adds the loss at perturbed factors).
    """

    def __init__(self, n_users: int, n_items: int, config: MFConfig = MFConfig(), device: str | torch.device = "cpu", random_state: int = 0):
        self.config = config
        self.device = resolve_device(device)
        self.generator = torch.Generator().manual_seed(int(random_state))
        self.P = glorot_uniform(n_users, config.dim, self.generator, self.device)
        self.Q = glorot_uniform(n_items, config.dim, self.generator, self.device)
        self.acc_P = torch.full_like(self.P, config.init_accumulator)
        self.acc_Q = torch.full_like(self.Q, config.init_accumulator)
        self.epochs_done = 0
        self.last_loss = float("nan")
        # The fused Adagrad kernel reads a step count only for learning-rate decay (0 here).
        self._steps = [torch.zeros(()), torch.zeros(())]
        self._workspace = GradientWorkspace()

    def grow_users(self, n_total: int) -> None:
        """Add freshly initialised user rows (e.g. ERM users) up to ``n_total`` users."""
        extra = n_total - self.P.shape[0]
        if extra <= 0:
            return
        new = glorot_uniform(n_total, self.config.dim, self.generator, self.device)[-extra:]
        self.P = torch.cat([self.P, new])
        self.acc_P = torch.cat([self.acc_P, torch.full_like(new, self.config.init_accumulator)])

    def tensors(self, data: Interactions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move an interaction set to the trainer's device (normalised ratings)."""
        return (
            torch.from_numpy(data.users).to(self.device),
            torch.from_numpy(data.items).to(self.device),
            torch.from_numpy(data.normalised_ratings).to(self.device),
        )

    def train_epochs(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, n_epochs: int, gradient_hook=None, should_stop=None) -> None:
        cfg = self.config
        n = len(ratings)
        if users.numel() and int(users.max()) >= self.P.shape[0]:
            raise ConfigError("training data has more users than the model; call grow_users first")
        for _ in range(n_epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            # Shuffle once per epoch, then take contiguous slices as minibatches.
            su, si, sr = users.index_select(0, perm), items.index_select(0, perm), ratings.index_select(0, perm)
            total = 0.0
            for start in range(0, n, cfg.batch_size):
                stop = start + cfg.batch_size
                u, i, r = su[start:stop], si[start:stop], sr[start:stop]
                if gradient_hook is None:
                    gP, gQ, loss = mf_batch_gradients(self.P, self.Q, u, i, r, cfg.reg, self._workspace)
                else:
                    gP, gQ, loss = gradient_hook(self.P, self.Q, u, i, r)
                self._adagrad_update(gP, gQ)
                total += float(loss) * len(r)
            self.last_loss = total / max(1, n)
            self.epochs_done += 1
            self._check_finite()
            if should_stop is not None and should_stop():
                break

    def _check_finite(self) -> None:
        """Stop at the first epoch whose loss or factors are NaN/inf (a diverged fit).

        Adagrad's steps are bounded by ``lr`` per coordinate, so only a huge learning rate (or
        a defense's gradient hook, e.g. AT with a huge epsilon) gets here; a NaN model would
        otherwise rank every item first.  One pass over the factors per epoch is cheap next
        to the epoch itself.
        """
        if not math.isfinite(self.last_loss):
            raise DivergedError(f"its training loss became {self.last_loss} at epoch {self.epochs_done} (learning rate {self.config.lr:g})")
        if not (bool(torch.isfinite(self.P).all()) and bool(torch.isfinite(self.Q).all())):
            raise DivergedError(f"its factors became NaN/inf at epoch {self.epochs_done} (learning rate {self.config.lr:g})")

    def _adagrad_update(self, gP: torch.Tensor, gQ: torch.Tensor) -> None:
        """``acc += g^2; param -= lr * g / sqrt(acc)`` (TensorFlow 1's Adagrad, no epsilon).

        On the CPU torch's fused Adagrad kernel does this in one pass (2-3x faster than the
        three separate ops, which are a fifth of an MF epoch); elsewhere the plain ops.
        """
        if self._fused:
            torch._fused_adagrad_(
                [self.P, self.Q], [gP, gQ], [self.acc_P, self.acc_Q], self._steps,
                lr=self.config.lr, lr_decay=0.0, weight_decay=0.0, eps=0.0, maximize=False,
            )
            return
        self.acc_P.addcmul_(gP, gP)
        self.acc_Q.addcmul_(gQ, gQ)
        self.P.addcdiv_(gP, self.acc_P.sqrt(), value=-self.config.lr)
        self.Q.addcdiv_(gQ, self.acc_Q.sqrt(), value=-self.config.lr)

    @property
    def _fused(self) -> bool:
        return self.device.type == "cpu" and hasattr(torch, "_fused_adagrad_")


    def model(self) -> MFModel:
        return MFModel(self.P.clone(), self.Q.clone())


def fit_mf(data: Interactions, config: MFConfig = MFConfig(), device: str | torch.device = "cpu", random_state: int = 0) -> MFModel:
    """Train plain MF on ``data`` (all users, injected ones included) and return the model."""
    trainer = MFTrainer(data.n_users, data.n_items, config, device, random_state)
    trainer.train_epochs(*trainer.tensors(data), config.epochs)
    return trainer.model()

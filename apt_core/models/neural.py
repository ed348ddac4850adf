"""What LightGCN's and NeuMF's trainers share (see :mod:`apt_core.models.victims` for the victims).

:class:`VictimConfig` (hyper-parameters), :class:`Adam` (an Adam that can grow rows when ERM
users join), and :class:`TorchVictimTrainer`: data on the device, negative sampling, the
implicit/explicit losses, adversarial training on embedding tables, MF's trainer interface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError
from apt_core.runtime.devices import resolve_device

FEEDBACK = ("implicit", "explicit")


@dataclass(frozen=True)
class VictimConfig:
    """Hyper-parameters of a neural victim (defaults: its paper; see each model's module).

    ``dim``: embedding size (LightGCN's E0; NeuMF's GMF factors).  ``reg``: L2 weight on the
    batch's embeddings (LightGCN: 1e-4 on E0).  ``n_negatives``: sampled negatives per
    positive (implicit feedback only).  ``layers``: LightGCN's propagation depth K, or
    NeuMF's MLP tower widths (input first).
    """

    name: str = "lightgcn"
    epochs: int = 25
    feedback: str = "implicit"
    dim: int = 64
    lr: float = 1e-3
    batch_size: int = 2048
    reg: float = 1e-4
    n_negatives: int = 1
    layers: tuple[int, ...] = (3,)

    def __post_init__(self) -> None:
        # Whether the name is registered is checked where the trainer is built
        # (apt_core.models.victims.victim_class, which lists the known names).
        if not isinstance(self.name, str) or not self.name.strip() or self.name == "mf":
            raise ConfigError(f"VictimConfig is for a registered neural victim (see apt_core.models.victims), got {self.name!r}")
        if self.feedback not in FEEDBACK:
            raise ConfigError(f"feedback must be one of {', '.join(FEEDBACK)}, got {self.feedback!r}")
        if self.epochs < 0:
            raise ConfigError(f"--epochs must be >= 0, got {self.epochs}")
        if self.dim < 1 or self.batch_size < 1 or self.n_negatives < 1 or not (self.lr > 0) or self.reg < 0:
            raise ConfigError("victim dim, batch size and negatives must be >= 1, lr > 0 and reg >= 0")

    def with_(self, **changes) -> "VictimConfig":
        return replace(self, **changes)


class Adam:
    """Adam (Kingma & Ba) over a list of tensors that may grow rows (ERM users join mid-fit).

    The same update as ``torch.optim.Adam`` with dense gradients (what LightGCN's and NCF's
    reference code use), written out so that :meth:`grow` can append zero moments.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor | None]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, self.m, self.v):
                if g is None:
                    g = torch.zeros_like(p)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)

    def grow(self, index: int, extra_rows: int) -> None:
        for buf in (self.m, self.v):
            t = buf[index]
            buf[index] = torch.cat([t, t.new_zeros((extra_rows,) + tuple(t.shape[1:]))])


def seeded_normal(rows: int, cols: int, std: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.randn(rows, cols, generator=generator) * std).to(device)


def seeded_glorot(rows: int, cols: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    limit = math.sqrt(6.0 / (rows + cols))
    return ((torch.rand(rows, cols, generator=generator) * 2 - 1) * limit).to(device)


def row_normalised(g: torch.Tensor) -> torch.Tensor:
    """g / ||g|| per row; rows with zero gradient (not in the batch) get no perturbation."""
    norm = g.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, g / norm.clamp_min(1e-30), torch.zeros_like(g))


class TorchVictimTrainer:
    """What LightGCN's and NeuMF's trainers share: data on the device, negatives, Adam, AT.

    Subclasses define ``params`` (a list of leaf tensors; the first two are the user and item
    embedding tables, user rows first), ``embedding_indices`` (which params hold user rows,
    for :meth:`grow_users`; which are embedding tables, for adversarial training),
    ``batch_loss(params, users, pos, neg_or_ratings)`` and ``_model()``.
    """

    user_tables: tuple[int, ...] = (0,)
    embedding_tables: tuple[int, ...] = (0, 1)
    #: the victims registry's entry (:mod:`apt_core.models.victims`): name, the select box's
    #: label, the paper, and the loss with implicit feedback ("bpr": one negative per positive,
    #: pairwise; "logloss": pointwise with ``n_negatives`` negatives), which APT's influence reads too
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    implicit_loss: ClassVar[str] = "logloss"

    @classmethod
    def default_config(cls, feedback: str = "implicit") -> VictimConfig:
        """The victim's paper recipe (dimension, learning rate, negatives, layers)."""
        raise NotImplementedError(f"{cls.__name__} must define default_config(feedback)")

    def __init__(self, n_users: int, n_items: int, config: VictimConfig, device: str | torch.device = "cpu", random_state: int = 0):
        self.config = config
        self.device = resolve_device(device)
        self.generator = torch.Generator().manual_seed(int(random_state))
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.params: list[torch.Tensor] = self._init_params()
        self.optimizer = Adam(self.params, config.lr)
        self.epochs_done = 0
        self.last_loss = float("nan")
        self._pos_cache: tuple | None = None

    # -- to be defined by the model -------------------------------------------------------
    def _init_params(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def prepare_data(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Called when the training set changes (LightGCN rebuilds its graph here)."""

    def encode(self, params: list[torch.Tensor]):
        """What scoring needs, computed once per batch (LightGCN: the propagated embeddings)."""
        return params

    def pair_scores(self, enc, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Differentiable scores of the pairs (users[k], items[k]) from :meth:`encode`'s output."""
        raise NotImplementedError

    def user_scores(self, enc, users: torch.Tensor) -> torch.Tensor:
        """Differentiable scores of ``users`` over every item, ``(len(users), n_items)``."""
        raise NotImplementedError

    def regulariser(self, params: list[torch.Tensor], users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | float:
        return 0.0

    def _model(self):
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def grow_users(self, n_total: int) -> None:
        """Add freshly initialised user rows (ERM users) up to ``n_total`` users."""
        extra = n_total - self.n_users
        if extra <= 0:
            return
        fresh = self._init_params_for_users(n_total)
        for idx in self.user_tables:
            self.params[idx] = torch.cat([self.params[idx].detach(), fresh[idx][-extra:]]).requires_grad_(True)
            self.optimizer.grow(idx, extra)
        self.n_users = n_total
        self._pos_cache = None

    def _init_params_for_users(self, n_total: int) -> list[torch.Tensor]:
        saved = self.n_users
        self.n_users = n_total
        try:
            return self._init_params()
        finally:
            self.n_users = saved

    def tensors(self, data: Interactions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(data.users).to(self.device),
            torch.from_numpy(data.items).to(self.device),
            torch.from_numpy(data.normalised_ratings).to(self.device),
        )

    def _positives(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Sorted keys user * n_items + item of the training pairs (for rejecting negatives)."""
        # Identity, not data pointers: APT builds a new tensor of the same length every round
        # and the allocator may hand it the freed block of the previous one.
        c = self._pos_cache
        if c is None or c[0] is not users or c[1] is not items or c[2] != self.n_users:
            self.prepare_data(users, items)
            c = self._pos_cache = (users, items, self.n_users, torch.sort(users * self.n_items + items).values)
        return c[3]

    def sample_negatives(self, users: torch.Tensor, positives: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` items per entry of ``users`` drawn uniformly among the items it has not rated.

        Uniform draws are rejected and redrawn (up to 10 rounds) where they hit a training
        pair, as LightGCN's and NCF's samplers do; a user who rated almost everything may
        keep a few positives as negatives after that.
        """
        gen = generator or self.generator
        u = users.repeat_interleave(n) if n > 1 else users
        neg = torch.randint(0, self.n_items, (len(u),), generator=gen).to(self.device)
        if len(positives) == 0:
            return neg.view(len(users), n) if n > 1 else neg
        last = len(positives) - 1
        todo = torch.arange(len(u), device=self.device)
        for _ in range(10):
            keys = u[todo] * self.n_items + neg[todo]
            # positives is sorted: a binary search per draw (torch.isin re-sorts 100k keys).
            hit = positives[torch.searchsorted(positives, keys).clamp_(max=last)] == keys
            todo = todo[hit]
            if len(todo) == 0:
                break
            neg[todo] = torch.randint(0, self.n_items, (len(todo),), generator=gen).to(self.device)
        return neg.view(len(users), n) if n > 1 else neg

    def batch_loss(self, params: list[torch.Tensor], users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, negatives: torch.Tensor | None) -> torch.Tensor:
        """The victim's training loss on one batch (implicit: BPR / log loss; explicit: MSE)."""
        cfg = self.config
        enc = self.encode(params)
        if cfg.feedback == "explicit":
            loss = ((self.pair_scores(enc, users, items) - ratings) ** 2).mean()
            return loss + cfg.reg * self.regulariser(params, users, items) if cfg.reg else loss
        assert negatives is not None
        if self.implicit_loss == "bpr":
            # BPR: -log sigmoid(s_ui - s_uj), one negative j per positive (u, i).
            s_pos = self.pair_scores(enc, users, items)
            s_neg = self.pair_scores(enc, users, negatives)
            loss = torch.nn.functional.softplus(s_neg - s_pos).mean()
            reg_items = torch.cat([items, negatives])
            return loss + cfg.reg * self.regulariser(params, users, reg_items) if cfg.reg else loss
        # Log loss (NeuMF): pointwise, label 1 for the positive and 0 for its n negatives.
        k = negatives.shape[1]
        u_all = torch.cat([users, users.repeat_interleave(k)])
        i_all = torch.cat([items, negatives.reshape(-1)])
        labels = torch.cat([torch.ones_like(items, dtype=torch.float32), torch.zeros(len(users) * k, device=items.device)])
        logits = self.pair_scores(enc, u_all, i_all)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return loss + cfg.reg * self.regulariser(params, u_all, i_all) if cfg.reg else loss

    def train_epochs(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, n_epochs: int,
                     gradient_hook=None, should_stop=None, adversarial: tuple[float, float] | None = None) -> None:
        """Train ``n_epochs`` over (users, items, ratings); ratings are normalised (explicit only).

        ``adversarial=(epsilon, weight)``: APR-style adversarial training on the embedding
        tables (adds ``weight * L(E + Δ)`` with Δ = ε·g/||g|| per row, g the loss gradient).
        ``gradient_hook`` is MF's hook signature and is not supported here.
        """
        if gradient_hook is not None:
            raise ConfigError(f"{self.config.name} does not take an MF gradient hook; use adversarial=(epsilon, weight)")
        cfg = self.config
        if users.numel() and int(users.max()) >= self.n_users:
            raise ConfigError("training data has more users than the model; call grow_users first")
        positives = self._positives(users, items)
        n = len(users)
        for _ in range(n_epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            su, si, sr = users.index_select(0, perm), items.index_select(0, perm), ratings.index_select(0, perm)
            total = 0.0
            for start in range(0, n, cfg.batch_size):
                u, i, r = su[start:start + cfg.batch_size], si[start:start + cfg.batch_size], sr[start:start + cfg.batch_size]
                neg = None if cfg.feedback == "explicit" else self.sample_negatives(u, positives, cfg.n_negatives)
                loss = self.batch_loss(self.params, u, i, r, neg)
                grads = list(torch.autograd.grad(loss, self.params, allow_unused=True))
                if adversarial is not None:
                    eps, weight = adversarial
                    perturbed = list(self.params)
                    for idx in self.embedding_tables:
                        g = grads[idx]
                        if g is not None:
                            perturbed[idx] = self.params[idx] + eps * row_normalised(g.detach())
                    adv_loss = self.batch_loss(perturbed, u, i, r, neg)
                    adv_grads = torch.autograd.grad(adv_loss, self.params, allow_unused=True)
                    grads = [g if a is None else (a * weight if g is None else g + weight * a) for g, a in zip(grads, adv_grads)]
                    loss = loss.detach() + weight * adv_loss.detach()
                self.optimizer.step(self.params, grads)
                total += float(loss.detach()) * len(u)
            self.last_loss = total / max(1, n)
            self.epochs_done += 1
            if should_stop is not None and should_stop():
                break

    def influence_loss(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, random_state: int = 0):
        """A deterministic full-data training loss ``L(params)`` (negatives drawn once, seeded).

        What APT's influence differentiates: the victim's own loss over D, with one fixed
        negative sample so that the Hessian is that of one function.
        """
        positives = self._positives(users, items)
        neg = None
        if self.config.feedback != "explicit":
            gen = torch.Generator().manual_seed(int(random_state))
            neg = self.sample_negatives(users, positives, self.config.n_negatives, gen)
        return lambda params: self.batch_loss(params, users, items, ratings, neg)

    def model(self):
        return self._model()

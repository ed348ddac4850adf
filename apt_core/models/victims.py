"""Victim models beyond MF, and the one place that builds a victim's trainer.

The APT paper's victim is MF trained on explicit ratings (:mod:`apt_core.models.mf`).
Researchers also evaluate poisoning on neural victims; two are offered here, trained on the
same split and protocol (leave-one-out test item, HR@K over unrated items, fake and ERM users
as ordinary accounts):

- ``lightgcn``: He et al., SIGIR 2020 (:mod:`apt_core.models.lightgcn`);
- ``neumf``: He et al., WWW 2017 (:mod:`apt_core.models.neumf`).

How ratings are used (``feedback``):

- ``"implicit"`` (the default, as both papers train them): every observed rating, whatever
  its value, is a positive interaction; unobserved items are sampled as negatives (LightGCN:
  BPR with one negative per positive; NeuMF: log loss with 4 negatives per positive).  A
  fake rating is an interaction, as in the poisoning papers that attack these models.  Rating
  values then do not matter: an attack's filler ratings and APT's ERM ratings only add
  interactions.
- ``"explicit"``: the model's score regresses the normalised rating with the mean squared
  error over observed ratings only (no negatives), like the APT paper's MF.  Offered so APT's
  rating-level mechanism (ERM ratings near the item mean) can be studied on these models.

Every trainer has MF's interface (:class:`apt_core.models.mf.MFTrainer`): ``tensors(data)``,
``train_epochs(users, items, ratings, n_epochs)`` resumable with the optimiser state carried
over, ``grow_users(n)`` for ERM users, ``model()`` returning a recommender with
``score_users`` / ``state_dict`` / ``from_state_dict``.  So metrics, attacks and the defenses'
schedules need no special cases; the two places that do differ are named: adversarial
training perturbs the victim's own embedding tables (``train_epochs(..., adversarial=)``)
and APT's influence uses autograd Hessian-vector products
(:mod:`apt_core.influence.autograd`) instead of MF's closed form.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError
from apt_core.models.lightgcn import LightGCNTrainer
from apt_core.models.neural import FEEDBACK, VICTIMS, Adam, TorchVictimTrainer, VictimConfig  # noqa: F401 -- re-exported
from apt_core.models.neumf import NeuMFTrainer


def default_victim_config(name: str, epochs: int | None = None, feedback: str = "implicit") -> VictimConfig | None:
    """The paper recipe of victim ``name`` (None for MF, whose recipe is :class:`MFConfig`)."""
    key = (name or "mf").strip().lower()
    if key not in VICTIMS:
        raise ConfigError(f"unknown victim {name!r}: choose one of {', '.join(VICTIMS)}")
    if key == "mf":
        return None
    if key == "lightgcn":
        cfg = VictimConfig("lightgcn", dim=64, lr=1e-3, batch_size=2048, reg=1e-4, n_negatives=1, layers=(3,), feedback=feedback)
    else:
        # NeuMF: GMF factors 8, MLP 64 -> 32 -> 16 -> 8 (input = two 32-d embeddings), 4 negatives.
        cfg = VictimConfig("neumf", dim=8, lr=1e-3, batch_size=2048, reg=0.0, n_negatives=4, layers=(64, 32, 16, 8), feedback=feedback)
    return cfg if epochs is None else cfg.with_(epochs=int(epochs))


def victim_trainer(n_users: int, n_items: int, victim: VictimConfig, device: str | torch.device = "cpu", random_state: int = 0):
    """A fresh trainer of a neural victim."""
    if victim.name == "lightgcn":
        return LightGCNTrainer(n_users, n_items, victim, device, random_state)
    return NeuMFTrainer(n_users, n_items, victim, device, random_state)


def make_trainer(n_users: int, n_items: int, context, random_state: int | None = None):
    """The trainer of a defense context's victim (MF unless ``context.victim`` names another).

    ``context`` is a :class:`apt_core.defenses.base.DefenseContext` (read by attribute:
    ``victim``, ``mf_config``, ``device``, ``random_state``).
    """
    from apt_core.models.mf import MFConfig, MFTrainer

    victim = getattr(context, "victim", None)
    seed = getattr(context, "random_state", 0) if random_state is None else random_state
    device = getattr(context, "device", "cpu")
    if victim is None:
        return MFTrainer(n_users, n_items, getattr(context, "mf_config", MFConfig()), device, seed)
    return victim_trainer(n_users, n_items, victim, device, seed)


def fit_victim(data: Interactions, config: VictimConfig, device: str | torch.device = "cpu", random_state: int = 0):
    """Train a neural victim on ``data`` (all users) and return the fitted model."""
    trainer = victim_trainer(data.n_users, data.n_items, config, device, random_state)
    trainer.train_epochs(*trainer.tensors(data), config.epochs)
    return trainer.model()




def expand_user_rows(model, kept_ids: np.ndarray, n_users: int):
    """A model over all ``n_users`` ids from one fitted on the kept users only (any victim).

    A dropped user (e.g. flagged by a shilling detector, its ratings unused) gets the mean of
    the kept users' rows of every user table: an average user's recommendations.  MF and
    LightGCN (``P``/``Q`` models, LightGCN's rows being its final embeddings) keep their class;
    NeuMF expands its GMF and MLP user tables.
    """
    from apt_core.models.mf import MFModel
    from apt_core.models.neumf import NeuMFModel

    def expand(rows: torch.Tensor) -> torch.Tensor:
        rows = rows[: len(kept_ids)]
        full = rows.mean(0, keepdim=True).repeat(n_users, 1)
        full[torch.from_numpy(np.asarray(kept_ids)).to(rows.device)] = rows
        return full

    if isinstance(model, NeuMFModel):
        params = list(model.params)
        params[0], params[2] = expand(params[0]), expand(params[2])
        return NeuMFModel(params, model.n_layers)
    if isinstance(model, MFModel):
        return type(model)(expand(model.P), model.Q)
    raise TypeError(f"cannot expand the user rows of a {type(model).__name__}")

"""Victim models beyond MF, and the one place that builds a victim's trainer.

The APT paper's victim is MF trained on explicit ratings (:mod:`apt_core.models.mf`).
Researchers also evaluate poisoning on neural victims; they are registered in
:data:`VICTIMS` (the same :class:`~apt_core.registry.Registry` as attacks, defenses and
detectors; docs/extending.md) and trained on the same split and protocol (leave-one-out
test item, HR@K over unrated items, fake and ERM users as ordinary accounts):

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

from dataclasses import dataclass

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError
from apt_core.models.lightgcn import LightGCNTrainer
from apt_core.models.neural import FEEDBACK, Adam, TorchVictimTrainer, VictimConfig  # noqa: F401 -- re-exported
from apt_core.models.neumf import NeuMFTrainer
from apt_core.registry import Registry

#: name -> trainer class of every victim besides MF (``mf`` is reserved: the paper's victim,
#: built from :class:`apt_core.models.mf.MFConfig`).  The CLI's ``--victim``, the dashboard's
#: victim select box, scenario checks and the cache keys' victim code all read it when used.
VICTIMS: Registry = Registry("victim", reserved=("mf",))
for _cls in (LightGCNTrainer, NeuMFTrainer):
    VICTIMS.register(_cls)


def register_victim(cls: type[TorchVictimTrainer]) -> type[TorchVictimTrainer]:
    """Add a victim (a :class:`TorchVictimTrainer` subclass with ``name``, ``label``,
    ``implicit_loss`` and ``default_config``); an empty, reserved or taken name is refused."""
    if not (isinstance(cls, type) and issubclass(cls, TorchVictimTrainer)):
        raise ConfigError(f"a victim is a TorchVictimTrainer subclass, got {cls!r}")
    if cls.implicit_loss not in ("bpr", "logloss"):
        raise ConfigError(f"victim {cls.name!r}: implicit_loss must be bpr or logloss, got {cls.implicit_loss!r}")
    return VICTIMS.register(cls)


def victim_names() -> list[str]:
    """Every victim the CLI and the dashboard offer: ``mf`` first, then the registered ones."""
    return VICTIMS.names()


def victim_labels() -> dict[str, str]:
    """Name -> label for a select box (read when used: a victim registered later is listed)."""
    return {"mf": "MF (the paper's)", **{name: cls.label or name for name, cls in VICTIMS.items()}}


def victim_class(name: str) -> type[TorchVictimTrainer]:
    """The trainer class registered as ``name`` (what builds it, and whose code enters the
    cache keys of its models); an unknown name is a ConfigError listing the known ones."""
    key = (name or "").strip().lower()
    if key == "mf":
        raise ConfigError("victim 'mf' is the paper's MF (apt_core.models.mf), not a registered trainer class")
    return VICTIMS.lookup(key)


def default_victim_config(name: str, epochs: int | None = None, feedback: str = "implicit") -> VictimConfig | None:
    """The paper recipe of victim ``name`` (None for MF, whose recipe is :class:`MFConfig`)."""
    key = (name or "mf").strip().lower()
    if key == "mf":
        return None
    if feedback not in FEEDBACK:
        raise ConfigError(f"feedback must be one of {', '.join(FEEDBACK)}, got {feedback!r}")
    cfg = victim_class(key).default_config(feedback)
    return cfg if epochs is None else cfg.with_(epochs=int(epochs))


def victim_trainer(n_users: int, n_items: int, victim: VictimConfig, device: str | torch.device = "cpu", random_state: int = 0):
    """A fresh trainer of a registered victim (an unknown name is a ConfigError, never another model)."""
    return victim_class(victim.name)(n_users, n_items, victim, device, random_state)


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


@dataclass(frozen=True)
class Plateau:
    """The epoch count an early stop chose, and the validation HR@K after every check."""

    epochs: int
    history: tuple[tuple[int, float], ...]


def plateau_epochs(data: Interactions, config: VictimConfig, k: int = 50, check_every: int = 5, patience: int = 2,
                   min_delta: float = 0.005, max_epochs: int = 200, device: str | torch.device = "cpu",
                   random_state: int = 0) -> Plateau:
    """Train to a plateau of validation HR@k: the victim's own early stop.

    A validation split is carved out of ``data`` (never the test items): one interaction of
    every user with two or more, drawn with ``random_state``.  The victim trains on the rest,
    its validation HR@k (rated items masked, as the evaluation does) is measured every
    ``check_every`` epochs, and training stops after ``patience`` checks without a gain of
    ``min_delta``; the chosen count is the best check's epoch.  Callers then train with that
    count on the full ``data`` (the same count for clean, attacked and defended fits, so
    they stay comparable).
    """
    from apt_core.evaluation.metrics import hit_ratio, rank_items

    rng = np.random.default_rng(random_state)
    keys = rng.random(len(data))
    order = np.lexsort((keys, data.users))  # a random interaction of each user comes first
    first = np.ones(len(order), dtype=bool)
    first[1:] = data.users[order][1:] != data.users[order][:-1]
    eligible = np.bincount(data.users, minlength=data.n_users)[data.users[order]] >= 2
    held = order[first & eligible]
    keep = np.ones(len(data), dtype=bool)
    keep[held] = False
    fit_on = Interactions(data.users[keep], data.items[keep], data.ratings[keep], data.n_users, data.n_items, data.scale,
                          data.n_real_users)
    valid_items = np.full(data.n_users, -1, dtype=np.int64)
    valid_items[data.users[held]] = data.items[held]
    users = np.flatnonzero(valid_items >= 0)
    trainer = victim_trainer(data.n_users, data.n_items, config, device, random_state)
    tensors = trainer.tensors(fit_on)
    history: list[tuple[int, float]] = []
    best, best_epoch, stale = -1.0, 0, 0
    while trainer.epochs_done < max_epochs and stale < patience:
        trainer.train_epochs(*tensors, min(check_every, max_epochs - trainer.epochs_done))
        hr = hit_ratio(rank_items(trainer.model(), fit_on, valid_items[users, None], users), k)
        history.append((trainer.epochs_done, hr))
        if hr > best + min_delta:
            best, best_epoch, stale = hr, trainer.epochs_done, 0
        else:
            stale += 1
    return Plateau(best_epoch, tuple(history))




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

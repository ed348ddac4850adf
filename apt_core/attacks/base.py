"""The contract every poisoning attack honours (docs/algorithms.md, "Attacks").

An attack is configured in ``__init__`` (hyper-parameters only, scikit-learn style) and
:meth:`Attack.generate` returns a :class:`FakeProfiles` block for a given training set,
target items and budget.  ``generate`` validates its arguments and its own output, so every
attack is held to the same rules: exactly ``n_fake_users`` users, each rating every target
with the scale maximum and at most ``n_filler`` other items, all ratings on the grid (an
attack with ``rates_every_target = False`` may leave some targets out of an account, never
the filler budget or the maximum on the targets it rates; one whose
:meth:`Attack.shades_targets` is True may also rate targets one grid step below the maximum,
as long as every target still gets the maximum from some account).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError
from apt_core.params import Configurable, Param  # noqa: F401 -- Param re-exported for attack modules

ProgressFn = Callable[[float, str], object]


@dataclass(frozen=True)
class FakeProfiles:
    """Fake user profiles: local user ids ``0..n_fake_users-1``, raw ratings on the grid."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_fake_users: int
    n_items: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64))
        object.__setattr__(self, "ratings", np.asarray(self.ratings, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.ratings)

    def inject(self, train: Interactions) -> Interactions:
        """The poisoned training set: ``train`` plus these users appended after its users."""
        return train.with_injected(self.users, self.items, self.ratings, self.n_fake_users)

    def dense(self, scale_max: float) -> np.ndarray:
        """Dense ``(n_fake_users, n_items)`` matrix of normalised ratings (0 = not rated)."""
        out = np.zeros((self.n_fake_users, self.n_items), dtype=np.float32)
        out[self.users, self.items] = self.ratings / np.float32(scale_max)
        return out


@dataclass
class AttackResult:
    """What an attack produced: the fake profiles plus what it did (per-run histories, for the
    dashboard and reports), like :class:`~apt_core.defenses.base.DefenseResult`.  The
    pipeline caches it whole, so a cache hit keeps the diagnostics."""

    profiles: FakeProfiles
    diagnostics: dict = field(default_factory=dict)


def check_attack_arguments(train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int) -> np.ndarray:
    """Validate the common arguments; returns the targets as an int64 array."""
    targets = np.asarray(targets, dtype=np.int64).ravel()
    if targets.size == 0:
        raise ConfigError("an attack needs at least one target item")
    if len(np.unique(targets)) != len(targets):
        raise ConfigError(f"duplicate target item ids: {targets.tolist()}")
    if targets.min() < 0 or targets.max() >= train.n_items:
        raise ConfigError(f"target item ids must lie in 0..{train.n_items - 1}, got {targets.tolist()}")
    if int(n_fake_users) < 1:
        raise ConfigError(f"the number of fake users must be at least 1, got {n_fake_users}")
    if int(n_filler) < 0 or int(n_filler) > train.n_items - len(targets):
        raise ConfigError(
            f"filler size must lie in 0..{train.n_items - len(targets)} (catalogue minus targets), got {n_filler}"
        )
    return targets


def check_profiles(profiles: FakeProfiles, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int, name: str,
                   rates_every_target: bool = True, shaded_targets: bool = False) -> None:
    """Hold an attack's output to the budget and the grid (a bug here is the attack's).

    ``rates_every_target=False`` (attacks that spread the targets over their accounts, or keep
    decoy accounts): a fake user may rate only some targets, or none, but every target rating
    is still the scale maximum, every target is pushed by at least one account, and the filler
    budget is the same.  ``shaded_targets=True`` (``subset.shade``): a target rating may also be
    one grid step below the maximum, and every target keeps at least one maximum rating."""
    if profiles.n_fake_users != n_fake_users or profiles.n_items != train.n_items:
        raise AssertionError(f"{name}: returned {profiles.n_fake_users} fake users over {profiles.n_items} items")
    if len(profiles) and (profiles.users.min() < 0 or profiles.users.max() >= n_fake_users):
        raise AssertionError(f"{name}: fake user ids out of range")
    if not np.all(train.scale.on_grid(profiles.ratings)):
        raise AssertionError(f"{name}: ratings off the {train.scale} grid")
    key = profiles.users * train.n_items + profiles.items
    if len(np.unique(key)) != len(key):
        raise AssertionError(f"{name}: a fake user rates an item twice")
    is_target = np.isin(profiles.items, targets)
    per_user_targets = np.bincount(profiles.users[is_target], minlength=n_fake_users)
    if rates_every_target and not np.all(per_user_targets == len(targets)):
        raise AssertionError(f"{name}: every fake user must rate every target")
    if not rates_every_target and not np.all(np.isin(targets, profiles.items[is_target])):
        raise AssertionError(f"{name}: a target is rated by no fake user")
    top = np.isclose(profiles.ratings, train.scale.maximum)
    # shaded_targets: how many grid steps below the maximum a shaded target may go (True: one)
    steps = int(shaded_targets)
    below = (profiles.ratings >= train.scale.maximum - steps * train.scale.step - 1e-6) if steps else np.zeros_like(top)
    if not np.all((top | below)[is_target]):
        raise AssertionError(f"{name}: targets must be rated with the scale maximum" + (f" or up to {steps} step(s) below" if steps else ""))
    if shaded_targets and not np.all(np.isin(targets, profiles.items[is_target & top])):
        raise AssertionError(f"{name}: a target gets no maximum rating")
    per_user_fillers = np.bincount(profiles.users[~is_target], minlength=n_fake_users)
    if per_user_fillers.max(initial=0) > n_filler:
        raise AssertionError(f"{name}: a fake user rates {per_user_fillers.max()} fillers, budget {n_filler}")


class Attack(Configurable, ABC):
    """Base class of every attack.  Subclasses set ``name``, declare ``params`` and implement :meth:`_generate`.

    ``_generate`` returns :class:`FakeProfiles`, or an :class:`AttackResult` when it has
    diagnostics to report (histories go there, never on ``self``: a cached result has no
    attack object behind it).
    """

    name: ClassVar[str] = ""
    #: one-line description for the CLI and the dashboard
    summary: ClassVar[str] = ""
    #: the paper (authors, venue, year) and the attacker's knowledge, for the README table
    paper: ClassVar[str] = ""
    threat_model: ClassVar[str] = ""
    #: False for attacks whose accounts rate only some targets (``subset``) or none (decoy and
    #: framing accounts): :func:`check_profiles` then holds them to the looser rule it states
    rates_every_target: ClassVar[bool] = True

    def shades_targets(self) -> int:
        """How many grid steps below the maximum this configuration may rate targets (``subset.shade``; 0: none)."""
        return False

    @abstractmethod
    def _generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake_users: int,
        n_filler: int,
        rng: np.random.Generator,
        device: torch.device,
        progress: ProgressFn | None,
    ) -> FakeProfiles | AttackResult:
        ...

    def run(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake_users: int,
        n_filler: int,
        random_state: int = 0,
        device: str | torch.device = "cpu",
        progress: ProgressFn | None = None,
    ) -> AttackResult:
        """Fake profiles for ``train`` plus the attack's diagnostics (only its real users are used as knowledge)."""
        from apt_core.runtime.devices import resolve_device

        targets = check_attack_arguments(train, targets, n_fake_users, n_filler)
        rng = np.random.default_rng(random_state)
        torch_seed = int(rng.integers(2**31 - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            out = self._generate(train.real_only(), targets, int(n_fake_users), int(n_filler), rng, resolve_device(device), progress)
        result = out if isinstance(out, AttackResult) else AttackResult(out, {})
        check_profiles(result.profiles, train, targets, int(n_fake_users), int(n_filler), self.name, self.rates_every_target,
                       self.shades_targets())
        return result

    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake_users: int,
        n_filler: int,
        random_state: int = 0,
        device: str | torch.device = "cpu",
        progress: ProgressFn | None = None,
    ) -> FakeProfiles:
        """Fake profiles for ``train`` (:meth:`run` without the diagnostics)."""
        return self.run(train, targets, n_fake_users, n_filler, random_state, device, progress).profiles


def profiles_from_rows(rows_users: list[np.ndarray], rows_items: list[np.ndarray], rows_ratings: list[np.ndarray], n_items: int) -> FakeProfiles:
    """Assemble per-user (items, ratings) lists into a :class:`FakeProfiles`."""
    users = np.concatenate([np.full(len(it), u, dtype=np.int64) for u, it in zip(rows_users, rows_items)]) if rows_items else np.zeros(0, np.int64)
    items = np.concatenate(rows_items) if rows_items else np.zeros(0, np.int64)
    ratings = np.concatenate(rows_ratings) if rows_ratings else np.zeros(0, np.float32)
    return FakeProfiles(users, items, ratings, len(rows_items), n_items)

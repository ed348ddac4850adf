"""The stages every use of a scenario starts with: load the data, split it, pick the targets, size the attack.

:func:`prepare` is the first step of :func:`apt_core.experiments.pipeline.run_scenario`, of each Ray
unit, of the detection run and of the ``poison`` command; the checks refuse settings that would
give meaningless numbers before anything is trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from apt_core.data import leave_one_out, load_dataset
from apt_core.data.dataset import RatingData
from apt_core.data.split import AttackBudget, Split, attack_budget
from apt_core.errors import ConfigError, DataError, warn
from apt_core.experiments.plan import FAKE_ATTACK, fake_source
from apt_core.experiments.scenario import Scenario, parse_targets
from apt_core.models.mf import MFConfig
from apt_core.models.victims import VictimConfig, default_victim_config

if TYPE_CHECKING:
    from apt_core.attacks.base import FakeProfiles


@dataclass
class Prepared:
    """The stages every use of a scenario starts with: data, split, targets, attack budget."""

    data: RatingData
    split: Split
    targets: np.ndarray
    budget: AttackBudget | None  # None: no attack, or fake profiles from a poison file
    mf_config: MFConfig
    #: None = MF (mf_config); else LightGCN's / NeuMF's VictimConfig (same epochs)
    victim: VictimConfig | None = None


def check_scenario_fits_data(scenario: Scenario, data: RatingData) -> None:
    """Refuse settings that would give meaningless numbers on this data set."""
    if scenario.k >= data.n_items:
        raise ConfigError(
            f"--k {scenario.k} is not smaller than the catalogue of {data.name} ({data.n_items} items): every top-{scenario.k} "
            f"list would hold every item, so every hit ratio would be 1.0; choose --k below {data.n_items}"
        )
    for name in scenario.defenses:  # refused before any training (APT would refuse it only after the attack's)
        n_star = scenario.method_params(name).get("erm_users")
        if n_star is not None and n_star > data.n_users:
            raise ConfigError(f"--erm-users {n_star} ({name}) exceeds the {data.n_users} users of {data.name}: at most "
                              f"{data.n_users} (n* is a share of the real users, as --erm-fraction <= 1)")


def check_split_usable(data: RatingData, split: Split) -> None:
    """Leave-one-out needs users with two or more ratings; say so instead of failing later."""
    n_test = int((split.test_items >= 0).sum())
    if n_test == 0:
        counts = data.interactions.user_counts
        raise DataError(
            f"{data.name}: no user keeps a test rating: leave-one-out holds out one rating of each user with at least 2 "
            f"ratings, and all {data.n_users} users have {'exactly 1 rating' if counts.max() <= 1 else 'too few ratings'} "
            "(test HR cannot be measured; each user needs 2 or more ratings)"
        )
    if n_test < data.n_users:
        # Any user without a test rating is said (the docs promise it), not only a majority.
        warn(f"{data.name}: {data.n_users - n_test} of {data.n_users} users have a single rating and keep no test rating: "
             f"test HR is measured on the other {n_test} users only")


def prepare(scenario: Scenario, data: RatingData | None = None) -> Prepared:
    """Load (unless ``data`` is given), split with ``scenario.seed``, pick the targets, size the attack."""
    if data is None:
        data = load_dataset(scenario.dataset, scenario.data_dir, scale=scenario.rating_scale)
    check_scenario_fits_data(scenario, data)
    split = leave_one_out(data, scenario.seed)
    check_split_usable(data, split)
    targets = parse_targets(scenario, data, split)
    budget = None
    if fake_source(scenario) == FAKE_ATTACK:
        budget = attack_budget(split.train, scenario.attack_size, scenario.filler)
    victim = default_victim_config(scenario.victim, scenario.epochs, scenario.victim_feedback)
    return Prepared(data, split, targets, budget, MFConfig(epochs=scenario.epochs), victim)


def warn_unpushed_targets(fake: "FakeProfiles", prepared: Prepared, path: str) -> None:
    """A poison file made for other targets would measure nothing: say which of the run's targets it never rates at the maximum."""
    top = prepared.split.train.scale.maximum
    pushed = set(np.unique(fake.items[fake.ratings >= top - 1e-6]).tolist())
    missing = [t for t in prepared.targets.tolist() if t not in pushed]
    if missing:
        ids = prepared.split.item_ids
        shown = [str(ids[t]) if ids is not None else str(t) for t in missing]
        warn(f"{Path(path).name}: no fake user rates target(s) {', '.join(shown)} at the scale maximum: the file was "
             "probably made for other targets (--targets), so their hit ratio measures no attack")

"""Random attack (Lam & Riedl, "Shilling recommender systems for fun and profit", WWW 2004).

Threat model: the attacker knows only global statistics of the data (mean and standard
deviation of all ratings); it is listed with the white-box attacks of the APT paper's Table 2
because it needs no more than they do.  Budget: ``n_fake_users`` fake users, each rating every
target with the scale maximum and ``n_filler`` filler items drawn uniformly at random from the
non-target items, each rated ~ N(global mean, global std), rounded to the grid and clipped.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, FakeProfiles, ProgressFn
from apt_core.data.dataset import Interactions


class RandomAttack(Attack):
    name = "random"
    summary = "Random fillers rated ~ N(global mean, global std) (Lam & Riedl 2004)"
    paper = "Lam & Riedl, WWW 2004"
    threat_model = "global rating mean and std"
    params = ()

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> FakeProfiles:
        items = sample_rows(rng, n_fake_users, non_targets(train.n_items, targets), n_filler)
        mu, sd = float(train.ratings.mean()), float(train.ratings.std())
        ratings = rng.normal(mu, sd, size=items.shape)
        return assemble(items, ratings, targets, train.scale, train.n_items)

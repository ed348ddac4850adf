"""Average attack (Lam & Riedl, WWW 2004; named by Mobasher et al., ACM TOIT 2007).

Threat model: the attacker knows each item's mean and standard deviation of ratings (white
box in the APT paper's Table 2).  Budget: ``n_fake_users`` fake users, each rating every target
with the scale maximum and ``n_filler`` filler items drawn uniformly from the non-target items;
filler item ``j`` is rated ~ N(mean_j, std_j), rounded to the grid and clipped.  The fake
ratings therefore correlate with the item means, which makes the profiles look average.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, FakeProfiles, ProgressFn
from apt_core.data.dataset import Interactions


class AverageAttack(Attack):
    name = "average"
    summary = "Random fillers rated ~ N(item mean, item std) (Lam & Riedl 2004)"
    paper = "Lam & Riedl, WWW 2004"
    threat_model = "each item's rating mean and std"
    params = ()

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> FakeProfiles:
        items = sample_rows(rng, n_fake_users, non_targets(train.n_items, targets), n_filler)
        means, stds = train.item_means(), train.item_stds()
        ratings = rng.normal(means[items], stds[items])
        return assemble(items, ratings, targets, train.scale, train.n_items)

"""Bandwagon attack (Burke, Mobasher, Bhaumik et al., "Limited knowledge shilling attacks in
collaborative filtering systems", IJCAI workshop 2005; Mobasher et al., ACM TOIT 2007).

Threat model: the attacker knows which items are most popular and the global rating
statistics (a subset of the white-box knowledge of the APT paper's Table 2).  Budget:
``n_fake_users`` fake users, each rating every target with the scale maximum and ``n_filler``
other items: the ``round(popular_fraction x n_filler)`` most popular non-target items
("selected" items, the same for every fake user) rated with the maximum, so the fake users
look like the many real users who liked them, and the rest random fillers rated
~ N(global mean, global std) as in the Random attack.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, FakeProfiles, Param, ProgressFn
from apt_core.data.dataset import Interactions


class BandwagonAttack(Attack):
    name = "bandwagon"
    summary = "Most popular items at the maximum plus random fillers (Burke et al. 2005)"
    paper = "Burke, Mobasher, Bhaumik et al., IJCAI workshop 2005"
    threat_model = "item popularity and global rating statistics"
    params = (
        Param("popular_fraction", float, 0.1, "share of the filler budget spent on the most popular items (rated at the maximum)", low=0.0, high=1.0),
    )

    def __init__(self, popular_fraction: float = 0.1) -> None:
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> FakeProfiles:
        cand = non_targets(train.n_items, targets)
        n_pop = min(int(round(self.popular_fraction * n_filler)), n_filler, len(cand))
        counts = train.real_item_counts[cand]
        # Most popular first; ties broken by item id so the choice is deterministic.
        popular = cand[np.lexsort((cand, -counts))[:n_pop]]
        rest = np.setdiff1d(cand, popular)
        random_items = sample_rows(rng, n_fake_users, rest, n_filler - n_pop)
        mu, sd = float(train.ratings.mean()), float(train.ratings.std())
        items = np.concatenate([np.tile(popular, (n_fake_users, 1)), random_items], axis=1)
        ratings = np.concatenate(
            [np.full((n_fake_users, n_pop), train.scale.maximum), rng.normal(mu, sd, size=random_items.shape)], axis=1
        )
        return assemble(items, ratings, targets, train.scale, train.n_items)

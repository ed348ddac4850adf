"""Popular-filler attack: a bandwagon attack written for implicit-feedback victims.

Paper: the Bandwagon attack of Burke, Mobasher, Bhaumik et al. ("Limited knowledge shilling
attacks in collaborative filtering systems", IJCAI workshop 2005; Mobasher et al., ACM TOIT
2007), read as interactions: with implicit feedback (LightGCN, NeuMF, docs/victims.md) a fake
rating is an interaction whatever its value, so the only thing a profile can say is *which*
items it touches.  Bandwagon spends 10% of its fillers on popular items and the rest on random
ones; random interactions pull the targets towards nobody's taste (measured on ML-100K: the
targets' median rank drops), so here every filler is a popular item.

Threat model: the attacker knows the item popularity (how many real users interacted with
each item), nothing about the model.  Budget: ``n_fake_users`` fake users, each interacting
with every target and with ``n_filler`` fillers drawn uniformly without replacement from the
``round(pool x n_filler)`` most popular non-target items (``pool = 1``: every fake user has the
same profile, the ``n_filler`` most popular items).  Ratings are the scale maximum (what a
bandwagon profile gives popular items; ignored by implicit victims).
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, FakeProfiles, Param, ProgressFn
from apt_core.data.dataset import Interactions


def most_popular(train: Interactions, targets: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most interacted-with non-target items (ties broken by item id)."""
    cand = non_targets(train.n_items, targets)
    counts = train.real_item_counts[cand]
    return cand[np.lexsort((cand, -counts))[: max(0, min(int(n), len(cand)))]]


class PopularFillerAttack(Attack):
    name = "popular-filler"
    summary = "Targets plus popular items only, as interactions (bandwagon for implicit feedback)"
    paper = "Burke, Mobasher, Bhaumik et al., IJCAI workshop 2005 (bandwagon), as interactions"
    threat_model = "item popularity"
    params = (
        Param("pool", float, 1.5, "fillers are drawn from the pool x n_filler most popular items (1: the same top items for everyone)",
              low=1.0, high=20.0),
    )

    def __init__(self, pool: float = 1.5) -> None:
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> FakeProfiles:
        popular = most_popular(train, targets, int(round(self.pool * n_filler)))
        items = sample_rows(rng, n_fake_users, popular, n_filler)
        ratings = np.full(items.shape, train.scale.maximum, dtype=np.float64)
        return assemble(items, ratings, targets, train.scale, train.n_items)

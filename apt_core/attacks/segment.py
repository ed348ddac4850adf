"""Segment attack (Burke, Mobasher, Bhaumik, "Limited knowledge shilling attacks in
collaborative filtering systems", IJCAI workshop 2005; Mobasher, Burke, Bhaumik, Williams,
"Toward trustworthy recommender systems", ACM TOIT 2007).

The attacker pushes the targets to one segment of users -- those who like items similar to
them -- rather than to everybody: each fake profile rates a *segment* of items that segment
likes with the scale maximum, the targets with the maximum, and its other fillers with the
scale minimum (so that, among users who liked the segment, the targets stand out).

Segment rule (ours; Burke et al. chose segments by hand, e.g. "Harrison Ford films"): the
``segment_size`` non-target items most often rated with the maximum by the real users who
rated at least one target (ties: the items' overall number of top ratings, then item id).
When no real user rated a target this is the most top-rated items overall.

Threat model: which items the users of the targets like (the training data), no model.
Budget: the paper's, like every attack: ``n_fake_users`` accounts, each rating every target
with the maximum and ``n_filler`` non-target items -- the segment (the same items for every
account, ``min(segment_size, n_filler)`` of them) plus uniform random fillers at the minimum.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.attacks._common import assemble, non_targets, sample_rows
from apt_core.attacks.base import Attack, FakeProfiles, Param, ProgressFn
from apt_core.data.dataset import Interactions


def segment_items(train: Interactions, targets: np.ndarray, size: int) -> np.ndarray:
    """The segment: see the module docstring.  Returns up to ``size`` item ids, best first."""
    real = train.real_only()
    top = real.ratings >= real.scale.maximum - 1e-6
    fans = np.zeros(real.n_users, dtype=bool)
    fans[real.users[np.isin(real.items, targets)]] = True
    by_fans = np.bincount(real.items[top & fans[real.users]], minlength=real.n_items)
    overall = np.bincount(real.items[top], minlength=real.n_items)
    cand = non_targets(real.n_items, targets)
    order = np.lexsort((cand, -overall[cand], -by_fans[cand]))
    return cand[order][: int(size)]


class SegmentAttack(Attack):
    name = "segment"
    summary = "A segment of items the targets' users like at the maximum, fillers at the minimum (Burke et al. 2005)"
    paper = "Burke, Mobasher, Bhaumik, IJCAI workshop 2005; Mobasher et al., ACM TOIT 2007"
    threat_model = "which items the targets' users like (the training data)"
    params = (
        Param("segment_size", int, 5, "items in the segment (rated at the maximum; taken from the filler budget)", low=1, high=1000),
    )

    def __init__(self, segment_size: int = 5) -> None:
        self._set_declared(locals())

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> FakeProfiles:
        segment = segment_items(train, targets, min(self.segment_size, n_filler))
        rest = np.setdiff1d(non_targets(train.n_items, targets), segment)
        random_items = sample_rows(rng, n_fake_users, rest, n_filler - len(segment))
        items = np.concatenate([np.tile(segment, (n_fake_users, 1)), random_items], axis=1)
        ratings = np.concatenate([np.full((n_fake_users, len(segment)), train.scale.maximum),
                                  np.full(random_items.shape, train.scale.minimum)], axis=1)
        return assemble(items, ratings, targets, train.scale, train.n_items)

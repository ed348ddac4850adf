"""RDMA: Rating Deviation from Mean Agreement (Chirita, Nejdl, Zamfir, "Preventing shilling
attacks in online recommender systems", WIDM 2005).

``RDMA_u = (1/n_u) sum_{i in I_u} |r_ui - mean_i| / NR_i``: fake users rate rarely rated
items (the targets, random fillers) far from their mean.  Threat model: profile-level
statistic, unsupervised; it sees every rating, fake or real, and nothing else.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector


def deviation_terms(data: Interactions, power: float) -> np.ndarray:
    """Per rating ``|r_ui - mean_i| / NR_i**power`` (item statistics over the observed data)."""
    counts = data.item_counts.astype(np.float64)
    dev = np.abs(data.ratings.astype(np.float64) - data.item_means()[data.items])
    return dev / counts[data.items] ** power


class RDMA(Detector):
    name = "rdma"
    summary = "mean rating deviation from item means, weighted by 1/item count (Chirita et al. 2005)"
    #: the power of the item count in the denominator (WDMA: 2)
    count_power: ClassVar[float] = 1.0

    def _scores(self, data: Interactions) -> np.ndarray:
        n_u = np.maximum(data.user_counts, 1).astype(np.float64)
        return np.bincount(data.users, weights=deviation_terms(data, self.count_power), minlength=data.n_users) / n_u

"""WDMA: Weighted Deviation from Mean Agreement (Burke, Mobasher, Williams, Bhaumik,
"Classification features for attack detection in collaborative recommender systems",
KDD 2006).

Like RDMA with ``NR_i**2`` in the denominator, which weights rarely rated items (where
fake ratings stand out most) more.  Threat model and inputs as :mod:`.rdma`.
"""
from __future__ import annotations

import numpy as np

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector
from apt_core.detection.rdma import deviation_terms


class WDMA(Detector):
    name = "wdma"
    summary = "RDMA with squared item counts: rare items weigh more (Burke et al. 2006)"

    def _scores(self, data: Interactions) -> np.ndarray:
        n_u = np.maximum(data.user_counts, 1).astype(np.float64)
        return np.bincount(data.users, weights=deviation_terms(data, 2.0), minlength=data.n_users) / n_u

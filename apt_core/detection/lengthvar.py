"""LengthVar (Burke, Mobasher, Williams, Bhaumik, KDD 2006): how far a profile's length is
from the average length, ``|n_u - mean n| / sum_v (n_v - mean n)^2``.

Meant for attacks whose profiles are much longer than real ones.  Our attacks give every
fake user the *average* number of ratings (the attack budget of docs/protocol.md), so on them the fake
users are the least suspicious: kept as the classical baseline that it is, reported as
measured.
"""
from __future__ import annotations

import numpy as np

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector


class LengthVar(Detector):
    name = "lengthvar"
    summary = "distance of the profile length from the mean length (Burke et al. 2006)"

    def _scores(self, data: Interactions) -> np.ndarray:
        n_u = data.user_counts.astype(np.float64)
        dev = n_u - n_u.mean()
        denom = float((dev**2).sum())
        return np.abs(dev) / denom if denom > 0 else np.zeros(data.n_users)

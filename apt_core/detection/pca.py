"""PCA-SelectUsers (Mehta and Nejdl, "Unsupervised strategies for shilling detection and
robust collaborative filtering", UMUAI 2009).

Z-score each user's ratings (unrated = 0), take users as variables and compute the top
``n_components`` (3 in the paper) principal components of their covariance over items; a
user's contribution is the sum of its squared loadings on them.  Mehta and Nejdl flag the
users that contribute *least*: shills correlate with each other yet add little variance.
Suspicion = minus the contribution.  The components are the top left singular vectors of
the users x items z-score matrix (a truncated sparse SVD, no users x users matrix).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector, Param, rating_matrix


class PCASelectUsers(Detector):
    name = "pca"
    summary = "users contributing least to the top principal components (Mehta & Nejdl 2009)"

    params = Detector.params + (Param("n_components", int, 3, "principal components kept", low=1, high=100),)

    def __init__(self, n_components: int = 3, cut: str = "gap") -> None:
        self._set_declared(locals())

    def _scores(self, data: Interactions) -> np.ndarray:
        R = rating_matrix(data)
        counts = np.maximum(np.diff(R.indptr), 1)
        mu = np.asarray(R.sum(1)).ravel() / counts
        rows = np.repeat(np.arange(data.n_users), np.diff(R.indptr))
        centred = R.data - mu[rows]
        sd = np.sqrt(np.bincount(rows, weights=centred**2, minlength=data.n_users) / counts)
        z = np.divide(centred, sd[rows], out=np.zeros_like(centred), where=sd[rows] > 0)
        Z = sp.csr_matrix((z, R.indices, R.indptr), shape=R.shape)
        k = min(self.n_components, min(Z.shape) - 1)
        if k < 1:
            return np.zeros(data.n_users)
        # svds' starting vector is fixed so the result is deterministic.
        v0 = np.ones(min(Z.shape)) / np.sqrt(min(Z.shape))
        U, _, _ = svds(Z, k=k, v0=v0)
        return -(U**2).sum(1)

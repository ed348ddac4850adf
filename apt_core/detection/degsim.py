"""DegSim: degree of similarity with the top neighbours (Chirita, Nejdl, Zamfir, WIDM 2005).

``DegSim_u`` = mean Pearson correlation of u with its ``k`` most similar users (k = 25),
computed over co-rated items (pairs with fewer than ``min_overlap`` co-rated items count
as 0).  Fake users built by one recipe resemble each other more than real users do.
Memory: the users x users similarity is computed in row blocks of ``block`` users.
"""
from __future__ import annotations

import numpy as np

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector, Param, rating_matrix


class DegSim(Detector):
    name = "degsim"
    summary = "mean Pearson similarity with the k nearest users (Chirita et al. 2005)"

    params = Detector.params + (
        Param("k", int, 25, "nearest users averaged", low=1, high=1000),
        Param("min_overlap", int, 3, "co-rated items needed for a similarity", low=1, high=1000),
        Param("block", int, 1024, "users per block of the similarity computation (memory)", low=1, high=16_384),
    )

    def __init__(self, k: int = 25, min_overlap: int = 3, block: int = 1024, cut: str = "gap") -> None:
        self._set_declared(locals())

    def _scores(self, data: Interactions) -> np.ndarray:
        R = rating_matrix(data)
        B = R.copy()
        B.data[:] = 1.0
        n_u = np.maximum(np.asarray(B.sum(1)).ravel(), 1)
        mu = np.asarray(R.sum(1)).ravel() / n_u
        Z = R.copy()
        Z.data = Z.data - np.repeat(mu, np.diff(Z.indptr))  # centred on the user's mean
        Z2 = Z.multiply(Z).tocsr()
        Bt, Zt, Z2t = B.T.tocsc(), Z.T.tocsc(), Z2.T.tocsc()
        n = data.n_users
        k = min(self.k, max(1, n - 1))
        out = np.zeros(n)
        for start in range(0, n, self.block):
            stop = min(n, start + self.block)
            num = (Z[start:stop] @ Zt).toarray()
            # Pearson over co-rated items: each side's variance restricted to the overlap.
            var_a = (Z2[start:stop] @ Bt).toarray()
            var_b = (B[start:stop] @ Z2t).toarray()
            overlap = (B[start:stop] @ Bt).toarray()
            with np.errstate(invalid="ignore", divide="ignore"):
                sim = num / np.sqrt(var_a * var_b)
            sim = np.where((overlap >= self.min_overlap) & np.isfinite(sim), sim, 0.0)
            sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf
            top = -np.partition(-sim, k - 1, axis=1)[:, :k]
            out[start:stop] = top.mean(1)
        return out

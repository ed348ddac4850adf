"""Co-rating groups (ours): users who give the top rating to pairs of items that far more
users top-rate together than the items' popularity predicts.

Why: every attack here (docs/protocol.md, attack budget) has all its fake users rate the same target items
with the scale maximum -- a planted block in the users x items "top rating" matrix.  Real
users also top-rate items together (sequels, a genre's classics), but in proportion to how
popular the items are and how active the users are.  So for each item pair (i, j) with top
raters ``A_i``, ``A_j`` and ``C_ij`` users top-rating both, the expected co-count under a
configuration null (users of top-rating degree ``d_u``, Chung and Lu 2002) is
``lambda_ij = c * |A_i| |A_j| / n`` with ``c = n sum_u d_u^2 / (sum_u d_u)^2`` (heavy users
co-rate more), and the pair's surprise is the Poisson tail bound (Chernoff)
``C log(C / lambda) - C + lambda`` for ``C > lambda``.  A user's suspicion is the ``rank``-th
largest surprise among the pairs of items it top-rated (default the largest).

Threat model: unsupervised, sees only the observed ratings.  What it catches is the
footprint the attack cannot avoid under this threat model (many accounts pushing the same
targets), not a filler artefact.  What evades it (measured, see the README): a single
target item (no pair to share), or a group so small that its co-count is within real
co-rating (about 1% of the users on ML-100K), or attackers that spread the targets over
accounts.  Cost: the items x items co-count is sparse; memory O(nonzero item pairs).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector, Param


def pair_surprise(data: Interactions, top_steps: int = 0, heterogeneity: bool = True) -> tuple[sp.csr_matrix, sp.csr_matrix, dict]:
    """(top-rating matrix M, items x items surprise S (sparse, zero diagonal), details)."""
    level = data.scale.maximum - top_steps * data.scale.step - 1e-6
    top = data.ratings >= level
    n = data.n_users
    M = sp.csr_matrix((np.ones(int(top.sum())), (data.users[top], data.items[top])), shape=(n, data.n_items))
    A = np.asarray(M.sum(0)).ravel()
    d = np.asarray(M.sum(1)).ravel()
    D = float(d.sum())
    c = float(n * (d**2).sum() / D**2) if heterogeneity and D > 0 else 1.0
    C = (M.T @ M).tocoo()
    off = C.row != C.col
    rows, cols, co = C.row[off], C.col[off], C.data[off].astype(np.float64)
    lam = c * A[rows] * A[cols] / max(n, 1)
    keep = co > lam
    rows, cols, co, lam = rows[keep], cols[keep], co[keep], lam[keep]
    s = co * np.log(co / lam) - co + lam
    S = sp.csr_matrix((s, (rows, cols)), shape=(data.n_items, data.n_items))
    return M, S, {"heterogeneity": c, "top_level": level + 1e-6}


class CoGroup(Detector):
    name = "cogroup"
    summary = "top-rates item pairs together far more than popularity predicts (ours; planted co-rating block)"

    params = Detector.params + (
        Param("rank", int, 1, "a user's suspicion is the rank-th largest surprise among its top-rated item pairs", low=1, high=100),
        Param("top_steps", int, 0, "rating steps below the maximum that count as a top rating", low=0, high=100),
        Param("heterogeneity", bool, True, "heavy users co-rate more: scale the expected co-count by c (False: c = 1)"),
    )

    def __init__(self, rank: int = 1, top_steps: int = 0, heterogeneity: bool = True, cut: str = "gap") -> None:
        self._set_declared(locals())

    def _scores(self, data: Interactions) -> np.ndarray:
        M, S, _ = pair_surprise(data, self.top_steps, self.heterogeneity)
        out = np.zeros(data.n_users)
        indptr, indices = M.indptr, M.indices
        for u in range(data.n_users):
            items = indices[indptr[u] : indptr[u + 1]]
            if len(items) < 2:
                continue
            sub = S[items][:, items]
            if sub.nnz == 0:
                continue
            vals = sub.data  # each unordered pair appears twice (S is symmetric)
            k = 2 * self.rank - 1
            out[u] = np.partition(vals, len(vals) - k)[len(vals) - k] if len(vals) >= k else 0.0
        return out

"""How many users a detector flags, decided from its scores alone.

The defender knows neither which users are fake nor how many there are (docs/detection.md),
so the cut cannot be "the top 3%".  Rules:

- ``gap``: sort the scores; in the top ``max_fraction`` (20%) find the largest drop between
  consecutive scores; flag the users above it **only if** that drop is at least
  ``min_relative_gap`` (1.0) times the median score's distance from the minimum, i.e. the
  top block is separated from the rest by more than a typical score.  A coordinated group
  of fake users shares one statistic (e.g. the same target items) and sits in such a block;
  clean data has no such gap and then nobody is flagged.  The two constants were chosen on
  ML-100K with split/target seed 100 and on the sample data, not on the reported settings.
- ``mad``: flag scores above median + 3.5 x 1.4826 x MAD (a robust z-score of 3.5; the
  usual outlier rule, Iglewicz and Hoaglin 1993).
- ``none``: flag nobody (scores only).
"""
from __future__ import annotations

import numpy as np

CUTS = ("gap", "mad", "none")
MAX_FRACTION = 0.2
MIN_RELATIVE_GAP = 1.0
MAD_Z = 3.5


def gap_cut(scores: np.ndarray, max_fraction: float = MAX_FRACTION, min_relative_gap: float = MIN_RELATIVE_GAP) -> tuple[np.ndarray, float | None, dict]:
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    flagged = np.zeros(n, dtype=bool)
    if n < 3:
        return flagged, None, {"gap": 0.0, "reference": 0.0}
    order = np.sort(s)[::-1]
    k = max(1, min(n - 1, int(max_fraction * n)))
    gaps = order[:k] - order[1 : k + 1]
    j = int(np.argmax(gaps))
    reference = float(np.median(s) - order[-1])
    gap = float(gaps[j])
    extra = {"gap": gap, "reference": reference, "block": j + 1}
    if gap <= 0 or gap < min_relative_gap * reference:
        return flagged, None, extra
    threshold = float(order[j])
    return s >= threshold, threshold, extra


def mad_cut(scores: np.ndarray, z: float = MAD_Z) -> tuple[np.ndarray, float | None, dict]:
    s = np.asarray(scores, dtype=np.float64)
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    if mad == 0:
        return s > med, med, {"mad": 0.0}
    threshold = med + z * mad
    return s > threshold, threshold, {"mad": mad}


def apply_cut(scores: np.ndarray, cut: str) -> tuple[np.ndarray, float | None, dict]:
    if cut == "gap":
        return gap_cut(scores)
    if cut == "mad":
        return mad_cut(scores)
    return np.zeros(len(scores), dtype=bool), None, {}

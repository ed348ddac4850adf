"""Detection metrics: the evaluation knows which users are fake; detectors never do.

ROC-AUC (ties count one half), average precision (mean precision at each fake user's rank,
ties broken pessimistically, i.e. real users first among equal scores), and precision,
recall, F1 and the number of real users flagged at the cut a method actually used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def roc_auc(is_fake: np.ndarray, scores: np.ndarray) -> float | None:
    """P(score of a random fake > score of a random real) + 0.5 P(tie); None without both classes."""
    y = np.asarray(is_fake, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(s)  # ties count one half
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank (``scipy.stats.rankdata``'s default,
    without importing scipy.stats: a second of every ``reproduce`` start-up); any NaN gives all NaN, as there."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        return np.full(values.shape, np.nan)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[inverse.ravel()].reshape(values.shape)


def average_precision(is_fake: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean over fake users of the precision at their rank (ties: real users ranked first)."""
    y = np.asarray(is_fake, dtype=bool)
    if not y.any():
        return None
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((y, -s))  # by score descending, real (False) before fake among ties
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


@dataclass(frozen=True)
class DetectionMetrics:
    auc: float | None
    average_precision: float | None
    n_flagged: int
    precision: float | None  # None when nobody was flagged
    recall: float | None  # None when there are no fake users
    f1: float | None
    real_flagged: int
    real_flagged_fraction: float
    fake_flagged: int
    n_fake: int
    n_real: int

    def to_dict(self) -> dict:
        return asdict(self)


def detection_metrics(is_fake: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> DetectionMetrics:
    y = np.asarray(is_fake, dtype=bool)
    f = np.asarray(flagged, dtype=bool)
    tp = int((y & f).sum())
    n_flag = int(f.sum())
    n_fake, n_real = int(y.sum()), int((~y).sum())
    precision = tp / n_flag if n_flag else None
    recall = tp / n_fake if n_fake else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    real_flagged = int((f & ~y).sum())
    return DetectionMetrics(
        auc=roc_auc(y, scores), average_precision=average_precision(y, scores), n_flagged=n_flag,
        precision=precision, recall=recall, f1=f1, real_flagged=real_flagged,
        real_flagged_fraction=real_flagged / n_real if n_real else 0.0, fake_flagged=tp, n_fake=n_fake, n_real=n_real,
    )


def fake_mask(n_users: int, n_real_users: int) -> np.ndarray:
    """Injected users sit after the real ones (how every attack here appends them)."""
    y = np.zeros(n_users, dtype=bool)
    y[n_real_users:] = True
    return y

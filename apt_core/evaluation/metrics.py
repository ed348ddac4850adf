"""Evaluation metrics (docs/protocol.md): target HR@K, test HR@K, rank shift, RI, prediction shift.

Ranks are 0-based: the rank of item ``t`` for user ``u`` is the number of items ``u`` has
not rated in train whose score is strictly higher than ``t``'s.  Rated items are masked with
``-inf`` (not multiplied by a 0/1 mask: the authors' multiplication turns negative scores of
rated items into large positives).  A model with a NaN or infinite score is refused
(:class:`~apt_core.errors.DivergedError`): NaN never compares higher, so it would rank every
item first and a diverged model would score HR = 1.0.  Only real users (``u < n_real_users``) are ranked; fake and
ERM users never count.  Users are scored in chunks so memory stays bounded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.data.split import Split
from apt_core.errors import DivergedError

DEFAULT_CHUNK_ELEMENTS = 1 << 24  # scores held at once: 16M floats = 64 MB


def rank_items(
    model,
    train: Interactions,
    items: np.ndarray,
    users: np.ndarray | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> np.ndarray:
    """Ranks of ``items`` for each user, among the items the user has not rated in ``train``.

    ``items`` is ``(n_items_to_rank,)`` (the same items for every user) or ``(n_users, k)``
    (per-user items; ``-1`` entries are skipped).  Returns an int64 array ``(n_users, k)``
    with ``-1`` where the pair is undefined (item rated in train, or ``-1`` given).
    Raises :class:`~apt_core.errors.DivergedError` when a ranked user has a NaN or infinite
    score (a diverged model has no ranking to report).
    """
    if users is None:
        users = np.arange(train.n_real_users)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    per_user = items.ndim == 2
    k = items.shape[1] if per_user else len(items)
    out = np.full((len(users), k), -1, dtype=np.int64)
    if len(users) == 0 or k == 0:
        return out
    indptr, indices, _ = train.csr
    device = getattr(model, "device", None) or torch.device("cpu")
    chunk = max(1, chunk_elements // max(1, train.n_items * max(1, min(k, 8))))
    with torch.no_grad():
        for start in range(0, len(users), chunk):
            block = users[start : start + chunk]
            scores = model.score_users(torch.from_numpy(block).to(device)).float().clone()
            if not bool(torch.isfinite(scores).all()):
                _raise_non_finite(scores)
            # Mask what each user rated in train.
            lengths = indptr[block + 1] - indptr[block]
            rows = np.repeat(np.arange(len(block)), lengths)
            cols = np.concatenate([indices[indptr[u] : indptr[u + 1]] for u in block]) if len(block) else np.zeros(0, np.int64)
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = -torch.inf
            if per_user:
                want = items[start : start + chunk]
            else:
                want = np.broadcast_to(items, (len(block), k))
            safe = np.where(want >= 0, want, 0)
            want_t = torch.from_numpy(np.ascontiguousarray(safe)).to(device)
            target_scores = scores.gather(1, want_t)
            higher = (scores.unsqueeze(1) > target_scores.unsqueeze(2)).sum(-1)
            ranks = higher.cpu().numpy()
            undefined = (want < 0) | np.isneginf(target_scores.cpu().numpy())
            ranks[undefined] = -1
            out[start : start + len(block)] = ranks
    return out


def _raise_non_finite(scores: torch.Tensor) -> None:
    kinds = [name for name, present in (("NaN", torch.isnan(scores).any()), ("inf", torch.isinf(scores).any())) if bool(present)]
    # Phrased to follow "the <phase> model diverged: " (the experiment adds the phase).
    raise DivergedError(f"its scores contain {'/'.join(kinds)}, so it has no ranking (training diverged)")


def hit_ratio(ranks: np.ndarray, k: int) -> float:
    """Share of defined pairs (rank >= 0) ranked in the top ``k``; NaN when none is defined."""
    valid = ranks >= 0
    if not valid.any():
        return float("nan")
    return float((ranks[valid] < k).mean())


def predicted_ratings(model, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Model scores (normalised scale) for users x items, shape ``(len(users), len(items))``."""
    device = getattr(model, "device", None) or torch.device("cpu")
    with torch.no_grad():
        s = model.score_users(torch.from_numpy(np.asarray(users, dtype=np.int64)).to(device))
        return s[:, torch.from_numpy(np.asarray(items, dtype=np.int64)).to(device)].cpu().numpy()


@dataclass
class Evaluation:
    """Everything measured on one fitted model for one split and target set."""

    k: int
    target_ranks: np.ndarray  # (n_real_users, n_targets), -1 where the user rated the target
    test_ranks: np.ndarray  # (n_real_users,), -1 where the user has no test item
    target_predictions: np.ndarray  # (n_real_users, n_targets) on the data set's scale

    @property
    def target_hr(self) -> float:
        return hit_ratio(self.target_ranks, self.k)

    @property
    def test_hr(self) -> float:
        return hit_ratio(self.test_ranks[:, None], self.k)

    def per_target_hr(self) -> np.ndarray:
        return np.array([hit_ratio(self.target_ranks[:, j : j + 1], self.k) for j in range(self.target_ranks.shape[1])])


def evaluate(model, split: Split, targets: np.ndarray, k: int = 50, scale_max: float | None = None) -> Evaluation:
    """Target HR@K and test HR@K of ``model`` for the real users of ``split``.

    Ranking uses the clean split's train ratings to mask rated items: real users' rows are
    identical in the poisoned data, and fake users are never evaluated.
    """
    train = split.train
    users = np.arange(train.n_real_users)
    targets = np.asarray(targets, dtype=np.int64)
    test_items = split.test_items[: len(users)]
    both = np.concatenate([np.broadcast_to(targets, (len(users), len(targets))), test_items[:, None]], axis=1)
    ranks = rank_items(model, train, both, users)
    scale_max = scale_max if scale_max is not None else train.scale.maximum
    preds = predicted_ratings(model, users, targets) * scale_max if len(targets) else np.zeros((len(users), 0))
    return Evaluation(k, ranks[:, : len(targets)], ranks[:, len(targets)], preds)


def rank_shift(before: Evaluation, after: Evaluation) -> np.ndarray:
    """Rank before minus rank after for every defined (user, target) pair (positive = promoted)."""
    valid = (before.target_ranks >= 0) & (after.target_ranks >= 0)
    return (before.target_ranks - after.target_ranks)[valid]


def prediction_shift(before: Evaluation, after: Evaluation) -> float:
    """Mean change of the targets' predicted rating (data set scale) over defined pairs."""
    valid = (before.target_ranks >= 0) & (after.target_ranks >= 0)
    if not valid.any():
        return float("nan")
    return float((after.target_predictions - before.target_predictions)[valid].mean())


def robustness_improvement(hr_defense: float, hr_origin: float, hr_attack: float, tol: float = 1e-12) -> float | None:
    """RI = 1 - (HR_defense - HR_origin) / (HR_attack - HR_origin); None when the attack moved nothing."""
    if any(v is None or np.isnan(v) for v in (hr_defense, hr_origin, hr_attack)):
        return None
    gap = hr_attack - hr_origin
    if abs(gap) <= tol:
        return None
    return float(1.0 - (hr_defense - hr_origin) / gap)

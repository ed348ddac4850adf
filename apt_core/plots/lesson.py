"""Tables of the guided lesson (pure functions: arrays in, DataFrames out).

A profile table lists what one user -- real, fake or one of APT's ERM users -- rated, target
items first, so a class can see what a fake profile looks like next to a real one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def profile_frame(items: np.ndarray, ratings: np.ndarray, titles: Sequence[str], targets: np.ndarray,
                  item_counts: np.ndarray | None = None, limit: int = 30) -> pd.DataFrame:
    """One profile: ``item, rating, target?`` (and ``ratings of the item`` when counts are given).

    Targets first, then the highest ratings; at most ``limit`` rows.
    """
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=float)
    is_target = np.isin(items, np.asarray(targets, dtype=np.int64))
    order = np.lexsort((-ratings, ~is_target))[:limit]
    frame = pd.DataFrame({
        "item": [titles[int(i)] for i in items[order]],
        "rating": ratings[order].round(2),
        "target item?": np.where(is_target[order], "yes", ""),
    })
    if item_counts is not None:
        frame["ratings of the item (real users)"] = np.asarray(item_counts)[items[order]].astype(int)
    return frame


def user_profile(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, user: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, ratings) of local user ``user`` in parallel arrays of (users, items, ratings)."""
    mask = np.asarray(users) == user
    return np.asarray(items)[mask], np.asarray(ratings)[mask]


def top_k_list(titles: Sequence[str], items: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """A numbered recommendation list with the targets marked."""
    items = np.asarray(items, dtype=np.int64)
    return pd.DataFrame({
        "rank": np.arange(1, len(items) + 1),
        "recommended item": [titles[int(i)] for i in items],
        "target item?": np.where(np.isin(items, np.asarray(targets, dtype=np.int64)), "yes", ""),
    })


def share_reached(target_ranks: np.ndarray, k: int) -> float:
    """Share of real users with at least one target in their top-K (ranks -1 = rated, ignored)."""
    ranks = np.asarray(target_ranks)
    if ranks.size == 0:
        return 0.0
    return float(((ranks >= 0) & (ranks < k)).any(axis=1).mean())


def reached_student(ranks_before: np.ndarray, ranks_after: np.ndarray, top: int) -> int:
    """The lesson's default student: the first real user with no target in their top-``top`` before the
    attack and at least one after it (the attack reaches them), else the user whose best target rank
    after the attack is highest; 0 when nobody has a ranked target.  Ranks: -1 = rated (ignored)."""
    before = np.asarray(ranks_before)
    after = np.asarray(ranks_after)
    if after.size == 0:
        return 0
    shown_after = ((after >= 0) & (after < top)).any(axis=1)
    shown_before = ((before >= 0) & (before < top)).any(axis=1) if before.size else np.zeros(len(after), dtype=bool)
    newly = np.flatnonzero(shown_after & ~shown_before)
    if len(newly):
        return int(newly[0])
    best = np.where(after >= 0, after, np.iinfo(np.int64).max).min(axis=1)
    return int(np.argmin(best)) if (best < np.iinfo(np.int64).max).any() else 0

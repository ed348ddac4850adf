"""Synthetic rating sets with the shape of ML-1M and Yelp, for timing and memory at scale.

The licensed data sets cannot ship with APT Lab, yet a researcher needs to know what a run
at their size costs before fetching them.  :func:`shaped` draws a rating set with the same
number of users, items and ratings as the real one (DESIGN-level facts: ML-1M 6040 x 3706,
1,000,209 ratings; Yelp 14,575 x 25,602, 569,949 ratings) and the traits the attacks and
defenses react to, the same recipe as ``sample_data/make_sample.py``:

* planted preferences (8-dimensional user and item factors, user offsets, item quality);
* long-tail item popularity (Zipf-like weights), so an ``unpopular`` target pool exists;
* heavy-tailed user activity (log-normal, rescaled to the real rating count);
* users rate what they would like more often (missing not at random); ratings on 1..5.

Items are drawn per user without replacement by the Gumbel top-k trick in chunks of users,
so memory stays bounded (Yelp's full user x item affinity would be 1.5 GB).  Deterministic
for a given ``seed``.  Load them as ``--dataset synthetic-ml-1m`` or ``synthetic-yelp``.
Numbers measured on them are costs, not accuracies: they say nothing about the real data.
"""
from __future__ import annotations

import numpy as np

from apt_core.data.dataset import RatingData, RatingScale, build_rating_data

#: name -> (users, items, ratings) of the real data set whose shape is copied
SHAPES: dict[str, tuple[int, int, int]] = {
    "ml-1m": (6040, 3706, 1_000_209),
    "yelp": (14575, 25602, 569_949),
}


def shape_names() -> list[str]:
    return sorted(SHAPES)


def shaped(shape: str, seed: int = 0, dim: int = 8, zipf: float = 1.0, tail: float = 1e-2, chunk: int = 256) -> RatingData:
    """A synthetic :class:`RatingData` named ``synthetic-<shape>`` with ``shape``'s users, items and ratings."""
    from apt_core.errors import DataError

    key = shape.lower().removeprefix("synthetic-")
    if key not in SHAPES:
        raise DataError(f"unknown shape {shape!r}: choose one of {', '.join(shape_names())}")
    n_users, n_items, n_ratings = SHAPES[key]
    rng = np.random.default_rng(seed)
    user_f = rng.normal(0, 1, (n_users, dim)).astype(np.float32)
    item_f = rng.normal(0, 1, (n_items, dim)).astype(np.float32)
    user_bias = rng.normal(0, 0.35, n_users).astype(np.float32)
    item_quality = rng.normal(0, 0.3, n_items).astype(np.float32)
    rank = rng.permutation(n_items)
    popularity = 1.0 / (rank + 8.0) ** zipf
    # A catalogue tail (the last 3% by popularity) that almost nobody rates, as in the real sets:
    # without it, sampling 1M ratings touches every item 5+ times and no "unpopular" target exists.
    popularity[rank >= int(0.97 * n_items)] *= tail
    log_pop = np.log(popularity / popularity.sum()).astype(np.float32)
    # Activity: log-normal, rescaled so the counts add up to the real number of ratings.
    raw = rng.lognormal(0.0, 0.9, n_users)
    cap = max(20, n_items // 3)
    activity = np.clip(np.round(raw * n_ratings / raw.sum()), 10, cap).astype(np.int64)
    for _ in range(20):  # clipping moved the total: spread the rest over the unclipped users
        gap = n_ratings - int(activity.sum())
        free = np.flatnonzero((activity > 10) & (activity < cap)) if gap < 0 else np.flatnonzero(activity < cap)
        if gap == 0 or len(free) == 0:
            break
        step = np.full(len(free), gap // len(free))
        step[: abs(gap) % len(free)] += int(np.sign(gap))
        activity[free] = np.clip(activity[free] + step, 10, cap)
    users_out, items_out, ratings_out = [], [], []
    scale = np.float32(1.0 / np.sqrt(dim))
    for start in range(0, n_users, chunk):
        stop = min(n_users, start + chunk)
        affinity = (user_f[start:stop] @ item_f.T) * scale  # chunk x items
        # Gumbel top-k = sampling without replacement with weights popularity * exp(0.6 a + 0.5 q).
        logits = log_pop + 0.6 * affinity + 0.5 * item_quality
        logits += rng.gumbel(size=logits.shape).astype(np.float32)
        order = np.argsort(-logits, axis=1)
        for row, u in enumerate(range(start, stop)):
            items = order[row, : activity[u]]
            noise = rng.normal(0, 0.55, len(items))
            value = 3.4 + user_bias[u] + item_quality[items] + 1.1 * affinity[row, items] + noise
            users_out.append(np.full(len(items), u, dtype=np.int64))
            items_out.append(items.astype(np.int64))
            ratings_out.append(np.clip(np.round(value), 1, 5).astype(np.float32))
    users = np.concatenate(users_out)
    items = np.concatenate(items_out)
    ratings = np.concatenate(ratings_out)
    # 1-based ids like the real files; an item nobody drew is simply absent (as in real data).
    return build_rating_data(f"synthetic-{key}", users + 1, items + 1, ratings, RatingScale(1.0, 5.0, 1.0),
                             source=f"synthetic, shape of {key}, seed {seed}")

"""Helpers shared by the attacks: vectorised filler sampling and profile assembly.

(Hyper-parameters are validated from their declarations, :mod:`apt_core.params`.)

Everything here works on whole ``(n_fake_users, k)`` blocks with numpy: a Python loop over
fake users x items would cost more than the heuristic attacks themselves.
"""
from __future__ import annotations

import numpy as np

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import Interactions, RatingScale


def sample_rows(rng: np.random.Generator, n_rows: int, candidates: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``n_rows`` independent draws of ``k`` distinct items from ``candidates`` (vectorised).

    Uniform draws take the ``k`` smallest of i.i.d. uniform keys per row; weighted draws use
    the Gumbel-top-k trick (keys ``log w + Gumbel``), which samples without replacement with
    probability proportional to ``w``.  Returns ``(n_rows, k)`` item ids.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    k = min(int(k), len(candidates))
    if k <= 0 or n_rows <= 0:
        return np.zeros((max(n_rows, 0), 0), dtype=np.int64)
    if weights is None:
        keys = rng.random((n_rows, len(candidates)))
    else:
        with np.errstate(divide="ignore"):
            logw = np.log(np.asarray(weights, dtype=np.float64))
        keys = -(logw[None, :] + rng.gumbel(size=(n_rows, len(candidates))))
    if k < len(candidates):
        idx = np.argpartition(keys, k - 1, axis=1)[:, :k]
    else:
        idx = np.tile(np.arange(len(candidates)), (n_rows, 1))
    return candidates[idx]


def non_targets(n_items: int, targets: np.ndarray) -> np.ndarray:
    mask = np.ones(n_items, dtype=bool)
    mask[targets] = False
    return np.flatnonzero(mask)


def assemble(
    filler_items: np.ndarray,
    filler_ratings: np.ndarray,
    targets: np.ndarray,
    scale: RatingScale,
    n_items: int,
    valid: np.ndarray | None = None,
) -> FakeProfiles:
    """Fake profiles from a ``(n_fake, k)`` block of fillers plus every target at the maximum.

    ``valid`` (same shape, bool) drops padding entries where a user has fewer than ``k``
    fillers.  Filler ratings are snapped to the grid here, so callers may pass raw values.
    """
    n_fake = filler_items.shape[0]
    k = filler_items.shape[1]
    if valid is None:
        valid = np.ones_like(filler_items, dtype=bool)
    f_users = np.repeat(np.arange(n_fake), k).reshape(n_fake, k)[valid]
    f_items = filler_items[valid]
    f_ratings = scale.snap(np.asarray(filler_ratings)[valid])
    t_users = np.repeat(np.arange(n_fake), len(targets))
    t_items = np.tile(targets, n_fake)
    t_ratings = np.full(len(t_items), scale.maximum, dtype=np.float32)
    users = np.concatenate([f_users, t_users])
    items = np.concatenate([f_items, t_items])
    ratings = np.concatenate([f_ratings, t_ratings])
    order = np.lexsort((items, users))
    return FakeProfiles(users[order], items[order], ratings[order], n_fake, n_items)


def top_fillers_from_dense(values: np.ndarray, targets: np.ndarray, n_filler: int, scale: RatingScale, tie_break: np.ndarray | None = None) -> FakeProfiles:
    """Keep, per fake user, the ``n_filler`` non-target items with the largest values.

    ``values`` is ``(n_fake, n_items)`` in normalised units (rating / scale maximum); the
    kept values are denormalised and snapped to the grid.  ``tie_break`` (same shape) orders
    items whose values are equal (optimised ratings often sit at the bounds).
    """
    n_fake, n_items = values.shape
    cand = non_targets(n_items, targets)
    k = min(n_filler, len(cand))
    if k == 0:
        return assemble(np.zeros((n_fake, 0), np.int64), np.zeros((n_fake, 0)), targets, scale, n_items)
    v = values[:, cand].astype(np.float64)
    key = -v if tie_break is None else -(v + 1e-6 * np.tanh(tie_break[:, cand]))
    idx = np.argpartition(key, k - 1, axis=1)[:, :k]
    items = cand[idx]
    raw = np.take_along_axis(values, items, axis=1) * scale.maximum
    return assemble(items, raw, targets, scale, n_items)


FILLER_RATINGS = ("optimised", "average")


def rerate_fillers_like_average(profiles: FakeProfiles, train: Interactions, targets: np.ndarray, rng: np.random.Generator) -> FakeProfiles:
    """Keep the profiles' items but draw each filler rating ~ N(mean_j, std_j) (as Average does).

    Why: an optimised dense rating vector, cut to its largest entries, leaves fillers whose
    ratings anti-correlate with the item means (about -0.6 for PGA/TNA on ML-100K, see
    :mod:`apt_core.evaluation.stealth`) -- an artefact a detector can catch without learning anything
    about the attack's real footprint (the targets).  Targets stay at the maximum.
    """
    is_target = np.isin(profiles.items, targets)
    means, stds = train.item_means(), train.item_stds()
    ratings = profiles.ratings.copy()
    f_items = profiles.items[~is_target]
    ratings[~is_target] = train.scale.snap(rng.normal(means[f_items], stds[f_items]))
    return FakeProfiles(profiles.users, profiles.items, ratings, profiles.n_fake_users, profiles.n_items)


def item_popularity(train: Interactions) -> np.ndarray:
    """Number of (real) ratings per item in the training data."""
    return train.real_item_counts

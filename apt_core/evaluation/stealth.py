"""How much a block of fake profiles looks like the real users (the dashboard's Profiles page).

Statistics, each computed for the fake users and for the real users beside them:

* **Filler popularity**: mean training count (real ratings) of the items a profile rates,
  targets excluded for the fakes.  Random fillers are drawn uniformly, so they are far less
  popular than what real users rate; TNA's tend to be very popular (the authors' reference poison files).
* **Correlation with item means**: Pearson correlation of the filler ratings with the rated
  items' mean ratings.  Real users' ratings are compared with leave-one-out item means (a
  rating must not explain itself).  Average-attack fakes correlate (0.3-0.6 in the authors'
  files); Random's do not.
* **Rating distribution distance**: total variation and Wasserstein-1 distance (in rating
  units) between the histogram of fake filler ratings and of real ratings over the grid.
* **Profile distance**: mean cosine distance from each fake profile to its nearest real user
  (rating vectors), beside the same for real users to their nearest other real user.
* Profile sizes (ratings per profile), fake vs real.

Targets are excluded from the fake "filler" statistics; pass them, or they are inferred as the
items every fake user rates with the scale maximum.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import Interactions


@dataclass(frozen=True)
class StealthStatistics:
    n_fake_users: int
    n_real_users: int
    filler_popularity_fake: float
    filler_popularity_real: float
    mean_corr_fake: float
    mean_corr_real: float
    tv_distance: float
    wasserstein: float
    nn_distance_fake: float
    nn_distance_real: float
    profile_size_fake: float
    profile_size_real: float
    rating_hist_fake: list[float]
    rating_hist_real: list[float]
    grid: list[float]

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[dict]:
        """Table rows ``statistic, fake, real`` for display."""
        return [
            {"statistic": "mean popularity of rated items (fillers)", "fake": self.filler_popularity_fake, "real": self.filler_popularity_real},
            {"statistic": "correlation of ratings with item means", "fake": self.mean_corr_fake, "real": self.mean_corr_real},
            {"statistic": "nearest-real-user cosine distance", "fake": self.nn_distance_fake, "real": self.nn_distance_real},
            {"statistic": "ratings per profile", "fake": self.profile_size_fake, "real": self.profile_size_real},
            {"statistic": "rating histogram: total variation to real", "fake": self.tv_distance, "real": 0.0},
            {"statistic": "rating histogram: Wasserstein-1 to real", "fake": self.wasserstein, "real": 0.0},
        ]


def infer_targets(fake: FakeProfiles, scale_max: float) -> np.ndarray:
    """Items rated with the maximum by every fake user (how every attack here marks targets)."""
    at_max = np.isclose(fake.ratings, scale_max)
    counts = np.bincount(fake.items[at_max], minlength=fake.n_items)
    return np.flatnonzero(counts == fake.n_fake_users) if fake.n_fake_users > 0 else np.zeros(0, np.int64)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _histogram(ratings: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if len(ratings) == 0:
        return np.zeros(len(grid))
    idx = np.clip(np.round((ratings - grid[0]) / (grid[1] - grid[0] if len(grid) > 1 else 1)).astype(int), 0, len(grid) - 1)
    h = np.bincount(idx, minlength=len(grid)).astype(np.float64)
    return h / h.sum()


def _normalised_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms) @ m


def stealth_statistics(train: Interactions, fake: FakeProfiles, targets: np.ndarray | None = None) -> StealthStatistics:
    """Compare ``fake`` with the real users of ``train`` (see the module docstring)."""
    real = train.real_only()
    scale = real.scale
    if targets is None:
        targets = infer_targets(fake, scale.maximum)
    targets = np.asarray(targets, dtype=np.int64)
    counts = real.item_counts.astype(np.float64)
    filler = ~np.isin(fake.items, targets)
    f_items, f_ratings = fake.items[filler], fake.ratings[filler].astype(np.float64)

    # Item means: plain for the fakes (they are not in train), leave-one-out for real ratings.
    sums = np.bincount(real.items, weights=real.ratings, minlength=real.n_items)
    global_mean = float(real.ratings.mean())
    means = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
    loo_n = counts[real.items] - 1
    loo_means = np.where(loo_n > 0, (sums[real.items] - real.ratings) / np.maximum(loo_n, 1), global_mean)
    has_peer = loo_n > 0

    grid = scale.grid
    h_fake = _histogram(f_ratings, grid)
    h_real = _histogram(real.ratings.astype(np.float64), grid)
    tv = 0.5 * float(np.abs(h_fake - h_real).sum()) if len(f_ratings) else float("nan")
    w1 = float(np.abs(np.cumsum(h_fake - h_real)).sum() * scale.step) if len(f_ratings) else float("nan")

    # Nearest-neighbour cosine distances over whole rating vectors (targets included: a
    # detector sees the whole profile).
    R = sp.csr_matrix((real.ratings.astype(np.float64), (real.users, real.items)), shape=(real.n_users, real.n_items))
    F = sp.csr_matrix((fake.ratings.astype(np.float64), (fake.users, fake.items)), shape=(fake.n_fake_users, real.n_items))
    Rn, Fn = _normalised_rows(R), _normalised_rows(F)
    sim_fr = (Fn @ Rn.T).toarray()
    nn_fake = float(np.mean(1.0 - sim_fr.max(1))) if fake.n_fake_users and real.n_users else float("nan")
    sim_rr = (Rn @ Rn.T).toarray()
    np.fill_diagonal(sim_rr, -np.inf)
    nn_real = float(np.mean(1.0 - sim_rr.max(1))) if real.n_users > 1 else float("nan")

    per_fake = np.bincount(fake.users, minlength=fake.n_fake_users)
    return StealthStatistics(
        n_fake_users=int(fake.n_fake_users),
        n_real_users=int(real.n_users),
        filler_popularity_fake=float(counts[f_items].mean()) if len(f_items) else float("nan"),
        filler_popularity_real=float(counts[real.items].mean()) if len(real) else float("nan"),
        mean_corr_fake=_pearson(f_ratings, means[f_items]),
        mean_corr_real=_pearson(real.ratings[has_peer].astype(np.float64), loo_means[has_peer]),
        tv_distance=tv,
        wasserstein=w1,
        nn_distance_fake=nn_fake,
        nn_distance_real=nn_real,
        profile_size_fake=float(per_fake.mean()) if fake.n_fake_users else 0.0,
        profile_size_real=float(real.user_counts.mean()) if real.n_users else 0.0,
        rating_hist_fake=h_fake.tolist(),
        rating_hist_real=h_real.tolist(),
        grid=[float(g) for g in grid],
    )

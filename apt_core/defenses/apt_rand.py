"""APT-rand: the ablation of APT with uniformly chosen ERM items and unlifted ratings.

Paper: Wu et al., "Fight Fire with Fire: Towards Robust Recommender Systems via Adversarial
Poisoning Training", SIGIR 2021 (the "APT-rand" baseline of its experiments).

Threat model and budget as APT: the defender cannot tell fake users apart and adds n* ERM
users of m* items each, regenerated on APT's schedule (T_pre, T_inter).  n* is counted as in
APT: ``erm_users``, else round(``erm_fraction`` x real users), else the preset's count (``paper``: 50
on ML-100K and FilmTrust as in the authors' code, 5% elsewhere; ``lab-v1``: 5%).  The preset
also sets FilmTrust's T_pre (4 / 5) and the spread of items rated once (0 / global std).  Each ERM user rates m* items drawn uniformly without replacement, with
ratings ~ N(mean_j, std_j) rounded to the grid (no influence, no r⁺).  It shows how much of
APT's effect comes from the influence-guided choice of items rather than from extra data.
"""
from __future__ import annotations

import numpy as np

from apt_core.defenses.erm_batch import fit_erm_batch
from apt_core.defenses.erm import ERM_PARAMS, ERMBatch, ERMTraining, RoundState, draw_ratings, sample_without_replacement


class APTRand(ERMTraining):
    """APT's schedule with uniformly random ERM items (ablation of Wu et al., SIGIR 2021)."""

    name = "apt-rand"
    summary = "APT's schedule, ERM users rate uniformly random items, ratings ~ N(item mean, item std) (ablation)"
    paper = "Wu et al., SIGIR 2021 (ablation)"
    threat_model = "observed data only (erm_stats=clean: the authors' oracle)"
    # No temperature and no r+: items are uniform and ratings unlifted by definition.
    params = tuple(p for p in ERM_PARAMS if p.name not in ("t", "r_plus"))

    def __init__(
        self,
        erm_fraction: float | None = None,
        erm_stats: str = "observed",
        t_pre: int | None = None,
        t_inter: int | None = None,
        m_star: int | None = None,
        erm_users: int | None = None,
        preset: str = "paper",
        single_rating_std: str | None = None,
        detector: str = "cogroup",
    ):
        self._set_declared(locals())

    batched = True

    @classmethod
    def fit_many(cls, jobs):
        """The jobs in one MF batch (:func:`apt_core.defenses.erm_batch.fit_erm_batch`); the same results as one by one."""
        return fit_erm_batch(jobs)

    def _generate(self, state: RoundState) -> ERMBatch:
        train, s = state.train, state.settings
        cols = sample_without_replacement(np.zeros(train.n_items), state.n_erm, s.m_star, state.rng)
        items = cols.ravel()
        users = np.repeat(np.arange(state.n_erm), cols.shape[1])
        ratings = draw_ratings(items, state.means, state.stds, 0.0, train, state.rng)
        return ERMBatch(users, items, ratings, {})

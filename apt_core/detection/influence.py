"""Influence on the empirical risk (ours, from APT's influence machinery).

APT (Wu et al., SIGIR 2021, Eq. 4) asks how up-weighting a training point changes the
empirical risk ``L_ER`` of the fitted model.  Asked about a whole user: fit plain MF on the
observed data, then ``I_u = -grad L_ER . grad L_u`` (identity Hessian, APT's default
solver: ``H^-1`` ~ a multiple of the identity for the authors' LiSSA, see
:mod:`apt_core.defenses.apt`), where ``L_u`` is u's own squared error.  A user whose
up-weighting *raises* the risk of everyone else pulls the model away from the data:
suspicion = ``I_u`` per rating of u (``normalise=True``) or summed.

Threat model: unsupervised; trains MF (``epochs``, seeded by ``random_state``) on the
observed ratings.
"""
from __future__ import annotations

import numpy as np
import torch

from apt_core.data.dataset import Interactions
from apt_core.detection.base import Detector, Param


class RiskInfluence(Detector):
    name = "influence"
    summary = "how much up-weighting a user raises everyone's empirical risk (ours, APT's influence)"

    params = Detector.params + (
        Param("epochs", int, 25, "epochs of the MF fit the influence is taken at", low=1, high=1000),
        Param("normalise", bool, True, "divide each user's influence by the number of ratings"),
    )

    def __init__(self, epochs: int = 25, normalise: bool = True, cut: str = "gap") -> None:
        self._set_declared(locals())

    def _scores(self, data: Interactions, random_state: int = 0) -> np.ndarray:
        from apt_core.influence.mf import er_gradient
        from apt_core.models.mf import MFConfig, fit_mf

        model = fit_mf(data, MFConfig(epochs=self.epochs), "cpu", int(random_state))
        P, Q = model.P.detach(), model.Q.detach()
        users = torch.from_numpy(data.users)
        items = torch.from_numpy(data.items)
        ratings = torch.from_numpy(data.normalised_ratings)
        gP, gQ = er_gradient(P, Q, users, items, ratings)
        with torch.no_grad():
            pu, qi = P.index_select(0, users), Q.index_select(0, items)
            err = (pu * qi).sum(1) - ratings
            per_rating = 2 * err * ((gP.index_select(0, users) * qi).sum(1) + (pu * gQ.index_select(0, items)).sum(1))
        # d L_ER / d eps when u's loss is up-weighted by eps is -grad L_ER . grad L_u.
        infl = -np.bincount(data.users, weights=per_rating.double().numpy(), minlength=data.n_users)
        if self.normalise:
            infl = infl / np.maximum(data.user_counts, 1)
        return infl

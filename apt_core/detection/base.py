"""The contract every shilling detector honours (docs/detection.md).

A detector is configured in ``__init__`` (hyper-parameters only) and :meth:`Detector.scores`
maps the observed training data -- real and injected users alike, which it cannot tell
apart -- to one suspicion score per user (higher = more suspicious).  Detectors are
unsupervised: ``Interactions.n_real_users`` is never read (the evaluation reads it, in
:mod:`apt_core.detection.metrics`).  :meth:`Detector.detect` adds the cut: which users the
method flags, decided from the scores alone (:mod:`apt_core.detection.cuts`), never from
the attack's size.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from apt_core.data.dataset import Interactions, RatingData
from apt_core.detection.cuts import CUTS
from apt_core.errors import ConfigError
from apt_core.params import Configurable, Param  # noqa: F401 -- Param re-exported for detector modules


@dataclass
class DetectionResult:
    """Suspicion per user, the flagged users and how the cut was made."""

    detector: str
    scores: np.ndarray
    flagged: np.ndarray  # bool per user
    threshold: float | None
    cut: str
    extra: dict = field(default_factory=dict)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())


def as_interactions(data: Interactions | RatingData) -> Interactions:
    """Accept a loaded data set or a training matrix; strip the real/injected labels.

    The copy's ``n_real_users`` equals its ``n_users``: a detector must not be able to read
    which rows were injected, even by accident.
    """
    inter = data.interactions if isinstance(data, RatingData) else data
    if not isinstance(inter, Interactions):
        raise ConfigError(f"a detector needs rating data, got {type(data).__name__}")
    return Interactions(inter.users, inter.items, inter.ratings, inter.n_users, inter.n_items, inter.scale)


class Detector(Configurable, ABC):
    """Base class: subclasses set ``name``/``summary``, declare ``params`` and implement :meth:`_scores`.

    Parameters are declared once (:mod:`apt_core.params`), as for attacks and defenses: a
    subclass extends ``Detector.params`` (the cut) and calls ``self._set_declared(locals())``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params = (Param("cut", str, "gap", "how scores become flags: gap (largest gap), mad (robust z > 3.5), none (flag nobody)", choices=CUTS),)

    def __init__(self, cut: str = "gap") -> None:
        self._set_declared(locals())

    @abstractmethod
    def _scores(self, data: Interactions) -> np.ndarray:
        """Suspicion per user.  A detector that draws random numbers declares a second argument,
        ``_scores(self, data, random_state)``, and receives the seed there (never on ``self``:
        one detector object may score two data sets from two threads at once)."""

    def scores(self, data: Interactions | RatingData, random_state: int = 0) -> np.ndarray:
        """Suspicion per user (length ``n_users``; higher = more suspicious), finite."""
        inter = as_interactions(data)
        if "random_state" in inspect.signature(self._scores).parameters:
            raw = self._scores(inter, random_state=int(random_state))
        else:
            raw = self._scores(inter)
        s = np.asarray(raw, dtype=np.float64)
        if s.shape != (inter.n_users,):
            raise AssertionError(f"{self.name}: returned {s.shape} scores for {inter.n_users} users")
        # Users without ratings (or undefined statistics) are the least suspicious.
        finite = np.isfinite(s)
        if not finite.all():
            s = np.where(finite, s, np.min(s[finite]) if finite.any() else 0.0)
        return s

    def detect(self, data: Interactions | RatingData, random_state: int = 0) -> DetectionResult:
        from apt_core.detection.cuts import apply_cut

        s = self.scores(data, random_state)
        flagged, threshold, extra = apply_cut(s, self.cut)
        return DetectionResult(self.name, s, flagged, threshold, self.cut, extra)


def rating_matrix(data: Interactions):
    """Sparse CSR users x items of raw ratings (0 = unrated)."""
    import scipy.sparse as sp

    return sp.csr_matrix((data.ratings.astype(np.float64), (data.users, data.items)), shape=(data.n_users, data.n_items))

"""The contract every defense honours (docs/algorithms.md, "Defenses").

A defense is a way to train a recommender on data that may be poisoned.  It is configured in
``__init__`` (hyper-parameters only) and :meth:`Defense.fit` takes the observed training data
(real users ``0..n_real_users-1`` followed by any injected users) plus a
:class:`DefenseContext`, and returns a :class:`DefenseResult` whose model scores the real
users.  Defenses never learn which users are fake: ``n_real_users`` only tells them which
rows the evaluation will read, exactly as a deployed recommender knows its own user ids.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import torch

from apt_core.data.dataset import Interactions
from apt_core.models.mf import MFConfig
from apt_core.params import Configurable, Param  # noqa: F401 -- Param re-exported for defense modules

ProgressFn = Callable[[float, str], object]


@dataclass
class DefenseContext:
    """What a defense may know besides the observed data.

    ``clean_train`` is the training data before poisoning: only APT's ``erm_stats="clean"``
    (the authors' oracle setting) may read it.  ``dataset`` selects per-data-set
    hyper-parameters (the schedule table of docs/algorithms.md).
    """

    mf_config: MFConfig = field(default_factory=MFConfig)
    device: torch.device | str = "cpu"
    random_state: int = 0
    dataset: str = ""
    clean_train: Interactions | None = None
    progress: ProgressFn | None = None
    #: the victim model: None = MF (``mf_config``), else a
    #: :class:`apt_core.models.victims.VictimConfig` (LightGCN, NeuMF); see ``make_trainer``
    victim: object | None = None
    #: ``(detector, data, seed) -> DetectionResult`` through the artifact cache, set by the
    #: experiment layer (None: detect directly); see :meth:`detect`
    detect_with: Callable | None = None
    #: plain-MF states shared by the batches of one batched fill
    #: (:class:`apt_core.models.mf_batch.PretrainStore`; None: each batch trains its own prefix)
    pretrained: object | None = None

    def detect(self, detector, data: Interactions):
        """``detector.detect(data, random_state)``, read from the artifact cache when the run has one:
        a detection depends only on the data, the detector and the seed, and the classroom grid
        fits the same poisoned data with many ERM settings."""
        if self.detect_with is not None:
            return self.detect_with(detector, data, self.random_state)
        return detector.detect(data, self.random_state)

    def real_user_count(self, train: Interactions) -> int:
        """The service's own user count, the base of a defense's budget (APT's n*).

        The clean training data's users when the context has them (the accounts before the
        attack: the count does not depend on labels in the observed data, so a defense still
        cannot tell which of its accounts are fake), else the observed data's ``n_real_users``."""
        if self.clean_train is not None:
            return int(self.clean_train.n_users)
        return int(train.n_real_users)

    def __post_init__(self) -> None:
        # The defenses' schedules count epochs in mf_config; a victim's own count wins.
        epochs = getattr(self.victim, "epochs", None)
        if epochs is not None and epochs != self.mf_config.epochs:
            self.mf_config = self.mf_config.with_(epochs=int(epochs))


@dataclass
class DefenseResult:
    """A fitted recommender plus what the defense did (for the dashboard and reports)."""

    model: object
    diagnostics: dict = field(default_factory=dict)


class Defense(Configurable, ABC):
    """Base class of every defense: set ``name``, declare ``params`` (:class:`~apt_core.params.Param`), implement :meth:`fit`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: the paper (authors, venue, year) and what the defender knows, for the README table
    paper: ClassVar[str] = ""
    threat_model: ClassVar[str] = ""
    #: what to change when the fit diverges (NaN/inf loss, factors or scores); shown after the
    #: :class:`~apt_core.errors.DivergedError` that names the phase.
    divergence_hint: ClassVar[str] = "lower the MF learning rate"

    @abstractmethod
    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        ...

    #: whether :meth:`fit_many` trains its jobs in one batch (issue 22); False: one by one
    batched: ClassVar[bool] = False

    @classmethod
    def fit_many(cls, jobs: Sequence[tuple["Defense", Interactions, DefenseContext]]) -> list[DefenseResult]:
        """``[defense.fit(train, context) for defense, train, context in jobs]``, every defense of this class.

        A defense whose fits can share tensor operations (MF and its variants: stacked factors,
        :mod:`apt_core.models.mf_batch`) overrides this with a batched fit that gives each job the
        result of its own ``fit`` (its seed, data, epochs); the default is the one-by-one loop.
        Progress and cancelling go through the first job's context."""
        return [defense.fit(train, context) for defense, train, context in jobs]

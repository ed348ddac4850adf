"""Detect and remove: drop every rating of the users a shilling detector flags, then train
plain MF, or the context's other victim (a detect-and-remove baseline; detectors: :mod:`apt_core.detection`).

One defense per detector, named ``remove-<detector>`` (``remove-cogroup``, ``remove-rdma``,
...), derived from the detector registry whenever the defense registry is read: a detector
registered after import has its ``remove-`` defense at once.  Threat model: the defender sees only the observed data; the detector
decides from it how many users to flag (``cut``, default the gap rule of
:mod:`apt_core.detection.cuts`).  Budget: none added; the cost is the real users it flags,
whose ratings are dropped.  The model is trained on the kept users only (renumbered: the
dropped accounts take no rows), then every dropped user id gets the mean user factor, i.e.
an average user's recommendations.  Diagnostics: the flagged user ids, the suspicion
scores, the detector and its cut.
"""
from __future__ import annotations

import functools
from typing import ClassVar

from apt_core.data.dataset import Interactions
from apt_core.defenses.base import Defense, DefenseContext, DefenseResult, Param
from apt_core.defenses.erm import compact_users, detection_diagnostics, expand_users
from apt_core.detection.cuts import CUTS
from apt_core.errors import CancelledError
from apt_core.models.victims import make_trainer


class RemoveSuspects(Defense):
    """Drop the flagged users' ratings, then plain MF.  Subclassed once per detector."""

    name = "remove"
    summary = "drop the users a detector flags, then plain MF"
    detector_name: ClassVar[str] = "cogroup"
    paper = "detect and remove (the detector's paper: `python -m apt_core detect`)"
    threat_model = "observed data only; the detector decides how many users to flag"
    params = (Param("cut", str, "gap", "how the detector's scores become flags (apt_core.detection.cuts)", choices=CUTS),)

    def __init__(self, cut: str = "gap") -> None:
        self._set_declared(locals())

    def code_entries(self) -> tuple[type, ...]:
        """The detector class this defense runs by name: its code belongs in the model's cache key."""
        from apt_core.detection import DETECTORS

        return (DETECTORS[self.detector_name],) if self.detector_name in DETECTORS else ()

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        from apt_core.detection import make_detector

        detection = context.detect(make_detector(self.detector_name, cut=self.cut), train)
        kept, kept_ids = compact_users(train, detection.flagged)
        cfg = context.mf_config
        # The context's victim (MF, LightGCN, NeuMF) trained on the kept users.
        trainer = make_trainer(kept.n_users, train.n_items, context)
        tensors = trainer.tensors(kept)
        for epoch in range(cfg.epochs):
            trainer.train_epochs(*tensors, 1)
            if context.progress is not None and context.progress((epoch + 1) / max(1, cfg.epochs), f"{self.name}: epoch {epoch + 1}/{cfg.epochs}") is False:
                raise CancelledError("training cancelled")
        diagnostics = {"defense": self.name, "final_loss": trainer.last_loss, "ratings_removed": int(len(train) - len(kept)),
                       **detection_diagnostics(detection)}
        return DefenseResult(expand_users(trainer.model(), kept_ids, train.n_users), diagnostics)


@functools.lru_cache(maxsize=None)
def remove_defense_for(detector: str, summary: str) -> type[RemoveSuspects]:
    """The ``remove-<detector>`` class (a subclass with its own name); one class per detector,
    built the first time the defense registry is read after the detector was registered."""
    cls_name = "Remove" + "".join(p.capitalize() for p in detector.split("-"))
    return type(cls_name, (RemoveSuspects,), {
        "__doc__": f"Drop the users the {detector} detector flags, then plain MF.",
        "name": f"remove-{detector}", "detector_name": detector,
        "summary": f"drop users flagged by {detector} ({summary}), then plain MF", "__module__": __name__,
    })

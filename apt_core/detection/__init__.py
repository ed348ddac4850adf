"""Shilling detectors: one file each, one interface (:class:`Detector`), registered in :data:`DETECTORS`.

``make_detector(name).scores(data)`` -> suspicion per user (higher = more suspicious);
``.detect(data)`` adds the data-driven cut (:mod:`apt_core.detection.cuts`).  Detection
metrics live in :mod:`apt_core.detection.metrics` (the evaluation, not the detector, knows
which users are fake).
"""
from __future__ import annotations

from apt_core.detection.base import DetectionResult, Detector
from apt_core.detection.cogroup import CoGroup
from apt_core.detection.degsim import DegSim
from apt_core.detection.influence import RiskInfluence
from apt_core.detection.lengthvar import LengthVar
from apt_core.detection.pca import PCASelectUsers
from apt_core.detection.rdma import RDMA
from apt_core.detection.wdma import WDMA
from apt_core.registry import Registry

#: name -> detector class (the same registry mechanism as attacks and defenses)
DETECTORS: Registry = Registry("detector")
for _cls in (CoGroup, RDMA, WDMA, DegSim, LengthVar, PCASelectUsers, RiskInfluence):
    DETECTORS.register(_cls)


def register(cls: type[Detector]) -> type[Detector]:
    """Add a detector class; an empty or taken name is refused.  Its ``remove-<name>`` defense
    and its use as APT's ``detector`` follow at once (those registries are read when used)."""
    return DETECTORS.register(cls)


def detector_names() -> list[str]:
    return DETECTORS.names()


def make_detector(name: str, **params) -> Detector:
    return DETECTORS.make(name, **params)


__all__ = ["Detector", "DetectionResult", "DETECTORS", "detector_names", "make_detector"]

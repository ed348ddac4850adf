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
from apt_core.errors import ConfigError
from apt_core.registry import instantiate

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (CoGroup, RDMA, WDMA, DegSim, LengthVar, PCASelectUsers, RiskInfluence)
}


def detector_names() -> list[str]:
    return list(DETECTORS)


def make_detector(name: str, **params) -> Detector:
    key = name.strip().lower()
    if key not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}: choose one of {', '.join(detector_names())}")
    return instantiate("detector", key, DETECTORS[key], params)


__all__ = ["Detector", "DetectionResult", "DETECTORS", "detector_names", "make_detector"]

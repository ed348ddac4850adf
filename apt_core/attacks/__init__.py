"""Poisoning attacks: one file per attack, all registered in :data:`ATTACKS`."""
from __future__ import annotations

from apt_core.attacks.adaptive import AdaptiveAttack
from apt_core.attacks.aush import AUSHAttack
from apt_core.attacks.average import AverageAttack
from apt_core.attacks.bandwagon import BandwagonAttack
from apt_core.attacks.bpr_surrogate import BPRSurrogateAttack
from apt_core.attacks.base import Attack, FakeProfiles
from apt_core.attacks.pga import PGAAttack
from apt_core.attacks.popular_filler import PopularFillerAttack
from apt_core.attacks.random import RandomAttack
from apt_core.attacks.segment import SegmentAttack
from apt_core.attacks.subset import SubsetAttack
from apt_core.attacks.tna import TNAAttack
from apt_core.registry import Registry

#: name -> attack class, in the order of the paper's Table 2 (Bandwagon is our extra), then
#: Segment from the literature and the adaptive attacks of docs/detection.md, then the implicit-feedback attacks of docs/victims.md;
#: ``none`` (no attack) is handled by the experiment runner, so no class may take that name.
ATTACKS: Registry = Registry("attack", reserved=("none",))
for _cls in (AverageAttack, RandomAttack, AUSHAttack, PGAAttack, TNAAttack, BandwagonAttack, SegmentAttack, SubsetAttack, AdaptiveAttack,
             PopularFillerAttack, BPRSurrogateAttack):
    ATTACKS.register(_cls)


def register(cls: type[Attack]) -> type[Attack]:
    """Add a user-defined attack class (plug-ins, notebooks); an empty or taken name is refused."""
    return ATTACKS.register(cls)


def attack_names() -> list[str]:
    return ATTACKS.names()


def make_attack(name: str, **params) -> Attack:
    return ATTACKS.make(name, **params)


__all__ = ["Attack", "FakeProfiles", "ATTACKS", "attack_names", "make_attack", "register",
           "AverageAttack", "RandomAttack", "BandwagonAttack", "PGAAttack", "TNAAttack", "AUSHAttack",
           "SegmentAttack", "SubsetAttack", "AdaptiveAttack", "PopularFillerAttack", "BPRSurrogateAttack"]

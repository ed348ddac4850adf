"""Poisoning attacks: one file per attack, all registered in :data:`ATTACKS`."""
from __future__ import annotations

from apt_core.attacks.aush import AUSHAttack
from apt_core.attacks.average import AverageAttack
from apt_core.attacks.bandwagon import BandwagonAttack
from apt_core.attacks.base import Attack, FakeProfiles
from apt_core.attacks.pga import PGAAttack
from apt_core.attacks.random import RandomAttack
from apt_core.attacks.tna import TNAAttack
from apt_core.errors import ConfigError
from apt_core.registry import instantiate

#: name -> attack class, in the order of the paper's Table 2 (Bandwagon is our extra);
#: ``none`` (no attack) is handled by the experiment runner.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (AverageAttack, RandomAttack, AUSHAttack, PGAAttack, TNAAttack, BandwagonAttack)
}


def register(cls: type[Attack]) -> type[Attack]:
    """Add a user-defined attack class (plug-ins, notebooks)."""
    ATTACKS[cls.name] = cls
    return cls


def attack_names() -> list[str]:
    return ["none", *ATTACKS]


def make_attack(name: str, **params) -> Attack:
    key = name.strip().lower()
    if key not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}: choose one of {', '.join(attack_names())}")
    return instantiate("attack", key, ATTACKS[key], params)


__all__ = ["Attack", "FakeProfiles", "ATTACKS", "attack_names", "make_attack", "register",
           "AverageAttack", "RandomAttack", "BandwagonAttack", "PGAAttack", "TNAAttack", "AUSHAttack"]

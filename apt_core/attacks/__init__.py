"""Poisoning attacks: one file per attack, all registered in :data:`ATTACKS`."""
from __future__ import annotations

from apt_core.attacks.base import Attack, FakeProfiles
from apt_core.errors import ConfigError

#: name -> attack class; ``none`` (no attack) is handled by the experiment runner.
ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    ATTACKS[cls.name] = cls
    return cls


def attack_names() -> list[str]:
    return ["none", *ATTACKS]


def make_attack(name: str, **params) -> Attack:
    key = name.strip().lower()
    if key not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}: choose one of {', '.join(attack_names())}")
    return ATTACKS[key](**params)


__all__ = ["Attack", "FakeProfiles", "ATTACKS", "attack_names", "make_attack", "register"]

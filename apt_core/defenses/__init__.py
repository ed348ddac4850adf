"""Defenses: training strategies that return a fitted recommender; registered in :data:`DEFENSES`."""
from __future__ import annotations

from apt_core.defenses.base import Defense, DefenseContext, DefenseResult
from apt_core.defenses.none import NoDefense
from apt_core.errors import ConfigError

DEFENSES: dict[str, type[Defense]] = {NoDefense.name: NoDefense}


def register(cls: type[Defense]) -> type[Defense]:
    DEFENSES[cls.name] = cls
    return cls


def defense_names() -> list[str]:
    return list(DEFENSES)


def make_defense(name: str, **params) -> Defense:
    key = name.strip().lower()
    if key not in DEFENSES:
        raise ConfigError(f"unknown defense {name!r}: choose one of {', '.join(defense_names())}")
    return DEFENSES[key](**params)


__all__ = ["Defense", "DefenseContext", "DefenseResult", "DEFENSES", "defense_names", "make_defense", "register"]

"""Defenses: training strategies that return a fitted recommender; registered in :data:`DEFENSES`."""
from __future__ import annotations

from apt_core.defenses.base import Defense, DefenseContext, DefenseResult
from apt_core.defenses.none import NoDefense
from apt_core.registry import Registry


def _remove_defenses() -> dict[str, type]:
    """One ``remove-<detector>`` defense per detector registered *now* (read at each use, so a
    detector registered after import has its defense too)."""
    from apt_core.defenses.remove import remove_defense_for
    from apt_core.detection import DETECTORS

    return {f"remove-{name}": remove_defense_for(name, det.summary) for name, det in DETECTORS.items()}


DEFENSES: Registry = Registry("defense", derived=_remove_defenses)
DEFENSES.register(NoDefense)


def register(cls: type[Defense]) -> type[Defense]:
    """Add a defense class (plug-ins, notebooks); an empty or taken name is refused."""
    return DEFENSES.register(cls)


# Imported after register() exists; each module only defines its class.
from apt_core.defenses.at import AdversarialTraining  # noqa: E402
from apt_core.defenses.pcmf import PCMF  # noqa: E402
from apt_core.defenses.apt_rand import APTRand  # noqa: E402
from apt_core.defenses.apt import APT  # noqa: E402
from apt_core.defenses.apt_trusted import APTTrusted  # noqa: E402
from apt_core.defenses.tcd import TCD  # noqa: E402
from apt_core.defenses.apt_robust import APTRobust  # noqa: E402

for _cls in (AdversarialTraining, PCMF, APTRand, APT, APTTrusted, TCD, APTRobust):
    register(_cls)


def defense_names() -> list[str]:
    return DEFENSES.names()


def make_defense(name: str, **params) -> Defense:
    return DEFENSES.make(name, **params)


__all__ = ["Defense", "DefenseContext", "DefenseResult", "DEFENSES", "defense_names", "make_defense", "register"]

"""The classroom grid: every result the dashboard's live controls can reach, computed once.

On a small data set a class moves sliders and expects the figures to follow at once.  The
controls in live mode snap to a coarse grid (:class:`GridSpec`: attacks x attack sizes x
defenses x ERM shares x item statistics, one seed); :func:`build_grid` fits every point of
it once through :func:`apt_core.experiments.pipeline.run_scenario` with the artifact cache, one
defense at a time (origin and attack models are shared by all defenses; AT and PCMF do not
depend on the ERM settings, so they are fitted once per attack).  Afterwards any combination
of the grid's values is answered by ``run_scenario(..., cache_only=True)`` in milliseconds.

Nothing here imports Streamlit: the dashboard runs :func:`build_grid` in a background thread
and the benchmark script calls it directly.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from apt_core.attacks import attack_names
from apt_core.defenses import defense_names
from apt_core.errors import CancelledError
from apt_core.experiments.plan import erm_fields
from apt_core.experiments.scenario import Scenario

ProgressFn = Callable[[float, str], object]


@dataclass(frozen=True)
class GridSpec:
    """The values the live controls snap to (the defaults are the classroom's grid)."""

    attacks: tuple[str, ...] = ("average", "random", "bandwagon")
    sizes: tuple[float, ...] = (0.01, 0.03, 0.05, 0.10)
    defenses: tuple[str, ...] = ("apt", "at", "pcmf", "apt-rand")
    erm_fractions: tuple[float, ...] = (0.02, 0.05, 0.10, 0.20)
    erm_stats: tuple[str, ...] = ("observed", "clean", "trusted")

    def available(self) -> "GridSpec":
        """The same grid restricted to the attacks and defenses registered now."""
        return dataclasses.replace(
            self,
            attacks=tuple(a for a in self.attacks if a in attack_names()),
            defenses=tuple(d for d in self.defenses if d in defense_names()),
        )


def nearest(values: tuple[float, ...], value: float) -> float:
    """The grid value closest to ``value`` (a URL or an old session may hold an off-grid one)."""
    return min(values, key=lambda v: abs(v - value))


def grid_scenarios(base: Scenario, spec: GridSpec = GridSpec()) -> list[Scenario]:
    """Single-defense scenarios covering the grid; ``base`` gives data set, targets, seed, K...

    The base scenario's own point comes first, then its neighbours, so the view a class sees
    first is ready first.
    """
    out: list[Scenario] = []
    seen: set = set()

    def add(sc: Scenario) -> None:
        key = (sc.attack, sc.attack_size, sc.defenses, sc.erm_fraction, sc.erm_stats)
        if key not in seen:
            seen.add(key)
            out.append(sc)

    attacks = sorted(spec.attacks, key=lambda a: a != base.attack)
    sizes = sorted(spec.sizes, key=lambda s: abs(s - base.attack_size))
    for attack in attacks:
        for size in sizes:
            for defense in spec.defenses:
                # A defense's ERM axes are the ERM settings it declares (APT, APT-rand: share and
                # statistics; APT-trusted: the share); the others get one point.
                reads = erm_fields(defense)
                if reads:
                    stats = sorted(spec.erm_stats, key=lambda s: s != base.erm_stats) if "erm_stats" in reads else [base.erm_stats]
                    erms = sorted(spec.erm_fractions, key=lambda e: abs(e - (base.erm_fraction or 0.05)))
                    if "erm_fraction" not in reads:
                        erms = [base.erm_fraction]
                    for st in stats:
                        for erm in erms:
                            add(dataclasses.replace(base, attack=attack, attack_size=size, defenses=(defense,), erm_fraction=erm,
                                                    erm_stats=st, erm_users=None, seeds=1))
                else:
                    add(dataclasses.replace(base, attack=attack, attack_size=size, defenses=(defense,), seeds=1))
    return out


def is_cached(scenario: Scenario, cache, data=None) -> bool:
    """Whether ``scenario`` is answered from the cache alone (no training)."""
    from apt_core.experiments.engine import fully_cached

    return fully_cached(scenario, cache, data)


@dataclass
class GridReport:
    """What :func:`build_grid` did: points, how many were already cached, seconds."""

    n_points: int
    n_cached: int
    seconds: float


def build_grid(scenarios: list[Scenario], cache, progress: ProgressFn | None = None, data=None) -> GridReport:
    """Fit every scenario once into ``cache``; ``progress(fraction, text)`` returning False cancels."""
    from apt_core.experiments.pipeline import run_scenario

    t0 = time.perf_counter()
    n_cached = 0
    for i, sc in enumerate(scenarios):
        if progress is not None and progress(i / max(1, len(scenarios)), f"point {i + 1} of {len(scenarios)}") is False:
            raise CancelledError("grid build cancelled")
        if is_cached(sc, cache, data):
            n_cached += 1
            continue
        # The same callback inside the fit, so a cancel (or the server shutting down) stops a
        # build within one epoch instead of after the point's whole fit.
        point_progress = None
        if progress is not None:
            def point_progress(fraction: float, text: str, _i: int = i) -> object:
                return progress((_i + fraction) / max(1, len(scenarios)), f"point {_i + 1} of {len(scenarios)}: {text}")
        run_scenario(sc, progress=point_progress, cache=cache, data=data)
    if progress is not None:
        progress(1.0, f"{len(scenarios)} points ready")
    return GridReport(len(scenarios), n_cached, time.perf_counter() - t0)


def estimate_seconds(scenarios: list[Scenario], seconds_per_fit: float) -> float:
    """A rough time for :func:`build_grid`: one model fit per point (plus one per attack setting)."""
    attack_points = {(s.attack, s.attack_size) for s in scenarios}
    return seconds_per_fit * (len(scenarios) + len(attack_points))

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


def classroom_base(dataset: str = "sample", data_dir: str | None = None, seed: int = 0, device: str = "auto") -> Scenario:
    """The scenario the classroom grid varies: the Defense page's defaults (the Average attack on
    unpopular targets, 3% fake users, APT with 5% ERM users).  The dashboard and ``python -m
    apt_core grid`` both start from it, so a grid built on the command line before class is the
    one the pages read."""
    return Scenario(dataset=dataset, data_dir=data_dir, attack="average", attack_size=0.03, targets="unpopular",
                    defenses=("apt",), erm_fraction=0.05, seed=seed, device=device)


#: how the progress line names a defense
DEFENSE_WORDS = {"apt": "APT", "at": "AT", "pcmf": "PCMF", "apt-rand": "APT-rand", "apt-trusted": "APT-trusted", "none": "no defense"}


def point_words(scenario: Scenario) -> str:
    """One grid position in words: ``Average attack on 3%, APT (5% ERM users, observed statistics)``."""
    defense = scenario.defenses[0] if scenario.defenses else "none"
    words = f"{scenario.attack.capitalize()} attack on {scenario.attack_size:.0%}, {DEFENSE_WORDS.get(defense, defense)}"
    reads = erm_fields(defense)
    details = []
    if "erm_fraction" in reads and scenario.erm_fraction is not None:
        details.append(f"{scenario.erm_fraction:.0%} ERM users")
    if "erm_stats" in reads:
        details.append(f"{scenario.erm_stats} statistics")
    return words + (f" ({', '.join(details)})" if details else "")


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
    n = len(scenarios)
    batched: set[int] = set()
    for i, sc in enumerate(scenarios):
        if i == 1 and cache is not None:
            # The first position (the view a class sees first) is ready; every other one's fits
            # now train in batches (apt_core.experiments.batching), the loop then reads them.
            batched = _fill_in_batches(scenarios[1:], cache, progress, data, n)
        # The text names the position in words; the stage inside it ("seed 0: defense pcmf: epoch
        # 21/25") moves only the bar.
        words = f"position {i + 1} of {n}: {point_words(sc)}"
        if progress is not None and progress(i / max(1, n), words) is False:
            raise CancelledError("grid build cancelled")
        if is_cached(sc, cache, data):
            n_cached += i not in batched
            continue
        # The same callback inside the fit, so a cancel (or the server shutting down) stops a
        # build within one epoch instead of after the point's whole fit.
        point_progress = None
        if progress is not None:
            def point_progress(fraction: float, text: str, _i: int = i, _words: str = words) -> object:
                return progress((_i + fraction) / max(1, n), _words)
        run_scenario(sc, progress=point_progress, cache=cache, data=data)
    if progress is not None:
        progress(1.0, f"all {n} positions ready")
    return GridReport(len(scenarios), n_cached, time.perf_counter() - t0)


def _fill_in_batches(rest: list[Scenario], cache, progress: ProgressFn | None, data, n: int) -> set[int]:
    """Compute the fits of the positions ``rest`` (positions 2..n) in batches; their indices in the grid
    that were computed here (not already cached)."""
    from apt_core.experiments.batching import compute_units
    from apt_core.experiments.engine import plan_units

    todo = [i + 1 for i, sc in enumerate(rest) if not is_cached(sc, cache, data)]
    if not todo:
        return set()
    scaled = None
    if progress is not None:
        def scaled(fraction: float, text: str) -> object:
            # the positions, then what the batches are doing in words ("training 8 apt models together ...")
            return progress((1 + fraction * (n - 1)) / max(1, n), f"positions 2-{n} of {n}, in batches: {text}")
    compute_units(plan_units([(rest[i - 1], "") for i in todo]), cache, (lambda s: data) if data is not None else None, scaled)
    return set(todo)


def estimate_seconds(scenarios: list[Scenario], seconds_per_fit: float) -> float:
    """A rough time for :func:`build_grid`: one model fit per point (plus one per attack setting)."""
    attack_points = {(s.attack, s.attack_size) for s in scenarios}
    return seconds_per_fit * (len(scenarios) + len(attack_points))

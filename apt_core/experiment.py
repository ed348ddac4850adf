"""One scenario = data -> split -> targets -> clean fit -> attack -> defended fits -> metrics.

:class:`Scenario` is the whole description of an experiment (what the CLI's flags and the
dashboard's widgets set); :func:`run_scenario` runs it and returns a :class:`ScenarioResult`
whose :meth:`ScenarioResult.to_json` is the CLI's ``--json`` contract (DESIGN section 8).

Repetitions: the split and the target items depend on ``seed`` only, so every repetition
sees the same data and targets; repetition ``r`` uses ``seed + r`` for model initialisation,
the attack's randomness and the defenses' randomness.  Means and standard deviations are
over repetitions; RI is computed from the mean hit ratios.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from apt_core.attacks import attack_names, make_attack
from apt_core.attacks.base import FakeProfiles
from apt_core.data import leave_one_out, load_dataset, select_targets
from apt_core.data.dataset import RatingData
from apt_core.data.split import Split, attack_budget
from apt_core.defenses import DefenseContext, defense_names, make_defense
from apt_core.errors import CancelledError, ConfigError
from apt_core.metrics import Evaluation, evaluate, prediction_shift, rank_shift, robustness_improvement
from apt_core.models.mf import MFConfig
from apt_core.runtime import resolve_device

ProgressFn = Callable[[float, str], object]


@dataclass(frozen=True)
class Scenario:
    """Everything that determines an experiment's result."""

    dataset: str = "sample"
    data_dir: str | None = None
    attack: str = "none"
    attack_size: float = 0.03
    filler: int | None = None
    poison_file: str | None = None
    targets: str | tuple[int, ...] = "random"
    n_targets: int = 5
    defenses: tuple[str, ...] = ("none",)
    erm_fraction: float = 0.05
    erm_stats: str = "observed"
    k: int = 50
    epochs: int = 25
    seeds: int = 1
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if self.attack not in attack_names():
            raise ConfigError(f"unknown attack {self.attack!r}: choose one of {', '.join(attack_names())}")
        for name in self.defenses:
            if name not in defense_names():
                raise ConfigError(f"unknown defense {name!r}: choose one of {', '.join(defense_names())}")
        if not self.defenses:
            raise ConfigError("choose at least one defense (use 'none' for plain MF)")
        if len(set(self.defenses)) != len(self.defenses):
            raise ConfigError(f"a defense is listed twice: {', '.join(self.defenses)}")
        if not (0 < self.attack_size <= 1):
            raise ConfigError(f"--attack-size must lie in (0, 1], got {self.attack_size}")
        if not (0 <= self.erm_fraction <= 1):
            raise ConfigError(f"--erm-fraction must lie in [0, 1], got {self.erm_fraction}")
        if self.erm_stats not in ("observed", "clean"):
            raise ConfigError(f"--erm-stats must be 'observed' or 'clean', got {self.erm_stats!r}")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if self.n_targets < 1:
            raise ConfigError(f"--n-targets must be at least 1, got {self.n_targets}")
        if self.filler is not None and self.filler < 0:
            raise ConfigError(f"--filler must be non-negative, got {self.filler}")
        resolve_device(self.device)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["defenses"] = list(self.defenses)
        if isinstance(self.targets, tuple):
            out["targets"] = list(self.targets)
        return out


@dataclass
class PhaseResult:
    """One row of the result table: a phase (origin, attack or a defense) over all seeds."""

    phase: str
    target_hr: list[float] = field(default_factory=list)
    test_hr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    rank_shifts: list[np.ndarray] = field(default_factory=list)
    prediction_shift: list[float] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)

    @staticmethod
    def _mean(values: list[float]) -> float | None:
        vals = [v for v in values if v is not None and not np.isnan(v)]
        return float(np.mean(vals)) if vals else None

    @staticmethod
    def _sd(values: list[float]) -> float | None:
        vals = [v for v in values if v is not None and not np.isnan(v)]
        return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0 if vals else None

    def row(self, origin: "PhaseResult | None", attack: "PhaseResult | None") -> dict:
        shifts = np.concatenate(self.rank_shifts) if self.rank_shifts else np.zeros(0)
        ri = None
        if origin is not None and attack is not None and self.phase not in ("origin", "attack"):
            ri = robustness_improvement(self._mean(self.target_hr), self._mean(origin.target_hr), self._mean(attack.target_hr))
        return {
            "phase": self.phase,
            "target_hr": self._mean(self.target_hr),
            "target_hr_sd": self._sd(self.target_hr),
            "test_hr": self._mean(self.test_hr),
            "test_hr_sd": self._sd(self.test_hr),
            "ri": ri,
            "rank_shift_median": float(np.median(shifts)) if len(shifts) else None,
            "prediction_shift": self._mean(self.prediction_shift),
            "seconds": self._mean(self.seconds),
        }


@dataclass
class ScenarioResult:
    scenario: Scenario
    data: RatingData
    split: Split
    targets: np.ndarray
    phases: list[PhaseResult]
    fake_profiles: list[FakeProfiles | None]
    device: str

    def phase(self, name: str) -> PhaseResult:
        for p in self.phases:
            if p.phase == name:
                return p
        raise KeyError(name)

    def rows(self) -> list[dict]:
        origin = self.phase("origin")
        attack = self.phase("attack")
        return [p.row(origin, attack) for p in self.phases]

    def to_json(self) -> dict:
        return {
            "config": self.scenario.to_dict(),
            "dataset": {
                "name": self.data.name,
                "n_users": int(self.data.n_users),
                "n_items": int(self.data.n_items),
                "n_ratings": int(self.data.n_ratings),
            },
            "targets": [int(t) for t in self.targets],
            "target_ids": [_jsonable(self.data.item_ids[t]) for t in self.targets],
            "device": self.device,
            "rows": self.rows(),
        }


def _jsonable(value):
    return value.item() if hasattr(value, "item") else value


def _parse_targets(scenario: Scenario, data: RatingData, split: Split) -> np.ndarray:
    if isinstance(scenario.targets, str):
        return select_targets(split, scenario.targets, scenario.n_targets, scenario.seed)
    # Explicit ids are the data set's own item ids (as in its files).
    return select_targets(split, data.item_index(list(scenario.targets)))


def load_poison_file(path: str, split: Split) -> FakeProfiles:
    from apt_core.attacks import io as attack_io

    return attack_io.load_profiles(Path(path), split.train)


def run_scenario(scenario: Scenario, progress: ProgressFn | None = None) -> ScenarioResult:
    """Run a scenario end to end.  ``progress(fraction, stage)`` returning ``False`` cancels."""
    scenario.validate()
    device = resolve_device(scenario.device)

    def report(fraction: float, stage: str) -> None:
        if progress is not None and progress(min(1.0, fraction), stage) is False:
            raise CancelledError(f"cancelled during: {stage}")

    report(0.0, "loading data")
    data = load_dataset(scenario.dataset, scenario.data_dir)
    split = leave_one_out(data, scenario.seed)
    targets = _parse_targets(scenario, data, split)
    mf_config = MFConfig(epochs=scenario.epochs)
    budget = None
    if scenario.attack != "none" and scenario.poison_file is None:
        budget = attack_budget(split.train, scenario.attack_size, scenario.filler)

    phases = {"origin": PhaseResult("origin"), "attack": PhaseResult("attack")}
    for name in scenario.defenses:
        if name != "none":
            phases[name] = PhaseResult(name)
    if "none" in scenario.defenses:
        phases["none"] = PhaseResult("none")
    fakes: list[FakeProfiles | None] = []
    n_steps = scenario.seeds * (2 + len([d for d in scenario.defenses if d != "none"]) + (scenario.attack != "none"))
    step = 0

    def sub(stage: str):
        base = step / n_steps

        def inner(fraction: float, detail: str = "") -> object:
            report(base + fraction / n_steps, f"{stage}{': ' + detail if detail else ''}")
            return True

        return inner

    for rep in range(scenario.seeds):
        seed = scenario.seed + rep
        ctx = DefenseContext(mf_config, device, seed, data.name, split.train, None)

        # Clean model.
        t0 = time.perf_counter()
        ctx.progress = sub(f"seed {seed}: clean MF")
        clean = make_defense("none").fit(split.train, ctx)
        origin_eval = evaluate(clean.model, split, targets, scenario.k)
        _record(phases["origin"], origin_eval, origin_eval, time.perf_counter() - t0, {})
        step += 1

        # Attack.
        if scenario.poison_file is not None:
            fake = load_poison_file(scenario.poison_file, split)
        elif scenario.attack != "none":
            report(step / n_steps, f"seed {seed}: attack {scenario.attack}")
            attack = make_attack(scenario.attack)
            fake = attack.generate(split.train, targets, budget.n_fake_users, budget.n_filler, seed, device, sub(f"seed {seed}: attack {scenario.attack}"))
            step += 1
        else:
            fake = None
        fakes.append(fake)
        poisoned = fake.inject(split.train) if fake is not None else split.train

        # Poisoned, undefended.
        t0 = time.perf_counter()
        ctx.progress = sub(f"seed {seed}: MF on poisoned data")
        attacked = make_defense("none").fit(poisoned, ctx) if fake is not None else clean
        attack_eval = evaluate(attacked.model, split, targets, scenario.k) if fake is not None else origin_eval
        _record(phases["attack"], origin_eval, attack_eval, time.perf_counter() - t0, {})
        if "none" in phases:
            _record(phases["none"], origin_eval, attack_eval, phases["attack"].seconds[-1], {})
        step += 1

        for name in scenario.defenses:
            if name == "none":
                continue
            t0 = time.perf_counter()
            ctx.progress = sub(f"seed {seed}: defense {name}")
            defense = make_defense(name, **_defense_params(name, scenario))
            result = defense.fit(poisoned, ctx)
            ev = evaluate(result.model, split, targets, scenario.k)
            _record(phases[name], origin_eval, ev, time.perf_counter() - t0, result.diagnostics)
            step += 1
    report(1.0, "done")
    ordered = [phases["origin"], phases["attack"]] + [phases[n] for n in scenario.defenses]
    return ScenarioResult(scenario, data, split, targets, ordered, fakes, str(device))


def _defense_params(name: str, scenario: Scenario) -> dict:
    """Scenario-level settings a defense takes as hyper-parameters."""
    if name in ("apt", "apt-rand"):
        return {"erm_fraction": scenario.erm_fraction, "erm_stats": scenario.erm_stats}
    return {}


def _record(phase: PhaseResult, before: Evaluation, after: Evaluation, seconds: float, diagnostics: dict) -> None:
    phase.target_hr.append(after.target_hr)
    phase.test_hr.append(after.test_hr)
    phase.seconds.append(seconds)
    phase.rank_shifts.append(rank_shift(before, after))
    phase.prediction_shift.append(prediction_shift(before, after))
    phase.evaluations.append(after)
    phase.diagnostics.append(diagnostics)

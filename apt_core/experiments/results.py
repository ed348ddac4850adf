"""What a run returns: one :class:`PhaseResult` per phase and the :class:`ScenarioResult` around them.

:meth:`ScenarioResult.to_json` is the CLI's ``run --json`` object (docs/cli.md): ``config``,
``dataset``, ``targets`` and ``rows`` (``origin`` first, ``attack`` second, then one row per
defense, then the reference rows of :data:`REFERENCE_PHASES` last), plus extras.  Means and
standard deviations are over repetitions; RI is computed from the mean hit ratios, and only
where the attack lifted target HR beyond noise (:func:`apt_core.evaluation.metrics.ri_undefined_reason`;
``ri_undefined_reason`` says why not); every defended row says how far below the clean level it
pushed the targets (``below_clean``; RI above 1 is ``over_correction``).

Reference rows are yardsticks, not training methods under attack: ``popularity`` ranks items
by their number of ratings in the clean training data (no MF, no attack), the honest bar for
test HR.  They have no RI, rank shift or prediction shift, take no part in the significance
test, and are left out of ``per_seed`` (their numbers are the same for every seed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import RatingData
from apt_core.data.split import AttackBudget, Split
from apt_core.evaluation.metrics import Evaluation, RobustnessImprovement, assess_ri, lift_spread, ri_undefined_reason
from apt_core.experiments.scenario import Scenario

#: rows after the defenses that are yardsticks, not methods (no RI; never a significance baseline)
REFERENCE_PHASES = ("popularity",)


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
    from_cache: list[bool] = field(default_factory=list)
    #: per seed, for defenses that flag users (remove-*, apt-trusted): metrics of the flags
    detection: list[dict | None] = field(default_factory=list)

    @staticmethod
    def _mean(values: list[float]) -> float | None:
        vals = [v for v in values if v is not None and not np.isnan(v)]
        return float(np.mean(vals)) if vals else None

    @staticmethod
    def _sd(values: list[float]) -> float | None:
        vals = [v for v in values if v is not None and not np.isnan(v)]
        return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0 if vals else None

    @property
    def is_defense(self) -> bool:
        """A defended row (RI, lift and over-correction apply); origin, attack and reference rows are not."""
        return self.phase not in ("origin", "attack", *REFERENCE_PHASES)

    def row(self, origin: "PhaseResult | None", attack: "PhaseResult | None") -> dict:
        """The row of ``rows()``: the contract keys (docs/cli.md), then the RI explanation keys.

        ``ri`` follows the noise rule of :func:`~apt_core.evaluation.metrics.ri_undefined_reason`
        (mean hit ratios, the sd of the per-seed lifts); ``ri_undefined_reason`` says why it is
        null, ``below_clean``/``below_clean_share``/``over_correction`` how far a defended row
        pushed the targets below their clean level.
        """
        shifts = np.concatenate(self.rank_shifts) if self.rank_shifts else np.zeros(0)
        # Origin, attack and reference rows carry the same keys, null: nothing was defended there.
        extra = {"ri_undefined_reason": "not-a-defense", "ri_note": "",
                 **dict.fromkeys(("attack_lift", "attack_lift_sd", "below_clean", "below_clean_share", "over_correction"))}
        if origin is not None and attack is not None and self.is_defense:
            assessed = assess_ri(self._mean(self.target_hr), self._mean(origin.target_hr), self._mean(attack.target_hr),
                                 lift_spread(origin.target_hr, attack.target_hr))
            extra = assessed.to_row()
            ri = assessed.ri
        else:
            ri = None
        row = {
            "phase": self.phase,
            "target_hr": self._mean(self.target_hr),
            "target_hr_sd": self._sd(self.target_hr),
            "test_hr": self._mean(self.test_hr),
            "test_hr_sd": self._sd(self.test_hr),
            "ri": ri,
            "rank_shift_median": float(np.median(shifts)) if len(shifts) else None,
            "prediction_shift": self._mean(self.prediction_shift),
            "seconds": self._mean(self.seconds),
            **extra,
        }
        found = [d for d in self.detection if d]
        if found:
            # Means over seeds; the evaluation (not the defense) knows which users were fake.
            row["detection"] = {"detector": found[0].get("detector"), **{
                k: self._mean([d[k] for d in found if d.get(k) is not None])
                for k in ("auc", "average_precision", "precision", "recall", "f1", "n_flagged", "real_flagged", "real_flagged_fraction")
            }}
        return row


@dataclass
class ScenarioResult:
    scenario: Scenario
    data: RatingData
    split: Split
    targets: np.ndarray
    phases: list[PhaseResult]
    fake_profiles: list[FakeProfiles | None]
    device: str
    scenario_key: str = ""
    wall_seconds: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    #: seconds each seed's attack took to generate its profiles (original time when cached)
    attack_seconds: list = field(default_factory=list)
    #: with ``run_scenario(..., keep_models=True)``: per seed, phase name -> fitted model
    models: list = field(default_factory=list)
    #: fake users and filler items per fake user of a generated attack (None: no attack, or a poison file)
    budget: AttackBudget | None = None
    #: the reference rows (:data:`REFERENCE_PHASES`: popularity on the clean training data)
    references: list = field(default_factory=list)

    @property
    def all_phases(self) -> list[PhaseResult]:
        """``phases`` (origin, attack, the defenses) followed by the reference rows: what ``rows()`` reports."""
        return list(self.phases) + list(self.references)

    def phase(self, name: str) -> PhaseResult:
        for p in self.all_phases:
            if p.phase == name:
                return p
        raise KeyError(name)

    def rows(self) -> list[dict]:
        origin = self.phase("origin")
        attack = self.phase("attack")
        return [p.row(origin, attack) for p in self.all_phases]

    def per_phase(self, metric: str = "target_hr") -> dict[str, list[float]]:
        """Per-seed values of ``metric`` (``target_hr``, ``test_hr``, ``seconds``...) by phase."""
        return {p.phase: list(getattr(p, metric)) for p in self.phases}

    def significance(self, method: str = "apt", metric: str = "target_hr"):
        """Paired t-test of ``method`` against the best baseline (:mod:`apt_core.stats`); None if it did not run."""
        from apt_core.stats import significance

        return significance(self.per_phase(metric), method, metric)

    def per_seed_ri(self) -> list:
        """One :class:`~apt_core.evaluation.metrics.RobustnessImprovement` per phase and seed, in ``per_seed_metrics`` order.

        The same rule as the row's RI: a seed's RI needs that seed's own lift above the floor,
        and no seed has one when the lift over all seeds is within their spread (reason
        ``lift-within-noise`` for every seed).  Origin and attack get reason ``not-a-defense``.
        """
        origin, attack = self.phase("origin"), self.phase("attack")
        spread = lift_spread(origin.target_hr, attack.target_hr)
        scenario_reason = ri_undefined_reason(PhaseResult._mean(origin.target_hr), PhaseResult._mean(attack.target_hr), spread)
        out = []
        for p in self.phases:
            for r in range(len(p.target_hr)):
                if not p.is_defense:
                    out.append(RobustnessImprovement(None, "not-a-defense", None, None, None, None))
                    continue
                seed_ri = assess_ri(p.target_hr[r], origin.target_hr[r], attack.target_hr[r])
                if scenario_reason is not None and seed_ri.reason is None:
                    seed_ri = dataclasses.replace(seed_ri, ri=None, reason=scenario_reason)
                out.append(seed_ri)
        return out

    def per_seed_metrics(self) -> list[tuple]:
        """``(phase, seed, target_hr, test_hr, ri, rank_shift_median, prediction_shift, seconds)`` per phase and seed."""
        details = iter(self.per_seed_ri())
        out = []
        for p in self.phases:
            for r in range(len(p.target_hr)):
                ri = next(details).ri
                shifts = p.rank_shifts[r]
                out.append((
                    p.phase, self.scenario.seed + r, _float(p.target_hr[r]), _float(p.test_hr[r]), ri,
                    float(np.median(shifts)) if len(shifts) else None, _float(p.prediction_shift[r]), _float(p.seconds[r]),
                ))
        return out

    def to_json(self) -> dict:
        """The ``run --json`` object of docs/cli.md (``config``, ``dataset``, ``targets``, ``rows``) plus extras.

        ``targets`` are the data set's own item ids (as given to ``--targets`` and written in
        poison CSVs).  Extras beside the contract: ``target_indices`` (the same items as dense
        0-based indices, the models' columns), ``target_ids`` (= ``targets``, the name this key
        had before ``targets`` held the ids too), ``device``, ``per_seed`` (one object per
        phase x seed), ``significance`` (paired t-test of APT against the best baseline, or
        null), ``scenario_key``, ``wall_seconds``, ``cache`` (hits, misses) and
        ``attack_seconds`` (generation time of each seed's fake profiles).
        """
        sig = self.significance()
        cols = ("phase", "seed", "target_hr", "test_hr", "ri", "rank_shift_median", "prediction_shift", "seconds")
        return {
            "config": self.scenario.to_config(),
            "dataset": {
                "name": self.data.name,
                "n_users": int(self.data.n_users),
                "n_items": int(self.data.n_items),
                "n_ratings": int(self.data.n_ratings),
            },
            "targets": self.data.original_item_ids(self.targets),
            "target_indices": [int(t) for t in self.targets],
            "target_ids": self.data.original_item_ids(self.targets),
            "device": self.device,
            "rows": self.rows(),
            "per_seed": [{**dict(zip(cols, m)), "ri_undefined_reason": d.reason, "below_clean": d.below_clean}
                         for m, d in zip(self.per_seed_metrics(), self.per_seed_ri())],
            "significance": sig.to_dict() if sig is not None else None,
            "scenario_key": self.scenario_key,
            "wall_seconds": self.wall_seconds,
            "cache": {"hits": self.cache_hits, "misses": self.cache_misses},
            "attack_seconds": [_float(v) for v in self.attack_seconds],
        }


def _float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value

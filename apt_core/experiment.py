"""One scenario = data -> split -> targets -> clean fit -> attack -> defended fits -> metrics.

:class:`Scenario` is the whole description of an experiment (what the CLI's flags and the
dashboard's widgets set); :func:`run_scenario` runs it and returns a :class:`ScenarioResult`
whose :meth:`ScenarioResult.to_json` is the CLI's ``--json`` contract (DESIGN section 8).

Repetitions: the split and the target items depend on ``seed`` only, so every repetition
sees the same data and targets; repetition ``r`` uses ``seed + r`` for model initialisation,
the attack's randomness and the defenses' randomness.  Means and standard deviations are
over repetitions; RI is computed from the mean hit ratios.

Caching (pass ``cache=ArtifactCache()``; the CLI does by default): every expensive artifact
is stored on disk under a key that covers exactly what determines it (:mod:`apt_core.cache`):

- split key = SHA-256 of the split's content (train triples, test items and ratings, scale,
  data set name): covers the data set identity, its content and the split seed;
- clean model = (split key, MF config, model seed, device type, defense ``none``);
- fake profiles = (split key, targets, attack name + hyper-parameters, budget: fake users and
  fillers, seed, device type);
- poisoned data = (split key, content hash of the fake profiles) -- so a poison file and an
  identical generated attack share their downstream models;
- defended model = (poisoned-data key, defense name + hyper-parameters (ERM fraction and ERM
  statistics are hyper-parameters of APT), model seed, MF config, device type, data set name
  (per-data-set APT settings));
- evaluation = (model key, targets).  K is not part of it: ranks do not depend on K.

Every key also holds a fingerprint of the source code that produced the artifact (the
attack's or defense's modules and what they import, :func:`apt_core.cache.code_fingerprint`)
and the torch/numpy versions.  Reported ``seconds`` are always the original fit times, also when an
artifact came from the cache (``PhaseResult.from_cache`` says which did).
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

CACHE_FORMAT = 1  # bump when the meaning of cached artifacts changes
#: where APT's ERM users take item means/stds from (DESIGN section 6, step 6; robust = median/MAD)
ERM_STATS_CHOICES = ("observed", "clean", "robust", "trusted")

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
        if self.erm_stats not in ERM_STATS_CHOICES:
            raise ConfigError(f"--erm-stats must be one of {', '.join(ERM_STATS_CHOICES)}, got {self.erm_stats!r}")
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

    def key(self, device: str | None = None) -> str:
        """Stable hash of the description (``data_dir`` excluded: where data lives is not what it is).

        ``device`` replaces the scenario's device (``run_scenario`` passes the resolved type,
        so ``auto`` on a CPU machine and ``cpu`` share a key).
        """
        from apt_core.cache import stable_hash

        d = self.to_dict()
        d.pop("data_dir", None)
        if device is not None:
            d["device"] = device
        return stable_hash({"scenario": d, "format": CACHE_FORMAT})

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

    def row(self, origin: "PhaseResult | None", attack: "PhaseResult | None") -> dict:
        shifts = np.concatenate(self.rank_shifts) if self.rank_shifts else np.zeros(0)
        ri = None
        if origin is not None and attack is not None and self.phase not in ("origin", "attack"):
            ri = robustness_improvement(self._mean(self.target_hr), self._mean(origin.target_hr), self._mean(attack.target_hr))
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

    def phase(self, name: str) -> PhaseResult:
        for p in self.phases:
            if p.phase == name:
                return p
        raise KeyError(name)

    def rows(self) -> list[dict]:
        origin = self.phase("origin")
        attack = self.phase("attack")
        return [p.row(origin, attack) for p in self.phases]

    def per_phase(self, metric: str = "target_hr") -> dict[str, list[float]]:
        """Per-seed values of ``metric`` (``target_hr``, ``test_hr``, ``seconds``...) by phase."""
        return {p.phase: list(getattr(p, metric)) for p in self.phases}

    def significance(self, method: str = "apt", metric: str = "target_hr"):
        """Paired t-test of ``method`` against the best baseline (:mod:`apt_core.stats`); None if it did not run."""
        from apt_core.stats import significance

        return significance(self.per_phase(metric), method, metric)

    def per_seed_metrics(self) -> list[tuple]:
        """``(phase, seed, target_hr, test_hr, ri, rank_shift_median, prediction_shift, seconds)`` per phase and seed."""
        origin, attack = self.phase("origin"), self.phase("attack")
        out = []
        for p in self.phases:
            for r in range(len(p.target_hr)):
                ri = None
                if p.phase not in ("origin", "attack"):
                    ri = robustness_improvement(p.target_hr[r], origin.target_hr[r], attack.target_hr[r])
                shifts = p.rank_shifts[r]
                out.append((
                    p.phase, self.scenario.seed + r, _float(p.target_hr[r]), _float(p.test_hr[r]), ri,
                    float(np.median(shifts)) if len(shifts) else None, _float(p.prediction_shift[r]), _float(p.seconds[r]),
                ))
        return out

    def to_json(self) -> dict:
        """DESIGN section 8's object (``config``, ``dataset``, ``targets``, ``rows``) plus extras.

        Extras beside the contract: ``target_ids``, ``device``, ``per_seed`` (one object per
        phase x seed), ``significance`` (paired t-test of APT against the best baseline, or
        null), ``scenario_key``, ``wall_seconds``, ``cache`` (hits, misses) and
        ``attack_seconds`` (generation time of each seed's fake profiles).
        """
        sig = self.significance()
        cols = ("phase", "seed", "target_hr", "test_hr", "ri", "rank_shift_median", "prediction_shift", "seconds")
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
            "per_seed": [dict(zip(cols, m)) for m in self.per_seed_metrics()],
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


def _jsonable(value):
    return value.item() if hasattr(value, "item") else value


def _parse_targets(scenario: Scenario, data: RatingData, split: Split) -> np.ndarray:
    if isinstance(scenario.targets, str):
        return select_targets(split, scenario.targets, scenario.n_targets, scenario.seed)
    # Explicit ids are the data set's own item ids (as in its files); report duplicates in
    # those ids, not in the dense indices they map to.
    ids = [str(t) for t in scenario.targets]
    duplicates = sorted({t for t in ids if ids.count(t) > 1})
    if duplicates:
        raise ConfigError(f"duplicate target item id(s): {', '.join(duplicates)}")
    return select_targets(split, data.item_index(list(scenario.targets)))


def load_poison_file(path: str, split: Split) -> FakeProfiles:
    from apt_core.attacks import io as attack_io

    return attack_io.load_profiles(Path(path), split.train)


def split_fingerprint(data: RatingData, split: Split) -> str:
    """Content hash of a split: the data set's identity, content and the split seed in one key."""
    from apt_core.cache import array_fingerprint, stable_hash

    t = split.train
    return stable_hash({
        "name": data.name,
        "arrays": array_fingerprint(t.users, t.items, t.ratings, split.test_items, split.test_ratings),
        "shape": [t.n_users, t.n_items, t.n_real_users],
        "scale": [t.scale.minimum, t.scale.maximum, t.scale.step],
    })


def profiles_fingerprint(fake: FakeProfiles) -> str:
    from apt_core.cache import array_fingerprint

    return array_fingerprint(fake.users, fake.items, fake.ratings, np.array([fake.n_fake_users, fake.n_items]))


class _Keys:
    """Builds the cache keys of one scenario run (see the module docstring).

    Code enters each key as the fingerprint of the modules that artifact runs (the attack's
    or defense's module closure, see :func:`apt_core.cache.code_fingerprint`), so editing one
    defense does not invalidate the clean models or the other defenses' entries.
    """

    def __init__(self, data: RatingData, split: Split, device, mf_config: MFConfig):
        from apt_core.cache import environment_fingerprint

        self.split = split_fingerprint(data, split)
        self.base = {"format": CACHE_FORMAT, "env": environment_fingerprint(),
                     "device": str(getattr(device, "type", device)), "dataset": data.name}
        self.mf = mf_config
        self._code: dict = {}

    def code(self, obj) -> str:
        from apt_core.cache import code_fingerprint

        cls = obj if isinstance(obj, type) else type(obj)
        if cls not in self._code:
            self._code[cls] = code_fingerprint(cls)
        return self._code[cls]

    def _hash(self, **parts) -> str:
        from apt_core.cache import stable_hash

        return stable_hash({**self.base, **parts})

    def fake(self, targets: np.ndarray, attack, n_fake: int, n_filler: int, seed: int) -> str:
        return self._hash(kind="fake", split=self.split, targets=[int(t) for t in targets], attack=attack.name,
                          params=attack.get_params(), n_fake=int(n_fake), n_filler=int(n_filler), seed=int(seed),
                          code=self.code(attack))

    def poisoned(self, fake: FakeProfiles | None) -> str:
        return self.split if fake is None else self._hash(kind="poisoned", split=self.split, fake=profiles_fingerprint(fake))

    def model(self, train_key: str, defense, seed: int) -> str:
        return self._hash(kind="model", train=train_key, clean=self.split, defense=defense.name,
                          params=defense.get_params(), mf=self.mf, seed=int(seed), code=self.code(defense))

    def evaluation(self, model_key: str, targets: np.ndarray) -> str:
        from apt_core.cache import code_fingerprint
        from apt_core import metrics

        if "metrics" not in self._code:
            self._code["metrics"] = code_fingerprint(metrics)
        return self._hash(kind="eval", model=model_key, targets=[int(t) for t in targets], code=self._code["metrics"])


def _model_payload(model, seconds: float, diagnostics: dict, store_model: bool) -> dict:
    from apt_core.cache import storable_subset

    diag, dropped = storable_subset(diagnostics or {})
    payload = {"seconds": float(seconds), "diagnostics": diag, "dropped_diagnostics": dropped, "state": None, "model_class": None}
    cls = type(model)
    # Only models that can rebuild themselves from tensors are stored (MFModel and any
    # defense model exposing state_dict()/from_state_dict()); others get their evaluation cached.
    if store_model and hasattr(model, "state_dict") and hasattr(cls, "from_state_dict") and cls.__module__.startswith("apt_core."):
        try:
            state = model.state_dict()
            if isinstance(state, dict):
                payload["state"] = state
                payload["model_class"] = f"{cls.__module__}:{cls.__qualname__}"
        except Exception:  # a model that cannot export itself is still evaluated and cached by its ranks
            payload["state"] = None
    return payload


def _rebuild_model(entry: dict, device):
    import importlib

    path = entry.get("model_class")
    if not path or entry.get("state") is None:
        return None
    module, _, qualname = path.partition(":")
    if not module.startswith("apt_core."):
        return None
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj.from_state_dict(entry["state"], device)
    except Exception:  # class renamed or changed: treat as a miss
        return None


def _evaluation_from_entry(entry: dict, k: int) -> Evaluation:
    return Evaluation(k, np.asarray(entry["target_ranks"]), np.asarray(entry["test_ranks"]), np.asarray(entry["target_predictions"]))


def _fit_evaluate(cache, keys: _Keys | None, train_key: str, defense, ctx: DefenseContext, train, split: Split,
                  targets: np.ndarray, k: int, device, cache_only: bool = False) -> tuple[Evaluation, float, dict, bool]:
    """Evaluation, fit seconds, diagnostics and whether it came from the cache; fits only on a miss."""
    model_key = eval_key = None
    if cache is not None and keys is not None:
        model_key = keys.model(train_key, defense, ctx.random_state)
        eval_key = keys.evaluation(model_key, targets)
        hit = cache.load("eval", eval_key)
        if hit is not None:
            return _evaluation_from_entry(hit, k), float(hit["seconds"]), hit.get("diagnostics", {}), True
        entry = cache.load("model", model_key)
        model = _rebuild_model(entry, device) if entry is not None else None
        if model is not None:
            ev = evaluate(model, split, targets, k)
            cache.save("eval", eval_key, _eval_payload(ev, entry["seconds"], entry.get("diagnostics", {})))
            return ev, float(entry["seconds"]), entry.get("diagnostics", {}), True
    if cache_only:
        from apt_core.cache import CacheMiss

        raise CacheMiss(f"{defense.name} model not cached")
    t0 = time.perf_counter()
    result = defense.fit(train, ctx)
    seconds = time.perf_counter() - t0
    ev = evaluate(result.model, split, targets, k)
    diagnostics = result.diagnostics or {}
    if cache is not None and model_key is not None:
        payload = _model_payload(result.model, seconds, diagnostics, cache.store_models)
        cache.save("model", model_key, payload)
        cache.save("eval", eval_key, _eval_payload(ev, seconds, payload["diagnostics"]))
    return ev, seconds, diagnostics, False


def _eval_payload(ev: Evaluation, seconds: float, diagnostics: dict) -> dict:
    return {"target_ranks": ev.target_ranks, "test_ranks": ev.test_ranks, "target_predictions": ev.target_predictions,
            "seconds": float(seconds), "diagnostics": diagnostics}


def _generate_fake(cache, keys: _Keys | None, scenario: Scenario, split: Split, targets: np.ndarray, budget, seed: int,
                   device, progress, cache_only: bool = False) -> tuple[FakeProfiles, bool, float | None]:
    attack = make_attack(scenario.attack)
    key = None
    if cache is not None and keys is not None:
        key = keys.fake(targets, attack, budget.n_fake_users, budget.n_filler, seed)
        hit = cache.load("fake", key)
        if hit is not None:
            fake = FakeProfiles(hit["users"], hit["items"], hit["ratings"], int(hit["n_fake_users"]), int(hit["n_items"]))
            return fake, True, hit.get("seconds")
    if cache_only:
        from apt_core.cache import CacheMiss

        raise CacheMiss(f"{scenario.attack} profiles not cached")
    t0 = time.perf_counter()
    fake = attack.generate(split.train, targets, budget.n_fake_users, budget.n_filler, seed, device, progress)
    seconds = time.perf_counter() - t0
    if cache is not None and key is not None:
        cache.save("fake", key, {"users": fake.users, "items": fake.items, "ratings": fake.ratings,
                                 "n_fake_users": int(fake.n_fake_users), "n_items": int(fake.n_items), "seconds": seconds})
    return fake, False, seconds


def run_scenario(scenario: Scenario, progress: ProgressFn | None = None, cache=None, data: RatingData | None = None,
                 cache_only: bool = False) -> ScenarioResult:
    """Run a scenario end to end.  ``progress(fraction, stage)`` returning ``False`` cancels.

    ``cache``: an :class:`apt_core.cache.ArtifactCache` to read and write fake profiles,
    models and evaluations (None: compute everything, write nothing).
    ``data``: the already loaded ``scenario.dataset`` (saves re-reading it when many
    scenarios share one data set; cache keys hash its content either way).
    ``cache_only``: answer from the cache or raise :class:`apt_core.cache.CacheMiss` before
    any training or attack (e.g. to tell whether a result is instant).
    """
    scenario.validate()
    if cache_only and cache is None:
        raise ConfigError("cache_only needs a cache")
    device = resolve_device(scenario.device)
    wall0 = time.perf_counter()
    stats0 = (cache.stats.hits, cache.stats.misses) if cache is not None else (0, 0)

    def report(fraction: float, stage: str) -> None:
        if progress is not None and progress(min(1.0, fraction), stage) is False:
            raise CancelledError(f"cancelled during: {stage}")

    report(0.0, "loading data")
    if data is None:
        data = load_dataset(scenario.dataset, scenario.data_dir)
    split = leave_one_out(data, scenario.seed)
    targets = _parse_targets(scenario, data, split)
    mf_config = MFConfig(epochs=scenario.epochs)
    budget = None
    if scenario.attack != "none" and scenario.poison_file is None:
        budget = attack_budget(split.train, scenario.attack_size, scenario.filler)
    keys = _Keys(data, split, device, mf_config) if cache is not None else None

    phases = {"origin": PhaseResult("origin"), "attack": PhaseResult("attack")}
    for name in scenario.defenses:
        phases[name] = PhaseResult(name)
    fakes: list[FakeProfiles | None] = []
    attack_seconds: list[float | None] = []
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
        ctx.progress = sub(f"seed {seed}: clean MF")
        report(step / n_steps, f"seed {seed}: clean MF")
        origin_eval, secs, _, cached = _fit_evaluate(cache, keys, keys.split if keys else "", make_defense("none"), ctx,
                                                    split.train, split, targets, scenario.k, device, cache_only)
        _record(phases["origin"], origin_eval, origin_eval, secs, {}, cached)
        step += 1

        # Attack.
        if scenario.poison_file is not None:
            fake = load_poison_file(scenario.poison_file, split)
        elif scenario.attack != "none":
            report(step / n_steps, f"seed {seed}: attack {scenario.attack}")
            fake, _, attack_secs = _generate_fake(cache, keys, scenario, split, targets, budget, seed, device,
                                     sub(f"seed {seed}: attack {scenario.attack}"), cache_only)
            step += 1
        else:
            fake = None
        fakes.append(fake)
        if scenario.attack != "none" and scenario.poison_file is None:
            attack_seconds.append(attack_secs)
        poisoned = fake.inject(split.train) if fake is not None else split.train
        poisoned_key = keys.poisoned(fake) if keys is not None else ""

        # Poisoned, undefended.
        ctx.progress = sub(f"seed {seed}: MF on poisoned data")
        report(step / n_steps, f"seed {seed}: MF on poisoned data")
        if fake is not None:
            attack_eval, secs, _, cached = _fit_evaluate(cache, keys, poisoned_key, make_defense("none"), ctx, poisoned,
                                                        split, targets, scenario.k, device, cache_only)
        else:
            attack_eval = origin_eval
        _record(phases["attack"], origin_eval, attack_eval, secs, {}, cached)
        if "none" in phases:
            _record(phases["none"], origin_eval, attack_eval, secs, {}, cached)
        step += 1

        for name in scenario.defenses:
            if name == "none":
                continue
            ctx.progress = sub(f"seed {seed}: defense {name}")
            report(step / n_steps, f"seed {seed}: defense {name}")
            defense = make_defense(name, **_defense_params(name, scenario))
            ev, secs, diagnostics, cached = _fit_evaluate(cache, keys, poisoned_key, defense, ctx, poisoned, split,
                                                          targets, scenario.k, device, cache_only)
            _record(phases[name], origin_eval, ev, secs, diagnostics, cached)
            phases[name].detection.append(detection_summary(diagnostics, poisoned.n_real_users))
            step += 1
    report(1.0, "done")
    ordered = [phases["origin"], phases["attack"]] + [phases[n] for n in scenario.defenses]
    hits = cache.stats.hits - stats0[0] if cache is not None else 0
    misses = cache.stats.misses - stats0[1] if cache is not None else 0
    return ScenarioResult(scenario, data, split, targets, ordered, fakes, str(device), scenario.key(device.type),
                          time.perf_counter() - wall0, hits, misses, attack_seconds)


def _defense_params(name: str, scenario: Scenario) -> dict:
    """Scenario-level settings a defense takes as hyper-parameters."""
    if name in ("apt", "apt-rand"):
        return {"erm_fraction": scenario.erm_fraction, "erm_stats": scenario.erm_stats}
    if name == "apt-trusted":
        return {"erm_fraction": scenario.erm_fraction}
    return {}


def detection_summary(diagnostics: dict, n_real_users: int) -> dict | None:
    """Detection metrics of a defense that flagged users (its diagnostics hold the flags)."""
    if not diagnostics or "flagged_users" not in diagnostics or "suspicion" not in diagnostics:
        return None
    from apt_core.detection.metrics import detection_metrics, fake_mask

    scores = np.asarray(diagnostics["suspicion"], dtype=np.float64)
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[np.asarray(diagnostics["flagged_users"], dtype=np.int64)] = True
    m = detection_metrics(fake_mask(len(scores), n_real_users), scores, flagged)
    return {"detector": diagnostics.get("detector"), **m.to_dict()}


def _record(phase: PhaseResult, before: Evaluation, after: Evaluation, seconds: float, diagnostics: dict, from_cache: bool = False) -> None:
    phase.target_hr.append(after.target_hr)
    phase.test_hr.append(after.test_hr)
    phase.seconds.append(seconds)
    phase.rank_shifts.append(rank_shift(before, after))
    phase.prediction_shift.append(prediction_shift(before, after))
    phase.evaluations.append(after)
    phase.diagnostics.append(diagnostics)
    phase.from_cache.append(from_cache)


def run_and_record(scenario: Scenario, progress: ProgressFn | None = None, cache=True, store=True, label: str = ""):
    """Run with the default artifact cache and record the run in the default history.

    ``cache``/``store``: True for the default :class:`~apt_core.cache.ArtifactCache` /
    :class:`~apt_core.store.RunStore`, an instance to use it, False/None for neither.
    Returns ``(result, run_id)`` (``run_id`` None when not recorded).
    """
    from apt_core.cache import ArtifactCache
    from apt_core.store import RunStore

    if cache is True:
        cache = ArtifactCache()
    result = run_scenario(scenario, progress, cache=cache or None)
    run_id = None
    if store:
        run_id = (RunStore() if store is True else store).record(result, label=label)
    return result, run_id

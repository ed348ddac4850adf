"""The pipeline: one scenario = data -> split -> targets -> clean fit -> attack -> defended fits -> metrics.

:class:`~apt_core.experiments.scenario.Scenario` is the whole description of an experiment (what the
CLI's flags and the dashboard's widgets set); :func:`run_scenario` runs it and returns a
:class:`~apt_core.experiments.results.ScenarioResult` whose ``to_json()`` is the CLI's ``--json``
contract (docs/cli.md).  There is one pipeline: the Attack and Profiles pages, the demo and
``poison`` use its stages (:func:`prepare`, :func:`generate_profiles`) or ask
:func:`run_scenario` to keep the fitted models (``keep_models=True``) instead of repeating it.
What it runs is the scenario's plan (:func:`apt_core.experiments.plan.plan`): its units, one
:class:`UnitRun` step each, the same step a Ray task takes (:func:`compute_unit`).

This module keeps its old public names: ``from apt_core.experiments.pipeline import Scenario,
ScenarioResult, PhaseResult, run_scenario`` still works (the classes live in
:mod:`apt_core.experiments.scenario` and :mod:`apt_core.experiments.results`, the cache keys in
:mod:`apt_core.experiments.artifacts`).

Repetitions: the split and the target items depend on ``seed`` only, so every repetition
sees the same data and targets; repetition ``r`` uses ``seed + r`` for model initialisation,
the attack's randomness and the defenses' randomness.  Means and standard deviations are
over repetitions; RI is computed from the mean hit ratios.

Caching (pass ``cache=ArtifactCache()``; the CLI does by default): every expensive artifact
is stored on disk under a key that covers exactly what determines it (:mod:`apt_core.storage.cache`):

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
attack's or defense's modules and what they import, :func:`apt_core.storage.cache.code_fingerprint`)
and the torch/numpy versions.  Reported ``seconds`` are always the original fit times, also when an
artifact came from the cache (``PhaseResult.from_cache`` says which did).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apt_core.experiments.artifacts import (  # noqa: F401 -- profiles_fingerprint/split_fingerprint re-exported
    Keys,
    eval_payload,
    evaluation_from_entry,
    keeps_model,
    model_payload,
    profiles_fingerprint,
    rebuild_model,
    split_fingerprint,
)
from apt_core.attacks import make_attack
from apt_core.attacks.base import AttackResult, FakeProfiles
from apt_core.data.dataset import Interactions, RatingData
from apt_core.data.split import Split
from apt_core.defenses import DefenseContext, make_defense
from apt_core.errors import CancelledError, ConfigError, DivergedError
from apt_core.evaluation.metrics import Evaluation, evaluate, prediction_shift, rank_shift
from apt_core.models.popularity import fit_popularity
from apt_core.experiments.plan import (FAKE_ATTACK, FAKE_FILE, FAKE_NONE, STAGE_ATTACK, STAGE_ORIGIN, STAGE_PROFILES, Unit,
                                       fake_source, plan)
from apt_core.experiments.preparation import (Prepared, check_scenario_fits_data, check_split_usable, prepare,  # noqa: F401 -- re-exported
                                              warn_unpushed_targets)
from apt_core.experiments.results import PhaseResult, ScenarioResult  # noqa: F401 -- re-exported (their old home)
from apt_core.runtime.devices import resolve_device
from apt_core.experiments.scenario import CACHE_FORMAT, ERM_STATS_CHOICES, ProgressFn, Scenario, parse_targets  # noqa: F401

#: the old private name, kept for callers outside this module
_parse_targets = parse_targets


def load_poison_file(path: str, split: Split) -> FakeProfiles:
    """The fake profiles of a poison file; a CSV names items by the data set's own ids (``split.item_ids``)."""
    from apt_core.attacks import io as attack_io

    return attack_io.load_profiles(Path(path), split.train, split.item_ids)


def _fit_evaluate(cache, keys: Keys | None, train_key: str, defense, ctx: DefenseContext, train, split: Split,
                  targets: np.ndarray, k: int, device, cache_only: bool = False,
                  keep_model: bool = False) -> tuple[Evaluation, float, dict, bool, object]:
    """Evaluation, fit seconds, diagnostics, whether it came from the cache, and the model.

    Fits only on a miss.  The model is returned only with ``keep_model`` (else None): then a
    cached evaluation alone is not enough, the stored model is rebuilt (or refitted when the
    cache holds none).  A diverged fit (NaN/inf loss, factors or scores) raises
    :class:`DivergedError` naming the phase and what to change, never an evaluation: a NaN
    model would rank every item first.
    """
    try:
        return _fit_evaluate_once(cache, keys, train_key, defense, ctx, train, split, targets, k, device, cache_only, keep_model)
    except DivergedError as exc:
        phase = defense.name if defense.name != "none" else ("origin" if train is split.train else "attack")
        raise DivergedError(f"the {phase!r} model diverged: {exc}; {defense.divergence_hint}") from None


def _fit_evaluate_once(cache, keys: Keys | None, train_key: str, defense, ctx: DefenseContext, train, split: Split,
                       targets: np.ndarray, k: int, device, cache_only: bool = False,
                       keep_model: bool = False) -> tuple[Evaluation, float, dict, bool, object]:
    model_key = eval_key = None
    if cache is not None and keys is not None:
        model_key = keys.model(train_key, defense, ctx.random_state)
        eval_key = keys.evaluation(model_key, targets)
        hit = None if keep_model else cache.load("eval", eval_key)
        if hit is not None:
            return evaluation_from_entry(hit, k), float(hit["seconds"]), hit.get("diagnostics", {}), True, None
        entry = cache.load("model", model_key)
        model = rebuild_model(entry, device) if entry is not None else None
        if model is not None:
            ev = evaluate(model, split, targets, k)
            cache.save("eval", eval_key, eval_payload(ev, entry["seconds"], entry.get("diagnostics", {})))
            return ev, float(entry["seconds"]), entry.get("diagnostics", {}), True, model if keep_model else None
    if cache_only:
        from apt_core.storage.cache import CacheMiss

        raise CacheMiss(f"{defense.name} model not cached")
    t0 = time.perf_counter()
    result = defense.fit(train, ctx)
    seconds = time.perf_counter() - t0
    ev = evaluate(result.model, split, targets, k)
    diagnostics = result.diagnostics or {}
    if cache is not None and model_key is not None:
        payload = model_payload(result.model, seconds, diagnostics, keeps_model(cache, defense.name, keep_model))
        if payload["state"] is not None:  # an entry without tensors would rebuild nothing: the evaluation keeps the numbers
            cache.save("model", model_key, payload)
        cache.save("eval", eval_key, eval_payload(ev, seconds, payload["diagnostics"]))
    return ev, seconds, diagnostics, False, result.model if keep_model else None


def generate_profiles(scenario: Scenario, prepared: Prepared, seed: int, device: torch.device, progress: ProgressFn | None = None,
                      cache=None, keys: Keys | None = None, cache_only: bool = False) -> tuple[FakeProfiles, bool, float | None]:
    """The attack stage's fake profiles: :func:`generate_attack` without the diagnostics.

    Returns ``(profiles, from_cache, seconds)`` (``seconds``: the original generation time).
    """
    result, from_cache, seconds = generate_attack(scenario, prepared, seed, device, progress, cache, keys, cache_only)
    return result.profiles, from_cache, seconds


def generate_attack(scenario: Scenario, prepared: Prepared, seed: int, device: torch.device, progress: ProgressFn | None = None,
                    cache=None, keys: Keys | None = None, cache_only: bool = False) -> tuple[AttackResult, bool, float | None]:
    """The attack stage: ``scenario.attack`` (with its parameters) for one seed, from the cache when there.

    Returns ``(AttackResult, from_cache, seconds)``; the result is cached whole, so a cache hit
    keeps the attack's diagnostics (PGA/TNA objective histories, AUSH losses, ...).
    """
    attack = make_attack(scenario.attack, **scenario.method_params(scenario.attack))
    budget, split, targets = prepared.budget, prepared.split, prepared.targets
    if budget is None:
        raise ConfigError("this scenario has no attack budget (no attack, or a poison file)")
    if cache is not None and keys is None:
        keys = Keys(prepared.data, split, device, prepared.mf_config, prepared.victim)
    key = None
    if cache is not None:
        key = keys.fake(targets, attack, budget.n_fake_users, budget.n_filler, seed)
        hit = cache.load("fake", key)
        if hit is not None:
            fake = FakeProfiles(hit["users"], hit["items"], hit["ratings"], int(hit["n_fake_users"]), int(hit["n_items"]))
            return AttackResult(fake, hit.get("diagnostics") or {}), True, hit.get("seconds")
    if cache_only:
        from apt_core.storage.cache import CacheMiss

        raise CacheMiss(f"{scenario.attack} profiles not cached")
    t0 = time.perf_counter()
    result = attack.run(split.train, targets, budget.n_fake_users, budget.n_filler, seed, device, progress)
    seconds = time.perf_counter() - t0
    fake = result.profiles
    if cache is not None and key is not None:
        cache.save("fake", key, {"users": fake.users, "items": fake.items, "ratings": fake.ratings,
                                 "n_fake_users": int(fake.n_fake_users), "n_items": int(fake.n_items), "seconds": seconds,
                                 "diagnostics": result.diagnostics})
    return result, False, seconds


def poisoned_training(split: Split, fake: FakeProfiles | None, keys: "Keys | None") -> tuple[Interactions, str]:
    """The training data of the attack and defense phases (the real ratings plus ``fake``), and
    its cache key; ``run_scenario`` and ``compute_unit`` both take it from here, so a unit
    computed on Ray lands under the key the sequential run reads."""
    poisoned = fake.inject(split.train) if fake is not None else split.train
    return poisoned, (keys.poisoned(fake) if keys is not None else "")


@dataclass
class FakeStage:
    """A repetition's fake profiles (None: no attack) and, when an attack generated them, its
    diagnostics, its original generation time and whether they came from the cache."""

    profiles: FakeProfiles | None
    diagnostics: dict
    seconds: float | None = None
    from_cache: bool = False


def fake_profiles(scenario: Scenario, prepared: Prepared, seed: int, device: torch.device, cache=None, keys: Keys | None = None,
                  cache_only: bool = False, progress: ProgressFn | None = None) -> FakeStage:
    """The fake profiles of one seed from the scenario's source (:func:`apt_core.experiments.plan.fake_source`):
    none, the attack's (:func:`generate_attack`, through the cache) or the poison file's.  The one
    place the source is resolved: ``run_scenario``, ``compute_unit`` and ``run_detection`` call it."""
    source = fake_source(scenario)
    if source == FAKE_FILE:
        fake = load_poison_file(scenario.poison_file, prepared.split)
        warn_unpushed_targets(fake, prepared, scenario.poison_file)
        return FakeStage(fake, {})
    if source == FAKE_ATTACK:
        result, from_cache, seconds = generate_attack(scenario, prepared, seed, device, progress, cache, keys, cache_only)
        return FakeStage(result.profiles, result.diagnostics, seconds, from_cache)
    return FakeStage(None, {})


def defense_context(prepared: Prepared, device, seed: int, cache=None, progress: ProgressFn | None = None) -> DefenseContext:
    """What a defense may know in this scenario (MF or victim config, device, seed, data set name,
    the clean training data), and its detections read through ``cache`` when there is one.  The
    one builder: the pipeline, the Ray units and the stage benchmark use it."""
    return DefenseContext(prepared.mf_config, device, seed, prepared.data.name, prepared.split.train, progress,
                          victim=prepared.victim, detect_with=cached_detection(cache) if cache is not None else None)


def detect_through_cache(detector, data: Interactions, seed: int, cache, key: str | None, cache_only: bool = False) -> tuple[object, float]:
    """``detector.detect(data, seed)`` through the artifact cache under ``key``: (result, seconds it took when made)."""
    from apt_core.storage.cache import CacheMiss
    from apt_core.detection.base import DetectionResult

    if cache is not None and key is not None:
        hit = cache.load("detection", key)
        if hit is not None:
            threshold = hit["threshold"]
            return DetectionResult(detector.name, np.asarray(hit["scores"]), np.asarray(hit["flagged"], dtype=bool),
                                   None if threshold is None else float(threshold), detector.cut, {}), float(hit["seconds"])
    if cache_only:
        raise CacheMiss(f"detector {detector.name} not cached")
    t0 = time.perf_counter()
    result = detector.detect(data, seed)
    seconds = time.perf_counter() - t0
    if cache is not None and key is not None:
        cache.save("detection", key, {"scores": np.asarray(result.scores, dtype=np.float64), "flagged": np.asarray(result.flagged, dtype=bool),
                                      "threshold": None if result.threshold is None else float(result.threshold), "seconds": seconds})
    return result, seconds


def detection_key(detector, data: Interactions, seed: int) -> str:
    """The cache key of ``detector.detect(data, seed)``: the data's content, the detector's
    parameters and code (its module's static import closure -- the cuts, the influence code --
    and any registry entry it names, :func:`apt_core.storage.cache.method_fingerprint`), the seed.
    The detection table (:mod:`apt_core.experiments.detection_run`) and the
    defenses that detect (APT with trusted statistics, APT-trusted, remove-<detector>) share it."""
    from apt_core.storage.cache import array_fingerprint, environment_fingerprint, method_fingerprint, stable_hash

    return stable_hash({"kind": "detection", "format": CACHE_FORMAT, "env": environment_fingerprint(),
                        "data": array_fingerprint(data.users, data.items, data.ratings),
                        "shape": [int(data.n_users), int(data.n_items), int(data.n_real_users)],
                        "detector": detector.name, "params": detector.get_params(), "seed": int(seed),
                        "code": method_fingerprint(detector)})


def cached_detection(cache):
    """``(detector, data, seed) -> DetectionResult`` through ``cache``: what a defense's
    :meth:`DefenseContext.detect` calls, so one detection on one poisoned data set runs once
    (the classroom grid fits it with 4 ERM shares x 2 defenses)."""
    def detect(detector, data: Interactions, seed: int):
        return detect_through_cache(detector, data, seed, cache, detection_key(detector, data, seed))[0]

    return detect


class UnitRun:
    """The units of one repetition (seed ``seed``) of a scenario, each computed through the cache.

    What :func:`run_scenario` loops over and what :func:`compute_unit` (one Ray task) runs one
    unit of: one defense context, one resolution of the fake profiles, one poisoned data set, so
    both write the same artifacts under the same keys.
    """

    def __init__(self, scenario: Scenario, prepared: Prepared, device, seed: int, cache=None, keys: Keys | None = None,
                 cache_only: bool = False, keep_models: bool = False, progress: ProgressFn | None = None):
        self.scenario, self.prepared, self.device, self.seed = scenario, prepared, device, seed
        self.cache, self.keys, self.cache_only, self.keep_models = cache, keys, cache_only, keep_models
        self.ctx = defense_context(prepared, device, seed, cache, progress)
        self._fake: FakeStage | None = None
        self._poisoned: tuple[Interactions, str] | None = None

    def fake(self, progress: ProgressFn | None = None) -> FakeStage:
        """The repetition's fake profiles (resolved once; ``progress`` reaches an attack that runs)."""
        if self._fake is None:
            self._fake = fake_profiles(self.scenario, self.prepared, self.seed, self.device, self.cache, self.keys,
                                       self.cache_only, progress)
        return self._fake

    def poisoned(self) -> tuple[Interactions, str]:
        """The poisoned training data and its cache key (:func:`poisoned_training`)."""
        if self._poisoned is None:
            self._poisoned = poisoned_training(self.prepared.split, self.fake().profiles, self.keys)
        return self._poisoned

    def fit(self, unit: Unit) -> tuple[Evaluation, float, dict, bool, object]:
        """Fit ``unit``'s defense on its data (clean or poisoned) through the cache: see :func:`_fit_evaluate`."""
        split = self.prepared.split
        if unit.on_poisoned_data:
            train, train_key = self.poisoned()
        else:
            train, train_key = split.train, (self.keys.split if self.keys is not None else "")
        defense = make_defense(unit.defense, **self.scenario.method_params(unit.defense))
        return _fit_evaluate(self.cache, self.keys, train_key, defense, self.ctx, train, split, self.prepared.targets,
                             self.scenario.k, self.device, self.cache_only, self.keep_models)


def unit_label(unit: Unit, attack: str) -> str:
    """What a unit does, in words (the progress line)."""
    what = {STAGE_ORIGIN: "clean MF", STAGE_PROFILES: f"attack {attack}", STAGE_ATTACK: "MF on poisoned data"}
    return f"seed {unit.seed}: {what.get(unit.stage, f'defense {unit.stage}')}"


def run_scenario(scenario: Scenario, progress: ProgressFn | None = None, cache=None, data: RatingData | None = None,
                 cache_only: bool = False, keep_models: bool = False) -> ScenarioResult:
    """Run a scenario end to end.  ``progress(fraction, stage)`` returning ``False`` cancels.

    ``cache``: an :class:`apt_core.storage.cache.ArtifactCache` to read and write fake profiles,
    models and evaluations (None: compute everything, write nothing).
    ``data``: the already loaded ``scenario.dataset`` (saves re-reading it when many
    scenarios share one data set; cache keys hash its content either way).
    ``cache_only``: answer from the cache or raise :class:`apt_core.storage.cache.CacheMiss` before
    any training or attack (e.g. to tell whether a result is instant).
    ``keep_models``: also return every fitted model (``ScenarioResult.models``: one dict
    phase -> model per seed), rebuilt from the cache where it holds them.  What the pages
    need to show a user's top-K list or the user factors; the numbers do not change.
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
    prepared = prepare(scenario, data)
    data, split, targets = prepared.data, prepared.split, prepared.targets
    keys = Keys(data, split, device, prepared.mf_config, prepared.victim) if cache is not None else None
    scenario_plan = plan(scenario)

    phases = {"origin": PhaseResult("origin"), "attack": PhaseResult("attack")}
    for name in scenario.defenses:
        phases[name] = PhaseResult(name)
    fakes: list[FakeProfiles | None] = []
    models: list[dict] = []
    attack_seconds: list[float | None] = []
    n_steps = len(scenario_plan.units)
    step = 0

    def sub(stage: str):
        base = step / n_steps

        def inner(fraction: float, detail: str = "") -> object:
            report(base + fraction / n_steps, f"{stage}{': ' + detail if detail else ''}")
            return True

        return inner

    for rep in range(scenario.seeds):
        run = UnitRun(scenario, prepared, device, scenario.seed + rep, cache, keys, cache_only, keep_models)
        kept: dict = {}
        for unit in scenario_plan.units_of(rep):
            label = unit_label(unit, scenario.attack)
            report(step / n_steps, label)
            if unit.stage == STAGE_PROFILES:
                attack_seconds.append(run.fake(sub(label)).seconds)
                step += 1
                continue
            run.ctx.progress = sub(label)
            ev, secs, diagnostics, cached, kept[unit.stage] = run.fit(unit)
            step += 1
            if unit.stage == STAGE_ORIGIN:
                origin_eval = ev
                _record(phases["origin"], origin_eval, ev, secs, {}, cached)
            if unit.defense == "none" and (unit.on_poisoned_data or scenario_plan.fake_source == FAKE_NONE):
                # MF on the poisoned data (without fake profiles: the clean model).  The attack row carries
                # the attack's diagnostics (from the cache too); the ``none`` defense's row is this model.
                _record(phases["attack"], origin_eval, ev, secs, run.fake().diagnostics, cached)
                kept["attack"] = kept[unit.stage]
                if "none" in phases:
                    _record(phases["none"], origin_eval, ev, secs, {}, cached)
                    kept["none"] = kept["attack"]
            elif unit.defense != "none":
                _record(phases[unit.stage], origin_eval, ev, secs, diagnostics, cached)
                phases[unit.stage].detection.append(detection_summary(diagnostics, run.poisoned()[0].n_real_users))
        fakes.append(run.fake().profiles)
        if keep_models:
            models.append(kept)
    report(1.0, "done")
    ordered = [phases["origin"], phases["attack"]] + [phases[n] for n in scenario.defenses]
    hits = cache.stats.hits - stats0[0] if cache is not None else 0
    misses = cache.stats.misses - stats0[1] if cache is not None else 0
    references = [_popularity_reference(split, targets, scenario.k, scenario.seeds, device, cache, keys)]
    return ScenarioResult(scenario, data, split, targets, ordered, fakes, str(device), scenario.key(device.type),
                          time.perf_counter() - wall0, hits, misses, attack_seconds, models=models, budget=prepared.budget,
                          references=references)


def _popularity_reference(split: Split, targets: np.ndarray, k: int, seeds: int, device, cache=None, keys: Keys | None = None) -> PhaseResult:
    """The ``popularity`` row: items ranked by their count in the clean training data.

    Deterministic (no seed enters it), so it is evaluated once and repeated for every seed.
    Its evaluation (ranking every user) is cached like a model's: at ML-1M size it cost about
    2 s, paid twice by every scenario of a repeated ``reproduce``.  No rank shift or
    prediction shift: its scores are counts, not ratings, and no attack touches it.  No
    ``seconds`` either: nothing is trained, and a measured time would make two otherwise
    identical runs (one from the cache) report different rows.
    """
    eval_key = keys.evaluation(keys.popularity(), targets) if cache is not None and keys is not None else None
    hit = cache.load("eval", eval_key) if eval_key is not None else None
    if hit is not None:
        ev = evaluation_from_entry(hit, k)
    else:
        ev = evaluate(fit_popularity(split.train, device), split, targets, k)
        if eval_key is not None:
            cache.save("eval", eval_key, eval_payload(ev, 0.0, {}))
    phase = PhaseResult("popularity")
    for _ in range(seeds):
        phase.target_hr.append(ev.target_hr)
        phase.test_hr.append(ev.test_hr)
        phase.seconds.append(None)
        phase.rank_shifts.append(np.zeros(0, dtype=np.int64))
        phase.prediction_shift.append(float("nan"))
        phase.evaluations.append(ev)
        phase.diagnostics.append({})
        phase.from_cache.append(False)
    return phase


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


#: the stages of :mod:`apt_core.experiments.plan` under their old names here
UNIT_ORIGIN, UNIT_PROFILES, UNIT_ATTACK = STAGE_ORIGIN, STAGE_PROFILES, STAGE_ATTACK


def scenario_units(scenario: Scenario) -> list[tuple[int, str]]:
    """The ``(repetition, stage)`` pairs of :func:`apt_core.experiments.plan.plan`, in the order :func:`run_scenario` computes them."""
    return plan(scenario).pairs()


def compute_unit(scenario: Scenario, rep: int, unit: str, cache, data: RatingData | None = None,
                 progress: ProgressFn | None = None) -> bool:
    """Compute unit ``unit`` (a stage of the scenario's plan) of repetition ``rep`` into ``cache``; True when it was already there.

    What ``reproduce --engine ray`` runs as one Ray task: the unit's step of :func:`run_scenario`'s
    loop (:class:`UnitRun`), so the artifacts are the ones ``run_scenario`` would write, under the
    same keys; ``run_scenario`` then reads them back.  A unit on poisoned data reads the attack's
    profiles from the cache: run the ``profiles`` unit first (else this unit generates them itself,
    which gives the same profiles).
    """
    if cache is None:
        raise ConfigError("compute_unit writes to the artifact cache: pass one")
    scenario.validate()
    planned = plan(scenario).unit(rep, unit)
    device = resolve_device(scenario.device)
    prepared = prepare(scenario, data)
    keys = Keys(prepared.data, prepared.split, device, prepared.mf_config, prepared.victim)
    run = UnitRun(scenario, prepared, device, planned.seed, cache, keys, progress=progress)
    if planned.stage == STAGE_PROFILES:
        return run.fake(progress).from_cache
    if planned.stage == STAGE_ORIGIN:
        # The popularity row comes with the clean model: run_scenario reads both from the cache.
        _popularity_reference(prepared.split, prepared.targets, scenario.k, 1, device, cache, keys)
    return run.fit(planned)[3]

"""Detection experiment: the data and attack of a :class:`~apt_core.experiments.pipeline.Scenario`,
every shilling detector run on the poisoned training data, and its metrics (the CLI's
``detect`` subcommand and the dashboard's Detection page).

Per seed ``r`` (``scenario.seed + r``, as :func:`apt_core.experiments.pipeline.run_scenario` draws its
attacks): the fake profiles (from the artifact cache when given), the poisoned training
set, each detector's suspicion scores and flagged users (its data-driven cut), and the
attack's stealth statistics (:mod:`apt_core.evaluation.stealth`) -- an attack that is caught only
because of an artefact of its filler ratings shows it there.  Metrics are means over seeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from apt_core.detection import detector_names, make_detector
from apt_core.detection.metrics import DetectionMetrics, detection_metrics, fake_mask
from apt_core.errors import CancelledError, ConfigError
from apt_core.experiments.scenario import Scenario

ProgressFn = Callable[[float, str], object]

#: stealth statistics reported beside the detectors (fake vs real)
STEALTH_KEYS = ("mean_corr_fake", "mean_corr_real", "filler_popularity_fake", "filler_popularity_real",
                "nn_distance_fake", "nn_distance_real", "tv_distance")


@dataclass
class DetectorRun:
    """One detector on one seed's poisoned data."""

    detector: str
    seed: int
    scores: np.ndarray
    flagged: np.ndarray
    is_fake: np.ndarray
    metrics: DetectionMetrics
    threshold: float | None
    seconds: float


@dataclass
class DetectionReport:
    scenario: Scenario
    dataset: dict
    targets: list[int]
    runs: list[DetectorRun]
    stealth: list[dict] = field(default_factory=list)
    #: the poisoned training data of each seed (for views of the flagged profiles; not in JSON)
    poisoned: dict = field(default_factory=dict, repr=False)
    #: the detectors' parameters set by the caller (``{detector: {param: value}}``; defaults omitted)
    detector_params: dict = field(default_factory=dict)
    #: the targets as the data set's own item ids (``targets`` holds their dense indices)
    target_ids: list = field(default_factory=list)

    def detectors(self) -> list[str]:
        return list(dict.fromkeys(r.detector for r in self.runs))

    def rows(self) -> list[dict]:
        """One row per detector: means over seeds (None where undefined on every seed)."""
        out = []
        for name in self.detectors():
            runs = [r for r in self.runs if r.detector == name]

            def mean(key: str):
                vals = [getattr(r.metrics, key) for r in runs if getattr(r.metrics, key) is not None]
                return float(np.mean(vals)) if vals else None

            out.append({
                "detector": name,
                "auc": mean("auc"), "average_precision": mean("average_precision"),
                "precision": mean("precision"), "recall": mean("recall"), "f1": mean("f1"),
                "n_flagged": mean("n_flagged"), "real_flagged": mean("real_flagged"),
                "real_flagged_fraction": mean("real_flagged_fraction"), "n_fake": mean("n_fake"),
                "seconds": float(np.mean([r.seconds for r in runs])),
            })
        return out

    def stealth_row(self) -> dict | None:
        if not self.stealth:
            return None
        return {k: float(np.nanmean([s[k] for s in self.stealth])) for k in STEALTH_KEYS}

    def to_json(self) -> dict:
        return {
            "config": self.scenario.to_config(),
            "dataset": self.dataset,
            "targets": self.target_ids,  # the data set's own ids, as in run --json
            "target_indices": self.targets,
            "detectors": self.rows(),
            "per_seed": [{"detector": r.detector, "seed": r.seed, "threshold": r.threshold, **r.metrics.to_dict()} for r in self.runs],
            "stealth": self.stealth_row(),
            "detector_params": self.detector_params,
        }


def _stealth_cached(train, fake, targets, cache) -> dict:
    """The attack's stealth statistics through the artifact cache (at ML-1M size the nearest-user
    distances took about 10 s, paid twice by each scenario of a repeated ``reproduce``)."""
    from apt_core.evaluation import stealth as stealth_module
    from apt_core.storage.cache import array_fingerprint, code_fingerprint, environment_fingerprint, stable_hash
    from apt_core.experiments.pipeline import profiles_fingerprint
    from apt_core.evaluation.stealth import stealth_statistics

    key = None
    if cache is not None:
        key = stable_hash({"kind": "stealth", "env": environment_fingerprint(), "train": array_fingerprint(train.users, train.items, train.ratings),
                           "fake": profiles_fingerprint(fake), "targets": [int(t) for t in targets], "code": code_fingerprint(stealth_module)})
        hit = cache.load("stealth", key)
        if hit is not None:
            return hit
    out = stealth_statistics(train, fake, targets).to_dict()
    if key is not None:
        cache.save("stealth", key, out)
    return out


def run_detection(scenario: Scenario, detectors: list[str] | tuple[str, ...] | None = None, cache=None,
                  progress: ProgressFn | None = None, data=None, detector_params: dict | None = None,
                  reps: list[int] | range | None = None, cache_only: bool = False, with_stealth: bool = True) -> DetectionReport:
    """Run every detector (default: all registered) on the scenario's poisoned data, per seed.

    ``detector_params``: ``{detector: {param: value}}``, each detector's declared parameters.
    """
    from apt_core.experiments.artifacts import Keys
    from apt_core.experiments.pipeline import detect_through_cache, detection_key, fake_profiles, poisoned_training, prepare
    from apt_core.experiments.plan import fake_source_label, plan
    from apt_core.runtime.devices import resolve_device

    scenario.validate()
    units = plan(scenario).detection_units()  # one per seed; none without fake profiles
    if not units:
        raise ConfigError("detection needs fake users: choose an --attack or a --poison-file")
    names = list(detectors) if detectors else detector_names()
    unknown = [n for n in names if n not in detector_names()]
    if unknown:
        raise ConfigError(f"unknown detector(s) {', '.join(unknown)}: choose from {', '.join(detector_names())}")
    detector_params = detector_params or {}
    for name in detector_params:
        if name not in names:
            raise ConfigError(f"--param {name}.*: detector {name!r} is not among the detectors of this run ({', '.join(names)})")
    for name in names:
        make_detector(name, **detector_params.get(name, {}))  # every value checked before any work
    device = resolve_device(scenario.device)
    prepared = prepare(scenario, data)
    data, split, targets = prepared.data, prepared.split, prepared.targets
    # Detector results are cached like models (keyed by the poisoned data, the detector's
    # parameters and code, and the seed), so a repeated reproduce or page visit reads them.
    keys = Keys(data, split, device, prepared.mf_config, prepared.victim) if cache is not None else None
    runs: list[DetectorRun] = []
    stealth: list[dict] = []
    poisoned_by_seed: dict = {}
    reps = list(range(scenario.seeds)) if reps is None else list(reps)
    units = [u for rep in reps for u in units if u.rep == rep]
    total = len(reps) * (len(names) + 1)
    step = 0

    def report(stage: str) -> None:
        if progress is not None and progress(min(1.0, step / total), stage) is False:
            raise CancelledError(f"cancelled during: {stage}")

    for unit in units:
        seed = unit.seed
        report(f"seed {seed}: {fake_source_label(scenario)}")
        fake = fake_profiles(scenario, prepared, seed, device, cache, keys, cache_only).profiles
        step += 1
        poisoned, _ = poisoned_training(split, fake, keys)
        poisoned_by_seed[seed] = poisoned
        is_fake = fake_mask(poisoned.n_users, poisoned.n_real_users)
        if with_stealth:
            stealth.append(_stealth_cached(split.train, fake, targets, cache))
        for name in names:
            report(f"seed {seed}: detector {name}")
            detector = make_detector(name, **detector_params.get(name, {}))
            key = detection_key(detector, poisoned, seed) if cache is not None else None
            result, seconds = detect_through_cache(detector, poisoned, seed, cache, key, cache_only)
            metrics = detection_metrics(is_fake, result.scores, result.flagged)
            runs.append(DetectorRun(name, seed, result.scores, result.flagged, is_fake, metrics, result.threshold, seconds))
            step += 1
    if progress is not None:
        progress(1.0, "done")
    info = {"name": data.name, "n_users": int(data.n_users), "n_items": int(data.n_items), "n_ratings": int(data.n_ratings)}
    return DetectionReport(scenario, info, [int(t) for t in targets], runs, stealth, poisoned_by_seed, detector_params,
                           data.original_item_ids(targets))


def format_detection(report: DetectionReport) -> str:
    """Plain-text table of :meth:`DetectionReport.rows` plus the stealth statistics."""
    header = f"{'detector':<11} {'AUC':>6} {'AP':>6} {'flagged':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'real flagged':>12} {'seconds':>8}"
    lines = [header, "-" * len(header)]

    def f(v, w, p=3):
        return f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"

    for r in report.rows():
        lines.append(f"{r['detector']:<11} {f(r['auc'], 6)} {f(r['average_precision'], 6)} {f(r['n_flagged'], 8, 1)} "
                     f"{f(r['precision'], 9)} {f(r['recall'], 7)} {f(r['f1'], 6)} {f(r['real_flagged'], 12, 1)} {f(r['seconds'], 8, 2)}")
    s = report.stealth_row()
    if s:
        lines.append("")
        lines.append(f"attack stealth (fake vs real): correlation with item means {s['mean_corr_fake']:.2f} vs {s['mean_corr_real']:.2f}; "
                     f"filler popularity {s['filler_popularity_fake']:.1f} vs {s['filler_popularity_real']:.1f}; "
                     f"nearest-user distance {s['nn_distance_fake']:.2f} vs {s['nn_distance_real']:.2f}; rating histogram TV {s['tv_distance']:.2f}")
    return "\n".join(lines)

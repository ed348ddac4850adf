"""Parameter sweeps as tidy tables (the paper's Figs. 2-3).

:func:`sweep` runs one :class:`~apt_core.experiments.pipeline.Scenario` per value of one parameter (a
scenario field such as ``attack_size``, or any declared hyper-parameter ``NAME.PARAM`` such as
``apt.r_plus``; ``python -m apt_core sweep --param apt.r_plus --values 0,0.1,0.2``) and
returns one row per value x phase x seed, ready for :func:`apt_core.plots.results.sweep_figure`.
Everything else in the scenario stays fixed, so with the artifact cache the clean models
(and, for an ERM sweep, the fake profiles and the undefended model) are trained once and
reused across values.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import pandas as pd

from apt_core.errors import CancelledError, ConfigError

ProgressFn = Callable[[float, str], object]

#: columns of the tidy frame, in order (the swept parameter's own name is added after ``value``)
SWEEP_COLUMNS = ["parameter", "value", "phase", "seed", "target_hr", "test_hr", "ri", "ri_note", "ri_undefined_reason", "below_clean",
                 "rank_shift_median", "seconds"]

_NOT_SWEEPABLE = {"seeds", "seed", "device", "data_dir"}


def sweepable_parameters() -> list[str]:
    """Scenario fields, then every declared hyper-parameter as ``NAME.PARAM`` (e.g. ``apt.r_plus``)."""
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.experiments.pipeline import Scenario

    fields = [f.name for f in dataclasses.fields(Scenario) if f.name not in _NOT_SWEEPABLE and f.name != "params"]
    declared = [f"{name}.{p.name}" for registry in (ATTACKS, DEFENSES) for name, cls in registry.items() for p in cls.params]
    return fields + declared


def sweep(base, parameter: str, values: Sequence, progress: ProgressFn | None = None, cache=None, data=None,
          engine=None, on_result: Callable[[object, object], None] | None = None) -> pd.DataFrame:
    """Run ``base`` once per value of ``parameter``; one row per value x phase x seed.

    Columns: ``parameter, value, <parameter>, phase, seed, target_hr, test_hr, ri,
    ri_note, ri_undefined_reason, below_clean, rank_shift_median, seconds``.  ``ri`` is per seed, from that
    seed's origin and attack hit ratios, under the rule of the result rows
    (:meth:`~apt_core.experiments.results.ScenarioResult.per_seed_ri`: None where the attack did
    not lift target HR beyond noise, ``ri_undefined_reason`` says why, and for origin/attack;
    ``ri_note`` in words, "over-correction" above 1);
    ``below_clean``: how far that seed's defended model put the targets below its clean HR.
    ``progress(fraction, stage)`` returning ``False`` cancels (:class:`CancelledError`).
    ``cache`` and ``data`` (the loaded data set, when the sweep does not change it) are
    passed to :func:`~apt_core.experiments.pipeline.run_scenario`.  ``engine``: an
    :class:`apt_core.experiments.engine.EngineConfig`; with ``engine="ray"`` every value's units run
    as Ray tasks that fill ``cache`` first (needs a cache), then the rows are read back
    here exactly as the local (sequential) engine computes them.  ``on_result(value, result)``
    receives each value's :class:`~apt_core.experiments.results.ScenarioResult` (the dashboard records them
    in the run history).
    """
    from apt_core.evaluation.metrics import ri_note
    from apt_core.experiments.pipeline import run_scenario

    if parameter not in sweepable_parameters():
        raise ConfigError(f"cannot sweep {parameter!r}: choose one of {', '.join(sweepable_parameters())}")
    values = list(values)
    if not values:
        raise ConfigError("a sweep needs at least one value")
    scenarios = []
    for v in values:
        if parameter == "defenses" and isinstance(v, str):
            v = tuple(x.strip() for x in v.split(",") if x.strip())
        if "." in parameter:  # a declared hyper-parameter: set it in the scenario's params
            s = dataclasses.replace(base, params={**dict(base.params), parameter: v})
        else:
            s = dataclasses.replace(base, **{parameter: v})
        s.validate()  # fail before any training if one value is invalid
        scenarios.append(s)

    same_data = parameter not in ("dataset", "data_dir")
    share = 0.0  # of the progress bar taken by the Ray tasks
    if cache is not None or (engine is not None and engine.engine != "local"):
        # Ray: each unit a task; local: the points' fits in batches (apt_core.experiments.batching)
        from apt_core.experiments.engine import EngineConfig, data_loader, fill_cache

        loader = data_loader(data if same_data else None)
        share = 0.9
        scaled = None if progress is None else (lambda f, s: progress(share * f, s))
        fill_cache([(s, f"{parameter}={v}") for v, s in zip(values, scenarios)], cache, engine or EngineConfig(), loader, scaled)

    rows: list[dict] = []
    for i, (value, scenario) in enumerate(zip(values, scenarios)):
        def inner(fraction: float, stage: str, i=i, value=value) -> object:
            if progress is None:
                return True
            ok = progress(share + (1 - share) * (i + fraction) / len(values), f"{parameter}={value}: {stage}")
            if ok is False:
                raise CancelledError(f"sweep cancelled at {parameter}={value}")
            return True

        result = run_scenario(scenario, progress=inner, cache=cache, data=data if same_data else None)
        if on_result is not None:
            on_result(value, result)
        # One row per phase and seed: the same per-seed metrics the history records.
        for (phase, seed, target_hr, test_hr, ri, shift_median, _, seconds), detail in zip(result.per_seed_metrics(),
                                                                                             result.per_seed_ri()):
            rows.append({
                "parameter": parameter,
                "value": value,
                parameter: value,
                "phase": phase,
                "seed": seed,
                "target_hr": target_hr,
                "test_hr": test_hr,
                "ri": ri,
                "ri_note": ri_note(detail.ri, detail.reason),
                "ri_undefined_reason": detail.reason,
                "below_clean": detail.below_clean,
                "rank_shift_median": shift_median,
                "seconds": seconds,
            })
    if progress is not None:
        progress(1.0, "sweep done")
    cols = SWEEP_COLUMNS[:2] + ([parameter] if parameter not in SWEEP_COLUMNS else []) + SWEEP_COLUMNS[2:]
    return pd.DataFrame(rows, columns=cols)


def sweep_reading(frame: pd.DataFrame, label: str) -> list[str]:
    """What a sweep's numbers say where they defy the story (a bigger attack lifting less, a defense
    doing worse than none), in sentences computed from ``frame`` (:func:`sweep`'s rows)."""
    def show(v: float) -> str:
        return f"{v:.0%}" if 0 < v < 1 else f"{v:g}"

    means = frame.groupby(["phase", "value"], sort=True).agg(target_hr=("target_hr", "mean"), ri=("ri", "mean"),
                                                              n=("target_hr", "size")).reset_index()
    n_seeds = int(frame["seed"].nunique()) if "seed" in frame else 1
    noise = "one split and one training run" if n_seeds == 1 else f"a mean over {n_seeds} seeds"
    out = []
    attack = means[means["phase"] == "attack"].sort_values("value")
    origin = means[means["phase"] == "origin"].set_index("value")["target_hr"]
    att = attack.set_index("value")["target_hr"]
    for (v1, h1), (v2, h2) in zip(att.items(), list(att.items())[1:]):
        if h2 < h1 - 0.01:
            out.append(f"The attack's target HR falls from {h1:.3f} at {label} {show(v1)} to {h2:.3f} at {show(v2)}: each point is "
                       f"{noise}, so the curve carries noise of that size (more seeds per value narrow it).")
    for _, row in means[~means["phase"].isin(["origin", "attack"])].iterrows():
        ri, v = row["ri"], row["value"]
        if ri is None or pd.isna(ri) or ri >= 0 or v not in att.index:
            continue
        lift = att[v] - origin.get(v, float("nan"))
        out.append(f"At {label} {show(v)}, {row['phase']} leaves the targets at {row['target_hr']:.3f}, above the attack's "
                   f"{att[v]:.3f} (RI {ri:.2f}): worse than no defense here. The attack itself lifted them by only {lift:.3f} "
                   f"over the clean {origin.get(v, float('nan')):.3f}, and RI, a ratio to that lift, swings widely when it is small.")
    return out

"""``python -m apt_core reproduce``: the paper's Tables 2-3 and Figs. 1-3, ours beside the paper's.

Grid (the paper's Tables 2-3; docs/protocol.md): for each target set (``random``, ``unpopular``) and each attack
(Average, Random, AUSH, PGA, TNA -- those registered; a missing one is reported, not
faked), one :class:`~apt_core.experiments.pipeline.Scenario` with the defenses PCMF, AT, APT-rand and
APT, 3% attack (5% on Yelp), 5% ERM users, K = 50, the authors' MF recipe, ``--seeds``
repetitions.  Every scenario goes through the artifact cache, so the clean model of a seed
is trained once for all attacks, and a second identical command is answered from disk.

APT's ERM statistics default to ``clean`` here: that is the authors' setting, the one the
paper's numbers come from (an oracle no real defender has; ``--erm-stats observed`` gives
the honest variant).  The output folder receives:

- ``table2_target_hr.{csv,md}``: target HR@50 per (targets, attack) x phase, mean ± sd over
  seeds, APT with the paper's significance stars against the best baseline, RI, and the
  paper's number beside ours where the paper gives one (empty cells otherwise);
- ``table3_test_hr.{csv,md}``: the same layout for test HR@50 (generalisation);
- ``per_seed.csv``: every phase x seed x scenario;
- ``fig1_rank_shift.html`` (+ ``.csv``), ``fig2_attack_size.html`` (+ ``.csv``),
  ``fig3_erm_fraction.html`` (+ ``.csv``): the figures (plotly, offline: ``plotly.min.js``
  is written once beside them) and the tidy data behind each;
- ``report.md``: settings, wall time, cache use, the tables, notes on what did not reproduce;
- ``timings.csv`` (``--engine ray`` only): one row per unit a Ray task computed (its share of
  the task's wall and CPU seconds, worker pid, the task -- a batch -- and its size), summed by
  stage in ``report.md``.

``--quick``: sample data, 1 seed, 5 epochs, two attacks, short sweeps: a CI smoke test that
runs the whole pipeline in well under a minute.

``--engine ray``: every unit of the grid and the sweeps (one phase of one seed) runs as a Ray
task that fills the artifact cache, then the pass below reads everything back from the cache,
as the local engine computes it (:mod:`apt_core.experiments.engine`), so both write the same tables.

This module runs the grid and the figure sweeps; the paper's numbers are
:mod:`apt_core.reporting.paper`, the tables and ``report.md`` :mod:`apt_core.reporting.report`, the engines
:mod:`apt_core.experiments.engine`.
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from apt_core.errors import CancelledError, ConfigError
from apt_core.reporting.paper import (  # noqa: F401 -- re-exported: their old home
    ATTACK_LABELS,
    PAPER,
    PAPER_ATTACKS,
    PAPER_DEFENSES,
    PAPER_HEADLINE,
    PAPER_PHASES,
    TARGET_SETS,
    PaperValue,
    paper_value,
)
from apt_core.reporting.report import report_markdown, results_table, table_markdown, timing_markdown  # noqa: F401

ProgressFn = Callable[[float, str], object]

@dataclass
class ReproduceConfig:
    """Settings of one ``reproduce`` run (the CLI's flags)."""

    dataset: str = "ml-100k"
    data_dir: str | None = None
    seeds: int = 5
    seed: int = 0
    out: str = "reproduce-out"
    attacks: tuple[str, ...] = PAPER_ATTACKS
    target_sets: tuple[str, ...] = TARGET_SETS
    defenses: tuple[str, ...] = PAPER_DEFENSES
    attack_size: float | None = None  # None: 3% (5% on Yelp)
    erm_fraction: float | None = None  # None: the APT preset's count (paper: 50 on ML-100K/FilmTrust, else 5%)
    erm_stats: str = "clean"
    epochs: int = 25
    k: int | None = None  # None: 50 (1000 on Yelp)
    device: str = "auto"
    figures: bool = True
    fig_attack: str = "average"
    fig_targets: str = "unpopular"
    fig_seeds: int | None = None  # None: min(seeds, 3): the sweeps are the costly part
    attack_sizes: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05)
    erm_fractions: tuple[float, ...] = (0.0, 0.05, 0.10, 0.15, 0.20)
    fig_defenses: tuple[str, ...] = ("at", "apt")
    quick: bool = False
    #: also run every shilling detector on each attack of the grid (detection.csv / .md)
    detection: bool = True
    engine: str = "local"  # local: one unit after the other here; ray: each unit a Ray task (apt_core.experiments.engine)
    ray_address: str | None = None  # --engine ray: None starts a local Ray instance, "auto" joins a running cluster
    jobs: int | None = None  # --engine ray: CPUs of a local Ray instance (None: every core)
    victim: str = "mf"  # the recommender under attack: mf (the paper's), lightgcn, neumf
    #: hyper-parameters as ``(("apt.t_pre", 2), ...)``; each reaches the scenarios that run its method
    params: tuple = ()

    @classmethod
    def quick_config(cls, **overrides) -> "ReproduceConfig":
        """Tiny settings for CI: sample data, 1 seed, 5 epochs, 2 attacks, 3-point sweeps.

        APT's data-set schedule waits T_pre = 15 epochs before its first regeneration: with 5
        epochs APT and APT-rand would be plain MF.  ``--quick`` shortens their schedule to
        T_pre 2, T_inter 2 (regenerations at epochs 2 and 4) so that they act.
        """
        quick_schedule = tuple((f"{name}.{p}", v) for name in ("apt", "apt-rand", "apt-trusted") for p, v in (("t_pre", 2), ("t_inter", 2)))
        base = dict(dataset="sample", seeds=1, epochs=5, attacks=("average", "random"), attack_sizes=(0.01, 0.03, 0.05),
                    erm_fractions=(0.0, 0.05, 0.1), quick=True, params=quick_schedule)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def resolved_attack_size(self) -> float:
        if self.attack_size is not None:
            return self.attack_size
        return 0.05 if self.dataset.lower() == "yelp" else 0.03

    def resolved_k(self) -> int:
        if self.k is not None:
            return self.k
        return 1000 if self.dataset.lower() == "yelp" else 50


@dataclass
class ReproduceResult:
    config: ReproduceConfig
    out: Path
    table2: pd.DataFrame
    table3: pd.DataFrame
    per_seed: pd.DataFrame
    files: list[Path]
    wall_seconds: float
    cache_hits: int
    cache_misses: int
    skipped: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    # --engine ray: one summary per task that computed (unit, label, seconds, CPU seconds, pid)
    unit_timings: list[dict] = field(default_factory=list)
    #: the file the data set was read from (``RatingData.source``; a remembered run checks it)
    data_source: str = ""


def _available(names: Sequence[str], registry: Sequence[str], kind: str, skipped: list[str]) -> tuple[str, ...]:
    keep = []
    for n in names:
        if n in registry:
            keep.append(n)
        else:
            skipped.append(f"{kind} {n!r} is not implemented in this build (not in the registry): its cells are empty")
    return tuple(keep)


def _scenario(cfg: ReproduceConfig, attack: str, targets: str, defenses: tuple[str, ...], seeds: int):
    from apt_core.experiments.pipeline import Scenario

    # The config's hyper-parameters reach the scenarios whose attack or defenses they name.
    params = {key: value for key, value in cfg.params if key.split(".", 1)[0] in (attack, *defenses)}
    return Scenario(dataset=cfg.dataset, data_dir=cfg.data_dir, attack=attack, attack_size=cfg.resolved_attack_size(),
                    targets=targets, defenses=defenses, erm_fraction=cfg.erm_fraction, erm_stats=cfg.erm_stats,
                    k=cfg.resolved_k(), epochs=cfg.epochs, seeds=seeds, seed=cfg.seed, device=cfg.device, victim=cfg.victim,
                    params=params)


class TextProgress:
    """Progress on stderr: a redrawn bar on a terminal, one line per 5% (or stage) otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_bucket = -1
        self.t0 = time.perf_counter()

    def __call__(self, fraction: float, stage: str) -> bool:
        if not self.enabled:
            return True
        elapsed = time.perf_counter() - self.t0
        bar = "#" * int(30 * fraction)
        line = f"[{bar:<30}] {fraction * 100:5.1f}% {elapsed:6.0f}s {stage[:70]}"
        if self.tty:
            self.stream.write("\r" + line.ljust(120))
            if fraction >= 1.0:
                self.stream.write("\n")
        else:
            bucket = int(fraction * 20)
            if bucket != self.last_bucket:
                self.stream.write(line + "\n")
                self.last_bucket = bucket
        self.stream.flush()
        return True


def _all_scenarios(cfg: ReproduceConfig, grid: list[tuple[str, str]], defenses: tuple[str, ...], fig_attack: str,
                   fig_defenses: tuple[str, ...], fig_seeds: int) -> list[tuple]:
    """Every ``(scenario, label)`` of the run: the grid, Fig. 2's points, Fig. 3's points.

    The engine plans their units and runs each shared unit once (Fig. 3's points reuse the
    grid's fake profiles; a point equal to a grid scenario adds nothing).
    """
    wave1 = [(_scenario(cfg, a, t, defenses, cfg.seeds), f"{t} targets, {a}") for t, a in grid]
    wave2 = []
    if cfg.figures:
        fig_targets = cfg.fig_targets if cfg.fig_targets in cfg.target_sets else cfg.target_sets[0]
        base = _scenario(cfg, fig_attack, fig_targets, fig_defenses, fig_seeds)
        for v in cfg.attack_sizes:
            if v != cfg.resolved_attack_size():
                wave1.append((dataclasses.replace(base, attack_size=v), f"Fig. 2 attack size {v:g}"))
        apt_only = tuple(d for d in fig_defenses if d == "apt") or fig_defenses
        for v in cfg.erm_fractions:
            if v != cfg.erm_fraction:
                wave2.append((dataclasses.replace(base, defenses=apt_only, erm_fraction=v), f"Fig. 3 ERM share {v:g}"))
    return wave1 + wave2


def detection_scenarios(cfg: ReproduceConfig, grid: list[tuple[str, str]], attacks: tuple[str, ...]) -> list[tuple["Scenario", str]]:  # noqa: F821
    """The (scenario, label) pairs whose detectors the detection table reports."""
    return [(_scenario(cfg, attack, targets, ("none",), cfg.seeds), f"detectors, {targets} targets, {attack}")
            for targets, attack in grid if attack in attacks]


def detection_table(cfg: ReproduceConfig, grid: list[tuple[str, str]], attacks: tuple[str, ...], cache, data,
                    progress: ProgressFn | None = None) -> pd.DataFrame:
    """Every detector on every (targets, attack) of the grid, means over the seeds, with the
    attack's stealth statistics beside them (an attack caught only through an artefact of
    its filler ratings shows it there).  Detector results come from the artifact cache when
    there (``--engine ray`` computes them as units first)."""
    from apt_core.experiments.detection_run import run_detection

    rows = []
    pairs = detection_scenarios(cfg, grid, attacks)
    for i, (scenario, label) in enumerate(pairs):
        inner = None
        if progress is not None:
            def inner(fraction: float, stage: str, i=i, label=label) -> object:
                return progress((i + fraction) / len(pairs), f"{label}: {stage}")
        report = run_detection(scenario, cache=cache, data=data, progress=inner)
        targets, attack = scenario.targets, scenario.attack
        stealth = report.stealth_row() or {}
        for r in report.rows():
            rows.append({"targets": targets, "attack": attack, **r, **{f"stealth_{k}": v for k, v in stealth.items()}})
    return pd.DataFrame(rows)


def detection_markdown(frame: pd.DataFrame) -> str:
    """One line per (targets, attack): each detector's ROC-AUC, and cogroup's flags at its cut."""
    if frame.empty:
        return "No detection results."
    detectors = list(dict.fromkeys(frame["detector"]))
    lines = ["| targets | attack | " + " | ".join(f"AUC {d}" for d in detectors) + " | precision / recall / real users flagged (first detector) | corr. with item means, fake (real) |",
             "|" + "---|" * (len(detectors) + 4)]
    for (t, a), g in frame.groupby(["targets", "attack"], sort=False):
        by = {r["detector"]: r for _, r in g.iterrows()}
        first = by[detectors[0]]
        fmt = lambda v: "-" if v is None or pd.isna(v) else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {t} | {a} | " + " | ".join(fmt(by[d]["auc"]) if d in by else "-" for d in detectors)
                     + f" | {fmt(first['precision'])} / {fmt(first['recall'])} / {fmt(first['real_flagged'])}"
                     + f" | {fmt(first.get('stealth_mean_corr_fake'))} ({fmt(first.get('stealth_mean_corr_real'))}) |")
    return "\n".join(lines)


def reproduce(cfg: ReproduceConfig, progress: ProgressFn | None = None, cache=None, store=None) -> ReproduceResult:
    """Run the grid and the figure sweeps, write everything to ``cfg.out``; see the module docstring.

    ``cache``: an ArtifactCache (None: no cache).  ``store``: a RunStore to record every
    scenario in the history (None: not recorded).
    """
    from apt_core.attacks import ATTACKS
    from apt_core.data import load_dataset
    from apt_core.defenses import DEFENSES
    from apt_core.experiments.pipeline import run_scenario
    from apt_core.plots.results import rank_shift_boxplot, rank_shift_frame, sweep_figure, sweep_summary
    from apt_core.experiments.sweeps import sweep

    if cfg.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {cfg.seeds}")
    wall0 = time.perf_counter()
    data = load_dataset(cfg.dataset, cfg.data_dir)  # once, shared by every scenario here
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    attacks = _available(cfg.attacks, list(ATTACKS), "attack", skipped)
    defenses = _available(cfg.defenses, list(DEFENSES), "defense", skipped)
    if not attacks:
        raise ConfigError(f"none of the attacks {', '.join(cfg.attacks)} is available; available: {', '.join(ATTACKS) or 'none'}")
    fig_seeds = cfg.fig_seeds or min(cfg.seeds, 3)
    fig_defenses = tuple(d for d in cfg.fig_defenses if d in defenses)
    fig_attack = cfg.fig_attack if cfg.fig_attack in attacks else attacks[0]

    # Work units for the progress bar: scenarios x seeds, plus the sweep points.
    grid = [(t, a) for t in cfg.target_sets for a in attacks]
    units = len(grid) * cfg.seeds
    if cfg.figures:
        units += (len(cfg.attack_sizes) + len(cfg.erm_fractions)) * fig_seeds
    # The detectors of one scenario and seed cost about a quarter of its fits (ML-1M shape: 33 s
    # against about 190 s), so they weigh a quarter on the bar.
    detection_weight = 0.25 * len(grid) * cfg.seeds if cfg.detection else 0.0
    units += detection_weight
    done = 0.0
    stats0 = (cache.stats.hits, cache.stats.misses) if cache is not None else (0, 0)

    def tick(weight: float, label: str):
        def inner(fraction: float, stage: str) -> object:
            if progress is not None and progress(min(1.0, (done + fraction * weight) / units), f"{label}: {stage}") is False:
                raise CancelledError(f"reproduce cancelled during {label}")
            return True

        return inner

    tmp_cache = None
    unit_timings: list[dict] = []
    if cfg.engine == "local" and cfg.jobs not in (None, 1):
        raise ConfigError(f"--jobs {cfg.jobs} runs {cfg.jobs} Ray workers: add --engine ray "
                          "(the local engine computes one unit after the other)")
    if cfg.engine != "local":
        from apt_core.storage.cache import ArtifactCache
        from apt_core.experiments.engine import EngineConfig, fill_cache

        engine = EngineConfig(cfg.engine, cfg.ray_address, cfg.jobs)
        engine.validate()
        if cache is None:
            if cfg.ray_address not in (None, "", "local"):
                raise ConfigError("--engine ray on a cluster hands results over through a --cache-dir every node sees: drop --no-cache")
            # The tasks hand their results over through the cache; without one, a throw-away folder.
            tmp_cache = tempfile.TemporaryDirectory(prefix="apt-reproduce-")
            cache = ArtifactCache(tmp_cache.name)
            stats0 = (0, 0)
        outer = progress
        # The Ray tasks do the work (0-90% of the bar); the pass below only reads the cache.
        unit_timings = fill_cache(_all_scenarios(cfg, grid, defenses, fig_attack, fig_defenses, fig_seeds), cache, engine, lambda s: data,
                                  (lambda f, s: outer(0.9 * f, s)) if outer else None,
                                  detections=detection_scenarios(cfg, grid, attacks) if cfg.detection else ())
        if outer is not None:
            progress = lambda f, s: outer(0.9 + 0.1 * f, s)  # noqa: E731
    elif cache is not None:
        from apt_core.experiments.engine import EngineConfig, fill_cache

        # The local engine fits in batches first (the seeds and scenarios that share a data set
        # train as one MF batch, apt_core.experiments.batching); the pass below reads the cache.
        outer = progress
        fill_cache(_all_scenarios(cfg, grid, defenses, fig_attack, fig_defenses, fig_seeds), cache, EngineConfig("local"), lambda s: data,
                   (lambda f, s: outer(0.9 * f, s)) if outer else None)
        if outer is not None:
            progress = lambda f, s: outer(0.9 + 0.1 * f, s)  # noqa: E731

    results = {}
    run_ids: list[str] = []
    for targets, attack in grid:
        scenario = _scenario(cfg, attack, targets, defenses, cfg.seeds)
        res = run_scenario(scenario, progress=tick(cfg.seeds, f"{targets} targets, {attack}"), cache=cache, data=data)
        results[(targets, attack)] = res
        if store is not None:
            from apt_core.storage.history import HistoryError

            try:
                # once=True: a rerun after a kill does not record a finished scenario twice
                run_ids.append(store.record(res, label="reproduce", once=True))
            except HistoryError as exc:
                skipped.append(f"results not recorded in the history: {exc}")
                store = None  # the tables are still written; one warning is enough
        done += cfg.seeds

    table2 = results_table(results, cfg, "target_hr")
    table3 = results_table(results, cfg, "test_hr")
    per_seed = pd.concat([
        pd.DataFrame(res.to_json()["per_seed"]).assign(targets=t, attack=a) for (t, a), res in results.items()
    ], ignore_index=True)
    files: list[Path] = []

    def write(name: str, text: str) -> None:
        from apt_core.storage.outputs import write_output

        write_output(out / name, text.encode())
        files.append(out / name)

    write("table2_target_hr.csv", table2.to_csv(index=False))
    write("table3_test_hr.csv", table3.to_csv(index=False))
    write("per_seed.csv", per_seed.to_csv(index=False))
    if cfg.detection:
        det = detection_table(cfg, grid, attacks, cache, data, tick(detection_weight, "detection"))
        done += detection_weight
        write("detection.csv", det.to_csv(index=False))
        write("detection.md", detection_markdown(det) + "\n")
    md2 = table_markdown(table2, "Target HR@%d" % cfg.resolved_k())
    md3 = table_markdown(table3, "Test HR@%d" % cfg.resolved_k(), show_ri=False)
    write("table2_target_hr.md", md2 + "\n")
    write("table3_test_hr.md", md3 + "\n")

    figure_notes = []
    if cfg.figures:
        def save_fig(fig, name: str) -> None:
            # "directory": plotly.min.js is written once beside the figures, so they open offline.
            fig.write_html(out / name, include_plotlyjs="directory")
            files.append(out / name)

        fig_targets = cfg.fig_targets if cfg.fig_targets in cfg.target_sets else cfg.target_sets[0]
        key = (fig_targets, fig_attack)
        frame = rank_shift_frame(results[key])
        ds = results[key].data.name
        save_fig(rank_shift_boxplot(frame, title=f"Fig. 1 — rank shift of {fig_targets} targets under the "
                                     f"{ATTACK_LABELS.get(fig_attack, fig_attack)} attack, {ds} ({cfg.seeds} seeds)"), "fig1_rank_shift.html")
        q = frame.groupby("phase", sort=False)["rank_shift"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95]).reset_index()
        write("fig1_rank_shift.csv", q.to_csv(index=False))

        base = _scenario(cfg, fig_attack, fig_targets, fig_defenses, fig_seeds)
        frame2 = sweep(base, "attack_size", list(cfg.attack_sizes), progress=tick(len(cfg.attack_sizes) * fig_seeds, "Fig. 2 sweep"), cache=cache, data=data)
        done += len(cfg.attack_sizes) * fig_seeds
        write("fig2_attack_size.csv", frame2.to_csv(index=False))
        save_fig(sweep_figure(frame2, "attack_size", "target_hr", title=f"Fig. 2 — target HR@{cfg.resolved_k()} against attack size "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds}, {fig_seeds} seeds)"), "fig2_attack_size.html")
        save_fig(sweep_figure(frame2[frame2["ri"].notna()], "attack_size", "ri", title=f"Fig. 2b — RI against attack size "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds})"), "fig2_attack_size_ri.html")

        apt_only = tuple(d for d in fig_defenses if d == "apt") or fig_defenses
        base3 = dataclasses.replace(base, defenses=apt_only, attack_size=cfg.resolved_attack_size())
        frame3 = sweep(base3, "erm_fraction", list(cfg.erm_fractions), progress=tick(len(cfg.erm_fractions) * fig_seeds, "Fig. 3 sweep"), cache=cache, data=data)
        done += len(cfg.erm_fractions) * fig_seeds
        write("fig3_erm_fraction.csv", frame3.to_csv(index=False))
        save_fig(sweep_figure(frame3, "erm_fraction", "target_hr", title=f"Fig. 3 — target HR@{cfg.resolved_k()} against the share of ERM users "
                              f"({ATTACK_LABELS.get(fig_attack, fig_attack)}, {fig_targets} targets, {ds}, {fig_seeds} seeds)"), "fig3_erm_fraction.html")
        save_fig(sweep_figure(frame3, "erm_fraction", "test_hr", title=f"Fig. 3b — test HR@{cfg.resolved_k()} against the share of ERM users ({ds})"),
                 "fig3_erm_fraction_test_hr.html")
        figure_notes = [
            f"Figures use the {ATTACK_LABELS.get(fig_attack, fig_attack)} attack on {fig_targets} targets with {fig_seeds} seed(s); "
            f"Fig. 2 sweeps the attack size over {', '.join(f'{v:.0%}' for v in cfg.attack_sizes)} (defenses: {', '.join(fig_defenses) or 'none'}), "
            f"Fig. 3 the ERM share over {', '.join(f'{v:.0%}' for v in cfg.erm_fractions)} (defense: {', '.join(apt_only) or 'none'}).",
        ]
    wall = time.perf_counter() - wall0
    hits = cache.stats.hits - stats0[0] if cache is not None else 0
    misses = cache.stats.misses - stats0[1] if cache is not None else 0
    if progress is not None:
        progress(1.0, "done")
    report = report_markdown(cfg, results, md2, md3, wall, hits, misses, skipped, figure_notes, defenses, attacks)
    if unit_timings:
        from apt_core.experiments.engine import stage_shares
        from apt_core.reporting.report import stage_share_markdown

        # Where this run's time went: one row per unit a Ray task computed (cached units cost nothing).
        write("timings.csv", pd.DataFrame(unit_timings).to_csv(index=False))
        report += "\n## Time by stage (this run)\n\n" + stage_share_markdown(stage_shares(unit_timings), wall) + "\n"
    write("report.md", report)
    if tmp_cache is not None:
        tmp_cache.cleanup()
    return ReproduceResult(cfg, out, table2, table3, per_seed, files, wall, hits, misses, skipped, run_ids, unit_timings,
                           getattr(data, "source", ""))



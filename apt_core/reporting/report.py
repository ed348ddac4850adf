"""What ``reproduce`` writes: the long tables, their Markdown (ours ± sd beside the paper's), timings and ``report.md``.

Pure functions of finished :class:`~apt_core.experiments.results.ScenarioResult` objects; nothing here
trains or runs anything.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from apt_core.evaluation.metrics import RI_RULE, RI_UNDEFINED_REASONS
from apt_core.plots.results import below_clean_cell, ri_cell
from apt_core.reporting.paper import ATTACK_LABELS, PAPER_DEFENSES, PAPER_HEADLINE, PAPER_PHASES, PaperValue, paper_value
from apt_core.stats import STARS_LEGEND

#: the tables' phases: the paper's, then the clean-data popularity ranking (our yardstick; the paper has none)
TABLE_PHASES = (*PAPER_PHASES, "popularity")


def results_table(results: dict, cfg: "ReproduceConfig", metric: str) -> pd.DataFrame:  # noqa: F821 -- apt_core.reporting.reproduce's
    """Long table: one row per (targets, attack, phase of :data:`TABLE_PHASES`) with ours (mean, sd), stars, RI and the paper's.

    ``ri``, ``ri_undefined_reason``, ``below_clean`` and ``below_clean_share`` are the result rows'
    (:meth:`~apt_core.experiments.results.PhaseResult.row`): RI only where the attack lifted target HR
    beyond noise, and how far each defense pushed the targets below their clean level.
    """
    rows = []
    dataset = cfg.dataset.lower()
    for (targets, attack), res in results.items():
        # Stars are the paper's robustness test (lower target HR is better); test HR gets none.
        sig = res.significance() if metric == "target_hr" else None
        by_phase = {r["phase"]: r for r in res.rows()}
        for phase in TABLE_PHASES:
            r = by_phase.get(phase)
            pv = paper_value(dataset, targets, metric, attack, phase)
            rows.append({
                "dataset": res.data.name, "targets": targets, "attack": attack, "phase": phase,
                "mean": None if r is None else r[metric], "sd": None if r is None else r[f"{metric}_sd"],
                "n_seeds": None if r is None else len(res.phase(phase).target_hr),
                "ri": None if r is None else r["ri"],
                "ri_undefined_reason": None if r is None else r.get("ri_undefined_reason"),
                "ri_note": "" if r is None else r.get("ri_note", ""),
                "below_clean": None if r is None else r.get("below_clean"),
                "below_clean_share": None if r is None else r.get("below_clean_share"),
                "p_value": sig.test.p_value if (sig is not None and phase == sig.method) else None,
                "stars": sig.marker if (sig is not None and phase == sig.method) else "",
                "baseline": sig.baseline if (sig is not None and phase == sig.method) else None,
                "paper": None if pv is None else (pv.low if pv.exact else None),
                "paper_low": None if pv is None else pv.low,
                "paper_high": None if pv is None else pv.high,
                "paper_note": "" if pv is None else pv.note,
            })
    return pd.DataFrame(rows)


def _cell(mean, sd, stars: str, pv: PaperValue | None, n_seeds=None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        ours = "n/a"
    elif sd is None or pd.isna(sd) or (n_seeds is not None and not pd.isna(n_seeds) and n_seeds < 2):
        ours = f"{mean:.4f}{stars}"  # one seed: no spread to show (a "± 0" would claim one)
    else:
        ours = f"{mean:.4f} ± {sd:.4f}{stars}"
    return f"{ours} ({pv})" if pv is not None else ours


def table_markdown(table: pd.DataFrame, metric_label: str, show_ri: bool = True) -> str:
    """Wide Markdown: per target set, attacks as rows, phases as columns; ``ours ± sd (paper)``.

    ``show_ri``: add APT's RI (a target-HR quantity, so only for the robustness table).
    """
    out = []
    # Tables written before the popularity row existed (or built by hand) have only the paper's phases.
    phases = [p for p in TABLE_PHASES if p in set(table["phase"])]
    for targets in dict.fromkeys(table["targets"]):
        part = table[table["targets"] == targets]
        out.append(f"**{metric_label}, {targets} targets** — ours mean ± sd over seeds (paper in parentheses)\n")
        header = ["attack", *phases] + (["RI (APT)"] if show_ri else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for attack in dict.fromkeys(part["attack"]):
            rows = part[part["attack"] == attack].set_index("phase")
            cells = [ATTACK_LABELS.get(attack, attack)]
            for phase in phases:
                r = rows.loc[phase]
                pv = None
                if r["paper_low"] is not None and not pd.isna(r["paper_low"]):
                    pv = PaperValue(float(r["paper_low"]), float(r["paper_high"]))
                cells.append(_cell(r["mean"], r["sd"], r["stars"], pv, r.get("n_seeds")))
            if show_ri:
                reason = rows.loc["apt"].get("ri_undefined_reason")
                cells.append(ri_cell(rows.loc["apt", "ri"], None if reason is None or pd.isna(reason) else reason))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        if show_ri and "below_clean" in part:
            out.append(below_clean_markdown(part) + "\n")
    out.append("Mean ± sample sd over seeds (mean only with one seed). Stars on APT against the best baseline (lowest mean among PCMF, AT, "
               f"APT-rand): {STARS_LEGEND}; ↑ before the stars: APT is "
               "significantly *worse* (higher target HR) than that baseline. "
               "† a range that the paper's text gives over several attacks (or without the target set), "
               "not a per-cell value. No parentheses: the paper gives no number for that cell.")
    if show_ri:
        out.append(f"\nRI: {RI_RULE}.")
    if "popularity" in phases:
        out.append("\npopularity: items ranked by their number of ratings in the clean training data (no MF, no attack, "
                   "the same for every seed); the yardstick for test HR, not a defense.")
    return "\n".join(out)


def below_clean_markdown(part: pd.DataFrame) -> str:
    """One sentence on the defended cells of one target set whose target HR fell below the clean (origin) level."""
    defended = part[~part["phase"].isin(["origin", "attack", "popularity"])]
    below = defended[defended["below_clean"].fillna(0) > 0]
    if below.empty:
        return "Below the clean level: no defense pushed the target HR below origin's."
    cells = [f"{r.phase} on {ATTACK_LABELS.get(r.attack, r.attack)} {below_clean_cell(r.below_clean, r.below_clean_share)}"
             for r in below.itertuples()]
    return ("Below the clean level (origin target HR minus the defense's; RI above 1 is over-correction): "
            + "; ".join(cells) + ".")


def timing_markdown(results: dict) -> str:
    """Mean seconds per seed of each stage, per attack (both target sets pooled; fit times as measured,
    also when the artifact came from the cache)."""
    cols = ["generate attack", "origin", "attack", *[p for p in PAPER_DEFENSES]]
    per: dict[str, dict[str, list[float]]] = {}
    for (_, attack), res in results.items():
        d = per.setdefault(attack, {c: [] for c in cols})
        d["generate attack"] += [v for v in res.attack_seconds if v is not None]
        for p in res.phases:
            if p.phase in d:
                d[p.phase] += list(p.seconds)
    lines = ["| attack | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for attack, d in per.items():
        cells = [f"{np.mean(v):.1f}" if v else "–" for v in (d[c] for c in cols)]
        lines.append(f"| {ATTACK_LABELS.get(attack, attack)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Seconds per seed (fit or generation time as measured when the artifact was made; "
                 "with --engine ray several fits ran at once, so each may be slower than alone).")
    return "\n".join(lines)


def stage_share_markdown(shares: pd.DataFrame, wall: float) -> str:
    """The Ray engine's per-stage table (from :func:`apt_core.experiments.engine.stage_shares`) as markdown."""
    total = float(shares["task_seconds"].sum())
    lines = [f"Summed over the {int(shares['units'].sum())} units computed as Ray tasks: {total:.0f} s of task time "
             f"in {wall:.0f} s wall; each stage's share of the task time.", "",
             "| stage | units | task s | CPU s | share |", "|---|---|---|---|---|"]
    for r in shares.itertuples():
        lines.append(f"| {r.stage} | {r.units} | {r.task_seconds:.1f} | {r.cpu_seconds:.1f} | {r.share:.1%} |")
    return "\n".join(lines)


def apt_ri_summary(apt_rows: list[dict]) -> str:
    """The report's sentence on APT's RI: the mean over the cells where it is defined, the over-corrections, why the rest have none."""
    ri = [r["ri"] for r in apt_rows if r["ri"] is not None]
    if not apt_rows:
        return "Ours: APT did not run, so it has no RI."
    undefined = pd.Series([r.get("ri_undefined_reason") for r in apt_rows if r["ri"] is None], dtype=object).value_counts()
    why = "; ".join(f"{RI_UNDEFINED_REASONS.get(k, k)} ({n})" for k, n in undefined.items())
    if not ri:
        return f"Ours: APT's RI is undefined in every cell: {why}. RI is defined only where the attack lifted target HR beyond noise."
    text = (f"Ours: APT's mean RI over the {len(ri)} attack x target cells with a defined RI is {np.mean(ri):.3f} "
            f"(min {np.min(ri):.3f}, max {np.max(ri):.3f}).")
    over = [r for r in apt_rows if r.get("over_correction")]
    if over:
        text += (f" {len(over)} of them are over-corrections (RI above 1: APT pushed the targets below their clean level, "
                 f"by up to {max(r['below_clean'] for r in over):.4f} HR).")
    if why:
        text += f" No RI in {int(undefined.sum())} cell(s): {why}."
    return text


def report_markdown(cfg, results, md2, md3, wall, hits, misses, skipped, figure_notes, defenses, attacks) -> str:
    from apt_core.experiments.scenario import Scenario
    from apt_core.storage.history import package_versions

    any_res = next(iter(results.values()))
    d = any_res.data
    v = package_versions()
    lines = [
        f"# APT Lab reproduction: {d.name}" + (" (quick CI settings)" if cfg.quick else ""),
        "",
        f"- data: {d.name}, {d.n_users} users, {d.n_items} items, {d.n_ratings} ratings; leave-one-out split seed {cfg.seed}",
        f"- attacks: {', '.join(ATTACK_LABELS.get(a, a) for a in attacks)}; size {cfg.resolved_attack_size():.0%} of real users; "
        f"defenses: {', '.join(defenses)}; {Scenario(erm_fraction=cfg.erm_fraction).erm_description()} (APT preset `paper`), ERM statistics `{cfg.erm_stats}`"
        + (" (the authors' oracle setting, as in their released code)" if cfg.erm_stats == "clean" else ""),
        (f"- MF: {cfg.epochs} epochs (the authors' recipe); " if getattr(cfg, "victim", "mf") == "mf"
         else f"- victim {cfg.victim} (implicit feedback): {cfg.epochs} epochs; ")
        + f"HR@{cfg.resolved_k()}; {cfg.seeds} seed(s) "
        f"({cfg.seed}..{cfg.seed + cfg.seeds - 1}); device {any_res.device}",
        f"- wall time: {wall:.1f} s, engine {getattr(cfg, 'engine', 'local')}"
        + (f" ({cfg.jobs} CPUs)" if getattr(cfg, "engine", "local") != "local" and cfg.jobs else "")
        + f"; artifact cache: {hits} hits, {misses} misses"
        + (" (counted in this process; the Ray tasks filled the cache)" if getattr(cfg, "engine", "local") != "local" else ""),
        f"- versions: apt_core {v['apt_core']}, torch {v['torch']}, numpy {v['numpy']}, python {v['python']}",
        "",
    ]
    for s in skipped:
        lines.append(f"- **not run**: {s}")
    if skipped:
        lines.append("")
    lines += ["## Where the time goes", "", timing_markdown(results), ""]
    lines += ["## Table 2: robustness (target HR)", "", md2, "", "## Table 3: generalisation (test HR)", "", md3, ""]
    if figure_notes:
        lines += ["## Figures", "", *figure_notes,
                  "", "Files: `fig1_rank_shift.html`, `fig2_attack_size.html`, `fig2_attack_size_ri.html`, "
                  "`fig3_erm_fraction.html`, `fig3_erm_fraction_test_hr.html` (data in the matching `.csv`).", ""]
    apt_rows = [r.row(res.phase("origin"), res.phase("attack")) for res in results.values() for r in res.phases if r.phase == "apt"]
    ours = apt_ri_summary(apt_rows)
    lines += ["## The paper's claim", "", f"> {PAPER_HEADLINE}", "", ours, "",
              "Our numbers are measured, not copied: compare each cell with the paper's in parentheses. "
              "Where they differ, the difference is a result, not an error to be tuned away.", ""]
    return "\n".join(lines)

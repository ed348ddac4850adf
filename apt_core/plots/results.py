"""Result tables and figures of the paper, as pure functions (ScenarioResult/DataFrame in).

- :func:`results_table`: one row per phase, mean ± sd over seeds, RI, significance stars
  (the layout of the paper's Tables 2-3 for one attack).
- :func:`rank_shift_frame` + :func:`rank_shift_boxplot`: distribution of target rank shifts
  per defense (the paper's Fig. 1).
- :func:`sweep_figure`: a metric against a swept parameter, mean with sd error bars per
  phase (Figs. 2-3; the frame comes from :func:`apt_core.experiments.sweeps.sweep`).

The dashboard and ``python -m apt_core reproduce`` call exactly these functions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from apt_core.evaluation.metrics import MIN_RI_LIFT, RI_UNDEFINED_REASONS, ri_note
from apt_core.plots.style import TEMPLATE, scaled, wrap_label

if TYPE_CHECKING:  # pragma: no cover - import only for type hints
    from apt_core.experiments.results import ScenarioResult

#: display names of phases (table rows, legends)
PHASE_LABELS: dict[str, str] = {
    "origin": "origin (clean data)",
    "attack": "attack (no defense)",
    "none": "victim, no defense",  # the victim model (MF, NeuMF, LightGCN) trained without a defense
    "pcmf": "PCMF",
    "at": "AT",
    "apt-rand": "APT-rand",
    "apt": "APT",
    "popularity": "popularity (clean data, no MF)",
}

#: result columns in words, for tables a person reads (History, Sweeps); CSV downloads keep the names.
#: ``ri_undefined_reason`` has no label: it is for programs, ``ri_note`` says the same in words.
COLUMN_LABELS: dict[str, str] = {
    "phase": "method", "target_hr": "target HR", "target_hr_sd": "target HR sd", "test_hr": "test HR",
    "test_hr_sd": "test HR sd", "ri": "RI", "ri_note": "RI note", "below_clean": "below clean HR",
    "rank_shift_median": "median rank shift", "prediction_shift": "prediction shift", "seconds": "seconds", "seed": "seed",
}

#: RI in plain words, for captions and tooltips (the rule of apt_core.evaluation.metrics.RI_RULE)
RI_GLOSSARY = ("Robustness improvement: 1 = the defense fully undid the attack, 0 = no better than no defense, "
               "below 0 = worse than no defense, above 1 = over-correction (the defense pushed the targets below "
               f"their clean level; 'below clean' says by how much). Defined only where the attack lifted target HR "
               f"beyond noise: by at least {MIN_RI_LIFT} and, with several seeds, by more than the seed-to-seed spread of that lift.")

#: fixed colours so a phase looks the same in every figure
PHASE_COLORS: dict[str, str] = {
    "origin": "#7f7f7f",
    "attack": "#d62728",
    "none": "#ff9896",
    "pcmf": "#9467bd",
    "at": "#ff7f0e",
    "apt-rand": "#17becf",
    "apt": "#2ca02c",
    "popularity": "#bcbd22",
}

#: axis titles for the metrics and swept parameters
AXIS_LABELS: dict[str, str] = {
    "target_hr": "target HR@K (share of user-target pairs in the top K)",
    "test_hr": "test HR@K (held-out item in the top K)",
    "ri": "robustness improvement RI (1 = attack fully undone, > 1 over-correction)",
    "attack_size": "attack size (fake users / real users)",
    "erm_fraction": "ERM users (share of real users)",
    "epochs": "training epochs",
    "k": "K (top-K cut-off)",
    "filler": "filler items per fake user",
    "n_targets": "number of target items",
    "rank_shift": "rank before − rank after (positive = target promoted)",
    "seconds": "fit time (s)",
}

PERCENT_PARAMETERS = ("attack_size", "erm_fraction")


def phase_label(phase: str) -> str:
    return PHASE_LABELS.get(phase, phase)


def phase_color(phase: str) -> str | None:
    return PHASE_COLORS.get(phase)


def results_table(result: "ScenarioResult") -> pd.DataFrame:
    """One row per phase: target/test HR mean and sd, RI, rank-shift median, seconds, stars.

    The rows of ``result.rows()``: origin, attack, the defenses, then ``popularity`` (the
    clean-data popularity ranking: the yardstick for test HR; no RI, no rank shift).

    Columns: ``phase, label, target_hr, target_hr_sd, test_hr, test_hr_sd, ri, ri_undefined_reason,
    ri_note, below_clean, below_clean_share, over_correction, rank_shift_median, prediction_shift,
    seconds, n_seeds, p_value, stars, baseline`` (the RI keys as in ``result.rows()``).
    ``p_value``/``stars``/``baseline`` are filled on the APT row only (paired t-test of APT's
    per-seed target HR against the best baseline, :mod:`apt_core.stats`).
    """
    rows = result.rows()
    sig = result.significance()
    frame = pd.DataFrame(rows)
    frame.insert(1, "label", [phase_label(p) for p in frame["phase"]])
    frame["n_seeds"] = [len(p.target_hr) for p in result.all_phases]
    frame["p_value"] = None
    frame["stars"] = ""
    frame["baseline"] = None
    if sig is not None:
        at = frame.index[frame["phase"] == sig.method]
        frame.loc[at, "p_value"] = sig.test.p_value
        frame.loc[at, "stars"] = sig.marker  # "↑***": significantly worse than the baseline
        frame.loc[at, "baseline"] = sig.baseline
    cols = ["phase", "label", "target_hr", "target_hr_sd", "test_hr", "test_hr_sd", "ri", "ri_undefined_reason", "ri_note",
            "below_clean", "below_clean_share", "over_correction", "rank_shift_median",
            "prediction_shift", "seconds", "n_seeds", "p_value", "stars", "baseline"]
    return frame[[c for c in cols if c in frame.columns]]


def _fmt(mean, sd=None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}f}"
    if sd is not None and not (isinstance(sd, float) and np.isnan(sd)):
        text += f" ± {sd:.{digits}f}"
    return text


def ri_cell(ri, reason: str | None = None, digits: int = 3) -> str:
    """An RI for a person: "0.815", "1.250 (over-correction)", "-0.306 (worse than no defense)", "– (attack did not lift)"."""
    missing = ri is None or (isinstance(ri, float) and np.isnan(ri))
    note = ri_note(None if missing else float(ri), None if reason is None or pd.isna(reason) else str(reason))
    text = "–" if missing else f"{float(ri):.{digits}f}"
    return f"{text} ({note})" if note else text


def ri_phrase(row: dict, digits: int = 2, explain: bool = False) -> str:
    """One result row's RI in a sentence fragment: "RI 0.82", "RI 1.40: over-correction, target HR 0.040 below
    its clean level", "RI -0.30: worse than no defense", "no RI: the attack did not raise target HR above the clean level".

    ``explain``: a defined RI is followed by its scale ("1 = attack fully undone").
    """
    ri, reason = row.get("ri"), row.get("ri_undefined_reason")
    if ri is None or (isinstance(ri, float) and np.isnan(ri)):
        return "no RI: " + RI_UNDEFINED_REASONS.get(reason or "", "undefined")
    text = f"RI {float(ri):.{digits}f}"
    note = ri_note(float(ri), None)
    if note == "over-correction":
        below = row.get("below_clean")
        text += ": over-correction" + (f", target HR {below:.3f} below its clean level" if below is not None else "")
    elif note:
        text += f": {note}"
    return text + ("; 1 = attack fully undone" if explain else "")


def below_clean_cell(below, share=None, digits: int = 4) -> str:
    """How far a defended row pushed the targets below their clean HR: "0.0000", "0.0120 (26% of clean)", "–" (not defended)."""
    if below is None or (isinstance(below, float) and np.isnan(below)):
        return "–"
    text = f"{float(below):.{digits}f}"
    if float(below) > 0 and share is not None and not (isinstance(share, float) and np.isnan(share)):
        text += f" ({float(share):.0%} of clean)"
    return text


def format_results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable strings ("0.1234 ± 0.0100***") from :func:`results_table`'s output.

    A row over one seed shows no "± 0": a spread needs two seeds at least.
    """
    single = [n is not None and n == n and int(n) <= 1 for n in table["n_seeds"]] if "n_seeds" in table else [False] * len(table)
    target_sd = [None if one else s for one, s in zip(single, table["target_hr_sd"])]
    test_sd = [None if one else s for one, s in zip(single, table["test_hr_sd"])]
    out = pd.DataFrame({
        "phase": table["label"] if "label" in table else table["phase"],
        "target HR": [_fmt(m, s) + (st or "") for m, s, st in zip(table["target_hr"], target_sd, table.get("stars", [""] * len(table)))],
        "test HR": [_fmt(m, s) for m, s in zip(table["test_hr"], test_sd)],
        "RI": [ri_cell(v, r) for v, r in zip(table["ri"], table.get("ri_undefined_reason", [None] * len(table)))],
        "below clean": [below_clean_cell(b, s) for b, s in zip(table.get("below_clean", [None] * len(table)),
                                                                table.get("below_clean_share", [None] * len(table)))],
        # Ranks are whole places: "740", not "740.0" (a median of two can end in .5: shown rounded).
        "targets' median rank gain": [_fmt(v, digits=0) for v in table["rank_shift_median"]],
        "fit time (s)": [_fmt(v, digits=1) for v in table["seconds"]],
    })
    return out


def rank_shift_frame(result: "ScenarioResult") -> pd.DataFrame:
    """Tidy rank shifts: ``phase, seed, user, target, rank_before, rank_after, rank_shift``.

    ``rank_before`` is the target's rank under the clean model of the same seed, so the
    ``origin`` rows are all zero and ``attack`` shows what the attack did.  Pairs where the
    user rated the target in train (undefined rank) are left out.  ``user`` and ``target`` are
    the data set's own user and item ids (as in its rating file and ``--targets``).
    """
    origin = result.phase("origin")
    parts = []
    for phase in result.phases:
        for r, after in enumerate(phase.evaluations):
            before = origin.evaluations[r]
            valid = (before.target_ranks >= 0) & (after.target_ranks >= 0)
            users, cols = np.nonzero(valid)
            rb = before.target_ranks[users, cols]
            ra = after.target_ranks[users, cols]
            parts.append(pd.DataFrame({
                "phase": phase.phase,
                "seed": result.scenario.seed + r,
                "user": result.data.user_ids[users],
                "target": result.data.item_ids[np.asarray(result.targets)[cols]],
                "rank_before": rb.astype(np.int64),
                "rank_after": ra.astype(np.int64),
                "rank_shift": (rb - ra).astype(np.int64),
            }))
    if not parts:
        return pd.DataFrame(columns=["phase", "seed", "user", "target", "rank_before", "rank_after", "rank_shift"])
    return pd.concat(parts, ignore_index=True)


def rank_shift_boxplot(frame: pd.DataFrame, title: str = "", include_origin: bool = False, font_scale: float = 1.0) -> go.Figure:
    """Box plot of rank shifts per phase (the paper's Fig. 1).

    ``origin`` (all zero by construction) is hidden unless ``include_origin``; ``none`` is
    hidden when ``attack`` is present (they are the same model).  Outliers are not drawn
    one by one (tens of thousands of pairs); the whiskers show 1.5 IQR.
    """
    phases = list(dict.fromkeys(frame["phase"])) if len(frame) else []
    if not include_origin:
        phases = [p for p in phases if p != "origin"]
    if "attack" in phases and "none" in phases:
        phases.remove("none")
    fig = go.Figure()
    for phase in phases:
        values = frame.loc[frame["phase"] == phase, "rank_shift"].to_numpy()
        fig.add_trace(go.Box(y=values, name=wrap_label(phase_label(phase)), marker_color=phase_color(phase), boxpoints=False, boxmean=True))
    fig.update_layout(
        title=title or "Rank shift of the target items per defense (rank before attack − rank after)",
        xaxis_title="model (trained on the poisoned data unless 'clean')",
        yaxis_title=AXIS_LABELS["rank_shift"],
        legend_title="model",
        showlegend=True,
        template=TEMPLATE,
    )
    fig.add_hline(y=0, line_dash="dot", line_color="#444", annotation_text="no change", annotation_position="bottom right")
    return scaled(fig, font_scale)


def sweep_summary(frame: pd.DataFrame, x: str, y: str = "target_hr") -> pd.DataFrame:
    """Mean, sd and count of ``y`` per (phase, ``x``): the numbers behind :func:`sweep_figure`."""
    if x not in frame.columns:
        raise KeyError(f"column {x!r} not in the sweep frame (columns: {', '.join(frame.columns)})")
    grouped = frame.groupby(["phase", x], sort=False)[y]
    out = grouped.agg(mean="mean", sd=lambda s: float(s.std(ddof=1)) if s.count() > 1 else 0.0, n="count").reset_index()
    return out


def sweep_figure(frame: pd.DataFrame, x: str, y: str = "target_hr", title: str = "", font_scale: float = 1.0, height: int = 420) -> go.Figure:
    """Mean of ``y`` against ``x`` with sd error bars, one line per phase (Figs. 2-3).

    ``frame`` is tidy (one row per value x phase x seed), e.g. from
    :func:`apt_core.experiments.sweeps.sweep`; ``x`` is the swept column (``value`` or the parameter's
    own name).  Shares (attack size, ERM fraction) are shown in percent.
    """
    summary = sweep_summary(frame, x, y)
    parameter = x
    if x == "value" and "parameter" in frame.columns and frame["parameter"].nunique() == 1:
        parameter = str(frame["parameter"].iloc[0])
    percent = parameter in PERCENT_PARAMETERS
    fig = go.Figure()
    for phase in dict.fromkeys(summary["phase"]):
        part = summary[summary["phase"] == phase].sort_values(x)
        xs = part[x].to_numpy(dtype=float) * (100 if percent else 1) if np.issubdtype(part[x].dtype, np.number) else part[x]
        fig.add_trace(go.Scatter(
            x=xs, y=part["mean"], error_y=dict(type="data", array=part["sd"].fillna(0), visible=True),
            mode="lines+markers", name=phase_label(phase), line=dict(color=phase_color(phase)),
        ))
    x_label = AXIS_LABELS.get(parameter, parameter)
    if percent:
        x_label = x_label + " (%)"
    fig.update_layout(
        title=title or f"{AXIS_LABELS.get(y, y).split(' (')[0]} against {x_label.split(' (')[0]} (mean ± sd over seeds)",
        xaxis_title=x_label,
        yaxis_title=wrap_label(AXIS_LABELS.get(y, y), 34),
        showlegend=True,
        template=TEMPLATE,
        # The legend below the plot: on its right it took a third of a half-width figure and clipped the names.
        height=height, margin=dict(l=70, r=20, t=60, b=110),
        legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0.0),
    )
    if y == "ri":  # the two levels that give RI its meaning; above 1 is over-correction, not "better than perfect"
        fig.add_hline(y=1.0, line_dash="dot", line_color="#444", annotation_text="1: attack undone (above: over-correction)",
                      annotation_position="top left")
        fig.add_hline(y=0.0, line_dash="dot", line_color="#444", annotation_text="0: no better than no defense",
                      annotation_position="bottom left")
    return scaled(fig, font_scale)


def undefined_ri_message(reasons) -> str:
    """Why a set of rows has no RI, in words (the reasons that occur, most frequent first), for pages and reports."""
    counts = pd.Series([r for r in reasons if r is not None and not pd.isna(r) and r != "not-a-defense"], dtype=object).value_counts()
    if counts.empty:
        return "RI is undefined here: no defense ran."
    words = "; ".join(RI_UNDEFINED_REASONS.get(r, r) for r in counts.index)
    return f"RI is undefined here: {words}. It is defined only where the attack lifted target HR beyond noise."


# --- Classroom views of one result (Defense and Lesson pages) ------------------------------


def reach_frame(result: "ScenarioResult") -> pd.DataFrame:
    """Per phase: target HR@K and the share of real users whose top-K holds at least one target.

    Columns ``phase, label, target_hr, users_reached, share_reached`` (means over seeds;
    ``users_reached`` of the first seed).  Both come from the evaluations' target ranks.
    """
    k = result.scenario.k
    rows = []
    for phase in result.phases:
        if not phase.evaluations:
            continue
        shares, counts = [], []
        for ev in phase.evaluations:
            hit = ((ev.target_ranks >= 0) & (ev.target_ranks < k)).any(axis=1)
            shares.append(float(hit.mean()) if hit.size else 0.0)
            counts.append(int(hit.sum()))
        rows.append({"phase": phase.phase, "label": phase_label(phase.phase), "target_hr": float(np.mean(phase.target_hr)),
                     "users_reached": counts[0], "share_reached": float(np.mean(shares))})
    return pd.DataFrame(rows, columns=["phase", "label", "target_hr", "users_reached", "share_reached"])


def _hr_axis_max(values) -> float:
    """An upper bound for a hit-ratio axis that fits the data (never beyond 1)."""
    top = float(np.nanmax(values)) if len(values) else 0.0
    return float(min(1.0, max(0.01, top * 1.2)))


def method_bar_figure(frame: pd.DataFrame, column: str = "target_hr", title: str = "", k: int = 50, font_scale: float = 1.0,
                      height: int = 440) -> go.Figure:
    """Bars per defense with the origin (clean) and attack (no defense) values as reference lines.

    ``frame`` is :func:`reach_frame`'s output; ``column`` is ``target_hr`` or ``share_reached``.
    """
    refs = {p: float(frame.loc[frame["phase"] == p, column].iloc[0]) for p in ("origin", "attack") if (frame["phase"] == p).any()}
    shown = frame[~frame["phase"].isin(["origin", "attack", "popularity"])]
    values = shown[column].to_numpy(dtype=float)
    percent = column == "share_reached"
    scale = 100.0 if percent else 1.0
    top = _hr_axis_max(np.concatenate([values, list(refs.values())])) * scale  # fits the data, never past 1
    fig = go.Figure(go.Bar(
        x=[wrap_label(v) for v in shown["label"]], y=values * scale, marker_color=[phase_color(p) or "#4C78A8" for p in shown["phase"]],
        text=[f"{v * scale:.1f}%" if percent else f"{v:.3f}" for v in values],
        textposition=bar_label_positions(values * scale, [v * scale for v in refs.values()], top * 1.1), name="defense",
        showlegend=False, cliponaxis=False,
    ))
    # Reference lines named in the legend (annotations on the lines would collide with the bar labels).
    dashes = {"origin": ("dash", "clean data, no attack"), "attack": ("dot", "attack, no defense")}
    for phase, value in refs.items():
        dash, text = dashes[phase]
        fig.add_hline(y=value * scale, line_dash=dash, line_color=phase_color(phase), line_width=3)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=phase_color(phase), dash=dash, width=3),
                                 name=f"{text}: {value * scale:.1f}%" if percent else f"{text}: {value:.3f}"))
    y_title = f"real users with a target in their top-{k} (%)" if percent else f"target HR@{k}"
    fig.update_layout(title=title or (f"Share of real users reached per method" if percent else f"Target HR@{k} per method"),
                      xaxis_title=None, yaxis_title=y_title, template=TEMPLATE,
                      yaxis_range=[0, top * 1.1], height=height, margin=dict(l=70, r=20, t=60, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0))
    return scaled(fig, font_scale)


def bar_label_positions(values, lines, axis_top: float, label_share: float = 0.09) -> list[str]:
    """Per bar, ``outside`` (its value above the bar) unless a reference line runs through that label
    (a line within ``label_share`` of the axis above the bar's top), then ``inside``: the attack line
    crossed the label of a bar just below it.  A bar too short to hold its label keeps it outside."""
    room = label_share * axis_top
    return ["inside" if v >= 1.5 * room and any(0 <= line - v <= room for line in lines) else "outside"
            for v in np.asarray(values, dtype=float)]


def reached_users_frame(result: "ScenarioResult", phases: list[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Real users whose top-K holds a target under the attack, with the targets' ranks per method (seed 1).

    One row per reached user: ``user`` (the data set's own user id), then per phase the targets in the
    user's top-K as "title (rank r)", empty when none.  Sorted by how many targets the
    attack put in the list.
    """
    k = result.scenario.k
    phases = phases or [p.phase for p in result.phases if p.phase != "origin"]  # origin: the clean model, not reached by construction
    titles = [result.data.title(int(t)) for t in result.targets]
    attack = result.phase("attack").evaluations[0].target_ranks
    hit = (attack >= 0) & (attack < k)
    users = np.flatnonzero(hit.any(axis=1))
    users = users[np.argsort(-hit[users].sum(axis=1), kind="stable")][:limit]  # limit None: all
    out = pd.DataFrame({"user": result.data.user_ids[users]})
    for name in phases:
        ranks = result.phase(name).evaluations[0].target_ranks
        cells = []
        for u in users:
            inside = [(int(ranks[u, j]), titles[j]) for j in range(ranks.shape[1]) if 0 <= ranks[u, j] < k]
            cells.append(", ".join(f"{t} (rank {r + 1})" for r, t in sorted(inside)))
        out[f"targets in top-{k}: {phase_label(name)}"] = cells
    return out


def before_after_frame(before, after) -> pd.DataFrame:
    """Target HR per method, previous settings vs current (the Defense page's before/after table)."""
    a, b = reach_frame(before), reach_frame(after)
    out = b[["label"]].rename(columns={"label": "method"}).copy()
    prev = dict(zip(a["label"], a["target_hr"]))
    out["target HR, previous"] = [prev.get(lbl) for lbl in b["label"]]
    out["target HR, now"] = b["target_hr"].to_numpy()
    return out.round(4)


def popularity_note(table: pd.DataFrame) -> str | None:
    """The popularity row in words, from the numbers it sits beside (None without that row).

    Popularity recommends every user the most-rated items they have not rated, from the clean
    data and without a model.  Its test HR above MF's means most held-out items are popular ones,
    so ignoring personal taste scores well on this metric: a yardstick for test HR, not a defense.
    """
    rows = {str(p): r for p, r in zip(table["phase"], table.to_dict("records"))}
    pop, clean = rows.get("popularity"), rows.get("origin")
    if pop is None or clean is None or pop.get("test_hr") is None or clean.get("test_hr") is None:
        return None
    p, m = float(pop["test_hr"]), float(clean["test_hr"])
    if np.isnan(p) or np.isnan(m):
        return None
    compare = ("above" if p > m else "at or below")
    why = ("most users' held-out items are popular ones, so recommending what everybody rates, without any personal "
           "taste, scores well on this measure" if p > m else "the personal model finds held-out items that popularity misses")
    return ("The popularity row recommends every user the most-rated items they have not rated (clean data, no model). "
            f"Its test HR ({p:.3f}) is {compare} clean MF's ({m:.3f}): {why}. It is a yardstick for test HR, not a defense.")

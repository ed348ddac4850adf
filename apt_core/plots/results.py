"""Result tables and figures of the paper, as pure functions (ScenarioResult/DataFrame in).

- :func:`results_table`: one row per phase, mean ± sd over seeds, RI, significance stars
  (the layout of the paper's Tables 2-3 for one attack).
- :func:`rank_shift_frame` + :func:`rank_shift_boxplot`: distribution of target rank shifts
  per defense (the paper's Fig. 1).
- :func:`sweep_figure`: a metric against a swept parameter, mean with sd error bars per
  phase (Figs. 2-3; the frame comes from :func:`apt_core.sweeps.sweep`).

The dashboard and ``python -m apt_core reproduce`` call exactly these functions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

if TYPE_CHECKING:  # pragma: no cover - import only for type hints
    from apt_core.results import ScenarioResult

#: display names of phases (table rows, legends)
PHASE_LABELS: dict[str, str] = {
    "origin": "origin (clean data)",
    "attack": "attack (no defense)",
    "none": "MF, no defense",
    "pcmf": "PCMF",
    "at": "AT",
    "apt-rand": "APT-rand",
    "apt": "APT",
    "popularity": "popularity (clean data, no MF)",
}

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
    "ri": "robustness improvement RI (1 = attack fully undone)",
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

    Columns: ``phase, label, target_hr, target_hr_sd, test_hr, test_hr_sd, ri,
    rank_shift_median, prediction_shift, seconds, n_seeds, p_value, stars, baseline``.
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
    cols = ["phase", "label", "target_hr", "target_hr_sd", "test_hr", "test_hr_sd", "ri", "rank_shift_median",
            "prediction_shift", "seconds", "n_seeds", "p_value", "stars", "baseline"]
    return frame[[c for c in cols if c in frame.columns]]


def _fmt(mean, sd=None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}f}"
    if sd is not None and not (isinstance(sd, float) and np.isnan(sd)):
        text += f" ± {sd:.{digits}f}"
    return text


def format_results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable strings ("0.1234 ± 0.0100***") from :func:`results_table`'s output."""
    out = pd.DataFrame({
        "phase": table["label"] if "label" in table else table["phase"],
        "target HR": [_fmt(m, s) + (st or "") for m, s, st in zip(table["target_hr"], table["target_hr_sd"], table.get("stars", [""] * len(table)))],
        "test HR": [_fmt(m, s) for m, s in zip(table["test_hr"], table["test_hr_sd"])],
        "RI": [_fmt(v, digits=3) for v in table["ri"]],
        "rank shift (median)": [_fmt(v, digits=1) for v in table["rank_shift_median"]],
        "seconds": [_fmt(v, digits=2) for v in table["seconds"]],
    })
    return out


def rank_shift_frame(result: "ScenarioResult") -> pd.DataFrame:
    """Tidy rank shifts: ``phase, seed, user, target, rank_before, rank_after, rank_shift``.

    ``rank_before`` is the target's rank under the clean model of the same seed, so the
    ``origin`` rows are all zero and ``attack`` shows what the attack did.  Pairs where the
    user rated the target in train (undefined rank) are left out.  ``target`` is the dense
    item index (``result.data.item_ids[target]`` is the data set's own id).
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
                "user": users.astype(np.int64),
                "target": np.asarray(result.targets)[cols].astype(np.int64),
                "rank_before": rb.astype(np.int64),
                "rank_after": ra.astype(np.int64),
                "rank_shift": (rb - ra).astype(np.int64),
            }))
    if not parts:
        return pd.DataFrame(columns=["phase", "seed", "user", "target", "rank_before", "rank_after", "rank_shift"])
    return pd.concat(parts, ignore_index=True)


def rank_shift_boxplot(frame: pd.DataFrame, title: str = "", include_origin: bool = False) -> go.Figure:
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
        fig.add_trace(go.Box(y=values, name=phase_label(phase), marker_color=phase_color(phase), boxpoints=False, boxmean=True))
    fig.update_layout(
        title=title or "Rank shift of the target items per defense (rank before attack − rank after)",
        xaxis_title="phase (model trained on poisoned data unless 'origin')",
        yaxis_title=AXIS_LABELS["rank_shift"],
        legend_title="phase",
        showlegend=True,
        template="plotly_white",
    )
    fig.add_hline(y=0, line_dash="dot", line_color="#444", annotation_text="no change", annotation_position="bottom right")
    return fig


def sweep_summary(frame: pd.DataFrame, x: str, y: str = "target_hr") -> pd.DataFrame:
    """Mean, sd and count of ``y`` per (phase, ``x``): the numbers behind :func:`sweep_figure`."""
    if x not in frame.columns:
        raise KeyError(f"column {x!r} not in the sweep frame (columns: {', '.join(frame.columns)})")
    grouped = frame.groupby(["phase", x], sort=False)[y]
    out = grouped.agg(mean="mean", sd=lambda s: float(s.std(ddof=1)) if s.count() > 1 else 0.0, n="count").reset_index()
    return out


def sweep_figure(frame: pd.DataFrame, x: str, y: str = "target_hr", title: str = "") -> go.Figure:
    """Mean of ``y`` against ``x`` with sd error bars, one line per phase (Figs. 2-3).

    ``frame`` is tidy (one row per value x phase x seed), e.g. from
    :func:`apt_core.sweeps.sweep`; ``x`` is the swept column (``value`` or the parameter's
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
        yaxis_title=AXIS_LABELS.get(y, y),
        legend_title="phase",
        showlegend=True,
        template="plotly_white",
    )
    return fig

"""Pure figure and table functions for the dashboard's exploration views.

Data, Attack, Profiles, influence and Theory views: each function takes arrays or frames and
returns a plotly figure (or a pandas DataFrame); none trains anything or imports Streamlit,
so the CLI's reports and the tests can call them too.  Every figure has a title, axis labels
and a legend a student can read.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from apt_core.plots.style import TEMPLATE, scaled, wrap_label

# Colours: one meaning each, across all pages.
REAL = "#4C78A8"
FAKE = "#E45756"
ERM = "#54A24B"
TARGET = "#F58518"
PHASE_COLOURS = {"origin": "#9D9D9D", "attack": FAKE, "none": FAKE, "apt": ERM, "apt-rand": "#88D27A", "at": "#B279A2", "pcmf": "#72B7B2"}
METHOD_COLOURS = {"standard": FAKE, "at": "#B279A2", "apt": ERM}
METHOD_LABELS = {"standard": "standard training", "at": "adversarial training (AT)", "apt": "APT"}


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 420, legend_below: bool = False, font_scale: float = 1.0) -> go.Figure:
    # Many legend entries wrap onto several rows: below the plot they cannot cover the title.
    legend = (
        dict(orientation="h", yanchor="top", y=-0.2 * font_scale ** 2, xanchor="left", x=0.0)  # below the (scaled) axis title
        if legend_below
        else dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0)
    )
    # Long titles wrap instead of running out of a half-width figure (they were clipped on Attack and
    # Profiles); the margins grow by a line per extra line.
    title = wrap_label(title, max(24, round(44 / font_scale)))
    y = wrap_label(y, max(20, round(34 / font_scale)))
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left"),
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        margin=dict(l=60 + 18 * y.count("<br>"), r=20, t=60 + 24 * title.count("<br>"), b=120 if legend_below else 50),
        legend=legend,
        template=TEMPLATE,
    )
    return scaled(fig, font_scale)


# --- Data ---------------------------------------------------------------------------------


def long_tail_figure(item_counts: np.ndarray, title: str = "Long tail: ratings per item", font_scale: float = 1.0) -> go.Figure:
    """Items sorted by popularity (log scale) with the 'unpopular' band (1-4 ratings) marked."""
    counts = np.sort(np.asarray(item_counts))[::-1]
    rank = np.arange(1, len(counts) + 1)
    fig = go.Figure(go.Scatter(x=rank, y=np.maximum(counts, 0.8), mode="lines", name="ratings of the item", line=dict(color=REAL)))
    fig.add_hrect(y0=1, y1=4.999, fillcolor=TARGET, opacity=0.15, line_width=0, annotation_text="unpopular (1-4 ratings)", annotation_position="inside top left")
    top = float(max(5, counts.max() if len(counts) else 5))
    # log axes take log10 bounds; dtick=1: ticks at 1, 10, 100 only (minor "2, 5" labels are unreadable)
    fig.update_yaxes(type="log", range=[np.log10(0.7), np.log10(top * 2.5)], dtick=1)
    return _layout(fig, title, "item rank (most popular first)", "number of ratings (log)", font_scale=font_scale)


def rating_histogram_figure(ratings: np.ndarray, grid: np.ndarray, title: str = "Rating distribution", font_scale: float = 1.0) -> go.Figure:
    """Share of ratings on each grid value."""
    ratings = np.asarray(ratings)
    shares = [float(np.isclose(ratings, g).mean()) if len(ratings) else 0.0 for g in grid]
    fig = go.Figure(go.Bar(x=[f"{g:g}" for g in grid], y=shares, name="share of ratings", marker_color=REAL))
    return _layout(fig, title, "rating", "share of ratings", height=340, font_scale=font_scale)


def user_activity_figure(user_counts: np.ndarray, title: str = "Ratings per user", font_scale: float = 1.0) -> go.Figure:
    fig = go.Figure(go.Histogram(x=np.asarray(user_counts), nbinsx=40, name="users", marker_color=REAL))
    return _layout(fig, title, "ratings per user", "number of users", height=340, font_scale=font_scale)


# --- Attack -------------------------------------------------------------------------------


def _step_colour(label: str) -> str:
    first = label.split(" ")[0].lower()
    return {"clean": PHASE_COLOURS["origin"], "attacked": FAKE, "defended": ERM}.get(first, PHASE_COLOURS.get(first, REAL))


def hit_ratio_steps_figure(steps: Sequence[tuple[str, float]], k: int, title: str | None = None, font_scale: float = 1.0) -> go.Figure:
    """Bars of target HR@K at each step (e.g. clean -> attacked -> defended)."""
    names = [s[0] for s in steps]
    values = [float(s[1]) if s[1] is not None else np.nan for s in steps]
    colours = [_step_colour(n) for n in names]
    top = min(1.08, max(0.05, np.nanmax(values) * 1.25 if len(values) else 1))  # room for the labels; a hit ratio never exceeds 1
    text = [f"{v:.3f}" for v in values]
    title = title or f"Target items' hit ratio HR@{k} at each step"
    if len(names) > 3 or max((len(n) for n in names), default=0) > 24:
        # Many or long step names (the Overview's four, one of 50 characters): horizontal bars, the names
        # on the left, so that no name is rotated or overlaps its neighbour and the bars keep their length.
        fig = go.Figure(go.Bar(y=[wrap_label(n, 22) for n in names], x=values, orientation="h", marker_color=colours, text=text,
                               textposition="outside", name=f"target HR@{k}", cliponaxis=False))
        fig.update_xaxes(range=[0, top])
        fig.update_yaxes(autorange="reversed", automargin=True)  # the first step on top
        return _layout(fig, title, f"target HR@{k}", "", height=380, font_scale=font_scale)
    fig = go.Figure(go.Bar(x=[wrap_label(n) for n in names], y=values, marker_color=colours, text=text, textposition="outside",
                           name=f"target HR@{k}", cliponaxis=False))
    fig.update_yaxes(range=[0, top])
    return _layout(fig, title, "step", f"target HR@{k}", height=380, font_scale=font_scale)


def rank_shift_histogram(shifts: np.ndarray, title: str = "Rank shift of the target items (before minus after the attack)", font_scale: float = 1.0) -> go.Figure:
    """Distribution of rank shifts over (real user, target) pairs; positive = promoted."""
    shifts = np.asarray(shifts)
    fig = go.Figure(go.Histogram(x=shifts, nbinsx=60, name="(user, target) pairs", marker_color=FAKE))
    if len(shifts):
        med = float(np.median(shifts))
        fig.add_vline(x=med, line_dash="dash", annotation_text=f"median {med:.0f}")
    return _layout(fig, title, "rank shift (positions gained; > 0 = promoted)", "number of (user, target) pairs", height=380, font_scale=font_scale)


def top_k_frame(titles: Sequence[str], items_before: np.ndarray, items_after: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """Side-by-side top-K lists for one user; targets flagged."""
    targets = set(int(t) for t in targets)
    rows = []
    for pos, (b, a) in enumerate(zip(items_before, items_after), start=1):
        rows.append(
            {
                "rank": pos,
                "before the attack": titles[int(b)],
                "target (before)": int(b) in targets,
                "after the attack": titles[int(a)],
                "target (after)": int(a) in targets,
            }
        )
    return pd.DataFrame(rows)


def per_target_frame(titles: Sequence[str], targets: np.ndarray, counts: np.ndarray, hr_before: np.ndarray, hr_after: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": [titles[int(t)] for t in targets],
            "train ratings": [int(counts[int(t)]) for t in targets],
            "HR before": np.asarray(hr_before, dtype=float),
            "HR after": np.asarray(hr_after, dtype=float),
        }
    )


def influence_ranking_figure(influence: np.ndarray, targets: np.ndarray, titles: Sequence[str] | None = None, top: int = 200, title: str = "APT influence ranking (most negative first)", font_scale: float = 1.0) -> go.Figure:
    """Items ordered by influence (most negative = most useful for ERM users), targets marked."""
    influence = np.asarray(influence, dtype=float)
    order = np.argsort(influence, kind="stable")
    position = np.empty(len(order), dtype=int)
    position[order] = np.arange(len(order))
    # Show at least down to the lowest-ranked target, so every marker sits on its bar.
    deepest = int(position[np.asarray(targets, dtype=int)].max()) + 10 if len(targets) else 0
    shown = order[: min(max(top, deepest), len(order))]
    fig = go.Figure(go.Bar(x=np.arange(1, len(shown) + 1), y=influence[shown], marker_color=REAL, name="item influence I_j"))
    fig.update_yaxes(exponentformat="e")  # "-3e-6", not the SI prefix "-3µ"
    ranks = {int(j): r for r, j in enumerate(order, start=1)}
    tx, ty, tt = [], [], []
    for t in np.asarray(targets, dtype=int):
        tx.append(ranks[int(t)])
        ty.append(influence[int(t)])
        tt.append(titles[int(t)] if titles is not None else f"item {int(t)}")
    fig.add_trace(go.Scatter(x=tx, y=ty, mode="markers", marker=dict(color=TARGET, size=12, symbol="diamond", line=dict(color="black", width=1)), name="target items", text=tt, hovertemplate="%{text}<br>rank %{x}<br>I=%{y:.3g}"))
    return _layout(fig, title, "rank in the influence ordering", "influence on the empirical risk", font_scale=font_scale)


def influence_rounds_figure(ranks: list[list[int]], target_labels: Sequence[str], n_items: int, title: str = "Target items' position in APT's influence ordering, per regeneration round", font_scale: float = 1.0) -> go.Figure:
    """Rank (1 = most negative influence) of each target at every ERM regeneration round."""
    ranks_arr = np.asarray(ranks, dtype=float).reshape(len(ranks), -1)
    fig = go.Figure()
    rounds = np.arange(1, len(ranks_arr) + 1)
    for j, label in enumerate(target_labels):
        fig.add_trace(go.Scatter(x=rounds, y=ranks_arr[:, j] + 1, mode="lines+markers", name=str(label)))
    fig.add_hrect(y0=1, y1=50, fillcolor=ERM, opacity=0.15, line_width=0, annotation_text="50 most negative", annotation_position="bottom left")
    fig.update_yaxes(range=[n_items + 1, 0])  # rank 1 at the top
    fig.update_xaxes(dtick=1)
    return _layout(fig, title, "regeneration round", f"rank among {n_items} items (1 = most negative)", height=460, legend_below=True, font_scale=font_scale)


def runs_comparison_figure(frame: pd.DataFrame, y: str = "target_hr", title: str = "Target HR per phase, chosen runs side by side",
                           run: str = "run_id", phase: str = "phase", font_scale: float = 1.0) -> go.Figure:
    """Grouped bars: one group per phase, one bar per run (``run``, ``phase`` and ``y`` columns)."""
    fig = go.Figure()
    for run_id, part in frame.groupby(run, sort=False):
        fig.add_trace(go.Bar(x=[wrap_label(v) for v in part[phase]], y=part[y], name=str(run_id)))
    fig.update_layout(barmode="group")
    return _layout(fig, title, phase, y.replace("_", " "), height=400, legend_below=True, font_scale=font_scale)


# --- Profiles -----------------------------------------------------------------------------


def pca_2d(factors: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (numpy SVD, deterministic sign)."""
    x = np.asarray(factors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    out = x @ (comps * signs[:, None]).T
    if out.shape[1] < 2:
        out = np.hstack([out, np.zeros((len(out), 2 - out.shape[1]))])
    return out


def factor_projection_figure(user_factors: np.ndarray, n_real: int, title: str = "User factors, 2-D projection (PCA)", font_scale: float = 1.0) -> go.Figure:
    """Real users vs injected users in the attacked model's factor space."""
    xy = pca_2d(user_factors)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xy[:n_real, 0], y=xy[:n_real, 1], mode="markers", name="real users", marker=dict(color=REAL, size=5, opacity=0.5)))
    fig.add_trace(go.Scatter(x=xy[n_real:, 0], y=xy[n_real:, 1], mode="markers", name="fake users", marker=dict(color=FAKE, size=8, symbol="x")))
    return _layout(fig, title, "principal component 1", "principal component 2", height=400, font_scale=font_scale)


def profile_rating_figure(real_ratings: np.ndarray, fake_ratings: np.ndarray, grid: np.ndarray, title: str = "Rating histograms: real vs fake (fillers only)", font_scale: float = 1.0) -> go.Figure:
    fig = go.Figure()
    for name, vals, colour in (("real users", real_ratings, REAL), ("fake users' fillers", fake_ratings, FAKE)):
        vals = np.asarray(vals)
        shares = [float(np.isclose(vals, g).mean()) if len(vals) else 0.0 for g in grid]
        fig.add_trace(go.Bar(x=[f"{g:g}" for g in grid], y=shares, name=name, marker_color=colour))
    fig.update_layout(barmode="group")
    return _layout(fig, title, "rating", "share of ratings", height=380, font_scale=font_scale)


def filler_popularity_figure(item_counts: np.ndarray, real_items: np.ndarray, filler_items: np.ndarray, title: str = "Popularity of the items rated: real users vs fake fillers", font_scale: float = 1.0) -> go.Figure:
    """Distribution of the (real) popularity of the items each group rates."""
    counts = np.asarray(item_counts)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=np.log10(1 + counts[np.asarray(real_items, dtype=int)]), histnorm="probability", name="items rated by real users", marker_color=REAL, opacity=0.6, nbinsx=30))
    fig.add_trace(go.Histogram(x=np.log10(1 + counts[np.asarray(filler_items, dtype=int)]), histnorm="probability", name="fake users' filler items", marker_color=FAKE, opacity=0.6, nbinsx=30))
    fig.update_layout(barmode="overlay")
    return _layout(fig, title, "log10(1 + real ratings of the item)", "share of ratings", height=380, font_scale=font_scale)


def profile_stats_frame(real_stats: dict, fake_stats: dict) -> pd.DataFrame:
    """Two-column comparison table of summary statistics."""
    keys = list(dict.fromkeys([*real_stats, *fake_stats]))
    return pd.DataFrame({"statistic": keys, "real users": [real_stats.get(k) for k in keys], "fake users": [fake_stats.get(k) for k in keys]})


def basic_profile_stats(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, item_means: np.ndarray, item_counts: np.ndarray, n_users: int) -> dict:
    """Simple per-group statistics every shilling detector starts from."""
    users = np.asarray(users, dtype=int)
    items = np.asarray(items, dtype=int)
    ratings = np.asarray(ratings, dtype=float)
    lengths = np.bincount(users, minlength=n_users) if n_users else np.zeros(0)
    dev = np.abs(ratings - item_means[items])
    corr = float(np.corrcoef(ratings, item_means[items])[0, 1]) if len(ratings) > 2 and ratings.std() > 0 else float("nan")
    return {
        "users": int(n_users),
        "mean profile length": float(lengths.mean()) if n_users else float("nan"),
        "mean rating": float(ratings.mean()) if len(ratings) else float("nan"),
        "rating std": float(ratings.std()) if len(ratings) else float("nan"),
        "mean |rating - item mean|": float(dev.mean()) if len(dev) else float("nan"),
        "corr(rating, item mean)": corr,
        "median popularity of rated items": float(np.median(item_counts[items])) if len(items) else float("nan"),
    }


# --- Theory -------------------------------------------------------------------------------


def theory_figure(
    values: np.ndarray,
    bounds: dict[str, np.ndarray],
    simulated: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    parameter_label: str,
    title: str = "Tolerable fake users: bound (lines) vs Monte-Carlo simulation (points ± sd)",
    font_scale: float = 1.0,
) -> go.Figure:
    fig = go.Figure()
    for m, curve in bounds.items():
        fig.add_trace(go.Scatter(x=values, y=curve, mode="lines", name=f"{METHOD_LABELS.get(m, m)}: formula", line=dict(color=METHOD_COLOURS.get(m), width=3)))
    if simulated:
        for m, (mean, sd) in simulated.items():
            fig.add_trace(
                go.Scatter(
                    x=values,
                    y=mean,
                    mode="markers",
                    name=f"{METHOD_LABELS.get(m, m)}: simulation",
                    marker=dict(color=METHOD_COLOURS.get(m), size=9, symbol="circle-open", line=dict(width=2)),
                    error_y=dict(type="data", array=sd, visible=True),
                )
            )
    return _layout(fig, title, parameter_label, "fake users tolerated before the target enters the top-K", height=540, legend_below=True, font_scale=font_scale)


def paper_bounds_figure(values: np.ndarray, bounds: dict[str, np.ndarray], simulated: dict[str, tuple[np.ndarray, np.ndarray]] | None,
                        x_label: str, title: str, font_scale: float = 1.0, height: int = 500) -> go.Figure:
    """The paper's bounds on n' (lines) beside our Monte-Carlo simulation of the same recommender (points ± sd)."""
    fig = go.Figure()
    names = {"standard": "Thm 4.3, standard training", "at": "Thm 4.4, AT", "apt": "Thm 4.5, APT"}
    for m, curve in bounds.items():
        fig.add_trace(go.Scatter(x=values, y=curve, mode="lines", name=f"{names.get(m, m)} (paper's bound)", line=dict(color=METHOD_COLOURS.get(m), width=3)))
    if simulated:
        for m, (mean, sd) in simulated.items():
            fig.add_trace(go.Scatter(x=values, y=mean, mode="markers", name=f"{METHOD_LABELS.get(m, m)}: simulation (ours)",
                                     marker=dict(color=METHOD_COLOURS.get(m), size=10, symbol="circle-open", line=dict(width=2)),
                                     error_y=dict(type="data", array=sd, visible=True)))
        # Where the simulation tolerates clearly fewer poisoning users than a (defined) bound, the
        # bound's gamma-ball assumption fails for Gaussian users: mark those points.
        below_x, below_y = [], []
        for m, (mean, sd) in simulated.items():
            bound = np.asarray(bounds.get(m, np.full(len(values), np.nan)), dtype=float)
            mask = np.isfinite(bound) & (bound > 0) & (np.asarray(mean) + 2 * np.asarray(sd) < bound)
            below_x += list(np.asarray(values)[mask])
            below_y += list(np.asarray(mean)[mask])
        if below_x:
            fig.add_trace(go.Scatter(x=below_x, y=below_y, mode="markers", name="simulation below the bound (assumption fails)",
                                     marker=dict(color="#d62728", size=14, symbol="x-thin", line=dict(width=3, color="#d62728"))))
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, title, x_label, "poisoning users n' tolerated (error ≤ β)", height=height, legend_below=True, font_scale=font_scale)


def influence_rounds(diagnostics: dict) -> list[np.ndarray]:
    """The influence vector of every regeneration round kept in APT's diagnostics."""
    out = []
    for r in diagnostics.get("rounds", []) or []:
        if isinstance(r, dict) and r.get("influence") is not None:
            arr = np.asarray(r["influence"], dtype=float).ravel()
            if arr.size:
                out.append(arr)
    return out


def influence_target_ranks(rounds: Sequence[np.ndarray], targets: Sequence[int]) -> list[list[int]]:
    """Per round, each target's 0-based rank in the influence vector (most negative first; ties keep item order)."""
    return [[int(np.argsort(np.argsort(v, kind="stable"), kind="stable")[int(t)]) for t in targets] for v in rounds]

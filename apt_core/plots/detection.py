"""Pure figures and tables for shilling detection (the Detection page, and the CLI's reports).

Inputs are arrays (suspicion scores, the flagged mask, which users are fake -- known to the
evaluation only); outputs are plotly figures or pandas frames.  Nothing here trains anything
or imports Streamlit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from apt_core.plots.explore import FAKE, REAL, _layout


def suspicion_histogram(scores: np.ndarray, is_fake: np.ndarray, threshold: float | None, detector: str, font_scale: float = 1.0) -> go.Figure:
    """Overlaid histograms of the suspicion score, real vs fake users, with the cut."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_fake, dtype=bool)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=s[~y], name=f"real users ({int((~y).sum())})", marker_color=REAL, opacity=0.65, nbinsx=60, histnorm="probability"))
    fig.add_trace(go.Histogram(x=s[y], name=f"fake users ({int(y.sum())})", marker_color=FAKE, opacity=0.75, nbinsx=60, histnorm="probability"))
    fig.update_layout(barmode="overlay")
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="black", annotation_text="cut", annotation_position="top")
    # Legend below: above the plot it ran into the cut's label.
    return _layout(fig, f"{detector}: suspicion of real and fake users (share of each group)", "suspicion score (higher = more suspicious)",
                   "share of users", legend_below=True, font_scale=font_scale)


def precision_recall_points(scores: np.ndarray, is_fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after flagging the top 1, 2, ... users (ties: real users first)."""
    y = np.asarray(is_fake, dtype=bool)
    order = np.lexsort((y, -np.asarray(scores, dtype=np.float64)))
    hits = np.cumsum(y[order])
    k = np.arange(1, len(y) + 1)
    return hits / k, hits / max(1, int(y.sum()))


def precision_recall_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, tuple[float | None, float | None]] | None = None,
                            font_scale: float = 1.0, height: int = 420) -> go.Figure:
    """One precision-recall curve per detector; markers at the cut each one used."""
    fig = go.Figure()
    for name, (precision, recall) in curves.items():
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=name))
    for name, (p, r) in (points or {}).items():
        if p is not None and r is not None:
            fig.add_trace(go.Scatter(x=[r], y=[p], mode="markers", marker=dict(size=11, symbol="x", color="black"), name=f"{name}: its cut", showlegend=True))
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, "Precision-recall of each detector (flagging users from the most suspicious down)", "recall (share of fake users flagged)", "precision", legend_below=True,
                   height=height, font_scale=font_scale)


def flagged_users_frame(scores: np.ndarray, flagged: np.ndarray, is_fake: np.ndarray, users: np.ndarray, items: np.ndarray,
                        ratings: np.ndarray, scale_max: float, titles=None, limit: int = 50,
                        user_ids: np.ndarray | None = None) -> pd.DataFrame:
    """The flagged users, most suspicious first: score, truth, profile size and top-rated items.

    ``user_ids``: the data set's own ids of the real users (``RatingData.user_ids``): a real
    user is shown by its id, an injected one as "injected N"; None: every user by index."""
    s = np.asarray(scores, dtype=np.float64)
    idx = np.flatnonzero(np.asarray(flagged, dtype=bool))
    idx = idx[np.argsort(-s[idx], kind="stable")][:limit]
    rows = []
    for u in idx:
        mine = users == u
        its, rs = items[mine], ratings[mine]
        top = its[np.isclose(rs, scale_max)]
        names = [titles(int(i)) if titles else str(int(i)) for i in top[:5]]
        label = int(u) if user_ids is None else (user_ids[u].item() if u < len(user_ids) else f"injected {u - len(user_ids) + 1}")
        rows.append({"user": label, "suspicion": float(s[u]), "truly fake": bool(is_fake[u]), "ratings": int(mine.sum()),
                     "rated with the maximum": int(len(top)), "some of them": ", ".join(names) + (" ..." if len(top) > 5 else "")})
    return pd.DataFrame(rows, columns=["user", "suspicion", "truly fake", "ratings", "rated with the maximum", "some of them"])


def detection_table(rows: list[dict]) -> pd.DataFrame:
    """:meth:`apt_core.experiments.detection_run.DetectionReport.rows` as a display frame."""
    frame = pd.DataFrame(rows)
    names = {"detector": "detector", "auc": "ROC-AUC", "average_precision": "avg. precision", "n_flagged": "flagged",
             "precision": "precision at cut", "recall": "recall at cut", "f1": "F1 at cut", "real_flagged": "real users flagged",
             "seconds": "seconds"}
    return frame[[c for c in names if c in frame.columns]].rename(columns=names)

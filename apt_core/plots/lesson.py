"""Tables, figures and sentences of the guided lesson (pure functions: arrays or results in,
DataFrames, plotly figures or text out; nothing trains, nothing imports Streamlit).

A profile table lists what one user -- real, fake or one of APT's ERM users -- rated, target
items first, so a class can see what a fake profile looks like next to a real one.  The ERM
choice figure shows, from APT's own diagnostics, which items its ERM users rated by their
influence on the empirical risk; the arms-race summary reads an attack that knows the
detector against ``remove-cogroup`` and ``apt-robust`` from one run.  Every sentence here is
computed from the numbers it describes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from apt_core.plots.explore import ERM, TARGET
from apt_core.plots.style import TEMPLATE, scaled, wrap_label


def profile_frame(items: np.ndarray, ratings: np.ndarray, titles: Sequence[str], targets: np.ndarray,
                  item_counts: np.ndarray | None = None, limit: int = 30) -> pd.DataFrame:
    """One profile: ``item, rating, target?`` (and ``ratings of the item`` when counts are given).

    Targets first, then the highest ratings; at most ``limit`` rows.
    """
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=float)
    is_target = np.isin(items, np.asarray(targets, dtype=np.int64))
    order = np.lexsort((-ratings, ~is_target))[:limit]
    frame = pd.DataFrame({
        "item": [titles[int(i)] for i in items[order]],
        "rating": ratings[order].round(2),
        "target item?": np.where(is_target[order], "yes", ""),
    })
    if item_counts is not None:
        frame["ratings of the item (real users)"] = np.asarray(item_counts)[items[order]].astype(int)
    return frame


def user_profile(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, user: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, ratings) of local user ``user`` in parallel arrays of (users, items, ratings)."""
    mask = np.asarray(users) == user
    return np.asarray(items)[mask], np.asarray(ratings)[mask]


def top_k_list(titles: Sequence[str], items: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """A numbered recommendation list with the targets marked."""
    items = np.asarray(items, dtype=np.int64)
    return pd.DataFrame({
        "rank": np.arange(1, len(items) + 1),
        "recommended item": [titles[int(i)] for i in items],
        "target item?": np.where(np.isin(items, np.asarray(targets, dtype=np.int64)), "yes", ""),
    })


def share_reached(target_ranks: np.ndarray, k: int) -> float:
    """Share of real users with at least one target in their top-K (ranks -1 = rated, ignored)."""
    ranks = np.asarray(target_ranks)
    if ranks.size == 0:
        return 0.0
    return float(((ranks >= 0) & (ranks < k)).any(axis=1).mean())


def reached_student(ranks_before: np.ndarray, ranks_after: np.ndarray, top: int) -> int:
    """The lesson's default student: the first real user with no target in their top-``top`` before the
    attack and at least one after it (the attack reaches them), else the user whose best target rank
    after the attack is highest; 0 when nobody has a ranked target.  Ranks: -1 = rated (ignored)."""
    before = np.asarray(ranks_before)
    after = np.asarray(ranks_after)
    if after.size == 0:
        return 0
    shown_after = ((after >= 0) & (after < top)).any(axis=1)
    shown_before = ((before >= 0) & (before < top)).any(axis=1) if before.size else np.zeros(len(after), dtype=bool)
    newly = np.flatnonzero(shown_after & ~shown_before)
    if len(newly):
        return int(newly[0])
    best = np.where(after >= 0, after, np.iinfo(np.int64).max).min(axis=1)
    return int(np.argmin(best)) if (best < np.iinfo(np.int64).max).any() else 0


# --- Why ERM users' ratings defend: the influence argument, from APT's own diagnostics ---------------

#: grey of the items no ERM user may draw (influence >= 0)
OUTSIDE = "#9D9D9D"


@dataclass(frozen=True)
class ERMChoice:
    """What one APT regeneration chose, per item: its influence ``I_j`` on the empirical risk, its rank
    (1 = most negative), and the share of the ERM users that rated it."""

    influence: np.ndarray
    rank: np.ndarray
    drawn_share: np.ndarray
    n_erm: int
    per_user: int

    @property
    def n_negative(self) -> int:
        return int((self.influence < 0).sum())


def erm_choice(influence: np.ndarray, erm_users: np.ndarray, erm_items: np.ndarray, n_erm: int) -> ERMChoice:
    """The :class:`ERMChoice` of one round: ``influence`` is that round's vector over items (APT's
    ``rounds[i]["influence"]``), ``erm_users``/``erm_items`` the ratings its ERM users made (``last_erm``)."""
    influence = np.asarray(influence, dtype=np.float64).ravel()
    order = np.argsort(influence, kind="stable")
    rank = np.empty(len(influence), dtype=np.int64)
    rank[order] = np.arange(1, len(influence) + 1)
    users, items = np.asarray(erm_users, dtype=np.int64), np.asarray(erm_items, dtype=np.int64)
    # one count per (ERM user, item): an item is rated at most once by a user (drawn without replacement)
    pairs = np.unique(users * max(1, len(influence)) + items) % max(1, len(influence)) if len(items) else np.zeros(0, np.int64)
    drawn = np.bincount(pairs, minlength=len(influence)).astype(np.float64)
    n_erm = max(0, int(n_erm))
    return ERMChoice(influence, rank, drawn / max(1, n_erm), n_erm, int(round(len(items) / n_erm)) if n_erm else 0)


def erm_choice_figure(choice: ERMChoice, targets: np.ndarray, titles: Sequence[str] | None = None, font_scale: float = 1.0,
                      height: int = 400, title: str = "Which items APT's ERM users rated, by influence") -> go.Figure:
    """Items ordered by influence (1 = lowers the empirical risk most) against the share of ERM users that
    rated them; the items with ``I_j >= 0`` (never drawn) in grey, the targets as diamonds."""
    targets = np.asarray(targets, dtype=np.int64)
    order = np.argsort(choice.rank)
    names = [titles[int(j)] if titles is not None else f"item {int(j)}" for j in order]
    negative = choice.influence[order] < 0
    fig = go.Figure()
    for mask, colour, label in ((negative, ERM, "item, I_j < 0 (may be drawn)"), (~negative, OUTSIDE, "item, I_j ≥ 0 (never drawn)")):
        if mask.any():
            fig.add_trace(go.Scatter(
                x=choice.rank[order][mask], y=100 * choice.drawn_share[order][mask], mode="markers", name=label,
                marker=dict(color=colour, size=5), text=[n for n, m in zip(names, mask) if m],
                customdata=choice.influence[order][mask], hovertemplate="%{text}<br>rank %{x}, I=%{customdata:.3g}<br>%{y:.0f}% of ERM users"))
    if len(targets):
        fig.add_trace(go.Scatter(
            x=choice.rank[targets], y=100 * choice.drawn_share[targets], mode="markers", name="target item",
            marker=dict(color=TARGET, size=14, symbol="diamond", line=dict(color="black", width=1)),
            text=[titles[int(t)] if titles is not None else f"item {int(t)}" for t in targets],
            customdata=choice.influence[targets], hovertemplate="%{text}<br>rank %{x}, I=%{customdata:.3g}<br>%{y:.0f}% of ERM users"))
    if 0 < choice.n_negative < len(choice.influence):
        fig.add_vline(x=choice.n_negative + 0.5, line_dash="dash", line_color=OUTSIDE, annotation_text="I_j = 0",
                      annotation_position="top left")
    fig.update_layout(title=dict(text=wrap_label(title, max(24, round(60 / font_scale))), x=0.0, xanchor="left"),
                      xaxis_title="item's rank by influence I_j (1 = lowers the risk most)", yaxis_title="rated by ERM users (%)",
                      yaxis_range=[-5, 108], height=height, template=TEMPLATE, margin=dict(l=70, r=20, t=60, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.2 * font_scale ** 2, xanchor="left", x=0.0))
    return scaled(fig, font_scale)


def erm_choice_sentence(choice: ERMChoice, targets: np.ndarray, top: int = 50) -> str:
    """What the figure shows, in words computed from ``choice``: how strongly the ERM users preferred the
    most negative items, and where the targets fall."""
    targets = np.asarray(targets, dtype=np.int64)
    n, phi = len(choice.influence), choice.n_negative
    if choice.n_erm == 0 or n == 0:
        return "No ERM users were drawn in this run."
    top = max(1, min(top, phi)) if phi else 0
    text = (f"In this run's last regeneration {phi} of {n} items had I_j < 0; each of the {choice.n_erm} ERM users "
            f"rated {choice.per_user} of them, the more negative the likelier")
    head = choice.rank <= top
    rest = (choice.influence < 0) & ~head
    if top and rest.any():
        text += (f": an item among the {top} most negative was rated by {choice.drawn_share[head].mean():.0%} of them, "
                 f"the rest of those with I_j < 0 by {choice.drawn_share[rest].mean():.0%}")
    text += "."
    if len(targets):
        ranks = sorted(int(r) for r in choice.rank[targets])
        in_head = int((choice.rank[targets] <= top).sum()) if top else 0
        text += (f" The targets rank {', '.join(map(str, ranks))} of {n} ({in_head} of {len(targets)} among the {top} most negative): "
                 f"{choice.drawn_share[targets].mean():.0%} of the ERM users rated each, on average.")
    return text


# --- The arms race: an attacker who learns the detector --------------------------------------------

#: a defense "holds" when it undoes at least this share of the attack's lift (RI >= 0.5)
HOLDS_RI = 0.5


@dataclass(frozen=True)
class DefenseOutcome:
    """One defense of a run against one attack: target HR, RI, whom its detector flagged, whom it dropped."""

    phase: str
    target_hr: float
    ri: float | None
    flagged_fake: int
    flagged_real: int
    dropped: int

    @property
    def holds(self) -> bool:
        return self.ri is not None and not np.isnan(self.ri) and self.ri >= HOLDS_RI


def defense_outcome(result, phase: str) -> DefenseOutcome:
    """The first seed's :class:`DefenseOutcome` of ``phase`` in a :class:`~apt_core.experiments.results.ScenarioResult`."""
    rows = {r["phase"]: r for r in result.rows()}
    ph = result.phase(phase)
    detection = (ph.detection[0] if getattr(ph, "detection", None) else None) or {}
    diag = ph.diagnostics[0] if ph.diagnostics else {}
    flagged = len(diag.get("flagged_users", ()))
    dropped = int(diag["users_dropped"]) if "users_dropped" in diag else flagged
    ri = rows[phase].get("ri")
    return DefenseOutcome(phase, float(ph.target_hr[0]), None if ri is None else float(ri),
                          int(detection.get("fake_flagged", 0)), int(detection.get("real_flagged", 0)), dropped)


def detector_tries_sentence(tried: Sequence[dict], n_targets: int, n_fake: int, detector: str) -> str:
    """The adaptive attacker's search (its diagnostics' ``tried``), in words: each candidate and how many of
    its pushing accounts the detector flagged."""
    if not tried:
        return ""
    parts = []
    for i, c in enumerate(tried):
        decoys = n_fake - int(c["pushers"])
        what = (f"{c['pushers']} fake users each rating {c['k']} of the {n_targets} targets" if i == 0 else f"{c['pushers']} rating {c['k']}")
        what += f" plus {decoys} decoys" if c.get("decoys") else ""
        flagged = int(c["flagged_pushers"])
        parts.append(f"{what}: {flagged} of {c['pushers']} flagged" if flagged else f"{what}: none flagged")
    return f"The attacker ran {detector} on its candidates, strongest first: " + "; ".join(parts) + "."

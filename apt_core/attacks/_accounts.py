"""Decoy and framing accounts: fake users that push no target (shared by the adaptive attacks).

An attacker who knows that a co-rating detector guards the service can spend part of the
fake-user budget on accounts that do not push the targets:

- **decoys** top-rate one obscure, unrelated pair of items (every decoy the same pair).
  They form a loud planted block that a gap-based cut flags first, so the cut can stop above
  the quieter pushing accounts, and a defense that switches its statistics when "somebody
  was flagged" switches on the decoys, not on the accounts that matter.
- **framing** accounts top-rate pairs of items that real fans already top-rate together
  (by default the pairs they top-rate together far more often than popularity predicts,
  or simply the most often; :func:`co_top_rated_pairs`).  They raise
  those pairs' co-count, so a co-rating detector may flag the real fans of the pair.

Both are fake users inside the budget (the pipeline never counts a fake user in a metric)
and spend the filler budget like any account: the pair plus ``n_filler - 2`` fillers rated
as Average's (~ N(item mean, item std)), so apart from the pair they look average.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from apt_core.attacks._common import sample_rows
from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError

#: the share of the catalogue (least-rated non-target items) a decoy pair is drawn from
OBSCURE_SHARE = 0.05


@dataclass(frozen=True)
class AccountPlan:
    """How a fake-user budget is divided: pushing accounts first, then decoys, then framing."""

    pushers: int
    decoys: int
    framing: int


def divide_budget(n_fake_users: int, decoy_share: float, framing_share: float) -> AccountPlan:
    """Decoys and framing accounts are shares of the budget (inside it, never extra accounts).

    ``round(share x n_fake_users)`` accounts each, capped so that at least one account
    pushes the targets (framing is cut first, then decoys)."""
    n = int(n_fake_users)
    decoys = min(int(round(decoy_share * n)), n - 1)
    framing = min(int(round(framing_share * n)), n - 1 - decoys)
    return AccountPlan(n - decoys - framing, decoys, framing)


def decoy_pair(train: Interactions, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two obscure items: drawn (seeded) from the ``OBSCURE_SHARE`` least-rated items outside ``exclude``."""
    mask = np.ones(train.n_items, dtype=bool)
    mask[np.asarray(exclude, dtype=np.int64)] = False
    cand = np.flatnonzero(mask)
    if len(cand) < 2:
        raise ConfigError("decoy accounts need two items outside the targets")
    counts = train.real_item_counts[cand]
    pool = cand[np.lexsort((cand, counts))][: max(2, int(round(OBSCURE_SHARE * train.n_items)))]
    return np.sort(rng.choice(pool, 2, replace=False))


FRAMING_RULES = ("surprise", "count", "clique")
#: ``clique``: triangles are looked for among this many of the most surprising pairs
CLIQUE_POOL = 300


def co_top_rated_pairs(train: Interactions, exclude: np.ndarray, n_pairs: int, rule: str = "count") -> np.ndarray:
    """The ``n_pairs`` item pairs real users top-rate together (both at the scale maximum).

    ``rule="count"``: the pairs most often top-rated by the same real users.  ``rule="surprise"``:
    the pairs real fans top-rate together far more often than the items' popularity predicts
    (the largest co-rating surprise of :func:`apt_core.detection.cogroup.pair_surprise`, a
    published null model), e.g. a film and its sequel.  Measured on ML-100K (docs/detection.md):
    framing the most-counted pairs (popular classics) made ``cogroup`` flag nobody; framing the
    most surprising pair made it flag that pair's real fans.  Pairs touching ``exclude`` (the
    targets) are left out; ties go to the larger co-count, then the smaller item ids.
    Returns ``(n, 2)`` item ids, best first (fewer rows when fewer pairs exist)."""
    from apt_core.detection.cogroup import pair_surprise

    real = train.real_only()
    M, S, _ = pair_surprise(real)
    keep = np.ones(real.n_items, dtype=bool)
    keep[np.asarray(exclude, dtype=np.int64)] = False
    C = sp.triu(M.T @ M, k=1).tocoo()
    ok = (C.data > 0) & keep[C.row] & keep[C.col]
    rows, cols, co = C.row[ok], C.col[ok], C.data[ok]
    first = -co if rule == "count" else -np.asarray(S[rows, cols]).ravel()
    if rule == "clique":
        return surprising_triangles(rows, cols, co, -first, n_pairs)
    order = np.lexsort((cols, rows, -co, first))[: int(n_pairs)]
    return np.stack([rows[order], cols[order]], axis=1).astype(np.int64)


def surprising_triangles(rows: np.ndarray, cols: np.ndarray, co: np.ndarray, surprise: np.ndarray, n_triangles: int) -> np.ndarray:
    """``rule="clique"``: item triples whose three pairs real fans all top-rate together beyond
    popularity, best first by the *second* largest of the three pair surprises (what a
    rank-2 co-rating detector reads off a fan who top-rates all three), then the smallest
    co-count of the three; found among the ``CLIQUE_POOL`` most surprising pairs.  Returns
    ``(n, 3)`` item ids (falls back to the best pairs' items, padded with its third-best
    neighbour, never fewer than one row when a pair exists)."""
    order = np.lexsort((cols, rows, -co, -surprise))[:CLIQUE_POOL]
    edge: dict[tuple[int, int], tuple[float, float]] = {}
    for r, c, s, n in zip(rows[order].tolist(), cols[order].tolist(), surprise[order].tolist(), co[order].tolist()):
        edge[(min(r, c), max(r, c))] = (s, n)
    items = sorted({i for e in edge for i in e})
    found: list[tuple[float, float, tuple[int, int, int]]] = []
    for a_pos, a in enumerate(items):
        for b_pos in range(a_pos + 1, len(items)):
            b = items[b_pos]
            if (a, b) not in edge:
                continue
            for c in items[b_pos + 1 :]:
                if (a, c) in edge and (b, c) in edge:
                    trio = [edge[(a, b)], edge[(a, c)], edge[(b, c)]]
                    second = sorted(t[0] for t in trio)[1]
                    found.append((-second, -min(t[1] for t in trio), (a, b, c)))
    found.sort()
    if found:
        return np.array([t[2] for t in found[: int(n_triangles)]], dtype=np.int64)
    if len(order) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    best = (int(rows[order[0]]), int(cols[order[0]]))
    third = next((int(x) for r, c in zip(rows[order].tolist(), cols[order].tolist()) for x in (r, c)
                  if x not in best and best[0] in (r, c)), None)
    return np.array([[*best, third]], dtype=np.int64) if third is not None else np.array([best], dtype=np.int64)


def pair_accounts(train: Interactions, pairs: np.ndarray, n_accounts: int, n_filler: int, exclude: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_accounts`` profiles: account ``a`` top-rates ``pairs[a % len(pairs)]`` (a pair, or a
    clique's items) plus ``n_filler - width`` Average fillers outside ``exclude`` and the pairs.
    Returns local (users, items, ratings) with users ``0..n_accounts-1``."""
    if n_accounts == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    width = int(np.shape(pairs)[1]) if np.ndim(pairs) == 2 else 2
    if n_filler < width:
        raise ConfigError(f"decoy and framing accounts rate a pair (or a clique) of items out of the filler budget: it must be at least "
                          f"{width}, got {n_filler}")
    if len(pairs) == 0:
        raise ConfigError("no item pair for the decoy or framing accounts (no real user top-rates two items together)")
    mask = np.ones(train.n_items, dtype=bool)
    mask[np.asarray(exclude, dtype=np.int64)] = False
    mask[np.asarray(pairs, dtype=np.int64).ravel()] = False
    fillers = sample_rows(rng, n_accounts, np.flatnonzero(mask), n_filler - width)
    means, stds = train.item_means(), train.item_stds()
    filler_ratings = train.scale.snap(rng.normal(means[fillers], stds[fillers]))
    chosen = np.asarray(pairs, dtype=np.int64)[np.arange(n_accounts) % len(pairs)]
    items = np.concatenate([chosen, fillers], axis=1)
    ratings = np.concatenate([np.full(chosen.shape, train.scale.maximum, dtype=np.float32), filler_ratings], axis=1)
    users = np.repeat(np.arange(n_accounts), items.shape[1])
    return users, items.ravel(), ratings.ravel().astype(np.float32)

"""APT-robust (ours): APT whose ERM statistics and removals an attacker who knows the detector cannot steer.

Builds on Wu et al., "Fight Fire with Fire: Towards Robust Recommender Systems via
Adversarial Poisoning Training", SIGIR 2021 (Algorithm 1, :mod:`apt_core.defenses.apt`) and on
``apt-trusted`` (:mod:`apt_core.defenses.apt_trusted`), whose two steerable points it closes
(measured in docs/detection.md, "Attackers who know the detector"):

1. **The statistics never switch on the detection.**  ``apt-trusted`` uses each item's mean
   when the detector flags somebody and the global mean when it flags nobody, so a few decoy
   accounts (flagged on purpose) switch every item -- the targets too, whose ratings still
   hold the hidden pushing accounts -- onto poisoned statistics.  Here each item's ERM centre
   is ``min(item mean, global mean)`` over the kept users (``centre="capped"``), its spread
   the item's where the item's mean is used, else the global spread.  A push attack can only
   *raise* an item's mean, and raising it above the global mean changes nothing; an item
   whose honest mean is low (most random targets) keeps it, so ERM users do not promote it.
   One item's centre depends only on its own raters: decoys elsewhere cannot move it.
   Item-side evidence (``item_alpha``): an item whose share of top ratings is significantly
   above the data's (a binomial Chernoff bound, Bonferroni over the items, on the observed
   data) is centred at the mean of its ratings *below* the maximum (at most the global mean):
   a pushed unpopular target's few real ratings, not the pushers' fives.
2. **Removals are bounded and need more than one shared pair.**  A user is flagged by
   ``cogroup`` with ``cogroup_rank=2`` (its *second* most surprising top-rated pair): every
   account that pushes three or more targets has three or more surprising pairs, while a
   decoy or framing account that top-rates one pair, and the real fans of that pair, have
   one.  At most ``max_removed`` x users are dropped (the highest scores), so a cut that is
   steered onto real users costs at most that share; and a flagged user must beat a null
   model (its pair's co-count significant under the popularity null after Bonferroni over
   all item pairs, ``alpha``), so the gap rule cannot flag anybody on data without a block.

Threat model: as APT -- the defender sees only the observed data, never which users are
fake, how many, nor the clean data.  Budget: APT's ERM users; cost: the users dropped, at
most ``max_removed`` of all accounts (default 5%; first 2%, raised after FilmTrust showed the
cap stopping below the 24 accounts ``cogroup`` caught there: docs/detection.md).

Measured (docs/detection.md, issue 21's suite, 3 seeds): mean RI 0.972 on ML-100K and 0.976
on FilmTrust over 10 standard and 8 adaptive settings, no real user dropped.  What still
beats it, in part (measured, ML-100K, 3 repetitions): a push spread over few targets per
account on random targets (k = 4: RI 0.79); an attacker who knows these rules and *shades*
(``subset.shade``: the other targets rated one step below the maximum, which lifts a
bursting target's below-maximum centre to the global cap): RI 0.67-0.89; and *clique framing*
(``subset.framing_rule=clique``: framing accounts top-rate three items real fans top-rate
together, giving those fans the two surprising pairs the rank-2 rule asks for): 18 real users
(1.9%) dropped in every repetition at a 5% budget -- the cap bounds such a loss, it does not
prevent it.  FilmTrust's test HR sits 0.02 below the origin: the cost of APT's ERM users
themselves (not of the capped centre, the item-side rule or the removals; docs/detection.md).
Not measured: pushes on items whose honest mean is above the global mean (capped there, not
at the item's level) and nuke attacks (the cap is one-sided).

Round three (docs/detection.md, "Round three"): ``push_evidence`` (a flagged user is dropped only
if one item of its significant pairs is rated at most at the global mean by the users not
flagged) takes the clique framing of well-liked films from 18 real users dropped to 1 (ML-100K,
split 0 and the held-out split 1), but a clique of films liked less than average (Star Trek:
11 fans) still costs 11 (1.2%).  ``pair_links`` (an item's centre leaves out the 4-5 ratings of
users who rate a partner item 4-5 where the pair is co-rated far beyond popularity) takes the
shaded settings from RI 0.72-0.89 to 0.88-0.95 on unpopular targets, not on random targets
(0.67 -> 0.64).  ``burst_links`` (links through bursting items only) failed: shading with
k <= 3 dilutes the burst test.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from apt_core.data.dataset import Interactions
from apt_core.defenses.apt import APT
from apt_core.defenses.apt_trusted import APTTrusted
from apt_core.defenses.base import DefenseContext, DefenseResult, Param
from apt_core.defenses.erm import FitStatistics, compact_users, detection_diagnostics, expand_users, item_statistics

#: ERM rating centre: capped (min of item and global mean), global (global mean for every item)
CENTRES = ("capped", "global")


def top_share_surprise(data: Interactions) -> np.ndarray:
    """Per item, how far its share of top (scale-maximum) ratings exceeds the data's: the
    Chernoff bound ``n KL(k/n || p0)`` on ``-log P(Binomial(n, p0) >= k)`` (0 where ``k/n <= p0``).

    Item-side evidence of a push: every push attack here rates its targets at the maximum, so
    a pushed unpopular item's ratings become almost all top ratings."""
    top = data.ratings >= data.scale.maximum - 1e-6
    n = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    k = np.bincount(data.items[top], minlength=data.n_items).astype(np.float64)
    p0 = float(top.mean()) if len(top) else 0.0
    out = np.zeros(data.n_items)
    if not 0.0 < p0 < 1.0:
        return out
    q = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    above = q > p0
    qa = q[above]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = qa * np.log(qa / p0) + np.where(qa < 1, (1 - qa) * np.log((1 - qa) / (1 - p0)), 0.0)
    out[above] = n[above] * np.nan_to_num(kl)
    return out


def burst_items(data: Interactions, alpha: float) -> np.ndarray:
    """Items whose share of top ratings is significant at ``alpha`` (Bonferroni over the items)."""
    return top_share_surprise(data) >= np.log(max(1, data.n_items) / alpha)


def capped_statistics(data: Interactions, single_rating_std: str = "global", burst: np.ndarray | None = None,
                      low_means: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per item ``(min(item mean, global mean), spread)``: the item's std where its own mean is
    used, the global std where the global mean is.  Unrated items get the global statistics.

    ``burst`` (bool per item, :func:`burst_items` of the *observed* data, so that whom the
    detector drops cannot switch it): such an item, whose share of top ratings is significantly
    above the data's, is centred at ``min(mean of its ratings below the maximum, global mean)`` with the global
    spread: its top ratings are the ones a push would have added.  Either way the centre is
    at most the global mean, so the item-side rule can only lower a centre.  ``low_means`` (per
    item, NaN where none) replaces that "mean of its ratings below the maximum" (e.g. without
    :func:`linked_ratings`)."""
    means, stds = item_statistics(data, "observed", single_rating_std)
    g_mean, g_std = item_statistics(data, "global")
    own = means < g_mean
    centre, spread = np.where(own, means, g_mean), np.where(own, stds, g_std)
    if burst is not None:
        below = data.ratings < data.scale.maximum - 1e-6
        n_below = np.bincount(data.items[below], minlength=data.n_items)
        s_below = np.bincount(data.items[below], weights=data.ratings[below].astype(np.float64), minlength=data.n_items)
        low_mean = np.divide(s_below, n_below, out=g_mean.copy(), where=n_below > 0)
        if low_means is not None:
            low_mean = np.where(np.isnan(low_means), g_mean, low_means)
        centre = np.where(burst, np.minimum(low_mean, g_mean), centre)
        spread = np.where(burst, g_std, spread)
    return centre, spread


def null_floor(n_items: int, alpha: float) -> float:
    """The pair surprise a co-count must reach to be significant at ``alpha`` after Bonferroni
    over all ``n_items (n_items - 1) / 2`` item pairs.

    ``cogroup``'s surprise ``C log(C / lambda) - C + lambda`` is the Chernoff bound on
    ``-log P(Poisson(lambda) >= C)``, so a surprise ``s`` has ``p <= exp(-s)``: on data without a
    planted block (random ratings) no pair reaches the floor, whatever the gap rule says."""
    n_pairs = max(1.0, n_items * (n_items - 1) / 2)
    return float(np.log(n_pairs / alpha))


def significant_pairs(data: Interactions, floor: float, top_steps: int = 0):
    """(top-rating matrix M, items x items bool-valued sparse matrix of the pairs whose co-rating
    surprise (:func:`apt_core.detection.cogroup.pair_surprise`) reaches ``floor``)."""
    from apt_core.detection.cogroup import pair_surprise

    M, S, _ = pair_surprise(data, top_steps)
    sig = (S >= floor) if floor > 0 else (S > 0)
    return M, sp.csr_matrix(sig, dtype=np.float64)


def pushes_below_average(data: Interactions, flagged: np.ndarray, floor: float, top_steps: int = 0) -> np.ndarray:
    """Per user: flagged, and one item of its significant top-rated pairs is one that the users
    *not* flagged rate at most at the data's global mean on average (or nobody else rates).

    Push evidence per user (against clique framing): a group that top-rates together items
    their other raters like more than the average item (three Wallace & Gromit films) pushes
    nothing the capped centre would counter; a group that top-rates items the rest rate at or
    below average does.  Pushing accounts top-rate the targets; framing accounts and the real
    fans they imitate top-rate well-liked items."""
    flagged = np.asarray(flagged, dtype=bool)
    out = np.zeros(data.n_users, dtype=bool)
    if not flagged.any():
        return out
    M, sig = significant_pairs(data, floor, top_steps)
    rest = ~flagged[data.users]
    n_rest = np.bincount(data.items[rest], minlength=data.n_items)
    s_rest = np.bincount(data.items[rest], weights=data.ratings[rest].astype(np.float64), minlength=data.n_items)
    rest_mean = np.divide(s_rest, n_rest, out=np.full(data.n_items, -np.inf), where=n_rest > 0)
    low = rest_mean <= float(data.ratings.mean()) + 1e-9
    for u in np.flatnonzero(flagged):
        items = M.indices[M.indptr[u] : M.indptr[u + 1]]
        involved = np.unique(sig[items][:, items].nonzero()[0])
        out[u] = bool(low[items[involved]].any())
    return out


def linked_ratings(data: Interactions, burst: np.ndarray, floor: float, steps: int = 1) -> np.ndarray:
    """Per rating of ``data``: a rating below the maximum of a bursting item ``j`` by a user who
    top-rates another bursting item ``i`` whose pair ``(i, j)`` is significantly co-rated at the
    top (``steps`` rating steps below the maximum counting as top for the pair's co-count).

    Against shading: an account that top-rates some targets and rates the others one step
    below the maximum lifts those targets' "ratings below the maximum" centre; its top-rated
    targets burst and are co-top-rated with the shaded ones by the other pushing accounts, so
    its shaded rating is linked.  A real rater of a pushed target rarely top-rates another
    bursting item co-top-rated with it (the push's co-ratings are the pushers' own).  With
    ``steps=0`` only pairs co-rated at the maximum link: measured on ML-100K, a push that gives
    each account 3 or 2 of 5 targets at the maximum shares too few of them for the Bonferroni
    floor; at ``steps=1`` every shading account rates every target pair at 4 or 5."""
    burst = np.asarray(burst, dtype=bool)
    out = np.zeros(len(data), dtype=bool)
    bursting = np.flatnonzero(burst)
    if len(bursting) < 2:
        return out
    M, _ = significant_pairs(data, floor, 0)
    sig = significant_pairs(data, floor, steps)[1]
    links = (M[:, bursting] @ sig[bursting][:, bursting]).tocsr()  # users x bursting items
    position = np.full(data.n_items, -1, dtype=np.int64)
    position[bursting] = np.arange(len(bursting))
    cand = np.flatnonzero(burst[data.items] & (data.ratings < data.scale.maximum - 1e-6))
    if len(cand):
        out[cand] = np.asarray(links[data.users[cand], position[data.items[cand]]]).ravel() > 0
    return out


def co_rated_links(data: Interactions, floor: float, steps: int = 1) -> np.ndarray:
    """Per rating of ``data``: a high rating (``steps`` steps below the maximum or above) of item
    ``j`` by a user who also rates high another item ``i`` whose pair ``(i, j)`` is co-rated high
    by far more users than popularity predicts (surprise at least ``floor``).

    Against shading, where the item-side burst test does not fire (a shaded target's 4s dilute its
    share of top ratings): every shading account rates every target 4 or 5, so each target pair
    is co-rated high by all of them; the links are exactly those accounts' ratings of the targets."""
    M, sig = significant_pairs(data, floor, steps)
    links = (M @ sig).tocsr()  # users x items: how many significant partners of the item the user rates high
    level = data.scale.maximum - steps * data.scale.step - 1e-6
    cand = np.flatnonzero(data.ratings >= level)
    out = np.zeros(len(data), dtype=bool)
    if len(cand):
        out[cand] = np.asarray(links[data.users[cand], data.items[cand]]).ravel() > 0
    return out


def below_maximum_means(data: Interactions, use: np.ndarray) -> np.ndarray:
    """Per item, the mean of its ratings below the maximum among ``use`` (NaN where none)."""
    below = np.asarray(use, dtype=bool) & (data.ratings < data.scale.maximum - 1e-6)
    n = np.bincount(data.items[below], minlength=data.n_items)
    s = np.bincount(data.items[below], weights=data.ratings[below].astype(np.float64), minlength=data.n_items)
    return np.divide(s, n, out=np.full(data.n_items, np.nan), where=n > 0)


def cap_flags(flagged: np.ndarray, scores: np.ndarray, max_count: int) -> np.ndarray:
    """``flagged`` reduced to its ``max_count`` highest-scoring users (ties broken by user id)."""
    flagged = np.asarray(flagged, dtype=bool)
    if flagged.sum() <= max_count:
        return flagged.copy()
    ids = np.flatnonzero(flagged)
    order = np.lexsort((ids, -np.asarray(scores, dtype=np.float64)[ids]))
    out = np.zeros_like(flagged)
    out[ids[order[:max_count]]] = True
    return out


class APTRobust(APTTrusted):
    """APT with capped per-item statistics and a bounded, two-pair removal step (ours)."""

    name = "apt-robust"
    summary = "APT with statistics a push cannot raise (min of item and global mean) and capped removals (ours)"
    paper = "ours, on Wu et al., SIGIR 2021"
    threat_model = "observed data only; an attacker who knows the detector (decoys, framing, subsets)"
    params = tuple(p for p in APT.params if p.name != "erm_stats") + (
        Param("drop_suspects", bool, True, "also train without the flagged users' ratings (at most max_removed of the users)"),
        Param("centre", str, "capped", "ERM rating centre: capped (min of the item's and the global mean) or global", choices=CENTRES),
        Param("cogroup_rank", int, 2, "detector=cogroup: a user's suspicion is its rank-th most surprising top-rated pair "
              "(2: one shared pair, as decoys, framing accounts and real fans have, is not enough)", low=1, high=100),
        Param("top_steps", int, 0, "detector=cogroup: rating steps below the maximum that count as a top rating for the "
              "co-rating pairs (1: a 4 of 5 counts, against accounts that shade the targets they do not top-rate; it "
              "catches them on ML-100K but drops 12-14 real users on clean FilmTrust in 7 of 10 splits, so 0 stays the default)",
              low=0, high=10),
        Param("max_removed", float, 0.05, "at most this share of all accounts is dropped (the highest suspicion first; "
              "0.02 was the first default: it left 8 of FilmTrust's 24 caught accounts in)",
              low=0.0, high=1.0),
        Param("item_alpha", float, 0.05, "centre=capped: an item whose share of top ratings is significant at this level "
              "(Bonferroni over the items) is centred at the mean of its ratings below the maximum, at most the global "
              "mean (0: off)", low=0.0, high=1.0),
        Param("alpha", float, 0.05, "detector=cogroup: a user is dropped only if its pair's surprise (a Chernoff bound on "
              "-log p under the popularity null) beats a Bonferroni test over all item pairs at this level (0: no floor)",
              low=0.0, high=1.0),
        Param("push_evidence", bool, False, "detector=cogroup: a flagged user is dropped only if one item of its significant "
              "pairs is rated at most at the global mean, on average, by the users not flagged (against framing the real "
              "fans of well-liked films)"),
        Param("burst_links", bool, False, "item_alpha > 0: a bursting item's centre leaves out the ratings below the maximum "
              "by users who top-rate another bursting item significantly co-top-rated with it (against shading)"),
        Param("pair_links", bool, False, "centre=capped: an item's centre is at most the mean of its ratings without those "
              "of users who rate it and a partner item high where the pair is co-rated high far beyond popularity "
              "(link_steps below the maximum count as high; against shading)"),
        Param("link_steps", int, 1, "burst_links: rating steps below the maximum that count as top in the co-rating of a "
              "linking pair (0: only pairs co-rated at the maximum link)", low=0, high=10),
    )

    def __init__(self, erm_fraction: float | None = None, detector: str = "cogroup", drop_suspects: bool = True,
                 t: float | None = None, t_pre: int | None = None, t_inter: int | None = None,
                 m_star: int | None = None, r_plus: float | None = None, solver: str | None = None,
                 centre: str = "capped", cogroup_rank: int = 2, max_removed: float = 0.05, alpha: float = 0.05,
                 item_alpha: float = 0.05, top_steps: int = 0, push_evidence: bool = False, burst_links: bool = False,
                 link_steps: int = 1, pair_links: bool = False,
                 erm_users: int | None = None, preset: str = "paper",
                 single_rating_std: str | None = None, damping: float = 10.0, cg_max_iter: int = 30, cg_tol: float = 1e-2,
                 preconditioner: str = "jacobi", warm_start: bool = True, n_probe: int = 10, er_loss: str = "mean",
                 lissa_steps: int = 1000, lissa_batch_size: int = 16384, lissa_scale: float = 1.0, lissa_damping: float = 0.0,
                 lanczos_max_iter: int = 40, lanczos_tol: float = 1e-3, victim_solver: str = "identity") -> None:
        self.erm_stats = "trusted"  # fixed, not a parameter
        self._set_declared(locals())

    def make_detector(self):
        """The detector this defense runs (cogroup with ``cogroup_rank``; another by name)."""
        from apt_core.detection import make_detector

        if self.detector == "cogroup":
            return make_detector(self.detector, rank=self.cogroup_rank, top_steps=self.top_steps)
        return make_detector(self.detector)

    def plan(self, train: Interactions, detection) -> tuple[np.ndarray, FitStatistics]:
        """(users to drop, the ERM statistics) for ``train`` given the detector's ``detection``.

        The statistics depend on the detection only through the users dropped, and each item's
        centre only on its own kept raters and the kept data's global mean."""
        max_count = int(np.floor(self.max_removed * train.n_users))
        flagged = np.asarray(detection.flagged, dtype=bool)
        floor = null_floor(train.n_items, self.alpha) if self.alpha > 0 else 0.0
        if self.detector == "cogroup" and self.alpha > 0:
            flagged = flagged & (np.asarray(detection.scores) >= floor)
        if self.detector == "cogroup" and self.push_evidence:
            flagged = pushes_below_average(train, flagged, floor, self.top_steps)
        dropped = cap_flags(flagged, detection.scores, max_count) if self.drop_suspects else np.zeros(train.n_users, bool)
        kept = compact_users(train, dropped)[0]
        single = self.resolved_single_rating_std()
        if self.centre == "capped":
            # item-side evidence from the observed data: dropping users cannot switch it
            burst = burst_items(train, self.item_alpha) if self.item_alpha > 0 else None
            low_means = None
            if burst is not None and self.burst_links:
                use = ~dropped[train.users] & ~linked_ratings(train, burst, floor, self.link_steps)
                low_means = below_maximum_means(train, use)
            centre, spread = capped_statistics(kept, single, burst, low_means)
            if self.pair_links:
                # an item's centre without the ratings that make one of its pairs surprising
                linked = co_rated_links(train, floor, self.link_steps)
                use = ~dropped[train.users] & ~linked
                n_use = np.bincount(train.items[use], minlength=train.n_items)
                s_use = np.bincount(train.items[use], weights=train.ratings[use].astype(np.float64), minlength=train.n_items)
                touched = np.bincount(train.items[linked & ~dropped[train.users]], minlength=train.n_items) > 0
                unlinked_mean = np.divide(s_use, np.maximum(n_use, 1))
                touched &= n_use > 0
                centre = np.where(touched, np.minimum(centre, unlinked_mean), centre)
            return dropped, FitStatistics(centre, spread)
        return dropped, FitStatistics(*item_statistics(kept, "global", single))

    def fit(self, train: Interactions, context: DefenseContext) -> DefenseResult:
        # Everything of this fit stays in locals: one object may be fitted from two threads at once.
        detection = context.detect(self.make_detector(), train)
        dropped, stats = self.plan(train, detection)
        data, kept_ids = compact_users(train, dropped)
        result = self._train(data, context, stats, context.real_user_count(train))
        result = DefenseResult(expand_users(result.model, kept_ids, train.n_users), result.diagnostics)
        diag = detection_diagnostics(detection)
        # The users actually dropped are what the evaluation counts as flagged.
        diag["flagged_users"] = np.flatnonzero(dropped).astype(np.int32)
        result.diagnostics.update(diag)
        result.diagnostics.update({"drop_suspects": self.drop_suspects, "detector_flagged": int(detection.n_flagged),
                                   "users_dropped": int(dropped.sum()), "removal_cap": int(np.floor(self.max_removed * train.n_users)),
                                   "statistics_used": self.centre})
        return result

"""Subset attack (ours; the adaptive attacker of docs/detection.md, "Attackers who know
the detector"): each pushing account rates only ``k`` of the ``n`` targets.

Why: a co-rating detector (``cogroup``) keys on many accounts top-rating the *same* pairs of
items.  Spreading the targets over the accounts lowers every target pair's co-count (each
pair is shared by about ``n_push x k(k-1) / (n(n-1))`` accounts instead of all of them) while
each target keeps about ``n_push x k / n`` top ratings, most of the push.

Threat model: as Average (each item's rating mean and std), plus, for framing accounts,
which item pairs real users top-rate together (the training data).  Budget: the paper's,
like every attack: ``n_fake_users`` accounts, each with at most ``n_filler`` non-target items.
A pushing account rates ``k`` targets at the scale maximum, chosen so that every target gets
the same number of fake ratings (+-1) and, among equally rated targets, the pairs already
shared least go first (a seeded greedy balanced design); its ``n_filler`` fillers are
Average's (uniform non-target items, rated ~ N(mean_j, std_j) on the grid).  ``decoys`` and
``framing`` are shares *of* the ``n_fake_users`` accounts (inside the budget, not extra
accounts; :mod:`apt_core.attacks._accounts`): decoys top-rate one obscure unrelated pair,
framing accounts the ``framing_pairs`` pairs real fans top-rate together (``framing_rule``:
far beyond what popularity predicts, or most often).  At least one account always pushes.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from apt_core.attacks._accounts import FRAMING_RULES, co_top_rated_pairs, decoy_pair, divide_budget, pair_accounts
from apt_core.attacks._common import non_targets, sample_rows
from apt_core.attacks.base import Attack, AttackResult, FakeProfiles, Param, ProgressFn
from apt_core.data.dataset import Interactions
from apt_core.errors import ConfigError

ACCOUNT_PARAMS = (
    Param("decoys", float, 0.0, "share of the fake accounts spent on decoys (top-rate one obscure unrelated item pair; inside the budget)",
          low=0.0, high=1.0, high_open=True),
    Param("framing", float, 0.0, "share of the fake accounts spent on framing (top-rate item pairs real fans co-rate; inside the budget)",
          low=0.0, high=1.0, high_open=True),
    Param("framing_pairs", int, 1, "framing accounts cycle over this many of the item pairs real fans top-rate together", low=1, high=1000),
    Param("framing_rule", str, "surprise", "which pairs framing accounts top-rate: surprise (real fans co-rate them far beyond popularity), count (most often) "
          "or clique (three items whose three pairs real fans all co-rate beyond popularity: against apt-robust's rank-2 detector)",
          choices=FRAMING_RULES),
)


#: above this many k-subsets of the targets the design picks targets one at a time
MAX_ENUMERATED_SUBSETS = 2000


def balanced_subsets(n_accounts: int, n_targets: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_accounts, k)`` target positions, account by account: always the least-used targets
    (so every target is used ``floor`` or ``ceil`` of ``n_accounts x k / n_targets`` times);
    among those, the subset whose target pairs are shared least so far (smallest largest pair
    count, then smallest sum of squared pair counts), ties at random.  With more than
    ``MAX_ENUMERATED_SUBSETS`` subsets the targets are picked one at a time by the same rule."""
    counts = np.zeros(n_targets, dtype=np.int64)
    pair_counts = np.zeros((n_targets, n_targets), dtype=np.int64)
    iu = np.triu_indices(k, 1)
    enumerate_all = math.comb(n_targets, k) <= MAX_ENUMERATED_SUBSETS
    all_subsets = np.array(list(itertools.combinations(range(n_targets), k)), dtype=np.int64) if enumerate_all else None
    out = np.zeros((n_accounts, k), dtype=np.int64)
    for a in range(n_accounts):
        # The threshold count: targets below it must all be taken, at it fill the rest.
        threshold = np.sort(counts)[k - 1]
        if all_subsets is not None:
            below = int((counts < threshold).sum())
            sub_counts = counts[all_subsets]
            valid = all_subsets[((sub_counts < threshold).sum(1) == below) & (sub_counts <= threshold).all(1)]
            after = pair_counts[valid[:, iu[0]], valid[:, iu[1]]] + 1
            largest, squares = after.max(1, initial=0), (after**2).sum(1)
            best = valid[(largest == largest.min()) & (squares == squares[largest == largest.min()].min())]
            chosen = best[int(rng.integers(len(best)))]
        else:
            picked: list[int] = []
            for _ in range(k):
                free = np.setdiff1d(np.arange(n_targets), picked)
                least = free[counts[free] == counts[free].min()]
                shared = pair_counts[np.ix_(least, picked)].sum(1) if picked else np.zeros(len(least), np.int64)
                picked.append(int(rng.choice(least[shared == shared.min()])))
            chosen = np.asarray(picked)
        out[a] = chosen
        counts[chosen] += 1
        pair_counts[np.ix_(chosen, chosen)] += 1
    return out


def resolve_k(k: int | None, n_targets: int, owner: str) -> int:
    """``k`` or its default ``n_targets - 1`` (at least 1); refuses more than ``n_targets``."""
    if k is None:
        return max(1, n_targets - 1)
    if k > n_targets:
        raise ConfigError(f"{owner}.k must lie in 1..{n_targets} (the number of targets), got {k}")
    return int(k)


def shaded_targets(design: np.ndarray, n_targets: int) -> np.ndarray:
    """Per pushing account, the target positions it does *not* top-rate (``(accounts, n - k)``)."""
    rated = np.zeros((len(design), n_targets), dtype=bool)
    rated[np.arange(len(design))[:, None], design] = True
    return np.nonzero(~rated)[1].reshape(len(design), n_targets - design.shape[1])


def subset_profiles(train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int, k: int,
                    decoys: float, framing: float, framing_pairs: int, rng: np.random.Generator,
                    framing_rule: str = "surprise", shade: bool = False, shade_steps: int = 1) -> AttackResult:
    """The subset attack's accounts (pushers, then decoys, then framing) with what was chosen.

    ``shade``: every pushing account also rates its other ``n - k`` targets ``shade_steps`` grid
    steps below the maximum (drawn after the fillers, so the rest of the profiles is the same as without)."""
    plan = divide_budget(n_fake_users, decoys, framing)
    design = balanced_subsets(plan.pushers, len(targets), k, rng)
    t_items = targets[design]
    fillers = sample_rows(rng, plan.pushers, non_targets(train.n_items, targets), n_filler)
    means, stds = train.item_means(), train.item_stds()
    f_ratings = train.scale.snap(rng.normal(means[fillers], stds[fillers]))
    t_ratings = np.full(t_items.shape, train.scale.maximum, dtype=np.float32)
    if shade and k < len(targets):
        rest = targets[shaded_targets(design, len(targets))]
        below = max(train.scale.minimum, train.scale.maximum - shade_steps * train.scale.step)
        t_items = np.concatenate([t_items, rest], axis=1)
        t_ratings = np.concatenate([t_ratings, np.full(rest.shape, below, dtype=np.float32)], axis=1)
    push_items = np.concatenate([t_items, fillers], axis=1)
    push_ratings = np.concatenate([t_ratings, f_ratings], axis=1)
    users = [np.repeat(np.arange(plan.pushers), push_items.shape[1])]
    items, ratings = [push_items.ravel()], [push_ratings.ravel().astype(np.float32)]
    diagnostics: dict = {"k": k, "pushers": plan.pushers, "decoys": plan.decoys, "framing": plan.framing,
                         "target_ratings": np.bincount(design.ravel(), minlength=len(targets)).tolist(),
                         "shaded_ratings": int(plan.pushers * (len(targets) - k)) if shade else 0}
    offset = plan.pushers
    if plan.decoys:
        pair = decoy_pair(train, targets, rng)
        u, i, r = pair_accounts(train, pair[None, :], plan.decoys, n_filler, targets, rng)
        users.append(u + offset), items.append(i), ratings.append(r)
        offset += plan.decoys
        diagnostics["decoy_items"] = pair.tolist()
    if plan.framing:
        pairs = co_top_rated_pairs(train, targets, framing_pairs, framing_rule)
        u, i, r = pair_accounts(train, pairs, plan.framing, n_filler, targets, rng)
        users.append(u + offset), items.append(i), ratings.append(r)
        diagnostics["framing_pairs"] = pairs.tolist()
    u, i, r = np.concatenate(users), np.concatenate(items), np.concatenate(ratings)
    order = np.lexsort((i, u))
    return AttackResult(FakeProfiles(u[order], i[order], r[order], n_fake_users, train.n_items), diagnostics)


class SubsetAttack(Attack):
    name = "subset"
    summary = "Each account top-rates k of the targets (balanced), Average fillers; optional decoy and framing accounts (ours)"
    paper = "ours (an attacker who knows the co-rating detector; docs/detection.md)"
    threat_model = "each item's rating mean and std; framing: which item pairs real users top-rate together"
    rates_every_target = False
    params = (
        Param("k", int, None, "targets each pushing account rates at the maximum, 1..number of targets (None: all but one)",
              low=1, high=1000, optional=True),
        Param("shade", bool, False, "each pushing account also rates its other n - k targets one grid step below the maximum "
              "(against apt-robust: its item-side test counts only top ratings and centres a bursting item at the mean of its "
              "ratings below the maximum, which these ratings lift to the global cap)"),
        Param("shade_steps", int, 1, "shade: grid steps below the maximum for the shaded targets (2: against apt-robust's "
              "pair_links, which links ratings of 4-5 only)", low=1, high=10),
    ) + ACCOUNT_PARAMS

    def __init__(self, k: int | None = None, decoys: float = 0.0, framing: float = 0.0, framing_pairs: int = 1,
                 framing_rule: str = "surprise", shade: bool = False, shade_steps: int = 1) -> None:
        self._set_declared(locals())

    def shades_targets(self) -> int:
        return int(self.shade_steps) if self.shade else 0

    def check_params(self) -> None:
        if self.decoys + self.framing >= 1.0:
            raise ConfigError(f"subset.decoys + subset.framing must stay below 1 (some accounts must push), got {self.decoys} + {self.framing}")

    def _generate(self, train: Interactions, targets: np.ndarray, n_fake_users: int, n_filler: int,
                  rng: np.random.Generator, device: torch.device, progress: ProgressFn | None) -> AttackResult:
        k = resolve_k(self.k, len(targets), self.name)
        return subset_profiles(train, targets, n_fake_users, n_filler, k, self.decoys, self.framing, self.framing_pairs, rng,
                               self.framing_rule, self.shade, self.shade_steps)

"""The authors' evaluation protocol: leave-one-out split, target items, attack budget.

The paper's text mentions a 9:1 validation split that the authors' code does not have; the
code holds out one random observed rating per user, which is what we do (docs/protocol.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apt_core.data.dataset import Interactions, RatingData
from apt_core.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Train interactions plus one held-out test item per user (``-1``: user has none)."""

    train: Interactions
    test_items: np.ndarray
    test_ratings: np.ndarray
    seed: int | None
    #: the data set's own id of each dense item (``RatingData.item_ids``), for what a user reads
    #: or writes (poison CSVs); None for a split built in code, whose items have no other ids
    item_ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items


def leave_one_out(data: RatingData, seed: int = 0) -> Split:
    """Hold out one random observed rating per user (seeded).

    A data set that came with a fixed split (the authors' ``*.test.rating``) uses it and
    ignores ``seed``.  A user with a single rating keeps it for training and gets no test item.
    """
    inter = data.interactions
    n = len(inter)
    if data.fixed_test is not None:
        tu, ti, tr = data.fixed_test
        test_items = np.full(inter.n_users, -1, dtype=np.int64)
        test_ratings = np.zeros(inter.n_users, dtype=np.float32)
        test_items[tu] = ti
        test_ratings[tu] = tr
        is_test = np.zeros(n, dtype=bool)
        key_all = inter.users * inter.n_items + inter.items
        key_test = tu * inter.n_items + ti
        is_test[np.isin(key_all, key_test)] = True
        seed_used = None
    else:
        rng = np.random.default_rng(seed)
        # One random position per user: shuffle, then take each user's first occurrence.
        perm = rng.permutation(n)
        users_perm = inter.users[perm]
        _, first = np.unique(users_perm, return_index=True)
        chosen = perm[first]
        counts = inter.user_counts
        chosen = chosen[counts[inter.users[chosen]] >= 2]
        is_test = np.zeros(n, dtype=bool)
        is_test[chosen] = True
        test_items = np.full(inter.n_users, -1, dtype=np.int64)
        test_ratings = np.zeros(inter.n_users, dtype=np.float32)
        test_items[inter.users[chosen]] = inter.items[chosen]
        test_ratings[inter.users[chosen]] = inter.ratings[chosen]
        seed_used = seed
    keep = ~is_test
    train = Interactions(inter.users[keep], inter.items[keep], inter.ratings[keep], inter.n_users, inter.n_items, inter.scale)
    return Split(train, test_items, test_ratings, seed_used, data.item_ids)


TARGET_MODES = ("random", "unpopular", "tail")
#: the ``tail`` tier: the least popular share of the items that have a training rating
TAIL_SHARE = 0.2


def select_targets(split: Split, mode: str | list | tuple | np.ndarray = "random", n_targets: int = 5, seed: int = 0) -> np.ndarray:
    """Choose target items (dense ids).

    ``random``: uniformly among all items; ``unpopular``: among items with 1 <= train ratings
    < 5; ``tail``: among the bottom :data:`TAIL_SHARE` (20%) by training popularity of the
    items with at least one training rating (ties at the cut by item id); a list/array: those dense ids, validated (in range, no duplicates).
    """
    n_items = split.n_items
    if isinstance(mode, str) and mode in TARGET_MODES:
        if n_targets < 1:
            raise ConfigError(f"--n-targets must be at least 1, got {n_targets}")
        rng = np.random.default_rng(seed)
        if mode == "random":
            pool = np.arange(n_items)
        elif mode == "tail":
            counts = split.train.item_counts
            rated = np.flatnonzero(counts >= 1)
            order = rated[np.lexsort((rated, counts[rated]))]
            pool = np.sort(order[: int(np.ceil(TAIL_SHARE * len(rated)))])
        else:
            counts = split.train.item_counts
            pool = np.flatnonzero((counts >= 1) & (counts < 5))
        if len(pool) < n_targets:
            why = ""
            if mode == "unpopular":
                why = (f" (unpopular = 1 to 4 training ratings; {int((counts >= 5).sum())} items have 5 or more, "
                       f"{int((counts == 0).sum())} none); choose --targets random or item ids")
            else:
                why = f" (the catalogue has {n_items} items); lower --n-targets"
            raise ConfigError(f"only {len(pool)} {mode} items exist, cannot draw {n_targets} targets{why}")
        return np.sort(rng.choice(pool, size=n_targets, replace=False)).astype(np.int64)
    if isinstance(mode, str):
        raise ConfigError(f"unknown target mode {mode!r}: choose {', '.join(TARGET_MODES)} or give item ids")
    ids = np.asarray(list(mode), dtype=np.int64)
    if ids.size == 0:
        raise ConfigError("the list of target items is empty")
    if len(np.unique(ids)) != len(ids):
        dup = [int(v) for v in ids if (ids == v).sum() > 1]
        raise ConfigError(f"duplicate target item id(s): {sorted(set(dup))}")
    bad = ids[(ids < 0) | (ids >= n_items)]
    if len(bad):
        raise ConfigError(f"target item id(s) out of range 0..{n_items - 1}: {bad.tolist()}")
    return ids


@dataclass(frozen=True)
class AttackBudget:
    n_fake_users: int
    n_filler: int


def attack_budget(train: Interactions, attack_size: float, n_filler: int | None = None) -> AttackBudget:
    """Fake users = round(attack_size x real users); fillers = round(ratings / users) unless given."""
    if not (0 < attack_size <= 1):
        raise ConfigError(f"--attack-size must lie in (0, 1], got {attack_size}")
    n_real = train.n_real_users
    n_fake = int(round(attack_size * n_real))
    if n_fake < 1:
        raise ConfigError(f"attack size {attack_size} of {n_real} users rounds to zero fake users; raise it")
    if n_filler is None:
        real = train.users < n_real
        n_filler = int(round(real.sum() / max(1, n_real)))
    if n_filler < 0 or n_filler > train.n_items:
        raise ConfigError(f"--filler must lie in 0..{train.n_items} (the catalogue size), got {n_filler}")
    return AttackBudget(n_fake, int(n_filler))

"""The APT authors' fixed target items (``--targets paper``, ``paper-unpopular``, ``paper-random``).

The authors' code attacks the same five items in every run, given as 0-based ids of their own
split files (``NAME.train.rating`` / ``NAME.test.rating``, read with ``--dataset DIR/NAME``).
Those ids mean nothing on any other split, not even on the same data set split again, so
:func:`paper_targets` refuses a data set that is not one of the authors' split files: it must
come with its fixed test file, have the authors' numbers of users and items with ids
``0..n-1``, one test rating per user, and (where we could check the files: ML-100K and
FilmTrust) the authors' number of training ratings, with the unpopular targets rated 1-4
times in train as the paper's definition says.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apt_core.data.dataset import RatingData
from apt_core.data.split import Split
from apt_core.errors import ConfigError

#: ``paper`` is the unpopular list (the setting of the paper's headline tables).
PAPER_TARGET_MODES = {"paper": "unpopular", "paper-unpopular": "unpopular", "paper-random": "random"}


@dataclass(frozen=True)
class AuthorsSplit:
    name: str
    n_users: int
    n_items: int
    n_train: int | None  # None: not checked (we hold no copy of those files)
    unpopular: tuple[int, ...]
    random: tuple[int, ...]


AUTHORS_SPLITS: tuple[AuthorsSplit, ...] = (
    AuthorsSplit("ml-100k", 943, 1682, 99057, (1485, 1320, 821, 1562, 1531), (1018, 946, 597, 575, 516)),
    AuthorsSplit("ml-1m", 6040, 3706, None, (3639, 3698, 3622, 3570, 3503), (1032, 3033, 2797, 2060, 1366)),
    AuthorsSplit("filmtrust", 796, 2011, 30084, (1576, 926, 942, 848, 107), (539, 117, 1600, 1326, 208)),
    AuthorsSplit("yelp", 14575, 25602, None, (2504, 19779, 9624, 24064, 17390), (2417, 21817, 13064, 3348, 15085)),
)


def is_paper_mode(mode) -> bool:
    return isinstance(mode, str) and mode in PAPER_TARGET_MODES


def paper_targets(data: RatingData, split: Split, mode: str = "paper") -> np.ndarray:
    """The authors' five targets (dense ids) for ``mode`` on their split ``data``; else ConfigError."""
    if mode not in PAPER_TARGET_MODES:
        raise ConfigError(f"unknown paper target set {mode!r}: choose one of {', '.join(PAPER_TARGET_MODES)}")
    which = PAPER_TARGET_MODES[mode]
    hint = ("--targets paper needs the APT authors' split files (NAME.train.rating and NAME.test.rating, "
            "read with --dataset DIR/NAME): their target ids mean nothing on another split")
    if data.fixed_test is None:
        raise ConfigError(f"{hint}; {data.name!r} has no fixed test file (it was split here)")
    match = [s for s in AUTHORS_SPLITS if (s.n_users, s.n_items) == (data.n_users, data.n_items)]
    if not match:
        shapes = ", ".join(f"{s.name} {s.n_users}x{s.n_items}" for s in AUTHORS_SPLITS)
        raise ConfigError(f"{hint}; {data.name!r} has {data.n_users} users x {data.n_items} items, "
                          f"none of the authors' splits ({shapes})")
    spec = match[0]
    ids_ok = np.array_equal(np.asarray(data.item_ids).astype(np.int64), np.arange(data.n_items)) and \
        np.array_equal(np.asarray(data.user_ids).astype(np.int64), np.arange(data.n_users))
    if not ids_ok:
        raise ConfigError(f"{hint}; {data.name!r} does not use the 0-based ids 0..n-1 of the authors' files")
    if int((split.test_items >= 0).sum()) != data.n_users:
        raise ConfigError(f"{hint}; {data.name!r} does not hold one test rating per user")
    if spec.n_train is not None and len(split.train) != spec.n_train:
        raise ConfigError(f"{hint}; {data.name!r} has {len(split.train)} training ratings, "
                          f"the authors' {spec.name} split has {spec.n_train}")
    targets = np.asarray(spec.unpopular if which == "unpopular" else spec.random, dtype=np.int64)
    if spec.n_train is not None and which == "unpopular":
        counts = split.train.item_counts[targets]
        if not ((counts >= 1) & (counts < 5)).all():
            raise ConfigError(f"{hint}; the authors' unpopular targets have {counts.tolist()} training ratings "
                              "here, not 1-4 as in their split")
    return targets

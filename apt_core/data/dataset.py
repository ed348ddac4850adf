"""In-memory rating data: the one representation every loader produces.

Ids are remapped to ``0..n-1`` (dense, in order of the sorted original ids); the original
ids are kept in ``user_ids``/``item_ids`` for display and export.  Ratings stay on the data
set's own scale here; models see them normalised to (0, 1] by :meth:`RatingScale.normalise`.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from apt_core.errors import DataError, warn


@dataclass(frozen=True)
class RatingScale:
    """The grid ratings live on: ``minimum, minimum + step, ..., maximum``."""

    minimum: float
    maximum: float
    step: float

    def __post_init__(self) -> None:
        if not (self.maximum > 0 and self.minimum > 0 and self.step > 0 and self.minimum <= self.maximum):
            raise DataError(
                f"invalid rating scale {self.minimum}..{self.maximum} step {self.step}: "
                "ratings must be positive (they are normalised to (0, 1] by dividing by the maximum)"
            )

    @property
    def grid(self) -> np.ndarray:
        n = int(round((self.maximum - self.minimum) / self.step)) + 1
        return self.minimum + self.step * np.arange(n)

    def snap(self, values: np.ndarray) -> np.ndarray:
        """Round raw values to the nearest grid point and clip to the scale."""
        values = np.asarray(values, dtype=np.float64)
        snapped = self.minimum + np.round((values - self.minimum) / self.step) * self.step
        return np.clip(snapped, self.minimum, self.maximum).astype(np.float32)

    def on_grid(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask: which values are exactly (up to float noise) on the grid."""
        values = np.asarray(values, dtype=np.float64)
        k = (values - self.minimum) / self.step
        inside = (values >= self.minimum - 1e-6) & (values <= self.maximum + 1e-6)
        return inside & (np.abs(k - np.round(k)) < 1e-4)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) / np.float32(self.maximum)).astype(np.float32)

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32) * np.float32(self.maximum)

    @classmethod
    def parse(cls, text: str, ratings: np.ndarray | None = None) -> "RatingScale":
        """A declared scale ``"LO..HI"`` or ``"LO..HI:STEP"`` (``--scale``).

        Without a step, the step is the coarsest that fits ``ratings`` (as :meth:`infer` finds
        it), else 1.
        """
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*\.\.\s*([0-9.eE+-]+)\s*(?::\s*([0-9.eE+-]+)\s*)?", str(text))
        try:
            lo, hi = float(match.group(1)), float(match.group(2))
            step = float(match.group(3)) if match.group(3) else None
        except (AttributeError, ValueError):
            raise DataError(f"a rating scale is written LO..HI or LO..HI:STEP (e.g. 1..5 or 0.5..4:0.5), got {text!r}") from None
        if not all(np.isfinite(v) for v in (lo, hi) + ((step,) if step is not None else ())):
            raise DataError(f"a rating scale needs finite numbers, got {text!r}")
        if step is None:
            inside = None if ratings is None else np.asarray(ratings, dtype=np.float64)
            step = cls.infer(inside).step if inside is not None and inside.size and inside.min() > 0 else 1.0
        return cls(lo, hi, step)

    @classmethod
    def infer(cls, ratings: np.ndarray) -> "RatingScale":
        """Infer the grid of a rating column (min, max and the coarsest step that fits)."""
        ratings = np.asarray(ratings, dtype=np.float64)
        if ratings.size == 0:
            raise DataError("cannot infer a rating scale from an empty rating column")
        lo, hi = float(ratings.min()), float(ratings.max())
        if lo <= 0:
            raise DataError(f"ratings must be positive, found {lo:g}")
        step = 1.0
        for candidate in (1.0, 0.5, 0.25, 0.1, 0.05, 0.01):
            k = (ratings - lo) / candidate
            if np.all(np.abs(k - np.round(k)) < 1e-6):
                step = candidate
                break
        else:
            step = 0.01
        return cls(lo, hi, step)


@dataclass(frozen=True)
class Interactions:
    """A set of (user, item, rating) triples over ``n_users x n_items``.

    Users ``0..n_real_users-1`` are the data set's real users; any users beyond that were
    injected (fake attack profiles, APT's ERM users) and never count in metrics.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_users: int
    n_items: int
    scale: RatingScale
    n_real_users: int = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.ascontiguousarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.ascontiguousarray(self.items, dtype=np.int64))
        object.__setattr__(self, "ratings", np.ascontiguousarray(self.ratings, dtype=np.float32))
        if self.n_real_users < 0:
            object.__setattr__(self, "n_real_users", self.n_users)
        if not (len(self.users) == len(self.items) == len(self.ratings)):
            raise DataError("users, items and ratings must have the same length")

    def __len__(self) -> int:
        return len(self.ratings)

    @property
    def n_injected_users(self) -> int:
        return self.n_users - self.n_real_users

    @cached_property
    def normalised_ratings(self) -> np.ndarray:
        return self.scale.normalise(self.ratings)

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Number of ratings of each item (all users, injected ones included)."""
        return np.bincount(self.items, minlength=self.n_items)

    @cached_property
    def real_item_counts(self) -> np.ndarray:
        keep = self.users < self.n_real_users
        return np.bincount(self.items[keep], minlength=self.n_items)

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    @cached_property
    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, item indices, ratings) sorted by user: row ``u`` is ``indptr[u]:indptr[u+1]``."""
        order = np.lexsort((self.items, self.users))
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=self.n_users), out=indptr[1:])
        return indptr, self.items[order], self.ratings[order]

    def user_items(self, user: int) -> np.ndarray:
        indptr, indices, _ = self.csr
        return indices[indptr[user] : indptr[user + 1]]

    def item_means(self, default: float | None = None) -> np.ndarray:
        """Mean raw rating of each item (``default``, else the global mean, for unrated items)."""
        sums = np.bincount(self.items, weights=self.ratings, minlength=self.n_items)
        counts = self.item_counts
        fill = float(self.ratings.mean()) if default is None else default
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), fill)

    def item_stds(self, default: float | None = None) -> np.ndarray:
        """Population standard deviation of each item's ratings (global std when < 2 ratings)."""
        means = self.item_means()
        sq = np.bincount(self.items, weights=(self.ratings - means[self.items]) ** 2, minlength=self.n_items)
        counts = self.item_counts
        fill = float(self.ratings.std()) if default is None else default
        return np.where(counts > 1, np.sqrt(sq / np.maximum(counts, 1)), fill)

    def with_injected(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_new_users: int) -> "Interactions":
        """Append ``n_new_users`` injected users; ``users`` are local ids ``0..n_new_users-1``."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= n_new_users):
            raise DataError("injected user ids must lie in 0..n_new_users-1")
        return Interactions(
            users=np.concatenate([self.users, users + self.n_users]),
            items=np.concatenate([self.items, np.asarray(items, dtype=np.int64)]),
            ratings=np.concatenate([self.ratings, np.asarray(ratings, dtype=np.float32)]),
            n_users=self.n_users + n_new_users,
            n_items=self.n_items,
            scale=self.scale,
            n_real_users=self.n_real_users,
        )

    def real_only(self) -> "Interactions":
        keep = self.users < self.n_real_users
        return Interactions(self.users[keep], self.items[keep], self.ratings[keep], self.n_real_users, self.n_items, self.scale)


@dataclass
class RatingData:
    """A loaded data set: all ratings plus display metadata.

    ``fixed_test`` holds a ready split's test pairs (the authors' ``*.test.rating`` files):
    when present, :func:`apt_core.data.split.leave_one_out` uses it instead of drawing one.
    """

    name: str
    interactions: Interactions
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_titles: list[str] | None = None
    source: str = ""
    fixed_test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    #: what loading noticed but did not refuse (duplicate rows...), for the CLI and the app to show
    warnings: list[str] = field(default_factory=list, repr=False)

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return self.interactions.n_items

    @property
    def n_ratings(self) -> int:
        return len(self.interactions)

    @property
    def scale(self) -> RatingScale:
        return self.interactions.scale

    def title(self, item: int) -> str:
        """Display name of a dense item index."""
        if self.item_titles is not None and 0 <= item < len(self.item_titles) and self.item_titles[item]:
            return str(self.item_titles[item])
        return f"item {self.item_ids[item]}"

    def original_item_ids(self, indices) -> list:
        """The data set's own ids of dense item ``indices``, as plain Python values (JSON-ready)."""
        return [_native(v) for v in self.item_ids[np.asarray(indices, dtype=np.int64)]]

    def item_index(self, original_ids: list) -> np.ndarray:
        """Map original item ids (as in the source file) to dense indices; unknown ids fail."""
        lookup = IdIndex(self.item_ids)
        out, missing = [], []
        for value in original_ids:
            index = lookup.get(value)
            if index is None:
                missing.append(value)
            else:
                out.append(index)
        if missing:
            hint = ""
            if any(isinstance(m, str) and not m.lstrip("-").isdigit() for m in missing):
                # a misspelled target word ("paper-popular") reads as a text id: say what the words are
                hint = " (target words: random, unpopular, paper, paper-unpopular, paper-random)"
            raise DataError(f"unknown item id(s) for {self.name}: {', '.join(map(str, missing[:10]))}{hint}")
        return np.asarray(out, dtype=np.int64)

    def summary(self) -> dict:
        inter = self.interactions
        counts = inter.item_counts
        return {
            "name": self.name,
            "n_users": int(self.n_users),
            "n_items": int(self.n_items),
            "n_ratings": int(self.n_ratings),
            "density": float(self.n_ratings / max(1, self.n_users * self.n_items)),
            "scale": f"{self.scale.minimum:g}..{self.scale.maximum:g} step {self.scale.step:g}",
            "mean_rating": float(inter.ratings.mean()) if len(inter) else float("nan"),
            "ratings_per_user": float(self.n_ratings / max(1, self.n_users)),
            "items_with_lt5_ratings": int(((counts >= 1) & (counts < 5)).sum()),
            "source": self.source,
        }


def build_rating_data(
    name: str,
    raw_users: np.ndarray,
    raw_items: np.ndarray,
    ratings: np.ndarray,
    scale: RatingScale | None = None,
    titles: dict | None = None,
    source: str = "",
) -> RatingData:
    """Deduplicate (keep the last rating of a pair), remap ids densely and wrap."""
    ratings = np.asarray(ratings, dtype=np.float64)
    if len(ratings) == 0:
        raise DataError(f"{name}: no ratings")
    scale = scale or RatingScale.infer(ratings)
    user_ids, users = _dense_ids(raw_users)
    item_ids, items = _dense_ids(raw_items)
    # Keep the last occurrence of each (user, item) pair (a hash pass, not a sort: 5 million
    # rows in well under a second).
    key = users * len(item_ids) + items
    keep = np.flatnonzero(~pd.Series(key).duplicated(keep="last").to_numpy())
    notes = []
    if len(keep) < len(key):
        notes.append(f"{name}: {len(key) - len(keep)} of {len(key)} rows repeat a (user, item) pair already rated; "
                     "the last rating of each pair is kept")
        warn(notes[-1])
    inter = Interactions(users[keep], items[keep], ratings[keep].astype(np.float32), len(user_ids), len(item_ids), scale)
    title_list = None
    if titles:
        title_list = [titles.get(_native(i), "") for i in item_ids]
    return RatingData(name, inter, user_ids, item_ids, title_list, source, warnings=notes)


def _dense_ids(raw) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, dense index of each row): ``np.unique(..., return_inverse=True)``
    by hashing instead of sorting every row."""
    codes, uniques = pd.factorize(np.asarray(raw).ravel(), sort=True)
    return np.asarray(uniques), codes.astype(np.int64, copy=False)


class IdIndex:
    """The data set's own ids (``RatingData.item_ids`` / ``user_ids``) -> dense indices ``0..n-1``.

    Users type ids and files hold them as text: ``"101"``, ``101`` and ``"101.0"`` name the
    same item of a data set with numeric ids; ids that are strings match as stripped text
    (``"007"`` stays ``"007"``).
    """

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids)
        self.numeric = self.ids.dtype.kind in "iuf"
        # tolist() gives Python ints for integer ids (exact beyond 2**53), floats for float ids
        self._lookup = {(v if self.numeric else str(_native(v))): i for i, v in enumerate(self.ids.tolist())}

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, value) -> int | None:
        """Dense index of ``value`` (an id as text or number), None when it is not one of the ids."""
        if self.numeric:
            text = str(value).strip()
            try:  # "7", " 7" and "7.0" all name item 7 (int and float keys of equal value hash alike)
                key = int(text)
            except ValueError:
                try:
                    key = float(text)
                except ValueError:
                    return None
            return self._lookup.get(key)
        return self._lookup.get(str(_native(value)).strip())

    def describe(self) -> str:
        """The ids in a few words, for error messages (``"ids 101..990, 40 items"``)."""
        if not len(self.ids):
            return "no ids"
        if self.numeric:
            return f"ids {self.ids.min():g}..{self.ids.max():g}, {len(self.ids)} in all"
        return f"{len(self.ids)} ids such as {', '.join(map(str, self.ids[:3].tolist()))}"


def _native(value):
    return value.item() if hasattr(value, "item") else value

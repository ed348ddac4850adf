"""Export and import of fake profiles (the ``python -m apt_core poison`` subcommand that writes them is in :mod:`apt_core.cli`).

Two formats:

* CSV with header ``user,item,rating``: ``user`` is the fake user's index (0-based), ``item``
  the dense item index of the training data (0-based, as in the JSON ``targets``), ``rating``
  on the data set's own scale.
* The APT authors' ``.npy`` layout: a dense ``(n_fake_users, n_items)`` float matrix of
  normalised ratings (rating / scale maximum; 0 = not rated).

Imports are validated -- shape, finite values, range -- and snapped to the rating grid, and
``.npy`` files are read with ``allow_pickle=False`` (a pickled object array could run code).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import Interactions, RatingScale
from apt_core.errors import ConfigError, DataError, warn

FORMATS = (".csv", ".npy")


def profile_format(path: Path) -> str:
    """``.csv`` or ``.npy`` from the file name; any other ending is a :class:`ConfigError`."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path.name}: unknown poison file format {suffix or '(none)'!r}; use .csv or .npy")
    return suffix


def save_profiles(profiles: FakeProfiles, path: str | Path, scale: RatingScale) -> Path:
    """Write ``profiles`` as CSV (raw ratings) or ``.npy`` (dense normalised matrix)."""
    path = Path(path)
    fmt = profile_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".npy":
        np.save(path, profiles.dense(scale.maximum), allow_pickle=False)
    else:
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["user", "item", "rating"])
            for u, i, r in zip(profiles.users.tolist(), profiles.items.tolist(), profiles.ratings.tolist()):
                writer.writerow([u, i, f"{r:g}"])
    return path


def _snap_checked(raw: np.ndarray, scale: RatingScale, where: str) -> np.ndarray:
    """Snap raw ratings inside the scale to the grid; values outside min..max are an error."""
    if not np.all(np.isfinite(raw)):
        raise DataError(f"{where}: ratings must be finite numbers (found NaN or infinity)")
    tol = 1e-6
    bad = (raw < scale.minimum - tol) | (raw > scale.maximum + tol)
    if bad.any():
        v = raw[bad][0]
        raise DataError(
            f"{where}: rating {v:g} is off the scale {scale.minimum:g}..{scale.maximum:g} ({int(bad.sum())} such values)"
        )
    return scale.snap(raw)


#: most fake users a poison file may hold, as a multiple of the real users (a 100% attack is
#: already extreme; the cap keeps a crafted header from allocating gigabytes)
MAX_FAKE_USER_RATIO = 10


def _check_npy_header(path: Path, train: Interactions) -> None:
    """Check the ``.npy`` header's shape against the data set and the file size before loading.

    A 1 kB file may claim a (100 million x items) matrix: ``np.load`` would try to allocate
    it.  Nothing is allocated here beyond the header.
    """
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
        size = path.stat().st_size
    except (ValueError, OSError, SyntaxError) as exc:
        raise DataError(f"{path.name}: not a plain numeric .npy array ({exc})") from None
    if dtype.hasobject:
        raise DataError(f"{path.name}: holds Python objects, not a plain numeric array (pickled arrays are never loaded)")
    if len(shape) != 2 or shape[1] != train.n_items:
        raise DataError(
            f"{path.name}: expected a (fake users x {train.n_items} items) matrix of normalised ratings, found shape {tuple(shape)}"
        )
    need = int(shape[0]) * int(shape[1]) * dtype.itemsize
    if size - offset < need:
        raise DataError(f"{path.name}: the header claims shape {tuple(shape)} ({need} bytes) but the file holds {size - offset} bytes of data (truncated or forged)")
    limit = MAX_FAKE_USER_RATIO * max(1, train.n_real_users)
    if shape[0] > limit:
        raise DataError(f"{path.name}: {shape[0]} fake users is more than {MAX_FAKE_USER_RATIO}x the {train.n_real_users} real users")


def _load_npy(path: Path, train: Interactions) -> FakeProfiles:
    _check_npy_header(path, train)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path.name}: not a plain numeric .npy array ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise DataError(f"{path.name}: expected a numeric matrix, found dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim != 2 or arr.shape[1] != train.n_items:
        raise DataError(
            f"{path.name}: expected a (fake users x {train.n_items} items) matrix of normalised ratings, found shape {arr.shape}"
        )
    if arr.shape[0] < 1:
        raise DataError(f"{path.name}: the matrix has no fake users")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path.name}: ratings must be finite numbers (found NaN or infinity)")
    if (arr < 0).any() or (arr > 1 + 1e-6).any():
        raise DataError(
            f"{path.name}: normalised ratings must lie in (0, 1] (0 = not rated); found values in "
            f"[{arr.min():g}, {arr.max():g}] -- is it on the raw scale instead of divided by {train.scale.maximum:g}?"
        )
    users, items = np.nonzero(arr > 0)
    empty = int(arr.shape[0] - len(np.unique(users)))
    if empty:
        warn(f"{path.name}: {empty} of {arr.shape[0]} fake users rate nothing (rows of zeros)"
             + (": the file injects no ratings at all" if empty == arr.shape[0] else ""))
    # Normalised values below the scale minimum snap up to it (the authors' files hold
    # continuous optimiser output); only values outside (0, 1] are errors.
    raw = arr[users, items] * train.scale.maximum
    ratings = train.scale.snap(raw)
    return FakeProfiles(users, items, ratings, arr.shape[0], train.n_items)


def _load_csv(path: Path, train: Interactions) -> FakeProfiles:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the header
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: cannot read ({exc})") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]] == ["user", "item", "rating"]:
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path.name}: no fake ratings (expected rows user,item,rating)")
    if any(len(r) != 3 for r in rows):
        bad = next(i for i, r in enumerate(rows) if len(r) != 3)
        raise DataError(f"{path.name}: every row must have 3 columns user,item,rating; row {bad + 1} has {len(rows[bad])}")
    try:
        table = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path.name}: non-numeric value ({exc})") from None
    ids = table[:, :2]
    if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)) or np.any(ids < 0):
        raise DataError(f"{path.name}: user and item must be non-negative integers")
    # Range checks on the floats, before the integer cast: 1e20 would wrap to a negative int64.
    if ids[:, 1].max() >= train.n_items:
        raise DataError(f"{path.name}: item index {ids[:, 1].max():g} out of range 0..{train.n_items - 1} (dense item indices)")
    if ids[:, 0].max() >= 2**53:
        raise DataError(f"{path.name}: user index {ids[:, 0].max():g} is too large (fake user indices count from 0)")
    users, items = ids[:, 0].astype(np.int64), ids[:, 1].astype(np.int64)
    # Fake user ids may have gaps; renumber them densely in order (before the pair key, so
    # huge sparse user ids cannot overflow it).
    uniq, local = np.unique(users, return_inverse=True)
    if len(uniq) > MAX_FAKE_USER_RATIO * max(1, train.n_real_users):
        raise DataError(f"{path.name}: {len(uniq)} fake users is more than {MAX_FAKE_USER_RATIO}x the {train.n_real_users} real users")
    key = local.astype(np.int64) * train.n_items + items
    if len(np.unique(key)) != len(key):
        raise DataError(f"{path.name}: a fake user rates the same item twice")
    ratings = _snap_checked(table[:, 2], train.scale, path.name)
    return FakeProfiles(local.astype(np.int64), items, ratings, len(uniq), train.n_items)


def load_profiles(path: str | Path, train: Interactions) -> FakeProfiles:
    """Read fake profiles for ``train`` from CSV or ``.npy``; malformed files raise :class:`DataError`."""
    path = Path(path)
    fmt = profile_format(path)
    if not path.is_file():
        raise DataError(f"poison file not found: {path}")
    return _load_npy(path, train) if fmt == ".npy" else _load_csv(path, train)

"""Export and import of fake profiles (the ``python -m apt_core poison`` subcommand that writes them is in :mod:`apt_core.cli`).

Two formats:

* CSV with the header ``user,item_id,rating``: ``user`` numbers the fake users (any
  non-negative integers; renumbered in order), ``item_id`` is **the data set's own item id**
  (as in its rating file and in ``--targets``), ``rating`` is on the data set's own scale.
  A file may instead name items by dense index with the header ``user,item_index,rating``
  (0-based position in the sorted item ids, what ``poison`` wrote before format 2).  The
  header is required: the old header ``user,item,rating`` is refused with a message, because
  files written by older versions hold dense indices there while hand-written ones usually
  hold the data set's ids (on ML-100K they differ by one: the neighbouring item).
* The APT authors' ``.npy`` layout: a dense ``(n_fake_users, n_items)`` float matrix of
  normalised ratings (rating / scale maximum; 0 = not rated).  Its columns are dense item
  indices by nature (column ``j`` is the item with the ``j``-th smallest id).

Imports are validated -- header, known item ids, shape, finite values, range -- and snapped
to the rating grid; an error names the file and the line.  ``.npy`` files are read with
``allow_pickle=False`` (a pickled object array could run code).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from apt_core.attacks.base import FakeProfiles
from apt_core.data.dataset import IdIndex, Interactions, RatingScale
from apt_core.errors import ConfigError, DataError, warn
from apt_core.storage.outputs import write_output

FORMATS = (".csv", ".npy")


def profile_format(path: Path) -> str:
    """``.csv`` or ``.npy`` from the file name; any other ending is a :class:`ConfigError`."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path.name}: unknown poison file format {suffix or '(none)'!r}; use .csv or .npy")
    return suffix


#: the CSV header ``save_profiles`` writes: items by the data set's own ids
CSV_HEADER = ("user", "item_id", "rating")
#: the second column's name when a CSV names items by dense index (0-based)
DENSE_ITEM_COLUMN = "item_index"


def save_profiles(profiles: FakeProfiles, path: str | Path, scale: RatingScale, item_ids: np.ndarray | None = None) -> Path:
    """Write ``profiles`` as CSV (``user,item_id,rating``: raw ratings) or ``.npy`` (dense normalised matrix).

    ``item_ids``: the data set's own id of each dense item (``RatingData.item_ids`` or
    ``Split.item_ids``); None for data built in code: the CSV then names items by dense index
    (header ``user,item_index,rating``).
    """
    path = Path(path)
    fmt = profile_format(path)
    buffer = io.BytesIO()
    if fmt == ".npy":
        np.save(buffer, profiles.dense(scale.maximum), allow_pickle=False)
    else:
        # Without the data set's ids the file says that it holds dense indices (never a dense
        # index under the name item_id).
        header = CSV_HEADER if item_ids is not None else (CSV_HEADER[0], DENSE_ITEM_COLUMN, CSV_HEADER[2])
        ids = profiles.items.tolist() if item_ids is None else np.asarray(item_ids)[profiles.items].tolist()
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for u, i, r in zip(profiles.users.tolist(), ids, profiles.ratings.tolist()):
            writer.writerow([u, i, f"{r:g}"])
        buffer.write(text.getvalue().encode())
    # One rule for every user-named output (apt_core/storage/outputs.py): a symlink's target
    # is replaced whole, the link stays; a pipe or device is streamed to, never replaced.
    write_output(path, buffer.getvalue())
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


def _csv_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every row that is not blank or a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the header
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: cannot read ({exc})") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append((number, [c.strip() for c in next(csv.reader([line]))]))
    return out


def _item_column(path: Path, line: int, header: list[str]) -> str:
    """``item_id`` or ``item_index`` from the header; anything else is a :class:`DataError` that says why."""
    names = [c.lower() for c in header]
    if len(names) == 3 and names[0] == "user" and names[2] == "rating":
        if names[1] in (CSV_HEADER[1], DENSE_ITEM_COLUMN):
            return names[1]
        if names[1] == "item":
            raise DataError(
                f"{path.name} line {line}: the header user,item,rating is ambiguous: files written by APT Lab before "
                "poison-file format 2 hold dense item indices (0-based; on ML-100K the data set's id minus 1), while "
                "the data set's own ids are what --targets and the reports use. Rename the column: "
                "user,item_id,rating if the values are the data set's own item ids, "
                "user,item_index,rating if they are dense indices (a file written by an older `poison`)")
    raise DataError(f"{path.name} line {line}: expected the header user,item_id,rating (item_id: the data set's own item ids; "
                    f"or user,item_index,rating for dense 0-based indices), found {','.join(header)!r}")


def _load_csv(path: Path, train: Interactions, item_ids: np.ndarray | None) -> FakeProfiles:
    lines = _csv_lines(path)
    if not lines:
        raise DataError(f"{path.name}: empty (expected the header user,item_id,rating and one row per fake rating)")
    column = _item_column(path, *lines[0])
    rows = lines[1:]
    if not rows:
        raise DataError(f"{path.name}: no fake ratings (expected rows user,item_id,rating after the header)")
    ids = IdIndex(np.arange(train.n_items) if item_ids is None or column == DENSE_ITEM_COLUMN else item_ids)
    n = len(rows)
    users = np.empty(n, dtype=np.int64)
    items = np.empty(n, dtype=np.int64)
    raw = np.empty(n, dtype=np.float64)
    for k, (line, cells) in enumerate(rows):
        where = f"{path.name} line {line}"
        if len(cells) != 3:
            raise DataError(f"{where}: every row must have 3 columns user,{column},rating; this one has {len(cells)}")
        try:
            user = float(cells[0])
        except ValueError:
            raise DataError(f"{where}: user {cells[0]!r} is not a number (fake users are numbered 0, 1, ...)") from None
        # Range checks on the float, before the integer cast: 1e20 would wrap to a negative int64.
        if np.isfinite(user) and user >= 2**53:
            raise DataError(f"{where}: user {cells[0]!r} is too large (fake users are numbered 0, 1, ...)")
        if not np.isfinite(user) or user != round(user) or user < 0:
            raise DataError(f"{where}: user {cells[0]!r} must be a non-negative whole number (fake users are numbered 0, 1, ...)")
        item = ids.get(cells[1])
        if item is None:
            if column == DENSE_ITEM_COLUMN:
                raise DataError(f"{where}: item index {cells[1]!r} is out of range 0..{train.n_items - 1} (dense 0-based item indices)")
            raise DataError(f"{where}: item id {cells[1]!r} is not an item of the data set ({ids.describe()}; "
                            "item_id is the data set's own item id, as in its rating file)")
        try:
            rating = float(cells[2])
        except ValueError:
            raise DataError(f"{where}: rating {cells[2]!r} is not a number") from None
        users[k], items[k], raw[k] = int(user), item, rating
    # Fake user ids may have gaps; renumber them densely in order (before the pair key, so
    # huge sparse user ids cannot overflow it).
    uniq, local = np.unique(users, return_inverse=True)
    if len(uniq) > MAX_FAKE_USER_RATIO * max(1, train.n_real_users):
        raise DataError(f"{path.name}: {len(uniq)} fake users is more than {MAX_FAKE_USER_RATIO}x the {train.n_real_users} real users")
    key = local.astype(np.int64) * train.n_items + items
    _, first = np.unique(key, return_index=True)
    if len(first) < n:
        repeated = np.ones(n, dtype=bool)
        repeated[first] = False
        again = int(np.flatnonzero(repeated)[0])
        raise DataError(f"{path.name} line {rows[again][0]}: fake user {users[again]} rates item {rows[again][1][1]} a second time")
    ratings = _snap_checked(raw, train.scale, path.name)
    return FakeProfiles(local.astype(np.int64), items, ratings, len(uniq), train.n_items)


def load_profiles(path: str | Path, train: Interactions, item_ids: np.ndarray | None = None) -> FakeProfiles:
    """Read fake profiles for ``train`` from CSV or ``.npy``; malformed files raise :class:`DataError`.

    ``item_ids``: the data set's own id of each dense item (``Split.item_ids``), what a CSV's
    ``item_id`` column holds; None for data built in code, whose ids are the dense indices.
    """
    path = Path(path)
    fmt = profile_format(path)
    if not path.is_file():
        raise DataError(f"poison file not found: {path}")
    if item_ids is not None and len(item_ids) != train.n_items:
        raise ConfigError(f"{len(item_ids)} item ids for {train.n_items} items: the ids belong to another data set")
    return _load_npy(path, train) if fmt == ".npy" else _load_csv(path, train, item_ids)


def poison_file_record(path: str | Path) -> dict:
    """What a report records about a poison file: its name, path and SHA-256 (None when unreadable)."""
    import hashlib

    path = Path(path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"name": path.name, "path": str(path), "sha256": digest}

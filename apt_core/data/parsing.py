"""Strict parsing of delimited rating files with errors that name file, line and reason."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from apt_core.errors import DataError


_BOM = b"\xef\xbb\xbf"


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a rating file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _check_decodes(raw: bytes, encoding: str, path: Path) -> None:
    """Refuse bytes that are not text in ``encoding``, naming the line (no replacement characters:
    a lossy decode silently merges distinct ids such as "café" and "cafè")."""
    if raw.isascii():
        return
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start: exc.start + 1].hex()
        hint = " -- it looks like Latin-1/Windows-1252; save it as UTF-8" if _is_utf8(encoding) else ""
        raise DataError(f"{path}, line {line}: not {encoding} text (byte 0x{byte} at offset {exc.start}){hint}") from None


class LineNumbers:
    """1-based file line of each data row, computed only when an error message needs one.

    A well-formed file never pays for it: the table is parsed by pandas' C reader, which
    does not report line numbers, and only a failed check asks which line row ``i`` was.
    """

    def __init__(self, raw: bytes, encoding: str, header: bool):
        self._raw, self._encoding, self._header = raw, encoding, header
        self._lines: np.ndarray | None = None

    def _table(self) -> np.ndarray:
        if self._lines is None:
            text = self._raw.decode(self._encoding, errors="replace")
            lines = np.flatnonzero([bool(ln.strip()) for ln in text.splitlines()]) + 1
            self._lines = lines[1:] if self._header else lines
        return self._lines

    def __getitem__(self, i):
        return self._table()[i]

    def __len__(self) -> int:
        return len(self._table())

    def __deepcopy__(self, memo):  # pandas copies ``attrs`` along with frames; share, do not copy
        return self


def sniff_separator(first_line: str) -> str:
    """Guess the column separator of a rating file from its first line."""
    if "::" in first_line:
        return "::"
    for sep in ("\t", ",", ";", "|"):
        if sep in first_line:
            return sep
    return r"\s+"


def read_rating_table(
    path: str | Path,
    sep: str | None = None,
    min_columns: int = 3,
    max_columns: int | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    text: str | bytes | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read a ``user item rating [timestamp]`` table.

    Returns the frame (columns ``user``, ``item`` as integers when every id is numeric, else
    strings; ``rating`` as floats) and the 1-based line number of the first data row (for
    error messages).  ``header=None`` detects a header line by a non-numeric rating field.
    ``text``: the file's content (str, or bytes in ``encoding``) instead of reading ``path``.

    Well-formed files go through pandas' C parser in one pass and are validated with
    vectorised checks; a file the C parser rejects (wrong column count on some line) is
    re-read line by line only to name the offending line.  UTF-8 files may start with a
    byte-order mark; bytes that do not decode are refused, never replaced.
    """
    path = Path(path)
    if text is None:
        raw = _read_bytes(path)
    elif isinstance(text, str):
        raw, encoding = text.encode("utf-8"), "utf-8"
    else:
        raw = bytes(text)
    if _is_utf8(encoding):
        encoding = "utf-8"
        if raw.startswith(_BOM):
            raw = raw[len(_BOM):]
    _check_decodes(raw, encoding, path)
    comment = re.search(rb"(?m)^[ \t]*#", raw)
    if comment is not None:
        # Said as what it is: the separator sniffer would read "# my ratings" as a short row.
        line = raw.count(b"\n", 0, comment.start()) + 1
        raise DataError(f"{path}, line {line}: a comment line ('#'): rating files hold only rating rows "
                        "(and an optional header line); remove it")
    head_lines = raw[:65536].decode(encoding, errors="ignore").splitlines()
    first_idx = next((i for i, ln in enumerate(head_lines) if ln.strip()), None)
    if first_idx is None:
        if not raw[65536:].strip():
            raise DataError(f"{path}: the file is empty")
        head_lines = raw.decode(encoding).splitlines()
        first_idx = next(i for i, ln in enumerate(head_lines) if ln.strip())
    first_line = head_lines[first_idx]
    first_line_no = first_idx + 1
    sep = sep or sniff_separator(first_line)
    first = _split(first_line, sep)
    if header is None:
        header = len(first) >= 3 and not _is_number(first[2])
    frame = _fast_parse(raw, sep, header, min_columns, max_columns, len(first), encoding)
    if frame is not None:
        frame.attrs["line_numbers"] = LineNumbers(raw, encoding, header)
    else:
        lines = raw.decode(encoding).splitlines()
        frame, line_numbers = _careful_parse(path, lines, sep, header, first_line_no, min_columns, max_columns)
        frame.attrs["line_numbers"] = np.asarray(line_numbers)
    if len(frame) == 0:
        raise DataError(f"{path}: the file has a header but no ratings")
    line_of = frame.attrs["line_numbers"]
    rating = frame["rating"]
    if not pd.api.types.is_numeric_dtype(rating):
        rating = pd.to_numeric(rating.str.strip(), errors="coerce")
    bad = np.flatnonzero(rating.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}, line {line_of[i]}: rating {frame['rating'].iloc[i]!r} is not a number")
    frame["rating"] = rating.astype(np.float64)
    empty = np.zeros(len(frame), dtype=bool)
    for col in ("user", "item"):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype(str).str.strip()
            empty |= (frame[col] == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataError(f"{path}, line {line_of[i]}: empty user or item id")
    return frame, first_line_no


def _fast_parse(raw: bytes, sep: str, header: bool, min_columns: int, max_columns: int | None, first_columns: int,
                encoding: str) -> pd.DataFrame | None:
    """pandas' C parser for well-formed files; ``None`` sends the file to the careful path."""
    if first_columns < min_columns or (max_columns is not None and first_columns > max_columns):
        return None
    if sep == "::":
        raw = raw.replace(b"::", b"\t")
        sep = "\t"
    try:
        # na_filter=False: no value means "missing" (a rating "NA" is an error, not a NaN);
        # short rows are padded with "" and caught below.  Quoted fields are read as the
        # csv module reads them.
        frame = pd.read_csv(
            io.BytesIO(raw), sep=sep, header=0 if header else None, skip_blank_lines=True, engine="c",
            on_bad_lines="error", na_filter=False, encoding=encoding, skipinitialspace=sep != r"\s+",
        )
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError):
        return None
    ncols = frame.shape[1]
    if ncols < min_columns or (max_columns is not None and ncols > max_columns):
        return None
    frame = frame.iloc[:, :3]
    for j in range(3):
        col = frame.iloc[:, j]
        if not pd.api.types.is_numeric_dtype(col) and (col.astype(str).str.strip() == "").to_numpy().any():
            return None  # a short row was padded: let the careful path name the line
        if pd.api.types.is_float_dtype(col) and col.isna().to_numpy().any():
            return None
    frame.columns = ["user", "item", "rating"]
    return frame


def _careful_parse(path, lines, sep, header, first_line_no, min_columns, max_columns):
    """Line-by-line parse that names the first malformed line."""
    rows = []
    line_numbers = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if header and lineno == first_line_no:
            continue
        fields = _split(line, sep)
        if len(fields) < min_columns or (max_columns is not None and len(fields) > max_columns):
            if max_columns is None:
                want = f"at least {min_columns}"
            elif max_columns == min_columns:
                want = f"{min_columns}"
            else:
                want = f"{min_columns} to {max_columns}"
            raise DataError(f"{path}, line {lineno}: expected {want} columns separated by {_sep_name(sep)}, found {len(fields)}")
        rows.append(fields[:3])
        line_numbers.append(lineno)
    if not rows:
        raise DataError(f"{path}: the file has a header but no ratings")
    return pd.DataFrame(rows, columns=["user", "item", "rating"]), np.asarray(line_numbers)


#: largest id accepted as an integer: beyond 2**53 a float no longer holds every integer and
#: a cast to int64 can wrap around (1e20 became a negative id)
MAX_ID = 2**53


def numeric_ids(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Convert an id column to integers, naming the first offending line."""
    col = frame[column]
    if pd.api.types.is_integer_dtype(col) and col.dtype.kind == "i":
        values = col.to_numpy()
        big = np.flatnonzero(np.abs(values) >= MAX_ID)
        if len(big) == 0:
            return values.astype(np.int64, copy=False)
    values = pd.to_numeric(col, errors="coerce")
    as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(np.isnan(as_float) | (as_float % 1 != 0) | (np.abs(as_float) >= MAX_ID))
    if len(bad):
        i = int(bad[0])
        line = frame.attrs["line_numbers"][i]
        raise DataError(f"{path}, line {line}: {column} id {frame[column].iloc[i]!r} is not an integer (below 2**53)")
    return as_float.astype(np.int64)


def _line_of(frame: pd.DataFrame, i: int) -> int:
    return frame.attrs["line_numbers"][i]


def check_finite(frame: pd.DataFrame, path: Path) -> None:
    """Every rating is a finite number (``inf``/``nan`` would end as a diverged model much later)."""
    r = frame["rating"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(r))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}, line {_line_of(frame, i)}: rating {float(r[i])!r} is not a finite number")  # inf, not np.float64(inf)


#: An inferred scale's top value must be within this factor of the next value down, unless
#: it is common.  Real scales (1..5, 0.5..4, 1..10, 0..100) step up by far less; a stray 1000
#: in a 1..5 file (or 1e300) would otherwise become the scale maximum and every normalised
#: rating would shrink.
OUTLIER_FACTOR = 3.0
#: ... and "rare" means at most this share of the ratings (at least one row).
OUTLIER_SHARE = 0.01


def check_no_far_outlier(frames: list[tuple[pd.DataFrame, Path]]) -> None:
    """Refuse a rare rating far above all the others when the scale is inferred from the files.

    The rule (stated in the README's data section): when the largest distinct rating is more
    than :data:`OUTLIER_FACTOR` times the next largest distinct rating and at most
    :data:`OUTLIER_SHARE` of the ratings carry it, it is taken for a typo.  A file whose scale
    really looks like that declares it (``scale=`` here, ``--scale LO..HI`` on the command line).
    A common top value (a 1-or-5 "like" file) is a scale, not a typo, and passes.
    """
    r = np.concatenate([f["rating"].to_numpy(dtype=np.float64) for f, _ in frames])
    distinct = np.unique(r)
    if len(distinct) < 2:
        return
    top, below = float(distinct[-1]), float(distinct[-2])
    rare = np.count_nonzero(r == top) <= max(1, OUTLIER_SHARE * len(r))
    if below > 0 and top > OUTLIER_FACTOR * below and rare:
        frame, path = next((f, p) for f, p in frames if np.any(f["rating"].to_numpy(dtype=np.float64) == top))
        i = int(np.flatnonzero(frame["rating"].to_numpy(dtype=np.float64) == top)[0])
        raise DataError(
            f"{path}, line {_line_of(frame, i)}: rating {top:g} is far above every other rating (the next largest is "
            f"{below:g}), so it would become the scale's maximum and shrink all the others; fix that line, or declare "
            f"the scale if it is real (--scale {float(distinct[0]):g}..{top:g})")


#: the longest text id accepted (ids are shown in tables and typed into ``--targets``)
MAX_ID_LENGTH = 200


def check_printable_ids(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Text ids are printable (no NUL or other control character) and at most :data:`MAX_ID_LENGTH` long."""
    values = frame[column].astype(str)
    bad = ~values.map(str.isprintable) | (values.str.len() > MAX_ID_LENGTH)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[i]
        raise DataError(f"{path}, line {_line_of(frame, i)}: {column} id {ascii(value[:40])}{'...' if len(value) > 40 else ''} "
                        f"is not a usable id (printable text of at most {MAX_ID_LENGTH} characters)")


def check_scale(frame: pd.DataFrame, lo: float, hi: float, path: Path) -> None:
    check_finite(frame, path)
    r = frame["rating"].to_numpy()
    bad = np.flatnonzero((r < lo - 1e-9) | (r > hi + 1e-9))
    if len(bad):
        i = int(bad[0])
        line = frame.attrs["line_numbers"][i]
        raise DataError(f"{path}, line {line}: rating {r[i]:g} is outside the scale {lo:g}..{hi:g}")


def check_positive(frame: pd.DataFrame, path: Path) -> None:
    check_finite(frame, path)
    r = frame["rating"].to_numpy()
    bad = np.flatnonzero(r <= 0)
    if len(bad):
        i = int(bad[0])
        line = frame.attrs["line_numbers"][i]
        raise DataError(f"{path}, line {line}: rating {r[i]:g} must be positive (ratings are normalised by the scale maximum)")


def _split(line: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return line.split()
    if sep == ",":
        return next(csv.reader(io.StringIO(line)))
    return line.split(sep)


def _sep_name(sep: str) -> str:
    return {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "'|'", "::": "'::'", r"\s+": "whitespace"}.get(sep, repr(sep))


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False

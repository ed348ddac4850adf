"""Strict parsing of delimited rating files with errors that name file, line and reason."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from apt_core.errors import DataError


def _read_text(path: Path, encoding: str) -> str:
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file in {encoding} ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


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
    text: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read a ``user item rating [timestamp]`` table.

    Returns the frame (columns ``user``, ``item``, ``rating`` as strings/floats) and the
    1-based line number of the first data row (for error messages).  ``header=None`` detects
    a header line by a non-numeric rating field.
    """
    path = Path(path)
    if text is None:
        text = _read_text(path, encoding)
    lines = text.splitlines()
    non_empty = [ln for ln in lines if ln.strip()]
    if not non_empty:
        raise DataError(f"{path}: the file is empty")
    sep = sep or sniff_separator(non_empty[0])
    first_line_no = next(i for i, ln in enumerate(lines, 1) if ln.strip())
    if header is None:
        first = _split(non_empty[0], sep)
        header = len(first) >= 3 and not _is_number(first[2])
    fast = _fast_parse(text, sep, header, min_columns, max_columns)
    if fast is not None:
        frame, line_numbers = fast
    else:
        frame, line_numbers = _careful_parse(path, lines, sep, header, first_line_no, min_columns, max_columns)
    rating = pd.to_numeric(frame["rating"].str.strip(), errors="coerce")
    bad = np.flatnonzero(rating.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}, line {line_numbers[i]}: rating {frame['rating'].iloc[i]!r} is not a number")
    frame["rating"] = rating.astype(np.float64)
    frame["user"] = frame["user"].str.strip()
    frame["item"] = frame["item"].str.strip()
    empty = np.flatnonzero(((frame["user"] == "") | (frame["item"] == "")).to_numpy())
    if len(empty):
        i = int(empty[0])
        raise DataError(f"{path}, line {line_numbers[i]}: empty user or item id")
    if len(frame) == 0:
        raise DataError(f"{path}: the file has a header but no ratings")
    frame.attrs["line_numbers"] = np.asarray(line_numbers)
    return frame, first_line_no


def _fast_parse(text, sep, header, min_columns, max_columns):
    """pandas' C parser for well-formed files; ``None`` sends the file to the careful path."""
    if sep == "::":
        text = text.replace("::", "\t")
        sep = "\t"
    if sep == ",":
        return None  # quoted CSV fields: the careful path uses the csv module
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, header=0 if header else None, dtype=str, skip_blank_lines=True,
            engine="c", on_bad_lines="error", keep_default_na=False,
        )
    except (pd.errors.ParserError, ValueError):
        return None
    ncols = frame.shape[1]
    if ncols < min_columns or (max_columns is not None and ncols > max_columns):
        return None
    head = frame.iloc[:, :min_columns]
    if head.isna().to_numpy().any() or (head == "").to_numpy().any():
        return None  # short rows were padded: let the careful path name the line
    frame = frame.iloc[:, :3].copy()
    frame.columns = ["user", "item", "rating"]
    # Line numbers of data rows (non-blank lines, after an optional header).
    nonblank = np.flatnonzero([bool(ln.strip()) for ln in text.splitlines()]) + 1
    if header:
        nonblank = nonblank[1:]
    if len(nonblank) != len(frame):
        return None
    return frame, nonblank


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


def numeric_ids(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Convert an id column to integers, naming the first offending line."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
    if len(bad):
        i = int(bad[0])
        line = frame.attrs["line_numbers"][i]
        raise DataError(f"{path}, line {line}: {column} id {frame[column].iloc[i]!r} is not an integer")
    return values.to_numpy().astype(np.int64)


def check_scale(frame: pd.DataFrame, lo: float, hi: float, path: Path) -> None:
    r = frame["rating"].to_numpy()
    bad = np.flatnonzero((r < lo - 1e-9) | (r > hi + 1e-9))
    if len(bad):
        i = int(bad[0])
        line = frame.attrs["line_numbers"][i]
        raise DataError(f"{path}, line {line}: rating {r[i]:g} is outside the scale {lo:g}..{hi:g}")


def check_positive(frame: pd.DataFrame, path: Path) -> None:
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

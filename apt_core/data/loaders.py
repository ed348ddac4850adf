"""Loaders for the public data sets, the authors' split files and generic CSV/TSV files.

Resolution order for a named data set: ``data_dir`` argument, ``$APT_DATA_DIR``, the download
cache, then a download from the data set's public home.  MovieLens and FilmTrust licences
forbid redistribution, so the project never ships them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from apt_core.data.dataset import RatingData, RatingScale, build_rating_data
from apt_core.data.download import fetch_archive
from apt_core.data.parsing import check_positive, check_scale, numeric_ids, read_rating_table
from apt_core.errors import DataError

ML_SCALE = RatingScale(1.0, 5.0, 1.0)
FILMTRUST_SCALE = RatingScale(0.5, 4.0, 0.5)
FILMTRUST_MIN_RATINGS = 15

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"

KNOWN_DATASETS = ("sample", "ml-100k", "ml-1m", "filmtrust", "yelp")


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("APT_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    return dirs


def _locate(name: str, required: str, data_dir: str | Path | None, aliases: tuple[str, ...] = ()) -> Path:
    """Find ``required`` under a local data dir (``DIR/name/required`` or ``DIR/required``)."""
    for base in _candidate_dirs(data_dir):
        for sub in (name, *aliases, ""):
            folder = base / sub if sub else base
            if (folder / required).is_file():
                return folder
    return fetch_archive(name, required)


def load_movielens_100k(data_dir: str | Path | None = None) -> RatingData:
    folder = _locate("ml-100k", "u.data", data_dir)
    path = folder / "u.data"
    frame, _ = read_rating_table(path, sep="\t", min_columns=3, max_columns=4, header=False)
    check_scale(frame, ML_SCALE.minimum, ML_SCALE.maximum, path)
    titles = {}
    item_file = folder / "u.item"
    if item_file.exists():
        for line in item_file.read_text(encoding="latin-1").splitlines():
            parts = line.split("|")
            if len(parts) > 1 and parts[0].strip().isdigit():
                titles[int(parts[0])] = parts[1]
    return build_rating_data(
        "ml-100k", numeric_ids(frame, "user", path), numeric_ids(frame, "item", path), frame["rating"].to_numpy(), ML_SCALE, titles, str(path)
    )


def load_movielens_1m(data_dir: str | Path | None = None) -> RatingData:
    folder = _locate("ml-1m", "ratings.dat", data_dir)
    path = folder / "ratings.dat"
    frame, _ = read_rating_table(path, sep="::", min_columns=3, max_columns=4, header=False, encoding="latin-1")
    check_scale(frame, ML_SCALE.minimum, ML_SCALE.maximum, path)
    titles = {}
    movies = folder / "movies.dat"
    if movies.exists():
        for line in movies.read_text(encoding="latin-1").splitlines():
            parts = line.split("::")
            if len(parts) > 1 and parts[0].strip().isdigit():
                titles[int(parts[0])] = parts[1]
    return build_rating_data(
        "ml-1m", numeric_ids(frame, "user", path), numeric_ids(frame, "item", path), frame["rating"].to_numpy(), ML_SCALE, titles, str(path)
    )


def load_filmtrust(data_dir: str | Path | None = None, min_ratings: int = FILMTRUST_MIN_RATINGS) -> RatingData:
    """FilmTrust, keeping users with at least ``min_ratings`` rows (the paper's filter).

    The filter counts rows before duplicate pairs are collapsed, which reproduces the
    paper's 796 users; the 3 duplicate pairs among them keep their last rating.
    """
    folder = _locate("filmtrust", "ratings.txt", data_dir)
    path = folder / "ratings.txt"
    frame, _ = read_rating_table(path, sep=r"\s+", min_columns=3, max_columns=3, header=False)
    check_scale(frame, FILMTRUST_SCALE.minimum, FILMTRUST_SCALE.maximum, path)
    users = numeric_ids(frame, "user", path)
    items = numeric_ids(frame, "item", path)
    ratings = frame["rating"].to_numpy()
    uniq, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= min_ratings
    if not keep.any():
        raise DataError(f"{path}: no user has at least {min_ratings} ratings")
    return build_rating_data("filmtrust", users[keep], items[keep], ratings[keep], FILMTRUST_SCALE, None, str(path))


def load_ncf_split(prefix: str | Path, name: str | None = None, scale: RatingScale | None = None) -> RatingData:
    """Read an NCF-style pair ``PREFIX.train.rating`` / ``PREFIX.test.rating`` (tab separated,
    0-based ids), e.g. the APT authors' splits or Yelp.  The test file becomes the fixed split.
    """
    prefix = Path(prefix)
    train_path = Path(f"{prefix}.train.rating")
    test_path = Path(f"{prefix}.test.rating")
    for p in (train_path, test_path):
        if not p.is_file():
            raise DataError(f"{p}: file not found (an NCF-style split needs both {train_path.name} and {test_path.name})")
    train, _ = read_rating_table(train_path, sep=r"\s+", min_columns=3, max_columns=4, header=False)
    test, _ = read_rating_table(test_path, sep=r"\s+", min_columns=3, max_columns=4, header=False)
    for frame, path in ((train, train_path), (test, test_path)):
        check_positive(frame, path)
    tu, ti = numeric_ids(train, "user", train_path), numeric_ids(train, "item", train_path)
    su, si = numeric_ids(test, "user", test_path), numeric_ids(test, "item", test_path)
    all_r = np.concatenate([train["rating"].to_numpy(), test["rating"].to_numpy()])
    scale = scale or RatingScale.infer(all_r)
    n_train = len(tu)
    data = build_rating_data(
        name or prefix.name, np.concatenate([tu, su]), np.concatenate([ti, si]), all_r, scale, None, f"{train_path} + {test_path}"
    )
    # Map the test pairs to dense ids (build_rating_data sorted the ids).
    u_dense = np.searchsorted(data.user_ids, su)
    i_dense = np.searchsorted(data.item_ids, si)
    data.fixed_test = (u_dense.astype(np.int64), i_dense.astype(np.int64), test["rating"].to_numpy().astype(np.float32))
    if n_train == 0:
        raise DataError(f"{train_path}: no training ratings")
    return data


def load_yelp(data_dir: str | Path | None = None) -> RatingData:
    for base in _candidate_dirs(data_dir):
        for folder in (base / "yelp", base):
            if (folder / "yelp.train.rating").is_file():
                return load_ncf_split(folder / "yelp", "yelp")
    raise DataError(
        "Yelp cannot be downloaded (its licence requires you to fetch it yourself): put "
        "yelp.train.rating and yelp.test.rating in DIR/yelp/ and pass --data-dir DIR (or set APT_DATA_DIR)"
    )


def load_csv(path: str | Path, name: str | None = None, scale: RatingScale | None = None, text: str | None = None) -> RatingData:
    """A generic ``user,item,rating[,timestamp]`` file: comma, tab, semicolon, ``::`` or
    whitespace separated, with or without a header.  Ids may be any strings."""
    path = Path(path)
    frame, _ = read_rating_table(path, min_columns=3, max_columns=4, text=text)
    check_positive(frame, path)
    if scale is not None:
        check_scale(frame, scale.minimum, scale.maximum, path)
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    # Numeric ids sort numerically (so ids stay human-friendly), others as strings.
    for col in ("user", "item"):
        try:
            as_int = numeric_ids(frame, col, path)
        except DataError:
            continue
        if col == "user":
            users = as_int
        else:
            items = as_int
    titles = _sidecar_titles(path) if text is None else None
    return build_rating_data(name or path.stem, users, items, frame["rating"].to_numpy(), scale, titles, str(path))


def _sidecar_titles(path: Path) -> dict | None:
    """Optional ``items.csv`` (item,title) beside a rating file."""
    side = path.with_name("items.csv")
    if not side.is_file():
        return None
    import pandas as pd

    frame = pd.read_csv(side)
    if not {"item", "title"} <= set(frame.columns):
        return None
    return {k: str(v) for k, v in zip(frame["item"].tolist(), frame["title"].tolist())}


def load_sample() -> RatingData:
    """The bundled synthetic data set (``sample_data/ratings.csv``, made by its script)."""
    path = SAMPLE_DIR / "ratings.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing; regenerate it with `python sample_data/make_sample.py`")
    data = load_csv(path, name="sample", scale=RatingScale(1.0, 5.0, 1.0))
    return data


def load_dataset(name: str, data_dir: str | Path | None = None) -> RatingData:
    """Load a data set by name (see :data:`KNOWN_DATASETS`) or by path.

    A path may be a CSV/TSV rating file, or the prefix of an NCF-style split
    (``PREFIX.train.rating``), or a folder holding one of the known layouts.
    """
    key = str(name).strip().lower()
    if key == "sample":
        return load_sample()
    if key in ("ml-100k", "ml100k", "movielens-100k"):
        return load_movielens_100k(data_dir)
    if key in ("ml-1m", "ml1m", "movielens-1m"):
        return load_movielens_1m(data_dir)
    if key == "filmtrust":
        return load_filmtrust(data_dir)
    if key == "yelp":
        return load_yelp(data_dir)
    if key.startswith("synthetic-"):
        # Generated at the shape of a licensed set (apt_core.data.synthetic): costs at scale, no real ratings.
        from apt_core.data.synthetic import shaped

        return shaped(key)
    path = Path(name).expanduser()
    if Path(f"{path}.train.rating").is_file():
        return load_ncf_split(path)
    if path.is_dir():
        for required, loader in (("u.data", load_movielens_100k), ("ratings.dat", load_movielens_1m), ("ratings.txt", load_filmtrust)):
            if (path / required).is_file():
                return loader(path)
        trains = sorted(path.glob("*.train.rating"))
        if len(trains) == 1:
            return load_ncf_split(str(trains[0])[: -len(".train.rating")])
        raise DataError(f"{path}: folder holds no known rating files (u.data, ratings.dat, ratings.txt, NAME.train.rating)")
    if path.is_file():
        return load_csv(path)
    raise DataError(f"unknown data set {name!r}: choose one of {', '.join(KNOWN_DATASETS)}, or give a path to a rating file")

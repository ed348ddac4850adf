"""Loaders for the public data sets, the authors' split files and generic CSV/TSV files.

Resolution order for a named data set: ``data_dir`` argument, ``$APT_DATA_DIR``, the download
cache, then a download from the data set's public home.  MovieLens and FilmTrust licences
forbid redistribution, so the project never ships them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from apt_core.data.dataset import RatingData, RatingScale, build_rating_data
from apt_core.data.download import RemoteArchive, fetch_archive
from apt_core.data.parsing import check_no_far_outlier, check_positive, check_printable_ids, check_scale, numeric_ids, read_rating_table
from apt_core.errors import DataError

ML_SCALE = RatingScale(1.0, 5.0, 1.0)
FILMTRUST_SCALE = RatingScale(0.5, 4.0, 0.5)
FILMTRUST_MIN_RATINGS = 15

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


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
    spec = DATASETS.get(name)
    return fetch_archive(name, required, spec.archive if spec is not None else None)


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
    if scale is None:
        check_no_far_outlier([(train, train_path), (test, test_path)])
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
    else:
        check_no_far_outlier([(frame, path)])
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    # Numeric ids sort numerically (so ids stay human-friendly), others as strings.
    for col in ("user", "item"):
        try:
            as_int = numeric_ids(frame, col, path)
        except DataError:
            check_printable_ids(frame, col, path)  # text ids: shown on pages and typed into --targets
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


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the project knows about one named data set, in one record.

    Read by :func:`load_dataset` (``load``, ``aliases``, ``required_file`` to recognise its
    folder), :func:`apt_core.data.download.fetch_archive` (``archive``: public source and
    checksum), the dashboard (``label``), and APT / APT-rand (``apt``: the paper's Table 1
    schedule ``t, t_pre, t_inter, m_star, r_plus``; None: the generic schedule).
    """

    name: str
    label: str
    load: Callable[[str | Path | None], RatingData]
    scale: RatingScale | None = None  # None: inferred from the ratings
    aliases: tuple[str, ...] = ()
    required_file: str | None = None  # the file that identifies the layout in a folder
    archive: RemoteArchive | None = None  # None: not downloadable (bundled, or a licence forbids it)
    apt: dict | None = None

    def matches(self, name: str) -> bool:
        return _norm(name) in {_norm(n) for n in (self.name, *self.aliases)}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name or "").lower())


#: name -> record, in the dashboard's order.  Add a data set here (docs/extending.md).
DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a named data set; an empty name or one taken (also as an alias) is refused."""
    from apt_core.errors import ConfigError

    if not spec.name.strip():
        raise ConfigError("a data set needs a name")
    for other in DATASETS.values():
        if other.name != spec.name and any(other.matches(n) for n in (spec.name, *spec.aliases)):
            raise ConfigError(f"data set name {spec.name!r} (or an alias) is already taken by {other.name!r}")
    if spec.name in DATASETS and DATASETS[spec.name] != spec:
        raise ConfigError(f"a data set named {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


# GroupLens publishes an .md5 next to each archive; FilmTrust's host publishes none, so that
# download is only as trustworthy as the loader's line-by-line validation of its contents.
for _spec in (
    DatasetSpec("sample", "sample (bundled, offline)", lambda data_dir=None: load_sample(), RatingScale(1.0, 5.0, 1.0)),
    DatasetSpec("ml-100k", "MovieLens-100K", load_movielens_100k, ML_SCALE, ("ml100k", "movielens-100k"), "u.data",
                RemoteArchive("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k"),
                {"t": 20.0, "t_pre": 15, "t_inter": 2, "m_star": 400, "r_plus": 0.2}),
    DatasetSpec("ml-1m", "MovieLens-1M", load_movielens_1m, ML_SCALE, ("ml1m", "movielens-1m"), "ratings.dat",
                RemoteArchive("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m"),
                {"t": 20.0, "t_pre": 15, "t_inter": 2, "m_star": 700, "r_plus": 0.2}),
    # FilmTrust's T_pre is 5 in the paper's text and 4 in the authors' code (the ``paper`` preset's).
    DatasetSpec("filmtrust", "FilmTrust", load_filmtrust, FILMTRUST_SCALE, (), "ratings.txt",
                RemoteArchive("https://guoguibing.github.io/librec/datasets/filmtrust.zip", None, "filmtrust"),
                {"t": 40.0, "t_pre": 5, "t_inter": 3, "m_star": 100, "r_plus": 0.25}),
    DatasetSpec("yelp", "Yelp (local files only)", load_yelp, None, (), "yelp.train.rating", None,
                {"t": 10.0, "t_pre": 10, "t_inter": 2, "m_star": 2500, "r_plus": 0.2}),
):
    register_dataset(_spec)

#: the named data sets (kept for callers of the old constant)
KNOWN_DATASETS = tuple(DATASETS)


def dataset_spec(name: str) -> DatasetSpec | None:
    """The record of a named data set (by name or alias, case and punctuation ignored), else None."""
    return next((spec for spec in DATASETS.values() if spec.matches(name)), None)


def load_dataset(name: str, data_dir: str | Path | None = None, scale: str | None = None) -> RatingData:
    """Load a data set by name (see :data:`DATASETS`) or by path.

    A path may be a CSV/TSV rating file, or the prefix of an NCF-style split
    (``PREFIX.train.rating``), or a folder holding one of the known layouts.  ``scale``
    (``"LO..HI"`` or ``"LO..HI:STEP"``, the CLI's ``--scale``) declares a rating file's scale
    instead of inferring it; a named data set has its own and refuses another.
    """
    key = str(name).strip().lower()
    spec = DATASETS.get(key) or next((s for s in DATASETS.values() if key in s.aliases), None)
    if spec is not None or key.startswith("synthetic-"):
        if scale is not None:
            raise DataError(f"--scale is for rating files: the data set {name!r} has its own scale")
    if spec is not None:
        return spec.load(data_dir)
    if key.startswith("synthetic-"):
        # Generated at the shape of a licensed set (apt_core.data.synthetic): costs at scale, no real ratings.
        from apt_core.data.synthetic import shaped

        return shaped(key)
    path = Path(name).expanduser()
    if scale is not None:
        return _load_path_with_scale(path, scale)
    if Path(f"{path}.train.rating").is_file():
        return load_ncf_split(path)
    if path.is_dir():
        for spec in DATASETS.values():
            if spec.required_file and (path / spec.required_file).is_file():
                return spec.load(path)
        trains = sorted(path.glob("*.train.rating"))
        if len(trains) == 1:
            return load_ncf_split(str(trains[0])[: -len(".train.rating")])
        known = ", ".join(s.required_file for s in DATASETS.values() if s.required_file)
        raise DataError(f"{path}: folder holds no known rating files ({known}, NAME.train.rating)")
    if path.is_file():
        return load_csv(path)
    raise DataError(f"unknown data set {name!r}: choose one of {', '.join(KNOWN_DATASETS)}, or give a path to a rating file")


def _load_path_with_scale(path: Path, scale: str) -> RatingData:
    """A rating file or NCF split read on a declared scale (every rating checked against it)."""
    if Path(f"{path}.train.rating").is_file():
        train, _ = read_rating_table(Path(f"{path}.train.rating"), sep=r"\s+", min_columns=3, max_columns=4, header=False)
        declared = RatingScale.parse(scale, train["rating"].to_numpy())
        data = load_ncf_split(path, scale=declared)
        for p in (Path(f"{path}.train.rating"), Path(f"{path}.test.rating")):
            frame, _ = read_rating_table(p, sep=r"\s+", min_columns=3, max_columns=4, header=False)
            check_scale(frame, declared.minimum, declared.maximum, p)
        return data
    if path.is_file():
        frame, _ = read_rating_table(path, min_columns=3, max_columns=4)
        check_positive(frame, path)
        return load_csv(path, scale=RatingScale.parse(scale, frame["rating"].to_numpy()))
    raise DataError(f"{path}: --scale needs a rating file or an NCF split prefix")

"""A finished ``reproduce`` remembered, so an identical command is answered without torch, pandas or plotly.

Why: a cached ``reproduce --quick`` rerun reads every number from the artifact cache, but
still imports torch, pandas and plotly (about 60% of its time), checks about 200 cache keys
and rebuilds every table and figure: seconds for output that is already known.  After a run
that took everything from the artifact cache (0 misses, local engine), the files it wrote
and the lines it printed are kept under ``<artifact cache>/reproduce/`` (a run that computed
keeps those of a cached pass it runs right after, ``cli_commands._remember_cached_pass``:
what the next command would write and print); the next identical
command writes the same files and prints the same lines (its own wall time in the summary
line and in ``report.md``) after checking, with the standard library only, that nothing
the output depends on changed:

- the key: the command's options, the bytes of every apt_core source file, the versions of
  python, torch, numpy, scipy, pandas and plotly (their installed distribution folders), a CUDA device's presence, the working
  folder, ``$APT_DATA_DIR`` and the record's format;
- the stamps (each path's mtime_ns and size, as the code fingerprints' memo does): every
  artifact-cache entry the run read (``cache --clear`` removes them, so no replay after a
  clear), the data set's files (its file, the companions a loader reads beside it, every file
  named like it) and the folders a named data set is looked up in (an edited or newly placed
  data file is a change), and the run history's records of
  the run (a deleted record is recorded again by the full run).

Anything else, or any check that fails, runs ``reproduce`` as before.  Only what the
output depends on is checked; the figures' HTML element ids (random in every plotly
file) are the remembered run's.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: bump when what a record holds or how it is replayed changes
REPLAY_FORMAT = 3
#: the line of report.md that carries the run's wall time (replaced by the replay's own)
WALL_LINE = re.compile(r"^- wall time: [0-9.]+ s", re.MULTILINE)
#: the options of ``reproduce`` that decide its output (``out`` only says where it goes)
OPTION_NAMES = ("dataset", "data_dir", "seeds", "seed", "attacks", "targets", "defense", "epochs", "k", "attack_size",
                "erm_fraction", "erm_stats", "fig_seeds", "jobs", "engine", "ray_address", "victim", "no_figures",
                "no_detection", "device", "quick", "no_history", "history_db", "keep_models")
VERSIONED = ("torch", "numpy", "scipy", "pandas", "plotly")

Stat = tuple[str, int, int]


def _stat(path: str) -> Stat:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


def _versions() -> dict[str, object]:
    """Python's version and the installed distribution folder of each of :data:`VERSIONED` (its
    name carries the version, e.g. ``torch-2.5.1+cpu.dist-info``): found without importing them
    (``importlib.metadata`` alone costs a quarter of a second to import)."""
    import importlib.util

    out: dict[str, object] = {"python": sys.version}
    listings: dict[str, list[str]] = {}
    for name in VERSIONED:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            out[name] = "absent"
            continue
        site = os.path.dirname(os.path.abspath(list(spec.submodule_search_locations)[0]))
        if site not in listings:
            listings[site] = sorted(e.name for e in os.scandir(site) if e.name.endswith((".dist-info", ".egg-info")))
        out[name] = [site] + [n for n in listings[site] if n.lower().startswith(name + "-")]
    return out


def _source_digest() -> str:
    """SHA-256 over the name and bytes of every apt_core source file (any edit is another key)."""
    from apt_core.storage.import_graph import SourceTree

    h = hashlib.sha256()
    for module, (path, _, _) in sorted(SourceTree.scan().files.items()):
        with open(path, "rb") as fh:
            h.update(module.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def replay_key(options: dict) -> str:
    """The key of a ``reproduce`` command: see the module docstring."""
    cuda = sorted(p for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg") if os.path.exists(p))
    described = {
        "format": REPLAY_FORMAT, "options": {k: options.get(k) for k in OPTION_NAMES}, "source": _source_digest(),
        "versions": _versions(), "cuda_devices": cuda, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "APT_DATA_DIR": os.environ.get("APT_DATA_DIR"), "cwd": os.getcwd(),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


#: files a loader reads beside a data set's main file when they are there (titles, the other split)
COMPANIONS = frozenset({"u.data", "u.item", "ratings.dat", "movies.dat", "ratings.txt", "trust.txt"})


def _data_files(folder: str, stem: str) -> list[Stat]:
    """The stat of the files in ``folder`` a loader may read for a data set whose file starts with
    ``stem``: the file, its companions and every file named ``stem...`` (an NCF split's parts).
    Other files there (a run's output folder beside a CSV) are not the data."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(_stat(e.path) for e in entries if e.is_file() and (e.name.startswith(stem) or e.name in COMPANIONS))


def data_stamps(source: str, data_dir: str | None) -> dict:
    """The data set's files (:func:`_data_files`) and the folders a named data set is looked up in."""
    folder = stem = ""
    files: list[Stat] = []
    if source and os.path.isfile(source):
        folder = os.path.dirname(os.path.abspath(source))
        stem = os.path.basename(source).split(".")[0]
        files = _data_files(folder, stem)
    folders: list[tuple[str, int]] = []
    for base in (data_dir, os.environ.get("APT_DATA_DIR")):
        if not base:
            continue
        base = os.path.abspath(os.path.expanduser(base))
        folders.append((base, _stat(base)[1]))
        if os.path.isdir(base):
            folders += sorted((e.path, _stat(e.path)[1]) for e in os.scandir(base) if e.is_dir())
    return {"folder": folder, "stem": stem, "files": files, "folders": folders}


@dataclass(frozen=True)
class Replayed:
    """What a replay wrote: the summary's numbers, as ``cmd_reproduce`` prints them."""

    dataset: str
    seeds: int
    wall_seconds: float
    hits: int
    misses: int
    n_files: int
    skipped: list[str]
    table2_md: str
    #: the APT Lab warnings the remembered run printed (a data file's repeated pairs, ...)
    warnings: list[str]


class ReplayStore:
    """The remembered runs under ``<artifact cache root>/reproduce/``: one JSON record per key,
    the files' bytes as content-addressed blobs (``plotly.min.js``, 4.8 MB, is kept once)."""

    def __init__(self, cache_root: str | Path):
        self.root = Path(cache_root) / "reproduce"

    def _record_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest

    def _keep(self, data: bytes) -> str:
        """Store ``data`` as a blob (again when the kept one was damaged); returns its digest."""
        from apt_core.storage.outputs import atomic_write_bytes

        digest = hashlib.sha256(data).hexdigest()
        path = self._blob(digest)
        try:
            intact = hashlib.sha256(path.read_bytes()).hexdigest() == digest
        except OSError:
            intact = False
        if not intact:
            atomic_write_bytes(path, data)
        return digest

    def replay(self, key: str, out: Path, history_db: str | None, no_history: bool, t0: float) -> Replayed | None:
        """Write the remembered files into ``out`` and return the summary; None (nothing written)
        when there is no record or anything it depends on changed."""
        try:
            record = json.loads(self._record_path(key).read_text())
            if record.get("format") != REPLAY_FORMAT:
                return None
            if any(_stat(p) != (p, m, s) for p, m, s in record["artifacts"]):
                return None
            data = record["data"]
            if data["folder"] and _data_files(data["folder"], data["stem"]) != [tuple(f) for f in data["files"]]:
                return None
            if any(_stat(p)[1] != m for p, m in record["data"]["folders"]):
                return None
            if not no_history and not _history_holds(history_db, record["run_ids"]):
                return None
            blobs = {f["name"]: self._blob(f["sha256"]).read_bytes() for f in record["files"]}
            plotly_js = self._blob(record["plotly_js"]).read_bytes() if record.get("plotly_js") else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        expected = {f["name"]: f["sha256"] for f in record["files"]}
        if any(hashlib.sha256(data).hexdigest() != expected[name] for name, data in blobs.items()) \
                or plotly_js is not None and hashlib.sha256(plotly_js).hexdigest() != record["plotly_js"]:
            return None  # a damaged blob: the full run rewrites it
        from apt_core.storage.outputs import write_output

        out.mkdir(parents=True, exist_ok=True)
        wall = time.perf_counter() - t0
        for name, data in blobs.items():
            if name == "report.md":
                data = WALL_LINE.sub(f"- wall time: {wall:.1f} s", data.decode(), count=1).encode()
            write_output(out / name, data)
        if plotly_js is not None and not (out / "plotly.min.js").exists():  # as plotly writes it: once
            write_output(out / "plotly.min.js", plotly_js)
        return Replayed(record["dataset"], record["seeds"], wall, record["hits"], 0, record["n_files"], record["skipped"],
                        blobs["table2_target_hr.md"].decode(), record["warnings"])

    def remember(self, key: str, result, data_source: str, data_dir: str | None, artifacts: set[str],
                 history: bool, warnings: list[str] | None = None) -> bool:
        """Keep a finished run (only one that read everything from the artifact cache: its
        summary is then what a replay prints).  False when it cannot be kept; never an error."""
        from apt_core.storage.outputs import atomic_write_bytes

        if result.cache_misses or result.unit_timings or (history and len(result.run_ids) == 0):
            return False
        if any(line.startswith("results not recorded in the history") for line in result.skipped):
            return False  # the full run tries to record them again next time
        try:
            files = []
            for path in result.files:
                data = Path(path).read_bytes()
                if path.name == "report.md" and len(WALL_LINE.findall(data.decode())) != 1:
                    return False
                files.append({"name": path.name, "sha256": self._keep(data)})
            plotly_js = None
            js = Path(result.out) / "plotly.min.js"
            if any(p.suffix == ".html" for p in result.files) and js.is_file():
                plotly_js = self._keep(js.read_bytes())
            record = {
                "format": REPLAY_FORMAT, "dataset": result.config.dataset, "seeds": result.config.seeds,
                "hits": result.cache_hits, "n_files": len(result.files), "skipped": list(result.skipped), "warnings": list(warnings or []),
                "files": files, "plotly_js": plotly_js, "artifacts": sorted(_stat(p) for p in artifacts),
                "data": data_stamps(data_source, data_dir), "run_ids": list(result.run_ids) if history else [],
            }
            atomic_write_bytes(self._record_path(key), json.dumps(record).encode())
        except (OSError, UnicodeDecodeError) as exc:
            print(f"warning: this run is not remembered for a quick rerun ({exc})", file=sys.stderr)
            return False
        return True


def _history_holds(history_db: str | None, run_ids: list[str]) -> bool:
    """Whether the run history still holds every one of ``run_ids`` (read-only; False when unreadable)."""
    from apt_core.storage.paths import default_history_path

    path = Path(history_db).expanduser() if history_db else default_history_path()
    if not run_ids or not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            marks = ",".join("?" * len(run_ids))
            found = conn.execute(f"SELECT COUNT(*) FROM runs WHERE run_id IN ({marks})", run_ids).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return found == len(set(run_ids))

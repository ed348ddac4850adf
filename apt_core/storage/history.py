"""Run history in SQLite (standard library): every finished run, readable by the CLI and the app.

Default location: ``$APT_HISTORY_DB`` if set, else ``<cache root>/history.sqlite`` where the
cache root is ``$APT_CACHE_DIR`` or ``~/.cache/apt_lab`` (the same root as the data-download
cache and the artifact cache of :mod:`apt_core.storage.cache`).

What is stored per run: the scenario (its JSON config and its cache key), the full
``ScenarioResult.to_json()`` object, per-seed metrics of every phase (table ``metrics``),
timings, the device and the package versions (python, torch, numpy, scipy, apt_core).

Concurrency: two processes (a CLI run and the dashboard, two terminals) may record at the
same moment.  The database runs in WAL mode, each write is one ``BEGIN IMMEDIATE``
transaction (it takes the write lock up front, so a transaction never fails half-way on a
lock upgrade), and a busy timeout plus a retry loop waits for the other writer instead of
failing -- for about ``APT_HISTORY_TIMEOUT`` seconds (default 5): a history that stays
locked longer fails with :class:`HistoryError`, which callers report as a warning after the
result is out.  Nothing is lost; readers never block writers and never need write access.
A fresh connection per call keeps the object safe to share between threads (Streamlit
reruns scripts in threads).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd

from apt_core.errors import AptError, ConfigError
from apt_core.storage.paths import default_cache_root, default_history_path  # noqa: F401 -- re-exported (their old home)

if TYPE_CHECKING:  # pragma: no cover
    from apt_core.experiments.results import ScenarioResult
    from apt_core.experiments.scenario import ProgressFn, Scenario

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    scenario_key TEXT,
    dataset TEXT,
    attack TEXT,
    attack_size REAL,
    targets TEXT,
    defenses TEXT,
    erm_fraction REAL,
    erm_stats TEXT,
    k INTEGER,
    epochs INTEGER,
    seeds INTEGER,
    seed INTEGER,
    device TEXT,
    wall_seconds REAL,
    cache_hits INTEGER,
    cache_misses INTEGER,
    label TEXT,
    versions TEXT,
    config TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    phase TEXT NOT NULL,
    seed INTEGER NOT NULL,
    target_hr REAL,
    test_hr REAL,
    ri REAL,
    rank_shift_median REAL,
    prediction_shift REAL,
    seconds REAL,
    PRIMARY KEY (run_id, phase, seed)
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS run_keys (
    run_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE
);
"""

RUN_COLUMNS = ["run_id", "created_at", "dataset", "attack", "attack_size", "targets", "defenses", "erm_fraction",
               "erm_stats", "k", "epochs", "seeds", "seed", "device", "wall_seconds", "cache_hits", "cache_misses",
               "label", "scenario_key"]


def package_versions() -> dict[str, str]:
    """Versions that can change a result: python, torch, numpy, scipy, pandas, apt_core, OS."""
    import numpy
    import scipy
    import torch

    import apt_core

    return {
        "python": platform.python_version(),
        "apt_core": apt_core.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class HistoryError(AptError):
    """The run history file cannot be read or written (read-only, locked, not a database...)."""


#: seconds a write waits for another writer before giving up (a write takes milliseconds; a
#: database locked for longer is stuck, and the finished result must not wait on it)
DEFAULT_TIMEOUT = 5.0


def _timeout_default() -> float:
    try:
        return float(os.environ.get("APT_HISTORY_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


class RunStore:
    """SQLite run history.  ``RunStore()`` uses :func:`default_history_path`.

    Opening does not touch the file: the schema is created by the first write, and reading
    opens the database read-only, so listing runs works on a read-only history (or a
    history another process holds locked).  Every SQLite or file-system failure surfaces as
    :class:`HistoryError` with the path and the reason in one line.
    """

    def __init__(self, path: str | Path | None = None, timeout: float | None = None):
        self.path = Path(path).expanduser() if path is not None else default_history_path()
        self.timeout = _timeout_default() if timeout is None else float(timeout)
        self._schema_ready = False

    def _fail(self, exc: BaseException, doing: str) -> HistoryError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in reason:
            reason = "the file is not a run history (not an SQLite database)"
        elif self.path.is_dir():
            reason = "the path is a folder, not a file"
        elif "locked" in reason or "busy" in reason:
            reason = f"the database is locked by another process (waited {self.timeout:g} s)"
        elif doing == "write" and not os.access(self.path if self.path.exists() else self.path.parent, os.W_OK):
            reason = f"the file or its folder is read-only ({reason})"
        return HistoryError(f"run history {self.path}: cannot {doing}: {reason}")

    # -- connections ---------------------------------------------------------------------
    def _connect(self, readonly: bool = False, immutable: bool = False) -> sqlite3.Connection:
        if readonly:
            # mode=ro never creates or changes the database.  immutable=1 (the fallback on
            # read-only media, where a WAL database cannot create its shared-memory file)
            # also skips locking: right for a file that nobody can write anyway.
            uri = f"{self.path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
            conn = sqlite3.connect(uri, timeout=self.timeout, isolation_level=None, uri=True)
        else:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        if not readonly:
            conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def ensure_schema(self) -> None:
        """Create the file and its tables if needed (done by the first write)."""
        if not self._schema_ready:
            self._write(None, init=True)
            self._schema_ready = True

    def _write(self, fn, init: bool = False):
        """Run ``fn(conn)`` in one immediate transaction, retrying while another writer holds the lock."""
        try:
            if not init:
                self.ensure_schema()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._write_once(fn, init)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "write") from None

    def _write_once(self, fn, init: bool):
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            conn = self._connect()
            try:
                if init:
                    # WAL lets readers run beside a writer; the setting is stored in the file.
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if init:
                        for statement in _SCHEMA.strip().split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                        out = None
                    else:
                        out = fn(conn)
                    conn.execute("COMMIT")
                    return out
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(0.5, delay * 2)
            finally:
                conn.close()

    def _query(self, fn, empty):
        """``fn(conn)`` on a read-only connection; ``empty`` when no history exists yet."""
        if not self.path.exists():
            return empty
        try:
            try:
                conn = self._connect(readonly=True)
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.OperationalError as exc:
                if "unable to open" not in str(exc) and "readonly" not in str(exc) or self.path.is_dir():
                    raise
                conn = self._connect(readonly=True, immutable=True)
            try:
                has_runs = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
                if not has_runs:
                    return empty
                return fn(conn)
            finally:
                conn.close()
        except (sqlite3.Error, OSError, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
            raise self._fail(cause, "read") from None

    def _read(self, sql: str, params: Iterable = ()) -> pd.DataFrame:
        empty_sql = sql  # columns of an empty answer: run the same query on an empty in-memory schema
        def empty():
            conn = sqlite3.connect(":memory:")
            try:
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        conn.execute(statement)
                return pd.read_sql_query(empty_sql, conn, params=list(params))
            finally:
                conn.close()

        marker = object()
        out = self._query(lambda conn: pd.read_sql_query(sql, conn, params=list(params)), marker)
        return empty() if out is marker else out

    # -- writing -------------------------------------------------------------------------
    def record(self, result: "ScenarioResult", label: str = "", once: bool = False) -> str:
        """Store a finished run; returns its ``run_id`` (unique, sortable by time).

        ``once``: record a given result at most once.  The run key is the hash of the
        label, the scenario's configuration and every per-seed number; a second call with
        the same run (e.g. ``reproduce`` rerun after a kill; timings are left out of the key)
        returns the first call's ``run_id`` and adds nothing.
        """
        payload = result.to_json()
        config = payload["config"]
        run_key = None
        if once:
            from apt_core.storage.cache import stable_hash

            run_key = stable_hash({"label": label, "config": config, "dataset": payload["dataset"],
                                   "metrics": [list(m[:-1]) for m in result.per_seed_metrics()]})  # all but the seconds
        run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        versions = package_versions()
        payload = dict(payload, run_id=run_id, versions=versions)
        targets = config["targets"] if isinstance(config["targets"], str) else ",".join(map(str, config["targets"]))
        run_row = (
            run_id, _now(), getattr(result, "scenario_key", None), payload["dataset"]["name"], config["attack"],
            config["attack_size"], targets, ",".join(config["defenses"]), config["erm_fraction"], config["erm_stats"],
            config["k"], config["epochs"], config["seeds"], config["seed"], payload.get("device"),
            getattr(result, "wall_seconds", None), getattr(result, "cache_hits", None), getattr(result, "cache_misses", None),
            label, json.dumps(versions), json.dumps(config), json.dumps(payload),
        )
        metric_rows = [(run_id, *m) for m in result.per_seed_metrics()]

        def write(conn: sqlite3.Connection) -> str:
            if run_key is not None:
                known = conn.execute("SELECT run_id FROM run_keys WHERE run_key = ?", (run_key,)).fetchone()
                if known is not None:
                    return known[0]
            conn.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(run_row))})", run_row)
            conn.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?,?,?)", metric_rows)
            if run_key is not None:
                conn.execute("INSERT INTO run_keys VALUES (?, ?)", (run_key, run_id))
            return run_id

        return self._write(write)

    def delete(self, run_id: str) -> None:
        """Remove a run and its metrics; unknown ids raise :class:`ConfigError`."""
        def write(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM run_keys WHERE run_id = ?", (run_id,))
            return conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount

        if not self._write(write):
            raise ConfigError(f"no run with id {ascii(run_id[:60])} in {self.path}")

    # -- reading -------------------------------------------------------------------------
    def runs(self, dataset: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """One row per run, newest first (configuration summary, device, wall time, cache use)."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        params: list = []
        if dataset is not None:
            sql += " WHERE dataset = ?"
            params.append(dataset)
        sql += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._read(sql, params)

    def metrics(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Per-seed metrics, one row per run x phase x seed."""
        sql = "SELECT * FROM metrics"
        ids = list(run_ids) if run_ids is not None else None
        if ids is not None:
            if not ids:
                return self._read("SELECT * FROM metrics WHERE 0")
            sql += f" WHERE run_id IN ({','.join('?' * len(ids))})"
        return self._read(sql + " ORDER BY run_id, rowid", ids or [])

    def get(self, run_id: str) -> dict:
        """The run's JSON (``ScenarioResult.to_json()`` plus ``run_id`` and ``versions``)."""
        row = self._query(lambda conn: conn.execute("SELECT result FROM runs WHERE run_id = ?", (run_id,)).fetchone(), None)
        if row is None:
            raise ConfigError(f"no run with id {ascii(run_id[:60])} in {self.path}")
        return json.loads(row[0])

    def __len__(self) -> int:
        return int(self._query(lambda conn: conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0], 0))

    def export(self, path: str | Path, format: str = "csv", run_ids: Iterable[str] | None = None) -> Path:
        """Write the history to ``path``.

        ``csv``: one row per run x phase x seed (per-seed metrics joined with the run's
        configuration columns), for pandas/R/spreadsheets.  ``json``: a list of the runs'
        full JSON objects.
        """
        fmt = format.lower()
        if fmt not in ("csv", "json"):
            raise ConfigError(f"export format must be 'csv' or 'json', got {format!r}")
        path = Path(path)
        runs = self.runs()
        if run_ids is not None:
            keep = set(run_ids)
            runs = runs[runs["run_id"].isin(keep)]
        from apt_core.storage.outputs import write_output

        if fmt == "csv":
            metrics = self.metrics(list(runs["run_id"]))
            # the per-seed "seed" replaces the run's base seed (seeds are base seed + repetition)
            table = runs.drop(columns=["seed"]).merge(metrics, on="run_id", how="left")
            data = table.to_csv(index=False).encode()
        else:
            data = json.dumps([self.get(r) for r in runs["run_id"]], indent=1).encode()
        write_output(path, data)  # never replaces a link, pipe or device the user named
        return path


def run_and_record(scenario: "Scenario", progress: "ProgressFn | None" = None, cache=True, store=True, label: str = ""):
    """Run with the default artifact cache and record the run in the default history.

    ``cache``/``store``: True for the default :class:`~apt_core.storage.cache.ArtifactCache` /
    :class:`RunStore`, an instance to use it, False/None for neither.
    Returns ``(result, run_id)`` (``run_id`` None when not recorded).  (It lived in
    :mod:`apt_core.experiments.pipeline`, which sits below the history and may not import it.)
    """
    from apt_core.storage.cache import ArtifactCache
    from apt_core.experiments.pipeline import run_scenario

    if cache is True:
        cache = ArtifactCache()
    result = run_scenario(scenario, progress, cache=cache or None)
    run_id = None
    if store:
        try:
            run_id = (RunStore() if store is True else store).record(result, label=label)
        except HistoryError as exc:  # the result stands; only its record is missing
            from apt_core.errors import warn

            warn(f"the run was not recorded in the history: {exc}")
    return result, run_id

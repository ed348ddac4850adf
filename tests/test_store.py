"""Run history: record, read, delete, export, default location, concurrent writers."""
from __future__ import annotations

import json
import multiprocessing as mp

import pandas as pd
import pytest

from apt_core.errors import ConfigError
from apt_core.experiments.pipeline import Scenario, run_scenario
from apt_core.storage.history import RunStore, default_history_path


@pytest.fixture(scope="module")
def result():
    return run_scenario(Scenario(dataset="sample", epochs=2, seeds=2))


def test_record_get_runs_delete(tmp_path, result):
    store = RunStore(tmp_path / "h.sqlite")
    assert len(store) == 0 and store.runs().empty
    rid = store.record(result, label="first")
    rid2 = store.record(result)
    assert rid != rid2 and len(store) == 2
    runs = store.runs()
    assert list(runs["run_id"]) == [rid2, rid]  # newest first
    row = runs.set_index("run_id").loc[rid]
    assert row["dataset"] == "sample" and row["seeds"] == 2 and row["label"] == "first" and row["device"] == "cpu"
    assert row["scenario_key"] == result.scenario_key
    got = store.get(rid)
    assert got["rows"] == json.loads(json.dumps(result.to_json()["rows"]))
    assert got["run_id"] == rid and {"torch", "numpy", "python", "apt_core"} <= set(got["versions"])
    m = store.metrics([rid])
    assert len(m) == len(result.phases) * 2 and set(m["seed"]) == {0, 1}
    store.delete(rid)
    assert len(store) == 1 and store.metrics([rid]).empty
    with pytest.raises(ConfigError):
        store.delete(rid)
    with pytest.raises(ConfigError):
        store.get("nope")
    assert len(store.runs(dataset="ml-100k")) == 0 and len(store.runs(limit=1)) == 1


def test_export_csv_and_json(tmp_path, result):
    store = RunStore(tmp_path / "h.sqlite")
    rid = store.record(result)
    csv = store.export(tmp_path / "out.csv")
    table = pd.read_csv(csv)
    assert len(table) == len(result.phases) * 2
    assert {"run_id", "dataset", "attack", "phase", "seed", "target_hr", "test_hr", "seconds"} <= set(table.columns)
    js = json.loads(store.export(tmp_path / "out.json", format="json").read_text())
    assert [r["run_id"] for r in js] == [rid] and js[0]["config"]["seeds"] == 2
    with pytest.raises(ConfigError):
        store.export(tmp_path / "x.xml", format="xml")


def test_default_location_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("APT_HISTORY_DB", raising=False)
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    assert default_history_path() == tmp_path / "root" / "history.sqlite"
    assert RunStore().path == tmp_path / "root" / "history.sqlite"
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "other.db"))
    assert RunStore().path == tmp_path / "other.db"


def _writer(path: str, result, n: int, queue) -> None:
    store = RunStore(path)
    ids = [store.record(result, label=f"w{i}") for i in range(n)]
    queue.put(ids)


def test_concurrent_writers_lose_nothing(tmp_path, result):
    """Four processes record 15 runs each into one file at the same time: all 60 are there."""
    path = str(tmp_path / "h.sqlite")
    RunStore(path)  # create the schema once (concurrent creation is also safe, but slower to test)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, result, 15, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    ids = [i for _ in procs for i in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = RunStore(path)
    assert len(ids) == len(set(ids)) == 60
    assert set(store.runs()["run_id"]) == set(ids)
    assert len(store.metrics()) == 60 * len(result.phases) * 2


def test_concurrent_schema_creation(tmp_path):
    path = str(tmp_path / "fresh.sqlite")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=RunStore, args=(path,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(RunStore(path)) == 0

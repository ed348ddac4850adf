"""A remembered ``reproduce`` (apt_core/reporting/replay.py): an identical command after a fully
cached run writes the same files and prints the same lines without importing torch; any change
to what the output depends on (an artifact, the data, the history, the source) runs it again."""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from proc_support import import_probe

from apt_core.reporting.replay import ReplayStore, replay_key

PROBE = import_probe("torch", "pandas")
WALL = re.compile(r"\d+\.\d s wall")


def _fake_run(tmp_path: Path, misses: int = 0, run_ids=("20261201-093015-1a2b3c4d",)):
    """The files of a finished run, an artifact entry it read and its data set's file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "table2_target_hr.md").write_text("| attack | origin |\n|---|---|\n| Average | 0.0204 |\n")
    (out / "report.md").write_text("# report\n\n- wall time: 12.3 s, engine local; artifact cache: 5 hits, 0 misses\n")
    (out / "fig.html").write_text('<script src="plotly.min.js"></script>')
    (out / "plotly.min.js").write_text("/* plotly */")
    artifact = tmp_path / "artifacts" / "eval" / "ab" / "abc.pt"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"entry")
    data = tmp_path / "data" / "ratings.csv"
    data.parent.mkdir()
    data.write_text("user,item,rating\n1,1,5\n")
    result = SimpleNamespace(config=SimpleNamespace(dataset="sample", seeds=1), out=out, cache_hits=5, cache_misses=misses,
                             unit_timings=[], run_ids=list(run_ids), skipped=["attack 'x' is not implemented"],
                             files=[out / "table2_target_hr.md", out / "report.md", out / "fig.html"])
    return result, artifact, data


def _history(path: Path, run_ids) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (run_id TEXT)")
    conn.executemany("INSERT INTO runs VALUES (?)", [(r,) for r in run_ids])
    conn.commit()
    conn.close()


def test_a_remembered_run_writes_the_same_files_with_its_own_wall_time(tmp_path):
    result, artifact, data = _fake_run(tmp_path)
    store = ReplayStore(tmp_path / "artifacts")
    assert store.remember("k", result, str(data), None, {str(artifact)}, history=False, warnings=["3 rows repeat a pair"])
    again = tmp_path / "again"
    done = store.replay("k", again, None, True, t0=0.0)
    assert done is not None and (done.hits, done.misses, done.n_files, done.skipped) == (5, 0, 3, result.skipped)
    assert done.warnings == ["3 rows repeat a pair"]
    for name in ("table2_target_hr.md", "fig.html", "plotly.min.js"):
        assert (again / name).read_bytes() == (result.out / name).read_bytes()
    report = (again / "report.md").read_text()
    assert "- wall time: 12.3 s" not in report and report.count("- wall time: ") == 1
    assert report.split("\n")[-2].endswith("engine local; artifact cache: 5 hits, 0 misses")
    assert done.table2_md == (result.out / "table2_target_hr.md").read_text()
    assert store.replay("other key", tmp_path / "x", None, True, t0=0.0) is None


def test_a_run_with_misses_is_not_remembered(tmp_path):
    result, artifact, data = _fake_run(tmp_path, misses=3)
    store = ReplayStore(tmp_path / "artifacts")
    assert not store.remember("k", result, str(data), None, {str(artifact)}, history=False)
    assert store.replay("k", tmp_path / "again", None, True, t0=0.0) is None


@pytest.mark.parametrize("change", ["artifact rewritten", "artifact deleted", "data edited", "file beside the data", "blob damaged"])
def test_a_change_to_an_input_runs_it_again(tmp_path, change):
    result, artifact, data = _fake_run(tmp_path)
    store = ReplayStore(tmp_path / "artifacts")
    assert store.remember("k", result, str(data), None, {str(artifact)}, history=False)
    if change == "artifact rewritten":
        artifact.write_bytes(b"another entry")
    elif change == "artifact deleted":
        artifact.unlink()
    elif change == "data edited":
        data.write_text("user,item,rating\n1,1,4\n")
        st = data.stat()
        os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    elif change == "file beside the data":
        (data.parent / "u.item").write_text("1|Toy Story\n")
    else:
        blob = next((tmp_path / "artifacts" / "reproduce" / "blobs").iterdir())
        blob.write_bytes(b"damaged")
    assert store.replay("k", tmp_path / "again", None, True, t0=0.0) is None
    assert not (tmp_path / "again").exists(), "a refused replay writes nothing"


def test_other_files_beside_the_data_do_not_matter(tmp_path):
    """A run's outputs written beside a CSV are not the data set."""
    result, artifact, data = _fake_run(tmp_path)
    store = ReplayStore(tmp_path / "artifacts")
    assert store.remember("k", result, str(data), None, {str(artifact)}, history=False)
    (data.parent / "out1").mkdir()
    (data.parent / "notes.txt").write_text("x")
    assert store.replay("k", tmp_path / "again", None, True, t0=0.0) is not None
    (data.parent / "ratings.csv.bak").write_text("x")  # named like the data: might be read as it
    assert store.replay("k", tmp_path / "again2", None, True, t0=0.0) is None


def test_the_history_must_still_hold_the_runs(tmp_path):
    result, artifact, data = _fake_run(tmp_path)
    store = ReplayStore(tmp_path / "artifacts")
    assert store.remember("k", result, str(data), None, {str(artifact)}, history=True)
    db = tmp_path / "history.sqlite"
    assert store.replay("k", tmp_path / "a", str(db), False, t0=0.0) is None  # no history file
    _history(db, [])
    assert store.replay("k", tmp_path / "b", str(db), False, t0=0.0) is None  # the run was deleted
    _history(tmp_path / "h2.sqlite", result.run_ids)
    assert store.replay("k", tmp_path / "c", str(tmp_path / "h2.sqlite"), False, t0=0.0) is not None


def test_the_key_follows_the_options_and_the_data_dir(monkeypatch):
    base = {"dataset": None, "quick": True, "seeds": None}
    assert replay_key(base) == replay_key(dict(base))
    assert replay_key(base) != replay_key({**base, "seeds": 2})
    assert replay_key(base) == replay_key({**base, "out": "elsewhere"})  # where the files go is not what they say
    before = replay_key(base)
    monkeypatch.setenv("APT_DATA_DIR", "/somewhere/else")
    assert replay_key(base) != before


def test_cache_clear_removes_the_remembered_runs(tmp_path):
    from apt_core.storage.cache import ArtifactCache

    result, artifact, data = _fake_run(tmp_path)
    store = ReplayStore(tmp_path / "artifacts")
    assert store.remember("k", result, str(data), None, {str(artifact)}, history=False)
    ArtifactCache(tmp_path / "artifacts").clear()
    assert [p for p in (tmp_path / "artifacts" / "reproduce").rglob("*") if p.is_file()] == []


REPRODUCE = ["reproduce", "--quick", "--no-figures", "--no-detection", "--attacks", "average", "--targets", "random",
             "--defense", "at", "--no-progress"]


def _without_wall(text: str) -> str:
    return re.sub(r"wall time: [0-9.]+ s", "", WALL.sub("", text))


def test_the_first_rerun_after_a_computing_run_is_a_replay_of_what_a_cached_run_writes(tmp_path, monkeypatch, capsys):
    """A run that computed remembers the cached run that would follow it: the next identical command
    computes nothing (reproduce is not called) and writes and prints what a real cached run does."""
    import apt_core.reporting.reproduce as reproduce_module
    from apt_core.cli import main

    args = REPRODUCE + ["--epochs", "2", "--seeds", "1", "--no-history", "--cache-dir", str(tmp_path / "cache")]
    assert main(args + ["--out", str(tmp_path / "computed")]) == 0
    computed = capsys.readouterr().out
    assert " 0 misses" not in computed.split("\n")[0], "the first run computes"

    real = reproduce_module.reproduce

    def refuse(*a, **kw):
        raise AssertionError("the rerun computed instead of replaying")

    monkeypatch.setattr(reproduce_module, "reproduce", refuse)
    assert main(args + ["--out", str(tmp_path / "replayed")]) == 0
    replayed = capsys.readouterr().out
    monkeypatch.setattr(reproduce_module, "reproduce", real)

    shutil.rmtree(tmp_path / "cache" / "reproduce")  # no record: a real cached run
    assert main(args + ["--out", str(tmp_path / "cached")]) == 0
    cached = capsys.readouterr().out
    assert " 0 misses" in cached
    assert _without_wall(replayed).replace("replayed", "cached") == _without_wall(cached)
    names = sorted(p.name for p in (tmp_path / "cached").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "replayed").iterdir())
    for name in names:
        assert _without_wall((tmp_path / "replayed" / name).read_text()) == _without_wall((tmp_path / "cached" / name).read_text()), name

    monkeypatch.setattr(reproduce_module, "reproduce", refuse)  # another flag is another command
    assert main(args[:-2] + ["--k", "20", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "other")]) == 2
    assert "the rerun computed instead of replaying" in capsys.readouterr().err


@pytest.mark.slow
def test_the_cli_replays_a_cached_run_without_torch(tmp_path):
    """Cold run (it remembers the cached run that would follow), then the replay: no torch, no
    pandas; then, its record removed, a real cached run: the same stdout but the wall time, the
    same files but report.md's wall line."""
    # A copy of the source: an edit elsewhere in the checkout meanwhile must not change the key
    src = tmp_path / "src"
    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "apt_core", src / "apt_core", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "sample_data").symlink_to(root / "sample_data")
    env = {"APT_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE", "APT_NUM_THREADS": "1",
           "PYTHONPATH": str(src)}
    runs = []
    for i in range(3):
        if i == 2:
            shutil.rmtree(tmp_path / "cache" / "artifacts" / "reproduce")  # a real cached run
        runs.append(subprocess.run([sys.executable, "-c", PROBE, *REPRODUCE, "--out", str(tmp_path / f"out{i}")],
                                   capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path))
    ends = [r.stderr.rstrip().rsplit("\n", 1)[-1] for r in runs]
    assert ends == ["TORCH=True PANDAS=True", "TORCH=False PANDAS=False", "TORCH=True PANDAS=True"], runs[1].stderr[-2000:]
    assert "0 misses" in runs[2].stdout
    assert WALL.sub("", runs[1].stdout).replace("out1", "out2") == WALL.sub("", runs[2].stdout)
    for path in sorted((tmp_path / "out2").iterdir()):
        mine = (tmp_path / "out1" / path.name).read_text()
        if path.name == "report.md":
            mine, theirs = (re.sub(r"wall time: [0-9.]+ s", "", t) for t in (mine, path.read_text()))
        else:
            theirs = path.read_text()
        assert mine == theirs, path.name

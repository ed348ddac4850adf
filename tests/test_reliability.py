"""Reliability (issue 15): a finished result is never lost, hostile input never crashes,
silently wrong input is refused or warned about.  Each test failed on the code before the fix."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from apt_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--dataset", "sample", "--epochs", "1", "--json"]


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """A private cache (shared by the runs of one test, so repeats are cheap) and history."""
    monkeypatch.setenv("APT_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("APT_HISTORY_DB", str(tmp_path / "root" / "history.sqlite"))
    return tmp_path


def _run(capsys, *extra) -> tuple[int, str, str]:
    rc = main([*RUN, *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------- history trouble loses nothing


@pytest.mark.parametrize("kind", ["garbage", "directory", "under-a-file"])
def test_run_prints_result_when_history_is_unusable(homes, capsys, kind):
    path = homes / "bad-history"
    if kind == "garbage":
        path.write_bytes(b"this is not a database\n" * 100)
    elif kind == "directory":
        path.mkdir()
    else:
        (homes / "file").write_text("x")
        path = homes / "file" / "history.sqlite"  # its folder cannot be created
    rc, out, err = _run(capsys, "--history-db", str(path))
    assert rc == 0
    result = json.loads(out)  # the finished result is on stdout
    assert result["rows"] and result["dataset"]["name"] == "sample"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "not recorded" in lines[0], err
    assert "Traceback" not in err


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """A child that holds the history's write lock for ``seconds``."""
    code = textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(path)!r}, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        print("LOCKED", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def test_locked_history_is_a_quick_warning_and_stays_readable(homes, capsys, monkeypatch):
    from apt_core.storage.history import RunStore

    path = homes / "h.sqlite"
    rc, out, _ = _run(capsys, "--history-db", str(path))  # one run recorded; also fills the cache
    assert rc == 0 and len(RunStore(path)) == 1
    monkeypatch.setenv("APT_HISTORY_TIMEOUT", "1")
    holder = _hold_lock(path, 60)
    try:
        t0 = time.monotonic()
        rc, out, err = _run(capsys, "--history-db", str(path))
        assert rc == 0 and json.loads(out)["rows"]
        assert err.startswith("warning:") and "locked" in err and len(err.strip().splitlines()) == 1
        assert time.monotonic() - t0 < 40  # not the 60 s busy timeout of before (a cached run takes seconds)
        # reading needs no lock: the history command lists the recorded run meanwhile
        assert main(["history", "--json", "--history-db", str(path)]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 1
    finally:
        holder.kill()
        holder.wait()


def test_reading_history_never_writes(tmp_path, monkeypatch, capsys):
    from apt_core.storage.history import RunStore

    missing = tmp_path / "nowhere" / "history.sqlite"
    assert RunStore(missing).runs().empty and len(RunStore(missing)) == 0
    assert not missing.parent.exists()  # listing did not create folders or files

    def no_writes(self, *args, **kwargs):
        raise AssertionError("a read tried to write")

    monkeypatch.setattr(RunStore, "_write", no_writes)
    monkeypatch.setattr(RunStore, "ensure_schema", no_writes, raising=False)
    assert main(["history", "--history-db", str(missing)]) == 0
    assert "no runs recorded" in capsys.readouterr().out


def test_history_command_on_garbage_is_one_line(tmp_path, capsys):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"garbage" * 200)
    assert main(["history", "--history-db", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a run history" in err and len(err.strip().splitlines()) == 1


def test_reproduce_records_each_scenario_once(tmp_path):
    """A rerun (e.g. after a kill) answered from the cache adds no second row for the same result."""
    from apt_core.experiments.pipeline import Scenario, run_scenario
    from apt_core.storage.history import RunStore

    result = run_scenario(Scenario(epochs=1))
    store = RunStore(tmp_path / "h.sqlite")
    first = store.record(result, label="reproduce", once=True)
    assert store.record(result, label="reproduce", once=True) == first
    assert len(store) == 1
    store.delete(first)  # a deleted run may be recorded again
    assert store.record(result, label="reproduce", once=True) != first and len(store) == 1


# ---------------------------------------------------------------- the cache is optional


def test_unwritable_cache_warns_and_the_run_goes_on(homes, capsys):
    (homes / "file").write_text("x")
    rc, out, err = _run(capsys, "--cache-dir", str(homes / "file" / "cache"), "--no-history")
    assert rc == 0 and json.loads(out)["rows"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: artifact cache"), err


def test_clear_leaves_writes_in_progress_alone(tmp_path):
    from apt_core.storage.cache import ArtifactCache

    cache = ArtifactCache(tmp_path)
    cache.save("model", "ab" * 32, {"a": np.zeros(3)})
    in_flight = cache.path("model", "cd" * 32).parent / ".x.pt.123.tmp"
    in_flight.parent.mkdir(parents=True, exist_ok=True)
    in_flight.write_bytes(b"half")
    old = in_flight.with_name(".y.pt.456.tmp")
    old.write_bytes(b"left by a killed run")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert cache.clear() == 1
    assert cache.entries() == []
    assert in_flight.exists() and not old.exists()


def test_cache_write_that_loses_its_temp_file_warns(tmp_path, monkeypatch):
    """What a concurrent clear did to a run before: the rename found no temp file."""
    from apt_core.storage.cache import ArtifactCache

    def vanished(a, b):
        raise FileNotFoundError(2, "No such file or directory")

    cache = ArtifactCache(tmp_path)
    monkeypatch.setattr(os, "replace", vanished)
    with pytest.warns(UserWarning, match="cannot be written"):
        assert cache.save("model", "ab" * 32, {"a": np.zeros(3)}) is None


# ---------------------------------------------------------------- crafted inputs


def test_poison_csv_with_huge_item_id_is_refused(tiny, tmp_path):
    from apt_core.attacks.io import load_profiles
    from apt_core.errors import DataError

    path = tmp_path / "p.csv"
    path.write_text("user,item_index,rating\n0,1e20,5\n0,1,4\n")
    with pytest.raises(DataError, match="out of range"):
        load_profiles(path, tiny)
    path.write_text("user,item_index,rating\n1e20,1,5\n")
    with pytest.raises(DataError, match="too large"):
        load_profiles(path, tiny)


def test_npy_header_claiming_a_huge_shape_is_refused_before_allocating(tiny, tmp_path):
    from apt_core.attacks.io import load_profiles
    from apt_core.errors import DataError

    path = tmp_path / "p.npy"
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (100_000_000, tiny.n_items)})
        fh.write(b"\0" * 800)
    assert path.stat().st_size < 2000
    with pytest.raises(DataError, match="claims shape"):
        load_profiles(path, tiny)
    # a shape far beyond the data set is refused even when the bytes are there
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (tiny.n_users * 20, tiny.n_items)})
        fh.write(b"\0" * (tiny.n_users * 20 * tiny.n_items))
    with pytest.raises(DataError, match="fake users is more than"):
        load_profiles(path, tiny)


def test_upload_with_a_300_character_name(tmp_path):
    pytest.importorskip("streamlit")
    from pages._shared.uploads import save_upload

    content = (ROOT / "sample_data" / "ratings.csv").read_bytes()
    path = Path(save_upload("x" * 300 + ".csv", content, folder=tmp_path))
    assert path.is_file() and len(path.name) < 100 and path.parent == tmp_path
    hostile = Path(save_upload("../../etc/passwd .csv", content, folder=tmp_path))
    assert hostile.parent == tmp_path and "/" not in hostile.name and not hostile.name.startswith(".")


def test_unexpected_error_is_one_line_with_exit_2(monkeypatch, capsys):
    import apt_core.cli as cli

    def boom(args):
        raise RuntimeError("something internal\nsecond line")

    monkeypatch.setattr(cli, "cmd_data", boom)
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected RuntimeError: something internal") and len(err.strip().splitlines()) == 1
    with pytest.raises(RuntimeError):
        main(["--debug", "data"])
    monkeypatch.setenv("APT_LAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["data"])


# ---------------------------------------------------------------- silently wrong


def test_k_larger_than_the_catalogue_is_refused(homes, capsys):
    # The sample's catalogue has 1000 items: --k 1000 is inside --k's declared bound (1000) and
    # still not smaller than the catalogue; beyond the bound the bound's message answers first.
    rc, out, err = _run(capsys, "--k", "1000", "--no-history")
    assert rc == 2 and out == ""
    assert err.startswith("error: --k 1000 is not smaller than the catalogue")
    rc, out, err = _run(capsys, "--k", "100000", "--no-history")
    assert rc == 2 and out == "" and "at most 1000" in err


def test_bom_is_not_part_of_the_first_id(tmp_path, tiny):
    from apt_core.attacks.io import load_profiles
    from apt_core.data import load_csv

    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbf1,10,4\n1,11,3\n2,10,5\n2,12,1\n")
    data = load_csv(path)
    assert data.user_ids.tolist() == [1, 2] and data.item_ids.tolist() == [10, 11, 12]
    poison = tmp_path / "p.csv"
    poison.write_bytes(b"\xef\xbb\xbfuser,item_id,rating\n0,1,5\n")
    assert len(load_profiles(poison, tiny)) == 1


def test_latin1_upload_is_refused_not_merged(tmp_path):
    pytest.importorskip("streamlit")
    from apt_core.errors import DataError
    from pages._shared.uploads import save_upload

    rows = "user,item,rating\n" + "".join(f"u{u},caf\u00e9,4\nu{u},caf\u00e8,2\n" for u in range(10))
    with pytest.raises(DataError, match="UTF-8"):
        save_upload("latin.csv", rows.encode("latin-1"), folder=tmp_path)
    assert list(tmp_path.iterdir()) == []
    # the same file as UTF-8 keeps both items apart
    from apt_core.data import load_csv

    assert load_csv("ok.csv", text=rows.encode("utf-8")).n_items == 2


def test_all_zero_poison_and_duplicate_rows_warn(tiny, tmp_path, capsys):
    from apt_core.attacks.io import load_profiles

    path = tmp_path / "zero.npy"
    np.save(path, np.zeros((18, tiny.n_items)))
    with pytest.warns(UserWarning, match="18 of 18 fake users rate nothing"):
        load_profiles(path, tiny)
    ratings = tmp_path / "dup.csv"
    ratings.write_text("1,1,4\n1,1,4\n1,2,3\n2,1,5\n2,2,2\n2,2,2\n")
    # the warning reaches the CLI's stderr as one line
    assert main(["data", "--dataset", str(ratings)]) == 0
    err = capsys.readouterr().err
    assert "warning: dup: 2 of 6 rows repeat a (user, item) pair" in err


def test_one_rating_per_user_names_the_real_cause(tmp_path, capsys):
    path = tmp_path / "single.csv"
    rng = np.random.default_rng(0)
    path.write_text("".join(f"{u},{rng.integers(1, 100)},{rng.integers(1, 6)}\n" for u in range(2000)))
    assert main(["run", "--dataset", str(path), "--epochs", "1", "--no-history", "--no-cache", "--targets", "unpopular", "--k", "10"]) == 2
    err = capsys.readouterr().err
    assert "no user keeps a test rating" in err and "1 rating" in err


@pytest.mark.parametrize("seed", ["-1", "1e20", str(10**20)])
def test_bad_seed_names_the_flag(seed, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--seed", seed, "--no-history"])
    assert info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_scenario_seed_out_of_range_names_the_flag():
    from apt_core.errors import ConfigError
    from apt_core.experiments.pipeline import Scenario

    for seed in (-1, 2**40):
        with pytest.raises(ConfigError, match="--seed"):
            Scenario(seed=seed).validate()


# ---------------------------------------------------------------- loading speed (measured by `bench --load-rows`)


def test_comma_files_take_the_fast_parser(tmp_path, monkeypatch):
    """Well-formed comma files (quoted fields included) never reach the line-by-line parser."""
    import apt_core.data.parsing as parsing
    from apt_core.data import load_csv

    def slow(*args, **kwargs):
        raise AssertionError("the line-by-line parser ran on a well-formed file")

    monkeypatch.setattr(parsing, "_careful_parse", slow)
    path = tmp_path / "q.csv"
    path.write_text('user,item,rating,timestamp\n"smith, j","The Film, 2",4,1\nbob,"The Film, 2",2,2\nbob, x ,5,3\n')
    data = load_csv(path)
    assert sorted(data.user_ids.tolist()) == ["bob", "smith, j"] and sorted(data.item_ids.tolist()) == ["The Film, 2", "x"]
    numeric = tmp_path / "n.csv"
    numeric.write_text("1,10,4\n2,10,3\n2,11,5\n")
    data = load_csv(numeric)
    assert data.user_ids.tolist() == [1, 2] and data.n_ratings == 3


def test_bench_load_reports_time_and_peak_memory(capsys):
    assert main(["bench", "--load-rows", "2000", "--load-only", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "load CSV, 2000 rows" in out and "peak memory" in out and "failed" not in out


def _read_only_mount_works() -> bool:
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs root and unshare for a read-only bind mount")
def test_read_only_history_and_cache_on_read_only_media(homes, capsys):
    """The real thing: the history and the cache on a read-only file system."""
    ro = homes / "ro"
    ro.mkdir()
    rc, _, _ = _run(capsys, "--history-db", str(ro / "h.sqlite"), "--cache-dir", str(ro / "cache"))
    assert rc == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    mount = f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro}"

    def in_ro(*args):
        cmd = " ".join([sys.executable, "-m", "apt_core", *args])
        return subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && {cmd}"], capture_output=True, text=True, env=env, timeout=300)

    listed = in_ro("history", "--json", "--history-db", str(ro / "h.sqlite"))
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1
    run = in_ro(*RUN, "--epochs", "2", "--history-db", str(ro / "h.sqlite"), "--cache-dir", str(ro / "cache"))
    assert run.returncode == 0 and json.loads(run.stdout)["rows"], run.stderr
    warnings_ = [ln for ln in run.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings_) == 2 and "Traceback" not in run.stderr  # the cache, then the history

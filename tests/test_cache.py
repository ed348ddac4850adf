"""Artifact cache: keys, round trips, hits and misses, atomic writes, corruption recovery."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from apt_core.storage.cache import ArtifactCache, MAGIC, atomic_write_bytes, stable_hash
from apt_core.experiments.pipeline import Scenario, run_scenario

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(dataset="sample", epochs=2, seeds=2)


def test_stable_hash_is_canonical():
    assert stable_hash({"a": 1, "b": (1, 2)}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash({"x": np.float32(0.5)}) == stable_hash({"x": 0.5})
    assert stable_hash(np.arange(3)) != stable_hash(np.arange(4))


def test_keys_are_stable_across_processes():
    """A key depends on content only (not on PYTHONHASHSEED, dict order or the process)."""
    import json

    from apt_core.experiments.pipeline import CACHE_FORMAT

    s = Scenario(dataset="sample", attack="none", defenses=("none",), seeds=3, targets=(1, 2, 3))
    d = s.to_dict()
    d.pop("data_dir")
    d.pop("rating_scale")  # None (no --scale): left out, so keys from before the field existed stay the same
    code = f"import json; from apt_core.storage.cache import stable_hash; print(stable_hash({{'scenario': json.loads({json.dumps(json.dumps(d))}), 'format': {CACHE_FORMAT}}}))"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == s.key()
    assert s.key() != Scenario(dataset="sample", seeds=4).key()
    # Where the data lives is not part of what the scenario is.
    assert Scenario(data_dir="/a").key() == Scenario(data_dir="/b").key()
    assert Scenario(device="auto").key("cpu") == Scenario(device="cpu").key("cpu")


def test_round_trip_and_counters(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert cache.load("model", "ab" * 32) is None
    payload = {"arr": np.arange(5, dtype=np.int64), "t": torch.ones(2, 3), "x": 1.5, "s": "hi", "nested": {"l": [1, None, np.float32(2.0)]}}
    path = cache.save("model", "ab" * 32, payload)
    assert path.is_file() and path.read_bytes().startswith(MAGIC)
    back = cache.load("model", "ab" * 32)
    assert isinstance(back["arr"], np.ndarray) and back["arr"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(back["t"], torch.ones(2, 3))
    assert back["x"] == 1.5 and back["s"] == "hi" and back["nested"]["l"] == [1, None, 2.0]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 1, 1)
    assert cache.clear() == 1 and cache.entries() == []


def test_objects_that_need_pickle_are_refused(tmp_path):
    with pytest.raises(TypeError):
        ArtifactCache(tmp_path).save("x", "cd" * 32, {"obj": object()})


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
def test_corrupt_entry_is_detected_deleted_and_reported_as_miss(tmp_path, damage):
    cache = ArtifactCache(tmp_path)
    path = cache.save("eval", "ef" * 32, {"a": np.arange(1000)})
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-10] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "header":
        raw[:5] = b"XXXXX"
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    assert cache.load("eval", "ef" * 32) is None
    assert cache.stats.corrupt == 1 and not path.exists()


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # temp file cleaned up


def test_killed_writer_leaves_no_entry(tmp_path):
    """SIGKILL in the middle of a write (before the rename): no half-written entry is ever visible."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from apt_core.storage.cache import ArtifactCache
        real_replace = os.replace
        def slow_replace(a, b):
            print("WRITING", flush=True)
            time.sleep(60)
            real_replace(a, b)
        os.replace = slow_replace
        ArtifactCache({str(tmp_path)!r}).save("model", "12" * 32, {{"a": np.zeros(100000)}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cache = ArtifactCache(tmp_path)
    assert not cache.path("model", "12" * 32).exists()
    assert cache.load("model", "12" * 32) is None and cache.stats.corrupt == 0
    assert cache.entries() == []
    assert any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    cache.clear()  # a fresh temp file may be another run's write in progress: left alone
    assert any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    cache.clear(stale_after=0)  # once old enough it is a killed writer's leftover: removed
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def _forbid_training(monkeypatch):
    from apt_core.defenses.none import NoDefense

    def fail(self, train, ctx):
        raise AssertionError("trained although the cache should have answered")

    monkeypatch.setattr(NoDefense, "fit", fail)


def test_second_run_is_answered_from_the_cache(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    s = Scenario(**FAST)
    first = run_scenario(s, cache=cache)
    assert first.cache_hits == 0 and first.cache_misses > 0
    assert not any(any(p.from_cache) for p in first.phases)
    _forbid_training(monkeypatch)
    again = run_scenario(s, cache=ArtifactCache(tmp_path))
    assert again.cache_misses == 0 and again.cache_hits > 0
    assert all(all(p.from_cache) for p in again.phases)
    assert again.rows() == first.rows()
    assert again.to_json()["rows"] == first.to_json()["rows"]


def test_cache_keys_cover_what_determines_the_artifact(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    run_scenario(Scenario(**FAST, targets="random"), cache=cache)
    _forbid_training(monkeypatch)
    # K does not change ranks: the stored evaluations answer, with a different HR@K.
    k10 = run_scenario(Scenario(**FAST, targets="random", k=10), cache=cache)
    assert k10.cache_misses == 0
    # Other targets: the clean model is re-used (rebuilt from its state_dict), only ranked again.
    other = run_scenario(Scenario(**FAST, targets="unpopular"), cache=cache)
    assert other.phase("origin").from_cache == [True, True]
    # Another MF recipe (epochs) must train: the forbidden fit proves the key changed.
    with pytest.raises(AssertionError, match="trained although"):
        run_scenario(Scenario(**{**FAST, "epochs": 3}), cache=cache)


def test_corrupt_cache_entry_is_rebuilt_with_the_same_result(tmp_path):
    cache = ArtifactCache(tmp_path)
    s = Scenario(**FAST)
    first = run_scenario(s, cache=cache)
    for p in cache.entries():
        raw = bytearray(p.read_bytes())
        raw[-5] ^= 0x55
        p.write_bytes(bytes(raw))
    fresh = ArtifactCache(tmp_path)
    rebuilt = run_scenario(s, cache=fresh)
    assert fresh.stats.corrupt > 0 and rebuilt.cache_hits == 0
    # Training is seeded: the rebuilt artifacts give the same numbers.
    assert rebuilt.rows()[0]["target_hr"] == pytest.approx(first.rows()[0]["target_hr"])
    assert rebuilt.rows()[0]["test_hr"] == pytest.approx(first.rows()[0]["test_hr"])
    # The rebuilt entries are whole again: a fresh reader finds every one, none corrupt.
    reader = ArtifactCache(tmp_path)
    again = run_scenario(s, cache=reader)
    assert again.cache_misses == 0 and again.cache_hits > 0
    assert reader.stats.corrupt == 0 and reader.stats.writes == 0


def test_fake_profiles_are_cached(tmp_path, monkeypatch):
    from apt_core import attacks
    from apt_core.attacks.base import Attack, FakeProfiles

    calls = []

    class CountingAttack(Attack):
        name = "counting-test"
        summary = "test attack: every fake user rates the targets only"

        def _generate(self, train, targets, n_fake_users, n_filler, rng, device, progress):
            calls.append(1)
            users = np.repeat(np.arange(n_fake_users), len(targets))
            items = np.tile(targets, n_fake_users)
            return FakeProfiles(users, items, np.full(len(users), train.scale.maximum), n_fake_users, train.n_items)

    monkeypatch.setitem(attacks.ATTACKS, CountingAttack.name, CountingAttack)
    s = Scenario(**FAST, attack="counting-test")
    cache = ArtifactCache(tmp_path)
    first = run_scenario(s, cache=cache)
    assert len(calls) == 2 and cache.stats.by_kind["fake"]["writes"] == 2
    again = run_scenario(s, cache=cache)
    assert len(calls) == 2, "the attack ran again although its profiles were cached"
    assert again.rows() == first.rows()
    assert len(first.attack_seconds) == 2 and again.attack_seconds == first.attack_seconds  # original times
    np.testing.assert_array_equal(again.fake_profiles[0].users, first.fake_profiles[0].users)
    # Another budget is another artifact.
    run_scenario(Scenario(**FAST, attack="counting-test", attack_size=0.05), cache=cache)
    assert len(calls) == 4


def test_code_fingerprint_covers_the_modules_an_artifact_runs():
    from apt_core.evaluation import metrics
    from apt_core.storage.cache import code_fingerprint, code_modules
    from apt_core.defenses.none import NoDefense

    mods = code_modules(NoDefense)
    assert {"apt_core.defenses.none", "apt_core.defenses.base", "apt_core.models.mf", "apt_core.evaluation.metrics"} <= set(mods)
    # An unrelated attack's file is not part of the clean model's key.
    assert not any(name.startswith("apt_core.attacks") for name in mods)
    # Stable across processes (another hash seed, other modules imported before), or no run would
    # ever hit the cache of another.  The closure is read from the files, not from sys.modules.
    from apt_core.defenses import make_defense
    from apt_core.storage.cache import method_fingerprint

    script = ("from apt_core.storage.cache import code_fingerprint, method_fingerprint; from apt_core.defenses.none import NoDefense; "
              "a = code_fingerprint(NoDefense); from apt_core.defenses import make_defense; "
              "print(a, method_fingerprint(make_defense('remove-cogroup')), method_fingerprint(make_defense('apt-trusted')))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout.split()
    here = [code_fingerprint(NoDefense), method_fingerprint(make_defense("remove-cogroup")), method_fingerprint(make_defense("apt-trusted"))]
    assert all(len(k) == 64 for k in other) and other == here
    assert code_fingerprint(NoDefense) != code_fingerprint(metrics)


def test_poison_file_runs_are_cached_by_content(tmp_path, sample_split):
    """A poison file has no attack key: its poisoned data is keyed by the profiles' content."""
    from apt_core.attacks.io import save_profiles
    from apt_core.attacks.base import FakeProfiles

    n_fake = 5
    targets = np.array([3, 7])
    fake = FakeProfiles(np.repeat(np.arange(n_fake), 2), np.tile(targets, n_fake), np.full(2 * n_fake, 5.0), n_fake, sample_split.n_items)
    path = save_profiles(fake, tmp_path / "poison.csv", sample_split.train.scale)
    s = Scenario(**FAST, poison_file=str(path))
    cache = ArtifactCache(tmp_path / "c")
    first = run_scenario(s, cache=cache)
    again = run_scenario(s, cache=cache)
    assert again.cache_misses == 0 and again.rows() == first.rows()
    # Same profiles under another file name: same poisoned-data key, still no training.
    path.rename(tmp_path / "renamed.csv")
    moved = run_scenario(Scenario(**FAST, poison_file=str(tmp_path / "renamed.csv")), cache=cache)
    assert moved.cache_misses == 0


def test_cache_only_answers_or_raises_before_training(tmp_path, monkeypatch):
    from apt_core.storage.cache import CacheMiss
    from apt_core.errors import ConfigError

    cache = ArtifactCache(tmp_path)
    s = Scenario(**FAST)
    with pytest.raises(CacheMiss):
        run_scenario(s, cache=cache, cache_only=True)
    with pytest.raises(ConfigError):
        run_scenario(s, cache_only=True)
    first = run_scenario(s, cache=cache)
    _forbid_training(monkeypatch)
    assert run_scenario(s, cache=cache, cache_only=True).rows() == first.rows()

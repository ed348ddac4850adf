"""Shilling detectors: metrics on hand-made examples, detectors on the sample data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from apt_core.attacks import make_attack
from apt_core.data.dataset import Interactions
from apt_core.data.split import attack_budget, select_targets
from apt_core.detection import DETECTORS, detector_names, make_detector
from apt_core.detection.cuts import gap_cut, mad_cut
from apt_core.detection.metrics import average_precision, detection_metrics, fake_mask, roc_auc
from apt_core.errors import ConfigError

# ------------------------------------------------------------------------------ metrics


def test_roc_auc_hand_made():
    y = np.array([1, 1, 0, 0, 0], bool)
    assert roc_auc(y, np.array([5, 4, 3, 2, 1.0])) == 1.0
    assert roc_auc(y, np.array([1, 2, 3, 4, 5.0])) == 0.0
    assert roc_auc(y, np.ones(5)) == 0.5  # ties count one half
    # one fake above all reals, one tied with one real: (3 + 2.5) / 6
    assert roc_auc(y, np.array([9, 3, 3, 2, 1.0])) == pytest.approx(5.5 / 6)
    assert roc_auc(np.zeros(3, bool), np.arange(3.0)) is None


def test_average_precision_hand_made():
    y = np.array([1, 0, 1, 0], bool)
    # fakes at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(y, np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx((1 + 2 / 3) / 2)
    # ties are broken pessimistically (the real user first)
    assert average_precision(np.array([1, 0], bool), np.array([1.0, 1.0])) == pytest.approx(0.5)
    assert average_precision(np.zeros(2, bool), np.ones(2)) is None


def test_precision_recall_at_the_cut():
    y = fake_mask(6, 4)  # users 4, 5 fake
    assert y.tolist() == [False] * 4 + [True] * 2
    flagged = np.array([0, 0, 0, 1, 1, 0], bool)
    m = detection_metrics(y, np.arange(6.0), flagged)
    assert (m.precision, m.recall, m.real_flagged, m.fake_flagged) == (0.5, 0.5, 1, 1)
    assert m.f1 == pytest.approx(0.5)
    assert m.real_flagged_fraction == pytest.approx(0.25)
    nobody = detection_metrics(y, np.arange(6.0), np.zeros(6, bool))
    assert nobody.precision is None and nobody.recall == 0.0 and nobody.f1 is None


def test_gap_cut_flags_a_separated_block_and_nothing_else():
    rng = np.random.default_rng(0)
    real = rng.normal(10, 2, 500)
    flagged, threshold, _ = gap_cut(np.concatenate([real, np.full(15, 40.0)]))
    assert flagged.sum() == 15 and flagged[-15:].all() and threshold == 40.0
    flagged, threshold, _ = gap_cut(real)
    assert flagged.sum() == 0 and threshold is None
    flagged, _, _ = mad_cut(np.concatenate([real, [100.0]]))
    assert flagged[-1] and flagged.sum() < 10


# ---------------------------------------------------------------------------- detectors


@pytest.fixture(scope="module")
def average_poisoned(sample_split):
    train = sample_split.train
    targets = select_targets(sample_split, "unpopular", 5, 0)
    budget = attack_budget(train, 0.03)
    fake = make_attack("average").generate(train, targets, budget.n_fake_users, budget.n_filler, 0)
    return fake.inject(train)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_interface_and_determinism(name, average_poisoned):
    det = make_detector(name)
    a = det.scores(average_poisoned, 0)
    b = det.scores(average_poisoned, 0)
    assert a.shape == (average_poisoned.n_users,) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    # Unsupervised: relabelling every user as real changes nothing.
    p = average_poisoned
    blind = Interactions(p.users, p.items, p.ratings, p.n_users, p.n_items, p.scale)
    assert np.array_equal(det.scores(blind, 0), a)


@pytest.mark.parametrize("name", ["cogroup", "rdma", "wdma", "degsim", "pca", "influence"])
def test_detectors_beat_chance_on_average(name, average_poisoned):
    s = make_detector(name).scores(average_poisoned, 0)
    y = fake_mask(average_poisoned.n_users, average_poisoned.n_real_users)
    assert roc_auc(y, s) > 0.7


def test_lengthvar_flags_profiles_of_unusual_length(tiny):
    # One user rates everything: the longest profile is the most suspicious.
    items = np.arange(tiny.n_items)
    data = tiny.with_injected(np.zeros(len(items), np.int64), items, np.full(len(items), 3.0), 1)
    s = make_detector("lengthvar").scores(data)
    assert np.argmax(s) == data.n_users - 1


def test_cogroup_cut_catches_the_group_and_spares_real_users(sample_split, average_poisoned):
    det = make_detector("cogroup")
    res = det.detect(average_poisoned)
    m = detection_metrics(fake_mask(average_poisoned.n_users, average_poisoned.n_real_users), res.scores, res.flagged)
    assert m.recall >= 0.9 and m.real_flagged_fraction < 0.02
    # Clean data: no coordinated group, nobody flagged.
    assert det.detect(sample_split.train).n_flagged == 0


def test_unknown_detector_and_bad_parameters():
    with pytest.raises(ConfigError, match="unknown detector"):
        make_detector("magic")
    with pytest.raises(ConfigError):
        make_detector("degsim", k=0)
    with pytest.raises(ConfigError):
        make_detector("cogroup", cut="top3%")
    with pytest.raises(ConfigError, match="no_such"):
        make_detector("rdma", no_such=1)
    assert set(detector_names()) >= {"cogroup", "rdma", "wdma", "degsim", "lengthvar", "pca", "influence"}


def test_detect_cli_json(capsys):
    from apt_core.cli import main

    rc = main(["detect", "--dataset", "sample", "--attack", "average", "--targets", "unpopular",
               "--detectors", "cogroup,rdma", "--json", "--no-cache"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["detector"]: r for r in out["detectors"]}
    assert set(rows) == {"cogroup", "rdma"}
    for key in ("auc", "average_precision", "precision", "recall", "f1", "real_flagged", "n_flagged"):
        assert key in rows["cogroup"]
    assert rows["cogroup"]["auc"] > 0.9
    assert out["stealth"]["mean_corr_fake"] > 0.2  # Average's fillers follow the item means


def test_detect_cli_refuses_no_attack(capsys):
    from apt_core.cli import main

    assert main(["detect", "--dataset", "sample", "--attack", "none", "--no-cache"]) == 2
    assert "fake users" in capsys.readouterr().err


def test_trusted_statistics_are_the_clean_ones_when_the_group_is_caught(sample_split, average_poisoned):
    from apt_core.defenses.erm import item_statistics, trusted_statistics

    means, stds, detection = trusted_statistics(average_poisoned, "cogroup")
    assert detection.flagged[average_poisoned.n_real_users:].all()
    clean_means, clean_stds = item_statistics(sample_split.train, "clean")
    np.testing.assert_allclose(means, clean_means, rtol=1e-6)
    np.testing.assert_allclose(stds, clean_stds, rtol=1e-6)
    observed = average_poisoned.item_means()
    assert not np.allclose(observed, clean_means)  # the attack did move the observed means


def test_global_statistics_barely_move_under_attack(sample_split, average_poisoned):
    from apt_core.defenses.erm import item_statistics

    g_means, g_stds = item_statistics(average_poisoned, "global")
    assert np.ptp(g_means) == 0 and np.ptp(g_stds) == 0
    assert abs(g_means[0] - sample_split.train.ratings.mean()) < 0.05


def test_remove_defense_reports_its_flags(sample_split, average_poisoned):
    from apt_core.defenses import DefenseContext, make_defense
    from apt_core.models.mf import MFConfig

    result = make_defense("remove-cogroup").fit(average_poisoned, DefenseContext(MFConfig(epochs=2), "cpu", 0, "sample"))
    d = result.diagnostics
    assert d["detector"] == "cogroup" and len(d["suspicion"]) == average_poisoned.n_users
    assert set(d["flagged_users"].tolist()) == set(range(average_poisoned.n_real_users, average_poisoned.n_users))
    assert result.model.P.shape[0] == average_poisoned.n_users  # every id can still be scored


def test_detector_results_are_cached_and_read_back(tmp_path):
    """A repeated detection (reproduce's table, the Detection page) reads every detector's
    scores from the artifact cache instead of recomputing them, and gets the same numbers."""
    from apt_core.storage.cache import ArtifactCache, CacheMiss
    from apt_core.experiments.detection_run import run_detection
    from apt_core.experiments.pipeline import Scenario

    scenario = Scenario(attack="average", targets="unpopular", defenses=("none",), epochs=3)
    names = ["cogroup", "influence"]
    with pytest.raises(CacheMiss):
        run_detection(scenario, names, cache=ArtifactCache(tmp_path), cache_only=True)
    first = run_detection(scenario, names, cache=ArtifactCache(tmp_path))
    again_cache = ArtifactCache(tmp_path)
    again = run_detection(scenario, names, cache=again_cache, cache_only=True)
    assert again_cache.stats.misses == 0 and again_cache.stats.writes == 0
    for a, b in zip(first.runs, again.runs):
        assert a.detector == b.detector and np.array_equal(a.scores, b.scores) and np.array_equal(a.flagged, b.flagged)
        assert a.metrics == b.metrics and a.threshold == b.threshold
    other = run_detection(scenario, names, cache=ArtifactCache(tmp_path), detector_params={"cogroup": {"cut": "mad"}})
    assert other.runs[0].flagged.sum() != first.runs[0].flagged.sum() or other.runs[0].threshold != first.runs[0].threshold


def test_average_ranks_equal_scipys_rankdata():
    """roc_auc ranks without importing scipy.stats (start-up); the ranks are scipy's, ties and NaN included."""
    from scipy.stats import rankdata

    from apt_core.detection.metrics import average_ranks

    rng = np.random.default_rng(0)
    for n in (1, 2, 9, 300):
        for values in (rng.normal(size=n), rng.integers(0, max(2, n // 3), n).astype(float)):
            np.testing.assert_array_equal(average_ranks(values), rankdata(values))
    assert np.isnan(average_ranks(np.array([1.0, np.nan, 2.0]))).all()

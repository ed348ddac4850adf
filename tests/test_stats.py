"""Statistics on hand-computed cases (no scipy in the expected values)."""
from __future__ import annotations

import math

import pytest

from apt_core.stats import MIN_SEEDS_FOR_STARS, best_baseline, mean_sd, paired_ttest, significance, stars


@pytest.mark.parametrize(
    "p, expected",
    [(0.0, "***"), (0.0009, "***"), (0.001, "**"), (0.0099, "**"), (0.01, "*"), (0.049, "*"), (0.05, ""), (0.5, ""), (None, ""), (float("nan"), "")],
)
def test_stars_follow_the_papers_thresholds(p, expected):
    assert stars(p) == expected


def test_paired_ttest_df3_by_hand():
    # d = [1, 2, 3, 4]: mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = sqrt(15) = 3.87298.
    # Student t with 3 df: CDF(t) = 1/2 + (1/pi) * (x / (1 + x^2) + atan(x)), x = t / sqrt(3).
    res = paired_ttest([1, 2, 3, 4], [0, 0, 0, 0])
    t = math.sqrt(15)
    x = t / math.sqrt(3)
    p = 2 * (1 - (0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi))
    assert res.n == 4
    assert res.mean_diff == pytest.approx(2.5)
    assert res.t == pytest.approx(t, rel=1e-9)
    assert res.p_value == pytest.approx(p, rel=1e-7)
    assert res.p_value == pytest.approx(0.03047, abs=1e-5)
    assert res.stars == "*"


def test_paired_ttest_df1_by_hand_and_sign():
    # d = [0.1, 0.3]: mean 0.2, sd 0.141421, t = 0.2 / (0.141421 / sqrt 2) = 2; df 1: p = 1 - 2 atan(2) / pi.
    res = paired_ttest([0.0, 0.0], [0.1, 0.3])  # a - b is negative: t = -2
    assert res.t == pytest.approx(-2.0)
    assert res.p_value == pytest.approx(1 - 2 * math.atan(2) / math.pi, rel=1e-9)
    assert res.stars == "" and res.test == "t-test"


def test_two_seeds_never_get_stars():
    # d = [1.0, 1.002]: t = 1001 with df 1, p = 1 - 2 atan(1001) / pi = 6.4e-4 -- "***" by the
    # threshold alone, but two seeds are too few to draw stars from.
    res = paired_ttest([1.0, 1.002], [0.0, 0.0])
    assert res.p_value == pytest.approx(1 - 2 * math.atan(1001) / math.pi, rel=1e-6)
    assert res.p_value < 0.001 and stars(res.p_value) == "***"
    assert MIN_SEEDS_FOR_STARS == 3 and res.stars == "" and "fewer than 3 seeds" in res.note
    assert paired_ttest([1.0, 1.002, 1.001], [0.0, 0.0, 0.0]).stars == "***"  # 3 seeds: stars again


def test_paired_ttest_is_paired_not_independent():
    # Large between-seed spread, constant small improvement: the paired test sees it.
    a = [0.10, 0.50, 0.90, 0.30, 0.70]
    b = [0.11, 0.52, 0.91, 0.32, 0.71]
    res = paired_ttest(a, b)
    # d = [-.01, -.02, -.01, -.02, -.01]: mean -0.014, sd 0.0054772, t = -5.7155 (df 4).
    assert res.t == pytest.approx(-0.014 / (math.sqrt(0.00003) / math.sqrt(5)), rel=1e-6)
    assert res.p_value < 0.01 and res.stars == "**"


def test_zero_variance_and_small_samples():
    same = paired_ttest([0.2, 0.3, 0.4], [0.2, 0.3, 0.4])
    assert same.p_value == 1.0 and same.stars == ""
    # Identical differences: t is undefined (0 / 0 spread); the exact sign-flip test gives
    # p = 2 / 2^3 (all-negative and all-positive are the 2 most extreme of 8 sign patterns).
    shifted = paired_ttest([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert shifted.p_value == pytest.approx(0.25) and shifted.stars == "" and shifted.t is None
    assert shifted.test == "sign-flip" and shifted.mean_diff == pytest.approx(-0.1)
    one = paired_ttest([0.1], [0.2])
    assert one.n == 1 and one.t is None and one.p_value is None and one.stars == ""
    nan = paired_ttest([0.1, float("nan"), None, 0.3], [0.0, 0.5, 0.5, 0.1])
    assert nan.n == 2
    with pytest.raises(ValueError):
        paired_ttest([1, 2], [1])


def test_identical_differences_with_two_seeds_get_no_stars():
    # The review's case: the same shift on both seeds used to give p = 0 and "***".
    res = paired_ttest([0.02, 0.04], [0.12, 0.14])
    assert res.stars == "" and res.p_value == pytest.approx(0.5)
    sig = significance({"at": [0.12, 0.14], "apt": [0.02, 0.04]})
    assert sig.marker == "" and sig.to_dict()["stars"] == ""


@pytest.mark.parametrize("n, p, expected", [(3, 0.25, ""), (5, 0.0625, ""), (6, 0.03125, "*"), (8, 2 / 256, "**"),
                                            (10, 2 / 1024, "**"), (11, 2 / 2048, "***")])
def test_sign_flip_p_for_identical_differences(n, p, expected):
    # Every one of n seeds improves by exactly 0.01: only 2 of the 2^n sign patterns are as extreme.
    a, b = [0.1 + i / 100 for i in range(n)], [0.11 + i / 100 for i in range(n)]
    res = paired_ttest(a, b)
    assert res.test == "sign-flip" and res.p_value == pytest.approx(p) and res.stars == expected


def test_mean_sd_uses_sample_sd():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([0.5]) == (0.5, 0.0)
    assert mean_sd([]) == (None, None)
    assert mean_sd([None, float("nan"), 4.0]) == (4.0, 0.0)


def test_best_baseline_is_the_lowest_mean_non_apt_defense():
    per = {"origin": [0.0, 0.0], "attack": [0.9, 0.8], "pcmf": [0.7, 0.6], "at": [0.5, 0.4], "apt-rand": [0.6, 0.6], "apt": [0.1, 0.0]}
    assert best_baseline(per) == "at"
    # APT-rand counts as a baseline when it is the strongest.
    per["apt-rand"] = [0.3, 0.3]
    assert best_baseline(per) == "apt-rand"
    # Only APT ran: compare with doing nothing.
    assert best_baseline({"origin": [0.0], "attack": [0.9], "apt": [0.1]}) == "attack"
    assert best_baseline({"origin": [0.0], "attack": [0.9], "none": [0.9], "apt": [0.1]}) == "none"


def test_significance_against_best_baseline():
    per = {"origin": [0.0] * 4, "attack": [0.9, 0.8, 0.85, 0.9], "at": [1.0, 2.0, 3.0, 4.0], "apt": [0.0, 0.0, 0.0, 0.0]}
    sig = significance(per)
    assert sig.baseline == "at" and sig.method == "apt"
    assert sig.test.p_value == pytest.approx(0.03047, abs=1e-5)
    assert sig.to_dict()["stars"] == "*"
    assert significance({"origin": [0.0], "attack": [0.5]}) is None


def test_to_dict_is_strict_json():
    import json

    d = paired_ttest([0.1, 0.2, 0.3], [0.2, 0.3, 0.4]).to_dict()
    assert d["t"] is None and d["p_value"] == pytest.approx(0.25) and d["stars"] == ""
    assert d["test"] == "sign-flip" and d["note"]
    json.dumps(d, allow_nan=False)
    json.dumps(paired_ttest([0.1], [0.2]).to_dict(), allow_nan=False)


def test_marker_says_when_apt_is_significantly_worse():
    better = significance({"at": [0.5, 0.6, 0.7, 0.8], "apt": [0.0, 0.0, 0.0, 0.0]})
    assert better.method_better and better.marker == better.test.stars != ""
    worse = significance({"at": [0.0, 0.0, 0.0, 0.0], "apt": [1.0, 2.0, 3.0, 4.0]})
    assert worse.method_better is False and worse.marker == "↑*"
    assert worse.to_dict()["marker"] == "↑*"

"""The Theory page's statements about the paper's Theorems 4.3-4.5, on the pure functions."""
from __future__ import annotations

import dataclasses
import math

from apt_core.theory.bounds import PaperParams, paper_bounds, sample_clean, sample_model
from apt_core.theory.checks import check_theorems, format_bound, precondition_limit, precondition_margin, theorem_notes


def _texts(check) -> str:
    return "\n".join(n.text for n in theorem_notes(check))


def test_undefined_not_inf():
    # gamma = 0.2, eps = 0.5: d gamma^2 = 4 < eps tau, AT's denominator is negative.
    p = PaperParams(gamma=0.2, eps=0.5)
    alpha, tau = sample_model(p)
    assert p.d * p.gamma ** 2 - p.eps * tau < 0
    bound = paper_bounds(p, alpha, tau)["at"]
    assert math.isnan(bound) and format_bound(bound) == "undefined"
    assert format_bound(math.inf) == "undefined" and format_bound(1234.4) == "1,234"
    check = check_theorems(p, n_trials=0)
    assert not check.checks["at"].defined and check.checks["at"].precondition_holds is None
    text = _texts(check)
    assert "Theorem 4.4 (AT) is undefined here" in text and "inf" not in text.replace("information", "")


def test_sample_model_matches_sample_clean():
    p = PaperParams(n=200, d=20)
    s = sample_clean(p, 3)
    assert sample_model(p, 3) == (s.alpha, s.tau)
    assert 0.0 <= s.share_outside_ball <= 1.0
    # u_bar = (1, ..., 1): the clean estimate points along it, <v_hat, u_bar> is about d.
    assert 0.5 * p.d < s.v_dot_ubar < 1.5 * p.d


def test_precondition_margin_and_limit_agree():
    p = PaperParams(gamma=0.5)
    v = 90.0
    limit = precondition_limit(p, v)
    assert abs(precondition_margin(p, v, limit)) < 1e-9
    assert precondition_margin(p, v, limit + 1) < 0 < precondition_margin(p, v, limit - 1)


def test_precondition_failure_is_flagged():
    # A large AT level makes AT's bound exceed n <v_hat, u_bar> / (d gamma^2): the precondition fails there.
    p = PaperParams(gamma=1.0, eps=8.0)
    check = check_theorems(p, n_trials=0)
    at = check.checks["at"]
    assert at.defined and at.bound > check.precondition_limit
    assert at.precondition_holds is False
    assert "Theorem 4.4 (AT)'s precondition fails at its own bound" in _texts(check)
    assert check.checks["standard"].precondition_holds is True


def test_simulation_below_bound_is_flagged_with_the_assumption():
    # gamma = 0.2: the bound is far above what the simulated recommender tolerates (Gaussian users are not in the ball).
    p = PaperParams(n=300, d=50, gamma=0.2)
    check = check_theorems(p, n_trials=2)
    std = check.checks["standard"]
    assert std.precondition_holds is True
    assert std.simulation_below and std.error_at_bound > p.beta
    text = _texts(check)
    assert "falls below Theorem 4.3 (standard training)'s bound" in text
    assert "assumption does not hold for Gaussian users" in text


def test_no_flag_where_the_simulation_is_above_the_bounds():
    p = PaperParams(n=300, d=50, gamma=1.0)
    check = check_theorems(p, n_trials=2)
    for m, b in check.checks.items():
        assert b.defined and not b.simulation_below, m
    assert "assumption does not hold" not in _texts(check)


def test_default_bounds_rank_apt_above_at_and_the_simulation_is_compared():
    # The page's defaults agree with the paper's corollary (APT ahead of AT); the simulation's
    # verdict is stated in words either way.
    p = PaperParams(n=300, d=50)
    check = check_theorems(p, n_trials=2)
    assert check.checks["apt"].bound > check.checks["at"].bound > check.checks["standard"].bound
    text = _texts(check)
    assert "By the bounds APT tolerates more poisoning users than AT" in text
    assert "Our simulation disagrees" in text or "Our simulation agrees" in text
    at_eps = check_theorems(dataclasses.replace(p, eps=0.1), n_trials=0)
    assert "By the bounds APT tolerates fewer poisoning users than AT" in _texts(at_eps)


def test_reused_curve_point_equals_a_fresh_simulation():
    # The page hands check_theorems the n* figure's point at n* itself: it must be the same numbers.
    from apt_core.theory.bounds import bound_curves

    p = PaperParams(n=300, d=50)
    values, _, sims, _, _ = bound_curves(p, "n_star", 2, 0)
    i = list(values).index(p.n_star)
    reused = check_theorems(p, 2, 0, {m: (float(mean[i]), float(sd[i])) for m, (mean, sd) in sims.items()})
    fresh = check_theorems(p, 2, 0)
    assert {m: b.simulated_mean for m, b in reused.checks.items()} == {m: b.simulated_mean for m, b in fresh.checks.items()}

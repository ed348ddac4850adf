"""The Gaussian model of apt_core.theory.simulation: closed forms, their conditions, and the simulation."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from apt_core.errors import ConfigError
from apt_core.theory.simulation import METHODS, TheoryParams, bound_curve, expected_score, rating_moments, simulate, tolerable_fake_users

P = TheoryParams()


def test_rating_moments_follow_the_latent_model():
    a, s = rating_moments(P)
    assert a == pytest.approx(P.mu_norm * P.q_norm * P.cos_angle)
    assert s == pytest.approx(np.sqrt(P.sigma_p**2 * P.q_norm**2 + P.sigma_noise**2))


@pytest.mark.parametrize("method", METHODS)
def test_bound_is_where_expected_score_reaches_tau(method):
    n = tolerable_fake_users(P, method)
    assert expected_score(P, method, n) == pytest.approx(P.tau, abs=1e-6)
    assert expected_score(P, method, 0.9 * n) < P.tau < expected_score(P, method, 1.1 * n)


def test_standard_closed_form_by_hand():
    p = TheoryParams(n_users=100, mu_norm=1.0, q_norm=0.5, cos_angle=1.0, tau=0.75, r_max=1.0)
    # a = 0.5: each fake adds (1 - 0.75) above tau, each real 0.25 below -> 100 fakes.
    assert tolerable_fake_users(p, "standard") == pytest.approx(100.0)


def test_apt_helps_iff_erm_rating_below_threshold():
    a, _ = rating_moments(P)
    below = replace(P, r_plus=0.0, n_erm=50)
    above = replace(P, r_plus=P.tau - a + 0.05, n_erm=50)
    std = tolerable_fake_users(P, "standard")
    assert tolerable_fake_users(below, "apt") > std
    assert tolerable_fake_users(above, "apt") < std
    assert tolerable_fake_users(replace(P, n_erm=0), "apt") == pytest.approx(std)


def test_honest_apt_without_offset_equals_standard_at_the_boundary():
    # With observed statistics the ERM users rate the poisoned mean, which equals tau exactly
    # at the standard bound: no gain (derived; the page states it).
    p = replace(P, erm_stats="observed", r_plus=0.0)
    assert tolerable_fake_users(p, "apt") == pytest.approx(tolerable_fake_users(P, "standard"), rel=1e-6)


def test_at_condition():
    a, s = rating_moments(P)
    from math import erf, sqrt

    c = erf((P.tau - a) / s / sqrt(2))
    helps = c > (P.tau - a) / (P.r_max - P.tau)
    assert (tolerable_fake_users(P, "at") > tolerable_fake_users(P, "standard")) == helps
    wide = replace(P, sigma_p=0.6, sigma_noise=0.5, tau=0.9)  # spread-out real ratings: AT hurts
    assert tolerable_fake_users(wide, "at") < tolerable_fake_users(wide, "standard")
    assert tolerable_fake_users(replace(P, eps=0.0), "at") == pytest.approx(tolerable_fake_users(P, "standard"))


def test_simulation_agrees_with_formulas():
    sims = simulate(P, n_trials=8, random_state=1)
    for m in METHODS:
        bound = tolerable_fake_users(P, m)
        assert abs(sims[m].mean() - bound) < 0.06 * bound + 3 * sims[m].std() / np.sqrt(8), m


def test_simulation_is_seeded():
    a = simulate(P, 3, random_state=5)
    b = simulate(P, 3, random_state=5)
    for m in METHODS:
        np.testing.assert_array_equal(a[m], b[m])


def test_bound_curve_marks_invalid_points_nan():
    curve = bound_curve(P, "tau", np.array([0.3, 0.6, 0.9]))
    assert np.isnan(curve["standard"][0])  # tau below the mean rating: outside the model
    assert np.all(np.isfinite(curve["standard"][1:]))
    assert curve["standard"][2] > curve["standard"][1]


def test_invalid_parameters_raise_config_error():
    with pytest.raises(ConfigError):
        tolerable_fake_users(replace(P, tau=0.2), "standard")
    with pytest.raises(ConfigError):
        tolerable_fake_users(P, "magic")
    with pytest.raises(ConfigError):
        simulate(replace(P, erm_stats="peek"))

"""LiSSA influence (issue 16): the filter formula, the authors' stochastic recursion, its
full-batch expectation and the Lanczos approximation, against direct solves where H's
spectrum is known; and APT's presets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apt_core.defenses import DefenseContext, make_defense
from apt_core.defenses.erm import ERM_PRESETS, item_statistics, settings_for
from apt_core.errors import ConfigError
from apt_core.influence.mf import RatingStructure, influence_vector, lissa_stochastic, mf_hvp, mf_hvp_operator
from apt_core.influence.solvers import LissaSettings, lanczos_filter, lissa_filter, lissa_recursion
from conftest import make_tiny


def _known_spectrum(n: int = 60, seed: int = 0, lo: float = -2e-3, hi: float = 3e-2):
    """A symmetric matrix with eigenvalues spread over [lo, hi] (MF's range at T_pre)."""
    g = torch.Generator().manual_seed(seed)
    Qm, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.linspace(lo, hi, n, dtype=torch.float64)
    A = Qm @ torch.diag(lam) @ Qm.T
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return A, lam, Qm, b


def _split_matvec(A, k):
    def matvec(v):
        y = A @ torch.cat(v)
        return y[:k], y[k:]
    return matvec


@pytest.mark.parametrize("steps, scale, damping", [(1000, 1.0, 0.0), (50, 2.0, 0.01), (0, 1.0, 0.0)])
def test_lissa_filter_is_the_geometric_sum(steps, scale, damping):
    lam = np.array([-0.05, -1e-3, 0.0, 1e-14, 1e-4, 1e-3, 0.02, 0.5, 1.0, 1.5])
    rho = 1.0 - damping - lam / scale
    direct = np.array([sum(r ** k for k in range(steps + 1)) for r in rho]) / scale
    np.testing.assert_allclose(lissa_filter(lam, steps, scale, damping), direct, rtol=1e-9)
    # the two regimes the docstring names (authors' settings)
    f = lissa_filter(np.array([1e-7, 0.5]))
    assert f[0] == pytest.approx(1001, rel=1e-3) and f[1] == pytest.approx(2.0, rel=1e-9)


def test_lissa_recursion_equals_the_filter_on_a_known_spectrum():
    A, lam, Qm, b = _known_spectrum()
    expected = Qm @ (torch.from_numpy(lissa_filter(lam.numpy())) * (Qm.T @ b))
    w = lissa_recursion(_split_matvec(A, 20), (b[:20], b[20:]), LissaSettings(steps=1000))
    torch.testing.assert_close(torch.cat(w), expected, rtol=1e-9, atol=1e-9)
    # and it is not a multiple of b (the spectrum spans 1/1000): the point of issue 16
    cos = float(torch.cat(w) @ b / (torch.linalg.norm(torch.cat(w)) * torch.linalg.norm(b)))
    assert cos < 0.95


def test_lanczos_filter_matches_the_recursion_in_a_few_dozen_products():
    A, lam, Qm, b = _known_spectrum(200, 1)
    expected = Qm @ (torch.from_numpy(lissa_filter(lam.numpy())) * (Qm.T @ b))
    calls = []

    def matvec(v):
        calls.append(1)
        return _split_matvec(A, 50)(v)

    w, info = lanczos_filter(matvec, (b[:50], b[50:]), lambda x: lissa_filter(x), max_iter=40, tol=1e-8)
    assert info.converged and info.iterations == len(calls) <= 40
    assert float(torch.linalg.norm(torch.cat(w) - expected) / torch.linalg.norm(expected)) < 1e-6
    # Ritz values lie inside the spectrum and approach its ends (to 1% of its width here)
    lo, hi = float(lam.min()), float(lam.max())
    assert lo <= info.ritz_min <= lo + 0.01 * (hi - lo) and hi - 0.01 * (hi - lo) <= info.ritz_max <= hi


def test_lanczos_filter_on_an_invariant_subspace_and_zero_vector():
    A = torch.diag(torch.tensor([0.01, 0.02, 0.03], dtype=torch.float64))
    b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    w, info = lanczos_filter(lambda v: (A @ v[0],), (b,), lambda x: 1.0 / x, max_iter=3)
    torch.testing.assert_close(w[0], torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64))
    assert info.iterations == 1 and info.converged
    z, info = lanczos_filter(lambda v: (A @ v[0],), (torch.zeros(3, dtype=torch.float64),), lambda x: x)
    assert info.iterations == 0 and float(z[0].abs().sum()) == 0.0


def _mf_problem(seed: int = 0, dim: int = 4):
    data = make_tiny(30, 20, 0.35, seed)
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(data.n_users, dim, generator=g, dtype=torch.float64) * 0.6
    Q = torch.randn(data.n_items, dim, generator=g, dtype=torch.float64) * 0.6
    return P, Q, torch.from_numpy(data.users), torch.from_numpy(data.items), torch.from_numpy(data.normalised_ratings).double()


def test_stochastic_lissa_full_batch_is_the_recursion_and_is_seeded():
    P, Q, u, i, r = _mf_problem()
    matvec, _, g = mf_hvp_operator(P, Q, u, i, r)
    s = LissaSettings(steps=200, batch_size=10 ** 6)
    full = lissa_recursion(matvec, g, s)
    stoch = lissa_stochastic(P, Q, u, i, r, g, s, seed=3)
    for a, b in zip(full, stoch):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    small = LissaSettings(steps=200, batch_size=64)
    a1 = lissa_stochastic(P, Q, u, i, r, g, small, seed=1)
    a2 = lissa_stochastic(P, Q, u, i, r, g, small, seed=1)
    b1 = lissa_stochastic(P, Q, u, i, r, g, small, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a1, a2))
    assert not all(torch.equal(x, y) for x, y in zip(a1, b1))


def test_stochastic_lissa_stays_close_to_the_full_batch_recursion():
    # Each minibatch Hessian (mean loss over the batch) is an unbiased estimate of the full
    # one, so where H's eigenvalues times the steps are O(1) (as on real data) the stochastic
    # recursion stays near the deterministic one.  A batch Hessian scaled like a sum instead
    # of a mean, or a wrong sign, would be far off.
    P, Q, u, i, r = _mf_problem(1)
    P, Q = P * 0.3, Q * 0.3
    matvec, _, g = mf_hvp_operator(P, Q, u, i, r)
    s = LissaSettings(steps=30, batch_size=len(r) // 3)
    full = torch.cat([t.reshape(-1) for t in lissa_recursion(matvec, g, s)])
    ident = torch.cat([t.reshape(-1) for t in g]) * 31
    for seed in range(3):
        one = torch.cat([t.reshape(-1) for t in lissa_stochastic(P, Q, u, i, r, g, s, seed=seed)])
        err = float(torch.linalg.norm(one - full) / torch.linalg.norm(full))
        assert err < 0.05
        assert err < float(torch.linalg.norm(ident - full) / torch.linalg.norm(full)) / 3


def test_influence_vector_lissa_solvers_agree_on_mf():
    P, Q, u, i, r = _mf_problem(2)
    # scale the problem so that H's spectrum straddles 1/steps, as on real data
    probe = np.arange(5)
    s = LissaSettings(steps=300)
    full = influence_vector(P, Q, u, i, r, probe, solver="lissa-full", lissa=s)
    lz = influence_vector(P, Q, u, i, r, probe, solver="lissa-lanczos", lissa=s, lanczos_max_iter=60, lanczos_tol=1e-10)
    np.testing.assert_allclose(lz.values, full.values, rtol=1e-6, atol=1e-9 * np.abs(full.values).max())
    assert lz.lanczos is not None and lz.lanczos.iterations <= 60
    st = influence_vector(P, Q, u, i, r, probe, solver="lissa", lissa=LissaSettings(steps=300, batch_size=10 ** 6))
    np.testing.assert_allclose(st.values, full.values, rtol=1e-8, atol=1e-12)
    ident = influence_vector(P, Q, u, i, r, probe, solver="identity")
    assert not np.allclose(ident.values * 301, full.values, rtol=1e-2)


def test_lissa_settings_validate():
    for bad in ({"steps": -1}, {"batch_size": 0}, {"scale": 0.0}, {"damping": 1.0}):
        with pytest.raises(ConfigError):
            LissaSettings(**bad)
    with pytest.raises(ConfigError):
        make_defense("apt", lissa_batch_size=0)


# --- presets ---------------------------------------------------------------------------

def test_paper_preset_is_the_default_and_holds_the_authors_code_settings():
    apt = make_defense("apt")
    assert apt.preset == "paper" and apt.solver is None and apt.resolved_solver() == "lissa-lanczos"
    assert (apt.lissa.steps, apt.lissa.batch_size, apt.lissa.scale, apt.lissa.damping) == (1000, 16384, 1.0, 0.0)
    assert apt.single_rating_std is None and apt.resolved_single_rating_std() == "zero"
    assert settings_for("filmtrust", 2011, "paper").t_pre == 4
    assert settings_for("filmtrust", 2011, "lab-v1").t_pre == 5
    assert settings_for("ml-100k", 1682, "paper").t_pre == 15
    # 50 ERM users on the authors' two data sets, fake users or not; 5% elsewhere
    assert apt.n_erm_users(971, "ml-100k") == 50 and apt.n_erm_users(820, "FilmTrust") == 50
    assert apt.n_erm_users(1000, "sample") == 50 and apt.n_erm_users(2000, "other") == 100
    assert make_defense("apt-rand").n_erm_users(820, "filmtrust") == 50


def test_old_behaviour_stays_reachable():
    v1 = make_defense("apt", preset="lab-v1")
    assert v1.resolved_solver() == "identity" and v1.resolved_single_rating_std() == "global"
    assert v1.n_erm_users(943, "ml-100k") == 47  # 5% of the real users (DESIGN.md 6.1)
    assert make_defense("apt", erm_fraction=0.05).n_erm_users(943, "ml-100k") == 47
    assert make_defense("apt", erm_users=7, preset="lab-v1").n_erm_users(971, "ml-100k") == 7
    assert make_defense("apt", solver="identity").resolved_solver() == "identity"
    with pytest.raises(ConfigError):
        make_defense("apt", erm_users=5, erm_fraction=0.1)
    with pytest.raises(ConfigError):
        make_defense("apt", preset="nope")
    with pytest.raises(ConfigError):
        make_defense("apt", single_rating_std="median")
    assert set(ERM_PRESETS) == {"paper", "lab-v1"}


def test_single_rating_std():
    data = make_tiny(20, 15, 0.3, 0)
    keep = ~((data.items == 3) & (np.arange(len(data.items)) != np.flatnonzero(data.items == 3)[0]))
    from apt_core.data.dataset import Interactions
    one = Interactions(data.users[keep], data.items[keep], data.ratings[keep], data.n_users, data.n_items, data.scale)
    assert one.item_counts[3] == 1
    _, s0 = item_statistics(one, "clean", "zero")
    _, sg = item_statistics(one, "clean", "global")
    assert s0[3] == 0.0 and sg[3] == pytest.approx(float(one.ratings.std()))
    multi = one.item_counts > 1
    np.testing.assert_allclose(s0[multi], sg[multi])


def test_apt_fit_records_preset_and_lanczos_diagnostics():
    from apt_core.models.mf import MFConfig

    data = make_tiny(60, 40, 0.3, 1)
    apt = make_defense("apt", t_pre=3, t_inter=3, m_star=10)
    res = apt.fit(data, DefenseContext(MFConfig(dim=8, epochs=7, batch_size=256, lr=0.5), "cpu", 0, "tiny", data))
    d = res.diagnostics
    assert d["preset"] == "paper" and d["n_erm_users"] == 3 and len(d["rounds"]) == 2
    assert all(r["solver"] == "lissa-lanczos" and 1 <= r["lanczos_iterations"] <= 40 for r in d["rounds"])

"""Theory: tolerable fake users for standard training, AT and APT in a Gaussian model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from apt_core.plots.explore import theory_figure
from apt_core.theory import METHODS, TheoryParams, bound_curve, rating_moments, simulate_curve, tolerable_fake_users
from pages._common import download, guard

AXES = {
    "n_erm": ("ERM users n_e (APT)", 0, 300),
    "eps": ("AT perturbation radius ε", 0.0, 0.5),
    "tau": ("top-K threshold τ (normalised score)", 0.5, 0.95),
    "sigma_p": ("spread of user factors σ_p", 0.01, 0.6),
    "r_plus": ("APT rating offset r⁺", -0.2, 0.3),
}


@st.cache_data(show_spinner=False, max_entries=64)
def compute(params: dict, axis: str, n_points: int, n_trials: int, seed: int):
    p = TheoryParams(**params)
    _, lo, hi = AXES[axis]
    values = np.linspace(lo, hi, n_points)
    if axis == "n_erm":
        values = np.unique(np.round(values)).astype(int)
    bounds = bound_curve(p, axis, values)
    sims = simulate_curve(p, axis, values, n_trials=n_trials, random_state=seed) if n_trials > 0 else None
    return values, bounds, sims


def body() -> None:
    st.title("Theory")
    st.warning(
        "**Derived by us, not quoted from the paper.** The paper's section 4 bounds (Theorems 4.3-4.5) on the "
        "number of fake users that standard training, AT and APT tolerate could not be retrieved while building "
        "this page. The formulas below are our own derivation in a Gaussian latent-factor model of the same kind "
        "(see `apt_core/theory.py`); the Monte-Carlo points simulate that model with finite samples."
    )
    st.markdown(
        r"""
**Model** (normalised ratings, maximum $r_{max}=1$):
- real users' factors $p_u \sim N(\mu_p, \sigma_p^2 I_d)$, the target's factor $q_t$; a real user rates the target
  $r_u = p_u \cdot q_t + \text{noise}$, so $r_u \sim N(a, s^2)$ with $a = \mu_p \cdot q_t$;
- the recommender fits the target's score for the average user by least squares; the target enters the top-K once
  the score reaches $\tau$; $n_f$ fake users rate the target $r_{max}$.

**Tolerable fake users** (our derivation):
- standard training: $N_{std} = n(\tau - a)/(r_{max} - \tau)$;
- AT (worst-case perturbation $\varepsilon$ of each prediction): $N_{AT} = n[(\tau - a) + \varepsilon c]/(r_{max} - \tau + \varepsilon)$,
  $c = 2\Phi((\tau - a)/s) - 1$; better than standard only if $c > (\tau - a)/(r_{max} - \tau)$;
- APT ($n_e$ ERM users rating the target $a + r^+$, clean statistics):
  $N_{APT} = [n(\tau - a) + n_e(\tau - a - r^+)]/(r_{max} - \tau)$; better only if $a + r^+ < \tau$.
  With observed (poisoned) statistics the ERM users rate the poisoned mean, which equals $\tau$ at the standard
  bound: without $r^+ < 0$ they add nothing there.
"""
    )
    c = st.columns(4)
    n_users = c[0].slider("real users n", 50, 2000, 943, 50, key="th-n")
    tau = c[1].slider("threshold τ", 0.5, 0.95, 0.6, 0.01, key="th-tau")
    eps = c[2].slider("AT radius ε", 0.0, 0.5, 0.1, 0.01, key="th-eps")
    n_erm = c[3].slider("ERM users n_e", 0, 300, 47, 1, key="th-nerm")
    c = st.columns(4)
    sigma_p = c[0].slider("σ_p (user factor spread)", 0.01, 0.6, 0.15, 0.01, key="th-sp")
    r_plus = c[1].slider("r⁺ (APT offset)", -0.2, 0.3, 0.0, 0.01, key="th-rplus")
    erm_stats = c[2].radio("ERM statistics", ["clean", "observed"], key="th-stats", horizontal=True)
    n_trials = c[3].slider("Monte-Carlo trials per point (0 = off)", 0, 50, 10, 5, key="th-trials")
    axis = st.selectbox("x axis", list(AXES), format_func=lambda a: AXES[a][0], key="th-axis")
    p = TheoryParams(n_users=n_users, tau=tau, eps=eps, n_erm=n_erm, sigma_p=sigma_p, r_plus=r_plus, erm_stats=erm_stats)
    p.validate()
    a, s = rating_moments(p)
    cols = st.columns(4)
    cols[0].metric("target's mean rating a", f"{a:.3f}")
    for col, m in zip(cols[1:], METHODS):
        col.metric(f"tolerated: {m}", f"{tolerable_fake_users(p, m):.0f}")
    values, bounds, sims = compute(dataclasses.asdict(p), axis, 11, n_trials, 0)
    st.plotly_chart(theory_figure(values, bounds, sims, AXES[axis][0]), width="stretch", theme=None)
    frame = pd.DataFrame({AXES[axis][0]: values, **{f"{m} (formula)": bounds[m] for m in METHODS}})
    if sims:
        for m in METHODS:
            frame[f"{m} (simulated mean)"] = sims[m][0]
            frame[f"{m} (simulated sd)"] = sims[m][1]
    st.dataframe(frame.round(2), hide_index=True, width="stretch")
    download(frame, f"theory_{axis}.csv")


guard(body)

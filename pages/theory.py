"""Theory: tolerable fake users for standard training, AT and APT in a Gaussian model."""
from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from apt_core.plots.explore import theory_figure
from apt_core.theory.simulation import METHODS, TheoryParams, curves_over, rating_moments, tolerable_fake_users
from apt_core.theory.bounds import PaperParams, bound_curves, paper_bounds, sample_model, simulation_bytes, success_probability
from apt_core.plots.explore import paper_bounds_figure
from apt_core.theory.checks import TheoremNote, check_theorems, format_bound, theorem_notes
from pages._shared.display import download
from pages._shared.page_guard import guard
from pages._shared.runs import budgeted, check_memory_budget
from pages._shared.settings import chart_scale, kept_value, presenter
from pages._shared.url_state import url_state

AXES = {
    "n_erm": ("ERM users n_e (APT)", 0, 300),
    "eps": ("AT perturbation radius ε", 0.0, 0.5),
    "tau": ("top-K threshold τ (normalised score)", 0.5, 0.95),
    "sigma_p": ("spread of user factors σ_p", 0.01, 0.6),
    "r_plus": ("APT rating offset r⁺", -0.2, 0.3),
}


@st.cache_data(show_spinner=False, max_entries=64)
def compute(params: dict, axis: str, n_points: int, n_trials: int, seed: int):
    _, lo, hi = AXES[axis]
    with budgeted("the Theory page's simulation (our model)"):  # a served dashboard: queued, timed
        return curves_over(TheoryParams(**params), axis, lo, hi, n_points, n_trials, seed)


@st.cache_data(show_spinner=False, max_entries=64)
def paper_curves(params: dict, axis: str, n_trials: int, seed: int):
    """The paper's three bounds and our simulation against n* or epsilon."""
    with budgeted("the Theory page's simulation", simulation_bytes(PaperParams(**params))):  # refused over the memory budget
        return bound_curves(PaperParams(**params), axis, n_trials, seed)


@st.cache_data(show_spinner=False, max_entries=64)
def theorem_check(params: dict, n_trials: int, seed: int) -> list[TheoremNote]:
    """The theorems checked at the page's setting, in words (undefined bounds, precondition, our simulation)."""
    p = PaperParams(**params)
    simulated = None
    if n_trials > 0:  # the n* figure's curve has this very point (same trials, same seed): reuse it
        values, _, sims, _, _ = paper_curves(params, "n_star", n_trials, seed)
        at = [i for i, v in enumerate(values) if int(v) == p.n_star]
        simulated = {m: (float(mean[at[0]]), float(sd[at[0]])) for m, (mean, sd) in sims.items()} if at and sims else None
    with budgeted("the Theory page's checks", simulation_bytes(p)):
        return theorem_notes(check_theorems(p, n_trials, seed, simulated))


def body() -> None:
    st.title("Theory")
    url_state(["pt-n", "pt-d", "pt-sigma", "pt-beta", "pt-gamma", "pt-eps", "pt-nstar", "pt-trials"])
    # The knobs and the two figures first (one screen at 1280x720), the paper's setting and theorems below them.
    knobs, figures, numbers = st.container(), st.container(), st.container()
    st.markdown(
        r"""
**The paper's setting** (Wu et al. 2021, Section 4). Ratings are binary, $r \in \{-1, +1\}$ (recommend or not).
Users' embeddings follow a Gaussian model: $r$ uniform on $\pm 1$ and $u \sim N(r\,\bar u, \sigma^2 I_d)$.
The *Gaussian recommender* estimates one item embedding $\hat v = \frac1n \sum_i r_i u_i$ and recommends when
$\langle \hat v, u\rangle > 0$; its error is $\beta = P[\mathrm{sign}\langle \hat v, u\rangle \ne r]$.
$n$ real users, $n'$ poisoning users with $\max\|u\|_\infty = \gamma$, $\alpha = \|\hat v\|_2$,
$\tau = \min_i \|u_i\|$ (smallest real-user norm), $\varepsilon$ = AT's perturbation level, $n^*$ = APT's ERM users.
**The theorems' assumptions**: $\|\bar u\| = \sqrt d$; **every user, the test user included, lies in the γ-ball**
($\|u\|_\infty \le \gamma$), which gives $\langle u, u'\rangle \ge -d\gamma^2$ for any two users; and the precondition
$\langle \hat v, \bar u\rangle - n' d\gamma^2/n \ge 0$. Gaussian users are unbounded, so the γ-ball assumption does not hold in
the Gaussian model itself (the checks below show where that matters).
With $C = \alpha\sqrt d\,\frac{2\sqrt n - 1}{2\sqrt n + 4\sigma} - \alpha\sigma\sqrt{2\log(1/\beta)}$, under these assumptions the
error stays at most $\beta$ (with probability at least $1 - 2e^{-d/(8(\sigma^2+1))}$) as long as:

- **Theorem 4.3 (standard training)**: $n' \le \frac{n}{d\gamma^2}\, C$;
- **Theorem 4.4 (adversarial training)**: $n' \le \frac{n}{d\gamma^2 - \varepsilon\tau}\,(C + \varepsilon\tau)$, undefined where $d\gamma^2 \le \varepsilon\tau$ — the paper: AT raises the tolerable poisoning;
- **Theorem 4.5 (APT)**: $n' \le \frac{1}{d\gamma^2}\,(nC + n^*\gamma\tau)$ — the paper: APT raises it by $n^*\tau/(d\gamma)$.

The paper's corollary: APT tolerates more than AT when $n^* > (n + n')\,\varepsilon/\gamma$ (the share of ERM users exceeds the share of parameter perturbation).

**Where AT's and APT's gains come from.** In the proofs the defender sees the test user $u$: AT's estimate is
$\hat v_{AT} = \hat v + \mathrm{sgn}(r_u)\,\varepsilon$ (a shift towards the test user's own label), worth $\varepsilon\tau$ in
$\langle \hat v, u\rangle$; the ERM users add $n^*\|u\|_1\gamma \ge n^*\gamma\tau$ (each placed at $\gamma\,\mathrm{sgn}(u)$).
A recommender does not know its test user when it trains, and neither AT nor APT in our simulation does.
"""
    )
    # Presenter mode keeps the three knobs the theorems compare (poisoning norm, AT level, ERM
    # users) and holds the model's other settings at their last values, listed in a caption.
    # Each hidden value is clamped into its slider's range: in presenter mode no widget checks
    # what a URL put there.
    with knobs:
        hidden = {"pt-n": ("real users n", 943, 100, 2000), "pt-d": ("dimension d", 100, 10, 300),
                  "pt-sigma": ("spread σ", 1.0, 0.2, 3.0), "pt-beta": ("tolerated error β", 0.1, 0.01, 0.4),
                  "pt-trials": ("simulation trials per point", 5, 0, 20)}
        if presenter():
            n, d, sigma, beta, n_trials = (kept_value(k, v, lo, hi) for k, (_, v, lo, hi) in hidden.items())
            st.caption("Model settings (presenter mode hides them): " + ", ".join(
                f"{label} = {kept_value(k, v, lo, hi):g}" for k, (label, v, lo, hi) in hidden.items()))
        else:
            c = st.columns(4)
            n = c[0].slider("real users n", 100, 2000, 943, 1, key="pt-n")
            d = c[1].slider("dimension d", 10, 300, 100, 10, key="pt-d")
            sigma = c[2].slider("spread σ", 0.2, 3.0, 1.0, 0.1, key="pt-sigma")
            beta = c[3].slider("tolerated error β", 0.01, 0.4, 0.1, 0.01, key="pt-beta")
        c = st.columns(3 if presenter() else 4)
        gamma = c[0].slider("poisoning norm γ", 0.2, 3.0, 1.0, 0.1, key="pt-gamma")
        # Default 0.02: the bounds then rank APT above AT, as the paper's corollary says for n* = 47.
        eps = c[1].slider("AT level ε", 0.0, 1.0, 0.02, 0.01, key="pt-eps")
        n_star = c[2].slider("ERM users n*", 0, 500, 47, 1, key="pt-nstar")
        if not presenter():
            n_trials = c[3].slider("simulation trials per point (0 = off)", 0, 20, 5, 1, key="pt-trials")
    p = PaperParams(n=n, d=d, sigma=sigma, beta=beta, gamma=gamma, eps=eps, n_star=n_star)
    p.validate()
    check_memory_budget("the Theory page's sampling", simulation_bytes(p))
    alpha, tau = sample_model(p, 0)
    bounds = paper_bounds(p, alpha, tau)
    with numbers:
        cols = st.columns(4)
        # Short labels: at presenter-mode text size a longer one is cut off in a quarter-width column.
        cols[0].metric("bounds hold w.p.", f"{max(0.0, success_probability(p)):.3f}",
                       help="The probability the bounds hold: 1 − 2·exp(−d / (8(σ²+1))); 0 means the theorems say nothing at this d and σ")
        for col, (m, label, name) in zip(cols[1:], [("standard", "Thm 4.3", "standard training"), ("at", "Thm 4.4", "adversarial training (AT)"),
                                                    ("apt", "Thm 4.5", "APT")]):
            col.metric(f"{label}: n' ≤", format_bound(bounds[m]), help=f"{name}: the largest number of poisoning users n' the theorem tolerates "
                       "(undefined: the formula has no value at these settings)")
        st.caption(f"α = ‖v̂‖ = {alpha:.2f} and τ = {tau:.2f} come from one sampled clean data set of this model. "
                   "A negative bound means the theorem guarantees nothing for these settings.")
    for note in theorem_check(dataclasses.asdict(p), n_trials, 0):
        (st.warning if note.warning else st.info)(note.text)
    st.warning("**The simulation is ours**, not the paper's: ū = (1, …, 1); each poisoning user is r = +1, u = −γ(1, …, 1); "
               "AT is the ε-adversarial mean (coordinates shrunk by ε); APT's ERM users are fresh users labelled by the current model "
               "(neither sees the test user). "
               "The error of each fitted v̂ is computed exactly; the largest n' with error ≤ β is found by bisection.")
    with figures:
        # Presenter mode: one figure a row (at 18 px the six-entry legend squeezed a half-width plot to ~80 px).
        left, right = (st.container(), st.container()) if presenter() else st.columns(2)
        for col, axis, label in ((left, "n_star", "ERM users n*"), (right, "eps", "AT level ε")):
            values, curves, sims, _, _ = paper_curves(dataclasses.asdict(p), axis, n_trials, 0)
            col.plotly_chart(paper_bounds_figure(values, curves, sims, label, f"Tolerable poisoning against {label}", font_scale=chart_scale(),
                                                 height=410 if presenter() else 440), width="stretch", theme=None)
    if not presenter():  # our own model is for a closer look, not for the projector
        with st.expander("Our own model (not the paper's): a latent-factor rating model with a top-K threshold"):
            own_model()


def own_model() -> None:
    st.markdown(
        r"""
**Model** (ours; normalised ratings, maximum $r_{max}=1$):
- real users' factors $p_u \sim N(\mu_p, \sigma_p^2 I_d)$, the target's factor $q_t$; a real user rates the target
  $r_u = p_u \cdot q_t + \text{noise}$, so $r_u \sim N(a, s^2)$ with $a = \mu_p \cdot q_t$;
- the recommender fits the target's score for the average user by least squares; the target enters the top-K once
  the score reaches $\tau$; $n_f$ fake users rate the target $r_{max}$.

**Tolerable fake users** (our derivation):
- standard training: $N_{std} = n(\tau - a)/(r_{max} - \tau)$;
- AT: $N_{AT} = n[(\tau - a) + \varepsilon c]/(r_{max} - \tau + \varepsilon)$, $c = 2\Phi((\tau - a)/s) - 1$;
- APT ($n_e$ ERM users rating the target $a + r^+$, clean statistics): $N_{APT} = [n(\tau - a) + n_e(\tau - a - r^+)]/(r_{max} - \tau)$.
  Defaults follow the paper where it gives a value ($r^+ = 0.2$, 5% ERM users).
"""
    )
    c = st.columns(4)
    n_users = c[0].slider("real users n", 50, 2000, 943, 50, key="th-n")
    tau = c[1].slider("threshold τ", 0.5, 0.95, 0.6, 0.01, key="th-tau")
    eps = c[2].slider("AT radius ε", 0.0, 0.5, 0.1, 0.01, key="th-eps")
    n_erm = c[3].slider("ERM users n_e", 0, 300, 47, 1, key="th-nerm")
    c = st.columns(4)
    sigma_p = c[0].slider("σ_p (user factor spread)", 0.01, 0.6, 0.15, 0.01, key="th-sp")
    r_plus = c[1].slider("r⁺ (APT offset)", -0.2, 0.3, 0.2, 0.01, key="th-rplus")
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
    st.plotly_chart(theory_figure(values, bounds, sims, AXES[axis][0], title="Our model: tolerable fake users, formula (lines) vs simulation (points ± sd)"), width="stretch", theme=None)
    frame = pd.DataFrame({AXES[axis][0]: values, **{f"{m} (formula)": bounds[m] for m in METHODS}})
    if sims:
        for m in METHODS:
            frame[f"{m} (simulated mean)"] = sims[m][0]
            frame[f"{m} (simulated sd)"] = sims[m][1]
    st.dataframe(frame.round(2), hide_index=True, width="stretch")
    download(frame, f"theory_{axis}.csv")


guard(body)

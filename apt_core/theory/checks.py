"""Where the paper's Theorems 4.3-4.5 hold in their own Gaussian model, and where they say nothing.

The Theory page states the bounds (:mod:`apt_core.theory.bounds`); this module checks them at one
setting, in words computed from the numbers:

* a bound is **undefined** where its formula has no meaning (AT's denominator d gamma^2 - eps tau
  not positive): shown as "undefined", never as an infinite tolerance;
* the **precondition** <v_hat, u_bar> - n' d gamma^2 / n >= 0 is evaluated at n' = the bound: where
  it fails, the theorem covers n' only up to n <v_hat, u_bar> / (d gamma^2);
* where our simulation of the same recommender tolerates fewer poisoning users than a bound, the
  bound's assumption (every user, the test user included, in the gamma-ball, hence
  <u, u'> >= -d gamma^2) does not hold for Gaussian users: the note says so;
* the order of the three methods by the bounds and by our simulation, and where they disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from apt_core.theory.bounds import BOUND_METHODS, CleanSample, PaperParams, paper_bounds, sample_clean, simulate_tolerable, simulated_error

THEOREM_LABELS = {"standard": "Theorem 4.3 (standard training)", "at": "Theorem 4.4 (AT)", "apt": "Theorem 4.5 (APT)"}
SIM_LABELS = {"standard": "standard training", "at": "AT", "apt": "APT"}


def format_bound(value: float) -> str:
    """A bound as the page shows it: "undefined" where the theorem's formula has no value (NaN or infinite)."""
    return "undefined" if not math.isfinite(value) else f"{value:,.0f}"


def precondition_margin(p: PaperParams, v_dot_ubar: float, n_prime: float) -> float:
    """The precondition's left side <v_hat, u_bar> - n' d gamma^2 / n (the theorems need it >= 0)."""
    return v_dot_ubar - n_prime * p.d * p.gamma ** 2 / p.n


def precondition_limit(p: PaperParams, v_dot_ubar: float) -> float:
    """The largest n' for which the precondition holds: n <v_hat, u_bar> / (d gamma^2)."""
    return max(0.0, p.n * v_dot_ubar / (p.d * p.gamma ** 2))


@dataclass(frozen=True)
class BoundCheck:
    """One theorem at one setting: its bound, its precondition there, and our simulation beside it."""

    method: str
    bound: float  # NaN: undefined
    precondition_margin: float | None  # at n' = bound; None where the bound is undefined or negative
    simulated_mean: float | None  # our simulation's tolerable n' (None: simulation off)
    simulated_sd: float | None
    error_at_bound: float | None  # our simulation's error at n' = bound, mean over the trials

    @property
    def defined(self) -> bool:
        return math.isfinite(self.bound)

    @property
    def precondition_holds(self) -> bool | None:
        return None if self.precondition_margin is None else self.precondition_margin >= 0

    @property
    def simulation_below(self) -> bool:
        """True where our simulation tolerates clearly fewer poisoning users than the bound promises."""
        if self.simulated_mean is None or not self.defined or self.bound <= 0:
            return False
        return self.simulated_mean + 2 * (self.simulated_sd or 0.0) < self.bound


@dataclass(frozen=True)
class TheoremCheck:
    """The three theorems checked at one setting (:func:`check_theorems`)."""

    params: PaperParams
    sample: CleanSample
    checks: dict[str, BoundCheck]

    @property
    def precondition_limit(self) -> float:
        return precondition_limit(self.params, self.sample.v_dot_ubar)


def check_theorems(p: PaperParams, n_trials: int = 5, random_state: int = 0,
                   simulated: dict[str, tuple[float, float]] | None = None) -> TheoremCheck:
    """Bounds, precondition and (when ``n_trials`` > 0) our simulation at one setting ``p``.

    ``simulated``: (mean, sd) per method already simulated at ``p`` with the same trials and seed
    (a point of :func:`~apt_core.theory.bounds.bound_curves`), so the page does not simulate twice.
    """
    p.validate()
    sample = sample_clean(p, random_state)
    bounds = paper_bounds(p, sample.alpha, sample.tau)
    checks = {}
    for m in BOUND_METHODS:
        bound = bounds[m]
        usable = math.isfinite(bound) and bound >= 0
        margin = precondition_margin(p, sample.v_dot_ubar, bound) if usable else None
        mean = sd = err = None
        if n_trials > 0:
            mean, sd = simulated[m] if simulated and m in simulated else simulate_tolerable(p, m, n_trials, random_state)
            if usable:
                rng = np.random.default_rng(random_state + 1)
                err = float(np.mean([simulated_error(p, m, int(bound), rng) for _ in range(n_trials)]))
        checks[m] = BoundCheck(m, bound, margin, mean, sd, err)
    return TheoremCheck(p, sample, checks)


def _same(a: BoundCheck, b: BoundCheck, resolution: float) -> bool:
    """Whether two simulated tolerances differ by no more than their spread and the bisection's step."""
    spread = 2 * math.hypot(a.simulated_sd or 0.0, b.simulated_sd or 0.0) + resolution
    return abs((a.simulated_mean or 0.0) - (b.simulated_mean or 0.0)) <= spread


@dataclass(frozen=True)
class TheoremNote:
    """One finding in words: ``warning`` where a theorem says nothing or our simulation contradicts it."""

    text: str
    warning: bool = True


def theorem_notes(check: TheoremCheck) -> list[TheoremNote]:
    """What the numbers at this setting say about the theorems, one Markdown sentence or two per finding."""
    p, s, c = check.params, check.sample, check.checks
    notes: list[TheoremNote] = []
    for m in BOUND_METHODS:
        b = c[m]
        label = THEOREM_LABELS[m]
        if not b.defined:
            den = p.d * p.gamma ** 2 - p.eps * s.tau
            notes.append(TheoremNote(f"**{label} is undefined here**: its denominator dγ² − ετ = {p.d * p.gamma ** 2:.2f} − {p.eps:g}·{s.tau:.2f} = "
                         f"{den:.2f} is not positive, so the theorem says nothing at these settings (not that any n′ is tolerated)."))
            continue
        if b.bound < 0:
            notes.append(TheoremNote(f"**{label}'s bound is negative** ({format_bound(b.bound)}): it guarantees nothing at these settings."))
            continue
        if b.precondition_holds is False:
            notes.append(TheoremNote(f"**{label}'s precondition fails at its own bound**: ⟨v̂,ū⟩ − n′dγ²/n = {s.v_dot_ubar:.1f} − "
                         f"{format_bound(b.bound)}·{p.d * p.gamma ** 2:g}/{p.n} = {b.precondition_margin:.1f} < 0, so the theorem "
                         f"covers n′ only up to {format_bound(check.precondition_limit)}."))
        if b.simulation_below:
            where = "the precondition holds there" if b.precondition_holds else "the precondition fails there too"
            notes.append(TheoremNote(f"**Our simulation falls below {label}'s bound**: it tolerates {b.simulated_mean:,.0f} ± {b.simulated_sd:,.0f} "
                         f"poisoning users, the bound says {format_bound(b.bound)}; at n′ = {format_bound(b.bound)} its error is "
                         f"{b.error_at_bound:.2f} > β = {p.beta:g} ({where}). **The assumption does not hold for Gaussian users**: the "
                         f"proof needs every user, the test user included, inside the γ-ball (so ⟨u, u′⟩ ≥ −dγ²), but "
                         f"{s.share_outside_ball:.0%} of the sampled real users have a coordinate beyond γ = {p.gamma:g}."
                         + {"at": " Besides, the proof's AT sees the test user (v̂ + sgn(r_u)·ε); ours shrinks v̂ by ε instead.",
                            "apt": " Besides, the proof's ERM users are placed for the test user (n*‖u‖₁γ); ours are not."}.get(m, "")))
    std, at, apt = c["standard"], c["at"], c["apt"]
    if at.defined and apt.defined:
        more = "more" if apt.bound > at.bound else "fewer"
        notes.append(TheoremNote(f"By the bounds APT tolerates {more} poisoning users than AT ({format_bound(apt.bound)} against "
                     f"{format_bound(at.bound)}); the paper's corollary puts APT ahead when n* > (n + n′)ε/γ = "
                     f"{(p.n + at.bound) * p.eps / p.gamma:.0f} (n′ = AT's bound), here n* = {p.n_star}.", warning=False))
    if std.simulated_mean is not None:
        resolution = max(1, max(5 * p.n, math.ceil(2 * p.n / p.gamma)) // 512)
        words = []
        if at.defined and at.bound > std.bound and not _same(at, std, resolution) and at.simulated_mean < std.simulated_mean:
            words.append(f"its AT tolerates fewer poisoning users than standard training ({at.simulated_mean:,.0f} against "
                         f"{std.simulated_mean:,.0f}) where Theorem 4.4 says AT raises the tolerance")
        if _same(apt, std, resolution):
            gain = apt.bound - std.bound
            words.append(f"its APT tolerates about as many as standard training ({apt.simulated_mean:,.0f} against "
                         f"{std.simulated_mean:,.0f}; the simulation resolves steps of {resolution}) where Theorem 4.5 adds n*τ/(dγ) = {gain:.1f}")
        elif apt.simulated_mean < std.simulated_mean:
            words.append(f"its APT tolerates fewer than standard training ({apt.simulated_mean:,.0f} against {std.simulated_mean:,.0f})")
        if words:
            notes.append(TheoremNote("**Our simulation disagrees with the theorem text**: " + "; ".join(words) + ". The theorems' "
                                     "gains need a defender who sees the test user (above); ours does not."))
        else:
            notes.append(TheoremNote("Our simulation agrees with the theorems' direction here: AT and APT tolerate at least as "
                                     "many poisoning users as standard training.", warning=False))
    return notes

"""The paper's bounds (Wu et al., SIGIR 2021, Section 4, Theorems 4.3-4.5) and a Monte-Carlo
simulation of the same Gaussian recommender.

Setting (the paper's Definitions 4.1-4.2): binary ratings r in {-1, +1}; user embeddings from
a (u_bar, sigma)-Gaussian model, r uniform on +-1 and u ~ N(r u_bar, sigma^2 I_d).  The
"Gaussian recommender" estimates one item embedding v_hat = (1/n) sum_i r_i u_i and predicts
sign(<v_hat, u>); its error is beta = P[sign(<v_hat, u>) != r].  n' poisoning users lie in the
ball with max |u|_inf = gamma; alpha = |v_hat|_2; tau = min_i |u_i| (smallest real-user norm);
epsilon = AT's perturbation level; n* = APT's ERM users.  With
C = alpha sqrt(d) (2 sqrt(n) - 1) / (2 sqrt(n) + 4 sigma) - alpha sigma sqrt(2 log(1/beta)),
the largest tolerable n' (error at most beta, with probability >= 1 - 2 exp(-d / (8 (sigma^2 + 1)))) is

* Theorem 4.3 (standard training): n' <= n C / (d gamma^2);
* Theorem 4.4 (adversarial training): n' <= n (C + eps tau) / (d gamma^2 - eps tau);
* Theorem 4.5 (APT): n' <= (n C + n* gamma tau) / (d gamma^2).

The three rest on assumptions the proofs use: |u_bar| = sqrt(d); every user, the test user
included, lies in the gamma-ball, which gives <u, u'> >= -d gamma^2 for any two users (the
worst-case poisoning term -n' d gamma^2); and the precondition <v_hat, u_bar> - n' d gamma^2 / n >= 0.
Gaussian users are unbounded, so the gamma-ball assumption does not hold in the Gaussian model
itself: where gamma is small beside a user's coordinates (about 1 +- sigma) a bound can exceed
what the recommender tolerates (:func:`check_theorems` finds where).  The gains of AT and APT
in the proofs come from the defender seeing the test user u: AT's estimate is
v_hat_AT = v_hat + sgn(r_u) eps (a shift towards u's own label), and the ERM users add
n* |u|_1 gamma to <v_hat, u> (each ERM user placed at gamma sgn(u)); |u|_1 >= |u|_2 >= tau gives
the terms eps tau and n* gamma tau.

:func:`paper_bounds` evaluates exactly these (AT's as NaN, "undefined", where its denominator
d gamma^2 - eps tau is not positive).  The simulation (:func:`simulate_tolerable`) is
**ours**: the paper states the bounds, not a simulation.  Our choices, labelled as such in
the dashboard: u_bar = (1, ..., 1) (so |u_bar| = sqrt(d), the scale of the paper's Lemma A.2);
the worst-case poisoning user is r = +1, u = -gamma (1, ..., 1) (max |u|_inf = gamma, pulling
v_hat away from u_bar); AT is the l_inf-adversarial version of the mean estimator (each
training pair perturbed by eps against its label: v_hat shrinks by eps per coordinate,
soft-thresholding); APT's n* ERM users are fresh users labelled by the current model
(the label that minimises the empirical risk), clipped to the gamma-ball.  The error of a
fitted v_hat is exact: beta = Phi(-<v_hat, u_bar> / (sigma |v_hat|)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from apt_core.errors import ConfigError, check_deadline

BOUND_METHODS = ("standard", "at", "apt")


@dataclass(frozen=True)
class PaperParams:
    """The quantities in the paper's Theorems 4.3-4.5."""

    n: int = 943  # real users (ML-100K's count)
    d: int = 100  # embedding dimension (large enough for the bounds' probability to be positive)
    sigma: float = 1.0  # spread of the Gaussian model
    beta: float = 0.1  # tolerated recommendation error
    gamma: float = 1.0  # max |u|_inf of a poisoning user
    # AT's perturbation level.  0.02 (not 0.1) so that the defaults sit where the paper's corollary
    # puts APT ahead of AT (n* > (n + n') eps / gamma): at 0.1 the bounds ranked AT above APT,
    # against the theorem text the page quotes.
    eps: float = 0.02
    n_star: int = 47  # APT's ERM users (5% of n)

    def validate(self) -> None:
        if self.n < 1 or self.d < 1:
            raise ConfigError("n and d must be at least 1")
        if not (0 < self.beta < 0.5):
            raise ConfigError(f"beta must lie in (0, 0.5), got {self.beta}")
        if self.sigma <= 0 or self.gamma <= 0 or self.eps < 0 or self.n_star < 0:
            raise ConfigError("sigma and gamma must be positive; eps and n* non-negative")


@dataclass(frozen=True)
class CleanSample:
    """What the bounds read from one sampled clean data set of the Gaussian model (u_bar = (1, ..., 1))."""

    alpha: float  # |v_hat|_2
    tau: float  # the smallest real-user norm
    v_dot_ubar: float  # <v_hat, u_bar>, the left side of the precondition at n' = 0
    share_outside_ball: float  # share of real users with a coordinate beyond gamma (the assumption wants 0)


def sample_clean(p: PaperParams, random_state: int = 0) -> CleanSample:
    """One sampled clean data set: alpha, tau, <v_hat, u_bar> and how many users break the gamma-ball assumption."""
    rng = np.random.default_rng(random_state)
    r = rng.choice([-1.0, 1.0], size=p.n)
    u = r[:, None] * np.ones(p.d) + p.sigma * rng.standard_normal((p.n, p.d))
    v = (r[:, None] * u).mean(axis=0)
    outside = float((np.abs(u).max(axis=1) > p.gamma).mean())
    return CleanSample(float(np.linalg.norm(v)), float(np.linalg.norm(u, axis=1).min()), float(v.sum()), outside)


def sample_model(p: PaperParams, random_state: int = 0) -> tuple[float, float]:
    """(alpha, tau) of one sampled clean data set: |v_hat|_2 and the smallest real-user norm."""
    sample = sample_clean(p, random_state)
    return sample.alpha, sample.tau


def paper_c(p: PaperParams, alpha: float) -> float:
    """The paper's C = alpha sqrt(d) (2 sqrt(n) - 1)/(2 sqrt(n) + 4 sigma) - alpha sigma sqrt(2 log(1/beta))."""
    sn = math.sqrt(p.n)
    return alpha * math.sqrt(p.d) * (2 * sn - 1) / (2 * sn + 4 * p.sigma) - alpha * p.sigma * math.sqrt(2 * math.log(1 / p.beta))


def paper_bounds(p: PaperParams, alpha: float, tau: float) -> dict[str, float]:
    """Largest tolerable n' under Theorems 4.3 (standard), 4.4 (AT) and 4.5 (APT), as stated.

    AT's bound needs d gamma^2 > eps tau (its denominator); otherwise the theorem says nothing
    and the bound is NaN (shown as "undefined", never as an infinite tolerance).
    """
    c = paper_c(p, alpha)
    dg2 = p.d * p.gamma ** 2
    at_den = dg2 - p.eps * tau
    return {
        "standard": p.n * c / dg2,
        "at": p.n * (c + p.eps * tau) / at_den if at_den > 0 else math.nan,
        "apt": (p.n * c + p.n_star * p.gamma * tau) / dg2,
    }


def success_probability(p: PaperParams) -> float:
    """The probability with which the bounds hold: 1 - 2 exp(-d / (8 (sigma^2 + 1)))."""
    return 1.0 - 2.0 * math.exp(-p.d / (8 * (p.sigma ** 2 + 1)))


def _error(v: np.ndarray, sigma: float) -> float:
    from math import erf

    norm = float(np.linalg.norm(v))
    if norm == 0:
        return 0.5
    z = float(v.sum()) / (sigma * norm)  # <v, u_bar> with u_bar = 1
    return 0.5 * (1 + erf(-z / math.sqrt(2)))


def simulated_error(p: PaperParams, method: str, n_prime: int, rng: np.random.Generator) -> float:
    """One draw: fit the Gaussian recommender with n' worst-case poisoning users; its exact error beta."""
    r = rng.choice([-1.0, 1.0], size=p.n)
    u = r[:, None] + p.sigma * rng.standard_normal((p.n, p.d))
    total = (r[:, None] * u).sum(axis=0) - n_prime * p.gamma * np.ones(p.d)  # r=+1, u=-gamma*1 per poisoning user
    v = total / (p.n + n_prime)
    if method == "at":
        v = np.sign(v) * np.maximum(np.abs(v) - p.eps, 0.0)  # l_inf-adversarial mean: soft-threshold by eps
    elif method == "apt" and p.n_star > 0:
        r_e = rng.choice([-1.0, 1.0], size=p.n_star)
        u_e = np.clip(r_e[:, None] + p.sigma * rng.standard_normal((p.n_star, p.d)), -p.gamma, p.gamma)
        label = np.sign(u_e @ v)  # the label the current model gives: the empirical-risk minimiser
        label[label == 0] = 1.0
        v = (total + (label[:, None] * u_e).sum(axis=0)) / (p.n + n_prime + p.n_star)
    elif method != "standard" and method != "apt":
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(BOUND_METHODS)}")
    return _error(v, p.sigma)


def simulate_tolerable(p: PaperParams, method: str, n_trials: int = 10, random_state: int = 0, upper: int | None = None) -> tuple[float, float]:
    """Monte-Carlo: the largest n' whose simulated error stays at most beta; (mean, sd) over trials.

    The error grows with n' (the poisoning term only grows), so each trial bisects n' in
    [0, upper] (default max(5 n, 2 n / gamma)) with fresh draws: about log2(upper) fits per trial.
    """
    p.validate()
    # Past n' = n / gamma the worst-case poison outweighs the real users' signal (<v_hat, u_bar> < 0),
    # so the search never needs to go beyond it (with room to spare).
    upper = max(5 * p.n, math.ceil(2 * p.n / p.gamma)) if upper is None else int(upper)
    rng = np.random.default_rng(random_state)
    found = []
    for _ in range(n_trials):
        lo, hi = 0, upper
        if simulated_error(p, method, 0, rng) > p.beta:
            found.append(0)
            continue
        while hi - lo > max(1, upper // 512):
            check_deadline()  # a served dashboard's time budget (no-op elsewhere)
            mid = (lo + hi) // 2
            if simulated_error(p, method, mid, rng) <= p.beta:
                lo = mid
            else:
                hi = mid
        found.append(lo)
    arr = np.asarray(found, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def bound_curves(p: PaperParams, axis: str, n_trials: int = 0, random_state: int = 0):
    """The three bounds, and our simulation when ``n_trials`` > 0, against ``axis`` ("n_star" or "eps")
    on 9 points from 0 to 4 times ``p``'s value (the Theory page's two figures).

    Returns ``(values, bounds, sims, alpha, tau)``: ``bounds[method]`` one array over ``values``,
    ``sims[method] = (means, sds)`` or ``sims`` None; alpha and tau of the one sampled clean data set.
    """
    if axis not in ("n_star", "eps"):
        raise ConfigError(f"axis must be 'n_star' or 'eps', got {axis!r}")
    alpha, tau = sample_model(p, random_state)
    if axis == "n_star":
        values = np.unique(np.linspace(0, max(10, 4 * p.n_star), 9).astype(int))
        points = [replace(p, n_star=int(v)) for v in values]
    else:
        values = np.linspace(0.0, max(0.05, 4 * p.eps), 9)
        points = [replace(p, eps=float(v)) for v in values]
    bounds = {m: np.array([paper_bounds(q, alpha, tau)[m] for q in points]) for m in BOUND_METHODS}
    sims = None
    if n_trials > 0:
        sims = {}
        for m in BOUND_METHODS:
            runs = [simulate_tolerable(q, m, n_trials, random_state) for q in points]
            sims[m] = (np.array([r[0] for r in runs]), np.array([r[1] for r in runs]))
    return values, bounds, sims, alpha, tau


def simulation_bytes(p: PaperParams) -> int:
    """Peak memory of :func:`bound_curves`'s sampling at ``p``, in bytes, estimated before it runs:
    a draw holds the real users (n x d float64) and a same-sized temporary (measured: 2.05 n d x 8
    bytes at n = 20000, d = 1000), for APT the ERM users (n* x d, twice; the n* axis goes up to
    4 n*); 3 n d for headroom.  ``?pt-n=40001&pt-d=3000`` (2.7 GB here) grew a served dashboard by
    3.6 GB; the run budget (2 GB by default) refuses such settings before they run."""
    n_star = max(10, 4 * p.n_star)
    return 8 * p.d * (3 * p.n + 2 * n_star)

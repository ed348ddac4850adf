"""A Gaussian latent-factor model of how many fake users a training method tolerates.

Context: section 4 of Wu et al., "Fight Fire with Fire: Towards Robust Recommender Systems
via Adversarial Poisoning Training" (SIGIR 2021, arXiv 2101.02644) analyses a Gaussian
latent-factor model and states bounds (Theorems 4.3-4.5) on the number of fake users that
standard training, adversarial training (AT) and APT tolerate before a target item is pushed
into the recommendations.  **We could not obtain the text of those theorems** while writing
this module, so everything below is *our own derivation* in the same spirit, not a quotation:
the dashboard labels it that way.  What the paper claims qualitatively (APT raises the
tolerable number of fake users; AT has a positive effect) is checked here, not assumed: the
formulas say under which conditions it holds.

The model (all ratings on the normalised scale, maximum ``r_max``):

* Real users have latent factors ``p_u ~ N(mu_p, sigma_p^2 I_d)``; the target item has a
  fixed factor ``q_t``.  A real user's rating of the target is ``r_u = p_u . q_t + noise``,
  ``noise ~ N(0, sigma_noise^2)``, hence ``r_u ~ N(a, s^2)`` with ``a = mu_p . q_t`` and
  ``s^2 = sigma_p^2 |q_t|^2 + sigma_noise^2`` (:func:`rating_moments`).
* The recommender's score of the target for the average user is fitted by least squares on
  the target's ratings (the item's factor along the mean user direction, user factors held
  fixed: the rank-one projection of MF).  The target enters the average user's top-K when its
  score reaches the threshold ``tau`` (the K-th best score among the other items).
* The attacker injects ``n_f`` fake users who rate the target ``r_max``.

Training methods (their expected score as a function of ``n_f``; :func:`expected_score`):

* **standard** (ERM): the least-squares fit is the mean of all ratings,
  ``s(n_f) = (n a + n_f r_max) / (n + n_f)``.  Tolerable fake users (score stays below tau):
  ``N_std = n (tau - a) / (r_max - tau)``  (our "bound 1").
* **AT** (worst-case perturbation of radius ``eps`` of each training rating's prediction,
  APR-style): the per-rating loss becomes ``(|r - s| + eps)^2``; its stationary point
  satisfies ``sum_u (r_u - s) + eps sign(r_u - s) = 0``.  In expectation over the real users
  ``n (a - s) + n eps (2 Phi((a - s)/s_r) - 1) + n_f (r_max - s + eps) = 0`` which gives
  ``N_AT = n [(tau - a) + eps c] / (r_max - tau + eps)``, ``c = 2 Phi((tau - a)/s_r) - 1``
  (our "bound 2").  ``N_AT > N_std`` iff ``c > (tau - a)/(r_max - tau)``: AT helps when the
  real ratings are concentrated compared with the gap to the threshold, and can hurt
  otherwise -- the sign term acts like a median, which resists fakes only while the real
  users agree with each other.
* **APT**: ``n_e`` ERM users rate the target (the target is among the items with negative
  influence once attacked, docs/algorithms.md) with ``v_e = clip(m + r_plus)`` where ``m`` is
  the item mean the defender uses: the clean mean ``a`` (the authors' oracle statistics) or
  the observed, poisoned mean ``(n a + n_f r_max)/(n + n_f)`` (honest).  With clean
  statistics ``N_APT = [n (tau - a) + n_e (tau - v_e)] / (r_max - tau)`` (our "bound 3"):
  APT raises the bound by ``n_e (tau - v_e)/(r_max - tau)`` iff ``v_e < tau``, i.e. iff
  ``a + r_plus < tau``.  With observed statistics there is no closed form; the bound is the
  root of the expected-score equation, found by bisection.

:func:`simulate` is a Monte-Carlo simulation of the same model: it draws finite samples of
latent factors and noise, fits each method by actually minimising its training loss, and
counts the fake users needed to reach the threshold.  The formulas are its large-n limits.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import erf, sqrt

import numpy as np

from apt_core.errors import ConfigError, check_deadline

METHODS = ("standard", "at", "apt")


@dataclass(frozen=True)
class TheoryParams:
    """Parameters of the model (normalised rating scale; defaults look like ML-100K)."""

    n_users: int = 943  # real users who rate the target's neighbourhood (n)
    d: int = 8  # latent dimension
    mu_norm: float = 0.9  # |mu_p|
    sigma_p: float = 0.15  # spread of user factors
    q_norm: float = 0.7  # |q_t|, with q_t at angle `cos_angle` to mu_p
    cos_angle: float = 0.7
    sigma_noise: float = 0.1
    r_max: float = 1.0
    tau: float = 0.6  # score the target must reach to enter the top-K
    eps: float = 0.1  # AT perturbation radius
    n_erm: int = 47  # APT's ERM users (5% of 943)
    r_plus: float = 0.2  # APT's rating offset: the paper's 0.2 on the normalised scale
    erm_stats: str = "clean"  # "clean" (authors' oracle) or "observed" (honest)

    def validate(self) -> None:
        if self.n_users < 1:
            raise ConfigError(f"n_users must be at least 1, got {self.n_users}")
        if self.d < 1:
            raise ConfigError(f"d must be at least 1, got {self.d}")
        if not (-1.0 <= self.cos_angle <= 1.0):
            raise ConfigError(f"cos_angle must lie in [-1, 1], got {self.cos_angle}")
        if min(self.sigma_p, self.sigma_noise, self.eps, self.mu_norm, self.q_norm) < 0:
            raise ConfigError("norms, spreads and eps must be non-negative")
        if self.n_erm < 0:
            raise ConfigError(f"n_erm must be non-negative, got {self.n_erm}")
        if self.erm_stats not in ("clean", "observed"):
            raise ConfigError(f"erm_stats must be 'clean' or 'observed', got {self.erm_stats!r}")
        a, _ = rating_moments(self)
        if not (a < self.tau < self.r_max):
            raise ConfigError(
                f"the threshold tau={self.tau:g} must lie between the target's mean rating a={a:.3f} "
                f"and r_max={self.r_max:g} (otherwise the target is already recommended or never can be)"
            )


def rating_moments(p: TheoryParams) -> tuple[float, float]:
    """Mean ``a`` and standard deviation ``s`` of a real user's rating of the target."""
    a = p.mu_norm * p.q_norm * p.cos_angle
    s = sqrt(p.sigma_p**2 * p.q_norm**2 + p.sigma_noise**2)
    return float(a), float(s)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + erf(x / sqrt(2.0)))


def erm_rating(p: TheoryParams, n_fake: float) -> float:
    """The rating APT's ERM users give the target (clipped to the scale)."""
    a, _ = rating_moments(p)
    mean = a if p.erm_stats == "clean" else (p.n_users * a + n_fake * p.r_max) / (p.n_users + n_fake)
    return float(min(p.r_max, mean + p.r_plus))


def expected_score(p: TheoryParams, method: str, n_fake: float) -> float:
    """Large-n expected score of the target for the average user after training."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    a, s = rating_moments(p)
    n = float(p.n_users)
    if method == "standard":
        return (n * a + n_fake * p.r_max) / (n + n_fake)
    if method == "apt":
        v = erm_rating(p, n_fake)
        return (n * a + n_fake * p.r_max + p.n_erm * v) / (n + n_fake + p.n_erm)

    # AT: solve n(a-x) + n eps (2 Phi((a-x)/s) - 1) + n_f (r_max - x + eps) = 0 for x; the
    # left side decreases in x, so bisection on [min(a, r_max) - 1, r_max + eps] is safe.
    def g(x: float) -> float:
        sign_term = 2.0 * _phi((a - x) / s) - 1.0 if s > 0 else float(np.sign(a - x))
        return n * (a - x) + n * p.eps * sign_term + n_fake * (p.r_max - x + p.eps)

    lo, hi = a - 1.0 - p.eps, p.r_max + p.eps
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tolerable_fake_users(p: TheoryParams, method: str) -> float:
    """Largest (real-valued) number of fake users that keeps the expected score below tau."""
    p.validate()
    a, s = rating_moments(p)
    n = float(p.n_users)
    gap = p.r_max - p.tau
    if method == "standard":
        return n * (p.tau - a) / gap
    if method == "at":
        c = 2.0 * _phi((p.tau - a) / s) - 1.0 if s > 0 else 1.0
        return n * ((p.tau - a) + p.eps * c) / (gap + p.eps)
    if method == "apt" and p.erm_stats == "clean":
        v = erm_rating(p, 0.0)
        return max(0.0, (n * (p.tau - a) + p.n_erm * (p.tau - v)) / gap)
    if method == "apt":
        return _bisect_bound(p, method)
    raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")


def _bisect_bound(p: TheoryParams, method: str) -> float:
    if expected_score(p, method, 0.0) >= p.tau:
        return 0.0
    lo, hi = 0.0, max(1.0, float(p.n_users))
    while expected_score(p, method, hi) < p.tau:
        hi *= 2.0
        if hi > 1e9:
            return float("inf")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if expected_score(p, method, mid) < p.tau:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def bound_curve(p: TheoryParams, parameter: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Bounds of every method as ``parameter`` (a :class:`TheoryParams` field) varies."""
    if parameter not in TheoryParams.__dataclass_fields__:
        raise ConfigError(f"unknown parameter {parameter!r}")
    out = {m: np.empty(len(values)) for m in METHODS}
    for i, v in enumerate(values):
        q = replace(p, **{parameter: type(getattr(p, parameter))(v)})
        for m in METHODS:
            try:
                out[m][i] = tolerable_fake_users(q, m)
            except ConfigError:
                out[m][i] = np.nan  # outside the model's domain (e.g. tau below the mean)
    return out


# --- Monte-Carlo simulation of the same model -------------------------------------------


def _draw_real_ratings(p: TheoryParams, rng: np.random.Generator) -> np.ndarray:
    """Ratings of the target by ``n_users`` real users drawn from the latent-factor model."""
    mu = np.zeros(p.d)
    mu[0] = p.mu_norm
    q = np.zeros(p.d)
    q[0] = p.q_norm * p.cos_angle
    if p.d > 1:
        q[1] = p.q_norm * sqrt(max(0.0, 1.0 - p.cos_angle**2))
    users = mu + p.sigma_p * rng.standard_normal((p.n_users, p.d))
    return users @ q + p.sigma_noise * rng.standard_normal(p.n_users)


def _fit(method: str, ratings: np.ndarray, eps: float) -> float:
    """Minimise the method's training loss over the target's score (a 1-D convex problem)."""
    if method in ("standard", "apt"):
        return float(ratings.mean())
    # AT: minimise sum (|r - x| + eps)^2 (convex).  Its stationarity condition
    # g(x) = sum (r - x) + eps (n_above - n_below) = 0 is piecewise linear between sorted
    # ratings, so solve it exactly: on the k-th gap (k ratings below x) the root is
    # x = (S + eps (N - 2k)) / N; if no gap holds its root, g jumps over 0 at a rating.
    r = np.sort(ratings)
    n = len(r)
    k = np.arange(n + 1)
    roots = (r.sum() + eps * (n - 2 * k)) / n
    lower = np.concatenate([[-np.inf], r])
    upper = np.concatenate([r, [np.inf]])
    inside = np.flatnonzero((roots >= lower) & (roots <= upper))
    if len(inside):
        return float(roots[inside[0]])
    # g decreases in x; find the rating where it changes sign.
    g_left = r.sum() - n * r + eps * (n - 2 * np.arange(n))  # just left of each rating
    return float(r[np.flatnonzero(g_left > 0)[-1]]) if np.any(g_left > 0) else float(r[0])


def _simulated_score(p: TheoryParams, method: str, real: np.ndarray, n_fake: int, erm_noise: np.ndarray) -> float:
    fakes = np.full(n_fake, p.r_max)
    parts = [real, fakes]
    if method == "apt" and p.n_erm > 0:
        # ERM users rate ~ N(mean + r_plus, std) from the statistics the defender uses,
        # clipped to the scale (APT's step 6, on the normalised scale).
        stats = real if p.erm_stats == "clean" else np.concatenate([real, fakes])
        erm = np.clip(stats.mean() + p.r_plus + stats.std() * erm_noise, 0.0, p.r_max)
        parts.append(erm)
    return _fit(method, np.concatenate(parts), p.eps)


def simulate(p: TheoryParams, n_trials: int = 50, random_state: int = 0, max_fake: int | None = None) -> dict[str, np.ndarray]:
    """Monte-Carlo tolerable fake users per method: an array of ``n_trials`` counts each.

    Each trial draws the real users' factors and noise, then finds (by bisection over the
    integer number of fake users; the score grows with it) the largest ``n_f`` whose fitted
    score stays below ``tau``.  ``max_fake`` caps the search (reported as the cap).
    """
    p.validate()
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    rng = np.random.default_rng(random_state)
    cap = int(max_fake if max_fake is not None else 20 * p.n_users)
    out = {m: np.empty(n_trials) for m in METHODS}
    for trial in range(n_trials):
        check_deadline()  # a served dashboard's time budget (no-op elsewhere)
        real = _draw_real_ratings(p, rng)
        erm_noise = rng.standard_normal(p.n_erm)
        for m in METHODS:
            if _simulated_score(p, m, real, 0, erm_noise) >= p.tau:
                out[m][trial] = 0
                continue
            lo, hi = 0, cap
            if _simulated_score(p, m, real, hi, erm_noise) < p.tau:
                out[m][trial] = cap
                continue
            while hi - lo > 1:  # invariant: score(lo) < tau <= score(hi)
                mid = (lo + hi) // 2
                if _simulated_score(p, m, real, mid, erm_noise) < p.tau:
                    lo = mid
                else:
                    hi = mid
            out[m][trial] = lo
    return out


def simulate_curve(p: TheoryParams, parameter: str, values: np.ndarray, n_trials: int = 20, random_state: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Monte-Carlo mean and standard deviation of the tolerable fake users along ``parameter``."""
    means = {m: np.full(len(values), np.nan) for m in METHODS}
    sds = {m: np.full(len(values), np.nan) for m in METHODS}
    for i, v in enumerate(values):
        q = replace(p, **{parameter: type(getattr(p, parameter))(v)})
        try:
            sims = simulate(q, n_trials, random_state + i)
        except ConfigError:
            continue
        for m in METHODS:
            means[m][i] = sims[m].mean()
            sds[m][i] = sims[m].std(ddof=1) if n_trials > 1 else 0.0
    return {m: (means[m], sds[m]) for m in METHODS}


def curves_over(p: TheoryParams, parameter: str, low: float, high: float, n_points: int = 11, n_trials: int = 0,
                random_state: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]] | None]:
    """Formula (:func:`bound_curve`) and, when ``n_trials`` > 0, simulation (:func:`simulate_curve`) of the
    tolerable fake users on ``n_points`` values of ``parameter`` from ``low`` to ``high`` (whole numbers
    for ``n_erm``).  Returns ``(values, bounds, sims)``; ``sims`` is None without trials."""
    values = np.linspace(low, high, n_points)
    if parameter == "n_erm":
        values = np.unique(np.round(values)).astype(int)
    bounds = bound_curve(p, parameter, values)
    sims = simulate_curve(p, parameter, values, n_trials=n_trials, random_state=random_state) if n_trials > 0 else None
    return values, bounds, sims

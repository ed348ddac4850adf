"""Statistics over repetitions: mean, standard deviation and the paper's significance stars.

The paper marks APT's result with stars when a paired t-test against the best baseline is
significant (``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001).  "Paired" because every
repetition (seed) of every defense sees the same split, targets and fake profiles, so the
per-seed difference removes the variance those share.

Which baseline: the non-APT defense with the lowest mean target HR (the strongest
competitor), as in the paper's tables.  APT-rand counts as a baseline (it is APT's ablation,
not APT); plain MF on poisoned data (``none``/``attack``) is used only when no other defense
ran, so a one-defense run still gets a test against doing nothing.

Two guards against stars that overstate (hit ratios over few seeds take few distinct
values, so identical per-seed differences are common):

* Stars need at least :data:`MIN_SEEDS_FOR_STARS` (3) paired seeds; with 2 the p-value is
  still reported but no stars are drawn.
* When every paired difference is the same, the t statistic is undefined (zero variance;
  taking its limit would give p = 0 and "***" from two seeds).  The test then falls back to
  the exact two-sided sign-flip (permutation) test, which needs no variance: under the null
  each difference is equally likely positive or negative, and n identical non-zero
  differences are the two most extreme of the 2^n sign patterns, so p = 2 / 2^n (0.25 with
  3 seeds, 0.0625 with 5: identical differences alone earn a star from 6 seeds on).  All
  differences zero give p = 1.  :attr:`PairedTest.test` says which test produced p.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

#: (threshold, stars), checked in order: the paper's convention.
STAR_LEVELS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
#: fewer paired seeds than this get a p-value but never stars.
MIN_SEEDS_FOR_STARS = 3
#: how the stars are drawn, for the legends of tables, pages and the CLI (one wording).
STARS_LEGEND = (f"paired t-test over seeds (the exact sign-flip test when every seed's difference is the same): "
                f"* p < 0.05, ** p < 0.01, *** p < 0.001; no stars with fewer than {MIN_SEEDS_FOR_STARS} seeds")


def stars(p_value: float | None) -> str:
    """``***`` for p < 0.001, ``**`` for p < 0.01, ``*`` for p < 0.05, else ``""`` (also for None/NaN)."""
    if p_value is None or (isinstance(p_value, float) and math.isnan(p_value)):
        return ""
    for threshold, mark in STAR_LEVELS:
        if p_value < threshold:
            return mark
    return ""


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the finite values; sd 0.0 for one value."""
    vals = np.array([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if len(vals) == 0:
        return None, None
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


@dataclass(frozen=True)
class PairedTest:
    """Result of a two-sided paired test of ``a`` against ``b`` (``a - b`` per pair).

    ``test``: ``"t-test"``, ``"sign-flip"`` (the differences had no spread) or ``""`` (no
    test: fewer than two pairs).  ``note`` says in words why there are no stars when p alone
    would not explain it (too few seeds, no spread).
    """

    n: int
    mean_diff: float | None
    t: float | None
    p_value: float | None
    stars: str
    test: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        """Plain values for JSON (a non-finite t becomes None)."""
        out = asdict(self)
        if out["t"] is not None and not math.isfinite(out["t"]):
            out["t"] = None
        return out


def _stars_for(p_value: float | None, n: int) -> tuple[str, str]:
    """Stars for ``p_value`` with ``n`` pairs, and a note when too few seeds withheld them."""
    if n < MIN_SEEDS_FOR_STARS:
        return "", f"no stars with fewer than {MIN_SEEDS_FOR_STARS} seeds"
    return stars(p_value), ""


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test; ``t = mean(d) / (sd(d) / sqrt(n))`` with ``d = a - b``, df = n - 1.

    Pairs where either value is missing/NaN are dropped.  With fewer than two pairs no test
    exists (t and p are None).  When every difference is identical (zero variance, where t
    is undefined and scipy returns NaN) p comes from the exact sign-flip test instead: 1 for
    identical samples, ``2 / 2**n`` for a constant non-zero shift (module docstring).
    Stars need at least :data:`MIN_SEEDS_FOR_STARS` pairs.
    """
    a_arr = np.asarray([np.nan if v is None else v for v in a], dtype=float)
    b_arr = np.asarray([np.nan if v is None else v for v in b], dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired test needs equally long samples, got {len(a_arr)} and {len(b_arr)}")
    keep = ~(np.isnan(a_arr) | np.isnan(b_arr))
    a_arr, b_arr = a_arr[keep], b_arr[keep]
    n = int(len(a_arr))
    if n == 0:
        return PairedTest(0, None, None, None, "", note="no paired seeds")
    d = a_arr - b_arr
    mean_diff = float(d.mean())
    if n < 2:
        return PairedTest(n, mean_diff, None, None, "", note="one seed: no test")
    sd = float(d.std(ddof=1))
    if sd <= 1e-15 * max(1.0, abs(mean_diff)):
        p = 1.0 if abs(mean_diff) <= 1e-15 else min(1.0, 2.0 / 2.0**n)
        mark, note = _stars_for(p, n)
        return PairedTest(n, mean_diff, None, p, mark, "sign-flip", note or "every seed's difference is the same: exact sign-flip test")
    from scipy import stats as _sps  # imported here: scipy.stats takes a second to import

    res = _sps.ttest_rel(a_arr, b_arr)
    p = float(res.pvalue)
    mark, note = _stars_for(p, n)
    return PairedTest(n, mean_diff, float(res.statistic), p, mark, "t-test", note)


@dataclass(frozen=True)
class Significance:
    """APT (``method``) against the best baseline on per-seed target HR."""

    method: str
    baseline: str | None
    metric: str
    test: PairedTest

    @property
    def method_better(self) -> bool | None:
        """True when ``method``'s mean is lower (better, for target HR) than the baseline's."""
        return None if self.test.mean_diff is None else self.test.mean_diff < 0

    @property
    def marker(self) -> str:
        """The paper's stars when APT is significantly *better*; ``↑`` + stars when significantly worse.

        A two-sided test is significant in both directions; a bare star on a cell where APT
        lost would read as a win.
        """
        if not self.test.stars:
            return ""
        return self.test.stars if self.method_better else "↑" + self.test.stars

    def to_dict(self) -> dict:
        out = {"method": self.method, "baseline": self.baseline, "metric": self.metric}
        out.update(self.test.to_dict())
        out["method_better"] = self.method_better
        out["marker"] = self.marker
        return out


def best_baseline(per_phase: dict[str, Sequence[float]], method: str = "apt") -> str | None:
    """The defense with the lowest mean ``per_phase`` value other than ``method``.

    ``per_phase`` maps phase name -> per-seed values and may contain ``origin``/``attack``;
    ``origin`` never counts (it is not under attack), and ``attack``/``none`` count only when
    no real defense ran.  Ties go to the phase listed first.
    """
    skip = {"origin", "attack", "none", method}
    candidates = [p for p in per_phase if p not in skip]
    if not candidates:
        candidates = [p for p in ("none", "attack") if p in per_phase and p != method][:1]
    best, best_mean = None, math.inf
    for name in candidates:
        m, _ = mean_sd(per_phase[name])
        if m is not None and m < best_mean:
            best, best_mean = name, m
    return best


def significance(per_phase: dict[str, Sequence[float]], method: str = "apt", metric: str = "target_hr") -> Significance | None:
    """Paired t-test of ``method``'s per-seed values against :func:`best_baseline`; None if ``method`` did not run."""
    if method not in per_phase:
        return None
    baseline = best_baseline(per_phase, method)
    if baseline is None:
        return Significance(method, None, metric, PairedTest(0, None, None, None, "", note="no baseline ran"))
    return Significance(method, baseline, metric, paired_ttest(per_phase[method], per_phase[baseline]))

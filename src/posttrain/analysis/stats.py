"""Confidence intervals and small statistics with no heavy imports (the report path stays light).

Every interval of a mean score says which method made it (``Interval.method``):

- ``wilson``: all values are 0 or 1. The Wilson score interval (Wilson 1927, JASA 22:209;
  recommended over the Wald interval by Brown, Cai & DasGupta 2001, Stat. Sci. 16:101). It lies
  inside [0, 1], contains the mean, and is wide at small n (n = 1 gives [0.21, 1] or [0, 0.79]).
  Its coverage is near 95% averaged over the true rate but oscillates: its minimum over rates
  is ~0.79 at n = 1 and ~0.82-0.84 for n = 2 to 100 (exact binomial sums; the oscillation Brown,
  Cai & DasGupta describe); Clopper-Pearson is the interval whose coverage never falls below.
- ``wilson-neff``: values in [0, 1] that are not all 0/1 (per-item means over epochs, partial
  credit). The Wilson interval at an *effective* sample size n_eff = n / rho, where rho is the
  variance as a fraction of the largest variance a [0, 1] variable with that mean can have,
  mean * (1 - mean) (the design-effect construction of Korn & Graubard 1998, Survey
  Methodology 24:193). The variance is estimated with z^2 / 2 pseudo-observations at 0 and at 1
  (as Agresti & Coull 1998 add z^2 / 2 successes and failures), so a sample that shows no spread
  (n = 1, every item at 0.5) gets an honest, wide interval rather than a zero-width one; at
  n = 1, rho = 1 and it is the Wilson interval of a fractional count, valid for any [0, 1]
  variable since its variance is at most mean * (1 - mean). Coverage measured by simulation
  (tests/test_analysis_stats.py): >= 0.95 from n = 2 to 200 for the bimodal, skewed,
  low-variance and rare-outlier score distributions tested there; at some other distributions
  it inherits Wilson's dips below. Where scores spread it is as narrow as the t interval
  (uniform scores, n = 200: 1% wider); where they barely spread it is wider (scores with sd
  0.05, n = 200: 0.023 against the t interval's 0.014), the price of not trusting a sample
  that shows little spread.
- ``student-t``: values on an open scale (a grader's unbounded sub-score), n >= 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

#: two-sided 95% standard normal quantile, Phi^-1(0.975)
Z95 = 1.959963984540054

#: up to this many degrees of freedom the t quantile is solved from the exact series
_T_EXACT_DF = 100


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with its two-sided interval, the interval's level and the method that made it."""

    estimate: float | None
    low: float | None
    high: float | None
    method: str
    n: int
    level: float = 0.95

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        return self.estimate, self.low, self.high


def normal_quantile(level: float) -> float:
    """z with P(|Z| <= z) = level for a standard normal Z."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if level == 0.95:
        return Z95
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student t with integer df: the finite series of Abramowitz & Stegun
    26.7.3 (odd df) and 26.7.4 (even df)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:
        term, series = 1.0, 0.0
        if df > 1:
            series = 1.0
            for j in range(2, df - 1, 2):  # 1 + 2/3 cos^2 + (2 4)/(3 5) cos^4 + ...
                term *= j / (j + 1) * cos2
                series += term
            series *= math.sin(theta) * math.cos(theta)
        return 2 / math.pi * (theta + series)
    term = series = 1.0
    for j in range(1, df - 2, 2):  # 1 + 1/2 cos^2 + (1 3)/(2 4) cos^4 + ...
        term *= j / (j + 1) * cos2
        series += term
    return math.sin(theta) * series


def t_quantile(level: float, df: int) -> float:
    """Two-sided Student t quantile: t with P(|T| <= t) = level.

    Up to ``_T_EXACT_DF``: bisection on the exact central probability (``_t_central``); beyond,
    the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5 (relative error < 1e-6 there for
    levels up to 0.999).
    """
    if df <= 0:
        return float("inf")
    z = normal_quantile(level)
    if df <= _T_EXACT_DF:
        low, high = z, z
        while _t_central(high, df) < level:
            high *= 2
        for _ in range(100):
            middle = (low + high) / 2
            if _t_central(middle, df) < level:
                low = middle
            else:
                high = middle
        return high
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927): the p with |p_hat - p| <= z sqrt(p (1 - p) / n).

    ``successes`` and ``n`` may be fractional (an effective count). n = 0 gives (0, 1).
    """
    if n <= 0:
        return (0.0, 1.0)
    p = min(1.0, max(0.0, successes / n))
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # the exact interval contains p; guard the last bit of rounding at p = 0 or 1
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


_BINARY = frozenset((0.0, 1.0))


def mean_interval(values: Sequence[float], *, level: float = 0.95,
                  bounded: bool | None = None) -> Interval:
    """Mean and two-sided interval of per-item scores, with the method's name (module doc).

    ``bounded``: None looks at the values (all in [0, 1] -> the Wilson methods); False forces
    the Student t interval (values on an open scale that merely happen to lie in [0, 1]).
    """
    n = len(values)
    if n == 0:
        return Interval(None, None, None, "none (no values)", 0, level)
    mean = math.fsum(values) / n
    if mean == mean:  # no NaN among the values: their least and greatest decide (C speed)
        in_unit = min(values) >= 0.0 and max(values) <= 1.0
    else:
        in_unit = all(0.0 <= v <= 1.0 for v in values)
    if bounded is None:
        bounded = in_unit
    elif bounded and not in_unit:
        raise ValueError("bounded=True needs every value in [0, 1]")
    if bounded:
        z = normal_quantile(level)
        if set(values) <= _BINARY:  # every value 0 or 1
            low, high = wilson_interval(math.fsum(values), n, z)
            return Interval(mean, low, high, "wilson", n, level)
        n_eff = _effective_n(values, mean, z)
        low, high = wilson_interval(mean * n_eff, n_eff, z)
        return Interval(mean, low, high, "wilson-neff", n, level)
    if n == 1:
        return Interval(mean, None, None, "none (one unbounded value)", 1, level)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(level, n - 1) * math.sqrt(variance / n)
    return Interval(mean, mean - half, mean + half, "student-t", n, level)


def _effective_n(values: Sequence[float], mean: float, z: float = Z95) -> float:
    """n / rho, rho = (variance with z^2 / 2 pseudo-observations at 0 and 1) / (mean (1 - mean))."""
    n = len(values)
    ceiling = mean * (1 - mean)
    if ceiling <= 0:
        return float(n)
    squares = math.fsum((v - mean) ** 2 for v in values)
    pseudo = z * z / 2 * (mean * mean + (1 - mean) * (1 - mean))
    variance = (squares + pseudo) / (n - 1 + z * z)
    return n / min(1.0, variance / ceiling)


def mean_ci(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95% CI as a tuple; ``mean_interval`` also names the method."""
    return mean_interval(values).as_tuple()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _check_counts(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k is not computable for k={k} from n={n} samples (need k <= n)")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    Chen et al. 2021 (arXiv 2107.03374, eq. 1). Raises ``ValueError`` when k > n: the estimate
    does not exist then (the caller reports the item as not computable for that k).
    """
    _check_counts(n, c, k)
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k (all k draws pass) from n samples with c correct: C(c, k) / C(n, k).

    Yao et al. 2024, tau-bench (arXiv 2406.12045). Raises ``ValueError`` when k > n.
    """
    _check_counts(n, c, k)
    return comb(c, k) / comb(n, k)

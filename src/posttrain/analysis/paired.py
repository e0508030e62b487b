"""Paired statistics for two runs over the same items: a test that is exact or Monte-Carlo with
a stated error, and an interval that agrees with it.

Test of "no difference" on the per-item differences d_i = B_i - A_i:

- both runs binary per item (pass/fail): McNemar's exact test, the two-sided binomial test of
  the b pass->fail against the c fail->pass discordant pairs with p = 1/2 (McNemar 1947; exact
  form as recommended by Fagerland, Lydersen & Laake 2013, BMC Med. Res. Methodol. 13:91),
  summed exactly in log space for any number of pairs (``binomial_two_sided``);
- otherwise the sign-flip (randomization) test of the mean difference (Fisher 1935): under the
  null each difference is equally likely to have either sign. Exact (the distribution of
  sum(+-|d_i|) by convolution over the distinct |d_i|) when that is small enough, else
  Monte-Carlo: p = (1 + #draws at least as extreme) / (1 + draws), never 0 and a valid test for
  any number of draws (Phipson & Smyth 2010, Stat. Appl. Genet. Mol. Biol. 9:39), reported with
  its standard error sqrt(p (1 - p) / draws). Never a normal approximation.

Interval of the mean difference (level 1 - alpha): with scores in [0, 1] the differences lie in
[-1, 1], so u_i = (d_i + 1) / 2 lies in [0, 1] and the interval is ``stats.mean_interval`` of
u mapped back (Wilson, or Wilson at an effective n; see ``stats``): inside [-1, 1], never zero
width (identical pass/fail runs of 200 items give +-1.9%), and n = 1 gives a wide interval. Measured
coverage on paired pass/fail data is 0.95-0.97 (tests), where the Wald and sign-flip-inversion
intervals fall to 0.90 when one run never loses an item.

Agreement (documented rule): ``significant`` is p < alpha, and the interval excludes 0 exactly
when p < alpha. Where the interval alone would say otherwise (a few percent of borderline
cases, simulated), its endpoint on the side of 0 is moved to 0: extended to reach 0 when the
test does not reject, stopped just short of 0 when it does; ``ci_method`` then says so.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from posttrain.analysis.stats import mean_interval

#: Monte-Carlo sign-flip draws by default (p-value standard error <= 0.0016 near p = 0.05)
DEFAULT_DRAWS = 20_000
#: the name the CLI and older callers pass it by (``n_boot``): the number of Monte-Carlo draws
DEFAULT_BOOTSTRAP = DEFAULT_DRAWS
#: the exact sign-flip distribution is built when it takes at most this many steps
EXACT_STEPS = 100_000
#: at most this much work (draws x ``_work`` of one draw); fewer draws beyond it, error stated
_WORK_LIMIT = {"numpy": 60_000_000, "python": 2_000_000}
_ZERO = 1e-12


@dataclass(slots=True)
class PairedResult:
    """Run B minus run A over the items both scored.

    ``p_value_se``: the Monte-Carlo standard error of ``p_value`` (0.0 when exact); ``draws``:
    Monte-Carlo draws behind it (0 when exact); ``ci_low``/``ci_high``: the interval at
    ``level`` (= 1 - alpha), made by ``ci_method``.
    """

    n: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str
    p_value_se: float | None = None
    draws: int = 0
    ci_method: str = "none"
    level: float = 0.95

    def significant(self, alpha: float | None = None) -> bool:
        """p < alpha; the default alpha (1 - level) is the one the interval agrees with."""
        alpha = 1 - self.level if alpha is None else alpha
        return self.p_value is not None and self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PValue:
    """A p-value, its Monte-Carlo standard error (0.0 when exact), draws (0 when exact), test."""

    p_value: float
    se: float
    draws: int
    method: str


# ---- exact binomial ---------------------------------------------------------------------------
def _stirling_error(n: int) -> float:
    """log(n!) - log(sqrt(2 pi n) (n / e)^n) (Loader 2000, "Fast and accurate computation of
    binomial probabilities"; the series as in R's stirlerr)."""
    if n <= 15:
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * math.log(2 * math.pi)
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    nn = float(n) * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _deviance(x: float, mean: float) -> float:
    """x log(x / mean) + mean - x, summed as a series where x is near mean (Loader 2000, bd0)."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total = (x - mean) * v
        term = 2 * x * v
        j = 1
        while True:
            term *= v * v
            updated = total + term / (2 * j + 1)
            if updated == total:
                return updated
            total = updated
            j += 1
    return x * math.log(x / mean) + mean - x


def _fair_binomial_pmf(k: int, n: int) -> float:
    """P(X = k) for X ~ Binomial(n, 1/2), to ~1e-15 relative (Loader 2000)."""
    if k in (0, n):
        return math.ldexp(1.0, -n)
    half = n / 2
    log_core = (_stirling_error(n) - _stirling_error(k) - _stirling_error(n - k)
                - _deviance(k, half) - _deviance(n - k, half))
    log_scale = math.log(2 * math.pi) + math.log(k) + math.log1p(-k / n)
    return math.exp(log_core - 0.5 * log_scale)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips: min(1, 2 P(X <= min(k, n-k))).

    For p = 1/2 this is ``scipy.stats.binomtest(k, n).pvalue``. The term at min(k, n-k) comes
    from Loader's (2000) saddle-point form and the tail is summed outwards, each term a ratio of
    the previous one, so n = 10^6 takes milliseconds at ~1e-12 relative accuracy. scipy is not
    used: importing ``scipy.stats`` costs the CLI ~0.8 s, far more than this sum
    (bench/RESULTS.md).
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    first = _fair_binomial_pmf(low, n)
    if first == 0.0:
        return 0.0
    total, term = 1.0, 1.0
    for i in range(low, 0, -1):
        term *= i / (n - i + 1)
        total += term
        if term < 1e-17 * total:
            break
    return min(1.0, 2 * first * total)


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact test: b = pass->fail, c = fail->pass discordant pairs."""
    return binomial_two_sided(b, b + c)


# ---- sign-flip test ---------------------------------------------------------------------------
def _backend(backend: str | None) -> str:
    if backend is not None:
        if backend not in ("numpy", "python"):
            raise ValueError(f"backend must be numpy or python, got {backend!r}")
        return backend
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "python"
    return "numpy"


def _magnitudes(diffs: Sequence[float]) -> list[tuple[float, int]]:
    """Distinct non-zero |d| (differences only by rounding grouped: 1/3 - 2/3 vs -1/3) and counts."""
    counts = Counter(round(abs(d), 12) for d in diffs if abs(d) > _ZERO)
    return sorted(counts.items())


def _lattice(groups: list[tuple[float, int]]) -> int | None:
    """The smallest L <= 720 with every magnitude * L an integer (per-item means over epochs
    lie on such a lattice), or None."""
    scale = 1
    for magnitude, _ in groups:
        denominator = Fraction(magnitude).limit_denominator(720).denominator
        scale = scale * denominator // math.gcd(scale, denominator)
        if scale > 720:
            return None
    if all(abs(magnitude * scale - round(magnitude * scale)) < 1e-6 for magnitude, _ in groups):
        return scale
    return None


def _exact_steps(groups: list[tuple[float, int]], scale: int | None) -> int:
    """Steps the convolution takes: the support so far (at most the patterns so far, and on a
    lattice at most 2 * sum so far + 1) times the outcomes of each next group."""
    steps, patterns, reach = 0, 1, 0
    for magnitude, m in groups:
        support = patterns if scale is None else min(patterns, 2 * reach + 1)
        steps += support * (m + 1)
        patterns *= m + 1
        reach += round(magnitude * scale) * m if scale is not None else 0
        if steps > EXACT_STEPS:
            break
    return steps


def _exact_sign_flip(groups: list[tuple[float, int]], observed: float,
                     tolerance: float) -> float | None:
    """P(|sum s_i |d_i|| >= observed) over all 2^n sign patterns, by convolution over the
    distinct magnitudes (on integers when they lie on a lattice); None when that would take
    more than ``EXACT_STEPS`` steps."""
    scale = _lattice(groups)
    if _exact_steps(groups, scale) > EXACT_STEPS:
        return None
    unit = 1 if scale is None else scale
    distribution: dict[float, float] = {0: 1.0}
    for magnitude, m in groups:
        size = round(magnitude * scale) if scale is not None else magnitude
        # Binomial(m, 1/2) weights in floating point (Loader's form, O(1) each): the exact
        # ``comb(m, b) / 2**m`` on integers of m bits made a group of m items cost O(m^2)
        moves = [(size * (2 * b - m), _fair_binomial_pmf(b, m)) for b in range(m + 1)]
        merged: defaultdict[float, float] = defaultdict(float)
        for total, weight in distribution.items():
            for step, step_weight in moves:
                merged[total + step] += weight * step_weight
        distribution = merged
    return min(1.0, math.fsum(w for t, w in distribution.items()
                              if abs(t) / unit >= observed - tolerance))


def _drawn_sums(groups: list[tuple[float, int]], draws: int, seed: int,
                backend: str) -> list[float] | Any:
    """``draws`` seeded samples of |sum s_i |d_i|| with random signs s_i."""
    if backend == "numpy":
        return _drawn_sums_numpy(groups, draws, seed)
    rng = random.Random(seed)
    out = []
    for _ in range(draws):
        total = 0.0
        for magnitude, m in groups:
            total += magnitude * (2 * rng.getrandbits(m).bit_count() - m)  # Binomial(m, 1/2)
        out.append(abs(total))
    return out


_BIG_GROUP = 32  # groups of at least this many items get one binomial draw, not a bit each


def _work(groups: list[tuple[float, int]], backend: str) -> float:
    """Cost of one draw: bits in bytes (8 items per look-up) and binomial draws (numpy), or
    one ``getrandbits`` per group (python)."""
    if backend == "python":
        return float(len(groups))
    bits = sum(m for _, m in groups if m < _BIG_GROUP)
    return bits / 8 + 4 * sum(1 for _, m in groups if m >= _BIG_GROUP)


def _drawn_sums_numpy(groups: list[tuple[float, int]], draws: int, seed: int) -> Any:
    """Small groups as one fair bit per item, 8 items a random byte looked up in a table of the
    256 sums of their values (a draw costs n / 8 look-ups, cache-blocked); big groups as one
    Binomial(m, 1/2) draw each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    singles = np.asarray([v for v, m in groups if m < _BIG_GROUP for _ in range(m)])
    big = [(v, m) for v, m in groups if m >= _BIG_GROUP]
    columns = (len(singles) + 7) // 8
    padded = np.zeros(columns * 8)
    padded[:len(singles)] = singles
    bit_of = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1
    table = np.ascontiguousarray((bit_of @ padded.reshape(columns, 8).T).T)  # (columns, 256)
    block = 64
    sums = np.zeros(draws)
    chunk = max(1, 4_000_000 // max(1, columns + len(big)))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        part = np.full(size, -padded.sum())
        if columns:
            random_bytes = rng.integers(0, 256, size=(size, columns), dtype=np.uint8)
            for first in range(0, columns, block):
                rows = table[first:first + block]
                index = (random_bytes[:, first:first + block].astype(np.intp)
                         + 256 * np.arange(len(rows)))
                part += 2.0 * np.take(rows.ravel(), index).sum(axis=1)
        for value, m in big:
            part += value * (2.0 * rng.binomial(m, 0.5, size=size) - m)
        sums[start:start + size] = part
    return np.abs(sums)


def sign_flip_test(diffs: Sequence[float], *, draws: int = DEFAULT_DRAWS, seed: int = 0,
                   backend: str | None = None) -> PValue:
    """Two-sided sign-flip test of mean(diffs) = 0: exact when small enough, else Monte-Carlo
    with ``draws`` seeded draws (fewer when draws x distinct |d| would pass the work limit)."""
    groups = _magnitudes(diffs)
    if not groups:
        return PValue(1.0, 0.0, 0, "sign-flip (no differences)")
    observed = abs(math.fsum(diffs))
    tolerance = 1e-9 * (1.0 + math.fsum(abs(d) for d in diffs))
    exact = _exact_sign_flip(groups, observed, tolerance)
    if exact is not None:
        return PValue(exact, 0.0, 0, "sign-flip exact")
    backend = _backend(backend)
    draws = max(1, min(draws, int(_WORK_LIMIT[backend] / _work(groups, backend))))
    sums = _drawn_sums(groups, draws, seed, backend)
    if backend == "numpy":
        hits = int((sums >= observed - tolerance).sum())
    else:
        hits = sum(1 for s in sums if s >= observed - tolerance)
    p = (1 + hits) / (1 + draws)
    return PValue(p, math.sqrt(p * (1 - p) / draws), draws, "sign-flip monte-carlo")


# ---- comparison -------------------------------------------------------------------------------
def _is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def difference_interval(diffs: Sequence[float], *, bounded: bool, level: float = 0.95
                        ) -> tuple[float | None, float | None, str]:
    """Interval of mean(diffs) and its method: ``mean_interval`` of (d + 1) / 2 mapped back when
    the scores lie in [0, 1] (``bounded``), the Student t interval otherwise."""
    if bounded:
        interval = mean_interval([(d + 1) / 2 for d in diffs], level=level, bounded=True)
        if interval.low is None or interval.high is None:
            return None, None, interval.method
        return (max(-1.0, 2 * interval.low - 1), min(1.0, 2 * interval.high - 1),
                f"{interval.method} on (d+1)/2")
    interval = mean_interval(diffs, level=level, bounded=False)
    return interval.low, interval.high, interval.method


def _agree(low: float | None, high: float | None, diff: float, significant: bool,
           method: str) -> tuple[float | None, float | None, str]:
    """Move the endpoint on the side of 0 so that the interval excludes 0 iff the test rejects."""
    if low is None or high is None:
        return low, high, method
    covers_zero = low <= 0.0 <= high
    if not significant and not covers_zero:
        return min(low, 0.0), max(high, 0.0), method + ", extended to 0 (test does not reject)"
    if significant and covers_zero:
        if diff > 0:
            return math.nextafter(0.0, 1.0), high, method + ", stopped at 0 (test rejects)"
        return low, math.nextafter(0.0, -1.0), method + ", stopped at 0 (test rejects)"
    return low, high, method


def paired_compare(a: dict[str, float], b: dict[str, float], items: Sequence[str] | None = None,
                   *, draws: int | None = None, n_boot: int | None = None, seed: int = 0,
                   alpha: float = 0.05, backend: str | None = None) -> PairedResult:
    """Compare per-item scores ``a`` and ``b`` (item -> mean over epochs) on common items.

    ``draws`` (``n_boot``, its older name) is the number of Monte-Carlo sign-flip draws where
    the exact test is too large; ``alpha`` sets the significance rule and the interval's level
    (1 - alpha) together, which is what lets them agree; ``backend``: numpy or python draws.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    draws = draws if draws is not None else n_boot if n_boot is not None else DEFAULT_DRAWS
    level = 1 - alpha
    keys = [k for k in (items if items is not None else a) if k in a and k in b]
    n = len(keys)
    if n == 0:
        return PairedResult(0, None, None, None, None, None, None, "none (no common items)",
                            level=level)
    va = [a[k] for k in keys]
    vb = [b[k] for k in keys]
    diffs = [y - x for x, y in zip(va, vb, strict=True)]
    diff = math.fsum(diffs) / n
    if _is_binary(va) and _is_binary(vb):
        worse = sum(1 for x, y in zip(va, vb, strict=True) if x > y)
        better = sum(1 for x, y in zip(va, vb, strict=True) if y > x)
        tested = PValue(mcnemar_exact(worse, better), 0.0, 0, "mcnemar exact")
    else:
        tested = sign_flip_test(diffs, draws=draws, seed=seed, backend=backend)
    bounded = all(0.0 <= v <= 1.0 for v in (*va, *vb))
    low, high, method = difference_interval(diffs, bounded=bounded, level=level)
    low, high, method = _agree(low, high, diff, tested.p_value < alpha, method)
    return PairedResult(n=n, mean_a=math.fsum(va) / n, mean_b=math.fsum(vb) / n, diff=diff,
                        ci_low=low, ci_high=high, p_value=tested.p_value, test=tested.method,
                        p_value_se=tested.se, draws=tested.draws, ci_method=method, level=level)

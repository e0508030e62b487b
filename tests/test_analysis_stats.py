"""Statistics: intervals, pass@k and paired tests against reference values, naive replacements,
and their error rates over many seeds."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path

import pytest

from posttrain.analysis import paired as paired_module
from posttrain.analysis.paired import (
    binomial_two_sided,
    difference_interval,
    mcnemar_exact,
    paired_compare,
    sign_flip_test,
)
from posttrain.analysis.report import summarize
from posttrain.analysis.results import load_results
from posttrain.analysis.stats import (
    mean_ci,
    mean_interval,
    pass_at_k,
    pass_hat_k,
    t_quantile,
    wilson_interval,
)
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.runner.store import Store
from posttrain.types import Score

SIMULATIONS = 200

# statsmodels.stats.proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
WILSON_GOLDEN = {
    (0, 1): (0.0, 0.7934506856227627),
    (1, 1): (0.2065493143772374, 1.0),
    (3, 10): (0.10779126740630104, 0.6032218525388546),
    (10, 10): (0.7224672001371106, 1.0),
    (0, 50): (0.0, 0.07134759913335874),
    (37, 120): (0.23272736988916298, 0.39582997723800684),
    (999, 1000): (0.9943574414020421, 0.9998234536293739),
}
# scipy.stats.binomtest(k, n, 0.5).pvalue
BINOMTEST_GOLDEN = {
    (3, 12): 0.14599609375,
    (0, 7): 0.015625,
    (14, 34): 0.39152830513194203,
    (1450, 3030): 0.019087981722219226,
    (9800, 20000): 0.004780889455902781,
    (14800, 30000): 0.0212420102591982,
    (100, 1000): 1.3403435580012363e-161,
}


# ---- intervals of a mean ----------------------------------------------------------------------
def test_wilson_matches_golden_values() -> None:
    """A Wald interval (p +- z sqrt(p(1-p)/n)) gives [1, 1] at 10/10 and [0, 0] at 0/50."""
    for (k, n), (low, high) in WILSON_GOLDEN.items():
        assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-12)
        interval = mean_interval([1.0] * k + [0.0] * (n - k))
        assert interval.method == "wilson"
        assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)


def test_wilson_matches_statsmodels() -> None:
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    rng = random.Random(4)
    cases = [(rng.randrange(0, n + 1), n) for n in (1, 2, 5, 17, 80, 333, 5000) for _ in range(3)]
    for k, n in cases:
        expected = proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
        assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-12)
        low, high = mean_interval([1.0] * k + [0.0] * (n - k), level=0.9).as_tuple()[1:]
        assert (low, high) == pytest.approx(
            proportion.proportion_confint(k, n, alpha=0.1, method="wilson"), abs=1e-9)


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for level in (0.8, 0.95, 0.99, 0.999):
        for df in (*range(1, 40), 99, 100, 101, 250, 10_000):
            assert t_quantile(level, df) == pytest.approx(stats.t.ppf((1 + level) / 2, df),
                                                          rel=1e-6)


def test_intervals_lie_in_unit_range_contain_the_mean_and_name_their_method() -> None:
    rng = random.Random(21)
    for trial in range(400):
        n = rng.choice([1, 2, 3, 5, 10, 40, 300])
        kind = trial % 4
        if kind == 0:
            values = [float(rng.random() < rng.random()) for _ in range(n)]
        elif kind == 1:
            values = [rng.randint(0, 3) / 3 for _ in range(n)]
        elif kind == 2:
            values = [rng.betavariate(0.3, 0.3) for _ in range(n)]
        else:
            values = [rng.choice([0.0, 1.0, 0.97, 0.5])] * n  # no spread at all
        interval = mean_interval(values)
        assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
        assert interval.high > interval.low  # never zero width
        assert interval.method in ("wilson", "wilson-neff")
        assert interval.n == n and interval.level == 0.95
        assert mean_ci(values) == interval.as_tuple()


def test_n_of_one_and_zero_variance_give_honest_intervals() -> None:
    """A t interval is undefined at n = 1 and zero-width when every score is equal; a bootstrap
    is zero-width too. Neither may let a single item, or 50 identical ones, clear a bar."""
    for value in (0.0, 0.5, 0.9, 1.0):
        interval = mean_interval([value])
        assert interval.high - interval.low > 0.75
    assert mean_interval([1.0]).low < 0.21
    assert mean_interval([0.9] * 5).low < 0.6  # five items at 0.9 do not clear 0.6
    wide = mean_interval([0.5] * 50)
    assert wide.low < 0.47 and wide.high > 0.53 and wide.method == "wilson-neff"
    big = mean_interval([0.5] * 10_000)
    assert 0.0 < big.high - big.low < 0.01  # honest, and still shrinks with n


def test_unbounded_values_use_student_t_and_bounded_can_be_forced() -> None:
    interval = mean_interval([2.0, 3.0, 4.0])
    assert interval.method == "student-t"
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df 2) * sd 1 / sqrt(3)
    assert (interval.low, interval.high) == pytest.approx((3 - half, 3 + half), rel=1e-9)
    assert mean_interval([7.0]).low is None
    assert mean_interval([0.2, 0.4], bounded=False).method == "student-t"
    with pytest.raises(ValueError):
        mean_interval([1.5], bounded=True)
    assert mean_interval([]).estimate is None and mean_interval([]).method.startswith("none")


def _beta_epochs(rng: random.Random, a: float, b: float) -> float:
    p = rng.betavariate(a, b)
    return sum(rng.random() < p for _ in range(3)) / 3


@pytest.mark.parametrize("name", ["epochs of mixed items", "rare outlier", "no spread seen"])
def test_bounded_interval_coverage(name: str) -> None:
    """Per-item means over 3 epochs, 5% of items at 0 among 0.9s, and 2% at 1 among 0.5s:
    coverage near or above 95% at n = 5, 20 and 100 (a t interval gets 0.36 on the last one at
    n = 20, where most samples show no spread)."""
    draw, truth = {
        "epochs of mixed items": (lambda r: _beta_epochs(r, 0.5, 0.5), 0.5),
        "rare outlier": (lambda r: 0.9 if r.random() < 0.95 else 0.0, 0.855),
        "no spread seen": (lambda r: 0.5 if r.random() < 0.98 else 1.0, 0.51),
    }[name]
    rng = random.Random(name)
    for n in (5, 20, 100):
        covered = 0
        for _ in range(SIMULATIONS):
            interval = mean_interval([draw(rng) for _ in range(n)])
            covered += interval.low <= truth <= interval.high
        assert covered / SIMULATIONS >= 0.93, (name, n)


# ---- pass@k -----------------------------------------------------------------------------------
def _subsets(n: int, c: int, k: int) -> tuple[float, float]:
    """pass@k and pass^k by definition: over every k-subset of the n samples (c correct), the
    share with at least one correct and the share with all correct."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    return (sum(any(s) for s in subsets) / len(subsets),
            sum(all(s) for s in subsets) / len(subsets))


def test_pass_at_k_and_pass_hat_k_equal_their_definition() -> None:
    """The unbiased estimators equal the subset average exactly; the naive c/n, 1-(1-c/n)^k or
    (c/n)^k do not (e.g. n=4, c=2, k=2: 5/6, not 1/2 or 3/4)."""
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                at, hat = _subsets(n, c, k)
                assert pass_at_k(n, c, k) == pytest.approx(at, abs=1e-12)
                assert pass_hat_k(n, c, k) == pytest.approx(hat, abs=1e-12)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    # Chen et al.'s numerically stable product form, at a size where comb() is huge
    expected = 1 - math.prod(1 - 100 / i for i in range(198, 201))
    assert pass_at_k(200, 3, 100) == pytest.approx(expected, rel=1e-12)


def test_pass_at_k_zero_correct_is_zero_and_too_few_samples_raise() -> None:
    for n in (1, 2, 5):
        for k in range(1, n + 1):
            assert pass_at_k(n, 0, k) == 0.0
            assert pass_hat_k(n, 0, k) == 0.0
    for n, c, k in [(1, 0, 2), (1, 1, 2), (3, 3, 4), (2, 0, 5)]:
        with pytest.raises(ValueError, match="not computable"):
            pass_at_k(n, c, k)
        with pytest.raises(ValueError, match="not computable"):
            pass_hat_k(n, c, k)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_report_counts_items_too_short_for_k_and_never_as_a_pass(tmp_path: Path) -> None:
    """Item q000 passes both epochs; q001 fails its only answered epoch (the other never ran).
    pass^1 = 0.5; at k = 2 only q000 is computable, and q001 is counted, not dropped silently;
    a failed request and an unscored sample are trials that did not pass."""
    store = Store(tmp_path / "k.db")
    items = make_items(4)

    def grade(item, text, epoch):
        if item.id == "q002" and epoch == 1:
            return [Score.unscored("judge reply did not parse", name="exact")]
        passed = item.id in ("q000", "q002")
        return [Score(value=float(passed), passed=passed, name="exact")]

    run = simulate_run(store, "k", StubModel("m", 1.0), items, seed=0, epochs=2, grade=grade)
    results = load_results(store, run.id)
    results.samples = [s for s in results.samples if not (s.item_id == "q001" and s.epoch == 1)]
    failed = next(s for s in results.samples if s.item_id == "q003" and s.epoch == 0)
    failed.status, failed.value, failed.passed = "error", None, None
    summary = summarize(results)
    # per item (n, c): q000 (2, 2), q001 (1, 0), q002 (2, 1: its unscored epoch is no pass),
    # q003 (2, 0)
    assert summary["pass_k_not_computable"] == {"1": 0, "2": 1}
    assert summary["pass_at_k"]["1"] == pytest.approx(round((1 + 0 + 0.5 + 0) / 4, 4))
    assert summary["pass_hat_k"]["1"] == summary["pass_at_k"]["1"]
    assert summary["pass_at_k"]["2"] == pytest.approx(round((1 + 1 + 0) / 3, 4))
    assert summary["pass_hat_k"]["2"] == pytest.approx(round((1 + 0 + 0) / 3, 4))


# ---- exact binomial and McNemar ---------------------------------------------------------------
def test_mcnemar_known_values() -> None:
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    assert binomial_two_sided(3, 3) == pytest.approx(0.25)
    assert binomial_two_sided(15_000, 30_000) == 1.0


def test_binomial_matches_golden_binomtest_at_any_size() -> None:
    """Exact well past 20,000 pairs, where the old code switched to a normal approximation."""
    for (k, n), expected in BINOMTEST_GOLDEN.items():
        assert binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-9)
        assert binomial_two_sided(n - k, n) == pytest.approx(expected, rel=1e-9)


def test_binomial_matches_scipy_binomtest() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(8)
    for n in (1, 2, 9, 50, 333, 5_000, 20_000, 100_000, 1_000_000):
        for _ in range(4):
            k = min(n, max(0, round(rng.gauss(n / 2, 1.5 * math.sqrt(n) + 1))))
            expected = stats.binomtest(k, n, 0.5).pvalue
            assert binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_binomial_is_fast_for_large_n() -> None:
    start = time.perf_counter()
    for k in range(9_700, 10_000, 10):
        binomial_two_sided(k, 20_000)
    assert (time.perf_counter() - start) / 30 < 0.01


# ---- sign-flip test ---------------------------------------------------------------------------
def _enumerated(diffs: list[float]) -> float:
    observed = abs(sum(diffs))
    sums = [abs(sum(s * d for s, d in zip(signs, diffs, strict=True)))
            for signs in itertools.product((1, -1), repeat=len(diffs))]
    return sum(1 for s in sums if s >= observed - 1e-9) / len(sums)


def test_sign_flip_exact_known_cases_and_enumeration() -> None:
    # 8 equally likely sign patterns of (1, 2, 3); only +-(1+2+3) reach |sum| >= 6
    assert sign_flip_test([1.0, 2.0, 3.0]) == paired_module.PValue(0.25, 0.0, 0, "sign-flip exact")
    assert sign_flip_test([1.0, -2.0, 3.0]).p_value == pytest.approx(6 / 8)
    assert sign_flip_test([0.0, 0.0]).p_value == 1.0
    rng = random.Random(3)
    for trial in range(40):
        n = rng.randint(1, 11)
        if trial % 2:
            diffs = [rng.randint(-3, 3) / 3 for _ in range(n)]  # epochs: ties and a lattice
        else:
            diffs = [rng.uniform(-0.4, 0.6) for _ in range(n)]
        result = sign_flip_test(diffs)
        assert result.method in ("sign-flip exact", "sign-flip (no differences)")
        assert result.p_value == pytest.approx(_enumerated(diffs), abs=1e-12)


def test_exact_sign_flip_of_many_equal_differences_is_the_binomial_test_in_floats(
        monkeypatch) -> None:
    """Scores of 0, 0.5 and 1 give many differences of one size: the exact test's weights are
    Binomial(m, 1/2) in floating point, not ``comb(m, b) / 2**m`` on m-bit integers (which
    made ``compare`` of two 20,000-item runs take ~10 s and of 40,000 minutes: O(m^2)). The
    p-value is the binomial test's, to 1e-12 relative."""
    def no_big_integers(*_args: object) -> int:
        raise AssertionError("exact weights from big-integer binomials")

    monkeypatch.setattr(paired_module.math, "comb", no_big_integers)
    rng = random.Random(7)
    for n, lean in ((20_000, 0.52), (3_001, 0.5), (40_000, 0.505)):
        diffs = [0.5 if rng.random() < lean else -0.5 for _ in range(n)]
        result = sign_flip_test(diffs)
        assert result.method == "sign-flip exact"
        positive = sum(1 for d in diffs if d > 0)
        assert result.p_value == pytest.approx(binomial_two_sided(positive, n), rel=1e-12)
    # two sizes (0.5 and 1): a small case checked against every sign pattern
    diffs = [0.5, -0.5, 1.0, 0.5, -1.0, 0.5, 0.5, 1.0, -0.5, 0.5, 1.0]
    assert sign_flip_test(diffs).p_value == pytest.approx(_enumerated(diffs), abs=1e-12)


@pytest.mark.parametrize("backend", ["python", "numpy"])
def test_sign_flip_monte_carlo_states_its_error(backend: str, monkeypatch) -> None:
    """Forced to draw: within 4 standard errors of the exact p-value, never 0, seeded."""
    if backend == "numpy":
        pytest.importorskip("numpy")
    rng = random.Random(5)
    diffs = [rng.uniform(-0.3, 0.5) for _ in range(10)] + [1 / 3] * 9
    exact = sign_flip_test(diffs)
    assert exact.method == "sign-flip exact" and exact.se == 0.0
    monkeypatch.setattr(paired_module, "EXACT_STEPS", 0)
    drawn = sign_flip_test(diffs, draws=4000, seed=2, backend=backend)
    assert drawn.method == "sign-flip monte-carlo" and drawn.draws == 4000
    assert drawn.se == pytest.approx(math.sqrt(drawn.p_value * (1 - drawn.p_value) / 4000))
    assert abs(drawn.p_value - exact.p_value) < 4 * drawn.se
    assert drawn == sign_flip_test(diffs, draws=4000, seed=2, backend=backend)
    far = sign_flip_test([0.5] * 40, draws=500, backend=backend)
    assert far.p_value == pytest.approx(1 / 501)  # (1 + 0) / (1 + draws), never 0


# ---- paired comparisons -----------------------------------------------------------------------
def _binary_runs(rng: random.Random, n: int, pa: float, pb: float) -> tuple[dict, dict]:
    a = {f"i{k}": float(rng.random() < pa) for k in range(n)}
    b = {f"i{k}": float(rng.random() < pb) for k in range(n)}
    return a, b


def _paired_runs(rng: random.Random, n: int, p10: float, p01: float) -> tuple[dict, dict]:
    """Pass/fail pairs: A-only passes with probability p10, B-only with p01."""
    a, b = {}, {}
    for k in range(n):
        u = rng.random()
        a[k], b[k] = ((1.0, 0.0) if u < p10 else (0.0, 1.0) if u < p10 + p01
                      else (1.0, 1.0) if rng.random() < 0.5 else (0.0, 0.0))
    return a, b


def _random_pairs(rng: random.Random, trial: int) -> tuple[dict, dict]:
    n = rng.choice([1, 2, 3, 6, 15, 40, 120, 600])
    kind = trial % 5
    if kind == 0:
        return _paired_runs(rng, n, rng.random() * 0.3, rng.random() * 0.3)
    if kind == 1:
        a = {k: rng.randint(0, 3) / 3 for k in range(n)}
        return a, {k: min(1.0, v + rng.choice([0, 0, 1 / 3])) for k, v in a.items()}
    if kind == 2:
        a = {k: rng.random() for k in range(n)}
        return a, {k: min(1.0, max(0.0, v + rng.gauss(0.03, 0.1))) for k, v in a.items()}
    if kind == 3:
        a = {k: float(rng.random() < 0.7) for k in range(n)}
        return a, dict(a)  # identical runs
    a = {k: 0.0 for k in range(n)}
    return a, {k: float(rng.random() < 0.15) for k in range(n)}  # B never loses an item


def test_interval_agrees_with_test_and_stays_in_range() -> None:
    """On binary, epoch-mean, continuous, identical and one-sided data of every size, the
    interval excludes 0 exactly when p < alpha, lies in [-1, 1], holds the difference and is
    never zero-width; also at alpha = 0.01 (a 99% interval)."""
    rng = random.Random(31)
    for trial in range(300):
        a, b = _random_pairs(rng, trial)
        alpha = 0.05 if trial % 3 else 0.01
        result = paired_compare(a, b, draws=2000, seed=trial, alpha=alpha)
        assert result.level == pytest.approx(1 - alpha)
        assert -1.0 <= result.ci_low <= result.diff <= result.ci_high <= 1.0
        assert result.ci_high > result.ci_low
        excludes_zero = not result.ci_low <= 0.0 <= result.ci_high
        assert result.significant() == excludes_zero == (result.p_value < alpha), result
        assert result.p_value_se is not None and result.ci_method


def test_agreement_rule_moves_only_the_endpoint_at_zero() -> None:
    """Where the interval alone disagrees with the test, the endpoint on the side of 0 moves to
    0 and the method says so; the other endpoint stays."""
    # 5 of 5 items fixed: the interval alone excludes 0 but the exact test has p = 1/16
    low, high, method = difference_interval([1.0] * 5, bounded=True)
    assert low > 0.1 and method == "wilson on (d+1)/2"
    fixed = paired_compare({k: 0.0 for k in range(5)}, {k: 1.0 for k in range(5)})
    assert fixed.p_value == pytest.approx(1 / 16) and not fixed.significant()
    assert fixed.ci_low == 0.0 and fixed.ci_high == high
    assert fixed.ci_method == "wilson on (d+1)/2, extended to 0 (test does not reject)"
    # six items each 0.1 better: the exact sign-flip test has p = 2/64, the interval alone
    # (no spread, so wide) covers 0: it now stops just short of 0
    low, high, _ = difference_interval([0.1] * 6, bounded=True)
    assert low < 0
    small = paired_compare({k: 0.5 for k in range(6)}, {k: 0.6 for k in range(6)})
    assert small.p_value == pytest.approx(2 / 64) and small.significant()
    assert 0.0 < small.ci_low < 1e-300 and small.ci_high == pytest.approx(high)
    assert small.ci_method.endswith("stopped at 0 (test rejects)")


def test_one_item_and_identical_runs_give_wide_intervals() -> None:
    one = paired_compare({"x": 0.0}, {"x": 1.0})
    assert one.p_value == 1.0 and one.ci_high - one.ci_low > 1.0
    rng = random.Random(2)
    a = {k: float(rng.random() < 0.6) for k in range(200)}
    same = paired_compare(a, a)
    assert same.diff == 0 and same.p_value == 1.0
    assert same.ci_low < -0.01 and same.ci_high > 0.01  # 200 agreeing items: not exactly 0
    halves = {k: 0.5 for k in range(30)}
    assert paired_compare(halves, halves).ci_high > 0.05


def test_paired_interval_coverage_where_wald_fails() -> None:
    """n = 40, B fixes 20% of items and never loses one: a Wald or sign-flip-inversion interval
    covers the true +20% about 90% of the time; this one near or above 95%. Also a balanced
    case and a small one."""
    rng = random.Random(41)
    for n, p10, p01 in [(40, 0.0, 0.2), (100, 0.05, 0.25), (30, 0.1, 0.3)]:
        covered = 0
        for sim in range(SIMULATIONS * 2):
            a, b = _paired_runs(rng, n, p10, p01)
            result = paired_compare(a, b, seed=sim)
            covered += result.ci_low <= p01 - p10 <= result.ci_high
        assert covered / (SIMULATIONS * 2) >= 0.93, (n, p10, p01)


def exact_mcnemar_power(n: int, pa: float, pb: float, alpha: float = 0.05) -> float:
    """Exact power of the exact McNemar test for independent outcomes of accuracy pa and pb."""
    p10, p01 = pa * (1 - pb), pb * (1 - pa)
    pd = p10 + p01
    q = p10 / pd
    total = 0.0
    for d in range(n + 1):
        p_d = math.comb(n, d) * pd**d * (1 - pd) ** (n - d)
        if p_d < 1e-12:
            continue
        # the test is symmetric: reject when min(b, d - b) <= k
        k = -1
        while k + 1 <= d // 2 and mcnemar_exact(k + 1, d - k - 1) < alpha:
            k += 1
        for b in [*range(0, k + 1), *range(d - k, d + 1)] if k >= 0 else []:
            total += p_d * math.comb(d, b) * q**b * (1 - q) ** (d - b)
    return total


def test_planted_difference_detected_at_the_stated_power() -> None:
    n, pa, pb = 200, 0.60, 0.75
    power = exact_mcnemar_power(n, pa, pb)
    assert 0.8 < power < 0.95  # the design: a difference a 200-item eval should usually catch
    rng = random.Random(11)
    detected = 0
    for _ in range(SIMULATIONS):
        a, b = _binary_runs(rng, n, pa, pb)
        result = paired_compare(a, b, seed=1)
        assert result.test == "mcnemar exact" and result.p_value_se == 0.0
        detected += result.significant() and result.diff > 0
    assert abs(detected / SIMULATIONS - power) < 0.07


def test_no_difference_false_positive_rate_binary() -> None:
    n, p = 100, 0.6
    size = exact_mcnemar_power(n, p, p)  # the exact test's true size (conservative, < 5%)
    rng = random.Random(5)
    hits = sum(paired_compare(*_binary_runs(rng, n, p, p)).significant()
               for _ in range(SIMULATIONS))
    assert size < 0.05
    assert hits / SIMULATIONS <= 0.08
    assert abs(hits / SIMULATIONS - size) < 0.04


def test_no_difference_false_positive_rate_graded_scores() -> None:
    """Item means over 3 epochs (not binary): the exact sign-flip test, at or a little under 5%
    under the null (its lattice of p-values is discrete: 0.030-0.041 over 1,000 runs of seeds
    7-9)."""
    rng = random.Random(7)
    hits = 0
    sims = SIMULATIONS * 5
    for sim in range(sims):
        difficulty = [rng.random() for _ in range(80)]
        a = {f"i{k}": sum(rng.random() < d for _ in range(3)) / 3 for k, d in enumerate(difficulty)}
        b = {f"i{k}": sum(rng.random() < d for _ in range(3)) / 3 for k, d in enumerate(difficulty)}
        result = paired_compare(a, b, draws=2000, seed=sim)
        assert result.test.startswith("sign-flip")
        hits += result.significant()
    assert 0.015 <= hits / sims <= 0.065


@pytest.mark.parametrize("backend", ["python", "numpy"])
def test_twenty_thousand_discordant_pairs_well_under_a_second(backend: str) -> None:
    if backend == "numpy":
        pytest.importorskip("numpy")
    rng = random.Random(1)
    a = {k: float(rng.random() < 0.5) for k in range(30_000)}
    b = {k: 1.0 - v if k < 20_000 else v for k, v in a.items()}  # 20,000 discordant pairs
    start = time.perf_counter()
    result = paired_compare(a, b, backend=backend)
    assert time.perf_counter() - start < 0.5
    assert result.test == "mcnemar exact"
    worse = sum(1 for k in a if a[k] > b[k])
    assert result.p_value == pytest.approx(binomial_two_sided(worse, 20_000), rel=1e-12)


def test_paired_compare_uses_only_common_items() -> None:
    a = {"x": 1.0, "y": 0.0, "z": 1.0}
    b = {"x": 1.0, "y": 1.0, "w": 0.0}
    result = paired_compare(a, b)
    assert result.n == 2
    assert result.diff == pytest.approx(0.5)
    assert paired_compare({}, b).n == 0
    with pytest.raises(ValueError):
        paired_compare(a, b, alpha=1.0)

"""Analysis speed and statistical error rates on synthetic stores (stub models of known accuracy).

Usage::

    python bench/bench_analysis.py            # 2,000 items x 6 models; 1,000 simulations
    python bench/bench_analysis.py --quick    # smaller, for a smoke check
    python bench/bench_analysis.py --discordant 20000   # only the large-compare timing

Prints Markdown tables: wall time of `posttrain compare` (two runs and the matrix), `audit` and
`pick` as whole processes (start-up, store reads, statistics, rendering); the time of one
paired-comparison row with 20,000 discordant pairs (in process, numpy and pure-Python draws,
and `posttrain compare` as a whole process on that store); and the observed false-positive
rate / power / interval coverage of the paired statistics. Figures: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from posttrain.analysis.compare import compare_runs
from posttrain.analysis.paired import binomial_two_sided, paired_compare
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import item_groups
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.runner.store import Store


def build_store(path: Path, n_items: int) -> list[str]:
    store = Store(path)
    items = make_items(n_items, tags=("a", "b", "c", "d"),
                       misgraded=[f"q{i:03d}" for i in range(0, n_items, 50)])
    ladder = [("m1", 0.95, (10, 30)), ("m2", 0.9, (3, 12)), ("m3", 0.85, (1, 4)),
              ("m4", 0.7, (0.4, 1.6)), ("m5", 0.55, (0.15, 0.6)), ("m6", 0.35, (0.05, 0.2))]
    ids = []
    for name, accuracy, price in ladder:
        run = simulate_run(store, "bench", StubModel(name, accuracy, price), items, seed=1)
        ids.append(run.id)
    store.close()
    return ids


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "posttrain.cli.analysis", *argv], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def error_rates(sims: int) -> dict[str, float]:
    rng = random.Random(0)
    null_hits = power_hits = covered = covered_one_sided = 0
    for sim in range(sims):
        a = {f"i{k}": float(rng.random() < 0.6) for k in range(200)}
        b = {f"i{k}": float(rng.random() < 0.6) for k in range(200)}
        null_hits += paired_compare(a, b).significant()
        c = {f"i{k}": float(rng.random() < 0.75) for k in range(200)}
        power = paired_compare(a, c, seed=sim)
        power_hits += power.significant()
        covered += power.ci_low <= 0.15 <= power.ci_high
        # B fixes 20% of 40 items and never loses one: where Wald intervals cover ~90%
        fixes = {k: float(rng.random() < 0.2) for k in range(40)}
        one_sided = paired_compare(dict.fromkeys(fixes, 0.0), fixes, seed=sim)
        covered_one_sided += one_sided.ci_low <= 0.2 <= one_sided.ci_high
    return {"false_positive": null_hits / sims, "power_0.60_vs_0.75_n200": power_hits / sims,
            "coverage": covered / sims, "coverage_one_sided": covered_one_sided / sims}


def discordant_timing(pairs: int) -> list[tuple[str, float]]:
    """Two pass/fail runs with ``pairs`` discordant items (and as many concordant ones)."""
    rng = random.Random(3)
    n = 2 * pairs
    a = {f"i{k}": float(rng.random() < 0.5) for k in range(n)}
    b = {k: 1.0 - v if i < pairs else v for i, (k, v) in enumerate(a.items())}
    rows = []
    for backend in ("numpy", "python"):
        start = time.perf_counter()
        result = paired_compare(a, b, backend=backend)
        rows.append((f"one compare row, {pairs:,} discordant pairs ({backend})",
                     time.perf_counter() - start))
        worse = sum(1 for k in a if a[k] > b[k])
        assert result.p_value == binomial_two_sided(worse, pairs)
    start = time.perf_counter()
    binomial_two_sided(pairs // 2 - 100, pairs)
    rows.append((f"exact binomial p-value, n = {pairs:,}", time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "d.db")
        items = make_items(n, tags=("a", "b"))
        accuracy_b = {item.id: 0.5 for item in items}
        run_a = simulate_run(store, "big", StubModel("a", 0.5), items, seed=1)
        run_b = simulate_run(store, "big", StubModel("b", 0.5), items, seed=2,
                             item_accuracy=accuracy_b)
        start = time.perf_counter()
        ra, rb = load_results(store, run_a.id), load_results(store, run_b.id)
        loading = time.perf_counter() - start
        sa, sb = ra.item_scores(), rb.item_scores()
        found = sum(1 for k in sa if sa[k] != sb.get(k))
        start = time.perf_counter()
        report = compare_runs(ra, rb)
        comparing = time.perf_counter() - start
        statistics = []
        for items_of_row in [None, *item_groups([ra, rb], None).values()]:
            start = time.perf_counter()
            paired_compare(sa, sb, items_of_row)
            statistics.append(time.perf_counter() - start)
        store.close()
        process = timed(["compare", run_a.id, run_b.id, "--store", str(Path(tmp) / "d.db"),
                         "--json"])
    rows += [
        (f"load_results, 2 runs of {n:,} items (in process)", loading),
        (f"compare_runs, {found:,} discordant, {1 + len(report['groups'])} rows + "
         f"{len(report['components'])} components (in process)", comparing),
        ("of which statistics, slowest row (in process)", max(statistics)),
        ("posttrain compare A B --json (whole process)", process),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--discordant", type=int, default=0,
                        help="only time compare rows with this many discordant pairs")
    args = parser.parse_args()
    if args.discordant:
        print("| step | seconds |\n| --- | --- |")
        for name, seconds in discordant_timing(args.discordant):
            print(f"| {name} | {seconds:.3f} |")
        return
    n_items, sims = (300, 200) if args.quick else (2000, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        start = time.perf_counter()
        ids = build_store(db, n_items)
        build = time.perf_counter() - start
        rows = [
            ("write store (6 runs)", build),
            ("compare RUN_A RUN_B", timed(["compare", ids[0], ids[1], "--store", str(db)])),
            ("compare EVAL (matrix)", timed(["compare", "bench", "--store", str(db)])),
            ("audit EVAL", timed(["audit", "bench", "--store", str(db)])),
            ("pick EVAL --bar 0.8", timed(["pick", "bench", "--bar", "0.8", "--store", str(db)])),
        ]
    print(f"| step ({n_items} items x 6 models) | seconds |\n| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    rates = error_rates(sims)
    print(f"\n| statistic ({sims} simulations) | observed | expected |\n| --- | --- | --- |")
    se = math.sqrt(0.05 * 0.95 / sims)
    print(f"| false positives, no difference (McNemar exact) | {rates['false_positive']:.3f} | "
          f"<= 0.05 (+-{2 * se:.3f}) |")
    print(f"| power, 0.60 vs 0.75, 200 items | {rates['power_0.60_vs_0.75_n200']:.3f} | "
          "0.874 (exact) |")
    print(f"| 95% interval coverage, 0.60 vs 0.75, 200 items | {rates['coverage']:.3f} | "
          f">= 0.95 (+-{2 * se:.3f}) |")
    print(f"| 95% interval coverage, +20% fixes and no losses, 40 items | "
          f"{rates['coverage_one_sided']:.3f} | >= 0.95 (+-{2 * se:.3f}) |")
    print("\n| step | seconds |\n| --- | --- |")
    for name, seconds in discordant_timing(20_000 if not args.quick else 2_000):
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()

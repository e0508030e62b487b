"""Grades per second for the cheap grader types, and the python sandbox's per-call overhead.

    python bench/bench_graders.py [--n 5000]

Single thread, one process; samples are ~40-word answers against a ~40-word reference.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from posttrain.graders import build_grader
from posttrain.types import Completion

WORDS = ["the", "of", "model", "answer", "user", "table", "column", "grade", "paris", "london", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "eval", "score", "reward", "sample", "item", "token", "cache", "run", "store", "report"]
OUT = "{{sample.output_text}}"


def corpus(n: int, rng: random.Random) -> list[tuple[dict, dict]]:
    rows = []
    for _ in range(n):
        ref = " ".join(rng.choice(WORDS) for _ in range(40))
        text = " ".join(w if rng.random() < 0.7 else rng.choice(WORDS) for w in ref.split())
        rows.append((Completion(text=text).to_sample(), {"ref": ref}))
    return rows


SPECS = {
    "string_check": {"type": "string_check", "input": OUT, "reference": "{{item.ref}}",
                     "operation": "ilike"},
    "regex": {"type": "regex", "pattern": r"\b(paris|london)\b.*\bscore\b", "flags": "i"},
    "fuzzy_match": {"type": "text_similarity", "input": OUT, "reference": "{{item.ref}}",
                    "evaluation_metric": "fuzzy_match", "pass_threshold": 0.5},
    "rouge_l": {"type": "text_similarity", "input": OUT, "reference": "{{item.ref}}",
                "evaluation_metric": "rouge_l", "pass_threshold": 0.5},
    "bleu": {"type": "text_similarity", "input": OUT, "reference": "{{item.ref}}",
             "evaluation_metric": "bleu", "pass_threshold": 0.5},
}


def rate(spec: dict, rows: list[tuple[dict, dict]]) -> float:
    grader = build_grader(spec)
    grader.grade(*rows[0])  # warm-up (lazy imports)
    started = time.perf_counter()
    for sample, item in rows:
        grader.grade(sample, item)
    return len(rows) / (time.perf_counter() - started)


def sandbox(calls: int) -> dict[str, float]:
    from posttrain.graders.sandbox import SandboxPool

    pool = SandboxPool(size=1)
    source = "def grade(sample, item):\n    return len(sample['output_text']) / 1000\n"
    sample = Completion(text="hello " * 40).to_sample()
    started = time.perf_counter()
    pool.run(source, [sample, {}])
    cold = time.perf_counter() - started
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        result = pool.run(source, [sample, {}])
        times.append(time.perf_counter() - t)
        assert result.ok
    confinement = pool.confinement
    pool.close()
    times.sort()
    return {"cold_start_ms": cold * 1e3, "warm_median_ms": statistics.median(times) * 1e3,
            "warm_p95_ms": times[int(len(times) * 0.95)] * 1e3, "confinement": confinement}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--sandbox-calls", type=int, default=2000)
    args = parser.parse_args()
    rows = corpus(args.n, random.Random(0))
    print(f"{'grader':<14} {'grades/s':>10}")
    for name, spec in SPECS.items():
        print(f"{name:<14} {rate(spec, rows):>10,.0f}")
    result = sandbox(args.sandbox_calls)
    print(f"python sandbox: cold start {result['cold_start_ms']:.1f} ms, warm per call "
          f"median {result['warm_median_ms']:.3f} ms, p95 {result['warm_p95_ms']:.3f} ms "
          f"(confinement: {result['confinement']})")


if __name__ == "__main__":
    main()

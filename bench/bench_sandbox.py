"""The sandbox's per-call cost: a python grader and a code_exec grade, warm, per layer.

    python bench/bench_sandbox.py [--calls 1000] [--layers kernel bwrap unsafe-none]

Each call runs in a fresh child of a warm worker (fork, limits, run, plain-data reply, kill
what is left, empty the folder); a layer that cannot be had here is reported and skipped.
One thread, one worker; times are wall-clock per call as the grader sees them.
"""

from __future__ import annotations

import argparse
import statistics
import time

from posttrain.graders import build_grader, sandbox
from posttrain.graders.sandbox import SandboxPool, SandboxUnavailable
from posttrain.types import Completion

PYTHON = {"type": "python", "name": "py",
          "source": "def grade(sample, item):\n    return len(sample['output_text']) / 1000\n"}
CODE = {"type": "code_exec", "name": "code", "tests": "{{item.tests}}", "timeout": 5}
TESTS = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}


def _times(grade, calls: int) -> dict[str, float]:
    grade()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        grade()
        times.append(time.perf_counter() - started)
    times.sort()
    return {"median_ms": statistics.median(times) * 1e3,
            "p95_ms": times[int(len(times) * 0.95)] * 1e3}


def bench(layer: str, calls: int) -> dict[str, object] | str:
    pool = SandboxPool(size=1, mode=layer)
    started = time.perf_counter()
    try:
        confinement = pool.confinement
    except SandboxUnavailable as exc:
        return f"unavailable: {str(exc)[:160]}"
    cold = (time.perf_counter() - started) * 1e3
    previous, sandbox._POOL = sandbox._POOL, pool
    try:
        python = build_grader(PYTHON)
        sample = Completion(text="hello " * 40).to_sample()
        code = build_grader(CODE)
        answer = Completion(text="def add(a, b):\n    return a + b\n").to_sample()
        assert code.grade(answer, TESTS).value == 1.0
        return {"confinement": confinement, "cold_start_ms": cold,
                "python": _times(lambda: python.grade(sample, {}), calls),
                "code_exec": _times(lambda: code.grade(answer, TESTS), calls)}
    finally:
        sandbox._POOL = previous
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--layers", nargs="+", default=["kernel", "bwrap", "unsafe-none"])
    args = parser.parse_args()
    for layer in args.layers:
        result = bench(layer, args.calls)
        if isinstance(result, str):
            print(f"{layer}: {result}")
            continue
        py, code = result["python"], result["code_exec"]
        print(f"{layer}: {result['confinement']}\n"
              f"  cold start {result['cold_start_ms']:.0f} ms; warm per call: python grader "
              f"median {py['median_ms']:.2f} ms, p95 {py['p95_ms']:.2f} ms; code_exec (2 tests) "
              f"median {code['median_ms']:.2f} ms, p95 {code['p95_ms']:.2f} ms")


if __name__ == "__main__":
    main()

"""The sandbox's per-call cost: a python grader and a code_exec grade, warm, per layer; and a
regrade of sandbox-graded answers on 1 worker vs one per core.

    python bench/bench_sandbox.py [--calls 1000] [--layers kernel bwrap unsafe-none]
    python bench/bench_sandbox.py --regrade 2000 [--graders light cpu code_exec]
                                  [--workers 1 0] [--repeats 2]

Each call runs in a fresh child of a warm worker (fork, limits, run, plain-data reply, kill
what is left, empty the folder); a layer that cannot be had here is reported and skipped.
One thread, one worker; times are wall-clock per call as the grader sees them.

``--regrade N``: ``posttrain eval`` of N items against the loopback stub builds a store per
grader (``light``: a python grader that reads the answer's length; ``cpu``: a python grader
that also runs a 300,000-step loop, ~13 ms a call; ``code_exec``: the answer's function checked
by 2 tests), then ``posttrain regrade latest --sandbox-workers W`` for each W of ``--workers``
(0: no option, the default of one worker per core), in turn, ``--repeats`` times: whole
processes, wall clock from the parent and the grades/s the command prints in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


REGRADERS = {
    "light": '  - {type: python, name: light, source: "def grade(sample, item):\\n'
             '    return len(sample[\'output_text\']) / 1000\\n"}\n',
    "cpu": '  - {type: python, name: cpu, source: "def grade(sample, item):\\n    total = 0\\n'
           '    for i in range(300000):\\n        total += i\\n'
           '    return float(total > 0)\\n"}\n',
    "code_exec": '  - {type: code_exec, name: code, tests: "{{item.tests}}", timeout: 5}\n',
}


def _regrade_store(folder: Path, n: int, grader: str, env: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    with (folder / "data.jsonl").open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({
                "id": f"q{i}", "question": f"add #{i} [[answer:def add(a, b): return a + b]]",
                "tests": ["assert add(1, 2) == 3", f"assert add({i}, 1) == {i + 1}"]}) + "\n")
    (folder / "eval.yaml").write_text(
        "name: regrade-bench\ndataset: data.jsonl\nmessages:\n"
        '  - {role: user, content: "{{item.question}}"}\ngraders:\n' + REGRADERS[grader])
    store = folder / "store.db"
    subprocess.run([sys.executable, "-m", "posttrain.cli", "eval", str(folder / "eval.yaml"),
                    "--model", "openai:stub", "--store", str(store), "--no-progress"],
                   env=env, check=True, capture_output=True)
    return store


def bench_regrade(n: int, graders: list[str], workers: list[int], repeats: int) -> None:
    from bench_runner import start_stub

    from posttrain.graders.sandbox import cpu_cores

    print(f"regrade of {n} answers; {cpu_cores()} cores; load average "
          f"{os.getloadavg()[0]:.2f} at start")
    print("| grader | workers | wall s (process) | grades/s (printed) | mean score | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    stub, base = start_stub(0.0)
    env = {**os.environ, "OPENAI_BASE_URL": base}
    env.pop("POSTTRAIN_SANDBOX_WORKERS", None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for grader in graders:
                store = _regrade_store(Path(tmp) / grader, n, grader, env)
                for _ in range(repeats):
                    for count in workers:
                        option = ["--sandbox-workers", str(count)] if count else []
                        load = os.getloadavg()[0]
                        started = time.perf_counter()
                        done = subprocess.run(
                            [sys.executable, "-m", "posttrain.cli", "regrade", "latest",
                             "--store", str(store), "--json", *option],
                            env=env, check=True, capture_output=True, text=True)
                        wall = time.perf_counter() - started
                        run = json.loads(done.stdout)["runs"][0]
                        rate = run["regrade"]
                        assert rate["grades"] == n, rate
                        print(f"| {grader} | {rate['sandbox_workers']}"
                              f"{'' if count else ' (per core)'} | {wall:.2f} | "
                              f"{rate['grades_per_s']:.0f} | {run['score']:.3f} | {load:.2f} |",
                              flush=True)
    finally:
        stub.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--layers", nargs="+", default=["kernel", "bwrap", "unsafe-none"])
    parser.add_argument("--regrade", type=int, default=0, metavar="N")
    parser.add_argument("--graders", nargs="+", default=["light", "cpu"], choices=REGRADERS)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.regrade:
        bench_regrade(args.regrade, args.graders, args.workers, args.repeats)
        return
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

"""Start-up of light commands and the plugin registry's cost, as a user meets them.

Whole processes (``python -m posttrain.cli ...``), median of N runs each, wall time; plus, in
process, the source scan that finds posttrain's own graders, providers, suites and commands,
and the first lookup of one grader type (which imports only its module).

    python bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["eval", "--help"],
    ["suites", "list"],
    ["plugins"],
]

EVAL = """name: startup
items: [{id: a, q: hi, a: hi}]
messages: [{role: user, content: "{{item.q}}"}]
graders: [{type: string_check, name: exact, input: "{{sample.output_text}}",
           reference: "{{item.a}}", operation: eq}]
"""


def wall(args: list[str], runs: int, cwd: str) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "posttrain.cli", *args], cwd=cwd, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_process(runs: int) -> dict[str, float]:
    code = ("import time; t = time.perf_counter(); from posttrain import plugins; "
            "[plugins.own_names(k) for k in plugins.KINDS]; t1 = time.perf_counter(); "
            "from posttrain.graders.registry import build_grader; "
            "build_grader({'type': 'string_check', 'name': 'x', 'input': 'a', 'reference': 'a', "
            "'operation': 'eq'}); t2 = time.perf_counter(); "
            "print(t1 - t, t2 - t1)")
    scans, lookups = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        scans.append(float(out[0]))
        lookups.append(float(out[1]))
    return {"scan": statistics.median(scans), "first_lookup": statistics.median(lookups)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "eval.yaml").write_text(EVAL)
        print(f"load average {os.getloadavg()[0]:.1f}; median of {args.runs} runs")
        print("| command | wall (s) |\n| --- | --- |")
        for command in [*COMMANDS, ["grade", "--help"]]:
            print(f"| `posttrain {' '.join(command)}` | {wall(command, args.runs, tmp):.3f} |")
        timings = in_process(args.runs)
        print(f"\nsource scan of the four kinds: {timings['scan'] * 1000:.1f} ms; first "
              f"string_check lookup (imports its module): {timings['first_lookup'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

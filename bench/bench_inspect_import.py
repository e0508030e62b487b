"""Importing big Inspect logs: time and peak memory of `posttrain import inspect-log`.

Writes logs of N samples with inspect-ai's own `write_eval_log` (.json and .eval; the .eval
writer is slow at this size, so the logs are cached in --cache), then imports each in a fresh
process and reports wall time and the process's peak RSS, beside what inspect-ai's own readers
take on the same file: `read_eval_log` (the whole log in memory) and `read_eval_log_samples`
(timed on its first 200 samples).

    flock /tmp/posttrain-heavy.lock python bench/bench_inspect_import.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_READ = """
import resource, sys, time
from inspect_ai.log import read_eval_log, read_eval_log_samples
t = time.perf_counter()
if sys.argv[2] == "full":
    log = read_eval_log(sys.argv[1])
    n = len(log.samples)
else:
    n = 0
    for _ in read_eval_log_samples(sys.argv[1], exclude_fields={"events", "store"}):
        n += 1
        if n == 200:
            break
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_log(path: Path, n: int) -> None:
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        write_eval_log,
    )
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageUser,
        ModelOutput,
        ModelUsage,
    )
    from inspect_ai.scorer import Score

    system = "You are a careful assistant. Answer with the number only. " * 3
    samples = []
    right = 0
    for i in range(n):
        question = f"Item {i}: what is {i} plus {i % 7}? Think about it, then answer."
        answer = str(i + i % 7) if i % 4 else "I am not sure"
        right += answer == str(i + i % 7)
        output = ModelOutput.from_content("openai/gpt-4o-mini", answer)
        output.usage = ModelUsage(input_tokens=60, output_tokens=4, total_tokens=64)
        output.time = 0.4
        samples.append(EvalSample(
            id=i + 1, epoch=1, input=[ChatMessageSystem(content=system),
                                      ChatMessageUser(content=question)],
            target=str(i + i % 7), metadata={"bucket": i % 10},
            messages=[ChatMessageSystem(content=system), ChatMessageUser(content=question),
                      ChatMessageAssistant(content=answer)],
            output=output, model_usage={"openai/gpt-4o-mini": output.usage},
            scores={"match": Score(value="C" if answer == str(i + i % 7) else "I",
                                   answer=answer, explanation="exact match")}))
    log = EvalLog(status="success", eval=EvalSpec(
        created="2026-01-05T10:00:00+00:00", task="sums", task_id="sums-1", run_id=f"r{n}",
        eval_id=f"e{n}", model="openai/gpt-4o-mini", config=EvalConfig(),
        dataset=EvalDataset(name="sums", samples=n, sample_ids=list(range(1, n + 1)))),
        results=EvalResults(total_samples=n, completed_samples=n, scores=[EvalScore(
            name="match", scorer="match",
            metrics={"accuracy": EvalMetric(name="accuracy", value=right / n)})]),
        samples=samples)
    write_eval_log(log, str(path), format=path.suffix.lstrip("."))


def one(cmd: list[str]) -> tuple[float, float, str]:
    """Run in a fresh helper so RUSAGE_CHILDREN's maximum is this command's alone."""
    helper = ("import json, resource, subprocess, sys, time\n"
              "t = time.perf_counter()\n"
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True)\n"
              "print(json.dumps([time.perf_counter() - t, resource.getrusage("
              "resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.stdout]))\n")
    out = subprocess.run([sys.executable, "-c", helper, *cmd], capture_output=True, text=True,
                         check=True).stdout
    wall, rss, stdout = json.loads(out)
    return wall, rss, stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) /
                        "posttrain-bench-inspect")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    env_py = sys.executable
    print(f"{'log':24} {'MB':>6} {'import s':>9} {'import RSS MB':>14} {'samples/s':>10}  "
          f"inspect read_eval_log s / RSS MB   read_eval_log_samples s per 200")
    for n in args.sizes:
        for suffix in (".json", ".eval"):
            path = args.cache / f"sums-{n}{suffix}"
            if not path.exists():
                t = time.perf_counter()
                write_log(path, n)
                print(f"(wrote {path.name} with write_eval_log in "
                      f"{time.perf_counter() - t:.1f} s)", file=sys.stderr)
            with tempfile.TemporaryDirectory() as tmp:
                wall, rss, out = one([env_py, "-m", "posttrain.cli", "import", "inspect-log",
                                      str(path), "--store", str(Path(tmp) / "s.db"), "--json"])
            report = json.loads(out)["runs"][0]
            assert report["samples"] == n, report
            full_wall, full_rss, _ = one([env_py, "-c", CHILD_READ, str(path), "full"])
            part_wall, _, part = one([env_py, "-c", CHILD_READ, str(path), "samples"])
            part_s = float(part.split()[1])
            print(f"{path.name:24} {path.stat().st_size / 1e6:6.1f} {wall:9.2f} {rss:14.0f} "
                  f"{n / wall:10.0f}  {full_wall:6.2f} / {full_rss:5.0f}"
                  f"{'':21}{part_s:6.2f}  (score {report['summary']['score']}, "
                  f"inspect accuracy {report['inspect_metrics']['match']['accuracy']:.4f})")


if __name__ == "__main__":
    main()

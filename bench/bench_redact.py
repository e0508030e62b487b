"""Redaction: precision and recall on the labelled set, and throughput.

Usage::

    python bench/bench_redact.py                      # both engines, 2,000 lines for speed
    python bench/bench_redact.py --engine presidio --lines 5000
    python bench/bench_redact.py --show-errors        # list the misses and false positives

Precision and recall are span level (see ``posttrain.usage.redact_eval``) on
``tests/data/pii_labelled.jsonl``. Throughput: ``--lines`` distinct chat lines (the labelled
texts, each with a ticket number appended so that no two are equal) redacted as one batch by a
warm redactor, after the one-off load of the analyzer, which is timed apart; then ``posttrain
ingest`` end to end on the same lines as a chat-completions log (``--embed tfidf``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from posttrain.usage.redact import Redactor, detector, preload
from posttrain.usage.redact_eval import load_labelled, markdown_table, score_redaction

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "data" / "pii_labelled.jsonl"


def quality(engine: str, path: Path, show_errors: bool, batches: str | None = None) -> dict:
    rows = load_labelled(path)
    if batches:
        wanted = {int(b) for b in batches.split(",")}
        rows = [row for row in rows if row.batch in wanted]
    figures = {}
    for label, subset in (("all rows", rows),
                          ("batches 1-2 (the rules were tuned on these)",
                           [row for row in rows if row.batch < 3]),
                          ("batch 3 (held out: written after the first tuning, never tuned on)",
                           [row for row in rows if row.batch == 3]),
                          ("batch 4 (the red team's leaks, issue 12: tuned on after a first "
                           "measurement)", [row for row in rows if row.batch == 4]),
                          ("batch 5 (held out: written after the red-team round, never tuned "
                           "on)", [row for row in rows if row.batch == 5])):
        if not subset:
            continue
        scores = score_redaction(subset, Redactor(engine=engine))
        print(f"\n### {engine}, {label}: {len(subset)} texts, "
              f"{sum(len(r.spans) for r in subset)} labelled spans, "
              f"{sum(1 for r in subset if not r.spans)} with none\n")
        print(markdown_table(scores))
        if show_errors:
            print("\nmissed:")
            for kind, text in scores.missed:
                print(f"  {kind:8} {text!r}")
            print("false positives:")
            for kind, text, row in scores.false_positives:
                print(f"  {kind:8} {text!r:40} in {row!r}")
        figures[label] = scores.to_dict()
    return figures


def throughput(engine: str, path: Path, lines: int) -> dict:
    texts = [row.text for row in load_labelled(path)]
    batch = [f"{texts[i % len(texts)]} (ticket {100000 + i})" for i in range(lines)]
    load_s = 0.0
    if engine == "presidio":  # imports and model load, in a fresh process
        code = ("import time; t = time.perf_counter(); from posttrain.usage.redact import preload;"
                " preload(); print(time.perf_counter() - t)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        load_s = float(done.stdout.split()[-1])
        preload()
    redactor = Redactor(engine=engine)
    redactor.text("warm up, Sarah")
    start = time.perf_counter()
    redactor.redact_all(batch)
    seconds = time.perf_counter() - start
    result = {"engine": engine, "lines": lines, "load_s": round(load_s, 2),
              "redact_s": round(seconds, 2), "lines_per_s": round(lines / seconds)}
    print(f"\n{engine}: load {load_s:.1f} s (imports + model, once per process), {lines} lines "
          f"in {seconds:.1f} s = {lines / seconds:,.0f} lines/s (load average "
          f"{os.getloadavg()[0]:.1f})")
    return result


def ingest_end_to_end(path: Path, lines: int, engine: str) -> dict:
    texts = [row.text for row in load_labelled(path)]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs.jsonl"
        with logs.open("w") as handle:
            for i in range(lines):
                request = {"model": "gpt-4o-mini", "messages": [
                    {"role": "system", "content": "You are the support assistant of Acme."},
                    {"role": "user", "content": f"{texts[i % len(texts)]} (ticket {i})"}]}
                response = {"choices": [{"message": {"role": "assistant", "content":
                            f"Thanks, I have logged ticket {i} and will follow up."}}]}
                handle.write(json.dumps({"id": f"log-{i}", "request": request,
                                         "response": response}) + "\n")
        env = dict(os.environ)
        if engine == "regex":  # hide the extra from the child process
            env["POSTTRAIN_SPACY_MODEL"] = "no_such_model_posttrain_bench"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "posttrain.cli", "ingest", str(logs), "-o",
                               str(Path(tmp) / "out"), "--embed", "tfidf", "--json"],
                              capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        summary = json.loads(done.stdout)
    print(f"posttrain ingest ({summary['redaction']['engine']}), {lines} log lines: "
          f"{seconds:.1f} s end to end (start-up, model load, dedup, themes, writing)")
    return {"engine": summary["redaction"]["engine"], "lines": lines,
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["presidio", "regex", "both"], default="both")
    parser.add_argument("--data", type=Path, default=LABELLED)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--batches", help="only these batches, e.g. 4 or 1,2,4 (the misses of "
                        "a held-out batch are better not read while tuning)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the end-to-end ingest")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    engines = ["presidio", "regex"] if args.engine == "both" else [args.engine]
    if "presidio" in engines and detector().engine != "presidio":
        print(f"presidio unavailable ({detector().reason}); pip install 'posttrain[ingest]'")
        engines.remove("presidio")
    print(f"detector: {detector().names}")
    figures: dict = {"quality": {}, "throughput": [], "ingest": []}
    for engine in engines:
        figures["quality"][engine] = quality(engine, args.data, args.show_errors, args.batches)
    for engine in engines:
        figures["throughput"].append(throughput(engine, args.data, args.lines))
    if not args.no_ingest:
        for engine in engines:
            figures["ingest"].append(ingest_end_to_end(args.data, args.lines, engine))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

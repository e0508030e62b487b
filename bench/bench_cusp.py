"""Does the cusp finder's call predict what RFT can gain? A ladder of task difficulties.

    python bench/bench_cusp.py [--steps 40] [--k 8] [--seed 0] [--json]

Tags of graded difficulty for the cached tiny model: the quickstart's six phrasings (its
pretraining answered them in the requested JSON 90% ... 10% of the time), plus two formats its
pretraining never showed (``q-sum``: reply {"sum": N}; ``q-words``: the number in words). First
``posttrain cusp``'s analysis calls each tag from k samples per item of the *training* items
(temperature 1). Then one RFT run (GRPO, the eval's grader as reward, the same budget for every
tag: they share the training set) and greedy held-out before/after, paired per tag. The check:
tags called *RFT candidate - on the cusp* gain more than tags called *out of reach* (per-item
gains, difference of means with a seeded bootstrap 95% interval).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen"]


def ladder_rows() -> list[dict[str, Any]]:
    from posttrain.train.quicktask import all_items

    rows = all_items()
    for a in range(10):
        for b in range(10):
            rows.append({"id": f"q-sum-{a}+{b}", "phrasing": "q-sum", "answer": a + b,
                         "prompt": f"What is {a} + {b}? Reply with JSON {{\"sum\": N}}.",
                         "expected": json.dumps({"sum": a + b})})
            rows.append({"id": f"q-words-{a}+{b}", "phrasing": "q-words", "answer": a + b,
                         "prompt": f"What is {a} + {b}? Reply with the number in words.",
                         "expected": WORDS[a + b]})
    return rows


def bootstrap_diff(x: list[float], y: list[float], seed: int, draws: int = 20000
                   ) -> tuple[float, float, float]:
    """mean(x) - mean(y) with a percentile bootstrap 95% interval (seeded)."""
    rng = random.Random(seed)
    diffs = []
    for _ in range(draws):
        bx = [x[rng.randrange(len(x))] for _ in x]
        by = [y[rng.randrange(len(y))] for _ in y]
        diffs.append(sum(bx) / len(bx) - sum(by) / len(by))
    diffs.sort()
    return (sum(x) / len(x) - sum(y) / len(y), diffs[int(0.025 * draws)],
            diffs[int(0.975 * draws)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from posttrain.analysis.cusp import CUSP, OUT, cusp_report
    from posttrain.analysis.results import load_results
    from posttrain.api import run_eval
    from posttrain.eval import load_eval
    from posttrain.runner.executor import RunOptions
    from posttrain.runner.store import Store
    from posttrain.train import quicktask
    from posttrain.train.common import quiet_libraries
    from posttrain.train.loop import rft_with_report
    from posttrain.train.rft import RFTConfig, split_items
    from posttrain.train.tiny import ensure_tiny_model

    quiet_libraries()
    started = time.perf_counter()
    model = ensure_tiny_model()
    work = Path(tempfile.mkdtemp(prefix="bench-cusp-"))
    eval_ = load_eval(quicktask.write_eval(work / "ev", ladder_rows(), name="ladder"))
    config = RFTConfig(steps=args.steps, learning_rate=args.lr, seed=args.seed, heldout=240,
                       validation=40, eval_every=max(1, args.steps // 4))
    split = split_items(eval_.items, config.heldout, config.validation, config.seed)
    store = work / "bench.db"

    # 1. the calls, from k samples of the training items only
    sampled = dataclasses.replace(eval_, items=split.train,
                                  sampling={**eval_.sampling, "temperature": 1.0})
    (summary,) = run_eval(sampled, [f"hf:{model}"], variants=["default"], store=store,
                          options=RunOptions(epochs=args.k))
    with Store(store) as db:
        cusp = cusp_report(load_results(db, summary["run_id"]), bar=0.8, temperature=1.0)
    calls = {t["tag"]: t for t in cusp["tags"]}
    cusp_seconds = time.perf_counter() - started

    # 2. one RFT budget for every tag, held-out before/after through the runner
    report = rft_with_report(f"hf:{model}", eval_, work / "rft", config, quiet=True,
                             split=split, store=store)
    before_run, after_run = report["runs"]
    with Store(store) as db:
        before = load_results(db, before_run["run_id"]).item_scores()
        after = load_results(db, after_run["run_id"]).item_scores()
    tag_of = {item.id: item.data["phrasing"] for item in split.test}
    gains: dict[str, list[float]] = {}
    for item_id, tag in tag_of.items():
        gains.setdefault(tag, []).append(after[item_id] - before[item_id])
    rows = []
    for row in report["components"]:
        if row["kind"] != "tag":
            continue
        call = calls.get(row["name"], {})
        rows.append({"tag": row["name"], "call": call.get("class"),
                     "pass_at_1": call.get("pass_at_1"), "pass_at_k": call.get("pass_at_k"),
                     "signal": call.get("signal"), "n_heldout": row["n"], "before": row["a"],
                     "after": row["b"], "gain": row["diff"],
                     "gain_ci": [row["ci_low"], row["ci_high"]], "p_value": row["p_value"],
                     "label_after": row.get("label")})
    by_class: dict[str, list[float]] = {}
    for row in rows:
        by_class.setdefault(str(row["call"]), []).extend(gains.get(row["tag"], []))
    check: dict[str, Any] = {"cusp_items": len(by_class.get(CUSP, [])),
                             "out_of_reach_items": len(by_class.get(OUT, []))}
    if by_class.get(CUSP) and by_class.get(OUT):
        diff, low, high = bootstrap_diff(by_class[CUSP], by_class[OUT], args.seed)
        check.update(mean_gain_cusp=sum(by_class[CUSP]) / len(by_class[CUSP]),
                     mean_gain_out=sum(by_class[OUT]) / len(by_class[OUT]),
                     diff=diff, ci=[low, high], holds=low > 0)
    result = {"k": args.k, "steps": report["steps"], "seed": args.seed,
              "overall": {"before": report["baseline"]["score"],
                          "after": report["after"]["score"], "p_value": report["p_value"]},
              "tags": rows, "check": check, "cusp_seconds": round(cusp_seconds, 1),
              "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"ladder: {len(eval_.items)} items, {len(split.train)} train, {len(split.test)} "
          f"held out; calls from k={args.k} samples of the training items; RFT {report['steps']} "
          f"steps (seed {args.seed})")
    print(f"{'tag':<9} {'call':<28} {'pass@1':>6} {'pass@k':>6} {'signal':>6}   "
          f"{'before':>6} {'after':>6} {'gain':>7} {'95% CI':>17} {'p':>8}")
    for row in rows:
        print(f"{row['tag']:<9} {str(row['call']):<28} {row['pass_at_1'] or 0:>6.3f} "
              f"{row['pass_at_k'] or 0:>6.3f} {row['signal'] or 0:>6.3f}   {row['before']:>6.3f} "
              f"{row['after']:>6.3f} {row['gain']:>+7.3f} "
              f"[{row['gain_ci'][0]:+.3f}, {row['gain_ci'][1]:+.3f}] {row['p_value']:>8.2g}")
    if "diff" in check:
        print(f"cusp tags gain {check['mean_gain_cusp']:+.3f} per item ({check['cusp_items']} "
              f"items), out-of-reach tags {check['mean_gain_out']:+.3f} "
              f"({check['out_of_reach_items']}): difference {check['diff']:+.3f} "
              f"[{check['ci'][0]:+.3f}, {check['ci'][1]:+.3f}] -> "
              + ("holds" if check["holds"] else "NOT shown"))
    else:
        print(f"check not computable: {check}")
    print(f"time: {result['seconds']} s (cusp {result['cusp_seconds']} s)")


if __name__ == "__main__":
    main()

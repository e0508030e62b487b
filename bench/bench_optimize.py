"""`posttrain optimize` on tasks with a planted prompt weakness and on tasks with none.

The target is ``posttrain.testing.prompt_sim.PromptSim``, a simulated model (not a language
model): it knows an arithmetic item's answer with probability ``know`` (fixed per item) and
answers in the requested bare format with probability ``p_salient`` when the prompt shows an
example output or ends with the format rule, else ``p_buried``. Every draw is seeded by (seed,
item, prompt text): a prompt is answered the same way each time, two prompts independently.

- weakness tasks: the format rule is buried in a long system prompt (``sim_eval(weakness=True)``);
  ``strong`` (p 0.3 -> 0.9) and ``subtle`` (p 0.6 -> 0.8) effects;
- null task: the same prompt, but no prompt changes anything (``sensitive=False``): every
  candidate differs from the current prompt by chance only, so each acceptance is a false win;
- tools tasks: an agentic eval (``tool_sim_eval``: order questions, a ``lookup_order`` tool, a
  long support system prompt without "use your tools rather than guess"); the simulator calls
  the tool with probability 0.9 when the prompt has that reminder, else 0.3 (``tools``), or 0.6
  whatever the prompt (``tools-null``).

Each run is a fresh store, its own seed (items, split, draws), ``--budget`` candidates, with or
without the deterministic stub proposer. Reported: the share of runs with a significant fix
(accepted), the share whose winner is a real fix (a prompt the simulator treats as salient), the
false-win rate with its 95% Wilson interval, and requests to the target per run.

    python bench/bench_optimize.py --runs 200
    python bench/bench_optimize.py --runs 100 --items 200 --tasks subtle,null --proposers none
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from posttrain.analysis.stats import wilson_interval
from posttrain.eval import eval_from_dict
from posttrain.optimize.search import Settings, optimize
from posttrain.runner.executor import RunOptions
from posttrain.runner.store import Store
from posttrain.testing.prompt_sim import (
    FORMAT,
    TOOL_RULE,
    PromptSim,
    StubProposer,
    sim_eval,
    tool_sim_eval,
)

TASKS = {
    "strong": dict(weakness=True, sensitive=True, p_buried=0.3, p_salient=0.9),
    "subtle": dict(weakness=True, sensitive=True, p_buried=0.6, p_salient=0.8),
    "null": dict(weakness=True, sensitive=False, p_buried=0.6, p_salient=0.6),
    "tools": dict(tools=True, sensitive=True, p_buried=0.3, p_salient=0.9),
    "tools-null": dict(tools=True, sensitive=False, p_buried=0.6, p_salient=0.6),
}


def one(task: str, seed: int, *, n: int, budget: int, proposer: bool, alpha: float) -> dict:
    spec = TASKS[task]
    tools = bool(spec.get("tools"))
    ev = eval_from_dict(tool_sim_eval(n, seed) if tools
                        else sim_eval(n, seed, weakness=spec["weakness"]))
    model = PromptSim(sensitive=spec["sensitive"], p_buried=spec["p_buried"],
                      p_salient=spec["p_salient"], seed=seed,
                      task="tools" if tools else "format")
    folder = tempfile.TemporaryDirectory()
    store = Store(Path(folder.name) / "s.db")
    try:
        result = optimize(ev, model, store, RunOptions(),
                          Settings(budget=budget, seed=seed, alpha=alpha),
                          proposer=(StubProposer(TOOL_RULE if tools else FORMAT)
                                    if proposer else None),
                          proposer_name="stub" if proposer else None)
    finally:
        store.close()
        folder.cleanup()
    winner = next((c for c in result["candidates"] if c["name"] == result["finalist"]), None)
    real_fix = winner is not None and model.salient("\n".join(
        part for part in (winner["system"], winner["user"]) if part))
    return {"accepted": result["accepted"], "real_fix": result["accepted"] and real_fix,
            "requests": result["requests"]["target"],
            "proposer_requests": result["requests"]["proposer"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: "
                        + ", ".join(TASKS))
    parser.add_argument("--proposers", default="none,stub", help="none, stub or both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for proposer in [name == "stub" for name in args.proposers.split(",")]:
        for task in args.tasks.split(","):
            started = time.perf_counter()
            outcomes = [one(task, seed, n=args.items, budget=args.budget, proposer=proposer,
                            alpha=args.alpha) for seed in range(args.runs)]
            wins = sum(o["accepted"] for o in outcomes)
            low, high = wilson_interval(wins, len(outcomes))
            rows.append({
                "task": task, "proposer": "stub" if proposer else "none", "runs": len(outcomes),
                "accepted": wins / len(outcomes), "accepted_ci": [low, high],
                "real_fix": sum(o["real_fix"] for o in outcomes) / len(outcomes),
                "requests_mean": sum(o["requests"] for o in outcomes) / len(outcomes),
                "proposer_requests_mean": sum(o["proposer_requests"] for o in outcomes)
                / len(outcomes),
                "seconds": time.perf_counter() - started})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.runs} runs per row, {args.items} items (about half held out), budget "
          f"{args.budget}, alpha {args.alpha}")
    print(f"{'task':10} {'proposer':8} {'accepted':>9} {'95% CI':>17} {'real fix':>9} "
          f"{'requests/run':>13} {'proposer req':>12}")
    for r in rows:
        print(f"{r['task']:10} {r['proposer']:8} {r['accepted']:9.1%} "
              f"[{r['accepted_ci'][0]:6.1%}, {r['accepted_ci'][1]:6.1%}] {r['real_fix']:9.1%} "
              f"{r['requests_mean']:13.1f} {r['proposer_requests_mean']:12.1f}")


if __name__ == "__main__":
    main()

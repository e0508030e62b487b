"""``posttrain quickstart``: the whole loop offline, on a tiny local model, in a few minutes.

Build (first time; then reuse from the cache) a tiny model pretrained to be partly able on the
bundled task → baseline eval on held-out items → RFT (GRPO) with that eval's graders as the
reward → eval again on the same held-out items → paired comparison (McNemar).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

# the quickstart regime: measured to lift held-out pass rate on seeds 0-2 (see bench/RESULTS.md)
QUICKSTART_SEED = 0
QUICKSTART_STEPS = 40
QUICKSTART_LR = 1e-4
QUICKSTART_EVAL_EVERY = 10
N_HELDOUT = 200
N_VALIDATION = 64
RFT_VERSION = "1"


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def prepare(cache_dir: str | Path | None, seed: int = QUICKSTART_SEED,
            quiet: bool = False) -> tuple[Path, Path, Any, Any]:
    """(model dir, work dir, eval, split): the tiny model, the eval file and its split."""
    from posttrain.eval import load_eval
    from posttrain.train import quicktask
    from posttrain.train.rft import Split
    from posttrain.train.tiny import cache_root, ensure_tiny_model

    root = cache_root(cache_dir)
    started = time.perf_counter()
    model_dir = ensure_tiny_model(root, task="add", seed=0)
    took = time.perf_counter() - started
    if took > 5:
        _log(f"built the tiny model in {took:.0f} s (cached in {model_dir})", quiet)
    work = root / "quickstart"
    train_rows, heldout_rows = quicktask.split_items(seed=seed, n_heldout=N_HELDOUT)
    eval_path = quicktask.write_eval(work, heldout_rows + train_rows, name="add")
    eval_ = load_eval(eval_path)
    by_id = {item.id: item for item in eval_.items}
    train_items = [by_id[row["id"]] for row in train_rows]
    split = Split(train=train_items[N_VALIDATION:], validation=train_items[:N_VALIDATION],
                  test=[by_id[row["id"]] for row in heldout_rows])
    return model_dir, work, eval_, split


def run_quickstart(json_output: bool = False, cache_dir: str | Path | None = None,
                   eval_only: bool = False, seed: int = QUICKSTART_SEED) -> int:
    from posttrain.models.checks import TRAIN_PACKAGES, require_extra

    require_extra("`posttrain quickstart`", *TRAIN_PACKAGES, extra="train")
    started = time.perf_counter()
    quiet = json_output
    _log("posttrain quickstart: tiny local model, bundled task, RFT with the eval's grader "
         "(offline)", quiet)
    from posttrain.train.common import quiet_libraries

    quiet_libraries()
    model_dir, work, eval_, split = prepare(cache_dir, seed=seed, quiet=quiet)
    if eval_only:
        return _eval_only(model_dir, eval_, split, json_output, started)

    from posttrain.train.loop import rft_with_report
    from posttrain.train.rft import RFTConfig

    config = RFTConfig(steps=QUICKSTART_STEPS, learning_rate=QUICKSTART_LR, num_generations=8,
                       prompts_per_step=4, eval_every=QUICKSTART_EVAL_EVERY, seed=seed)
    out_dir = work / f"rft-s{seed}-v{RFT_VERSION}"
    _log(f"baseline eval, RFT ({QUICKSTART_STEPS} GRPO steps), eval again on "
         f"{len(split.test)} held-out items...", quiet)
    store = work / "posttrain.db"
    report = rft_with_report(str(model_dir), eval_, out_dir, config, quiet=True, split=split,
                             reuse=True, plot=work / "rft-rewards.svg", store=store)
    report["seconds_total"] = round(time.perf_counter() - started, 1)
    if json_output:
        print(json.dumps({key: report[key] for key in
                          ("baseline", "after", "p_value", "train_prompts", "steps", "best_step",
                           "seconds_total", "reused_checkpoint")}))
        return 0
    print(_text(report, model_dir, work, eval_, out_dir, store))
    return 0


def _eval_only(model_dir: Path, eval_: Any, split: Any, json_output: bool,
               started: float) -> int:
    from posttrain.train.evaluate import evaluate, mean_score

    scores = evaluate(model_dir, eval_, split.test)
    score = mean_score(scores)
    if json_output:
        print(json.dumps({"baseline": {"score": score, "n": len(scores)}}))
    else:
        print(f"{eval_.name} on the tiny model ({model_dir}): {score:.3f} over {len(scores)} "
              f"held-out items  ({time.perf_counter() - started:.0f} s)")
    return 0


def _text(report: dict[str, Any], model_dir: Path, work: Path, eval_: Any,
          out_dir: Path, store: Path) -> str:
    from posttrain.analysis.report import render_table

    history = [h for h in report["history"] if "validation" in h]
    curve = "  ".join(f"{h['step']}:{h['validation']:.2f}" for h in history)
    base, after = report["baseline"], report["after"]
    verdict = ("significant" if report["p_value"] is not None and report["p_value"] < 0.05
               else "not significant")
    lines = [
        "",
        f"task      {eval_.name}: single-digit sums, reply exactly as JSON {{\"answer\": N}}",
        f"model     tiny Qwen2 ({model_dir})",
        f"baseline  {base['score']:.1%} of {base['n']} held-out items",
        f"RFT       GRPO, {report['steps']} steps on {report['train_prompts']} training prompts, "
        f"reward = the eval's grader"
        + (" (checkpoint reused from the cache)" if report.get("reused_checkpoint") else
           f", {report['train_seconds']:.0f} s"),
        f"          validation by step: {curve}",
        f"          best checkpoint: step {report['best_step']}",
        f"after     {after['score']:.1%} of {after['n']} held-out items",
        f"paired    {report['paired']['diff']:+.1%} "
        f"[95% CI {report['paired']['ci_low']:+.1%}, {report['paired']['ci_high']:+.1%}], "
        f"{report['paired']['test']} p = {report['p_value']:.2g} ({verdict})",
        f"time      {report['seconds_total']:.0f} s",
        "",
        render_table(report["runs"], tags=False, components=False),
        "",
        "next steps:",
        f"  posttrain compare latest~1 latest --store {store}",
        f"  posttrain view --store {store}",
        f"  posttrain eval {work / 'add.yaml'} --model hf:{out_dir}",
    ]
    return "\n".join(lines)

"""The whole RFT loop with its evidence: held-out baseline → GRPO → held-out again → paired test."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from posttrain.eval import Eval
from posttrain.train.rft import (
    RFTConfig,
    RFTResult,
    Split,
    baseline_warning,
    print_progress,
    split_items,
    train_rft,
)


def reward_plot(history: list[dict[str, Any]], title: str) -> str:
    from posttrain.analysis.svg import line_chart

    series = {
        "train reward": [(h["step"], h["reward"]) for h in history if "reward" in h],
        "validation": [(h["step"], h["validation"]) for h in history if "validation" in h],
    }
    return line_chart(series, title=title, x_label="step", y_label="reward")


def rft_with_report(model: str, eval_: Eval, out_dir: str | Path, config: RFTConfig, *,
                    quiet: bool = False, plot: Path | None = None,
                    split: Split | None = None, reuse: bool = False,
                    store: str | Path | None = None) -> dict[str, Any]:
    """Evaluate, train, evaluate again; return the numbers and a readable ``text`` report.

    ``reuse``: when ``out_dir`` already holds an RFT checkpoint, skip training and evaluate it.
    ``store``: run the before/after evals through the runner into this store (two stored runs,
    cached), rather than in-process.
    """
    from posttrain.analysis.paired import paired_compare
    from posttrain.train.common import model_path
    from posttrain.train.evaluate import evaluate, evaluate_stored

    def held_out(model_dir: str | Path) -> tuple[dict[str, float], dict[str, Any] | None]:
        if store is not None:
            return evaluate_stored(model_dir, eval_, split.test, store)
        scores = evaluate(model_dir, eval_, split.test)
        return ({item.id: float(score.value) for item, score in zip(split.test, scores, strict=True)
                 if score.status == "scored" and score.value is not None}, None)

    split = split or split_items(eval_.items, config.heldout, config.validation, config.seed)
    if not split.train or not split.test:
        from posttrain.errors import UserError

        raise UserError(f"the eval has {len(eval_.items)} items: too few to hold some out "
                        "(lower --heldout / --validation)", field="--heldout")
    started = time.perf_counter()
    before_map, before_run = held_out(model_path(model))
    baseline = sum(before_map.values()) / len(before_map) if before_map else 0.0
    warning = baseline_warning(baseline)
    if warning and not quiet:
        print(f"warning: {warning}", file=sys.stderr)
    if not quiet:
        print(f"baseline on {len(split.test)} held-out items: {baseline:.3f}; training on "
              f"{len(split.train)} prompts, {config.steps} steps", file=sys.stderr)
    meta_file = Path(out_dir) / "posttrain_train.json"
    if reuse and meta_file.exists():
        result = _cached_result(Path(out_dir), meta_file)
    else:
        result = train_rft(model, eval_, out_dir, split, config, quiet=quiet,
                           on_log=None if quiet else print_progress)
    after_map, after_run = held_out(out_dir)
    after = sum(after_map.values()) / len(after_map) if after_map else 0.0
    paired = paired_compare(before_map, after_map)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(reward_plot(result.history, f"RFT on {eval_.name}"))
    lines = [
        f"RFT of {model} on {eval_.name}: {result.steps} GRPO steps in {result.seconds:.0f} s "
        f"({len(split.train)} training prompts, group size {config.num_generations}, "
        f"lr {config.learning_rate:g}, KL {config.beta:g})",
        f"  best checkpoint: step {result.best_step} (validation {result.best_validation})"
        if result.best_validation is not None else "  final checkpoint (no validation split)",
        f"  held-out before: {baseline:.3f}  after: {after:.3f}  (n={len(split.test)})",
        f"  paired difference {paired.diff:+.3f} [95% CI {paired.ci_low:+.3f}, "
        f"{paired.ci_high:+.3f}], {paired.test} p = {paired.p_value:.3g}"
        if paired.diff is not None else "  paired comparison: no common scored items",
        f"  saved {out_dir}  (evaluate: posttrain eval EVAL --model hf:{out_dir})",
    ]
    unscored = sum(v for k, v in result.reward_stats.items() if k != "scored")
    if unscored:
        lines.append(f"  note: {unscored} rewards were unscored/errored grades (skipped: no reward)")
    if warning:
        lines.append(f"  warning: {warning}")
    return {
        "kind": "rft", "reused_checkpoint": result.reused, "baseline": {"score": baseline, "n": len(split.test)},
        "after": {"score": after, "n": len(split.test)}, "p_value": paired.p_value,
        "paired": paired.to_dict(), "train_prompts": len(split.train),
        "validation_items": len(split.validation), "steps": result.steps,
        "best_step": result.best_step, "best_validation": result.best_validation,
        "train_seconds": result.seconds, "seconds": round(time.perf_counter() - started, 2),
        "history": result.history, "reward_stats": result.reward_stats, "warning": warning,
        "text": "\n".join(lines), "runs": [run for run in (before_run, after_run) if run],
    }


def _cached_result(out_dir: Path, meta_file: Path) -> RFTResult:
    import json

    meta = json.loads(meta_file.read_text())
    return RFTResult(out_dir=out_dir, history=meta.get("history", []),
                     best_step=meta.get("best_step", 0),
                     best_validation=meta.get("best_validation"),
                     seconds=meta.get("seconds", 0.0), steps=meta.get("steps", 0),
                     reward_stats=meta.get("reward_stats", {}), reused=True)

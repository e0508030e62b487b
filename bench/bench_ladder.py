"""The ladder on a real model (SmolLM2-135M-Instruct): SFT, DPO and RFT, each on its own target,
each scored on every target's held-out items against the base model (paired, McNemar).

    python bench/bench_ladder.py --work /tmp/ladder [--stage sample|sft|dpo|rft|eval|all]

Targets (two evals, each split into training and held-out items):

* ``sums``: the quickstart's task (single-digit sums, exact JSON ``{"answer": N}``, one worked
  example in the prompt); what the model gets wrong is the sum.
* ``direct``: "What is the capital of X?"; the style grader (``regex``, full match) passes a
  reply that is one direct sentence, ``The capital of X is Y.``, and fails a preamble or
  background first ("Albania is a country located in Southeastern Europe, ..."); the city's
  correctness is not graded. (A bare city name, "Answer with the city name only.", is out of
  SmolLM2's reach: 0 of 40 greedy and 1 of 80 sampled answers over four prompt wordings, so
  graded samples give no pair to learn it from.)

Rungs, all with a LoRA adapter (rank 16) merged into the saved model, each the same code as a
CLI command:

* **SFT by rejection sampling** (``posttrain eval sums.yaml --variant sampled --epochs 4``, then
  ``posttrain train sft --from-run RUN --only-passed``): the model's own passing answers to the
  sums training prompts, sampled at temperature 1.
* **DPO for style** (``posttrain eval direct.yaml --variant sampled --epochs 4``, then
  ``posttrain train dpo --from-run RUN``): per training prompt, the best vs the worst graded of
  four sampled answers.
* **RFT** (``posttrain train rft`` / the quickstart): GRPO on the sums training prompts with the
  sums grader as reward (the quickstart's recipe and cache: ``posttrain quickstart`` first makes
  this stage instant).

Status: every stage ran end to end on the tiny built model (``--model hf:TINY``, a plumbing
check only: that model knows no capitals); not yet run on SmolLM2, so bench/RESULTS.md has no
ladder figures yet. ``--model`` picks the base model (default SmolLM2).

Every stage keeps its output in ``--work`` and is skipped when it is there, so each can run as
its own short job. The store (``--work/ladder.db``) holds every sampling and held-out run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

SMOL = "hf:smollm2-135m-instruct"
CAPITALS = Path(__file__).parent / "data" / "capitals.csv"
DIRECT = r"The capital of [^.\n]+ is [^.\n]+\.?"
SAMPLES = 4


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_evals(work: Path, seed: int) -> dict[str, dict[str, Any]]:
    """{target: {path, train ids, held-out ids}} for the two targets."""
    import random

    import yaml

    from posttrain.train import quicktask

    targets: dict[str, dict[str, Any]] = {}
    train, held = quicktask.smol_split(seed=seed, n_heldout=100)
    spec = quicktask.smol_eval_spec()
    spec["variants"] = {"sampled": {"sampling": {"temperature": 1.0}}}
    path = quicktask.write_eval(work / "sums", held + train, name="sums", spec=spec)
    targets["sums"] = {"path": path, "train": [r["id"] for r in train][:200],
                       "test": [r["id"] for r in held]}

    rows = []
    for line in CAPITALS.read_text().splitlines():
        country, city = line.split(",")
        rows.append({"id": country.lower().replace(" ", "-"), "country": country, "city": city})
    random.Random(seed).shuffle(rows)
    folder = work / "direct"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "direct.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "direct.yaml").write_text(yaml.safe_dump({
        "name": "capitals-direct",
        "description": "Style: one direct sentence, no preamble or background first.",
        "dataset": "direct.jsonl",
        "messages": [{"role": "user", "content": "What is the capital of {{item.country}}?"}],
        "graders": [{"type": "regex", "name": "direct", "input": "{{sample.output_text}}",
                     "pattern": DIRECT, "full_match": True}],
        "variants": {"sampled": {"sampling": {"temperature": 1.0}}},
        "sampling": {"temperature": 0, "max_tokens": 24},
    }, sort_keys=False, allow_unicode=True))
    targets["direct"] = {"path": folder / "direct.yaml", "train": [r["id"] for r in rows[50:]],
                         "test": [r["id"] for r in rows[:50]]}
    return targets


def subset(path: Path, ids: list[str]) -> Any:
    import dataclasses

    from posttrain.eval import load_eval

    eval_ = load_eval(path)
    by_id = {item.id: item for item in eval_.items}
    return dataclasses.replace(eval_, items=[by_id[i] for i in ids])


def run(eval_: Any, model: str, store: Path, variant: str = "default",
        epochs: int = 1) -> dict[str, Any]:
    from posttrain.api import run_eval
    from posttrain.runner.executor import RunOptions

    options = RunOptions(epochs=epochs) if epochs > 1 else None
    (summary,) = run_eval(eval_, [model], variants=[variant], store=store, options=options)
    return summary


def sample_stage(work: Path, targets: dict[str, Any], store: Path, model: str) -> dict[str, str]:
    runs_file = work / "sample_runs.json"
    if runs_file.exists():
        return json.loads(runs_file.read_text())
    runs = {}
    for name in ("sums", "direct"):
        started = time.perf_counter()
        eval_ = subset(targets[name]["path"], targets[name]["train"])
        summary = run(eval_, model, store, variant="sampled", epochs=SAMPLES)
        runs[name] = summary["run_id"]
        log(f"sampled {name}: {len(eval_.items)} prompts x {SAMPLES} at T=1, score "
            f"{summary['score']:.3f} ({time.perf_counter() - started:.0f} s)")
    runs_file.write_text(json.dumps(runs))
    return runs


def sft_stage(work: Path, store: Path, runs: dict[str, str], args: Any) -> Path:
    from posttrain.train.data import rows_from_run
    from posttrain.train.sft import train_sft

    out = work / "sft"
    if (out / "posttrain_train.json").exists():
        return out
    rows = rows_from_run(store, runs["sums"], only_passed=True)
    log(f"SFT on {len(rows)} passing sampled answers (rejection sampling)")
    summary = train_sft(args.model, rows, out, epochs=args.sft_epochs, learning_rate=args.sft_lr,
                        batch_size=16, lora_rank=16, seed=args.seed, quiet=True)
    log(f"SFT: {summary['steps']} steps in {summary['seconds']:.0f} s, loss "
        f"{summary['train_loss']}")
    return out


def dpo_stage(work: Path, store: Path, runs: dict[str, str], args: Any) -> Path:
    from posttrain.train.data import pairs_from_run
    from posttrain.train.dpo import train_dpo

    out = work / "dpo"
    if (out / "posttrain_train.json").exists():
        return out
    pairs = pairs_from_run(store, runs["direct"])
    log(f"DPO on {len(pairs)} pairs (best vs worst graded of {SAMPLES} sampled answers)")
    summary = train_dpo(args.model, pairs, out, max_steps=args.dpo_steps, learning_rate=args.dpo_lr,
                        batch_size=8, lora_rank=16, seed=args.seed, quiet=True)
    log(f"DPO: {summary['steps']} steps in {summary['seconds']:.0f} s, loss "
        f"{summary['train_loss']}")
    return out


def rft_stage(work: Path, targets: dict[str, Any], args: Any) -> Path:
    """GRPO with the quickstart's recipe on the sums training prompts (for SmolLM2 with the
    quickstart's split: its cached model when ``posttrain quickstart`` made it)."""
    from posttrain.train import quickstart
    from posttrain.train.rft import Split, train_rft
    from posttrain.train.tiny import cache_root

    config = quickstart.smol_config(args.seed)
    if args.model == SMOL:
        record = quickstart.ensure_smol(quiet=False)
        folder, eval_, split = quickstart.prepare_smol(cache_root(args.cache_dir), args.seed)
        out = folder / f"rft-{quickstart.trained_key(record, eval_, split, config)}"
    else:
        eval_ = subset(targets["sums"]["path"], targets["sums"]["train"]
                       + targets["sums"]["test"])
        by_id = {item.id: item for item in eval_.items}
        train = [by_id[i] for i in targets["sums"]["train"]]
        split = Split(train=train[24:], validation=train[:24],
                      test=[by_id[i] for i in targets["sums"]["test"]])
        out = work / "rft"
    if not (out / "posttrain_train.json").exists():
        log(f"RFT: {config.steps} GRPO steps (the quickstart's recipe) into {out}")
        train_rft(args.model, eval_, out, split, config, quiet=True)
    return out


def eval_stage(work: Path, targets: dict[str, Any], store: Path,
               models: dict[str, str]) -> list[dict[str, Any]]:
    from posttrain.analysis.paired import paired_compare
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    scores: dict[tuple[str, str], dict[str, float]] = {}
    for target in ("sums", "direct"):
        eval_ = subset(targets[target]["path"], targets[target]["test"])
        for name, spec in models.items():
            started = time.perf_counter()
            summary = run(eval_, spec, store)
            with Store(store) as db:
                scores[name, target] = load_results(db, summary["run_id"]).item_scores()
            log(f"{name} on {target} held-out: {summary['score']:.3f} "
                f"({time.perf_counter() - started:.0f} s)")
    rows = []
    for name in models:
        for target in ("sums", "direct"):
            base, after = scores["base", target], scores[name, target]
            n = len(targets[target]["test"])
            row = {"model": name, "target": target, "n": n,
                   "score": round(sum(after.values()) / n, 3)}
            if name != "base":
                paired = paired_compare(base, after)
                row.update(diff=round(paired.diff, 3), ci=[round(paired.ci_low, 3),
                                                           round(paired.ci_high, 3)],
                           p_value=paired.p_value)
            rows.append(row)
    return rows


def curve_stage(work: Path, targets: dict[str, Any], store: Path, runs: dict[str, str],
                args: Any, sizes: tuple[int, ...] = (25, 50, 100, 200)) -> list[dict[str, Any]]:
    """Data efficiency: SFT by rejection sampling on the passing sampled answers of the first N
    sums training prompts (same recipe, same epochs), each scored on the sums held-out items
    paired against the base model. N = 200 is the ladder's SFT rung."""
    from posttrain.analysis.paired import paired_compare
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store
    from posttrain.train.data import run_samples
    from posttrain.train.sft import train_sft

    test = subset(targets["sums"]["path"], targets["sums"]["test"])
    with Store(store) as db:
        base = load_results(db, run(test, args.model, store)["run_id"]).item_scores()
    samples = list(run_samples(store, runs["sums"]))
    rows = []
    for size in sizes:
        ids = set(targets["sums"]["train"][:size])
        data = [{"prompt": s.messages, "completion": s.text} for s in samples
                if s.passed and s.item_id in ids]
        out = work / "sft" if size == len(targets["sums"]["train"]) else work / f"curve-{size}"
        if not (out / "posttrain_train.json").exists():
            started = time.perf_counter()
            train_sft(args.model, data, out, epochs=args.sft_epochs, learning_rate=args.sft_lr,
                      batch_size=16, lora_rank=16, seed=args.seed, quiet=True)
            log(f"curve: SFT on {len(data)} answers of {size} prompts "
                f"({time.perf_counter() - started:.0f} s)")
        with Store(store) as db:
            after = load_results(db, run(test, f"hf:{out}", store)["run_id"]).item_scores()
        paired = paired_compare(base, after)
        row = {"prompts": size, "answers": len(data), "n": len(base),
               "before": round(sum(base.values()) / len(base), 3),
               "after": round(sum(after.values()) / len(base), 3), "diff": round(paired.diff, 3),
               "ci": [round(paired.ci_low, 3), round(paired.ci_high, 3)],
               "p_value": paired.p_value}
        print(json.dumps(row), flush=True)
        rows.append(row)
    (work / "curve.json").write_text(json.dumps(rows, indent=1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--stage", default="all",
                        choices=["sample", "sft", "dpo", "rft", "eval", "curve", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=SMOL, help="the base model (hf:...)")
    parser.add_argument("--cache-dir", type=Path, help="the quickstart's cache (for RFT)")
    parser.add_argument("--sft-epochs", type=float, default=2.0)
    parser.add_argument("--sft-lr", type=float, default=2e-4)
    parser.add_argument("--dpo-steps", type=int, default=30)
    parser.add_argument("--dpo-lr", type=float, default=5e-5)
    args = parser.parse_args()

    from posttrain.train.common import quiet_libraries

    quiet_libraries()
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "ladder.db"
    targets = write_evals(args.work, args.seed)
    stages = ["sample", "sft", "dpo", "rft", "eval"] if args.stage == "all" else [args.stage]
    runs = sample_stage(args.work, targets, store, args.model) \
        if set(stages) & {"sample", "sft", "dpo", "curve"} \
        else json.loads((args.work / "sample_runs.json").read_text())
    if "sft" in stages:
        sft_stage(args.work, store, runs, args)
    if "dpo" in stages:
        dpo_stage(args.work, store, runs, args)
    rft = rft_stage(args.work, targets, args) if set(stages) & {"rft", "eval"} else None
    if "eval" in stages:
        models = {"base": args.model}
        for rung, folder in (("sft", args.work / "sft"), ("dpo", args.work / "dpo"),
                             ("rft", rft)):
            if folder is not None and (folder / "posttrain_train.json").exists():
                models[rung] = f"hf:{folder}"
            else:
                log(f"{rung}: no trained model in {folder} (run --stage {rung}); left out")
        rows = eval_stage(args.work, targets, store, models)
        for row in rows:
            print(json.dumps(row), flush=True)
        (args.work / "ladder.json").write_text(json.dumps(rows, indent=1))
    if "curve" in stages:
        curve_stage(args.work, targets, store, runs, args)


if __name__ == "__main__":
    main()

"""``posttrain train sft|dpo|rft`` and ``posttrain export openai-ft``.

torch / transformers / trl are imported only when a command runs, never at start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command

DEFAULT_STORE = "posttrain.db"


def _model_and_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, metavar="hf:PATH",
                   help="local Hugging Face model folder or repo (hf:PATH)")
    p.add_argument("-o", "--out", required=True, type=Path, help="output model folder")
    p.add_argument("--store", default=DEFAULT_STORE, help="SQLite store (default ./posttrain.db)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--lora", type=int, metavar="RANK", help="train a LoRA adapter of this rank "
                                                             "(merged into the saved model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a trained model already in -o (refused otherwise)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--accelerate", metavar="CONFIG",
                   help="multi-GPU: run this command under `accelerate launch` with this config "
                        "(DeepSpeed through the accelerate config)")
    p.add_argument("--report-to", metavar="TRACKERS",
                   help="report training logs to these experiment trackers (through TRL): "
                        "tensorboard, wandb, mlflow, comet_ml, clearml, trackio; comma-separated "
                        "(default: none, nothing leaves this machine)")


@register_command("train", order=50)
def add_parsers(sub: Any) -> None:
    train = sub.add_parser("train", help="fine-tune a local model: sft, dpo or rft (TRL; needs "
                                         "the [train] extra)",
                           description="Fine-tune a local model with TRL: sft, dpo or rft. Needs "
                                       "the [train] extra: pip install 'posttrain[train]'.")
    kinds = train.add_subparsers(dest="train_kind", required=False, metavar="KIND")
    from posttrain.cli.interop import add_job_arguments

    add_job_arguments(train)  # posttrain train --job JOB.json (an OpenAI job file), no KIND

    p = kinds.add_parser("sft", help="supervised fine-tuning (distillation from a graded run)")
    _model_and_out(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="JSONL of {messages} or {prompt, completion}")
    source.add_argument("--from-run", metavar="RUN", help="a stored run's answers")
    source.add_argument("--from-steering", nargs="?", const="", metavar="RUN",
                        help="the corrected trajectories a reviewer steered in `posttrain view` (of RUN, or "
                             "of every run in the store)")
    p.add_argument("--only-passed", action="store_true",
                   help="with --from-run / --from-steering: passing answers")
    p.add_argument("--epochs", type=float, help="passes over the data (instead of --steps)")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=run_train)

    p = kinds.add_parser("dpo", help="preference fine-tuning (DPO with an SFT term)")
    _model_and_out(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", type=Path, help="JSONL of {prompt, chosen, rejected}")
    source.add_argument("--from-run", metavar="RUN",
                        help="best vs worst graded answer of each item (run with --epochs >= 2)")
    source.add_argument("--from-votes", action="store_true", help="human votes in the store")
    source.add_argument("--from-steering", nargs="?", const="", metavar="RUN",
                        help="corrected vs original continuation where a reviewer steered in `posttrain view` (of RUN, or "
                             "of every run in the store)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta")
    p.add_argument("--loss", default="sigmoid,sft", help="TRL loss types, comma separated")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=run_train)

    p = kinds.add_parser("rft", help="reinforcement fine-tuning: GRPO with the eval's graders")
    _model_and_out(p)
    p.add_argument("--eval", required=True, type=Path, dest="eval_file", metavar="EVAL_FILE")
    p.add_argument("--group-size", type=int, default=8, help="completions per prompt")
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--kl", type=float, default=0.0, help="KL coefficient (beta)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, help="completion length (default: the eval's)")
    p.add_argument("--heldout", type=float, default=0.2,
                   help="held-out fraction (<1) or count of items for before/after")
    p.add_argument("--validation", type=float, default=0.1,
                   help="fraction or count of items that pick the best checkpoint")
    p.add_argument("--eval-every", type=int, default=20, help="validation every N steps")
    p.add_argument("--plot", type=Path, help="write the reward curves as an SVG")
    p.add_argument("--faults", choices=["transient", "permanent", "mixed"],
                   help="multi-turn: inject the environment's tool failures into training "
                        "episodes (tool_use: transient ones to retry, permanent ones to report)")
    p.add_argument("--fault-rate", type=float,
                   help="with --faults: share of training items given a failure (default 0.5)")
    p.add_argument("--episode-tokens", type=int,
                   help="multi-turn: most tokens after the prompt in one episode (default 1024)")
    p.set_defaults(func=run_train)

    p = kinds.add_parser("jobs", help="the training jobs recorded in the store (rft), newest "
                                      "first: status (running, finished, failed, interrupted, "
                                      "died), steps logged, output folder")
    p.add_argument("--store", default=DEFAULT_STORE, help="SQLite store (default ./posttrain.db)")
    p.add_argument("--json", action="store_true", help="print the jobs as one JSON list")
    p.set_defaults(func=run_jobs)

    export = sub.add_parser("export", help="export training data to hosted formats")
    targets = export.add_subparsers(dest="export_target", required=True, metavar="TARGET")
    p = targets.add_parser("openai-ft", help="OpenAI fine-tuning JSONL (sft, dpo, rft + grader)")
    p.add_argument("--kind", choices=["sft", "dpo", "rft"], help="required unless --job")
    p.add_argument("-o", "--out", required=True, type=Path, help="output JSONL")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--data", type=Path, help="sft: JSONL of messages or prompt/completion")
    p.add_argument("--pairs", type=Path, help="dpo: JSONL of pairs")
    p.add_argument("--from-run", metavar="RUN", help="sft/dpo: a stored run")
    p.add_argument("--only-passed", action="store_true")
    p.add_argument("--from-votes", action="store_true", help="dpo: human votes")
    p.add_argument("--from-steering", nargs="?", const="", metavar="RUN",
                   help="sft/dpo: trajectories a reviewer steered in `posttrain view`")
    p.add_argument("--eval", type=Path, dest="eval_file", help="rft: the eval file")
    p.add_argument("--grader-out", type=Path, help="rft: grader JSON (default OUT.grader.json)")
    p.set_defaults(func=run_export)


# ---- train ----------------------------------------------------------------------------------
def _sft_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from posttrain.train.data import read_jsonl, rows_from_run

    if getattr(args, "data", None) is not None:
        return read_jsonl(args.data, "--data")
    if getattr(args, "from_run", None):
        return rows_from_run(args.store, args.from_run, args.only_passed)
    if getattr(args, "from_steering", None) is not None:
        from posttrain.train.data import rows_from_steering

        return rows_from_steering(args.store, args.from_steering or None, args.only_passed)
    raise UserError("give --data FILE, --from-run RUN or --from-steering", field="--data")


def _pairs(args: argparse.Namespace) -> list[dict[str, Any]]:
    from posttrain.train.data import pairs_from_run, pairs_from_votes, read_jsonl

    if getattr(args, "pairs", None) is not None:
        return read_jsonl(args.pairs, "--pairs")
    if getattr(args, "from_run", None):
        return pairs_from_run(args.store, args.from_run)
    if getattr(args, "from_votes", False):
        return pairs_from_votes(args.store)
    if getattr(args, "from_steering", None) is not None:
        from posttrain.train.data import pairs_from_steering

        return pairs_from_steering(args.store, args.from_steering or None)
    raise UserError("give --pairs FILE, --from-run RUN, --from-votes or --from-steering",
                    field="--pairs")


def _require_train() -> None:
    """After the data is read (its problems first), before any model is loaded."""
    from posttrain.models.checks import TRAIN_PACKAGES, require_extra

    require_extra("`posttrain train`", *TRAIN_PACKAGES, extra="train")


def _check_numbers(args: argparse.Namespace) -> None:
    """The shared numeric options, before anything is read or loaded: a step count or LoRA
    rank of 0 or less, or a learning rate that is not positive, is refused (``--steps 0`` was
    read as "not given" and trained the default 200 steps)."""
    for name, value in (("--steps", args.steps), ("--lora", args.lora)):
        if value is not None and value < 1:
            raise UserError(f"must be at least 1, got {value}", field=name)
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"must be a positive learning rate, got {args.lr:g}", field="--lr")
    if args.train_kind == "rft":
        _check_rft_numbers(args)
    _check_out(args.out, args.overwrite)


def _check_rft_numbers(args: argparse.Namespace) -> None:
    """GRPO's own settings, before any model is loaded or baseline paid for (TRL refused some
    after the baseline with a traceback, and took others silently: a negative KL penalty)."""
    least = {"--group-size": (args.group_size, 2, "GRPO compares at least 2 answers a prompt"),
             "--prompts-per-step": (args.prompts_per_step, 1, ""),
             "--eval-every": (args.eval_every, 1, ""),
             "--max-tokens": (args.max_tokens, 1, ""),
             "--episode-tokens": (args.episode_tokens, 1, "")}
    for name, (value, low, why) in least.items():
        if value is not None and value < low:
            raise UserError(f"must be at least {low}, got {value}" + (f": {why}" if why else ""),
                            field=name)
    if not args.temperature > 0:
        raise UserError(f"must be above 0, got {args.temperature:g}: GRPO learns from the "
                        "differences between sampled answers", field="--temperature")
    if not args.kl >= 0:
        raise UserError(f"must be 0 or more, got {args.kl:g}", field="--kl")
    for name, value in (("--heldout", args.heldout), ("--validation", args.validation)):
        if not value >= 0 or (value >= 1 and value != int(value)):
            raise UserError(f"a share below 1 or a whole count of items, got {value:g}",
                            field=name)
    if args.heldout == 0:
        raise UserError("must hold out some items (the before/after comparison)",
                        field="--heldout")
    if args.fault_rate is not None and not args.faults:
        raise UserError("needs --faults (which failures to inject)", field="--fault-rate")
    if args.fault_rate is None:
        args.fault_rate = 0.5


def _check_out(out: Path, overwrite: bool) -> None:
    """A folder that already holds a finished trained model is not replaced without
    ``--overwrite`` (a policy saved by an interrupted run may be)."""
    meta = out / "posttrain_train.json"
    if overwrite or not meta.exists():
        return
    try:
        interrupted = bool(json.loads(meta.read_text()).get("interrupted"))
    except (OSError, ValueError):
        interrupted = False
    if not interrupted:
        raise UserError(f"{out} already holds a trained model ({meta.name}): choose another "
                        "folder or pass --overwrite", field="-o")


def run_jobs(args: argparse.Namespace) -> int:
    """``posttrain train jobs``: one line per recorded job (a killed one reads ``died``)."""
    import time

    from posttrain.runner import train_jobs
    from posttrain.runner.store import Store

    if not Path(args.store).exists():
        raise UserError(f"no store at {args.store}", field="--store")
    with Store(args.store) as store:
        jobs = train_jobs.list_jobs(store)
    if args.json:
        print(json.dumps(jobs, default=str))
        return 0
    if not jobs:
        print(f"no training jobs in {args.store}")
        return 0
    for job in jobs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created"]))
        print(f"{job['id']}  {job['status']:<11} {job['kind']}  {job['log_entries']:>4} log "
              f"entries  {started}  {job['model']} on {job['eval_name'] or '-'} -> "
              f"{job['out_dir'] or '-'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import os

    from posttrain.train.launch import CHILD_ENV, launch_with_accelerate

    _check_numbers(args)
    if args.accelerate and not os.environ.get(CHILD_ENV):
        return launch_with_accelerate(args.accelerate, sys.argv[1:])
    from posttrain.train.common import check_report_to, reporting

    try:
        with reporting(check_report_to(args.report_to)), _sigterm_interrupts():
            summary = _train(args)
    except KeyboardInterrupt as exc:
        _close_progress_bars()
        print(_interrupted_line(exc, args), file=sys.stderr)
        return 130
    kind = args.train_kind
    summary["out"] = str(args.out)
    if args.json:
        print(json.dumps(summary, default=str))
    elif kind != "rft":
        print(f"{kind}: {summary['steps']} steps in {summary['seconds']} s, "
              f"train loss {summary['train_loss']}; saved {args.out}")
        print(f"evaluate it: posttrain eval EVAL_FILE --model hf:{args.out}")
    return 0


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a job scheduler, ``kill``) stops training as Ctrl-C does: the policy so far is
    saved and the job marked interrupted, rather than the process vanishing mid-write."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        signal.raise_signal(signal.SIGINT)  # whoever handles Ctrl-C now (asyncio's, Python's)

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    # a script's background job starts with SIGINT ignored: SIGTERM must still stop training
    # through the one Ctrl-C path (asyncio's handler in a rollout, Python's elsewhere)
    sigint = signal.getsignal(signal.SIGINT)
    ignored = sigint in (signal.SIG_IGN, signal.SIG_DFL)
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ignored:
            signal.signal(signal.SIGINT, sigint)


def _close_progress_bars() -> None:
    """End the trainer's progress bars (tqdm, left mid-line by the interrupt) so that the line
    saying what was saved starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001, S112 - a bar that cannot close leaves its line as is
            continue


def _interrupted_line(exc: KeyboardInterrupt, args: argparse.Namespace) -> str:
    from posttrain.train.rft import TrainingInterrupted

    if not isinstance(exc, TrainingInterrupted):
        return "interrupted: nothing was trained or saved"
    if exc.saved is None:
        return (f"interrupted after {exc.steps} of {exc.max_steps} steps: no step had "
                "finished, nothing saved")
    which = ("the policy at the interrupt" if exc.best_step is None else
             f"the best by validation (step {exc.best_step}"
             + (": the starting model)" if exc.best_step == 0 else ")"))
    return (f"interrupted after {exc.steps} of {exc.max_steps} GRPO steps: {which} is saved in "
            f"{exc.saved} (marked interrupted; not evaluated held-out: posttrain eval EVAL "
            f"--model hf:{exc.saved})")


def _train(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.train_kind
    if kind == "sft":
        from posttrain.train.sft import train_sft

        rows = _sft_rows(args)
        _require_train()
        summary = train_sft(args.model, rows, args.out, max_steps=args.steps or 200,
                            epochs=args.epochs, learning_rate=args.lr or 5e-5,
                            batch_size=args.batch_size, seed=args.seed,
                            lora_rank=args.lora, quiet=args.quiet or args.json)
    elif kind == "dpo":
        from posttrain.train.dpo import train_dpo

        loss = tuple(part.strip() for part in args.loss.split(",") if part.strip())
        pairs = _pairs(args)
        _require_train()
        summary = train_dpo(args.model, pairs, args.out, max_steps=args.steps or 100,
                            learning_rate=args.lr or 5e-6, beta=args.beta,
                            batch_size=args.batch_size, seed=args.seed,
                            lora_rank=args.lora, loss_type=loss, quiet=args.quiet or args.json)
    else:
        summary = _run_rft(args)
    return summary


def _run_rft(args: argparse.Namespace) -> dict[str, Any]:
    from posttrain.eval import load_eval
    from posttrain.train.loop import rft_with_report
    from posttrain.train.rft import RFTConfig

    eval_ = load_eval(args.eval_file)
    _require_train()
    config = RFTConfig(
        steps=args.steps or 200, num_generations=args.group_size,
        prompts_per_step=args.prompts_per_step, learning_rate=args.lr or 5e-5, beta=args.kl,
        temperature=args.temperature, max_completion_length=args.max_tokens,
        eval_every=args.eval_every, seed=args.seed, lora_rank=args.lora,
        heldout=args.heldout, validation=args.validation,
        faults=args.faults, fault_rate=args.fault_rate, episode_tokens=args.episode_tokens,
    )
    if not 0.0 <= args.fault_rate <= 1.0:
        raise UserError(f"must be a share from 0 to 1, got {args.fault_rate:g}",
                        field="--fault-rate")
    if args.faults or args.episode_tokens:
        from posttrain.train.episodes import environment_of

        if environment_of(eval_) is None:
            raise UserError("needs an eval whose solver plays environment episodes (a "
                            "posttrain.environment solver, such as the tool_use suite's)",
                            field="--faults" if args.faults else "--episode-tokens")
    quiet = args.quiet or args.json
    report = rft_with_report(args.model, eval_, args.out, config, quiet=quiet, plot=args.plot,
                             store=args.store)  # before and after as two stored runs
    if not args.json:
        print(report["text"])
    report.pop("text", None)
    return report


# ---- export ---------------------------------------------------------------------------------
def run_export(args: argparse.Namespace) -> int:
    from posttrain.cli.interop import run_export_job
    from posttrain.train import export

    if run_export_job(args):
        return 0
    if args.kind is None:
        raise UserError("give --kind sft|dpo|rft (or --job DIR)", field="--kind")
    if args.kind == "sft":
        records = export.sft_records(_sft_rows(args))
        path = export.write_jsonl(args.out, records)
        print(f"wrote {len(records)} SFT examples to {path}")
    elif args.kind == "dpo":
        records = export.dpo_records(_pairs(args))
        path = export.write_jsonl(args.out, records)
        print(f"wrote {len(records)} DPO pairs to {path}")
    else:
        if args.eval_file is None:
            raise UserError("rft export needs --eval EVAL_FILE", field="--eval")
        from posttrain.eval import load_eval

        eval_ = load_eval(args.eval_file)
        records = export.rft_records(eval_)
        path = export.write_jsonl(args.out, records)
        grader_path = args.grader_out or path.with_suffix(".grader.json")
        grader_path.write_text(json.dumps(export.rft_grader(eval_), indent=2) + "\n")
        print(f"wrote {len(records)} RFT items to {path} and the grader to {grader_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``posttrain train|export ...`` (argv includes the command)."""
    from posttrain.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

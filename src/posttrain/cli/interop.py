"""``posttrain import openai-eval``, ``posttrain export openai-eval``, ``posttrain train --job``
and ``posttrain export openai-ft --job``: coming from OpenAI's hosted Evals and fine-tuning.

Everything heavy (the store, graders, torch) is imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("import", order=55)  # after train (50): it adds export targets
def add_parsers(sub: Any) -> None:
    imp = sub.add_parser("import", help="import evals, runs and results from other tools "
                                        "(OpenAI Evals, Inspect logs, promptfoo, batch files)")
    sources = imp.add_subparsers(dest="import_source", required=True, metavar="SOURCE")
    p = sources.add_parser(
        "openai-eval", help="an OpenAI eval (create or GET JSON), its runs and output items",
        description="Write the eval as a posttrain eval (DIR/eval.yaml, DIR/items.jsonl); store "
                    "each run's output items as a run with no requests, grade them here and "
                    "print OpenAI's counts beside posttrain's, with every item where a "
                    "criterion disagrees.")
    p.add_argument("eval_json", metavar="EVAL.json")
    p.add_argument("--runs", action="append", default=[], metavar="RUNS",
                   help="run objects: a .json (one run, a list, or a list page) or .jsonl file, "
                        "or a folder of them (repeat)")
    p.add_argument("--output-items", action="append", default=[], metavar="ITEMS",
                   help="output items: .jsonl, .json list pages, or a folder (repeat)")
    p.add_argument("--items", metavar="FILE.jsonl", help="the eval's items ({item: ...} or plain "
                                                         "rows), when no run carries them")
    p.add_argument("--files", action="append", default=[], metavar="DIR",
                   help="where downloaded files are (FILE_ID.jsonl) for file_id sources")
    p.add_argument("-o", "--out", required=True, type=Path, help="folder for eval.yaml")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--judge", metavar="SPEC",
                   help="grade score_model / label_model criteria with this model instead of "
                        "the OpenAI model they name (e.g. hf:smollm2-135m-instruct)")
    p.add_argument("--no-grade", action="store_true",
                   help="store OpenAI's grades only; do not grade here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_import_eval)

    export = sub.choices["export"]  # added by posttrain.cli.train
    targets = next(a for a in export._actions if isinstance(a, argparse._SubParsersAction))
    p = targets.add_parser("openai-eval", help="an eval and its stored runs as OpenAI Evals "
                                               "JSON (eval, runs, output items)")
    p.add_argument("eval_file", metavar="EVAL_FILE")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--store", default="posttrain.db")
    p.add_argument("--run", action="append", default=[], metavar="RUN",
                   help="only these runs (default: every stored run of the eval)")
    p.set_defaults(func=run_export_eval)
    ft = targets.choices["openai-ft"]
    ft.add_argument("--job", type=Path, metavar="DIR",
                    help="a `posttrain train --job` output folder: write its job body back "
                         "(with --out as the JSON path)")


def add_job_arguments(train: argparse.ArgumentParser) -> None:
    """``posttrain train --job JOB.json --model hf:... -o DIR`` (no KIND)."""
    group = train.add_argument_group("an OpenAI fine-tuning job file")
    group.add_argument("--job", type=Path, metavar="JOB.json",
                       help="run the body of POST /v1/fine_tuning/jobs here (method supervised, "
                            "dpo or reinforcement)")
    group.add_argument("--model", "-m", dest="job_model", metavar="hf:PATH",
                       help="the local model to fine-tune (default: the job's model when it is "
                            "hf:...)")
    group.add_argument("-o", "--out", dest="job_out", type=Path, metavar="DIR",
                       help="output folder: job.json, events.jsonl, checkpoints, model")
    group.add_argument("--store", dest="job_store", default="posttrain.db", metavar="PATH",
                       help="store for the validation runs (RFT; default ./posttrain.db)")
    group.add_argument("--max-tokens", dest="job_max_tokens", type=int, metavar="N",
                       help="RFT: completion length (default 128)")
    group.add_argument("--judge", dest="job_judge", metavar="SPEC",
                       help="RFT: the model for score_model graders instead of the OpenAI "
                            "model they name")
    group.add_argument("--json", dest="job_json", action="store_true",
                       help="print the job object as JSON")
    group.add_argument("--quiet", dest="job_quiet", action="store_true")
    train.set_defaults(func=run_job)


# ---- import / export openai-eval ----------------------------------------------------------
def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def _counts_line(counts: dict[str, Any] | None) -> str:
    if not counts or not isinstance(counts.get("result_counts"), dict):
        return "-"
    c = counts["result_counts"]
    text = (f"passed {c.get('passed')}  failed {c.get('failed')}  errored {c.get('errored')}  "
            f"total {c.get('total')}")
    if c.get("unscored"):
        text += f"  unscored {c['unscored']}"
    return text


def _criteria_line(counts: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in (counts or {}).get("per_testing_criteria_results") or []:
        extra = f" ({entry['unscored']} unscored)" if entry.get("unscored") else ""
        out[str(entry.get("testing_criteria"))] = \
            f"{entry.get('passed')} passed / {entry.get('failed')} failed{extra}"
    return out


def run_import_eval(args: argparse.Namespace) -> int:
    from posttrain.interop.openai_evals import import_openai_eval

    try:
        result = import_openai_eval(
            args.eval_json, args.out, runs=args.runs, output_items=args.output_items,
            items_file=args.items, files=args.files, store=args.store, judge=args.judge,
            grade=not args.no_grade)
    except KeyboardInterrupt:
        print("interrupted: the run being imported is not marked finished; run the same "
              "command to complete it", file=sys.stderr)
        return 130
    except RecursionError:
        print("posttrain: error: an input is nested too deep to read (lists or objects "
              "hundreds of levels deep)", file=sys.stderr)
        return 2
    _print_notes(result.notes)
    if args.json:
        print(json.dumps({"eval": str(result.eval_path), "items": result.items,
                          "variants": result.variants, "runs": result.runs,
                          "warnings": result.notes}, default=str))
        return 0
    print(f"wrote {result.eval_path} ({result.items} items; variants: "
          f"{', '.join(result.variants)})")
    for run in result.runs:
        state = {"new": "stored", "stored": "already stored (the same answers)",
                 "replaced": "stored (an interrupted import of it replaced)",
                 "changed": "stored as a new run (other answers than the one stored before; "
                            "see the warning)"}[run.get("state", "new")]
        print(f"\nrun {run['openai_run']} ({run['name']}; {run['model']} [{run['variant']}]): "
              f"{run['items']} answers, {state} as {run['run_id']}")
        if "requests" in run:
            print(f"  graded here with {run['requests']} requests")
        rows = [("openai (stored counts)", run["openai"]),
                ("openai (its output items)", run.get("openai_from_items")),
                ("posttrain", run["posttrain"])]
        for label, counts in rows:
            if counts is not None:
                print(f"  {label:26} {_counts_line(counts)}")
        names = _criteria_line(run["posttrain"])
        # OpenAI's stored per-criterion counts, else those of its output items
        theirs = {**_criteria_line(run.get("openai_from_items")), **_criteria_line(run["openai"])}
        for name, mine in names.items():
            print(f"    {name:24} openai {theirs.get(name, '-'):24} posttrain {mine}")
        misgrades = [d for d in run["disagreements"] if not d.get("whitespace")]
        spaces = [d for d in run["disagreements"] if d.get("whitespace")]
        if misgrades:
            count = len(misgrades)
            print(f"  {count} {'grade disagrees' if count == 1 else 'grades disagree'} (drift "
                  "or a misgrade; `posttrain audit EVAL_FILE` counts every changed score per "
                  "criterion):")
            for d in misgrades:
                mine = d["posttrain"]
                why = f" ({mine['explanation']})" if mine["status"] != "scored" else ""
                print(f"    item {d['item']}  {d['criterion']}: openai "
                      f"{_verdict(d['openai']['passed'])} ({d['openai']['score']}), posttrain "
                      f"{_verdict(mine['passed'])} ({mine['score']}){why}")
        if spaces:
            print(f"  {len(spaces)} {'grade differs' if len(spaces) == 1 else 'grades differ'} "
                  "only by whitespace, not misgrades: posttrain grades an answer without its "
                  "surrounding spaces and newlines, OpenAI graded it as sampled (items "
                  f"{', '.join(sorted({d['item'] for d in spaces}, key=str))})")
        if not run["disagreements"] and run["new"] and "requests" in run:
            unscored = run["posttrain"]["result_counts"].get("unscored")
            print("  every criterion agrees on every item" if not unscored else
                  "  every grade both gave agrees; some items are unscored here (above)")
    spec = [r["model"] for r in result.runs if r["model"].startswith("openai:")]
    print(f"\nrun it again: posttrain eval {result.eval_path} --model "
          f"{spec[0] if spec else 'openai:MODEL'} --model hf:smollm2-135m-instruct")
    return 0


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "fail", None: "unscored"}[passed]


def run_export_eval(args: argparse.Namespace) -> int:
    from posttrain.interop.openai_evals import export_openai_eval

    result = export_openai_eval(args.eval_file, args.out, store=args.store, run_refs=args.run)
    print(f"wrote {result['eval']}, {result['runs']} runs (runs.json) and their output items "
          f"({result['output_items']})")
    return 0


# ---- train --job / export openai-ft --job -------------------------------------------------
def run_job(args: argparse.Namespace) -> int:
    if getattr(args, "job", None) is None:
        raise UserError("give a KIND (sft, dpo, rft) or --job JOB.json", field="train")
    from posttrain.interop.openai_ft import load_job
    from posttrain.interop.openai_ft import run_job as run

    if args.job_max_tokens is not None and args.job_max_tokens <= 0:
        raise UserError(f"must be a positive number of tokens, got {args.job_max_tokens}",
                        field="--max-tokens")
    job = load_job(args.job, judge=args.job_judge)
    _print_notes(job.notes)
    if args.job_out is None:
        raise UserError("required with --job: -o DIR (where the model and events go)",
                        field="--out")
    from posttrain.train.common import integration_trackers, reporting

    trackers, tracker_notes = integration_trackers(job.body.get("integrations"), file=args.job)
    _print_notes(tracker_notes)
    with reporting(trackers):
        result = run(job, model=args.job_model, out_dir=args.job_out, store=args.job_store,
                     max_tokens=args.job_max_tokens, quiet=args.job_quiet or args.job_json)
    if args.job_json:
        print(json.dumps(result["job"], default=str))
    else:
        print(result["text"])
    return 0


def run_export_job(args: argparse.Namespace) -> bool:
    """``export openai-ft --job DIR``; False when ``--job`` was not given."""
    if getattr(args, "job", None) is None:
        return False
    from posttrain.interop.openai_ft import export_job

    paths = export_job(args.job, args.out)
    print(f"wrote {paths[0]}" + (f" and {', '.join(str(p) for p in paths[1:])}"
                                 if len(paths) > 1 else ""))
    return True

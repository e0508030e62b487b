"""``posttrain import inspect-log|promptfoo`` and ``posttrain export inspect-log|promptfoo``:
coming from (and going back to) Inspect AI and promptfoo.

These add sources to ``posttrain import`` (``posttrain.cli.interop``) and targets to
``posttrain export`` (``posttrain.cli.train``); everything heavy is imported inside the
commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posttrain.plugins import register_command


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@register_command("import-formats", order=56)  # after import (55): adds to import and export
def add_parsers(sub: Any) -> None:
    sources = _subparsers(sub.choices["import"])
    targets = _subparsers(sub.choices["export"])

    p = sources.add_parser(
        "inspect-log", help="Inspect AI logs (.eval, .json): each log as a stored run",
        description="Store each Inspect log (one task x one model) as a run with no requests: "
                    "samples and epochs, answers, token usage, errors, one grade per scorer. "
                    "Then `posttrain compare` pairs two models per item. Needs "
                    "posttrain[inspect].")
    p.add_argument("logs", nargs="+", metavar="FILE|DIR", help=".eval or .json logs, or "
                                                              "folders of them")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default "
                                                           "./posttrain.db)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_import_inspect)

    p = targets.add_parser("inspect-log", help="a stored run as an Inspect log "
                                                "(inspect view opens it)")
    p.add_argument("run", metavar="RUN", help="run id, prefix, latest or latest~N")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="FILE.eval",
                   help="the log to write (.eval, or .json)")
    p.add_argument("--store", default="posttrain.db")
    p.set_defaults(func=run_export_inspect)

    p = sources.add_parser(
        "promptfoo", help="a promptfoo config: prompts as variants, providers as models, "
                          "tests as items, assertions as graders",
        description="Write DIR/eval.yaml, DIR/items.jsonl, DIR/models.yaml and "
                    "DIR/promptfoo.json (what could not be carried over, and why); every such "
                    "thing is also printed.")
    p.add_argument("config", metavar="promptfooconfig.yaml")
    p.add_argument("-o", "--out", required=True, type=Path, help="folder for eval.yaml")
    p.add_argument("--judge", metavar="SPEC", help="the model for llm-rubric (default "
                                                   "openai:gpt-4.1-mini)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_import_promptfoo)

    p = targets.add_parser("promptfoo", help="stored runs as promptfoo's output JSON "
                                              "(version 3; promptfoo's viewer reads it)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="runs of one eval: each is a "
                                                         "prompt x provider column")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="results.json")
    p.add_argument("--store", default="posttrain.db")
    p.set_defaults(func=run_export_promptfoo)

    p = sources.add_parser(
        "openai-batch", help="an OpenAI Batch API input file as an eval; its output file as "
                             "a stored run",
        description="Each line's messages become an item (id: its custom_id); with --results "
                    "the batch's output file is stored as a run with no requests and graded.")
    p.add_argument("input", metavar="INPUT.jsonl")
    p.add_argument("--results", type=Path, metavar="OUTPUT.jsonl",
                   help="the batch's output (and error) file")
    p.add_argument("--graders", type=Path, metavar="FILE",
                   help="graders for the eval (YAML or JSON: one grader or a list)")
    p.add_argument("-o", "--out", required=True, type=Path, help="folder for eval.yaml")
    p.add_argument("--store", default="posttrain.db")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_import_batch)

    p = targets.add_parser("otel", help="stored runs' grades as OpenTelemetry "
                                         "gen_ai.evaluation.result events (OTLP JSON logs)",
                           description="One event per answer and grader (and one with the "
                                       "answer's combined score); answers that came from a "
                                       "trace (posttrain ingest) attach to their span. Needs "
                                       "posttrain[otel].")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="FILE.json")
    p.add_argument("--store", default="posttrain.db")
    p.set_defaults(func=run_export_otel)

    p = targets.add_parser("hf", help="an eval's items or a run's answers as a Hugging Face "
                                       "dataset folder with a dataset card",
                           description="DIR/data/SPLIT.jsonl and DIR/README.md (the card): "
                                       "load_dataset(DIR) reads it; upload it with "
                                       "huggingface-cli upload, or read it in an eval file as "
                                       "dataset: hf://./DIR?split=SPLIT.")
    p.add_argument("source", metavar="RUN|EVAL_FILE")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="DIR")
    p.add_argument("--split", default="test")
    p.add_argument("--store", default="posttrain.db")
    p.set_defaults(func=run_export_hf)


def _warn(notes: list[str]) -> None:
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def run_import_inspect(args: argparse.Namespace) -> int:
    from posttrain.interop.inspect_log import import_inspect_logs

    reports, notes = import_inspect_logs(args.logs, args.store)
    _warn(notes)
    if args.json:
        print(json.dumps({"runs": [r.to_dict() for r in reports], "warnings": notes},
                         default=str))
        return 0
    for r in reports:
        s = r.summary or {}
        state = "stored as" if r.new else "already stored as"
        print(f"{r.file}: task {r.task}, {r.inspect_model} ({r.model}), {r.items} samples x "
              f"{r.epochs} epochs, status {r.status}: {state} {r.run_id}")
        for scorer, metrics in r.inspect_metrics.items():
            shown = "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
            print(f"  inspect    {scorer:20} {shown}")
        print(f"  posttrain  score {_fmt(s.get('score'))} [95% CI {_fmt(s.get('ci_low'))}, "
              f"{_fmt(s.get('ci_high'))}]  n {s.get('n')}  errors {s.get('errors')}  unscored "
              f"{s.get('unscored')}  (score: {r.scorers[0] if r.scorers else '-'}; errors and "
              "unscored count 0)")
        for name, entry in (s.get("components") or {}).items():
            print(f"    {name:28} {_fmt(entry.get('score'))}  scored {entry.get('scored')}")
    if len(reports) >= 2:
        print(f"\ncompare them paired per item: posttrain compare {reports[0].run_id} "
              f"{reports[1].run_id} --store {args.store}")
    return 0


def run_export_inspect(args: argparse.Namespace) -> int:
    from posttrain.interop.inspect_log import export_inspect_log

    result = export_inspect_log(args.store, args.run, args.out)
    print(f"wrote {result['file']} ({result['samples']} samples of run {result['run_id']}, "
          f"task {result['task']}, model {result['model']}); open it with: inspect view "
          f"--log-dir {Path(result['file']).parent}")
    return 0


def run_import_promptfoo(args: argparse.Namespace) -> int:
    from posttrain.interop.promptfoo import import_promptfoo

    result = import_promptfoo(args.config, args.out, judge=args.judge)
    _warn(result.warnings)
    for line in result.not_mapped:
        print(f"not carried over: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps({"eval": str(result.eval_path), "models_file": str(result.models_path),
                          "items": result.items, "variants": result.variants,
                          "models": result.models, "not_mapped": result.not_mapped,
                          "warnings": result.warnings}))
        return 0
    print(f"wrote {result.eval_path} ({result.items} tests as items; variants: "
          f"{', '.join(result.variants)}) and {result.models_path} (models: "
          f"{', '.join(result.models) or 'none'})")
    if result.not_mapped:
        print(f"{len(result.not_mapped)} thing(s) not carried over (listed above and in "
              f"{result.eval_path.parent / 'promptfoo.json'})")
    models = " ".join(f"--model {m}" for m in result.models) or "--model SPEC"
    print(f"run it: posttrain eval {result.eval_path} --models-file {result.models_path} "
          f"{models}")
    return 0


def run_export_promptfoo(args: argparse.Namespace) -> int:
    from posttrain.interop.promptfoo import export_promptfoo

    result = export_promptfoo(args.store, args.runs, args.out)
    print(f"wrote {result['file']} ({result['runs']} runs, {result['results']} results; "
          "promptfoo's output JSON, version 3)")
    return 0


def run_import_batch(args: argparse.Namespace) -> int:
    from posttrain.interop.openai_batch import import_batch

    result = import_batch(args.input, args.out, results=args.results, graders=args.graders,
                          store=args.store)
    _warn(result["warnings"])
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    print(f"wrote {result['eval']} ({result['items']} requests as items; models named: "
          f"{', '.join(result['models']) or '-'})")
    run = result.get("run")
    if run:
        state = "stored as" if run["new"] else "already stored as"
        print(f"results {state} run {run['run_id']}: posttrain report {run['run_id']} --store "
              f"{args.store}")
    return 0


def run_export_otel(args: argparse.Namespace) -> int:
    from posttrain.interop.otel import export_otel

    result = export_otel(args.store, args.runs, args.out)
    print(f"wrote {result['file']} ({result['events']} gen_ai.evaluation.result events, "
          f"{result['on_spans']} on the spans they judge)")
    return 0


def run_export_hf(args: argparse.Namespace) -> int:
    from posttrain.interop.hf_dataset import export_hf

    result = export_hf(args.source, args.out, store=args.store, split=args.split)
    _warn(result["warnings"])
    print(f"wrote {result['folder']} ({result['rows']} rows, split {result['split']}; card "
          "README.md): load_dataset() reads it, huggingface-cli upload publishes it")
    return 0

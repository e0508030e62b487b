"""``posttrain ingest LOGS [--feedback FILE] [--map ...] -o DIR [--store PATH] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command

HELP = "turn usage logs and feedback into an eval (redacted, deduplicated, by theme)"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", type=Path, help="JSONL of request/response logs, or an OTLP "
                                                "JSON trace export (GenAI spans)")
    parser.add_argument("--feedback", type=Path, help='JSONL of {"id","rating","comment"?,'
                        '"correction"?} joined on id')
    parser.add_argument("--map", dest="mapping",
                        help="field paths for other shapes: prompt=PATH,response=PATH,id=PATH,"
                             "created=,model=,system=,messages=,rating=,comment=,correction=")
    parser.add_argument("--format", dest="fmt", default="auto",
                        choices=["auto", "chat", "responses", "otel"],
                        help="log shape (default: auto; otel: an OTLP JSON trace export with "
                             "the GenAI conventions, needs posttrain[otel])")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output eval folder")
    parser.add_argument("--store", type=Path, help="also record the logged answers as runs here")
    parser.add_argument("--embed", default="minilm", choices=["minilm", "tfidf"],
                        help="theme embeddings: local all-MiniLM-L6-v2 (needs the [similarity] "
                             "extra) or TF-IDF (fast); themes need numpy ([ingest])")
    parser.add_argument("--themes", type=int, help="number of themes (default: sqrt(n/2), <=12)")
    parser.add_argument("--per-theme", type=int, default=0,
                        help="keep at most N items per theme (feedback first); 0 keeps all")
    parser.add_argument("--near", type=float, default=0.8,
                        help="Jaccard threshold for near duplicates (default 0.8)")
    parser.add_argument("--judge", default=None, help="judge model spec for rubric items")
    parser.add_argument("--grader", default="similarity", choices=["similarity", "string"],
                        help="grader for reference items")
    parser.add_argument("--name", help="eval name (default: the output folder's name)")
    parser.add_argument("--no-names", action="store_true",
                        help="do not redact people's names (found by spaCy's NER with the "
                             "[ingest] extra, by cues such as 'my name is X' and by JSON keys "
                             "such as customer_name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


@register_command("usage", order=60)
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("ingest", help=HELP, description=HELP)
    _configure(parser)
    parser.set_defaults(func=run)
    return parser


def _print_text(summary: dict[str, Any]) -> None:
    out = sys.stdout
    what = "spans" if summary["format"] == "otel" else "log lines"
    print(f"read {summary['parsed']} of {summary['lines']} {what} ({summary['format']})",
          file=out)
    redactions = {k: v for k, v in summary["redactions"].items() if v}
    print("redacted: " + (", ".join(f"{k} {v}" for k, v in redactions.items()) or "nothing"),
          file=out)
    detection = summary["redaction"]
    print(f"names: {detection['names'] if summary['names_redacted'] else 'kept (--no-names)'}",
          file=out)
    dup = summary["duplicates"]
    print(f"duplicates removed: {dup['exact']} exact, {dup['near']} near", file=out)
    if dup.get("conflicting_corrections"):
        print(f"  {dup['conflicting_corrections']} of them carried another correction than the "
              "item kept (provenance.conflicting_corrections says which items)", file=out)
    fb = summary["feedback"]
    if fb["rows"]:
        ambiguous = (f", {fb['ambiguous']} on more than one log line (joined to none)"
                     if fb.get("ambiguous") else "")
        print(f"feedback: {fb['matched']} matched, {fb['unmatched']} with no log line"
              f"{ambiguous}", file=out)
    print(f"themes ({summary['embed']}):", file=out)
    for theme in summary["themes"]:
        print(f"  {theme['label']:<40} {theme['kept']:>5} of {theme['size']}", file=out)
    for output in summary["outputs"]:
        print(f"wrote {output['items']} {output['kind']} items: {output['eval']}", file=out)
    if summary.get("removed"):
        print(f"removed what an earlier ingest wrote here: {', '.join(summary['removed'])}",
              file=out)
    for run in summary["runs"]:
        if run.get("already_recorded"):
            print(f"run {run['run']} ({run['model']} on {run['eval']}) already holds these "
                  "answers: not recorded again", file=out)
            continue
        graded = "graded" if run["graded"] else "not graded"
        print(f"recorded run {run['run']} ({run['model']} on {run['eval']}, {graded})", file=out)


def run(args: argparse.Namespace) -> int:
    from posttrain.usage.ingest import DEFAULT_JUDGE, IngestOptions, ingest
    from posttrain.usage.logs import parse_map

    if args.per_theme < 0:
        raise UserError("must be >= 0", field="--per-theme")
    if not 0 < args.near <= 1:
        raise UserError("must be in (0, 1]", field="--near")
    options = IngestOptions(
        feedback=args.feedback, mapping=parse_map(args.mapping), fmt=args.fmt, embed=args.embed,
        themes=args.themes, per_theme=args.per_theme, near=args.near,
        judge=args.judge or DEFAULT_JUDGE, grader=args.grader, name=args.name, seed=args.seed,
        redact_names=not args.no_names)
    from posttrain.usage.progress import StageProgress

    progress = StageProgress()  # stderr: a bar on a terminal, else a line every few seconds
    try:
        summary = ingest(args.logs, args.out, options, store_path=args.store, progress=progress)
    finally:
        progress.close()
    if args.json and options.redact_names and summary["redaction"]["engine"] != "presidio":
        print(f"posttrain ingest: names {summary['redaction']['names']}", file=sys.stderr)
    for problem in summary["skipped"]:
        print(f"{problem['file']}:{problem['line']}: skipped: {problem['reason']}",
              file=sys.stderr)
    for problem in summary["feedback"]["skipped"]:
        print(f"{problem['file']}:{problem['line']}: {problem['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_text(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``posttrain ingest`` with these arguments."""
    from posttrain.cli import main as cli_main

    return cli_main(["ingest", *(sys.argv[1:] if argv is None else argv)])

if __name__ == "__main__":
    raise SystemExit(main())

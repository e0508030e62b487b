"""``posttrain grade`` (the local twin of the hosted graders run/validate endpoints) and
``posttrain calibrate`` (judge agreement with human labels).

    posttrain grade GRADER.json --item ITEM.json --sample SAMPLE.json [--json]
    posttrain grade GRADER.json --validate
    posttrain calibrate GRADER.json [GRADER2.json ...] --labels LABELS.jsonl [--json]

ITEM / SAMPLE are files or inline JSON; ``--output-text TEXT`` builds the sample from text.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("grade", order=30)
def add_parser(subparsers: Any) -> None:
    grade = subparsers.add_parser("grade", help="run or validate one grader on one sample")
    grade.add_argument("grader", help="grader spec (.json or .yaml), OpenAI grader format")
    grade.add_argument("--item", help="item (dataset row): a JSON file or inline JSON")
    grade.add_argument("--sample", help="sample object: a JSON file or inline JSON")
    grade.add_argument("--output-text", help="build the sample from this text instead")
    grade.add_argument("--validate", action="store_true", help="check the grader, do not run it")
    grade.add_argument("--json", action="store_true", help="print JSON")
    grade.add_argument("--openai", action="store_true",
                       help="with --json: answer as OpenAI's grader-run endpoint (reward, "
                            "sub_rewards, metadata.errors); GRADER may be that endpoint's "
                            "request body {grader, item, model_sample}")
    grade.set_defaults(func=run)
    calibrate = subparsers.add_parser("calibrate",
                                      help="agreement of judge graders with human labels")
    calibrate.add_argument("graders", nargs="+", help="grader spec files")
    calibrate.add_argument("--labels", required=True,
                           help="JSONL of {item, sample, label (bool or number)}")
    calibrate.add_argument("--threshold", type=float, default=0.5,
                           help="binarise numeric labels and scores at this value")
    calibrate.add_argument("--json", action="store_true", help="print JSON")
    calibrate.set_defaults(func=run_calibrate)


def _load_json_arg(value: str, what: str) -> Any:
    text = value
    source = f"--{what}"
    if not value.lstrip().startswith(("{", "[")):
        path = Path(value).resolve()  # errors name files by their absolute path
        from posttrain.loaders.datasets import decode

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}", field=source) from None
        text = decode(data, path)
        source = str(path)
        if path.suffix in (".yaml", ".yml"):
            from posttrain.loaders import yaml12

            return yaml12.loads(text, file=source)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"not JSON: {exc.args[0]}", file=source if source != f"--{what}" else None,
                        field=None if source != f"--{what}" else source) from None


def _model_factory() -> Any:
    try:
        from posttrain.models import resolve_model  # type: ignore[attr-defined]
    except ImportError:
        return None
    return resolve_model


def load_grader(path: str) -> Any:
    from posttrain.graders.base import GraderContext
    from posttrain.graders.registry import build_grader

    spec = _load_json_arg(path, "grader")
    if isinstance(spec, dict) and "grader" in spec and "type" not in spec:
        spec = spec["grader"]  # a /graders/run request body {grader, item, model_sample}
    from posttrain.template import GRADER_NOT_TEMPLATES, syntax_errors

    inline = path.lstrip().startswith(("{", "["))
    source = None if inline else str(Path(path).resolve())
    for where, exc in syntax_errors(spec, skip=GRADER_NOT_TEMPLATES):
        raise UserError(str(exc), file=source, field=where or ("--grader" if inline else None))
    _check_roots(spec, source, inline)
    context = GraderContext(base_dir=Path(path).resolve().parent,
                            source=source or path, model_factory=_model_factory())
    return build_grader(spec, context)


def _check_roots(spec: Any, source: str | None, inline: bool) -> None:
    """Every placeholder reads ``item.*``, ``sample.*`` (a field a sample has) or, in a
    pairwise judge, ``pair.*``, as the eval loader requires: ``{{ msg }}`` is an error here
    too, not a grade that fails on every sample."""
    import re

    from posttrain.errors import did_you_mean
    from posttrain.eval import SAMPLE_FIELDS
    from posttrain.template import GRADER_NOT_TEMPLATES, placeholders_by_field

    for where, path in placeholders_by_field(spec, skip=GRADER_NOT_TEMPLATES):
        root, _, rest = path.partition(".")
        root = root.split("[", 1)[0]
        field = where or ("--grader" if inline else None)
        if root not in ("item", "sample", "pair"):
            raise UserError(f"{{{{{path}}}}}: a grader's template reads `item.*` and "
                            f"`sample.*`, not {root!r}; write \\{{{{ for a literal {{{{",
                            file=source, field=field)
        name = re.split(r"[.\[]", rest, maxsplit=1)[0]
        if root == "sample" and name not in (*SAMPLE_FIELDS, "transcript"):
            raise UserError(f"{{{{{path}}}}}: a sample has no field {name!r}"
                            + did_you_mean(name, SAMPLE_FIELDS)
                            + f" (it has {', '.join(SAMPLE_FIELDS)})", file=source, field=field)


def _sample(args: argparse.Namespace) -> dict[str, Any]:
    from posttrain.types import Completion

    if args.output_text is not None:
        return Completion(text=args.output_text).to_sample()
    if args.sample is None:
        raise UserError("give --sample SAMPLE.json (or --output-text TEXT)", field="--sample")
    sample = _load_json_arg(args.sample, "sample")
    if isinstance(sample, str):
        return Completion(text=sample).to_sample()
    if not isinstance(sample, dict):
        raise UserError("a sample must be a JSON object", field="--sample")
    text = sample.get("output_text")
    if text is None:
        choices = sample.get("choices") or []
        if choices and isinstance(choices[0], dict):
            text = (choices[0].get("message") or {}).get("content")
    # the same sample --output-text builds (and an eval run grades): the answer without its
    # surrounding whitespace, output_json parsed from it; fields given here win
    tools = sample.get("output_tools") if isinstance(sample.get("output_tools"), list) else []
    built = Completion(text=text if isinstance(text, str) else "", tool_calls=tools).to_sample()
    built.update({k: v for k, v in sample.items() if k != "output_text"})
    return built


def _run_request(args: argparse.Namespace) -> dict[str, Any] | None:
    """The grader argument when it is a grader-run request body ``{grader, item,
    model_sample}``; else None."""
    try:
        spec = _load_json_arg(args.grader, "grader")
    except UserError:
        return None
    if isinstance(spec, dict) and "grader" in spec and "type" not in spec:
        return spec
    return None


def _print_score(result: dict[str, Any], name: str) -> None:
    value = result["score"]
    shown = "-" if value is None else f"{value:.4g}"
    passed = {True: "yes", False: "no", None: "-"}[result["passed"]]
    print(f"{name}: score {shown}  passed {passed}  status {result['status']}")
    if result["explanation"]:
        print(f"  explanation: {result['explanation']}")
    for key, sub in result["sub_scores"].items():
        print(f"  {key}: {sub:.4g}")


def run(args: argparse.Namespace) -> int:
    grader = load_grader(args.grader)
    if args.validate:
        message = {"valid": True, "type": grader.type, "name": grader.name,
                   "components": grader.components()}
        print(json.dumps(message) if args.json else
              f"ok: {grader.type} grader {grader.name!r}")
        return 0
    body = _run_request(args)
    if body is not None:  # a /graders/run request body: its item and model_sample
        if args.item is None and isinstance(body.get("item"), dict):
            args.item = json.dumps(body["item"])
        if args.sample is None and args.output_text is None:
            if not isinstance(body.get("model_sample"), str):
                raise UserError("the grader-run body has no model_sample (the answer to "
                                "grade, a string): add \"model_sample\": \"...\" to it, or "
                                "give --output-text TEXT or --sample SAMPLE.json",
                                file=str(Path(args.grader).resolve())
                                if not args.grader.lstrip().startswith("{") else None,
                                field="model_sample")
            args.output_text = body["model_sample"]
    if args.item is None:
        raise UserError("give --item ITEM.json (use '{}' for none)", field="--item")
    item = _load_json_arg(args.item, "item")
    if not isinstance(item, dict):
        raise UserError("an item must be a JSON object", field="--item")
    sample = _sample(args)
    import time

    started = time.perf_counter()
    if grader.is_async:
        import asyncio

        async def once() -> Any:
            try:
                return await grader.agrade(sample, item)
            finally:  # the judges' clients, closed in their own loop
                await grader.aclose()

        score = asyncio.run(once())
    else:
        score = grader.grade(sample, item)
    result = score.to_dict()
    for part in [score, *(getattr(score, "parts", None) or [])]:
        if "clamped to" in (part.explanation or ""):  # a python grade() outside [0, 1]
            print(f"warning: {grader.name}: {part.explanation}: scores lie in [0, 1]",
                  file=sys.stderr)
    if args.openai:
        from posttrain.interop.openai_graders import grader_run_response

        print(json.dumps(grader_run_response(grader, score, time.perf_counter() - started),
                         ensure_ascii=False))
        return 0
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_score(result, grader.name)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from posttrain.graders.calibration import calibrate, format_table, load_labels

    graders = [load_grader(path) for path in args.graders]
    rows = load_labels(args.labels)
    results = calibrate(graders, rows, threshold=args.threshold)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print(format_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``posttrain grade|calibrate ...`` (argv includes the command)."""
    from posttrain.cli import main as cli_main

    return cli_main(argv)

if __name__ == "__main__":
    raise SystemExit(main())

"""``posttrain check``: a project's evals on a new model against production, one verdict;
``posttrain watch``: check each model a models file gains.

Only argparse at import time; the workflow (``posttrain.project``) is imported when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from posttrain.cli.options import add_request_options
from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("check", order=15)
def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "check", help="a project's evals on a new model against production: adopt / hold",
        description="Run every eval of the project (posttrain.yaml, found from this folder "
                    "upwards) on --model (each prompt variant; cached and resumable), compare "
                    "each paired with production's latest run, correct for the many "
                    "comparisons (Holm or Benjamini-Hochberg) and print one verdict. Exit "
                    "code: 0 adopt, 1 hold, 3 adopt with prompt changes, 4 insufficient "
                    "evidence (too few items, or production failed on some), 2 a setup "
                    "problem.")
    p.add_argument("--model", "-m", metavar="NEW",
                   help="the new model: a models-file name or a spec (openai:..., hf:...); "
                        "default: the project's one `candidates:` entry")
    _common(p)
    p.set_defaults(func=run_check)

    p = sub.add_parser(
        "watch", help="check each model the models file gains (cron: --once)",
        description="Compare the models file's names with those seen before (a state file "
                    "beside the project file); run `check` on each new one. The first run only "
                    "records the names. --once for cron; else poll every --every.")
    p.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    p.add_argument("--every", default="15m", metavar="AGE",
                   help="poll interval without --once (30s, 15m, 1h; default 15m)")
    p.add_argument("--state", metavar="FILE",
                   help="names seen so far (default .posttrain-watch.json beside the project)")
    p.add_argument("--out", metavar="DIR",
                   help="write check-NAME.md and check-NAME.xml (JUnit) per check here")
    _common(p, model_flags=False)
    p.set_defaults(func=run_watch)


def _common(p: argparse.ArgumentParser, *, model_flags: bool = True) -> None:
    p.add_argument("--project", metavar="FILE",
                   help="the project file (default: posttrain.yaml here or in a folder above)")
    p.add_argument("--against", metavar="PROD",
                   help="the production model (default: the project's `production:`)")
    if model_flags:
        p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one test per eval)")
        p.add_argument("--markdown", metavar="FILE",
                       help="also write a Markdown summary (for a pull-request comment)")
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--correction", choices=["holm", "bh"],
                   help="family-wise correction (default: the project's, else holm)")
    p.add_argument("--alpha", type=float, help="significance level (default: the project's, "
                                               "else 0.05)")
    p.add_argument("--no-variants", action="store_true",
                   help="run only the production prompt of each eval on the new model")
    add_request_options(p, limit_help="only the first N items of each eval",
                        epochs_help="samples per item")
    p.add_argument("--draws", type=int, default=20000,
                   help="Monte-Carlo draws of a sign-flip test too large to enumerate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _options(args: argparse.Namespace) -> Any:
    import math

    from posttrain.cli.runs import check_run_limits
    from posttrain.project.check import CheckOptions
    from posttrain.runner.cache import CachePolicy, parse_duration

    check_run_limits(args)
    if args.alpha is not None and not (math.isfinite(args.alpha) and 0 < args.alpha < 0.5):
        raise UserError(f"must be above 0 and below 0.5, got {args.alpha:g}", field="--alpha")
    if args.draws < 100:
        raise UserError("use at least 100 draws", field="--draws")
    expiry: Any = "auto"
    if args.cache_expiry:
        try:
            expiry = parse_duration(args.cache_expiry)
        except ValueError as exc:
            raise UserError(str(exc), field="--cache-expiry") from None
    return CheckOptions(
        epochs=args.epochs, limit=args.limit, concurrency=args.concurrency,
        timeout_s=args.timeout, max_retries=args.max_retries, deadline_s=args.deadline,
        use_cache=not args.no_cache, cache=CachePolicy(expiry_s=expiry),
        correction=args.correction, alpha=args.alpha, seed=args.seed, draws=args.draws,
        variants=not args.no_variants,
        progress=False if args.no_progress or getattr(args, "json", False) else None)


def check_output(path: str | None, flag: str) -> None:
    """A report file that cannot be written is a setup problem found before any request."""
    import os

    if not path:
        return
    target = Path(path).resolve()
    if target.is_dir():
        raise UserError(f"{target} is a folder: name a file", field=flag)
    if not target.parent.is_dir():
        raise UserError(f"no such folder: {target.parent}", field=flag)
    if (target.exists() and not os.access(target, os.W_OK)) or \
            (not target.exists() and not os.access(target.parent, os.W_OK)):
        raise UserError(f"cannot write {target} (permission denied)", field=flag)


def _write(path: str, text: str, flag: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}", field=flag) from None


def run_check(args: argparse.Namespace) -> int:
    from posttrain.project.config import load_project

    for flag, path in (("--junit", args.junit), ("--markdown", args.markdown)):
        check_output(path, flag)
    try:
        project = load_project(args.project)
        options = _options(args)
        model = args.model
        if model is None:
            if len(project.candidates) != 1:
                listed = (f" (candidates: {', '.join(project.candidates)})"
                          if project.candidates
                          else f" (or list one under `candidates:` in {project.path})")
                raise UserError("name the new model" + listed, field="--model")
            model = project.candidates[0]
    except UserError as exc:
        _error_files(args.model or "?", exc, args.junit, args.markdown)
        raise
    return _check_and_report(project, model, args.against, options, junit=args.junit,
                             markdown=args.markdown, as_json=args.json)


def _error_files(new: str, exc: UserError, junit: str | None, markdown: str | None) -> None:
    """CI publishes the report files `if: always()`: on a setup problem (exit 2) they say what
    it is."""
    from posttrain.project.render import render_error_junit, render_error_markdown

    if junit:
        _write(junit, render_error_junit(new, str(exc)), "--junit")
    if markdown:
        _write(markdown, render_error_markdown(new, str(exc)), "--markdown")


def _check_and_report(project: Any, new: str, against: str | None, options: Any, *,
                      junit: str | None, markdown: str | None, as_json: bool) -> int:
    from posttrain.project.check import check
    from posttrain.project.render import render_junit, render_markdown, render_text

    try:
        report = check(project, new, against, options)
    except KeyboardInterrupt:
        print("interrupted: finished answers are stored; run the same command to resume",
              file=sys.stderr)
        return 130
    except UserError as exc:
        _error_files(new, exc, junit, markdown)
        raise
    if junit:
        _write(junit, render_junit(report), "--junit")
    if markdown:
        _write(markdown, render_markdown(report), "--markdown")
    if as_json:
        import json

        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_text(report))
    return int(report["exit_code"])


def safe_name(name: str) -> str:
    """A model name as part of a file name: `/`, `:` and the like become `_`; when that changed
    the name, a short hash of it keeps two names apart."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    if safe != name:
        safe += "-" + hashlib.blake2b(name.encode(), digest_size=3).hexdigest()
    return safe


def _read_state(path: Path) -> dict[str, Any] | None:
    """The watch's state file ({"seen": [names], "failed": {name: error}}), None when absent;
    a file that is not one is a setup problem named in one line."""
    import json

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"not a watch state file ({exc}); delete it to start again (the next "
                        "pass then only records the models file's names)", file=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("seen", []), list) or \
            not all(isinstance(n, str) for n in data.get("seen", [])) or \
            not isinstance(data.get("failed", {}), dict):
        raise UserError('not a watch state file (expected {"seen": [names], "failed": {...}}); '
                        "delete it to start again (the next pass then only records the models "
                        "file's names)", file=path)
    return data


def _write_state(path: Path, seen: set[str], failed: dict[str, str]) -> None:
    import json
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"seen": sorted(seen), "failed": failed}, indent=1),
                   encoding="utf-8")
    os.replace(tmp, path)


def run_watch(args: argparse.Namespace) -> int:
    import time

    from posttrain.project.config import load_project
    from posttrain.runner.cache import parse_duration

    project = load_project(args.project)
    options = _options(args)
    if project.models_file is None:
        raise UserError("watch needs a models file: `models_file:` in the project file (or "
                        "posttrain.models.yaml beside it)", file=project.path,
                        field="models_file")
    try:
        every = parse_duration(args.every)
    except ValueError as exc:
        raise UserError(str(exc), field="--every") from None
    if not isinstance(every, (int, float)) or every <= 0:
        raise UserError("must be a duration such as 15m", field="--every")
    state_path = (Path(args.state) if args.state else
                  project.root / ".posttrain-watch.json").resolve()
    if not state_path.parent.is_dir():
        raise UserError(f"no such folder: {state_path.parent}", field="--state")
    if state_path.is_dir():
        raise UserError(f"{state_path} is a folder: name a file", field="--state")
    _read_state(state_path)  # a broken one stops here, before any request
    out = Path(args.out) if args.out else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make the folder {out}: {exc.strerror or exc}",
                            field="--out") from None
    from posttrain.models import load_models_file
    from posttrain.project.check import production_of

    production = production_of(project, args.against)
    code, failures = 0, 0
    try:
        while True:
            names = list(load_models_file(project.models_file))
            state = _read_state(state_path)
            if state is not None:
                seen = set(state.get("seen", []))
                failed: dict[str, str] = dict(state.get("failed", {}))
                new = [n for n in names if n not in seen and n != production]
            else:
                seen, failed, new = set(), {}, []
                print(f"watch: first pass: {len(names)} models recorded in {state_path}; "
                      "models added to the models file from now on are checked",
                      file=sys.stderr)
            for name in new:
                print(f"watch: new model {name}: posttrain check --model {name}",
                      file=sys.stderr)
                stem = safe_name(name)
                try:
                    result = _check_and_report(
                        project, name, args.against, options,
                        junit=str(out / f"check-{stem}.xml") if out else None,
                        markdown=str(out / f"check-{stem}.md") if out else None,
                        as_json=False)
                except UserError as exc:
                    # one bad model does not stall the watch: said, recorded, and on to the next
                    print(f"watch: {name}: no verdict, a setup problem: {exc} (recorded in "
                          f"{state_path}; after fixing it: posttrain check --model {name})",
                          file=sys.stderr)
                    failed[name] = str(exc)
                    failures += 1
                    result = 2
                if result == 130:  # interrupted: this model is not done
                    return 130
                code = max(code, result)
                seen.add(name)
                _write_state(state_path, seen, failed)
            _write_state(state_path, seen | set(names), failed)
            if args.once:
                return 2 if failures else code
            time.sleep(float(every))
    except KeyboardInterrupt:
        print("watch: interrupted (what was checked is recorded; run it again to go on)",
              file=sys.stderr)
        return 130

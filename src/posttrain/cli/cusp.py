"""``posttrain cusp``: per tag and component, what is within reach of a prompt, SFT or RFT.

Only argparse at import time; the run and the analysis are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("cusp", order=45)
def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cusp", help="what is just out of reach: pass@1, pass@k and GRPO signal per tag",
        description="Samples K answers per item (stored, cached and resumable like `posttrain "
                    "eval --epochs K`) and reports per tag and per grader component: pass@1, "
                    "pass@K, pass^K and the share of items whose K rewards differ (where GRPO "
                    "has signal). Each tag is called: clears the bar; prompt or SFT will do "
                    "(pass@K high, pass@1 low); RFT candidate - on the cusp (some signal); out "
                    "of reach (no signal); with the numbers behind each call. --run analyses a "
                    "stored run with several epochs instead.")
    p.add_argument("eval_file", nargs="?", metavar="EVAL_FILE", help="eval file (or suite name)")
    p.add_argument("--model", "-m", metavar="SPEC", help="the model to sample")
    p.add_argument("--run", metavar="RUN", help="analyse this stored run (epochs >= 2) instead")
    p.add_argument("--k", type=int, default=8, help="samples per item (default 8)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature for the K answers (default 1.0; the eval's own "
                        "is usually 0, which gives K copies of one answer)")
    p.add_argument("--variant", default="default", help="prompt variant (default: default)")
    p.add_argument("--bar", type=float, help="pass bar (default: the eval's pass_bar, else 0.8)")
    p.add_argument("--min-signal", type=float, default=0.1,
                   help="share of items with differing rewards that makes a tag an RFT "
                        "candidate (default 0.1)")
    p.add_argument("--by", metavar="FIELD", help="group by this item field (default: tags)")
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--models-file", help="named endpoints")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_cusp)


def _check(args: argparse.Namespace) -> None:
    if args.k < 2:
        raise UserError("must be at least 2 (signal needs two samples to differ)", field="--k")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"must be a finite number >= 0, got {args.temperature:g}",
                        field="--temperature")
    for name, value in (("--bar", args.bar), ("--min-signal", args.min_signal)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise UserError(f"must be a share from 0 to 1, got {value:g}", field=name)
    if args.limit is not None and args.limit < 1:
        raise UserError("must be at least 1", field="--limit")
    if args.run and (args.eval_file or args.model):
        raise UserError("give either --run RUN or EVAL_FILE --model SPEC", field="--run")
    if not args.run and not (args.eval_file and args.model):
        raise UserError("give EVAL_FILE and --model SPEC (or --run RUN)", field="--model")


def _sample(args: argparse.Namespace) -> str:
    """Run the eval K times per item at the temperature; the run's id."""
    import asyncio
    import dataclasses

    from posttrain.cli.runs import _eval_paths
    from posttrain.eval import load_eval
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions, execute_eval
    from posttrain.runner.progress import Progress
    from posttrain.runner.store import Store

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, args.models_file), timeout_s=args.timeout)

    path = _eval_paths([args.eval_file])[0]
    eval_ = load_eval(path, model_factory=judge_factory)
    eval_.variant(args.variant)  # an unknown variant stops here, before any request
    eval_ = dataclasses.replace(eval_, sampling={**eval_.sampling,
                                                 "temperature": args.temperature})
    config = model_config(args.model, args.models_file)
    model = build_model(config, timeout_s=args.timeout)
    options = RunOptions(epochs=args.k, limit=args.limit,
                         retry=RetryPolicy(timeout_s=args.timeout))
    progress = Progress(enabled=False if args.no_progress or args.json else None)

    async def go() -> Any:
        try:
            return await execute_eval(eval_, [model], [args.variant], Store(args.store),
                                      options, progress=progress,
                                      model_configs={config.name: config.public()})
        finally:
            await model.aclose()
            await eval_.aclose()

    (handle,) = asyncio.run(go())
    progress.close()
    return str(handle.run.id)


def run_cusp(args: argparse.Namespace) -> int:
    _check(args)
    run_id = args.run or _sample(args)
    from posttrain.analysis.cusp import cusp_report
    from posttrain.analysis.results import load_results
    from posttrain.analysis.selection import open_store, resolve

    store = open_store(args.store)
    results = load_results(store, resolve(store, run_id))
    try:
        report = cusp_report(results, bar=args.bar, min_signal=args.min_signal, by=args.by,
                             temperature=None if args.run else args.temperature)
    except ValueError as exc:
        raise UserError(str(exc), field="--run") from None
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(cusp_text(report))
    return 0


def cusp_text(report: dict[str, Any]) -> str:
    from posttrain.analysis.tables import ci, pct, text_table

    k = report["k"]
    out = [f"cusp: {report['eval']} on {report['model']} [{report['variant']}], run "
           f"{report['run']}: k = {k} samples per item"
           + (f" at temperature {report['temperature']:g}" if report["temperature"] is not None
              else "") + f"; bar {report['bar']:.0%}, signal >= {report['min_signal']:.0%}"]
    out += [f"warning: {w}" for w in report["warnings"]]
    headers = ["tag", "n", "pass@1", "95% CI", f"pass@{k}", f"pass^{k}", "signal", "95% CI",
               "call"]
    rows = [[t["tag"], t["n"], pct(t["pass_at_1"]), ci(*t["pass_at_1_ci"]), pct(t["pass_at_k"]),
             pct(t["pass_hat_k"]), pct(t["signal"]), ci(*t["signal_ci"]),
             t["class"] + (" (uncertain)" if t["uncertain"] else "")] for t in report["tags"]]
    out += ["", "By tag", text_table(headers, rows)]
    if report["components"]:
        rows = [[c["component"], c["n"], pct(c["mean_reward"]), pct(c["pass_at_1"]),
                 pct(c["pass_at_k"]), pct(c["signal"])] for c in report["components"]]
        out += ["", f"By grader component (a sample passes a component at >= "
                    f"{report['component_pass']:g}; for a flag such as over_ask, 1 is the "
                    "failure)",
                text_table(["component", "n", "mean", "pass@1", f"pass@{k}", "signal"], rows)]
    out += ["", "Why"]
    out += [f"  {t['tag']}: {t['class']}: {t['why']}"
            + (" (the interval crosses the threshold)" if t["uncertain"] else "")
            for t in report["tags"]]
    counts = ", ".join(f"{v} {c}" for c, v in report["counts"].items() if v)
    if counts:
        out += ["", f"tags: {counts}"]
    return "\n".join(out)


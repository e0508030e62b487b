"""``posttrain optimize`` and ``posttrain migrate``: find the prompt that serves a model, and
decide a model switch with paired evidence (``posttrain.optimize``)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("optimize", order=47)
def add_parsers(sub: Any) -> None:
    _add_optimize(sub)
    _add_migrate(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--models-file", help="named endpoints (default $POSTTRAIN_MODELS or "
                                         "./posttrain.models.yaml)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the paired tests (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="split and sampling seed (default 0)")
    p.add_argument("--concurrency", type=int, help="requests in flight per model")
    p.add_argument("--epochs", type=int, default=1, help="samples per item")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true")


def _add_optimize(sub: Any) -> None:
    p = sub.add_parser(
        "optimize", help="search prompt variants for a model; keep one only if it is proven",
        description="Try structural rewrites of the eval's prompt (and, with --proposer, "
                    "revisions a proposer model writes from failed samples) on a dev split; test "
                    "the best on a held-out split, paired. A winner (significantly better, no "
                    "tag or grader component significantly worse) is added to the eval file as "
                    "a new variant with its provenance; the current prompt is never changed.")
    p.add_argument("eval_file", metavar="EVAL_FILE")
    p.add_argument("--model", "-m", required=True, metavar="SPEC", help="the model to serve")
    p.add_argument("--proposer", metavar="SPEC",
                   help="model that writes revised prompts from failures (default: structural "
                        "rewrites only)")
    p.add_argument("--budget", type=int, default=8,
                   help="candidate prompts to try, each on every dev item (default 8)")
    p.add_argument("--holdout", type=float, default=0.5,
                   help="share of items held out for the acceptance test (default 0.5)")
    p.add_argument("--name", help="the winning variant's name (default optimized-MODEL)")
    p.add_argument("--no-write", action="store_true", help="report only; leave the file as is")
    _common(p)
    p.set_defaults(func=_run_optimize)


def _add_migrate(sub: Any) -> None:
    p = sub.add_parser(
        "migrate", help="old model and prompt vs the new model, current and optimized prompt",
        description="Run OLD with the current prompt, NEW with the current prompt and with the "
                    "optimized one (--variant, else the last variant `posttrain optimize` wrote "
                    "for NEW); compare paired overall, per tag and per grader component; print "
                    "a one-line verdict with cost and latency per model.")
    p.add_argument("eval_file", metavar="EVAL_FILE")
    p.add_argument("--from", dest="old", required=True, metavar="OLD", help="the model in use")
    p.add_argument("--to", dest="new", required=True, metavar="NEW", help="the candidate model")
    p.add_argument("--variant", help="NEW's prompt variant (default: the last one optimize "
                                     "wrote for NEW, else the current prompt)")
    _common(p)
    p.set_defaults(func=_run_migrate)


def _check(args: argparse.Namespace) -> None:
    for name, value in (("--epochs", args.epochs), ("--concurrency", args.concurrency),
                        ("--budget", getattr(args, "budget", 1))):
        if value is not None and value < 1:
            raise UserError("must be at least 1", field=name)
    if args.max_retries < 0:
        raise UserError("must be 0 or more", field="--max-retries")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UserError(f"must be a number of seconds above 0, got {args.timeout:g}",
                        field="--timeout")
    if not (math.isfinite(args.alpha) and 0 < args.alpha < 0.5):
        raise UserError(f"must be a level between 0 and 0.5, got {args.alpha:g}", field="--alpha")
    holdout = getattr(args, "holdout", None)
    if holdout is not None and not (math.isfinite(holdout) and 0 < holdout < 1):
        raise UserError(f"must be a share between 0 and 1, got {holdout:g}", field="--holdout")


def _setup(args: argparse.Namespace, specs: list[str]) -> tuple[Any, list[Any], Any, Any, Any]:
    """(eval, models, store, options, public configs), every input checked before a request."""
    from posttrain.cli.runs import _resolve_eval_path
    from posttrain.eval import load_eval
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions
    from posttrain.runner.store import Store

    _check(args)
    configs = [model_config(spec, args.models_file) for spec in specs]

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, args.models_file), timeout_s=args.timeout)

    eval_ = load_eval(_resolve_eval_path(args.eval_file), model_factory=judge_factory)
    models = [build_model(c, concurrency=args.concurrency, timeout_s=args.timeout)
              for c in configs]
    options = RunOptions(epochs=args.epochs, concurrency=args.concurrency, seed=args.seed,
                         retry=RetryPolicy(max_retries=args.max_retries,
                                           timeout_s=args.timeout))
    store = Store(args.store)
    return eval_, models, store, options, {c.name: c.public() for c in configs}


def _slug(spec: str) -> str:
    name = spec.split("?", 1)[0].split(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-").lower() or "model"


def _run_optimize(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from posttrain.optimize.search import Settings, search
    from posttrain.optimize.write import check_writable, unique_name, write_variant

    specs = [args.model] + ([args.proposer] if args.proposer else [])
    eval_, models, store, options, public = _setup(args, specs)
    if args.name is not None and (not re.fullmatch(r"[A-Za-z0-9_.-]+", args.name)
                                  or args.name in eval_.variants):
        raise UserError(f"{args.name!r} is already a variant of this eval" if args.name in
                        eval_.variants else f"{args.name!r}: use letters, digits, _ . -",
                        field="--name")
    if not args.no_write:
        check_writable(eval_.source)
    settings = Settings(budget=args.budget, holdout=args.holdout, seed=args.seed,
                        alpha=args.alpha)
    proposer = models[1] if args.proposer else None

    result = _run_to_end(lambda: search(
        eval_, models[0], store, options, settings, proposer=proposer,
        proposer_name=args.proposer, model_configs=public,
        progress=not (args.no_progress or args.json)), models, eval_)
    if result is None:
        return 130
    result["written"] = None
    if result["accepted"] and not args.no_write:
        name = args.name or unique_name(set(eval_.variants), f"optimized-{_slug(args.model)}")
        held = result["heldout"]["overall"]
        dev = {c["name"]: c for c in result["candidates"]}
        finalist = result["finalist"]
        provenance = {
            "by": "posttrain optimize", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "model": args.model, "proposer": args.proposer or "none (structural rewrites)",
            "kind": result["finalist_kind"], "parent": " > ".join(result["lineage"]),
            "split": {"seed": args.seed, "holdout": args.holdout, **{
                k: result["split"][k] for k in ("dev", "heldout")}},
            "dev": {"current": round(dev["default"]["dev_score"], 4),
                    "this": round(dev[finalist]["dev_score"], 4)},
            "heldout": {"current": round(held["mean_a"], 4), "this": round(held["mean_b"], 4),
                        "diff": round(held["diff"], 4),
                        "ci": [round(held["ci_low"], 4), round(held["ci_high"], 4)],
                        "p_value": float(f"{held['p_value']:.3g}"), "test": held["test"],
                        "n": held["n"]},
            "store": str(Path(args.store).resolve()),
            "runs": result["heldout"]["runs"],
        }
        default = eval_.variants.get("default")
        write_variant(eval_.source, name, result["finalist_messages"], provenance,
                      sampling=dict(default.sampling) if default is not None else None)
        result["written"] = {"file": str(eval_.source), "variant": name}
    result.pop("finalist_messages", None)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_optimize_text(result))
    return 0


def _optimize_text(result: dict[str, Any]) -> str:
    from posttrain.analysis.tables import text_table

    split = result["split"]
    lines = [f"optimize {result['eval']} for {result['model']}: {split['dev']} dev / "
             f"{split['heldout']} held-out items (seed {split['seed']}), budget "
             f"{result['budget']}, proposer: {result['proposer'] or 'none (structural rewrites)'}",
             ""]
    base = result["candidates"][0]["dev_score"]
    rows = [[c["name"], c["kind"], c["parent"] or "", f"{c['dev_score']:.3f}",
             "" if c["name"] == "default" else f"{c['dev_score'] - base:+.1%}",
             str(c["errors"]),
             "  ".join(f"{t} {v:.2f}" for t, v in sorted(c["dev_by_tag"].items())),
             "*" if c["pareto"] else ""] for c in result["candidates"]]
    lines.append(text_table(["candidate", "kind", "parent", "dev", "vs current", "errors",
                             "by tag", "pareto"], rows))
    for c in result["candidates"]:
        if c["errors"]:
            lines.append(f"{c['name']}: {c['errors']} of {c['dev_n']} dev answers failed (counted "
                         f"as 0), e.g. {c['first_error']}")
    for skipped in result["skipped"]:
        lines.append(f"skipped {skipped['name']}: {skipped['reason']}")
    held = result["heldout"]
    if held is not None:
        o = held["overall"]
        lines += ["", f"held-out: current {o['mean_a']:.3f}, {result['finalist']} "
                      f"{o['mean_b']:.3f} on {o['n']} items"]
        for row in held["groups"] + held["components"]:
            label = row.get("group") or f"grader {row.get('component')}"
            lines.append(f"  {label}: {row['diff']:+.1%} [{row['ci_low']:+.1%}, "
                         f"{row['ci_high']:+.1%}], p = {row['p_value']:.2g}"
                         + (" (significant)" if row["significant"] else ""))
    spent = result["requests"]
    lines += ["", f"requests: {spent['target']} to the model, {spent['proposer']} to the "
                  f"proposer (answers already in the store cost nothing)",
              f"verdict: {result['verdict']}"]
    if result["written"]:
        lines.append(f"written: variant {result['written']['variant']!r} in "
                     f"{result['written']['file']} (lineage {' > '.join(result['lineage'])}); "
                     f"run it: posttrain eval {result['written']['file']} --model "
                     f"{result['model']} --variant {result['written']['variant']}")
    return "\n".join(lines)


def _run_migrate(args: argparse.Namespace) -> int:

    from posttrain.optimize.migrate import migrate

    eval_, models, store, options, public = _setup(args, [args.old, args.new])
    if args.variant is not None:
        eval_.variant(args.variant)

    result = _run_to_end(lambda: migrate(
        eval_, models[0], models[1], store, options, old_spec=args.old, new_spec=args.new,
        variant=args.variant, alpha=args.alpha, seed=args.seed, model_configs=public,
        progress=not (args.no_progress or args.json)), models, eval_)
    if result is None:
        return 130
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_migrate_text(result))
    return 0


def _migrate_text(result: dict[str, Any]) -> str:
    from posttrain.analysis.tables import text_table

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [f"migrate {result['eval']}: {result['from']} -> {result['to']} on "
             f"{result['scope']}", ""]
    lines.append(text_table(
        ["model", "variant", "score", "95% CI", "n", "errors", "cost $/item", "p95 s"],
        [[r["model"], r["variant"], num(r["score"], ".3f"),
          f"[{num(r['ci_low'], '.3f')}, {num(r['ci_high'], '.3f')}]", str(r["n"]),
          str(r["errors"]), num(r["cost_usd_per_item"], ".6f"), num(r["latency_p95_s"], ".2f")]
         for r in result["rows"]]))
    lines.append("")
    lines.append(f"{result['to']} [{result['variant']}] vs {result['from']}, paired:")
    for row in [dict(result["overall"], group="overall"), *result["groups"],
                *result["components"]]:
        label = row.get("group") or f"grader {row.get('component')}"
        lines.append(f"  {label}: {row['diff']:+.1%} [{row['ci_low']:+.1%}, "
                     f"{row['ci_high']:+.1%}], {row['test']} p = {row['p_value']:.2g}"
                     + (" (significant)" if row["significant"] else ""))
    effect = result["variant_vs_current"]
    if effect is not None:
        lines.append(f"variant {result['variant']} vs the current prompt on {result['to']}: "
                     f"{effect['diff']:+.1%} [{effect['ci_low']:+.1%}, {effect['ci_high']:+.1%}]"
                     f", p = {effect['p_value']:.2g}")
    lines += ["", f"verdict: {result['verdict']}"]
    return "\n".join(lines)


def _run_to_end(work: Any, models: list[Any], eval_: Any) -> dict[str, Any] | None:
    """Run the coroutine ``work()`` makes, then close the models and the eval's judges; None
    (after saying so) when interrupted: what finished is stored and a rerun resumes."""
    import asyncio

    async def go() -> dict[str, Any]:
        try:
            return await work()
        finally:
            for model in models:
                await model.aclose()
            await eval_.aclose()

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        print("interrupted: finished answers are stored; run the same command to resume",
              file=sys.stderr)
        return None

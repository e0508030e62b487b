"""``posttrain grow``: a generator model writes verified cousins, harder variants and new items
for an eval; the result is a new eval version in its own folder (``posttrain.grow``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command


@register_command("grow", order=48)
def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "grow", help="write verified variants of an eval's items (a new eval version)",
        description="A generator model writes cousins (paraphrases with the same answer), "
                    "harder variants and new items for thin tags. Each new item is verified "
                    "(the eval's own graders on the generator's reference answer where they "
                    "check answers on their own, else solver models that must reach the "
                    "generated reference plus a judge), near duplicates of existing items are "
                    "dropped, and the original items with the survivors are written to -o DIR "
                    "as a new eval, each added item with its provenance. The original eval is "
                    "only read. `posttrain report` on the grown eval shows reliability@k.")
    p.add_argument("eval_file", metavar="EVAL")
    p.add_argument("--generator", "-g", required=True, metavar="SPEC",
                   help="model that writes the new items")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="folder for the new eval version (must not hold one already)")
    p.add_argument("--n", type=int, default=10,
                   help="seed items for paraphrase and harder, and new items asked (default 10)")
    p.add_argument("--kinds", default="paraphrase,harder,new",
                   help="what to generate, comma-separated (default paraphrase,harder,new)")
    p.add_argument("--cousins", type=int, default=2,
                   help="paraphrases asked per seed item (default 2)")
    p.add_argument("--solvers", metavar="SPEC,...",
                   help="models that must reach each generated reference (for graders that "
                        "compare answers with a reference)")
    p.add_argument("--agree", type=int,
                   help="solvers that must pass a new item (default: all of them)")
    p.add_argument("--judge", metavar="SPEC",
                   help="model asked whether each reference is correct (default: the first "
                        "solver)")
    p.add_argument("--verify", default="auto", choices=("auto", "programmatic", "solvers"),
                   help="auto (default): programmatic when every grader checks answers on its "
                        "own (schema, code tests, suite checks), else solvers")
    p.add_argument("--dedup-threshold", type=float, default=0.8,
                   help="word 3-shingle Jaccard at which a new item duplicates another "
                        "(default 0.8)")
    p.add_argument("--name", help="the new eval's name (default NAME-grown)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="the generator's temperature (default 0.8)")
    p.add_argument("--max-tokens", type=int, default=512,
                   help="the generator's answer budget (default 512)")
    p.add_argument("--store", default="posttrain.db", help="SQLite store (default ./posttrain.db)")
    p.add_argument("--models-file", help="named endpoints (default $POSTTRAIN_MODELS or "
                                         "./posttrain.models.yaml)")
    p.add_argument("--seed", type=int, default=0, help="which seed items are drawn (default 0)")
    p.add_argument("--concurrency", type=int, help="requests in flight per model")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_grow)


def _check(args: argparse.Namespace) -> list[str]:
    """The flags, checked before anything loads; the kinds asked."""
    from posttrain.grow.prompts import KINDS

    for name, value, low in (("--n", args.n, 1), ("--cousins", args.cousins, 1),
                             ("--concurrency", args.concurrency, 1),
                             ("--max-tokens", args.max_tokens, 1),
                             ("--max-retries", args.max_retries, 0),
                             ("--agree", args.agree, 1)):
        if value is not None and value < low:
            raise UserError(f"must be at least {low}; got {value}", field=name)
    for name, value, what in (("--timeout", args.timeout, "seconds above 0"),
                              ("--temperature", args.temperature, "a temperature of 0 or more")):
        if not math.isfinite(value) or value < 0 or (name == "--timeout" and value == 0):
            raise UserError(f"must be {what}; got {value:g}", field=name)
    if not (math.isfinite(args.dedup_threshold) and 0 < args.dedup_threshold <= 1):
        raise UserError(f"must be a share above 0 and at most 1; got {args.dedup_threshold:g}",
                        field="--dedup-threshold")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for kind in kinds:
        if kind not in KINDS:
            from posttrain.errors import did_you_mean

            raise UserError(f"unknown kind {kind!r}" + (did_you_mean(kind, KINDS) or
                                                        f" (kinds: {', '.join(KINDS)})"),
                            field="--kinds")
    if not kinds:
        raise UserError(f"name at least one of {', '.join(KINDS)}", field="--kinds")
    if args.name is not None:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", args.name):
            raise UserError(f"{args.name!r}: use letters, digits, _ . : -", field="--name")
    return list(dict.fromkeys(kinds))


def _run_grow(args: argparse.Namespace) -> int:
    from posttrain.cli.optimize import _run_to_end
    from posttrain.cli.runs import _resolve_eval_path
    from posttrain.eval import load_eval
    from posttrain.grow.core import Settings, grow
    from posttrain.grow.write import check_target, solver_files, write_grown
    from posttrain.loaders import yaml12
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions
    from posttrain.runner.store import Store

    kinds = _check(args)
    out_dir = Path(args.out)
    check_target(out_dir)
    solver_specs = [s.strip() for s in (args.solvers or "").split(",") if s.strip()]
    if args.solvers is not None and not solver_specs:
        raise UserError("name at least one model", field="--solvers")
    twice = sorted({spec for spec in solver_specs if solver_specs.count(spec) > 1})
    if twice:
        solver_specs = list(dict.fromkeys(solver_specs))
        print(f"posttrain: note: --solvers lists {', '.join(twice)} more than once; each "
              f"solver votes once ({len(solver_specs)} distinct)", file=sys.stderr)
    specs = [args.generator, *solver_specs] + ([args.judge] if args.judge else [])
    configs = [model_config(spec, args.models_file) for spec in specs]

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, args.models_file), timeout_s=args.timeout)

    path = _resolve_eval_path(args.eval_file)
    eval_ = load_eval(path, model_factory=judge_factory)
    if args.name is not None and args.name == eval_.name:
        raise UserError(f"{args.name!r} is the original eval's name: a grown eval is a new "
                        "version, and its runs must not mix with the original's in `audit` "
                        "and `report` (pick another name, or leave the default "
                        f"{eval_.name}-grown)", field="--name")
    check_target(out_dir, tuple(p.name for p in solver_files(eval_)))
    if eval_.source is not None and out_dir.resolve() == Path(eval_.source).parent.resolve() \
            and eval_.dataset is not None and eval_.dataset.name == "items.jsonl":
        raise UserError("is the original eval's folder and its dataset is items.jsonl: pick "
                        "another folder", file=out_dir, field="-o")
    spec = yaml12.load_file(Path(eval_.source), what="eval file")[0] if eval_.source else {}
    models = [build_model(c, concurrency=args.concurrency, timeout_s=args.timeout)
              for c in configs]
    generator, solvers = models[0], models[1:1 + len(solver_specs)]
    judge = models[-1] if args.judge else None
    options = RunOptions(concurrency=args.concurrency, seed=args.seed,
                         retry=RetryPolicy(max_retries=args.max_retries, timeout_s=args.timeout))
    settings = Settings(n=args.n, kinds=tuple(kinds), cousins=args.cousins, seed=args.seed,
                        method=args.verify, agree=args.agree,
                        dedup_threshold=args.dedup_threshold, temperature=args.temperature,
                        max_tokens=args.max_tokens,
                        id_field=str(spec.get("id_field", "id")) if isinstance(spec, dict)
                        else "id")
    store = Store(args.store)
    result = _run_to_end(lambda: grow(
        eval_, generator, store, options, settings, generator_name=args.generator,
        solvers=solvers, solver_names=solver_specs, judge=judge, judge_name=args.judge,
        progress=not (args.no_progress or args.json)), models, eval_)
    if result is None:
        return 130
    failed = request_failures(result)
    if failed is not None:
        code, line = failed
        print(f"posttrain: error: {line}", file=sys.stderr)
        return code
    written = write_grown(eval_, result, out_dir, name=args.name)
    load_eval(written, model_factory=judge_factory)  # the new version loads as an eval
    result["written"] = str(written)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "added"} |
                         {"added": len(result["added"])}, indent=2, default=str))
    else:
        print(summary_text(result, eval_))
    return 0


def request_failures(result: dict[str, Any]) -> tuple[int, str] | None:
    """(exit code, one line) when nothing was added because model requests failed (the
    generator's, the solvers' or the judge's): some failed and no item got as far as a
    verdict of the verification (a grow whose items were all checked and rejected did its job:
    exit 0). 2 when every failure is a refused request (HTTP 4xx but 429: the setup is
    wrong), else 1. Nothing is written then; what was answered is in the store, so the same
    command resumes. None otherwise."""
    import re

    if result["added"] or any(d["reason"].startswith("unverified") for d in result["dropped"]):
        return None
    reasons = [d["reason"] for d in result["dropped"]
               if d["reason"].startswith(("no answer", "error"))]
    if not reasons:
        return None
    setup = all(re.search(r"HTTP 4(?!29)\d\d", reason) for reason in reasons)
    return (2 if setup else 1,
            f"grow {result['eval']}: nothing added: {len(reasons)} of "
            f"{len(result['dropped'])} requests or verifications failed "
            f"({_reason_shape(reasons[0])}); nothing written, the answers so far are stored "
            "(run the same command to resume)")


def summary_text(result: dict[str, Any], eval_: Any) -> str:
    """The diff summary: the funnel per kind, why items were dropped, tags before and after."""
    from collections import Counter

    from posttrain.analysis.tables import text_table

    added = result["added"]
    lines = [f"grow {result['eval']}: {len(eval_.items)} items + {len(added)} new = "
             f"{len(eval_.items) + len(added)}, written to {result['written']}",
             f"generator {result['generator']}; verification: "
             + (f"solvers {', '.join(result['solvers'])} (agree {result['agree']} of "
                f"{len(result['solvers'])}), judge {result['judge']}"
                if result["method"] == "solvers" else
                "programmatic (the eval's graders on the generator's reference answer)"), ""]
    rows = [[kind, str(f["asked"]), str(f["no_answer"]), str(f["too_long"]),
             str(f["unparseable"]), str(f["does_not_render"]), str(f["duplicate"]),
             str(f["errors"]), str(f["unverified"]), str(f["added"])]
            for kind, f in result["funnel"].items()]
    lines.append(text_table(["kind", "asked", "no answer", "too long", "unparseable",
                             "no render", "duplicate", "errors", "unverified", "added"], rows))
    reasons = Counter(_reason_shape(d["reason"]) for d in result["dropped"])
    if reasons:
        lines += ["", "dropped:"]
        lines += [f"  {count} x {reason}" for reason, count in reasons.most_common(8)]
    if eval_.tag_fields:
        before = Counter(tag for item in eval_.items for tag in item.tags)
        after = Counter(before)
        for row in added:
            for name in eval_.tag_fields:
                value = row.get(name)
                for tag in value if isinstance(value, list) else [value]:
                    if tag is not None:
                        after[str(tag)] += 1
        changed = [f"{tag} {before[tag]}->{after[tag]}" for tag in sorted(after)
                   if after[tag] != before[tag]]
        if changed:
            lines.append("tags: " + ", ".join(changed))
    field = (result.get("roles") or {}).get("input", [None])[0]
    shown = [row for row in added if field is not None][:3]
    if shown:
        lines += ["", "added, e.g.:"]
        for row in shown:
            provenance = row["provenance"]
            origin = f"{provenance['kind']} of {provenance['seed']}" if provenance.get("seed") \
                else provenance["kind"]
            text = " ".join(json.dumps(row.get(field), ensure_ascii=False).split())
            lines.append(f"  {row.get('id', '?')} ({origin}): {text[:110]}")
    spent = result["requests"]
    lines += ["", f"requests: generator {spent['generator']}, solvers {spent['solvers']}, judge "
                  f"{spent['judge']} (answers already in the store cost nothing)",
              f"next: posttrain eval {result['written']} --model SPEC; posttrain report shows "
              "reliability@k (an item counts only when all its cousins pass)"]
    return "\n".join(lines)


def _reason_shape(reason: str) -> str:
    import re

    reason = re.sub(r"duplicate of \S+", "duplicate of an item", reason)
    return reason if len(reason) <= 140 else reason[:139] + "…"

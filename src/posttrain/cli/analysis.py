"""``posttrain compare | audit | pick | shelf-life``: analyses of stored runs.

Only argparse at import time; each command imports its analysis when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command

DEFAULT_STORE = "posttrain.db"


def _common(p: argparse.ArgumentParser, *, html: bool = True) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, help="SQLite store (default ./posttrain.db)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if html:
        p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")


@register_command("analysis", order=40)
def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="paired comparison of two runs, or the matrix of an eval's runs",
        description="RUN_A RUN_B: paired per-item differences (B - A) with an interval that "
                    "agrees with its paired test (McNemar exact, sign-flip), per tag and per grader component, and the items that "
                    "regressed or were fixed. One EVAL_FILE (or eval name), or three or more "
                    "runs: the matrix of scores with CIs and tests against the best.")
    p.add_argument("refs", nargs="+", metavar="RUN_OR_EVAL")
    p.add_argument("--by", metavar="FIELD", help="group by this item field (default: tags)")
    p.add_argument("--runs", action="extend", nargs="+", metavar="RUN", help="matrix: only these runs")
    p.add_argument("--limit", type=int, default=10, help="moved items shown (terminal)")
    p.add_argument("--draws", "--bootstrap", dest="draws", type=int, default=20000,
                   help="Monte-Carlo draws of a sign-flip test too large to enumerate (its "
                        "p-value's standard error is reported; default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--fine-tuned", action="store_true",
                   help="B is A fine-tuned: label each tag by the rule of thumb (a low pass "
                        "rate lifted ~10%% -> ~50%% is on the cusp); automatic when B's model "
                        "is a folder posttrain train wrote from A's model")
    _common(p)
    p.set_defaults(func=run_compare)

    p = sub.add_parser(
        "audit", help="eval health: saturation and suspect (misgraded/ambiguous) items",
        description="Across every stored run of the eval: saturation, items every run passes or "
                    "fails, and suspect items (strong models agreeing against the reference, "
                    "judges disagreeing, grades flipping on identical answers).")
    p.add_argument("eval_file", metavar="EVAL_FILE", help="eval file or stored eval name")
    p.add_argument("--runs", action="extend", nargs="+", metavar="RUN", help="only these runs")
    p.add_argument("--judges", action="extend", nargs="+", metavar="COMPONENT",
                   help="judge components to cross-check (default: the eval's score_model / "
                        "label_model graders)")
    p.add_argument("--fail-share", type=float, default=0.5,
                   help="more than this share of the strong models must fail an item with the "
                        "same answer for its reference to be suspect (default 0.5: a majority)")
    p.add_argument("--strong-floor", type=float, default=0.6,
                   help="a model is strong on this eval when its score is at least this "
                        "(default 0.6); weak runs never make a reference suspect")
    p.add_argument("--export", metavar="FILE", help="write suspect items as JSONL for review")
    _common(p)
    p.set_defaults(func=run_audit)

    p = sub.add_parser(
        "pick", help="the cheapest model whose score clears the bar (CI lower bound)",
        description="For a ladder of models run on the eval: the cheapest whose 95% CI lower "
                    "bound clears --bar, the cost/latency/quality frontier, and the tags just "
                    "out of reach (best model between 10% and 60%).")
    p.add_argument("eval_file", metavar="EVAL_FILE", help="eval file or stored eval name")
    p.add_argument("--bar", type=float, required=True, metavar="X", help="score bar in [0, 1]")
    p.add_argument("--models", action="extend", nargs="+", metavar="SPEC", help="the ladder (default: every "
                   "model with a stored run of this eval)")
    p.add_argument("--max-latency-p95", type=float, metavar="S",
                   help="exclude models whose p95 latency exceeds S seconds")
    p.add_argument("--models-file", help="prices and release dates of named endpoints")
    p.add_argument("--runs", action="extend", nargs="+", metavar="RUN", help="only these runs")
    _common(p)
    p.set_defaults(func=run_pick)

    p = sub.add_parser(
        "shelf-life", help="the best model's score over time, per eval",
        description="Per eval: each run placed at its model's release date (models file "
                    "`released:`) or its run date, with the running best score.")
    p.add_argument("evals", nargs="*", metavar="EVAL", help="eval files or names (default: all)")
    p.add_argument("--models-file", help="models file with `released:` dates")
    _common(p)
    p.set_defaults(func=run_shelf_life)


# ---- output -----------------------------------------------------------------------------------
def _emit(report: dict[str, Any], args: argparse.Namespace, text: Callable[[], str],
          html: Callable[[], str]) -> None:
    if getattr(args, "html", None):
        Path(args.html).write_text(html(), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(text())
        if getattr(args, "html", None):
            print(f"\nHTML report: {args.html}")


def _check_unit(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise UserError("must be between 0 and 1", field=name)


# ---- commands ---------------------------------------------------------------------------------
def run_compare(args: argparse.Namespace) -> int:
    from posttrain.analysis import views
    from posttrain.analysis.cells import load_cells
    from posttrain.analysis.compare import compare_matrix, compare_runs
    from posttrain.analysis.selection import (
        eval_ref,
        no_runs_error,
        open_store,
        resolve,
        select_runs,
    )

    if args.draws < 100:
        raise UserError("use at least 100 draws", field="--draws")
    _check_unit(args.alpha, "--alpha")
    store = open_store(args.store)
    if len(args.refs) == 2 and not args.runs and not _looks_like_eval(args.refs[0]):
        a, b = (resolve(store, ref) for ref in args.refs)
        if a.id == b.id:
            raise UserError(f"A and B are the same run ({a.id}): compare two runs",
                            field="RUN_OR_EVAL")
        results = load_cells(store, [a, b])  # per-item figures kept in the store
        report = compare_runs(*results, by=args.by, seed=args.seed, n_boot=args.draws,
                              alpha=args.alpha,
                              fine_tune=args.fine_tuned or _is_fine_tune(a.model, b.model))
        _emit(report, args, lambda: views.compare_text(report, args.limit),
              lambda: views.compare_html(report))
        return 0
    if len(args.refs) == 1:
        ref = eval_ref(args.refs[0])
        runs = select_runs(store, ref.name, args.runs)
        if not runs:
            raise no_runs_error(store, ref.name, "compare")
    else:  # a run named twice is one column
        runs = list({run.id: run for run in (resolve(store, r) for r in args.refs)}.values())
    if len(runs) < 2:
        raise UserError("a matrix needs at least two runs", field="RUN_OR_EVAL")
    report = compare_matrix(load_cells(store, runs), by=args.by, seed=args.seed,
                            n_boot=args.draws, alpha=args.alpha)
    _emit(report, args, lambda: views.matrix_text(report), lambda: views.matrix_html(report))
    return 0


def _is_fine_tune(base: str, model: str) -> bool:
    """``model`` is a folder ``posttrain train`` wrote from ``base`` (its posttrain_train.json
    names ``base`` as its base model)."""
    def folder(spec: str) -> str:
        return spec[3:].split("?")[0] if spec.startswith("hf:") else spec

    try:
        meta = json.loads((Path(folder(model)) / "posttrain_train.json").read_text())
    except (OSError, ValueError):
        return False
    recorded = str(meta.get("base_model") or "") if isinstance(meta, dict) else ""
    if not recorded:
        return False
    same = folder(recorded) == folder(base)
    try:
        return same or Path(folder(recorded)).resolve() == Path(folder(base)).resolve()
    except OSError:
        return same


def _looks_like_eval(ref: str) -> bool:
    return Path(ref).suffix.lower() in (".yaml", ".yml", ".json") or Path(ref).is_file()


def run_audit(args: argparse.Namespace) -> int:
    from posttrain.analysis import views
    from posttrain.analysis.audit import audit, export_suspects, judge_components
    from posttrain.analysis.cells import load_cells as load_all
    from posttrain.analysis.selection import eval_ref, no_runs_error, open_store, select_runs

    _check_unit(args.fail_share, "--fail-share")
    _check_unit(args.strong_floor, "--strong-floor")
    ref = eval_ref(args.eval_file)
    store = open_store(args.store)
    runs = select_runs(store, ref.name, args.runs)
    if not runs:
        raise no_runs_error(store, ref.name, "audit")
    results = load_all(store, runs)
    if args.runs:
        every = results
    else:  # every stored run; those already read are not read again
        loaded = {r.run.id: r for r in results}
        all_runs = select_runs(store, ref.name, latest_only=False)
        loaded.update((r.run.id, r) for r in load_all(
            store, [run for run in all_runs if run.id not in loaded]))
        every = [loaded[run.id] for run in all_runs]
    judges = args.judges
    if judges is None:
        specs = ref.grader_specs or next((r.run.config.get("graders") for r in results
                                          if r.run.config.get("graders")), [])
        judges = judge_components(specs or [])
    report = audit(results, all_runs=every, judges=judges, fail_share=args.fail_share,
                   strong_floor=args.strong_floor)
    if report["saturation"].get("next") and ref.source is not None:
        report["saturation"]["next"] = report["saturation"]["next"].replace(
            "EVAL", str(ref.source), 1)
    if args.export:
        count = export_suspects(report, every, args.export)
        report["exported"] = {"path": args.export, "count": count}
    _emit(report, args, lambda: views.audit_text(report), lambda: views.audit_html(report))
    if args.export and not args.json:
        print(f"\nwrote {report['exported']['count']} suspects to {args.export}")
    return 0


def _run_missing_models(eval_file: str, models: Sequence[str], store_path: str,
                        models_file: str | None) -> bool:
    """Run models that have no stored run, through the runner's API when it exists."""
    try:
        from posttrain.api import run_eval  # type: ignore[import-not-found]
    except ImportError:
        return False
    run_eval(eval_file, models=list(models), store=store_path, models_file=models_file)
    return True


def run_pick(args: argparse.Namespace) -> int:
    from posttrain.analysis import views
    from posttrain.analysis.pick import pick
    from posttrain.analysis.selection import (
        eval_ref,
        load_all,
        model_matches,
        no_runs_error,
        open_store,
        select_runs,
    )

    _check_unit(args.bar, "--bar")
    if args.max_latency_p95 is not None and args.max_latency_p95 <= 0:
        raise UserError("must be positive", field="--max-latency-p95")
    ref = eval_ref(args.eval_file)
    store = open_store(args.store) if not args.models else _store_for_run(args.store)
    runs = select_runs(store, ref.name, args.runs, models=args.models)
    missing = [m for m in args.models or [] if not any(model_matches(r.model, m) for r in runs)]
    if missing and ref.source is not None and store.read_only:
        raise UserError(f"no stored run for {', '.join(missing)}, and the store is read-only "
                        "here: they cannot be run into it (pick among the stored runs without "
                        "--models, or copy the store to a writable place)", file=store.path)
    if missing and ref.source is not None and _run_missing_models(
            str(ref.source), missing, args.store, args.models_file):
        runs = select_runs(store, ref.name, args.runs, models=args.models)
        missing = [m for m in missing if not any(model_matches(r.model, m) for r in runs)]
    if missing:
        print(f"posttrain: warning: no stored run of {ref.name!r} for: {', '.join(missing)} "
              f"(run `posttrain eval {args.eval_file} --model ...` first)", file=sys.stderr)
    if not runs:
        raise no_runs_error(store, ref.name, "pick")
    prices: dict[str, Any] = {}
    if args.models_file:
        from posttrain.models import load_models_file

        for name, config in load_models_file(args.models_file).items():
            if config.price is not None:
                prices[name] = config.price.as_dict()
    report = None
    if not prices:  # each run's figures as kept in the store (read once, while unchanged)
        from posttrain.analysis.pick import pick_from
        from posttrain.analysis.stored import stored

        report = pick_from(runs, [stored(store, run, "pick") for run in runs], args.bar,
                           max_latency_p95=args.max_latency_p95)
        if report["out_of_reach"] is None:  # runs of different items: combine the samples
            report = None
    if report is None:
        report = pick(load_all(store, runs), args.bar, max_latency_p95=args.max_latency_p95,
                      prices=prices)
    report["missing_models"] = missing
    _emit(report, args, lambda: views.pick_text(report), lambda: views.pick_html(report))
    return 0


def _store_for_run(path: str) -> Any:
    """The store ``pick --models`` reads and may run missing models into (a new one is
    created; an existing one this process cannot write is opened read-only)."""
    from posttrain.runner.store import Store

    return Store(path, reading=Path(path).exists())


def run_shelf_life(args: argparse.Namespace) -> int:
    from posttrain.analysis import views
    from posttrain.analysis.selection import eval_ref, load_all, open_store, select_runs
    from posttrain.analysis.shelf_life import release_dates, shelf_life

    store = open_store(args.store)
    names = [eval_ref(e).name for e in args.evals] or sorted(
        {r.eval_name for r in store.list_runs()})
    runs = [run for name in names for run in select_runs(store, name)]
    if not runs:
        raise UserError("no stored runs" + (f" of {', '.join(names)}" if names else ""),
                        file=store.path)
    released = {}
    for run in runs:  # the release date recorded with the run (models file at run time)
        config = run.config.get("model")
        if isinstance(config, dict) and config.get("released"):
            released.update(release_dates({run.model: {"released": config["released"]}}))
    if args.models_file:  # an explicit models file wins
        from posttrain.models import load_models_file

        released.update(release_dates(load_models_file(args.models_file)))
    report = shelf_life(load_all(store, runs), released=released)
    _emit(report, args, lambda: views.shelf_text(report), lambda: views.shelf_html(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``posttrain compare|audit|pick|shelf-life ...`` (argv includes the command)."""
    from posttrain.cli import main as cli_main

    return cli_main(argv)

if __name__ == "__main__":
    sys.exit(main())

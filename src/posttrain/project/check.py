"""``posttrain check``: a project's evals on a new model, paired against production, one verdict.

For each eval of the set (``posttrain.project.config``):

- the new model runs every prompt variant of the eval (cached and resumable: the runner's own
  path, so a repeated check sends nothing its store holds);
- production is the latest finished run of the same eval content (same items and prompts,
  epochs and limit) by the production model on the production variant; when there is none, it
  runs now, the same way;
- each new-model run is compared with it item by item (``analysis.compare.compare_runs``:
  McNemar exact or a sign-flip test, an interval that agrees with it), overall and on every tag
  the project names.

The comparisons the verdict rests on (one per eval and variant, one per named tag in it; not
those of advisory evals, weight 0, or evals with ``no_regression: false``) are one family: their
p-values are adjusted together (Holm's step-down, or Benjamini-Hochberg), and a regression
blocks only when its adjusted p is below alpha. Pass bars are read as everywhere in posttrain:
the lower bound of the score's 95% interval is at or above the bar.

Production's failed requests are not its answers: a stored production run with failed samples
is resumed (they are sent again) before comparing; items it still fails are left out of the
paired test, counted and shown. The new model's failures count 0, as everywhere.

Verdict: **hold** when an eval blocks on its production prompt (and no other variant clears);
**insufficient evidence** (exit 4) when nothing blocks but some eval could not show a
regression: too few items (even if every compared item regressed, its adjusted p would not be
below alpha) or production failed on some of its items; **adopt with prompt changes** when each
eval that blocks clears with another of its variants on the new model; else **adopt**. A
new model that answered nothing at all, or a production that answered none of an eval's items,
is a setup problem (exit 2), not a verdict.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.errors import UserError, did_you_mean
from posttrain.project.config import EvalEntry, Project
from posttrain.project.render import clean

ADOPT, PROMPT, HOLD = "adopt", "adopt with prompt changes", "hold"
INSUFFICIENT = "insufficient evidence"
EXIT_CODES = {ADOPT: 0, HOLD: 1, PROMPT: 3, INSUFFICIENT: 4}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


@dataclass
class CheckOptions:
    epochs: int = 1
    limit: int | None = None
    concurrency: int | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    deadline_s: float = 600.0
    use_cache: bool = True
    cache: Any = None
    correction: str | None = None   # None: the project's
    alpha: float | None = None      # None: the project's
    seed: int = 0
    draws: int = 20_000
    variants: bool = True           # try the evals' other prompts on the new model
    progress: bool | None = False


@dataclass
class _Loaded:
    entry: EvalEntry
    eval: Any
    path: str
    new_runs: dict[str, Any] = field(default_factory=dict)   # variant -> RunInfo
    prod_run: Any = None
    prod_ran_now: bool = False
    prod_resent: int = 0     # production's failed samples sent again before comparing
    seconds: float = 0.0     # the time its runs took in this check


def production_of(project: Project, against: str | None) -> str:
    if against:
        return against
    if len(project.production) == 1:
        return project.production[0]
    if not project.production:
        raise UserError("name the production model: --against NAME, or `production:` in "
                        f"{project.path}", field="--against")
    raise UserError(f"{project.path} lists {len(project.production)} production models "
                    f"({', '.join(project.production)}): choose one with --against",
                    field="--against")


def _load_evals(project: Project, judge_factory: Any) -> list[_Loaded]:
    from posttrain.eval import load_eval

    loaded: list[_Loaded] = []
    names: dict[str, str] = {}
    for entry in project.evals:
        if entry.is_suite:
            from posttrain.suites.cache import suite_eval_path

            try:
                path = suite_eval_path(entry.ref)
            except UserError as exc:
                raise UserError(exc.message, file=project.path, line=entry.line,
                                field=entry.field) from None
            except KeyError as exc:
                raise UserError(f"unknown suite {exc.args[0]!r}", file=project.path,
                                line=entry.line, field=entry.field) from None
        else:
            path = entry.ref
        eval_ = load_eval(path, model_factory=judge_factory)
        if entry.variant not in eval_.variants:
            raise UserError(f"eval {eval_.name!r} has no variant {entry.variant!r}"
                            + did_you_mean(entry.variant, eval_.variants)
                            + f" (it has {', '.join(eval_.variants)})", file=project.path,
                            line=entry.line, field=entry.field.removesuffix(".eval")
                            + ".variant")
        if eval_.name in names:
            raise UserError(f"two evals of the set are named {eval_.name!r} ({names[eval_.name]} "
                            f"and {path}): runs are stored by name, give each its own",
                            file=project.path, line=entry.line, field=entry.field)
        names[eval_.name] = str(path)
        loaded.append(_Loaded(entry=entry, eval=eval_, path=str(path)))
    all_tags = {tag for one in loaded for item in one.eval.items for tag in one.eval.tags_of(item)}
    for tag, rule in project.tags.items():
        if tag not in all_tags:
            raise UserError(f"no item of any eval in the set is tagged {tag!r}"
                            + did_you_mean(tag, all_tags), file=project.path, line=rule.line,
                            field=f"tags.{tag}")
    return loaded


def check(project: Project, new: str, against: str | None = None,
          options: CheckOptions | None = None) -> dict[str, Any]:
    """Run the check and return its report (see :func:`verdict_report`)."""
    return asyncio.run(acheck(project, new, against, options))


async def acheck(project: Project, new: str, against: str | None = None,
                 options: CheckOptions | None = None) -> dict[str, Any]:
    from posttrain.models import build_model, model_config
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.cache import CachePolicy
    from posttrain.runner.executor import RunOptions, execute_eval, run_key
    from posttrain.runner.preflight import (
        check_judge_requests,
        check_models,
        check_requests,
        judge_models,
    )
    from posttrain.runner.progress import Progress
    from posttrain.runner.store import Store

    options = options or CheckOptions()
    prod_spec = production_of(project, against)
    if prod_spec == new:
        raise UserError(f"{new} is the production model: name a new one", field="--model")
    models_file = project.models_file
    new_config = _config(model_config, new, models_file, "--model", project)
    prod_config = _config(model_config, prod_spec, models_file,
                          "--against" if against else "production", project)

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, models_file), timeout_s=options.timeout_s)

    loaded = _load_evals(project, judge_factory)
    new_model = build_model(new_config, concurrency=options.concurrency,
                            timeout_s=options.timeout_s)
    prod_model = build_model(prod_config, concurrency=options.concurrency,
                             timeout_s=options.timeout_s)
    run_options = RunOptions(
        epochs=options.epochs, limit=options.limit, concurrency=options.concurrency,
        use_cache=options.use_cache, cache=options.cache or CachePolicy(),
        retry=RetryPolicy(max_retries=options.max_retries, timeout_s=options.timeout_s,
                          deadline_s=options.deadline_s))
    project.store.parent.mkdir(parents=True, exist_ok=True)
    store = Store(project.store)
    public = {new_config.name: new_config.public(), prod_config.name: prod_config.public()}
    progress = Progress(enabled=options.progress)
    try:
        for one in loaded:
            key = run_key(one.eval, prod_model.name, prod_model.cache_id, one.entry.variant,
                          run_options)
            one.prod_run = store.latest_finished_run(key)
            if one.prod_run is not None:
                # production's failed requests are not its answers: send them again (resume)
                # so the comparison is with what production really says
                items = one.eval.items[: options.limit] if options.limit else one.eval.items
                failed = len(items) * options.epochs - len(store.done_keys(one.prod_run.id))
                if failed > 0:
                    one.prod_resent = failed
                    if store.find_resumable_run(key) is None:
                        store.reopen_run(one.prod_run.id)
                    one.prod_run = None
        # every model and judge that will be called is checked before the first request
        judges = [judge for one in loaded for judge in judge_models(one.eval.graders)]
        await check_models([new_model, *judges])
        if any(o.prod_run is None for o in loaded):
            try:
                await check_models([prod_model])
            except UserError as exc:  # production's problem, named as production's
                if exc.field in (None, "--model"):
                    exc.field = "--against" if against else "production"
                raise
        for one in loaded:  # and every request field reaches its model, in every eval
            first = one.eval.items[0] if one.eval.items else None
            if first is None:
                continue
            planned = [(new_model, v, first) for v in one.eval.variants
                       if options.variants or v == one.entry.variant]
            if one.prod_run is None:
                planned.append((prod_model, one.entry.variant, first))
            check_requests(one.eval, planned)
            check_judge_requests(one.eval)
        for one in loaded:
            variants = list(one.eval.variants) if options.variants else [one.entry.variant]
            if one.entry.variant in variants:  # the production prompt first
                variants.remove(one.entry.variant)
            variants.insert(0, one.entry.variant)
            started = time.monotonic()
            handles = await execute_eval(one.eval, [new_model], variants, store, run_options,
                                         progress=progress, model_configs=public)
            one.new_runs = {h.run.variant: h.run for h in handles}
            if one.prod_run is None:
                (handle,) = await execute_eval(one.eval, [prod_model], [one.entry.variant],
                                               store, run_options, progress=progress,
                                               model_configs=public)
                one.prod_run, one.prod_ran_now = handle.run, not one.prod_resent
            one.seconds = time.monotonic() - started
    except BaseException:
        store.close()
        raise
    finally:
        progress.close()
        for model in (new_model, prod_model):
            await model.aclose()
        for one in loaded:
            await one.eval.aclose()
    prices = {}
    for config in (new_config, prod_config):
        if config.price is not None:
            prices[config.name] = config.price.as_dict()
    try:
        return verdict_report(project, store, loaded, new_config.name, prod_config.name,
                              options, prices)
    finally:
        store.close()


def _config(model_config: Any, spec: str, models_file: Any, flag: str,
            project: Project | None = None) -> Any:
    try:
        return model_config(spec, models_file)
    except UserError as exc:
        if exc.field == "--model" and not exc.file:
            exc.field = flag
            if models_file is None and project is not None:
                exc.message += (f" (no models file: none named by `models_file:` and no "
                                f"posttrain.models.yaml beside {project.path})")
        raise


# ---- the verdict ------------------------------------------------------------------------------
def adjust(p_values: Sequence[float], method: str) -> list[float]:
    from posttrain.analysis.compare import benjamini_hochberg, holm

    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {method!r}")


def is_regression(diff: float | None, p_adjusted: float, alpha: float) -> bool:
    """A drop whose adjusted p-value is below alpha (an improvement never blocks)."""
    return diff is not None and diff < 0 and p_adjusted < alpha


def _bar_of(one: _Loaded, project: Project) -> float | None:
    if one.entry.pass_bar is not None:
        return one.entry.pass_bar
    if one.eval.pass_bar is not None:
        return float(one.eval.pass_bar)
    return project.pass_bar


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def verdict_report(project: Project, store: Any, loaded: Sequence[_Loaded], new: str,
                   prod: str, options: CheckOptions, prices: dict[str, Any]) -> dict[str, Any]:
    """The check's report: per eval and variant the scores, the paired comparison with
    production and what blocks; the family-wise correction; the verdict; cost and latency."""
    from posttrain.analysis.compare import compare_runs
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results

    alpha = options.alpha if options.alpha is not None else project.alpha
    method = options.correction or project.correction
    _answered_something(store, loaded, new)
    evals: list[dict[str, Any]] = []
    family: list[dict[str, Any]] = []   # the tests the verdict rests on, adjusted together
    advisory_tests: list[dict[str, Any]] = []  # weight 0: each adjusted as if in the family
    prod_results: list[Any] = []        # production, its failed items left out
    prod_full_results: list[Any] = []   # production as run (cost and latency)
    new_results: list[Any] = []
    for index, one in enumerate(loaded):
        entry = one.entry
        advisory = entry.weight == 0
        regress = entry.no_regression if entry.no_regression is not None else \
            project.no_regression
        bar = _bar_of(one, project)
        prod_full = load_results(store, one.prod_run)
        prod_sum = summarize(prod_full)
        failed_ids = production_failures(prod_full)
        n_items = len(prod_full.items)
        if n_items and len(failed_ids) == n_items and regress and not advisory:
            reason = clean(next(iter(prod_sum["problems"]), "no reason recorded"))
            raise UserError(
                f"production ({prod}) answered none of the {n_items} items of {one.eval.name} "
                f"({reason}), even with its failed requests sent again: a setup problem, not a "
                "comparison; fix it, then run the same command (the answers so far are stored)",
                field="--against")
        prod_res = _without(prod_full, failed_ids)
        prod_results.append(prod_res)
        prod_full_results.append(prod_full)
        record: dict[str, Any] = {
            "eval": one.eval.name, "ref": entry.ref, "file": one.path, "weight": entry.weight,
            "advisory": advisory, "production_variant": entry.variant, "pass_bar": bar,
            "no_regression": regress,
            "production": {**_side(prod_sum, bar, one.prod_run, ran_now=one.prod_ran_now),
                           "resent": one.prod_resent, "excluded": len(failed_ids)},
            "variants": [], "seconds": round(one.seconds, 3),
        }
        for v_index, (variant, run) in enumerate(one.new_runs.items()):
            new_res = load_results(store, run)
            if variant == entry.variant:
                new_results.append(new_res)
            new_sum = summarize(new_res)
            # production's failed items are not in the paired test (the new model's failures
            # are: a failure of the model under test counts 0, as everywhere)
            comparison = compare_runs(prod_res, _without(new_res, failed_ids), seed=options.seed + 7919 * index
                                      + 104729 * v_index, n_boot=options.draws, alpha=alpha)
            row: dict[str, Any] = {
                "variant": variant, "production_prompt": variant == entry.variant,
                "new": _side(new_sum, bar, run),
                "paired": _paired(comparison["overall"]),
                "n_common": comparison["n_common"],
                "warnings": comparison["warnings"], "blockers": [], "tags": [],
                "insufficient": [],
                "moved": len(comparison["regressed"]) + len(comparison["fixed"]),
            }
            if failed_ids and regress:
                row["insufficient"].append(
                    f"production failed on {len(failed_ids)} of {n_items} items even when sent "
                    f"again ({next(iter(prod_sum['problems']), 'no reason recorded')}): they "
                    f"are left out of the paired test ({n_items - len(failed_ids)} compared), "
                    "so a regression on them would not show")
            if new_sum["n"] and not new_sum["answered"]:
                reason = next(iter(new_sum["problems"]), "no reason recorded")
                row["blockers"].append({"kind": "no_answers", "scope": "eval",
                                        "text": f"no sample got an answer ({reason})"})
            if bar is not None and not row["new"]["clears_bar"]:
                row["blockers"].append({
                    "kind": "pass_bar", "scope": "eval",
                    "text": f"score {_pct(new_sum['score'])} (95% CI low "
                            f"{_pct(new_sum['ci_low'])}) is below the pass bar {bar:g}"
                            + (" (production is below it too)"
                               if not record["production"]["clears_bar"] else "")})
            if regress:
                (advisory_tests if advisory else family).append(
                    {"row": row, "target": row["paired"], "scope": "eval"})
            groups = {g["group"]: g for g in comparison["groups"]}
            for tag, rule in project.tags.items():
                if tag not in groups and tag not in new_sum["by_tag"]:
                    continue
                tag_entry = new_sum["by_tag"].get(tag) or {}
                prod_tag = prod_sum["by_tag"].get(tag) or {}
                tag_row: dict[str, Any] = {
                    "tag": tag, "n": tag_entry.get("n"), "new": tag_entry.get("score"),
                    "new_ci_low": tag_entry.get("ci_low"), "production": prod_tag.get("score"),
                    "pass_bar": rule.pass_bar,
                    "paired": _paired(groups[tag]) if tag in groups else None,
                }
                row["tags"].append(tag_row)
                low = tag_entry.get("ci_low")
                if rule.pass_bar is not None and (low is None or low < rule.pass_bar):
                    row["blockers"].append({
                        "kind": "pass_bar", "scope": f"tag {tag}",
                        "text": f"tag {tag}: {_pct(tag_entry.get('score'))} (95% CI low "
                                f"{_pct(low)}, n={tag_entry.get('n')}) is below its bar "
                                f"{rule.pass_bar:g}"})
                tag_regress = rule.no_regression if rule.no_regression is not None else regress
                if tag_regress and tag_row["paired"] is not None and \
                        tag_row["paired"]["p_value"] is not None:
                    (advisory_tests if advisory else family).append(
                        {"row": row, "target": tag_row["paired"], "scope": f"tag {tag}"})
            record["variants"].append(row)
        evals.append(record)
    # the family-wise correction, across every comparison that can block
    tested = [t for t in family if t["target"]["p_value"] is not None]
    p_values = [t["target"]["p_value"] for t in tested]
    adjusted = adjust(p_values, method)
    for index, (test, p_adj) in enumerate(zip(tested, adjusted, strict=True)):
        _judge(test, p_adj, alpha, method, prod)
        # power: could this comparison be significant even if every compared item regressed?
        n = test["target"]["n"] or 0
        best = list(p_values)
        best[index] = min_p_value(n)
        best_adj = adjust(best, method)[index]
        test["target"]["min_p_adjusted"] = best_adj
        if test["scope"] == "eval" and not test["target"]["regression"] and best_adj >= alpha:
            test["row"]["insufficient"].append(
                f"too few items to show a regression: {n} compared, so even if every one "
                f"regressed the {CORRECTION_NAMES[method]}-adjusted p would be "
                f"{_p(best_adj)} (not below alpha {alpha:g})")
    for test in advisory_tests:  # as if it counted: the family plus this one comparison
        if test["target"]["p_value"] is None:
            continue
        p_adj = adjust([*p_values, test["target"]["p_value"]], method)[-1]
        _judge(test, p_adj, alpha, method, prod)
    blocking, prompt_fixes = [], []
    for record in evals:
        rows = record["variants"]
        production_row = rows[0]
        if not production_row["blockers"]:
            record["status"] = "insufficient" if production_row["insufficient"] else "pass"
        else:
            clearing = [r for r in rows[1:] if not r["blockers"] and not r["insufficient"]]
            clearing.sort(key=lambda r: -(r["new"]["score"] or 0.0))
            if clearing:
                record["status"] = "prompt"
                record["fix_variant"] = clearing[0]["variant"]
            else:
                record["status"] = "blocked"
        if record["advisory"] and record["status"] not in ("pass", "insufficient"):
            record["status"] = "advisory"
        elif record["advisory"]:
            record["status"] = "pass"  # its doubts are reported, never a reason to hold
        if record["status"] == "blocked":
            blocking.extend(f"{record['eval']}: {b['text']}" for b in production_row["blockers"])
        elif record["status"] == "prompt":
            prompt_fixes.append({"eval": record["eval"], "variant": record["fix_variant"],
                                 "blockers": [b["text"] for b in production_row["blockers"]]})
    insufficient = [f"{r['eval']}: {reason}" for r in evals if r["status"] == "insufficient"
                    for reason in r["variants"][0]["insufficient"]]
    if any(r["status"] == "blocked" for r in evals):
        verdict = HOLD
    elif insufficient:
        verdict = INSUFFICIENT
    elif prompt_fixes:
        verdict = PROMPT
    else:
        verdict = ADOPT
    return {
        "project": str(project.path), "name": project.name, "store": str(project.store),
        "new": new, "against": prod, "verdict": verdict, "exit_code": EXIT_CODES[verdict],
        "blocking": blocking, "prompt_changes": prompt_fixes, "insufficient": insufficient,
        "skipped": [{"file": str(path), "reason": reason} for path, reason in project.skipped],
        "blocking_tags": sorted({b["scope"][4:] for r in evals if r["status"] == "blocked"
                                 for b in r["variants"][0]["blockers"]
                                 if b["scope"].startswith("tag ")}),
        "correction": {"method": method, "name": CORRECTION_NAMES[method], "alpha": alpha,
                       "comparisons": len(tested),
                       "controls": "family-wise error rate" if method == "holm"
                       else "false discovery rate"},
        "evals": evals,
        "overall": _overall(loaded, prod_results, new_results, options, alpha),
        "models": {prod: _cost_latency(prod_full_results, prices), new: _cost_latency(new_results,
                                                                                  prices)},
    }


def _answered_something(store: Any, loaded: Sequence[_Loaded], new: str) -> None:
    """A new model that answered no request of the whole set (every one refused, HTTP 400 or
    500 on all) is a setup problem (exit 2), as in ``posttrain eval``: there is nothing to
    compare, so no verdict."""
    from collections import Counter

    from posttrain.analysis.results import load_results

    total, reasons = 0, Counter()
    for one in loaded:
        for run in one.new_runs.values():
            for sample in load_results(store, run).samples:
                total += 1
                if sample.completion is not None or sample.status != "error":
                    return
                reasons[clean((sample.error or "request failed").splitlines()[0][:200])] += 1
    if total:
        reason = reasons.most_common(1)[0][0]
        raise UserError(f"the new model ({new}) answered none of its {total} requests "
                        f"({reason}): a setup problem (its endpoint, name or key), not a "
                        "verdict; fix it, then run the same command", field="--model")


def min_p_value(n: int) -> float:
    """The smallest two-sided p-value the paired test can give on n items: every item moved
    the same way (McNemar exact: 2 x 0.5^n discordant pairs; the exact sign-flip test: 2 / 2^n
    sign patterns)."""
    return min(1.0, 2.0 * 0.5 ** n) if n > 0 else 1.0


def production_failures(results: Any) -> set[str]:
    """Items whose request to production failed (after its retries) or was never answered, in
    some epoch: not production's answer, so not compared."""
    epochs = max(1, results.run.epochs)
    failed = {s.item_id for s in results.samples if s.status == "error" and s.completion is None}
    counts: dict[str, int] = {}
    for sample in results.samples:
        counts[sample.item_id] = counts.get(sample.item_id, 0) + 1
    failed |= {item.id for item in results.items if counts.get(item.id, 0) < epochs}
    return failed


def _without(results: Any, item_ids: set[str]) -> Any:
    if not item_ids:
        return results
    from posttrain.analysis.results import RunResults

    return RunResults(run=results.run, items=[i for i in results.items if i.id not in item_ids],
                      samples=[s for s in results.samples if s.item_id not in item_ids])


def _judge(test: dict[str, Any], p_adj: float, alpha: float, method: str, prod: str) -> None:
    target = test["target"]
    target["p_adjusted"] = p_adj
    target["regression"] = is_regression(target["diff"], p_adj, alpha)
    if target["regression"]:
        scope = test["scope"]
        where = "" if scope == "eval" else f"{scope}: "
        test["row"]["blockers"].append({
            "kind": "regression", "scope": scope,
            "text": f"{where}regressed {_pct(target['diff'], True)} [{_pct(target['ci_low'], True)}"
                    f", {_pct(target['ci_high'], True)}] vs {prod}, {target['test']} p = "
                    f"{_p(target['p_value'])}, {CORRECTION_NAMES[method]} p = {_p(p_adj)}"})


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _side(summary: dict[str, Any], bar: float | None, run: Any, *,
          ran_now: bool | None = None) -> dict[str, Any]:
    side = {"run_id": run.id, "created": run.created, "score": summary["score"],
            "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "n": summary["n"],
            "coverage": summary["coverage"], "errors": summary["errors"],
            "unscored": summary["unscored"], "requests": summary["requests"],
            "answered": summary["answered"], "missing": summary.get("missing", 0),
            "problems": dict(list(summary["problems"].items())[:3]),
            "clears_bar": bar is None or (summary["ci_low"] is not None
                                          and summary["ci_low"] >= bar)}
    if ran_now is not None:
        side["ran_now"] = ran_now
    return side


def _paired(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "ci_method", "level",
            "p_value", "p_value_se", "test")
    out = {key: result.get(key) for key in keys}
    out["p_adjusted"] = None
    out["regression"] = False
    return out


def _cost_latency(results: Sequence[Any], prices: dict[str, Any]) -> dict[str, Any]:
    """Cost of one pass over the set (answers, priced as billed; a cached answer at list price
    from its tokens, as ``pick`` does) and latency of the answers, from the runs compared."""
    from posttrain.analysis.pick import run_cost
    from posttrain.analysis.results import answer_latencies
    from posttrain.analysis.stats import percentile

    total, counted, priced = 0.0, 0, True
    latencies: list[float] = []
    for result in results:
        cost, _n = run_cost(result, prices)
        answered = sum(1 for s in result.samples if s.completion is not None)
        counted += answered
        if cost is None:
            priced = priced and not answered
        else:
            total += cost
        latencies.extend(answer_latencies(result))
    return {"answers": counted,
            "cost_usd": round(total, 6) if priced and counted else None,
            "cost_usd_per_item": round(total / counted, 8) if priced and counted else None,
            "latency_p50_s": _round(percentile(latencies, 50)),
            "latency_p95_s": _round(percentile(latencies, 95)),
            "input_tokens": sum(s.input_tokens for r in results for s in r.samples),
            "output_tokens": sum(s.output_tokens for r in results for s in r.samples)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _overall(loaded: Sequence[_Loaded], prod_results: Sequence[Any],
             new_results: Sequence[Any], options: CheckOptions, alpha: float) -> dict[str, Any]:
    """The weighted mean of the evals' scores per model (weights from the project file), and
    the paired difference: a sign-flip test on each item's difference scaled by its eval's
    weight share (w_e / (W n_e), times the number of items), so the statistic is the weighted
    difference itself; a Student t interval on the same values. Not a criterion of the verdict
    (the per-eval tests are); a summary of the set."""
    from posttrain.analysis.paired import _agree, sign_flip_test
    from posttrain.analysis.stats import mean_interval

    weights = [one.entry.weight for one in loaded]
    total_w = math.fsum(weights)
    if not total_w:
        return {"weighted": False, "score_production": None, "score_new": None, "diff": None}
    score_p = score_n = 0.0
    scaled: list[float] = []
    parts: list[tuple[float, list[float]]] = []
    for weight, a, b in zip(weights, prod_results, new_results, strict=True):
        sa, sb = a.item_scores(), b.item_scores()
        common = [i for i in sa if i in sb]
        if not common or not weight:
            continue
        score_p += weight / total_w * math.fsum(sa[i] for i in common) / len(common)
        score_n += weight / total_w * math.fsum(sb[i] for i in common) / len(common)
        parts.append((weight / total_w / len(common), [sb[i] - sa[i] for i in common]))
    n = sum(len(d) for _w, d in parts)
    for share, diffs in parts:
        scaled.extend(share * n * d for d in diffs)
    if not scaled:
        return {"weighted": len(set(weights)) > 1, "score_production": None, "score_new": None,
                "diff": None}
    diff = math.fsum(scaled) / len(scaled)
    tested = sign_flip_test(scaled, draws=options.draws, seed=options.seed)
    interval = mean_interval(scaled, level=1 - alpha, bounded=False)
    low, high, method = _agree(interval.low, interval.high, diff, tested.p_value < alpha,
                               interval.method)
    if low is not None and high is not None and (low < -1 or high > 1):
        # a difference of scores in [0, 1] lies in [-1, 1]; the t interval at a few items does
        # not know it: the interval is clamped to those bounds, and says so
        low, high = max(-1.0, low), min(1.0, high)
        method = f"{method}, clamped to [-1, 1]"
    return {"weighted": len(set(weights)) > 1, "score_production": round(score_p, 4),
            "score_new": round(score_n, 4), "diff": round(diff, 4),
            "ci_low": None if low is None else round(low, 4),
            "ci_high": None if high is None else round(high, 4), "ci_method": method,
            "p_value": tested.p_value, "test": tested.method, "n_items": len(scaled)}

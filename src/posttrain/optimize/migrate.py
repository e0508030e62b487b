"""``migrate``: should this eval's traffic move from model OLD to model NEW, and with which prompt?

Runs OLD with the current prompt (variant ``default``), NEW with the current prompt, and NEW
with the optimized prompt: ``--variant``, else the last variant of the eval that ``posttrain
optimize`` wrote for NEW (its provenance names the model). The prompt is chosen before any
score is seen, never as the best of the runs compared (that would favour a lucky one).

When the optimized variant's provenance holds its split, the three runs use that split's
held-out items only (the variant was chosen on the others), and the report says so.

Verdict: NEW with the chosen prompt versus OLD, paired per item (``compare_runs``) overall,
per tag and per grader component at ``alpha``: "switch" when it is significantly better and
nothing is significantly worse, "do not switch yet" naming what is significantly worse, else
"no significant difference" with the interval (how much worse it may still be).
"""

from __future__ import annotations

from typing import Any

from posttrain.analysis.compare import compare_runs
from posttrain.analysis.pick import cost_per_item, latency_p95
from posttrain.analysis.results import RunResults
from posttrain.analysis.stats import mean_interval
from posttrain.eval import DEFAULT_VARIANT, Eval
from posttrain.optimize.search import Runs, Spent, checked_once, split_items
from posttrain.runner.executor import RunOptions
from posttrain.runner.store import Store


def optimized_variant(eval_: Eval, new_spec: str) -> str | None:
    """The last variant ``optimize`` wrote for ``new_spec`` (by its provenance), or None."""
    found = None
    for name, variant in eval_.variants.items():
        provenance = variant.provenance or {}
        if provenance.get("by") == "posttrain optimize" and provenance.get("model") == new_spec:
            found = name
    return found


def _row(label: str, spec: str, variant: str, results: RunResults,
         prices: dict[str, Any] | None) -> dict[str, Any]:
    interval = mean_interval(list(results.item_scores().values()))
    failed = [s for s in results.samples if s.status == "error"]
    return {"label": label, "model": spec, "variant": variant, "run": results.run.id,
            "errors": len(failed), "answers": len(results.samples),
            "first_error": failed[0].reason if failed else None,
            "score": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "n": len(results.item_scores()),
            "cost_usd_per_item": cost_per_item(results, prices),
            "latency_p95_s": latency_p95(results)}


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:+.1%}"


def _figures(row: dict[str, Any]) -> str:
    return (f"{_pct(row['diff'])} [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}], "
            f"p = {row['p_value']:.2g}" if row["p_value"] is not None else "no common items")


def verdict(comparison: dict[str, Any], old: str, new: str, variant: str) -> tuple[str, str]:
    """(decision, one line): decision is switch, blocked or undecided."""
    overall = comparison["overall"]
    worse = [(kind, row.get("group") or row.get("component"), row)
             for kind, rows in (("tag", comparison["groups"]),
                                ("grader component", comparison["components"]))
             for row in rows if row["significant"] and (row["diff"] or 0.0) < 0]
    prompt = "the current prompt" if variant == DEFAULT_VARIANT else f"variant {variant}"
    if overall["significant"] and (overall["diff"] or 0.0) < 0:
        return "blocked", (f"do not switch: {new} with {prompt} is {_figures(overall)} against "
                           f"{old} overall")
    if worse:
        kind, name, row = worse[0]
        more = f" (and {len(worse) - 1} more)" if len(worse) > 1 else ""
        return "blocked", (f"do not switch yet: {new} with {prompt} is significantly worse on "
                           f"{kind} {name!r}: {_figures(row)}{more}")
    if overall["significant"]:
        return "switch", (f"switch with {prompt}: {_figures(overall)} over {old}, no tag or "
                          "grader component significantly worse")
    low = overall["ci_low"]
    return "undecided", (f"no significant difference: {new} with {prompt} is {_figures(overall)} "
                         f"against {old}; no tag or grader component significantly worse, but "
                         f"the interval still allows {_pct(low)}")


async def migrate(eval_: Eval, old: Any, new: Any, store: Store, options: RunOptions, *,
                  old_spec: str, new_spec: str, variant: str | None = None, alpha: float = 0.05,
                  seed: int = 0, prices: dict[str, Any] | None = None,
                  model_configs: dict[str, dict[str, Any]] | None = None,
                  progress: bool = False) -> dict[str, Any]:
    chosen = variant if variant is not None else optimized_variant(eval_, new_spec)
    if chosen is not None:
        eval_.variant(chosen)  # validates the name
    items, scope = list(eval_.items), f"all {len(eval_.items)} items"
    provenance = (eval_.variants[chosen].provenance or {}) if chosen else {}
    split = provenance.get("split") if isinstance(provenance.get("split"), dict) else None
    if split is not None and chosen != DEFAULT_VARIANT:
        _dev, items = split_items(eval_.items, int(split.get("seed", 0)),
                                  float(split.get("holdout", 0.5)))
        scope = (f"the {len(items)} items held out when {chosen} was chosen (split seed "
                 f"{split.get('seed', 0)}, share {split.get('holdout', 0.5)})")
    options = await checked_once(eval_, [old, new], options)
    spent = Spent()
    runs = Runs(eval_, new, store, options, model_configs=model_configs, progress=progress,
                spent=spent)
    note = {"role": "migrate"}
    old_res = await runs.run(items, DEFAULT_VARIANT, None, note, model=old)
    new_res = await runs.run(items, DEFAULT_VARIANT, None, note, model=new)
    rows = [_row(old_spec, old_spec, DEFAULT_VARIANT, old_res, prices),
            _row(new_spec, new_spec, DEFAULT_VARIANT, new_res, prices)]
    target, target_variant = new_res, DEFAULT_VARIANT
    prompt_effect = None
    if chosen is not None and chosen != DEFAULT_VARIANT:
        opt_res = await runs.run(items, chosen, None, note, model=new,
                                 variant=eval_.variants[chosen])
        rows.append(_row(new_spec, new_spec, chosen, opt_res, prices))
        target, target_variant = opt_res, chosen
        effect = compare_runs(new_res, opt_res, seed=seed, alpha=alpha)["overall"]
        prompt_effect = {key: effect[key] for key in
                         ("diff", "ci_low", "ci_high", "p_value", "test", "n", "significant")}
    comparison = compare_runs(old_res, target, seed=seed, alpha=alpha)
    baseline_switch = compare_runs(old_res, new_res, seed=seed, alpha=alpha)["overall"]
    decision, line = verdict(comparison, old_spec, new_spec, target_variant)
    failing = [r for r in rows if r["errors"]]
    if failing:  # failed requests count 0: say so in the verdict itself
        line += "; note: " + "; ".join(
            f"{r['model']} [{r['variant']}] failed {r['errors']} of {r['answers']} requests "
            f"(counted as 0), e.g. {r['first_error']}" for r in failing)
    return {"eval": eval_.name, "from": old_spec, "to": new_spec, "variant": target_variant,
            "scope": scope, "n_items": len(items), "alpha": alpha, "rows": rows,
            "overall": comparison["overall"], "groups": comparison["groups"],
            "components": comparison["components"],
            "new_current_prompt_vs_old": baseline_switch, "variant_vs_current": prompt_effect,
            "decision": decision, "verdict": line,
            "requests": spent.target, "runs": spent.runs}

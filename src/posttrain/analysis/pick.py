"""The cheapest model that clears the bar, the cost/latency/quality frontier, and the cusp.

A model *clears* the bar when the lower bound of its score's 95% CI is at or above it, so a
lucky run on a small eval does not win. Cost per item is the mean cost of one answer: the
stored ``cost_usd`` where the run paid for it, else tokens × list price (the models file's
price, then the run's recorded price, then the default table in ``posttrain.models.pricing``),
so a run served from the cache is still priced, its prompt-cache reads and writes at their own
rates (``Price.cost``, the providers' formula). Latency is the p95 of uncached answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posttrain.analysis.results import RunResults, answer_latencies
from posttrain.analysis.selection import item_groups, unique_labels
from posttrain.analysis.stats import mean_ci, percentile
from posttrain.models.base import Price, price_from_dict

CUSP_LOW, CUSP_HIGH = 0.1, 0.6


def _price_for(result: RunResults, prices: dict[str, Any]) -> Price | None:
    """The price (USD per million input / cached input / cache-write / output tokens) of a run's
    model, or None if unknown."""
    model = result.run.model
    for key in (model, model.split(":", 1)[-1]):
        if key in prices and prices[key] is not None:
            return price_from_dict(prices[key])
    recorded = result.run.config.get("price")
    if isinstance(recorded, dict) and ("input" in recorded or "output" in recorded):
        try:
            return price_from_dict(recorded)
        except ValueError:  # written by a later version with rates this one does not know
            return Price(float(recorded.get("input") or 0), float(recorded.get("output") or 0))
    from posttrain.models.pricing import default_price

    spec = result.run.config.get("model_spec") or model
    name = spec.split(":", 1)[-1] if isinstance(spec, str) else model
    return default_price(name)


def cost_per_item(result: RunResults, prices: dict[str, Any] | None = None) -> float | None:
    """Mean USD per answered sample (None when neither a stored cost nor a price is known)."""
    total, counted = run_cost(result, prices)
    return total / counted if total is not None and counted else None


def run_cost(result: RunResults, prices: dict[str, Any] | None = None
             ) -> tuple[float | None, int]:
    """(USD of the run's answers, answers counted): the stored cost where the run paid for an
    answer, else its tokens at the price; None when neither is known for some answer."""
    price = _price_for(result, prices or {})
    costs: list[float] = []
    for sample in result.samples:
        if not sample.answered and not sample.input_tokens:
            continue
        if sample.cost_usd and not sample.cached:
            costs.append(sample.cost_usd)
        elif price is not None:
            record = (sample.completion or {}) if (
                sample.completion_mentions("cached_input_tokens")
                or sample.completion_mentions("cache_write_tokens")) else {}
            costs.append(price.cost(
                sample.input_tokens, sample.output_tokens,
                cached_input_tokens=record.get("cached_input_tokens") or 0,
                cache_write_tokens=record.get("cache_write_tokens") or 0))
        elif sample.cost_usd:
            costs.append(sample.cost_usd)
        else:
            return None, 0
    return (sum(costs), len(costs)) if costs else (None, 0)


def latency_p95(result: RunResults) -> float | None:
    """p95 latency of the run's answers; an answer served from the cache carries the latency
    of its original request (None where that is unknown, never 0)."""
    return percentile(answer_latencies(result), 95)


def pareto_front(points: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of candidates no other beats on cost, latency and score at once."""
    def key(p: dict[str, Any]) -> tuple[float, float, float]:
        inf = float("inf")
        return (p["cost_usd_per_item"] if p["cost_usd_per_item"] is not None else inf,
                p["latency_p95_s"] if p["latency_p95_s"] is not None else inf,
                -(p["score"] if p["score"] is not None else -inf))
    keys = [key(p) for p in points]
    front = []
    for i, ki in enumerate(keys):
        dominated = any(all(x <= y for x, y in zip(kj, ki, strict=True)) and kj != ki
                        for j, kj in enumerate(keys) if j != i)
        if not dominated:
            front.append(i)
    return front


def run_figures(result: RunResults, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``pick`` needs of one run, in JSON (kept in the store as the run's ``point``):
    headline score with its CI, coverage, failures, cost per item, p95 latency, and per tag the
    mean item score and item count (``groups``; ``(all items)`` for every item), with
    ``items_key``, a digest of the run's item ids and tags: runs whose keys agree have the same
    groups, so their per-run figures combine exactly as their samples would."""
    import hashlib

    item_scores = result.item_scores()  # headline: failures count 0
    values = list(item_scores.values())
    score, ci_low, ci_high = mean_ci(values)
    scored, expected = result.coverage()
    groups = {"(all items)": sorted(item_scores)}
    groups.update(item_groups([result]))
    digest = hashlib.blake2b(digest_size=16)
    for item in result.items:
        digest.update(orjson_dumps([item.id, [str(t) for t in item.tags]]))
    return {
        "score": score, "ci_low": ci_low, "ci_high": ci_high, "n": len(values),
        "coverage": scored / expected if expected else None,
        "errors": sum(1 for s in result.samples if s.status == "error"),
        "unscored": sum(1 for s in result.samples if s.status == "unscored"),
        "cost_usd_per_item": cost_per_item(result, prices), "latency_p95_s": latency_p95(result),
        "groups": {name: [_mean([item_scores[i] for i in ids if i in item_scores]),
                          sum(1 for i in ids if i in item_scores)]
                   for name, ids in groups.items()},
        "items_key": digest.hexdigest(),
    }


def orjson_dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def _mean(values: list[float]) -> float | None:
    """The mean, correctly rounded (``math.fsum``): the same whatever the order of the items."""
    import math

    return math.fsum(values) / len(values) if values else None


def out_of_reach(results: Sequence[RunResults], labels: Sequence[str], *, low: float = CUSP_LOW,
                 high: float = CUSP_HIGH, min_items: int = 3) -> list[dict[str, Any]]:
    """Tags (and the whole eval) where even the best model scores between ``low`` and ``high``."""
    scores = [r.item_scores() for r in results]
    groups = {"(all items)": sorted(set().union(*(set(s) for s in scores)))} if scores else {}
    groups.update(item_groups(results))
    per_run = [{name: [_mean([per_item[i] for i in ids if i in per_item]),
                       sum(1 for i in ids if i in per_item)] for name, ids in groups.items()}
               for per_item in scores]
    return _out_of_reach(per_run, labels, list(groups), low=low, high=high, min_items=min_items)


def _out_of_reach(per_run: Sequence[dict[str, list[Any]]], labels: Sequence[str],
                  names: Sequence[str], *, low: float = CUSP_LOW, high: float = CUSP_HIGH,
                  min_items: int = 3) -> list[dict[str, Any]]:
    found = []
    for name in names:
        best_label, best_score, best_n = None, None, 0
        for label, groups in zip(labels, per_run, strict=True):
            score, count = groups.get(name, [None, 0])
            if count < min_items or score is None:
                continue
            if best_score is None or score > best_score:
                best_label, best_score, best_n = label, score, count
        if best_score is None or not (low <= best_score <= high):
            continue
        if best_score <= 0.35:
            advice = (f"best model passes {best_score:.0%}: on the cusp. Fine-tuning often lifts "
                      "a ~10% pass rate to ~50%: a candidate for RFT now, with these graders as "
                      "the reward; likely solved by the next model generation.")
        else:
            advice = (f"best model passes {best_score:.0%}: within reach of fine-tuning "
                      "(SFT on passing answers, or RFT with these graders as the reward); "
                      "re-run on each new model, the next generation may clear it.")
        found.append({"tag": name, "best_model": best_label, "best_score": best_score,
                      "n_items": best_n, "recommendation": advice})
    return found


def pick(results: Sequence[RunResults], bar: float, *, max_latency_p95: float | None = None,
         prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rank a ladder of runs (one per model) and choose the cheapest that clears ``bar``."""
    labels = unique_labels(results)
    figures = [run_figures(result, prices) for result in results]
    report = pick_from([r.run for r in results], figures, bar, max_latency_p95=max_latency_p95,
                       labels=labels)
    report["out_of_reach"] = out_of_reach(results, labels)
    return report


def pick_from(runs: Sequence[Any], figures: Sequence[dict[str, Any]], bar: float, *,
              max_latency_p95: float | None = None, labels: Sequence[str] | None = None
              ) -> dict[str, Any]:
    """``pick`` from each run's ``run_figures`` (e.g. kept in the store). Tags out of reach are
    combined from the per-run groups when every run has the same items and tags (the same
    ``items_key``), else left to the caller (``out_of_reach`` is None)."""
    from posttrain.analysis.selection import run_label

    if labels is None:
        plain = [run_label(run) for run in runs]
        labels = [f"{label}@{run.id}" if plain.count(label) > 1 else label
                  for label, run in zip(plain, runs, strict=True)]
    candidates = []
    # a run of part of the eval (``--limit``, a subset) is not ranked against whole runs: its
    # score is of other items (a run of 8 easy items "clears" where its model's whole run not)
    widest = max((_item_count(figure) for figure in figures), default=0)
    warnings: list[str] = []
    for label, run, figure in zip(labels, runs, figures, strict=True):
        latency = figure["latency_p95_s"]
        ci_low = figure["ci_low"]
        too_slow = (max_latency_p95 is not None and latency is not None
                    and latency > max_latency_p95)
        items = _item_count(figure)
        partial = items < widest
        if partial:
            warnings.append(f"{label}: its run ({run.id}) has {items} of the {widest} items the "
                            "other runs have: not ranked (run it on the whole eval)")
        candidates.append({
            "model": label, "run": run.id, "score": figure["score"], "ci_low": ci_low,
            "ci_high": figure["ci_high"], "n": figure["n"], "items": items,
            "coverage": figure["coverage"],
            "errors": figure["errors"], "unscored": figure["unscored"],
            "cost_usd_per_item": figure["cost_usd_per_item"], "latency_p95_s": latency,
            "clears": ci_low is not None and ci_low >= bar and not too_slow and not partial,
            "too_slow": too_slow, "partial": partial,
        })
    front = set(pareto_front(candidates))
    for index, candidate in enumerate(candidates):
        candidate["frontier"] = index in front
    clearing = [c for c in candidates if c["clears"]]
    inf = float("inf")
    clearing.sort(key=lambda c: (c["cost_usd_per_item"] if c["cost_usd_per_item"] is not None
                                 else inf, -(c["score"] or 0.0)))
    choice = clearing[0]["model"] if clearing else None
    if choice is not None:
        chosen = clearing[0]
        cost = chosen["cost_usd_per_item"]
        message = (f"{choice} clears {bar:.0%} (score {chosen['score']:.1%}, CI low "
                   f"{chosen['ci_low']:.1%}) at "
                   + (f"${cost:.6f} per item" if cost is not None else "an unknown price"))
    else:
        nearest = max((c for c in candidates if not c["partial"]),
                      key=lambda c: c["ci_low"] or 0.0, default=None)
        message = f"none clears {bar:.0%}"
        if nearest is not None and nearest["ci_low"] is not None:
            message += (f"; the closest is {nearest['model']} (score {nearest['score']:.1%}, "
                        f"CI low {nearest['ci_low']:.1%})")
    candidates.sort(key=lambda c: (c["cost_usd_per_item"] if c["cost_usd_per_item"] is not None
                                   else inf, c["model"]))
    keys = {figure.get("items_key") for figure in figures}
    reach = None
    if len(keys) == 1 and None not in keys:
        names = list(dict.fromkeys(name for figure in figures for name in figure["groups"]))
        names = ["(all items)", *sorted(n for n in names if n != "(all items)")]
        reach = _out_of_reach([figure["groups"] for figure in figures], labels, names)
    return {"eval": runs[0].eval_name if runs else None, "bar": bar,
            "max_latency_p95_s": max_latency_p95, "choice": choice, "message": message,
            "candidates": candidates, "out_of_reach": reach, "warnings": warnings}


def _item_count(figure: dict[str, Any]) -> int:
    """The items a run has (answered or not): its ``(all items)`` group's count."""
    return int(figure["groups"].get("(all items)", [None, figure["n"]])[1])

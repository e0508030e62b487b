"""Paired comparison of two runs (overall, per tag, per grader component) and the eval matrix.

Every number is a paired difference over the items both runs hold (each item's headline mean
over its epochs: a failed or unscored sample counts 0), B minus A, with an interval and a paired
significance test (see ``paired``). Items that only one run scored are listed, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

from posttrain.analysis.paired import DEFAULT_DRAWS, paired_compare
from posttrain.analysis.results import RunResults, SampleResult
from posttrain.analysis.selection import (
    answer_text,
    item_groups,
    record_text,
    reference_of,
    run_label,
    truncate,
    unique_labels,
)
from posttrain.analysis.stats import mean_interval
from posttrain.types import Item

if TYPE_CHECKING:
    from posttrain.analysis.cells import RunCells


#: a run as the comparisons read it: its answers (``RunResults``) or its kept per-item figures
#: (``posttrain.analysis.cells.RunCells``, the same numbers without reading every answer)
RunView = Union[RunResults, "RunCells"]


def run_summary(results: RunView) -> dict[str, Any]:
    run = results.run
    return {"id": run.id, "eval": run.eval_name, "model": run.model, "variant": run.variant,
            "label": run_label(run), "epochs": run.epochs, "created": run.created}


def _first_output(by_item: dict[str, list[SampleResult]], item_id: str) -> str:
    for sample in by_item.get(item_id, []):
        if sample.answered:
            return answer_text(sample)
        if sample.error:
            return f"[error] {sample.error}"
    return ""


def _item_ids(result: RunView) -> list[str]:
    if isinstance(result, RunResults):
        return [item.id for item in result.items]
    return result.item_ids()


def _items_of(result: RunView, ids: Sequence[str]) -> dict[str, Item]:
    if isinstance(result, RunResults):
        by_id = result.items_by_id
        return {i: by_id[i] for i in ids if i in by_id}
    return result.items_of(ids)


def _first_outputs(result: RunView, ids: Sequence[str]) -> dict[str, str]:
    """Item -> its first answer as text (or its first error), for these items."""
    if isinstance(result, RunResults):
        by_item = result.by_item()
        return {i: _first_output(by_item, i) for i in ids}
    out: dict[str, str] = {}
    for item_id, answers in result.answers_of(ids).items():
        for _epoch, answered, record, error in answers:
            if answered:
                out[item_id] = record_text(record)
                break
            if error:
                out[item_id] = f"[error] {error}"
                break
    return out


def compare_runs(a: RunView, b: RunView, *, by: str | None = None, seed: int = 0,
                 n_boot: int = DEFAULT_DRAWS, alpha: float = 0.05,
                 min_delta: float = 1e-9, fine_tune: bool = False,
                 moved_items: bool = True) -> dict[str, Any]:
    """B versus A: overall, per group (tags or field ``by``), per component; moved items.

    ``fine_tune``: B is A fine-tuned; each group gets the interview's rule-of-thumb label
    (:func:`posttrain.analysis.cusp.fine_tune_label`: ~10% -> ~50% is on the cusp).

    ``n_boot``: Monte-Carlo draws for a sign-flip test too large to enumerate; ``alpha``: the
    significance level, and 1 - alpha the level of every interval (so the two agree).
    ``moved_items``: False leaves ``regressed`` and ``fixed`` empty (no answer is read).
    """
    # headline: every item of each run, a failed or unscored sample counting 0
    scores_a, scores_b = a.item_scores(), b.item_scores()
    common = [i for i in scores_a if i in scores_b]
    scored_a = set(a.item_scores(scored_only=True))
    scored_b = set(b.item_scores(scored_only=True))
    ids_a = set(_item_ids(a))
    ids_b = set(_item_ids(b))

    def stat(sa: dict[str, float], sb: dict[str, float], items: Sequence[str] | None,
             salt: int) -> dict[str, Any]:
        result = paired_compare(sa, sb, items, draws=n_boot, seed=seed + salt, alpha=alpha)
        return {**result.to_dict(), "significant": result.significant()}

    overall = stat(scores_a, scores_b, common, 0)
    groups = []
    for index, (name, item_ids) in enumerate(item_groups([a, b], by).items(), start=1):
        row = stat(scores_a, scores_b, item_ids, index)
        if row["n"]:
            if fine_tune and row["diff"] is not None:
                from posttrain.analysis.cusp import DEFAULT_BAR, fine_tune_label

                bar = a.run.config.get("pass_bar")
                row["fine_tune"] = fine_tune_label(
                    row["mean_a"], row["mean_b"], bool(row["significant"]),
                    bar=float(bar) if isinstance(bar, (int, float)) else DEFAULT_BAR)
            groups.append({"group": name, **row})
    comp_a, comp_b = a.component_scores(), b.component_scores()
    components = []
    for index, name in enumerate(sorted(set(comp_a) & set(comp_b)), start=1000):
        row = stat(comp_a[name], comp_b[name], None, index)
        if row["n"]:
            components.append({"component": name, **row})

    moved = [i for i in common if abs(scores_b[i] - scores_a[i]) > min_delta] if moved_items \
        else []
    items_by_id = {**_items_of(b, moved), **_items_of(a, moved)}
    outputs_a, outputs_b = _first_outputs(a, moved), _first_outputs(b, moved)
    regressed, fixed = [], []
    for item_id in moved:
        delta = scores_b[item_id] - scores_a[item_id]
        item = items_by_id.get(item_id)
        entry = {
            "item_id": item_id, "a": scores_a[item_id], "b": scores_b[item_id], "diff": delta,
            "tags": item.tags if item else [],
            "reference": reference_of(item.data, a.run.config.get("graders") or ())
            if item else None,
            "a_output": outputs_a.get(item_id, ""),
            "b_output": outputs_b.get(item_id, ""),
        }
        (regressed if delta < 0 else fixed).append(entry)
    regressed.sort(key=lambda e: (e["diff"], e["item_id"]))
    fixed.sort(key=lambda e: (-e["diff"], e["item_id"]))
    warnings = []
    if a.run.eval_name != b.run.eval_name:
        warnings.append(f"different evals ({a.run.eval_name} vs {b.run.eval_name}): items are "
                        "matched by id")
    elif a.run.eval_hash != b.run.eval_hash:
        warnings.append("the eval's dataset or prompts changed between the runs "
                        "(different eval hash): items are matched by id")
    regraded = _graded_apart(a.run.config or {}, b.run.config or {})
    if regraded:
        warnings.append(f"the runs' grades of {', '.join(regraded)} were given by different "
                        "graders (an edited spec, a regrade since, or another posttrain "
                        "version: `graded_with`): a difference there may be the graders', "
                        "not the models'")
    return {
        "run_a": run_summary(a), "run_b": run_summary(b), "by": by or "tags",
        "warnings": warnings,
        "n_common": len(common),
        "only_in_a": sorted(ids_a - ids_b), "only_in_b": sorted(ids_b - ids_a),
        "scored_only_in_a": sorted((scored_a - scored_b) & ids_b),
        "scored_only_in_b": sorted((scored_b - scored_a) & ids_a),
        "scored_in_neither": sorted((ids_a & ids_b) - scored_a - scored_b),
        "overall": overall, "groups": groups, "components": components,
        "regressed": regressed, "fixed": fixed,
    }


def _graded_apart(config_a: dict[str, Any], config_b: dict[str, Any]) -> list[str]:
    """The graders both runs have whose recorded source of grades (``graded_with``: the digest
    of spec, reasoning mode, format and grading code; None not known) differ or is not known
    in one of them. Runs recorded before ``graded_with`` existed are not compared (empty)."""
    from posttrain.runner import grader_record

    if "graded_with" not in config_a or "graded_with" not in config_b:
        return []
    with_a = grader_record.graded_with(config_a, regraded_unrecorded=False) or {}
    with_b = grader_record.graded_with(config_b, regraded_unrecorded=False) or {}
    return sorted(name for name in set(with_a) & set(with_b)
                  if with_a[name] is None or with_a[name] != with_b[name])


def compare_matrix(results: Sequence[RunView], *, by: str | None = None, seed: int = 0,
                   n_boot: int = DEFAULT_DRAWS, alpha: float = 0.05) -> dict[str, Any]:
    """Several runs of one eval: score with a 95% interval per run (``ci_method`` names its
    method), paired test of each against the best (interval at 1 - alpha, agreeing with it)."""
    labels = unique_labels(results)
    item_scores = [r.item_scores() for r in results]
    rows = []
    for label, result, scores in zip(labels, results, item_scores, strict=True):
        interval = mean_interval(list(scores.values()))
        rows.append({"label": label, "run": run_summary(result), "n": len(scores),
                     "score": interval.estimate, "ci_low": interval.low,
                     "ci_high": interval.high, "ci_method": interval.method})
    ranked = sorted(range(len(rows)), key=lambda i: -(rows[i]["score"] or -1.0))
    # a run of part of the eval (``--limit``) is not the best: its score is of other items
    widest = max((row["n"] for row in rows), default=0)
    warnings = [f"{row['label']}: its run has {row['n']} of the {widest} items the other runs "
                "have: not ranked as the best; `vs best` pairs its items only"
                for row in rows if row["n"] < widest]
    whole = [i for i in ranked if rows[i]["n"] == widest]
    best = whole[0] if whole else None
    for index, row in enumerate(rows):
        row["partial"] = row["n"] < widest
        if best is None or index == best:
            row.update(vs_best_diff=None, vs_best_p=None, vs_best_test=None,
                       vs_best_significant=None, vs_best_n=None, is_best=index == best)
            continue
        result = paired_compare(item_scores[best], item_scores[index], None, draws=n_boot,
                                seed=seed + index, alpha=alpha)
        row.update(vs_best_diff=result.diff, vs_best_ci=[result.ci_low, result.ci_high],
                   vs_best_ci_method=result.ci_method, vs_best_p=result.p_value,
                   vs_best_p_se=result.p_value_se, vs_best_test=result.test, is_best=False,
                   vs_best_n=len(item_scores[best].keys() & item_scores[index].keys()))
    # m runs tested against the best: Holm's step-down adjustment keeps the chance of any false
    # "significantly below the best" at alpha (Holm 1979); each row's own p and interval stay
    tested = [row for row in rows if row.get("vs_best_p") is not None]
    for row, adjusted in zip(tested, holm([row["vs_best_p"] for row in tested]), strict=True):
        row.update(vs_best_p_holm=adjusted, vs_best_significant=adjusted < alpha)
    groups: dict[str, dict[str, float | None]] = {}
    for name, item_ids in item_groups(results, by).items():
        groups[name] = {}
        for label, scores in zip(labels, item_scores, strict=True):
            values = [scores[i] for i in item_ids if i in scores]
            groups[name][label] = sum(values) / len(values) if values else None
    return {"eval": results[0].run.eval_name if results else None,
            "rows": [rows[i] for i in ranked], "best": labels[best] if best is not None else None,
            "groups": groups, "by": by or "tags", "warnings": warnings}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (Holm 1979, "A simple sequentially rejective
    multiple test procedure"): the i-th smallest of m is multiplied by (m - i), made monotone,
    capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order (Benjamini & Hochberg
    1995): the i-th smallest of m is multiplied by m / i, made monotone from the largest down,
    capped at 1. Rejecting where q < alpha keeps the expected share of false discoveries among
    the rejections at alpha (for independent or positively dependent tests)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position  # 1-based rank from the smallest
        running = min(running, min(1.0, p_values[index] * m / rank))
        adjusted[index] = running
    return adjusted


def output_preview(text: str, limit: int = 160) -> str:
    return truncate(" ".join(text.split()), limit)

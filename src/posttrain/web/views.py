"""The JSON the viewer shows, computed from the store (no web framework here, easy to test)."""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

from posttrain.analysis.results import RunResults, SampleResult, load_results
from posttrain.analysis.stats import mean_ci, percentile
from posttrain.runner.store import RunInfo, Store
from posttrain.web import charts

FILTERS = ("all", "failed", "passed", "unscored", "errors")


def run_info(run: RunInfo) -> dict[str, Any]:
    return {"id": run.id, "eval": run.eval_name, "eval_path": run.eval_path, "model": run.model,
            "variant": run.variant, "epochs": run.epochs, "status": run.status,
            "created": run.created}


def _ci(values: list[float]) -> dict[str, Any]:
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def summary(results: RunResults) -> dict[str, Any]:
    item_scores = results.item_scores()
    statuses: dict[str, int] = defaultdict(int)
    for sample in results.samples:
        statuses[sample.status] += 1
    by_tag: dict[str, list[float]] = defaultdict(list)
    for item in results.items:
        if item.id in item_scores:
            for tag in item.tags:
                by_tag[tag].append(item_scores[item.id])
    latencies = [s.latency_s for s in results.samples if s.latency_s is not None]
    cost = sum(s.cost_usd for s in results.samples)
    passed = [s for s in results.samples if s.passed is not None]
    return {
        **run_info(results.run),
        "score": _ci(list(item_scores.values())),
        "pass_rate": (sum(1 for s in passed if s.passed) / len(passed)) if passed else None,
        "samples": len(results.samples), "items": len(results.items),
        "statuses": dict(statuses),
        "tags": {tag: _ci(values) for tag, values in sorted(by_tag.items())},
        "graders": sorted({name for s in results.samples for name in s.grades}),
        "cost_usd": cost,
        "latency": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
    }


def list_runs(store: Store) -> list[dict[str, Any]]:
    return [summary(load_results(store, run)) for run in store.list_runs()]


def run_page(store: Store, run_id: str) -> dict[str, Any]:
    results = load_results(store, store.resolve_run(run_id))
    data = summary(results)
    tag_rows = [(tag, v["mean"], v["low"], v["high"], v["n"]) for tag, v in data["tags"].items()]
    latencies = [s.latency_s for s in results.samples if s.latency_s is not None]
    peers = []
    for run in store.list_runs(results.run.eval_name):
        other = load_results(store, run) if run.id != results.run.id else results
        scores = list(other.item_scores().values())
        if scores and other.samples:
            cost = sum(s.cost_usd for s in other.samples) / len(other.samples)
            peers.append((f"{run.model} [{run.variant}]", cost, sum(scores) / len(scores)))
    data["charts"] = {
        "tags": charts.bars(tag_rows) if tag_rows else "",
        "latency": charts.histogram(latencies),
        "cost": charts.scatter(peers),
    }
    data["others"] = [run_info(r) for r in store.list_runs(results.run.eval_name)
                      if r.id != results.run.id]
    return data


def _keep(sample: SampleResult, tags: list[str], flt: str, tag: str | None,
          grader: str | None) -> bool:
    if flt == "failed" and not (sample.status == "scored" and sample.passed is False):
        return False
    if flt == "passed" and not sample.passed:
        return False
    if flt == "unscored" and sample.status != "unscored":
        return False
    if flt == "errors" and sample.status != "error":
        return False
    if tag and tag not in tags:
        return False
    if grader:
        grade = sample.grades.get(grader)
        if grade is None:
            return False
        # with a status filter, the filter applies to this grader's grade
        if flt == "failed" and grade.passed is not False:
            return False
    return True


def samples(store: Store, run_id: str, flt: str = "all", tag: str | None = None,
            grader: str | None = None) -> list[dict[str, Any]]:
    if flt not in FILTERS:
        raise ValueError(f"unknown filter {flt!r}")
    results = load_results(store, store.resolve_run(run_id))
    items = results.items_by_id
    rows = []
    for sample in results.samples:
        item = items.get(sample.item_id)
        tags = item.tags if item else []
        if not _keep(sample, tags, flt, tag, grader):
            continue
        rows.append({
            "item_id": sample.item_id, "epoch": sample.epoch, "status": sample.status,
            "value": sample.value, "passed": sample.passed, "reason": sample.reason,
            "tags": tags, "output": sample.output_text[:200], "latency_s": sample.latency_s,
            "cost_usd": sample.cost_usd,
            "grades": {name: g.value for name, g in sample.grades.items()},
        })
    return rows


def sample_detail(store: Store, run_id: str, item_id: str, epoch: int = 0) -> dict[str, Any]:
    from posttrain.usage.review import reference_fields
    from posttrain.usage.votes import prompt_messages

    run = store.resolve_run(run_id)
    results = load_results(store, run)
    item = results.items_by_id.get(item_id)
    sample = next((s for s in results.samples if s.item_id == item_id and s.epoch == epoch), None)
    if item is None or sample is None:
        raise KeyError(item_id)
    grader_specs: list[dict[str, Any]] = []
    if run.eval_path:
        from posttrain.errors import UserError
        from posttrain.loaders import yaml12

        try:
            spec = yaml12.load_file(run.eval_path, what="eval file")[0]
        except UserError:
            spec = None
        graders = spec.get("graders") if isinstance(spec, dict) else None
        grader_specs = [g for g in graders if isinstance(g, dict)] if isinstance(graders, list) \
            else []
    fields = [f for f in reference_fields(grader_specs) if f in item.data]
    completion = sample.completion or {}
    return {
        "run": run_info(run), "item_id": item_id, "epoch": epoch, "item": item.data,
        "tags": item.tags, "messages": prompt_messages(run, item) or [],
        "output": completion.get("text") or "", "tool_calls": completion.get("tool_calls") or [],
        "transcript": completion.get("transcript"), "status": sample.status,
        "value": sample.value, "passed": sample.passed, "reason": sample.reason,
        "error": sample.error, "latency_s": sample.latency_s, "cost_usd": sample.cost_usd,
        "input_tokens": sample.input_tokens, "output_tokens": sample.output_tokens,
        "grades": {name: {"name": name, **g.to_dict()} for name, g in sample.grades.items()},
        "reference_fields": fields,
        "reviews": [dict(r) for r in store.reviews(run.eval_name) if r["item_id"] == item_id],
    }


def diff_ops(a: str, b: str) -> list[list[str]]:
    """Word-level diff as [op, text] with op in = - +."""
    import re

    left, right = re.findall(r"\S+|\s+", a), re.findall(r"\S+|\s+", b)
    ops: list[list[str]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops.append(["=", "".join(left[i1:i2])])
        else:
            if i2 > i1:
                ops.append(["-", "".join(left[i1:i2])])
            if j2 > j1:
                ops.append(["+", "".join(right[j1:j2])])
    return ops


def _by_key(results: RunResults) -> dict[tuple[str, int], SampleResult]:
    return {(s.item_id, s.epoch): s for s in results.samples}


def compare(store: Store, run_a: str, run_b: str) -> dict[str, Any]:
    a = load_results(store, store.resolve_run(run_a))
    b = load_results(store, store.resolve_run(run_b))
    sa, sb = _by_key(a), _by_key(b)
    rows = []
    for key in sorted(set(sa) & set(sb)):
        x, y = sa[key], sb[key]
        rows.append({"item_id": key[0], "epoch": key[1], "a": {"value": x.value, "status":
                     x.status, "output": x.output_text}, "b": {"value": y.value, "status":
                     y.status, "output": y.output_text},
                     "diff": diff_ops(x.output_text, y.output_text)})
    return {"a": run_info(a.run), "b": run_info(b.run), "rows": rows,
            "a_score": summary(a)["score"], "b_score": summary(b)["score"]}


def common_items(store: Store, run_a: str, run_b: str) -> list[tuple[str, int]]:
    """(item, epoch) pairs both runs answered (status ok)."""
    def ok(run_id: str) -> set[tuple[str, int]]:
        return {(r["item_id"], r["epoch"]) for r in store.samples(run_id) if r["status"] == "ok"}

    return sorted(ok(run_a) & ok(run_b))

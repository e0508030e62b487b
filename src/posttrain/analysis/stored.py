"""Run summaries kept in the store: a large run is read once, not at every report or page.

A summary is stored with the run's stamp (``Store.run_stamp``: the revision that triggers bump
on every write to the run's answers, grades or items, plus its status and config) and served
only while the stamp is unchanged. One read of a run fills every kind at once:

- ``report``: ``summarize`` (``posttrain report``, the summary ``posttrain eval`` prints);
- ``card``: the viewer's row of the run (score with CI, pass rate, coverage, statuses, tags,
  graders, cost, latency);
- ``point``: the run on ``pick``'s cost / latency / score chart (the viewer's run page);
- ``pick``: what ``posttrain pick`` needs of the run (``pick.run_figures``).

The figures are the same computation on the same rows as without the store: exact, not
approximated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from posttrain.analysis.report import _pass_rate, summarize
from posttrain.analysis.results import RunResults
from posttrain.analysis.stats import mean_ci, percentile
from posttrain.runner.store import RunInfo, Store

#: bump when a kind changes what it holds: summaries stored by an older version are computed
#: again
SUMMARY_VERSION = 2  # 2: pass_rate 0.0 (not None) when every request failed


def _ci(values: list[float]) -> dict[str, Any]:
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def card(results: RunResults) -> dict[str, Any]:
    """The viewer's figures of a run (its identity is added by the viewer)."""
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
    return {
        "score": _ci(list(item_scores.values())),
        # as `posttrain report`: passes over every expected sample (an error did not pass)
        "pass_rate": _pass_rate(results, results.coverage()[1]),
        "coverage": dict(zip(("scored", "expected"), results.coverage(), strict=True)),
        "samples": len(results.samples), "items": len(results.items),
        "statuses": dict(statuses),
        "tags": {tag: _ci(values) for tag, values in sorted(by_tag.items())},
        "graders": sorted({name for s in results.samples for name in s.grades}),
        "cost_usd": cost,
        "latency": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
    }


def point(results: RunResults) -> dict[str, Any]:
    """Score with CI, cost per answered sample and p95 latency, as ``pick`` computes them."""
    from posttrain.analysis.pick import cost_per_item, latency_p95

    mean, low, high = mean_ci(list(results.item_scores().values()))
    return {"score": mean, "low": low, "high": high, "cost_per_sample": cost_per_item(results),
            "latency_p95": latency_p95(results)}


def pick_figures(results: RunResults) -> dict[str, Any]:
    """``pick``'s figures of the run at the prices the run recorded (``pick.run_figures``)."""
    from posttrain.analysis.pick import run_figures

    return run_figures(results)


KINDS: dict[str, Callable[[RunResults], dict[str, Any]]] = {
    "report": summarize, "card": card, "point": point, "pick": pick_figures}


def stored(store: Store, run: RunInfo | str, kind: str,
           results: RunResults | None = None) -> dict[str, Any]:
    """The ``kind`` summary of ``run``: from the store while the run is unchanged, else
    computed (from ``results`` when the caller has them, else from the run's score facts,
    ``analysis.facts_summary``: the same figures) with every other kind, and kept if the run is
    finished (a running run, e.g. watched live in the viewer, is computed each time and its
    reader writes nothing to the store)."""
    run = store.get_run(run if isinstance(run, str) else run.id)  # its status now
    stamp, body = store.summary_get(run, f"{kind}:{SUMMARY_VERSION}")
    if body is not None:
        return body
    if results is None:  # from the run's kept score facts, not every answer
        from posttrain.analysis.facts_summary import summaries

        computed = summaries(store, run)
        if run.status != "finished":  # still being written: its summary would not last
            return computed[kind]
    elif run.status != "finished":  # still being written: its summary would not last; no write
        return KINDS[kind](results)
    else:
        computed = {name: build(results) for name, build in KINDS.items()}
    for name, value in computed.items():
        store.summary_put(run, f"{name}:{SUMMARY_VERSION}", stamp, value)
    return computed[kind]


def stored_summary(store: Store, run: RunInfo | str, *,
                   requests: int | None = None) -> dict[str, Any]:
    """``summarize(load_results(store, run), requests=requests)`` through the store;
    ``requests`` (what this command sent) only replaces the request count in the copy."""
    summary = stored(store, run, "report")
    return summary if requests is None else {**summary, "requests": requests}

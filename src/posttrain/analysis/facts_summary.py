"""A run's kept summaries (``report``, ``card``, ``point``, ``pick``; see ``analysis.stored``)
computed from its score facts (``runner.facts``) and one read of its answers' numeric columns,
not from every answer as a Python object.

The same computation as ``report.summarize``, ``stored.card``, ``stored.point`` and
``pick.run_figures`` on ``RunResults``, field by field, in the same order of answers (so every
sum adds the same floats in the same order); tests compare both on small stores.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson

from posttrain.analysis.cells import RunCells
from posttrain.analysis.report import (
    _interval_entry,
    _round,
    pass_k_figures,
    rank_problems,
    run_config_fields,
)
from posttrain.analysis.results import combine
from posttrain.analysis.stats import mean_ci, mean_interval
from posttrain.runner.facts import STEERED, TOKEN_PARTS
from posttrain.runner.store import RunInfo, Store
from posttrain.types import Item, Score

_TOKEN_PARTS = TOKEN_PARTS


class _Answers:
    """The run's answers: the figures kept with its facts (costs added as a summary adds them,
    latency percentile points) and the counts SQLite sums exactly (integers)."""

    def __init__(self, store: Store, cells: RunCells) -> None:
        conn, run_id = store.conn, cells.run.id
        self.conn, self.run_id = conn, run_id
        cursor = conn.cursor()
        cursor.row_factory = None
        #: the answers' figures kept with the facts (``runner.facts._answer_figures``)
        self.figures = orjson.loads(cells.packed("answers"))
        named = " OR ".join(f"instr(completion, '\"{key}\"')" for key in _TOKEN_PARTS)
        figures = self.figures
        self.count, self.answered = figures["count"], figures["answered"]
        self.requests, self.retries = figures["requests"], figures["retries"]
        self.cached = figures["cached"]
        self.input_tokens, self.output_tokens = figures["input_tokens"], figures["output_tokens"]
        any_named = figures["names_token_parts"]
        #: the answers that name a token part: (flag, value) per part, in answer order
        self.parts: list[tuple[Any, ...]] = []
        if any_named:
            parts = ", ".join(f"CASE WHEN instr(completion, '\"{key}\"') THEN 1 END, "
                              f"CASE WHEN instr(completion, '\"{key}\"') THEN "
                              f"json_extract(completion, '$.{key}') END" for key in _TOKEN_PARTS)
            self.parts = cursor.execute(
                f"SELECT {parts} FROM samples WHERE run_id = ? AND ({named}) "
                "ORDER BY item_id, epoch", (run_id,)).fetchall()

    def percentile(self, which: str, q: int) -> float | None:
        """``stats.percentile`` of every latency (``latency``) or of the answers' latencies
        (``answer_latency``: ``results.answer_latencies``), from the two values it needs."""
        figures = self.figures[which]
        n = figures["n"]
        if not n:
            return None
        position = (n - 1) * q / 100
        lower, upper = figures["points"][str(q)]
        return lower + (upper - lower) * (position - math.floor(position))

    def token_parts(self) -> dict[str, int]:
        """``report.token_parts``."""
        totals = dict.fromkeys(_TOKEN_PARTS, 0)
        for row in self.parts:
            for index, key in enumerate(_TOKEN_PARTS):
                if row[2 * index]:
                    totals[key] += row[2 * index + 1] or 0
        return totals

    def cost(self, price: Any) -> tuple[float | None, int]:
        """``pick.run_cost`` at ``price``: an answer the run paid for counts its stored cost;
        the others (read here, in the same order) their tokens at the price."""
        costs_kept = self.figures["costs"]
        if not costs_kept["unpaid_n"]:  # every answer counted by its stored cost
            return ((costs_kept["paid"], costs_kept["paid_n"]) if costs_kept["paid_n"]
                    else (None, 0))
        if price is None and self.conn.execute(
                "SELECT 1 FROM samples WHERE run_id = ? AND cost_usd = 0 AND ((completion IS NOT "
                "NULL AND completion != '') OR input_tokens != 0) LIMIT 1",
                (self.run_id,)).fetchone() is not None:
            return None, 0  # an answer without a cost and no price to cost it (as the loop)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            "SELECT cost_usd, cached, latency_s, (completion IS NOT NULL AND completion != '') "
            "OR input_tokens != 0 FROM samples WHERE run_id = ? ORDER BY item_id, epoch",
            (self.run_id,)).fetchall()
        others = iter(self.conn.execute(
            "SELECT completion IS NOT NULL AND completion != '', input_tokens, output_tokens, "
            "CASE WHEN instr(completion, '\"cached_input_tokens\"') "
            "OR instr(completion, '\"cache_write_tokens\"') THEN "
            "json_extract(completion, '$.cached_input_tokens') END, "
            "CASE WHEN instr(completion, '\"cached_input_tokens\"') "
            "OR instr(completion, '\"cache_write_tokens\"') THEN "
            "json_extract(completion, '$.cache_write_tokens') END "
            "FROM samples WHERE run_id = ? AND NOT (cost_usd != 0 AND cached = 0) "
            "AND ((completion IS NOT NULL AND completion != '') OR input_tokens != 0) "
            "ORDER BY item_id, epoch", (self.run_id,)).fetchall())
        costs: list[float] = []
        for cost_usd, cached, _latency, counted in rows:
            if not counted:  # neither answered nor any token sent
                continue
            if cost_usd and not cached:
                costs.append(cost_usd)
                continue
            _answered, input_tokens, output_tokens, cached_input, cache_write = next(others)
            if price is not None:
                costs.append(price.cost(input_tokens, output_tokens,
                                        cached_input_tokens=cached_input or 0,
                                        cache_write_tokens=cache_write or 0))
            elif cost_usd:
                costs.append(cost_usd)
            else:
                return None, 0
        return (sum(costs), len(costs)) if costs else (None, 0)


def _problems(store: Store, cells: RunCells) -> dict[str, int]:
    """``report._problems``: the reasons of the failed and unscored answers, read for those
    answers only."""
    run = cells.run
    primary = run.config.get("primary")
    expected = run.config.get("grader_names")
    expected = [str(n) for n in expected] if isinstance(expected, list) else None
    grades: dict[tuple[str, int], dict[str, Score]] = defaultdict(dict)
    for item_id, epoch, grader, value, passed, status, explanation in store.conn.execute(
            "SELECT g.item_id, g.epoch, g.grader, g.value, g.passed, g.status, g.explanation "
            f"FROM {cells.tables.facts} f JOIN scores g ON g.run_id = f.run_id "
            "AND g.item_id = f.item_id AND g.epoch = f.epoch WHERE f.run_id = ? "
            "AND f.st = 'unscored' ORDER BY g.item_id, g.epoch, g.grader", (run.id,)):
        grades[(item_id, epoch)][grader] = Score(
            value=value, passed=None if passed is None else bool(passed), status=status,
            explanation=explanation or "", name=grader)
    def reasons() -> Iterator[tuple[str, str]]:
        for item_id, epoch, st, error in store.conn.execute(
                f"SELECT f.item_id, f.epoch, f.st, s.error FROM {cells.tables.facts} f "
                "JOIN samples s ON s.run_id = f.run_id AND s.item_id = f.item_id "
                "AND s.epoch = f.epoch WHERE f.run_id = ? AND f.st IN ('error', 'unscored') "
                "ORDER BY f.item_id, f.epoch", (run.id,)):
            if st == "error":
                yield st, error or "request failed"
                continue
            status, _value, _passed, why = combine(grades.get((item_id, epoch), {}), primary,
                                                   expected)
            # graded in full yet unscored: a steered answer (the only such case; facts.py)
            yield st, STEERED if status == "scored" else why

    return rank_problems(reasons())


def _pass_k(store: Store, cells: RunCells) -> dict[str, Any]:
    """``report._pass_k`` from each item's answers and passes."""
    epochs = cells.run.epochs
    counts = store.conn.execute(f"SELECT answers, npass FROM {cells.tables.cells} "
                                "WHERE run_id = ? ORDER BY position", (cells.run.id,)).fetchall()
    return pass_k_figures(counts, epochs)


def _reliability(store: Store, cells: RunCells) -> dict[str, Any] | None:
    """``report.reliability_at_k``, reading only the items that name a seed."""
    from posttrain.analysis.report import cousin_groups, reliability_figures

    with_provenance = [Item(id=r[0], data=orjson.loads(r[1]), tags=[]) for r in store.conn.execute(
        "SELECT item_id, data FROM run_items WHERE run_id = ? AND instr(data, '\"provenance\"') "
        "ORDER BY position", (cells.run.id,))]
    if not with_provenance:
        return None
    groups = cousin_groups(with_provenance, ids=set(cells.ids))
    if not groups:
        return None
    return reliability_figures(groups, cells.item_pass_rates())


def _ci(values: list[float]) -> dict[str, Any]:
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def summaries(store: Store, run: RunInfo) -> dict[str, dict[str, Any]]:
    """Every kept kind of summary of ``run`` (``stored.KINDS``), from its facts."""
    cells = RunCells(store, run)
    run = cells.run
    answers = _Answers(store, cells)
    statuses = answers.figures["statuses"]
    item_scores = cells.item_scores()
    values = list(item_scores.values())
    headline = mean_interval(values)
    scored_only = mean_interval(list(cells.item_scores(scored_only=True).values()))
    scored = statuses.get("scored", 0)
    expected = max(len(cells.ids) * max(1, run.epochs), answers.count)
    tags = cells.tags()
    by_tag_values: dict[Any, list[float]] = defaultdict(list)
    for item_id, value in item_scores.items():
        for tag in tags.get(item_id, []):
            by_tag_values[tag].append(value)
    scored_by = cells.component_scored()
    epochs = max(1, run.epochs)
    components = {}
    for name, per_item in sorted(cells.component_scores().items()):
        entry = _interval_entry(list(per_item.values()))
        entry["scored"] = scored_by.get(name, 0)
        entry["coverage"] = _round(entry["scored"] / (len(per_item) * epochs) if per_item
                                   else None)
        components[name] = entry
    kept = answers.figures
    judge_cost, judge_requests = kept["judge_cost"], kept["judge_requests"]
    grade_retries, passes, verdicts = kept["grade_retries"], kept["passes"], kept["verdicts"]
    pass_rate = passes / expected if expected and verdicts else None
    report: dict[str, Any] = {
        "run_id": run.id, "eval": run.eval_name, "model": run.model, "variant": run.variant,
        "n": expected,
        "answered": answers.answered,
        "scored": scored,
        "coverage": _round(scored / expected if expected else None),
        "errors": statuses.get("error", 0),
        "unscored": statuses.get("unscored", 0),
        "missing": max(0, expected - answers.count),
        "score": _round(headline.estimate), "ci_low": _round(headline.low),
        "ci_high": _round(headline.high), "ci_method": headline.method,
        "score_scored_only": _round(scored_only.estimate),
        "score_scored_only_ci": [_round(scored_only.low), _round(scored_only.high)],
        "pass_rate": _round(pass_rate),
        "by_tag": {tag: _interval_entry(by_tag_values[tag]) for tag in sorted(by_tag_values)},
        "components": components,
        "requests": answers.requests + judge_requests,
        "retries": answers.retries + grade_retries,
        "cached": answers.cached,
        "cost_usd": round(answers.figures["costs"]["uncached"] + judge_cost, 6),
        "judge_cost_usd": round(judge_cost, 6),
        "judge_requests": judge_requests,
        "input_tokens": answers.input_tokens,
        "output_tokens": answers.output_tokens,
        **answers.token_parts(),
        "latency_p50_s": _round(answers.percentile("answer_latency", 50)),
        "latency_p95_s": _round(answers.percentile("answer_latency", 95)),
        "epochs": run.epochs,
        "status": run.status,
    }
    report.update(run_config_fields(run, headline.low))
    if run.epochs > 1:
        report.update(_pass_k(store, cells))
    reliability = _reliability(store, cells)
    if reliability is not None:
        report["reliability_at_k"] = reliability
    report["problems"] = (_problems(store, cells) if report["errors"] or report["unscored"]
                          else {})
    return {"report": report, **_others(store, cells, answers, item_scores, scored, expected,
                                        pass_rate, tags, statuses)}


def _others(store: Store, cells: RunCells, answers: _Answers, item_scores: dict[str, float],
            scored: int, expected: int, pass_rate: float | None,
            tags: dict[str, list[Any]], statuses: dict[str, int]) -> dict[str, dict[str, Any]]:
    """``stored.card``, ``stored.point`` and ``pick.run_figures``."""
    from posttrain.analysis.pick import _mean, _price_for
    from posttrain.analysis.selection import item_groups

    run = cells.run
    values = list(item_scores.values())
    mean, low, high = mean_ci(values)
    by_tag: dict[Any, list[float]] = defaultdict(list)
    for item_id in cells.ids:
        if item_id in item_scores:
            for tag in tags.get(item_id, []):
                by_tag[tag].append(item_scores[item_id])
    graders = sorted(r[0] for r in store.conn.execute(
        "SELECT DISTINCT g.grader FROM scores g WHERE g.run_id = ?", (run.id,)))
    card = {
        "score": {"mean": mean, "low": low, "high": high, "n": len(values)},
        "pass_rate": pass_rate, "coverage": {"scored": scored, "expected": expected},
        "samples": answers.count, "items": len(cells.ids), "statuses": statuses,
        "tags": {tag: _ci(v) for tag, v in sorted(by_tag.items())},
        "graders": graders, "cost_usd": answers.figures["costs"]["all"],
        "latency": {"p50": answers.percentile("latency", 50),
                    "p95": answers.percentile("latency", 95)},
    }
    total, counted = answers.cost(_price_for(cells, {}))  # type: ignore[arg-type]
    cost_per_item = total / counted if total is not None and counted else None
    latency_p95 = answers.percentile("answer_latency", 95)
    point = {"score": mean, "low": low, "high": high, "cost_per_sample": cost_per_item,
             "latency_p95": latency_p95}
    # every item of the run has a score here: each group's mean (exact, math.fsum, so in any
    # order) and size without looking items up
    groups: dict[str, list[Any]] = {"(all items)": [_mean(values), len(values)]}
    for name, ids in item_groups([cells]).items():
        groups[name] = [_mean([item_scores[i] for i in ids]), len(ids)]
    pick = {
        "score": mean, "ci_low": low, "ci_high": high, "n": len(values),
        "coverage": scored / expected if expected else None,
        "errors": statuses.get("error", 0), "unscored": statuses.get("unscored", 0),
        "cost_usd_per_item": cost_per_item, "latency_p95_s": latency_p95,
        "groups": groups,
        "items_key": orjson.loads(cells.packed("items_key")),
    }
    return {"card": card, "point": point, "pick": pick}

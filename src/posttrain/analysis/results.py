"""A stored run read back as per-sample results: the one view every report starts from."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from posttrain.runner.facts import STEERED, steered
from posttrain.runner.store import RunInfo, Store
from posttrain.types import Item, Score


class SampleResult:
    """One answer of one run: its request outcome, its grades and its combined score.

    The completion record is parsed from its stored JSON on first use (``completion_json``):
    most reports read only the numbers, and parsing every answer of a 100,000-sample run
    was a large share of their time.
    """

    __slots__ = ("item_id", "epoch", "status", "value", "passed", "reason", "grades",
                 "_completion", "_completion_json", "error", "attempts", "input_tokens",
                 "output_tokens", "cost_usd", "latency_s", "cached")

    def __init__(self, item_id: str, epoch: int, status: str, value: float | None,
                 passed: bool | None, reason: str, grades: dict[str, Score],
                 completion: dict[str, Any] | None, error: str | None, attempts: int,
                 input_tokens: int, output_tokens: int, cost_usd: float,
                 latency_s: float | None, cached: bool, *,
                 completion_json: str | None = None) -> None:
        self.item_id = item_id
        self.epoch = epoch
        self.status = status  # scored / unscored / error (request failed or a grader failed)
        self.value = value  # combined score when scored
        self.passed = passed
        self.reason = reason
        self.grades = grades
        self._completion = completion
        self._completion_json = completion_json if completion is None else None
        self.error = error
        self.attempts = attempts
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost_usd = cost_usd
        self.latency_s = latency_s
        self.cached = cached

    @property
    def completion(self) -> dict[str, Any] | None:
        if self._completion is None and self._completion_json:
            self._completion = orjson.loads(self._completion_json)
            self._completion_json = None
        return self._completion

    @completion.setter
    def completion(self, value: dict[str, Any] | None) -> None:
        self._completion, self._completion_json = value, None

    @property
    def answered(self) -> bool:
        """Whether the sample has a completion (without parsing it)."""
        return self._completion is not None or bool(self._completion_json)

    def completion_mentions(self, key: str) -> bool:
        """Whether the completion record may hold ``key`` (False: it certainly does not),
        read from the stored JSON without parsing it when it is not parsed yet."""
        if self._completion is not None:
            return key in self._completion
        return bool(self._completion_json) and f'"{key}"' in (self._completion_json or "")

    def __repr__(self) -> str:
        return (f"SampleResult(item_id={self.item_id!r}, epoch={self.epoch}, "
                f"status={self.status!r}, value={self.value!r})")

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def output_text(self) -> str:
        return (self.completion or {}).get("text") or ""


@dataclass
class RunResults:
    run: RunInfo
    items: list[Item]
    samples: list[SampleResult] = field(default_factory=list)
    #: (item, epoch, grader, old value, old passed, whether the grader's spec had changed: 1,
    #: 0, or None not known, whether the item had) of grades replaced by re-grading, oldest
    #: first
    regraded: list[tuple[str, int, str, float | None, bool | None, int | None, bool]] = field(
        default_factory=list)
    #: whether a re-grade replaced some of the run's grades (of the items read) without
    #: recording whether their grader changed (an older version's): the specs in its config
    #: may not be its grades
    regraded_unrecorded: bool = False
    _by_item: tuple[list[SampleResult], int, dict[str, list[SampleResult]]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @property
    def items_by_id(self) -> dict[str, Item]:
        return {item.id: item for item in self.items}

    def by_item(self) -> dict[str, list[SampleResult]]:
        """Item -> its samples. Built once per list of samples (reports ask for it several
        times); a caller that replaces or extends ``samples`` gets a fresh grouping."""
        cached = self._by_item
        if cached is not None and cached[0] is self.samples and cached[1] == len(self.samples):
            return cached[2]
        grouped: dict[str, list[SampleResult]] = defaultdict(list)
        for sample in self.samples:
            grouped[sample.item_id].append(sample)
        self._by_item = (self.samples, len(self.samples), grouped)
        return grouped

    def item_scores(self, *, scored_only: bool = False) -> dict[str, float]:
        """Per item, its mean score over the run's epochs: the **headline** view.

        Every item of the run is present. A sample that is not scored (the request failed
        after its retries, a grader could not grade it) and an epoch not yet answered count as
        0: a run never looks better because some of its samples failed. With ``scored_only``
        the mean is over scored samples only and items with none are absent (the secondary
        figure, shown beside coverage).
        """
        by_item = self.by_item()
        epochs = max(1, self.run.epochs)
        scores: dict[str, float] = {}
        if scored_only:
            for item_id, samples in by_item.items():
                values = [s.value for s in samples if s.status == "scored" and s.value is not None]
                if values:
                    scores[item_id] = sum(values) / len(values)
            return scores
        for item in self.items:
            samples = by_item.get(item.id, [])
            total = sum(s.value for s in samples if s.status == "scored" and s.value is not None)
            scores[item.id] = total / max(epochs, len(samples))
        return scores

    def coverage(self) -> tuple[int, int]:
        """(scored samples, expected samples = items x epochs)."""
        scored = sum(1 for s in self.samples if s.status == "scored")
        return scored, max(len(self.items) * max(1, self.run.epochs), len(self.samples))

    def component_scores(self) -> dict[str, dict[str, float]]:
        """Per component (grader name, and ``grader.sub`` for sub-scores): item -> mean value.

        Headline semantics as ``item_scores``: a grader's component covers every item, with 0
        for a sample that grader did not score (or that failed before grading). A sub-score
        covers the items where it was reported (an IFEval instruction id exists only on the
        items that carry it); on those items a sample without it counts 0.
        """
        epochs = max(1, self.run.epochs)
        graders = self.grader_names()
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        by_item = self.by_item()
        for item in self.items:
            samples = by_item.get(item.id, [])
            for name in graders:
                sums[name][item.id] += 0.0
            for sample in samples:
                for name, grade in sample.grades.items():
                    if grade.status == "scored" and grade.value is not None:
                        sums[name][item.id] += grade.value
                        for sub, value in grade.sub_scores.items():
                            if isinstance(value, (int, float)):
                                sums[f"{name}.{sub}"][item.id] += float(value)
                    else:
                        sums[name][item.id] += 0.0
        return {component: {item: total / max(epochs, len(by_item.get(item, [])))
                            for item, total in per_item.items()}
                for component, per_item in sums.items()}

    def component_scored(self) -> dict[str, int]:
        """Per component, how many samples it scored (its coverage beside its headline)."""
        counts: dict[str, int] = defaultdict(int)
        for sample in self.samples:
            for name, grade in sample.grades.items():
                if grade.status == "scored" and grade.value is not None:
                    counts[name] += 1
                    for sub, value in grade.sub_scores.items():
                        if isinstance(value, (int, float)):
                            counts[f"{name}.{sub}"] += 1
        return dict(counts)

    def grader_names(self) -> list[str]:
        """The graders every sample of this run should have (recorded with the run)."""
        names = self.run.config.get("grader_names")
        if isinstance(names, list):
            return [str(n) for n in names]
        seen: dict[str, None] = {}
        for sample in self.samples:
            for name in sample.grades:
                seen.setdefault(name, None)
        return list(seen)


def answer_latencies(results: RunResults) -> list[float]:
    """Seconds per answer: a fresh request's own, a cached answer's original request's (an
    answer cached before latencies were recorded has none and is left out)."""
    return [s.latency_s for s in results.samples
            if s.latency_s is not None and (s.latency_s > 0 or not s.cached)]


def combine(grades: dict[str, Score], primary: str | None,
            expected: list[str] | None = None) -> tuple[str, float | None, bool | None, str]:
    """The sample's status, score, pass and reason from its grader scores.

    ``primary`` names the grader whose value is the score; otherwise the score is the mean of
    every grader in ``expected`` (default: those present). A grader that is missing, could not
    grade, or failed makes the sample *unscored* with the reason: it is never replaced by the
    mean of the others, and never a silent 0 (the headline still counts it as 0, see
    ``RunResults.item_scores``). Sample status ``error`` is kept for requests that failed.
    """
    names = [primary] if primary is not None else (expected or list(grades))
    if not names:
        return "unscored", None, None, "no grades"
    for name in names:
        grade = grades.get(name)
        if grade is None:
            return "unscored", None, None, f"{name}: no grade (not graded yet, or lost)"
        if grade.status == "error":
            return "unscored", None, None, f"{name}: grader failed: {grade.explanation}"
        if grade.status != "scored" or grade.value is None:
            return "unscored", None, None, f"{name}: {grade.explanation}"
    if primary is not None:
        grade = grades[primary]
        return "scored", grade.value, grade.passed, ""
    values = [grades[name].value for name in names]
    value = sum(v for v in values if v is not None) / len(values)
    passed = all(bool(grades[name].passed) for name in names)
    return "scored", value, passed, ""


#: distinct grade sets shared between answers in one read (beyond it, each answer has its own)
_SHARED_GRADE_SETS = 10_000
_SCORE_COLUMNS = ("item_id, epoch, grader, value, passed, status, explanation, sub_scores, "
                  "cost_usd, requests, confinement, retries")
_SAMPLE_COLUMNS = ("item_id, epoch, status, completion, error, attempts, input_tokens, "
                   "output_tokens, cost_usd, latency_s, cached")


def reusable_results(store: Store, run_key: str) -> RunResults | None:
    """The newest finished run with this identity (``posttrain.runner.executor.run_key``) when
    none of its requests failed, else None: what a workflow that runs an eval many times
    (optimize, grow) may take instead of running it again."""
    finished = store.latest_finished_run(run_key)
    if finished is None:
        return None
    results = load_results(store, finished)
    return None if any(s.status == "error" for s in results.samples) else results


def load_results(store: Store, run: RunInfo | str, *, only: tuple[str, int] | None = None,
                 item_range: tuple[str, str] | None = None,
                 item_memo: dict[tuple[str, str, str], Item] | None = None) -> RunResults:
    """The run's samples with their grades and combined scores (``only``: one item and epoch;
    ``item_range``: every epoch of the items from the first id to the last, inclusive; each
    combined by the same code without reading the run's other answers, in a few queries).

    Rows are read as plain tuples in primary-key order (no sort), ``sub_scores`` of ``{}`` is
    not parsed, and completions are parsed only when a report reads them.
    """
    if isinstance(run, str):
        run = store.resolve_run(run)
    where, params = "run_id = ?", (run.id,)
    if only is not None:
        where, params = "run_id = ? AND item_id = ? AND epoch = ?", (run.id, *only)
        items = store.run_items(run.id, item_id=only[0])
    elif item_range is not None:
        where, params = "run_id = ? AND item_id BETWEEN ? AND ?", (run.id, *item_range)
        items = store.run_items(run.id, item_range=item_range)
    else:
        items = store.run_items(run.id, memo=item_memo)
    primary = run.config.get("primary")
    expected = run.config.get("grader_names")
    expected = [str(n) for n in expected] if isinstance(expected, list) else None
    # Answers whose grade rows are identical (the same graders, values, statuses, reasons) share
    # one grades dict and one combined result, read-only: a 100,000-sample run of a pass/fail
    # grader holds a handful of distinct grade sets, not 100,000 copies.
    shared: dict[tuple[Any, ...], tuple[dict[str, Score], tuple[str, float | None,
                                                                 bool | None, str]]] = {}
    graded: dict[tuple[str, int], tuple[dict[str, Score],
                                        tuple[str, float | None, bool | None, str]]] = {}
    loads = orjson.loads

    def settle(rows: list[tuple[Any, ...]]) -> tuple[dict[str, Score],
                                                     tuple[str, float | None, bool | None, str]]:
        key = tuple(rows)
        entry = shared.get(key)
        if entry is None:
            grades = {}
            for (grader, value, passed, status, explanation, sub_scores, cost_usd, requests,
                 confinement, retries) in rows:
                grades[grader] = Score(
                    value=value, passed=None if passed is None else bool(passed), status=status,
                    explanation=explanation or "",
                    sub_scores=loads(sub_scores) if sub_scores and sub_scores != "{}" else {},
                    name=grader, cost_usd=cost_usd or 0.0, requests=requests or 0,
                    confinement=confinement, retries=retries or 0)
            entry = (grades, combine(grades, primary, expected))
            if len(shared) < _SHARED_GRADE_SETS:
                shared[key] = entry
        return entry

    cursor = store.conn.cursor()
    cursor.row_factory = None
    current: tuple[str, int] | None = None
    rows: list[tuple[Any, ...]] = []
    for row in cursor.execute(
            f"SELECT {_SCORE_COLUMNS} FROM scores WHERE {where} "
            "ORDER BY item_id, epoch, grader", params):
        key = (row[0], row[1])
        if key != current:
            if current is not None:
                graded[current] = settle(rows)
            current, rows = key, []
        rows.append(row[2:])
    if current is not None:
        graded[current] = settle(rows)
    history = store.score_history(run.id, only=only, item_range=item_range)
    recorded = bool(history) and "grader_changed" in history[0].keys()  # noqa: SIM118
    results = RunResults(run=run, items=items, regraded=[
        (row["item_id"], row["epoch"], row["grader"], row["value"],
         None if row["passed"] is None else bool(row["passed"]),
         row["grader_changed"] if recorded else None, bool(row["item_changed"]))
        for row in history],
        regraded_unrecorded=any(not recorded or row["grader_changed"] is None
                                for row in history))
    append = results.samples.append
    ungraded = ({}, combine({}, primary, expected))
    for (item_id, epoch, status, completion, error, attempts, input_tokens, output_tokens,
         cost_usd, latency_s, cached) in cursor.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE {where} ORDER BY item_id, epoch",
            params):
        sample_grades, combined = graded.get((item_id, epoch), ungraded)
        if status == "error":
            status, value, passed, reason = "error", None, None, error or "request failed"
        elif completion is not None and '"steering"' in completion and steered(completion):
            status, value, passed, reason = "unscored", None, None, STEERED
        else:
            status, value, passed, reason = combined
        append(SampleResult(
            item_id, epoch, status, value, passed, reason,
            sample_grades if sample_grades else {}, None, error, attempts,
            input_tokens, output_tokens, cost_usd, latency_s, bool(cached),
            completion_json=completion))
    return results

"""Eval health across every stored run of an eval: saturation and suspect items.

Suspect items, each with a ``reason`` code and the ``evidence`` behind it:

- ``strong_models_agree_against_reference``: models that are *strong on this eval* (headline
  score at least ``strong_floor``; at least two of them) fail the item, and more than half of
  them (more than ``fail_share``) give the same (or a near-identical) answer: the reference is
  likely wrong or the question ambiguous. The agreement is shown (``k of n strong models``).
  Weak runs never make an item suspect, however many agree: a shared misconception of weak
  models says nothing about the reference;
- ``inverted_difficulty``: the strong models fail an item that the weaker models (at least two)
  pass 75% of the time or more;
- ``judges_disagree``: several judge graders (``score_model`` / ``label_model``, or judge
  sub-scores of a ``multi`` grader) disagree on the same answers;
- ``grade_flips_same_output``: an identical answer got different grades (epochs or another
  run) from the same graders (runs graded with another spec of a grader are not compared: an
  edited grader grades differently by design): a nondeterministic or fragile grader;
- ``grade_flips_on_regrade``: re-grading (``posttrain regrade``) changed the grade of an
  answer whose item and grader spec were both unchanged. Grades changed by an edited item or
  an edited grader are not suspect: they are counted apart, in ``regrade_changes``;
- ``epochs_disagree``: the same model's epochs pass the item only 25-75% of the time, in at
  least half of the multi-epoch runs (a coin-flip item: ambiguous, or a fragile grader).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from posttrain.analysis.results import RunResults
from posttrain.analysis.selection import (
    JUDGE_TYPES,
    answer_text,
    item_pass_rates,
    normalize_answer,
    record_text,
    reference_of,
    run_label,
    sample_passed,
    truncate,
    unique_labels,
)
from posttrain.analysis.stats import mean_ci

REASONS = {
    "strong_models_agree_against_reference": "strong models fail it with the same answer",
    "inverted_difficulty": "strong models fail it while weaker models pass it",
    "judges_disagree": "judge graders disagree on the same answers",
    "grade_flips_same_output": "an identical answer got different grades",
    "grade_flips_on_regrade": ("re-grading the same answer of an unchanged item with an "
                               "unchanged grader changed its grade"),
    "epochs_disagree": "the same model's epochs pass it about half the time",
}


def judge_components(grader_specs: Sequence[dict[str, Any]]) -> list[str]:
    """Judge component names from grader specs: top-level judges and judges inside ``multi``."""
    names: list[str] = []
    for spec in grader_specs:
        kind = spec.get("type")
        name = spec.get("name") or kind
        if kind in JUDGE_TYPES:
            names.append(str(name))
        elif kind == "multi" and isinstance(spec.get("graders"), dict):
            for sub, sub_spec in spec["graders"].items():
                if isinstance(sub_spec, dict) and sub_spec.get("type") in JUDGE_TYPES:
                    names.append(f"{name}.{sub}")
    return names


def _cluster(answers: Sequence[str], threshold: float) -> tuple[str, int]:
    """The largest group of similar answers: (representative, size)."""
    normalized = [normalize_answer(a) for a in answers]
    try:
        from rapidfuzz import fuzz

        def similar(x: str, y: str) -> bool:
            return x == y or fuzz.ratio(x, y) >= threshold * 100
    except ImportError:  # pragma: no cover - rapidfuzz is a core dependency
        def similar(x: str, y: str) -> bool:
            return x == y
    best, best_size = "", 0
    for candidate, original in zip(normalized, answers, strict=True):
        size = sum(1 for other in normalized if similar(candidate, other))
        if size > best_size:
            best, best_size = original, size
    return best, best_size


def _majority_answers(result: RunResults | Any, item_ids: Sequence[str]) -> dict[str, str | None]:
    """Item -> the run's most common answer to it (None: it has no answer), for these items."""
    if isinstance(result, RunResults):
        by_item = result.by_item()
        return {i: _majority_answer(by_item, i) for i in item_ids}
    return {item_id: _majority_of([record_text(record) for _e, answered, record, _error
                                   in answers if answered])
            for item_id, answers in result.answers_of(item_ids).items()}


def _majority_answer(by_item: dict[str, list[Any]], item_id: str) -> str | None:
    return _majority_of([answer_text(s) for s in by_item.get(item_id, []) if s.answered])


def _majority_of(answers: list[str]) -> str | None:
    if not answers:
        return None
    counts = Counter(normalize_answer(a) for a in answers)
    top = counts.most_common(1)[0][0]
    return next(a for a in answers if normalize_answer(a) == top)


#: what to do with a saturated eval (``EVAL`` is replaced by the eval's file where known)
GROW_HINT = ("posttrain grow EVAL --generator SPEC --solvers SPEC,SPEC -o DIR  # verified "
             "paraphrases, harder variants, new items for thin tags; then run the best model "
             "on DIR/eval.yaml")


def saturation(results: Sequence[RunResults | Any], labels: Sequence[str]) -> dict[str, Any]:
    rows = []
    for label, result in zip(labels, results, strict=True):
        mean, low, high = mean_ci(list(result.item_scores().values()))
        rows.append({"label": label, "run": result.run.id, "score": mean, "ci_low": low,
                     "ci_high": high, "n": len(result.item_scores())})
    rows.sort(key=lambda r: -(r["score"] if r["score"] is not None else -1))
    rates = [item_pass_rates(r) for r in results]
    common = set.intersection(*(set(r) for r in rates)) if rates else set()
    all_pass = [i for i in common if all(r[i] >= 0.5 for r in rates)]
    all_fail = [i for i in common if all(r[i] < 0.5 for r in rates)]
    # the best is a run of the whole eval: a run of part of it (``--limit``) scores other items
    widest = max((row["n"] for row in rows), default=0)
    for row in rows:
        row["partial"] = row["n"] < widest
    best = next((row for row in rows if not row["partial"] and row["score"] is not None), None)
    n = len(common)
    out: dict[str, Any] = {
        "warnings": [f"{row['label']}: its run has {row['n']} of the {widest} items the other "
                     "runs have: not taken as the best" for row in rows if row["partial"]],
        "runs": rows, "best": best, "headroom": None if best is None else 1 - best["score"],
        "items": n,
        "all_pass_share": len(all_pass) / n if n else None,
        "all_fail_share": len(all_fail) / n if n else None,
        "discriminating_share": (n - len(all_pass) - len(all_fail)) / n if n else None,
        "all_pass": sorted(all_pass), "all_fail": sorted(all_fail),
    }
    if best is None:
        out["verdict"] = "no scored runs"
    elif best["ci_low"] is not None and best["ci_low"] >= 0.9:
        out["verdict"] = ("saturated: the best model clears 90% with its CI; little headroom "
                          "left: grow it with `posttrain grow`")
        out["next"] = GROW_HINT
    elif out["discriminating_share"] is not None and out["discriminating_share"] < 0.2:
        out["verdict"] = "weak: fewer than 20% of items tell the models apart"
    else:
        out["verdict"] = "healthy: headroom left and items that tell models apart"
    return out


STRONG_FLOOR = 0.6


def audit(results: Sequence[RunResults | Any], *,
          all_runs: Sequence[RunResults | Any] | None = None,
          judges: Sequence[str] = (), fail_share: float = 0.5, similarity: float = 0.85,
          judge_gap: float = 0.5, strong_floor: float = STRONG_FLOOR) -> dict[str, Any]:
    """Audit an eval. ``results``: one run per model (strong ones are those whose headline score
    is at least ``strong_floor``); ``all_runs``: every run (repeats included) for grade-flip
    checks (default: ``results``). ``fail_share``: more than this share of the strong models
    must fail an item with the same answer for its reference to be suspect."""
    labels = unique_labels(results)
    all_runs = list(all_runs) if all_runs is not None else list(results)
    report: dict[str, Any] = {
        "eval": results[0].run.eval_name if results else None,
        "runs": [{"label": label, "id": r.run.id} for label, r in zip(labels, results,
                                                                        strict=True)],
        "saturation": saturation(results, labels),
    }
    suspects: dict[tuple[str, str], dict[str, Any]] = {}
    grader_specs = next((r.run.config.get("graders") for r in all_runs
                         if r.run.config.get("graders")), None) or ()

    def add(item_id: str, reason: str, evidence: dict[str, Any]) -> None:
        suspects.setdefault((item_id, reason), {
            "item_id": item_id, "reason": reason, "why": REASONS[reason],
            "tags": [], "reference": None, "evidence": evidence,
        })

    report["strong"] = _strong_model_suspects(results, labels, add, fail_share=fail_share,
                                              similarity=similarity, strong_floor=strong_floor)
    _judge_suspects(answers_read(all_runs) if len(judges) >= 2 else all_runs, judges, add,
                    judge_gap=judge_gap)
    keys = [grading_key(r) for r in all_runs]
    if (all(isinstance(r, RunResults) for r in all_runs)
            or not _flip_suspects_sql(all_runs, add, keys)):
        _flip_suspects(answers_read(all_runs), add, keys)
    report["regrade_changes"] = (_regrade_flip_suspects(all_runs, add)
                                 if all(isinstance(r, RunResults) for r in all_runs)
                                 else _regrade_flip_suspects_sql(all_runs, add))
    items = _items(all_runs, sorted({item_id for item_id, _reason in suspects}))
    for (item_id, _reason), suspect in suspects.items():
        item = items.get(item_id)
        if item is not None:
            suspect["tags"] = item.tags
            suspect["reference"] = reference_of(item.data, grader_specs)
    order = list(REASONS)
    report["suspects"] = sorted(suspects.values(),
                                key=lambda s: (order.index(s["reason"]), s["item_id"]))
    report["judges"] = list(judges)
    counts = Counter(s["reason"] for s in report["suspects"])
    report["suspect_counts"] = {reason: counts.get(reason, 0) for reason in order}
    return report


def _strong_model_suspects(results: Sequence[RunResults | Any], labels: Sequence[str], add: Any, *,
                           fail_share: float, similarity: float,
                           strong_floor: float) -> dict[str, Any]:
    """Flag items whose reference the strong models agree against; returns who was strong."""
    scores = {i: sum(s.values()) / len(s) for i, s in
              ((i, r.item_scores()) for i, r in enumerate(results)) if s}
    strong = sorted((i for i, score in scores.items() if score >= strong_floor),
                    key=lambda i: -scores[i])
    weak = [i for i in scores if i not in strong]
    summary = {"floor": strong_floor, "models": [labels[i] for i in strong],
               "weak_models": [labels[i] for i in weak]}
    if len(strong) < 2:
        summary["note"] = (f"fewer than two models score {strong_floor:.0%} or more on this "
                           "eval: no reference is called suspect from model agreement")
        return summary
    rates = [item_pass_rates(r) for r in results]
    all_items = sorted(set().union(*(set(r) for r in rates)))
    need = max(2, math.floor(fail_share * len(strong)) + 1)  # more than fail_share of them
    candidates = []
    for item_id in all_items:
        strong_rates = {i: rates[i][item_id] for i in strong if item_id in rates[i]}
        failing = [i for i, rate in strong_rates.items() if rate < 0.5]
        if len(failing) >= need:
            candidates.append((item_id, strong_rates, failing))
    # the answers of the items most strong models fail, read for those items only
    majority = {i: _majority_answers(results[i], [c[0] for c in candidates if i in c[2]])
                for i in strong}
    for item_id, strong_rates, failing in candidates:
        answers = {i: majority[i].get(item_id) for i in failing}
        given = {i: a for i, a in answers.items() if a is not None}
        weak_rates = [rates[i][item_id] for i in weak if item_id in rates[i]]
        weak_pass = sum(weak_rates) / len(weak_rates) if weak_rates else None
        common, size = _cluster(list(given.values()), similarity) if given else ("", 0)
        evidence = {
            "strong_models": [labels[i] for i in strong],
            "strong_pass_rates": {labels[i]: strong_rates[i] for i in strong_rates},
            "weak_pass_rate": weak_pass,
            "answers": {labels[i]: truncate(a) for i, a in given.items()},
        }
        if size >= need:
            add(item_id, "strong_models_agree_against_reference",
                {**evidence, "common_answer": truncate(common), "agreeing": size,
                 "agreement": f"{size} of {len(strong)} strong models"})
        elif len(weak_rates) >= 2 and weak_pass is not None and weak_pass >= 0.75:
            add(item_id, "inverted_difficulty", evidence)
    return summary


def _judge_values(sample: Any, judges: Sequence[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in judges:
        grader, _, sub = name.partition(".")
        grade = sample.grades.get(grader)
        if grade is None or grade.status != "scored":
            continue
        if sub:
            value = grade.sub_scores.get(sub)
            if isinstance(value, (int, float)):
                values[name] = float(value)
        elif grade.passed is not None:
            values[name] = 1.0 if grade.passed else 0.0
        elif grade.value is not None:
            values[name] = float(grade.value)
    return values


def _judge_suspects(all_runs: Sequence[RunResults], judges: Sequence[str], add: Any, *,
                    judge_gap: float) -> None:
    if len(judges) < 2:
        return
    per_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in all_runs:
        for sample in result.samples:
            values = _judge_values(sample, judges)
            if len(values) >= 2:
                per_item[sample.item_id].append({
                    "run": run_label(result.run), "epoch": sample.epoch, "values": values,
                    "disagree": max(values.values()) - min(values.values()) >= judge_gap,
                    "output": truncate(answer_text(sample), 200)})
    for item_id, rows in sorted(per_item.items()):
        disagreeing = [r for r in rows if r["disagree"]]
        if disagreeing and len(disagreeing) >= len(rows) / 2:
            add(item_id, "judges_disagree", {
                "disagreeing_samples": len(disagreeing), "samples": len(rows),
                "examples": [{k: v for k, v in r.items() if k != "disagree"}
                             for r in disagreeing[:3]]})


def grading_key(result: RunResults | Any) -> str:
    """What the run's headline grade of an answer was given by (``grader_record.grading_key``):
    two runs' grades of an identical answer are compared only when their keys agree."""
    from posttrain.runner import grader_record

    run = result.run
    config = run.config or {}
    unrecorded = "graded_with" not in config and (
        result.regraded_unrecorded if isinstance(result, RunResults)
        else result.store.regraded_unrecorded(run.id))
    return grader_record.grading_key(
        grader_record.graded_with(config, regraded_unrecorded=unrecorded),
        config.get("grader_names") or [], config.get("primary"), run.id)


def _flip_suspects(all_runs: Sequence[RunResults], add: Any, keys: Sequence[str]) -> None:
    """``keys``: each run's :func:`grading_key` (an answer's grades are compared across the runs
    that share one)."""
    by_output: dict[tuple[str, str, str], list[tuple[str, int, float, bool | None]]] = \
        defaultdict(list)
    mixed_runs: dict[str, list[str]] = defaultdict(list)
    multi_epoch_runs: dict[str, int] = defaultdict(int)
    for result, key in zip(all_runs, keys, strict=True):
        label = run_label(result.run)
        for item_id, samples in result.by_item().items():
            verdicts = []
            for sample in samples:
                passed = sample_passed(sample)
                if passed is None or not sample.answered:
                    continue
                verdicts.append(passed)
                by_output[(item_id, answer_text(sample), key)].append(
                    (label, sample.epoch, float(sample.value or 0.0), passed))
            if len(verdicts) >= 2:
                multi_epoch_runs[item_id] += 1
                rate = sum(verdicts) / len(verdicts)
                if 0.25 <= rate <= 0.75:  # a coin flip, not a rare slip
                    mixed_runs[item_id].append(label)
    flipped: set[str] = set()
    for (item_id, output, _key), grades in sorted(by_output.items()):
        if item_id in flipped or len(grades) < 2:
            continue
        values = {round(g[2], 6) for g in grades}
        verdicts = {g[3] for g in grades}
        if len(values) > 1 or len(verdicts) > 1:
            flipped.add(item_id)
            add(item_id, "grade_flips_same_output", {
                "output": truncate(output, 200),
                "grades": [{"run": g[0], "epoch": g[1], "value": g[2], "passed": g[3]}
                           for g in grades[:8]]})
    for item_id, labels in sorted(mixed_runs.items()):
        if item_id in flipped:
            continue
        if len(labels) >= max(1, multi_epoch_runs[item_id] / 2):
            add(item_id, "epochs_disagree", {"runs": sorted(set(labels)),
                                             "multi_epoch_runs": multi_epoch_runs[item_id]})


def answers_read(runs: Sequence[RunResults | Any]) -> list[RunResults]:
    """The runs as ``RunResults`` (every answer read), for the checks that need each answer."""
    from posttrain.analysis.results import load_results

    out = [r if isinstance(r, RunResults) else None for r in runs]
    items: dict[tuple[str, str, str], Any] = {}
    return [r if r is not None else load_results(cells.store, cells.run, item_memo=items)
            for r, cells in zip(out, runs, strict=True)]


def _items(runs: Sequence[RunResults | Any], ids: Sequence[str]) -> dict[str, Any]:
    """These items, each as the first run that holds it stores it."""
    found: dict[str, Any] = {}
    for result in runs:
        wanted = [i for i in ids if i not in found]
        if not wanted:
            break
        if isinstance(result, RunResults):
            by_id = result.items_by_id
            found.update((i, by_id[i]) for i in wanted if i in by_id)
        else:
            found.update(result.items_of(wanted))
    return found


def _flip_suspects_sql(all_runs: Sequence[Any], add: Any, keys: Sequence[str]) -> bool:
    """``_flip_suspects`` on the kept facts (``runner.facts``): SQLite groups every graded
    answer by its runs' grading key (``keys``), its item and a digest of its text and keeps the
    groups whose grades differ; only the answers of those items are read, and grouped and
    checked by their text as before. False (nothing done) unless every run is read from its
    facts."""
    from posttrain.analysis.cells import RunCells

    if not all(isinstance(r, RunCells) for r in all_runs):
        return False
    conn = all_runs[0].store.conn
    groups = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    parts, params = [], []
    for index, result in enumerate(all_runs):
        parts.append(
            f"SELECT {index} AS k, {groups[keys[index]]} AS g, item_id, epoch, text_key AS t, v, "
            f"COALESCE(passed != 0, v >= 0.5) AS p FROM {result.tables.facts} "
            "WHERE run_id = ? AND answered AND st = 'scored' AND v IS NOT NULL")
        params.append(result.run.id)
    answers = " UNION ALL ".join(parts)
    by = "item_id, t" if len(groups) == 1 else "g, item_id, t"  # runs graded alike: one group
    items = [r[0] for r in conn.execute(
        f"SELECT DISTINCT item_id FROM ({answers}) GROUP BY {by} HAVING COUNT(*) >= 2 "
        "AND (MIN(v) != MAX(v) OR MIN(p) != MAX(p)) ORDER BY item_id", params)]
    by_output: dict[tuple[str, str, str], list[tuple[int, int, float, bool]]] = \
        defaultdict(list)
    for start in range(0, len(items), 500):
        chunk = items[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for k, result in enumerate(all_runs):
            for item_id, epoch, completion, value, passed in conn.execute(
                    "SELECT f.item_id, f.epoch, s.completion, f.v, "
                    f"COALESCE(f.passed != 0, f.v >= 0.5) FROM {result.tables.facts} f "
                    "JOIN samples s ON s.run_id = f.run_id AND s.item_id = f.item_id "
                    "AND s.epoch = f.epoch WHERE f.run_id = ? AND f.answered AND f.st = 'scored'"
                    f" AND f.v IS NOT NULL AND f.item_id IN ({marks}) ORDER BY f.item_id, "
                    "f.epoch", (result.run.id, *chunk)):
                text = record_text(orjson.loads(completion))
                by_output[(item_id, text, keys[k])].append((k, epoch, float(value), bool(passed)))
    labels = [run_label(r.run) for r in all_runs]
    flipped: set[str] = set()
    for (item_id, output, _key), grades in sorted(by_output.items()):
        if item_id in flipped or len(grades) < 2:
            continue
        if len({round(g[2], 6) for g in grades}) > 1 or len({g[3] for g in grades}) > 1:
            flipped.add(item_id)
            add(item_id, "grade_flips_same_output", {
                "output": truncate(output, 200),
                "grades": [{"run": labels[g[0]], "epoch": g[1], "value": g[2], "passed": g[3]}
                           for g in grades[:8]]})
    # epochs that disagree: an item with two or more graded answers in a run
    mixed_runs: dict[str, list[str]] = defaultdict(list)
    multi_epoch_runs: dict[str, int] = defaultdict(int)
    for k, item_id, count, passes in conn.execute(
            f"SELECT k, item_id, COUNT(*), SUM(p) FROM ({answers}) GROUP BY k, item_id "
            "HAVING COUNT(*) >= 2 ORDER BY k, item_id", params):
        multi_epoch_runs[item_id] += 1
        if 0.25 <= passes / count <= 0.75:
            mixed_runs[item_id].append(labels[k])
    for item_id, run_labels in sorted(mixed_runs.items()):
        if item_id in flipped:
            continue
        if len(run_labels) >= max(1, multi_epoch_runs[item_id] / 2):
            add(item_id, "epochs_disagree", {"runs": sorted(set(run_labels)),
                                             "multi_epoch_runs": multi_epoch_runs[item_id]})
    return True


#: why a re-grade changed grades that ``grade_flips_on_regrade`` does not count (history rows'
#: ``grader_changed``: 1 the grader's spec was edited, 2 the run's imported grades were graded
#: here (``grader_record.IMPORTED``; stores before it wrote 1 for them too); NULL not recorded)
REGRADE_CAUSES = {1: "grader edited", None: "grader spec not recorded",
                  2: "imported grades (OpenAI's grader) graded here"}


def _regrade_flip_suspects_sql(all_runs: Sequence[Any], add: Any) -> list[dict[str, Any]]:
    """``_regrade_flip_suspects`` from the grade history and the grades now, in SQL."""
    changes: list[tuple[Any, ...]] = []
    for result in all_runs:
        store = result.store
        flag = "grader_changed" if store.history_records_grader() else "NULL"
        # each old grade with the grade that replaced it: the next one kept, or the one now
        changes.append((result, store.conn.execute(
            "SELECT h.item_id, h.epoch, h.grader, h.value, h.passed, "
            "CASE WHEN h.later IS NULL THEN g.value ELSE h.next_value END, "
            "CASE WHEN h.later IS NULL THEN g.passed ELSE h.next_passed END, h.flag "
            f"FROM (SELECT item_id, epoch, grader, value, passed, item_changed, {flag} AS flag, "
            "replaced, rowid AS k, LEAD(rowid) OVER w AS later, LEAD(value) OVER w AS next_value,"
            " LEAD(passed) OVER w AS next_passed FROM score_history WHERE run_id = ? "
            "WINDOW w AS (PARTITION BY item_id, epoch, grader ORDER BY replaced, rowid)) h "
            "JOIN scores g ON g.run_id = ? AND g.item_id = h.item_id AND g.epoch = h.epoch "
            "AND g.grader = h.grader JOIN samples s ON s.run_id = ? AND s.item_id = h.item_id "
            "AND s.epoch = h.epoch WHERE NOT h.item_changed ORDER BY h.replaced, h.k",
            (result.run.id,) * 3).fetchall()))
    return _regrade_flips(changes, add)


def _regrade_flip_suspects(all_runs: Sequence[RunResults], add: Any) -> list[dict[str, Any]]:
    """Grades that changed when the same answer of an unchanged item was graded again by the
    same grader spec (``posttrain regrade``): a judge or grader that does not agree with itself.
    Returns the changes not counted (an edited grader's, or one not recorded), per run and
    grader."""
    changes: list[tuple[Any, ...]] = []
    for result in all_runs:
        current = {(s.item_id, s.epoch, name): grade for s in result.samples
                   for name, grade in s.grades.items()}
        rows = []
        # each old grade with the grade that replaced it: the next one kept, or the one now
        later: dict[tuple[str, int, str], tuple[float | None, bool | None]] = {}
        for item_id, epoch, grader, value, passed, grader_changed, item_changed in reversed(
                result.regraded):
            key = (item_id, epoch, grader)
            now = current.get(key)
            replaced_by = later.get(key)
            later[key] = (value, passed)
            if now is None or item_changed:
                continue
            after = (now.value, now.passed) if replaced_by is None else replaced_by
            rows.append((item_id, epoch, grader, value, passed, *after, grader_changed))
        rows.reverse()
        changes.append((result, rows))
    return _regrade_flips(changes, add)


def _regrade_flips(changes: Sequence[tuple[Any, Sequence[tuple[Any, ...]]]],
                   add: Any) -> list[dict[str, Any]]:
    """From each run's (result, history rows joined with the grades now: item, epoch, grader,
    old value, old passed, new value, new passed, grader changed), the suspects of grades that
    changed with their grader unchanged; returns the others' counts (run, grader, cause,
    grades, items)."""
    apart: dict[tuple[str, str, int | str | None], set[tuple[str, int]]] = defaultdict(set)
    labels: dict[str, str] = {}
    for result, rows in changes:
        label = labels[result.run.id] = run_label(result.run)
        flips: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item_id, epoch, grader, value, passed, now_value, now_passed, changed in rows:
            before = None if passed is None else bool(passed)
            after = None if now_passed is None else bool(now_passed)
            if after == before and (value is None or now_value is None
                                    or abs(now_value - value) <= 1e-9):
                continue
            if changed == 0:
                flips[item_id].append({"run": label, "grader": grader, "epoch": epoch,
                                       "before": value, "after": now_value})
            else:
                cause = changed if changed in REGRADE_CAUSES else 1
                apart[(result.run.id, grader, cause)].add((item_id, epoch))
        for item_id, found in sorted(flips.items()):
            add(item_id, "grade_flips_on_regrade", {"changes": found[:8]})
    return [{"run": labels[run_id], "id": run_id, "grader": grader,
             "cause": REGRADE_CAUSES[cause], "grades": len(answers),
             "items": len({item_id for item_id, _epoch in answers})}
            for (run_id, grader, cause), answers in sorted(
                apart.items(), key=lambda entry: (entry[0][0], entry[0][1], str(entry[0][2])))]


def export_suspects(report: dict[str, Any], results: Sequence[RunResults | Any],
                    path: str) -> int:
    """Write suspects as JSONL (with each item's row) for review; returns the count written."""
    import orjson

    rows = {item_id: item.data for item_id, item in _items(
        results, sorted({s["item_id"] for s in report["suspects"]})).items()}
    with open(path, "wb") as handle:
        for suspect in report["suspects"]:
            record = {"eval": report.get("eval"), **suspect,
                      "item": rows.get(suspect["item_id"])}
            handle.write(orjson.dumps(record, default=str) + b"\n")
    return len(report["suspects"])

"""Per fault kind and per component: two stored runs of the grit task (bench/grit_env.py),
paired, and how each episode that did not pass ended.

    python bench/grit_report.py --store WORK/s.db BEFORE_RUN AFTER_RUN [AFTER_RUN ...]

Rows: for each tag (``case``: plain, transient, permanent) the score ``ok`` and the tool_use
grader's components ``state_ok``, ``recovered`` and ``honest`` (each over the items where it
applies), before and after, with the paired test (McNemar exact on these 0/1 values). Then,
per run and tag, the endings of the episodes that did not pass (by the ``ok`` grade): an honest failure report, a
reply that claims success or says nothing of the failure, a malformed tool call (``<tool_call>``
text the parser did not take), or the turn cap.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

COMPONENTS = ("ok", "ok.state_ok", "ok.recovered", "ok.honest")


def ending(meta: dict[str, Any]) -> str:
    from posttrain.suites.tool_use.user import honest_failure_report

    text = str(meta.get("final_text") or "")
    if meta.get("hit_turn_cap"):
        return "turn cap"
    if "<tool_call>" in text or "</tool_call>" in text:
        return "malformed call"
    if honest_failure_report(text):
        return "honest report"
    return "other reply"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("runs", nargs="+", help="the before run, then one or more after runs")
    args = parser.parse_args()

    from posttrain.analysis.paired import paired_compare
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    with Store(args.store) as db:
        results = [load_results(db, run) for run in args.runs]
    before = results[0]
    case = {item.id: item.data.get("case", "?") for item in before.items}
    tags = sorted(set(case.values()), key=["plain", "transient", "permanent"].index)
    for after in results[1:]:
        print(f"{before.run.model} ({before.run.id}) -> {after.run.model} ({after.run.id})")
        comp_a, comp_b = before.component_scores(), after.component_scores()
        for tag in tags:
            for name in COMPONENTS:
                a = {i: v for i, v in comp_a.get(name, {}).items() if case.get(i) == tag}
                b = {i: v for i, v in comp_b.get(name, {}).items() if case.get(i) == tag}
                if name != "ok":  # a component covers only the items it was reported on
                    a, b = _reported(before, name, a), _reported(after, name, b)
                result = paired_compare(a, b)
                if not result.n:
                    continue
                print(f"  {tag:<10} {name:<13} n={result.n:<3} {result.mean_a:.3f} -> "
                      f"{result.mean_b:.3f}  {result.diff:+.3f} [{result.ci_low:+.3f}, "
                      f"{result.ci_high:+.3f}] p = {result.p_value:.3g}")
    for run in results:
        counts: dict[str, Counter[str]] = {tag: Counter() for tag in tags}
        for sample in run.samples:
            grade = sample.grades.get("ok")  # the tool_use grade, whatever the run's score
            if (grade.value if grade is not None else sample.value) == 1.0:
                continue
            meta = (sample.completion or {}).get("meta") or {}
            counts[case.get(sample.item_id, "?")][ending(meta)] += 1
        print(f"{run.run.model}: endings of the episodes that did not pass: " + "; ".join(
            f"{tag} {dict(counts[tag])}" for tag in tags if counts[tag]))


def _reported(run: Any, name: str, scores: dict[str, float]) -> dict[str, float]:
    grader, sub = name.split(".", 1)
    has = {s.item_id for s in run.samples
           if sub in (s.grades.get(grader).sub_scores if s.grades.get(grader) else {})}
    return {i: v for i, v in scores.items() if i in has}


if __name__ == "__main__":
    main()

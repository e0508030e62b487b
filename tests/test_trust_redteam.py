"""Wrong numbers a red team found after issue 11's first pass, each pinned by a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.analysis.compare import holm
from posttrain.analysis.report import render_table, summarize
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import item_pass_rates, reference_of
from posttrain.eval import eval_from_dict, resolve_judge
from posttrain.graders import build_grader
from posttrain.graders.model_graders import parse_label, parse_score
from posttrain.runner.store import Store
from posttrain.train.evaluate import mean_score
from posttrain.types import Completion, Score


def test_a_tool_calls_json_arguments_are_read_by_path() -> None:
    grader = build_grader({"type": "string_check", "name": "city", "operation": "eq",
                           "input": "{{sample.output_tools[0].function.arguments.city}}",
                           "reference": "{{item.city}}"})
    call = {"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    sample = Completion(text="", tool_calls=[call]).to_sample()
    assert grader.grade(sample, {"city": "Paris"}).value == 1.0
    wrong = dict(call, function={"name": "get_weather", "arguments": '{"town": "Paris"}'})
    missed = grader.grade(Completion(text="", tool_calls=[wrong]).to_sample(), {"city": "Paris"})
    assert (missed.status, missed.value) == ("scored", 0.0) and "'city'" in missed.explanation


def test_surrounding_whitespace_is_not_part_of_the_answer_in_eval_and_reward() -> None:
    grader = build_grader({"type": "string_check", "name": "m", "operation": "eq",
                           "input": "{{sample.output_text}}", "reference": "{{item.a}}"})
    texts = [" Paris ", "Paris\n\n", "\tParis", "<think>x</think> Paris "]
    for text in texts:
        assert grader.grade(Completion(text=text).to_sample(), {"a": "Paris"}).value == 1.0
    assert grader.as_reward()(["p"] * 4, texts, a=["Paris"] * 4) == [1.0] * 4


def test_not_json_says_so() -> None:
    grader = build_grader({"type": "string_check", "name": "t", "operation": "eq",
                           "input": "{{sample.output_json.table}}", "reference": "users"})
    score = grader.grade(Completion(text="users").to_sample(), {})
    assert "the answer is not JSON" in score.explanation


def test_checkpoint_selection_counts_unscored_grades_as_zero() -> None:
    scores = [Score(1.0, True), Score.unscored("grader raised"), Score(0.0, False),
              Score.error("boom")]
    assert mean_score(scores) == 0.25  # not 0.5 over the two scored ones


def test_judge_labels_written_as_numbers() -> None:
    assert parse_label('{"result": 1}', ["0", "1"]) == ("1", "")
    assert parse_score('{"steps": [{"description": "it used <think> tags", "conclusion": "ok"}],'
                       ' "result": 1}') == (1.0, "")


def test_eval_judges_resolve_models_without_a_factory() -> None:
    ev = eval_from_dict({"name": "j", "items": [{"id": "1", "q": "x"}],
                         "messages": [{"role": "user", "content": "{{item.q}}"}],
                         "graders": [{"type": "score_model", "name": "j", "model": "openai:x",
                                      "input": "{{sample.output_text}}"}]})
    assert ev.graders[0].factory is resolve_judge


def test_holm_adjustment() -> None:
    # the classic example: p = 0.01, 0.04, 0.03 with m = 3 -> 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def _run(store: Store, outcomes: list[str], epochs: int = 1, graders: list | None = None) -> str:
    from posttrain.eval import make_items

    items = make_items([(i + 1, {"id": f"i{i}", "ans": "x"}) for i in range(len(outcomes))])
    run = store.create_run(run_key="k", eval_name="e", eval_path=None, eval_hash="h",
                           model="m", variant="default", epochs=epochs,
                           config={"grader_names": ["g"], "graders": graders or []}, items=items)
    for item, outcome in zip(items, outcomes, strict=True):
        for epoch in range(epochs if outcome != "partial" else 1):
            if outcome == "error":
                store.record_sample(run.id, item.id, epoch, completion=None, request_key=None,
                                    attempts=1, error="HTTP 500")
                continue
            ok = outcome in ("pass", "partial")
            store.record_sample(run.id, item.id, epoch, completion=Completion(text="x"),
                                request_key=None, attempts=1,
                                scores=[Score(float(ok), ok, name="g")])
    return run.id


def test_pass_k_line_says_what_it_could_not_compute(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run_id = _run(store, ["pass", "pass", "fail", "partial"], epochs=2)
    summary = summarize(load_results(store, run_id))
    assert summary["pass_k_not_computable"] == {"1": 0, "2": 1}
    table = render_table([summary])
    assert "k=2: 0.667 (1 items not computable)" in table


def test_saturation_counts_failed_samples_as_not_passing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    results = load_results(store, _run(store, ["pass", "error", "fail"]))
    assert item_pass_rates(results) == {"i0": 1.0, "i1": 0.0, "i2": 0.0}


def test_reference_is_the_field_the_grader_compares_with() -> None:
    specs = [{"type": "string_check", "reference": "{{item.gold_sql}}", "input": "x",
              "operation": "eq"}]
    assert reference_of({"gold_sql": "SELECT 1", "answer": "no"}, specs) == "SELECT 1"
    assert reference_of({"answer": "yes"}) == "yes"


def test_a_component_says_how_much_it_graded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    from posttrain.eval import make_items

    items = make_items([(1, {"id": "a"}), (2, {"id": "b"})])
    run = store.create_run(run_key="k", eval_name="e", eval_path=None, eval_hash="h", model="m",
                           variant="default", epochs=1,
                           config={"grader_names": ["exact", "judge"]}, items=items)
    for item in items:
        store.record_sample(run.id, item.id, 0, completion=Completion(text="x"),
                            request_key=None, attempts=1,
                            scores=[Score(1.0, True, name="exact"),
                                    Score.error("judge timed out", name="judge")])
    summary = summarize(load_results(store, run.id))
    judge = summary["components"]["judge"]
    assert judge["score"] == 0.0 and judge["scored"] == 0 and judge["coverage"] == 0.0
    assert summary["components"]["exact"]["coverage"] == 1.0
    assert "0.000 (0% graded)" in render_table([summary])


def test_a_k_no_item_can_compute_is_listed_not_left_out(tmp_path: Path) -> None:
    """A run stopped after its first epoch of three: pass@2 and pass@3 have no item yet. They
    are listed with a dash and the count (k=3 was simply missing, beside a pass@1)."""
    store = Store(tmp_path / "s.db")
    run_id = _run(store, ["partial", "partial"], epochs=3)
    summary = summarize(load_results(store, run_id))
    assert summary["pass_k_not_computable"] == {"1": 0, "2": 2, "3": 2}
    table = render_table([summary])
    assert "k=1: 1.000, k=2: - (2 items not computable), k=3: - (2 items not computable)" in table

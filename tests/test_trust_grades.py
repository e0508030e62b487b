"""A model's failure is a failure; only the grader's own problem is unscored; reasoning is not
the answer (issue 11, sections 1 and 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from posttrain.errors import UserError
from posttrain.eval import eval_from_dict
from posttrain.graders import GraderContext, build_grader
from posttrain.graders.model_graders import parse_label, parse_score
from posttrain.reasoning import split_reasoning
from posttrain.types import Completion


def sample(text: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return Completion(text=text, tool_calls=tool_calls or []).to_sample()


TABLE = {"type": "string_check", "name": "table", "input": "{{sample.output_json.table}}",
         "reference": "{{item.table}}", "operation": "eq"}


@pytest.mark.parametrize("text", ["users", '{"columns": ["id"]}', "", "[1, 2]", "null"])
def test_missing_field_in_the_answer_is_zero_with_reason(text: str) -> None:
    score = build_grader(TABLE).grade(sample(text), {"table": "users"})
    assert score.status == "scored" and score.value == 0.0 and score.passed is False
    assert "sample.output_json.table" in score.explanation


def test_missing_field_in_the_item_is_unscored_even_when_the_answer_also_lacks_it() -> None:
    for text in ('{"table": "users"}', "no json at all"):
        score = build_grader(TABLE).grade(sample(text), {"tabel": "users"})
        assert score.status == "unscored" and "item.table" in score.explanation


def test_unknown_sample_field_is_the_graders_problem() -> None:
    spec = {**TABLE, "input": "{{sample.output_txt}}"}
    score = build_grader(spec).grade(sample("users"), {"table": "users"})
    assert score.status == "unscored" and "output_txt" in score.explanation


@pytest.mark.parametrize("spec", [
    {"type": "text_similarity", "name": "t", "input": "{{sample.output_json.answer}}",
     "reference": "{{item.a}}", "evaluation_metric": "fuzzy_match"},
    {"type": "string_check", "name": "t", "input": "{{sample.output_tools[0].function.name}}",
     "reference": "{{item.a}}", "operation": "eq"},
    {"type": "regex", "name": "t", "input": "{{sample.output_json.answer}}", "pattern": "x"},
    {"type": "numeric", "name": "t", "input": "{{sample.output_json.answer}}",
     "reference": "{{item.a}}"},
])
def test_every_grader_type_blames_the_model_for_its_missing_output(spec: dict[str, Any]) -> None:
    score = build_grader(spec).grade(sample("plain text, no JSON, no tool call"), {"a": "x"})
    assert (score.status, score.value) == ("scored", 0.0), score.explanation


def test_judge_is_not_asked_about_an_answer_that_lacks_the_field() -> None:
    asked: list[Any] = []

    class Judge:
        async def generate(self, request: Any) -> Completion:
            asked.append(request)
            return Completion(text='{"result": 1}')

    spec = {"type": "score_model", "name": "j", "model": "judge",
            "input": "Rate {{sample.output_json.summary}} against {{item.ref}}"}
    grader = build_grader(spec, GraderContext(model_factory=lambda _: Judge()))
    score = asyncio.run(grader.agrade(sample("not json"), {"ref": "r"}))
    assert (score.status, score.value) == ("scored", 0.0) and not asked
    missing_item = asyncio.run(grader.agrade(sample('{"summary": "s"}'), {}))
    assert missing_item.status == "unscored" and not asked
    ok = asyncio.run(grader.agrade(sample('{"summary": "s"}'), {"ref": "r"}))
    assert ok.value == 1.0 and len(asked) == 1


def test_a_model_that_answers_one_in_four_in_json_scores_a_quarter(tmp_path, stub_server) -> None:
    """The issue's example: 1 of 4 answers in the required JSON scored 1.000 before."""
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.api import run_eval
    from posttrain.runner.store import Store

    replies = ['{"table": "users"}', "users", "The table is users.", '{"tables": "users"}']
    items = [{"id": str(i), "q": f"[[answer:{r}]]", "table": "users"} for i, r in enumerate(replies)]
    ev = eval_from_dict({"name": "json4", "items": items,
                         "messages": [{"role": "user", "content": "{{item.q}}"}],
                         "graders": [TABLE], "pass_bar": 0.8})
    [summary] = run_eval(ev, [f"openai:stub?base_url={stub_server.base_url}"],
                         store=str(tmp_path / "s.db"))
    assert summary["score"] == pytest.approx(0.25)
    assert summary["clears_bar"] is False
    with Store(tmp_path / "s.db") as store:
        again = summarize(load_results(store, summary["run_id"]))
    assert again["score"] == pytest.approx(0.25)


# ---- reasoning ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "reasoning", "answer"), [
    ("<think>2+2 is 4</think>\n4", "2+2 is 4", "4"),
    ("<think>a</think><think>b</think> y", "a\nb", "y"),
    ("<think>a</think>x<think>b</think>y", "a", "x<think>b</think>y"),  # only leading blocks
    ("<think>a<think>b</think>c Lyon</think>Paris", "a<think>b</think>c Lyon", "Paris"),
    ('{"note": "emit <think> first", "answer": "Paris"}', "",
     '{"note": "emit <think> first", "answer": "Paris"}'),
    ("Wrap reasoning in <think> tags", "", "Wrap reasoning in <think> tags"),
    ("Use <think>...</think> for reasoning", "", "Use <think>...</think> for reasoning"),
    ('{"close": "with </think> here"}', "", '{"close": "with </think> here"}'),
    ("  <think>x</think> Paris ", "x", "Paris"),
    ("<THINKING>hmm</THINKING> Paris", "hmm", "Paris"),
    ("2+2... so 4</think>\n\n4", "2+2... so 4", "4"),  # the template opened the block
    ("<think>still thinking about {\"answer\": 5}", 'still thinking about {"answer": 5}', ""),
    ("[THINK]x[/THINK]done", "x", "done"),
    ("<|channel|>analysis<|message|>draft 5<|end|><|start|>assistant<|channel|>final"
     "<|message|>6<|return|>", "draft 5", "6"),
    ("plain answer", "", "plain answer"),
    ("a < b and [1] > 0", "", "a < b and [1] > 0"),
])
def test_split_reasoning(text: str, reasoning: str, answer: str) -> None:
    assert split_reasoning(text) == (reasoning, answer)


def test_graders_see_the_answer_not_the_reasoning() -> None:
    completion = Completion(text='<think>maybe {"answer": 3}</think>{"answer": 4}')
    stripped = completion.to_sample()
    assert stripped["output_text"] == '{"answer": 4}' and stripped["output_json"] == {"answer": 4}
    assert stripped["reasoning"] == 'maybe {"answer": 3}'
    kept = completion.to_sample(reasoning="keep")
    assert kept["output_text"].startswith("<think>") and kept["output_json"] is None
    cut = Completion(text='<think>the answer is {"answer": 4}', finish_reason="length").to_sample()
    assert cut["output_text"] == "" and cut["output_json"] is None
    provider = Completion(text="4", reasoning="because").to_sample()
    assert (provider["output_text"], provider["reasoning"]) == ("4", "because")
    assert Completion.from_record(Completion(text="4", reasoning="r").to_record()).reasoning == "r"


def test_eval_reasoning_setting() -> None:
    base = {"name": "r", "items": [{"id": "1", "a": "4"}],
            "messages": [{"role": "user", "content": "2+2?"}],
            "graders": [{"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                         "reference": "{{item.a}}", "operation": "eq"}]}
    strip = eval_from_dict(base)
    answer = Completion(text="<think>hmm, 5?</think>4")
    assert strip.reasoning == "strip"
    assert strip.graders[0].grade(strip.sample_of(answer), strip.items[0].data).value == 1.0
    keep = eval_from_dict({**base, "reasoning": "keep"})
    assert keep.graders[0].grade(keep.sample_of(answer), keep.items[0].data).value == 0.0
    with pytest.raises(UserError, match="reasoning"):
        eval_from_dict({**base, "reasoning": "drop"})


def test_reward_strips_reasoning_like_the_eval() -> None:
    grader = build_grader({"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                           "reference": "{{item.a}}", "operation": "eq"})
    assert grader.as_reward()(["p"], ["<think>5?</think>4"], a=["4"]) == [1.0]
    assert grader.as_reward(reasoning="keep")(["p"], ["<think>5?</think>4"], a=["4"]) == [0.0]


@pytest.mark.parametrize(("reply", "value"), [
    ('<think>first guess {"result": 1}</think>{"result": 0}', 0.0),
    ('Draft: {"result": 7}. On reflection the final verdict is {"result": 3}', 3.0),
    ('{"steps": [{"description": "d", "conclusion": "c"}], "result": 0.5}', 0.5),
    ('```json\n{"result": 2}\n```', 2.0),
])
def test_judge_verdict_is_the_final_answer(reply: str, value: float) -> None:
    assert parse_score(reply) == (value, "")


def test_judge_cut_off_in_its_reasoning_is_unscored() -> None:
    result, why = parse_score('<think>{"result": 1} seems right but')
    assert result is None and "after its reasoning" in why
    label, _ = parse_label('<think>{"label": "good"}</think>{"label": "bad"}', ["good", "bad"])
    assert label == "bad"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_servers_reasoning_field_is_not_the_answer(field: str) -> None:
    """vLLM / DeepSeek send ``reasoning_content``, OpenRouter and newer vLLM ``reasoning``: kept
    as the sample's reasoning; the graders see the content only."""
    from posttrain.models.openai_compat import completion_from_body

    body = {"choices": [{"message": {"role": "assistant", "content": "Paris",
                                     field: "maybe Lyon... no, Paris"},
                         "finish_reason": "stop"}], "model": "m"}
    completion = completion_from_body(body, 0.1, None)
    assert completion.text == "Paris" and completion.reasoning == "maybe Lyon... no, Paris"
    sample = completion.to_sample()
    assert sample["output_text"] == "Paris" and sample["reasoning"] == "maybe Lyon... no, Paris"
    grader = build_grader({"type": "string_check", "name": "exact", "operation": "eq",
                           "input": "{{sample.output_text}}", "reference": "Paris"})
    assert grader.grade(sample, {}).value == 1.0

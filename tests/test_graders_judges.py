"""score_model / label_model: our parsing of judge replies, aggregation and position swap.

The judge is a small fake Model object (the test is about our parsing, not a model)."""

from __future__ import annotations

import json

import pytest

from posttrain.graders import GraderContext, build_grader
from posttrain.graders.model_graders import parse_label, parse_score
from posttrain.types import ChatRequest, Completion


class FakeJudge:
    """Replies from a script: a string, or a function of the request."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.requests: list[ChatRequest] = []

    async def generate(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = self.reply(request) if callable(self.reply) else self.reply
        if isinstance(text, Exception):
            raise text
        return Completion(text=text)


def factory(judges: dict[str, FakeJudge]) -> GraderContext:
    return GraderContext(model_factory=lambda spec: judges[spec])


SCORE = {"type": "score_model", "name": "judge", "model": "j",
         "input": [{"role": "system", "content": "Grade the answer."},
                   {"role": "user", "content": "Q: {{item.q}}\nA: {{sample.output_text}}"}]}
SAMPLE = Completion(text="Paris").to_sample()


@pytest.mark.parametrize("reply,value,status", [
    ('{"steps": [{"description": "d", "conclusion": "c"}], "result": 0.8}', 0.8, "scored"),
    ('Sure!\n```json\n{"result": "0.5"}\n```', 0.5, "scored"),
    ('My verdict: {"score": 1} done', 1.0, "scored"),
    ("0.25", 0.25, "scored"),
    ('{"result": 7}', None, "unscored"),  # outside the range: a judge on another scale
    ('{"result": "high"}', None, "unscored"),  # non-numeric: unscored, not 0
    ("I think it is quite good", None, "unscored"),
    ("", None, "unscored"),
    ('{"result": null}', None, "unscored"),
])
def test_score_model_parsing(reply, value, status) -> None:
    score = build_grader(SCORE, factory({"j": FakeJudge(reply)})).grade(SAMPLE, {"q": "Capital?"})
    assert score.status == status, score
    if value is None:
        assert score.value is None and score.passed is None and score.explanation
    else:
        assert score.value == pytest.approx(value)


def test_score_model_request_range_threshold_and_sampling() -> None:
    judge = FakeJudge('{"steps": [], "result": 8}')
    spec = {**SCORE, "range": [1, 10], "pass_threshold": 7,
            "sampling_params": {"temperature": 0.2, "max_completions_tokens": 99, "seed": 3,
                                "reasoning_effort": "low"}}
    score = build_grader(spec, factory({"j": judge})).grade(SAMPLE, {"q": "Capital?"})
    assert score.value == pytest.approx(7 / 9) and score.passed is True
    assert "result 8" in score.explanation
    request = judge.requests[0]
    assert request.messages[1]["content"] == "Q: Capital?\nA: Paris"
    assert request.temperature == 0.2 and request.max_tokens == 99 and request.seed == 3
    assert request.extra == {"reasoning_effort": "low"}
    schema = request.response_format["json_schema"]["schema"]
    assert schema["required"] == ["steps", "result"]


def test_missing_template_field_is_unscored_and_no_call() -> None:
    judge = FakeJudge('{"result": 1}')
    score = build_grader(SCORE, factory({"j": judge})).grade(SAMPLE, {})
    assert score.status == "unscored" and "item.q" in score.explanation and not judge.requests


def test_judge_failure_is_error_and_no_resolver_is_error() -> None:
    score = build_grader(SCORE, factory({"j": FakeJudge(ConnectionError("down"))})).grade(
        SAMPLE, {"q": "x"})
    assert score.status == "error" and "ConnectionError" in score.explanation
    score = build_grader(SCORE).grade(SAMPLE, {"q": "x"})
    assert score.status == "error" and "model resolver" in score.explanation


LABEL = {"type": "label_model", "name": "tone", "model": "j", "input": "Tone of: {{sample.output_text}}",
         "labels": ["polite", "rude", "neutral"], "passing_labels": ["polite", "neutral"]}


@pytest.mark.parametrize("reply,value,status", [
    ('{"steps": [], "label": "polite"}', 1.0, "scored"),
    ('{"label": "Rude"}', 0.0, "scored"),
    ("neutral.", 1.0, "scored"),
    ('{"label": "angry"}', None, "unscored"),
    ("it's fine I guess", None, "unscored"),
])
def test_label_model(reply, value, status) -> None:
    judge = FakeJudge(reply)
    score = build_grader(LABEL, factory({"j": judge})).grade(SAMPLE, {})
    assert score.status == status and score.value == value, score
    enum = judge.requests[0].response_format["json_schema"]["schema"]["properties"]["label"]
    assert enum["enum"] == LABEL["labels"]


def test_several_judges_majority_and_mean() -> None:
    judges = {"a": FakeJudge('{"label": "polite"}'), "b": FakeJudge('{"label": "rude"}'),
              "c": FakeJudge('{"label": "polite"}')}
    spec = {**LABEL, "models": ["a", "b", "c"]}
    del spec["model"]
    score = build_grader(spec, factory(judges)).grade(SAMPLE, {})
    assert score.value == 1.0 and score.sub_scores == {"a": 1.0, "b": 0.0, "c": 1.0}
    judges["c"] = FakeJudge("???")
    tie = build_grader(spec, factory(judges)).grade(SAMPLE, {})
    assert tie.status == "unscored"  # one unusable of three, the other two tie
    scores = {"a": FakeJudge('{"result": 0.2}'), "b": FakeJudge('{"result": 0.6}'),
              "c": FakeJudge("nope")}
    spec = {**SCORE, "models": ["a", "b", "c"]}
    del spec["model"]
    mean = build_grader(spec, factory(scores)).grade(SAMPLE, {"q": "x"})
    assert mean.value == pytest.approx(0.4) and "ignored" in mean.explanation


def test_position_swap() -> None:
    def prefers_first(request: ChatRequest) -> str:
        text = request.messages[0]["content"]
        return json.dumps({"result": 0.9 if text.startswith("1: A") else 0.3})

    spec = {**SCORE, "input": [{"role": "user", "content": "1: {{pair.first}} 2: {{pair.second}}"}],
            "position_swap": {"first": "{{sample.output_text}}", "second": "{{item.other}}"}}
    sample = Completion(text="A").to_sample()
    score = build_grader(spec, factory({"j": FakeJudge(prefers_first)})).grade(sample, {"other": "B"})
    assert score.value == pytest.approx((0.9 + (1 - 0.3)) / 2)
    biased = {**LABEL, "labels": ["first", "second"], "passing_labels": ["first"],
              "input": "1: {{pair.first}} 2: {{pair.second}}",
              "position_swap": {"first": "{{sample.output_text}}", "second": "{{item.other}}",
                                "swap_labels": {"first": "second", "second": "first"}}}
    always_first = FakeJudge('{"label": "first"}')
    score = build_grader(biased, factory({"j": always_first})).grade(sample, {"other": "B"})
    assert score.status == "unscored" and "position bias" in score.explanation
    fair = FakeJudge(lambda r: '{"label": "%s"}' % ("first" if r.messages[0]["content"].startswith("1: A") else "second"))
    assert build_grader(biased, factory({"j": fair})).grade(sample, {"other": "B"}).value == 1.0


def test_parsers_directly() -> None:
    assert parse_score("**0.7**") == (0.7, "")
    assert parse_score('{"result": true}')[0] is None
    assert parse_label('{"result": "polite"}', ["polite"]) == ("polite", "")

"""Red-team faults in the hosted (OpenAI) fine-tuning exports and in SFT data normalisation:

A. ``export --kind rft`` wrote a grader averaging every grader while posttrain's own RFT reward
   is the eval's ``score:`` grader.
B. ``export --kind rft`` left out the eval's ``tools``.
C. ``to_prompt_completion`` dropped an assistant's ``tool_calls`` and the row's ``tools``,
   leaving an empty answer to train on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posttrain.errors import UserError
from posttrain.eval import load_eval
from posttrain.graders.registry import build_grader
from posttrain.train import export
from posttrain.train.reward import reward_grader
from posttrain.train.sft import to_prompt_completion, train_sft

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "operation": "eq"}
VERBOSE = {"type": "string_check", "name": "verbose", "input": "{{sample.output_text}}",
           "reference": "because", "operation": "ilike"}
TOOL = {"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CALL = {"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}


def _eval(tmp_path: Path, rows: list[dict[str, Any]], **spec: Any):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    body = {"name": "rt", "dataset": str(data),
            "messages": [{"role": "user", "content": "{{item.question}}"}], **spec}
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(body))
    return load_eval(path)


ROWS = [{"id": "q1", "question": "Capital of France?", "answer": "Paris"}]
ANSWERS = ["Paris", "paris", "Paris, because it is", "Lyon because"]


def _values(grader: Any, answers: list[str]) -> list[float | None]:
    item = ROWS[0]
    return [grader.grade({"output_text": text, "output_json": None, "output_tools": [],
                          "choices": []}, item).value for text in answers]


# ---- A: the exported grader is posttrain's RFT reward ----------------------------------------
def test_rft_grader_uses_the_score_grader(tmp_path: Path) -> None:
    eval_ = _eval(tmp_path, ROWS, score="exact", graders=[EXACT, VERBOSE])
    assert reward_grader(eval_).name == "exact"
    assert export.rft_grader(eval_) == EXACT
    assert export.rft_grader(eval_.grader_specs, primary="exact") == EXACT
    exported = build_grader(export.rft_grader(eval_))
    assert _values(exported, ANSWERS) == _values(reward_grader(eval_), ANSWERS)
    with pytest.raises(UserError):
        export.rft_grader(eval_.grader_specs, primary="nope")


def test_rft_grader_without_score_is_the_rewards_mean(tmp_path: Path) -> None:
    eval_ = _eval(tmp_path, ROWS, graders=[EXACT, VERBOSE])
    spec = export.rft_grader(eval_)
    assert spec["type"] == "multi"
    exported = build_grader(spec)
    assert _values(exported, ANSWERS) == _values(reward_grader(eval_), ANSWERS)
    assert export.rft_grader(eval_.grader_specs) == spec  # the old call still works


def test_rft_grader_keeps_graders_whose_names_clean_alike() -> None:
    a, b = dict(EXACT, name="a-1"), dict(VERBOSE, name="a_1")
    spec = export.rft_grader([a, b])
    assert len(spec["graders"]) == 2
    assert spec["calculate_output"] == "(a_1 + a_1_2) / 2"


# ---- B: hosted RFT lines carry the eval's tools ----------------------------------------------
def test_rft_records_carry_tools(tmp_path: Path) -> None:
    eval_ = _eval(tmp_path, ROWS, tools=[TOOL], graders=[EXACT])
    records = export.rft_records(eval_)
    assert records[0]["tools"] == [TOOL]
    assert records[0]["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert records[0]["answer"] == "Paris"
    plain = export.rft_records(_eval(tmp_path / "p", ROWS, graders=[EXACT]))
    assert "tools" not in plain[0]


def test_rft_records_tool_choice(tmp_path: Path) -> None:
    auto = _eval(tmp_path / "a", ROWS, tools=[TOOL], tool_choice="auto", graders=[EXACT])
    assert export.rft_records(auto)[0]["tools"] == [TOOL]
    none = _eval(tmp_path / "n", ROWS, tools=[TOOL], tool_choice="none", graders=[EXACT])
    assert "tools" not in export.rft_records(none)[0]
    forced = _eval(tmp_path / "r", ROWS, tools=[TOOL], tool_choice="required", graders=[EXACT])
    with pytest.raises(UserError) as exc:
        export.rft_records(forced)
    assert exc.value.field == "tool_choice"


def test_rft_records_refuse_an_item_tools_field_that_clashes(tmp_path: Path) -> None:
    rows = [dict(ROWS[0], tools=[{"type": "function", "function": {"name": "other"}}])]
    eval_ = _eval(tmp_path, rows, tools=[TOOL], graders=[EXACT])
    with pytest.raises(UserError) as exc:
        export.rft_records(eval_)
    assert exc.value.field == "tools" and exc.value.line == 1


# ---- C: tool calls in SFT data are kept or refused, never dropped ----------------------------
TOOL_ROW = {"messages": [{"role": "user", "content": "weather in Paris?"},
                         {"role": "assistant", "content": "", "tool_calls": [CALL]}],
            "tools": [TOOL]}


def test_sft_export_keeps_tool_calls_and_tools() -> None:
    records = export.sft_records([TOOL_ROW])
    assert records == [TOOL_ROW]
    conversation = {
        "messages": [{"role": "user", "content": "weather in Paris?"},
                     {"role": "assistant", "content": None, "tool_calls": [CALL]},
                     {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                     {"role": "assistant", "content": "It is sunny."}],
        "tools": [TOOL], "parallel_tool_calls": False}
    assert export.sft_records([conversation]) == [conversation]


def test_local_sft_refuses_tool_calls_with_file_line_field() -> None:
    with pytest.raises(UserError) as exc:
        to_prompt_completion(TOOL_ROW, source="in.jsonl", line=3)
    assert (exc.value.file, exc.value.line, exc.value.field) == (
        "in.jsonl", 3, "messages[1].tool_calls")
    only_tools = {"prompt": "hi", "completion": "yo", "tools": [TOOL]}
    with pytest.raises(UserError) as exc:
        to_prompt_completion(only_tools, source="in.jsonl", line=4)
    assert exc.value.field == "tools"
    # an empty tools list is no tools
    assert to_prompt_completion({"prompt": "hi", "completion": "yo", "tools": []}) == {
        "prompt": [{"role": "user", "content": "hi"}],
        "completion": [{"role": "assistant", "content": "yo"}]}


def test_train_sft_refuses_tool_calls_before_loading_anything(tmp_path: Path) -> None:
    plain = {"prompt": "hi", "completion": "yo"}
    with pytest.raises(UserError) as exc:
        train_sft("hf:not/pulled", [plain, TOOL_ROW], tmp_path / "out", source="in.jsonl")
    assert (exc.value.file, exc.value.line, exc.value.field) == (
        "in.jsonl", 2, "messages[1].tool_calls")

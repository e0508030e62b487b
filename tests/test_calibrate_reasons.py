"""``posttrain calibrate`` says why rows were not graded, not only how many.

SmolLM2 as a judge (examples/judge) left rows unscored; calibrate printed a count and nothing a
reader could act on (a judge that answers in prose, a format it was not asked for, a missing
item field). The reasons now come with the counts, most frequent first, in the table and the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.graders import GraderContext
from posttrain.graders.calibration import calibrate, format_table, load_labels
from posttrain.graders.registry import build_grader
from posttrain.types import Completion


class Judge:
    async def generate(self, request):
        text = request.messages[0]["content"]
        if "prose" in text:
            return Completion(text="The answer is maybe right.")
        return Completion(text='{"label": "good"}' if "yes" in text else '{"label": "bad"}')


SPEC = {"type": "label_model", "name": "j", "model": "fake", "input": "{{sample.output_text}}",
        "labels": ["good", "bad"], "passing_labels": ["good"]}


def _labels(tmp_path: Path) -> Path:
    rows = [("yes", True), ("no", False), ("prose 1", True), ("prose 2", False), ("prose 3", True)]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps({"item": {}, "sample": {"output_text": s}, "label": x})
                              for s, x in rows), encoding="utf-8")
    return path


def test_unscored_rows_come_with_their_reasons(tmp_path: Path) -> None:
    grader = build_grader(SPEC, GraderContext(model_factory=lambda _: Judge()))
    [result] = calibrate([grader], load_labels(_labels(tmp_path)))
    assert (result.n, result.unscored) == (2, 3)
    [(reason, count)] = result.problems.items()
    assert count == 3 and reason.startswith("unscored: ") and "cannot parse a label" in reason
    assert "The answer is maybe right." in reason
    table = format_table([result])
    assert "unscored" in table and "3 x unscored: " in table and "cannot parse a label" in table
    assert json.loads(json.dumps(result.to_dict()))["problems"] == result.problems


def test_a_fully_graded_judge_lists_no_problems(tmp_path: Path) -> None:
    grader = build_grader(SPEC, GraderContext(model_factory=lambda _: Judge()))
    rows = [row for row in load_labels(_labels(tmp_path))
            if "prose" not in row["sample"]["output_text"]]
    [result] = calibrate([grader], rows)
    assert result.problems == {} and format_table([result]).count("\n") == 1


@pytest.mark.parametrize("reply", ["", "   "])
def test_an_empty_reply_is_a_reason_too(tmp_path: Path, reply: str) -> None:
    class Empty:
        async def generate(self, request):
            return Completion(text=reply)

    grader = build_grader(SPEC, GraderContext(model_factory=lambda _: Empty()))
    [result] = calibrate([grader], load_labels(_labels(tmp_path)))
    assert result.unscored == 5 and sum(result.problems.values()) == 5
    assert any("empty" in reason for reason in result.problems)

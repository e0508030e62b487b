"""`posttrain grade` / `posttrain calibrate`, the TRL reward wrapper, and judge calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli.grade import main
from posttrain.graders import build_grader
from posttrain.graders.calibration import calibrate, cohen_kappa
from posttrain.graders.reward import grader_reward
from posttrain.types import Completion

MULTI = {
    "type": "multi", "name": "sql", "calculate_output": "0.6 * table + 0.4 * cols",
    "graders": {
        "table": {"type": "string_check", "name": "table", "input": "{{sample.output_json.table}}",
                  "reference": "{{item.table}}", "operation": "eq"},
        "cols": {"type": "text_similarity", "name": "cols", "input": "{{sample.output_json.cols}}",
                 "reference": "{{item.cols}}", "evaluation_metric": "fuzzy_match"},
    },
}


def write(path: Path, value) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_grade_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grader = write(tmp_path / "g.json", MULTI)
    item = write(tmp_path / "item.json", {"table": "users", "cols": "id, name"})
    sample = write(tmp_path / "sample.json", {"output_text": '{"table": "users", "cols": "id, email"}'})
    assert main(["grade", grader, "--item", item, "--sample", sample, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"score", "passed", "status", "explanation", "sub_scores"}
    assert out["status"] == "scored" and out["sub_scores"]["table"] == 1.0
    assert 0.6 < out["score"] < 1.0
    assert main(["grade", grader, "--item", item, "--sample", sample]) == 0
    text = capsys.readouterr().out
    assert "sql: score" in text and "table: 1" in text


def test_grade_unscored_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grader = write(tmp_path / "g.json", MULTI)
    assert main(["grade", grader, "--item", "{}", "--output-text", "{}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "unscored"
    assert main(["grade", grader, "--validate"]) == 0
    assert "ok: multi" in capsys.readouterr().out
    bad = write(tmp_path / "bad.json", {**MULTI, "calculate_output": "table + rows"})
    assert main(["grade", bad, "--validate"]) == 2
    err = capsys.readouterr().err
    assert "calculate_output" in err and "rows" in err and "Traceback" not in err
    assert main(["grade", str(tmp_path / "none.json"), "--validate"]) == 2
    assert main(["grade", grader, "--item", "{not json", "--output-text", "x"]) == 2


def test_reward_equals_grade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The TRL reward for a completion is the score `posttrain grade` gives the same sample."""
    grader = build_grader(MULTI)
    reward = grader.as_reward()
    assert reward.__name__ == "sql"
    texts = ['{"table": "users", "cols": "id, name"}', '{"table": "orders", "cols": "id"}',
             "not json"]
    columns = {"table": ["users", "users", "users"], "cols": ["id, name"] * 3}
    rewards = reward(prompts=["q"] * 3, completions=[[{"role": "assistant", "content": t}]
                                                       for t in texts], **columns)
    path = write(tmp_path / "g.json", MULTI)
    for index, text in enumerate(texts):
        item = json.dumps({"table": "users", "cols": "id, name"})
        main(["grade", path, "--item", item, "--output-text", text, "--json"])
        cli = json.loads(capsys.readouterr().out)
        assert rewards[index] == pytest.approx(cli["score"])
    # "not json" is the model's failure: 0 in the eval and 0 as a reward, never unscored
    assert rewards[0] == 1.0 and rewards[2] == 0.0
    assert reward.stats.as_dict() == {"calls": 3, "scored": 3, "unscored": 0, "error": 0}
    # a row without the reference cannot be judged: None (TRL skips it), counted
    skipped = reward(prompts=["q"], completions=[texts[0]], cols=["id, name"])
    assert skipped == [None]
    assert reward.stats.as_dict() == {"calls": 4, "scored": 3, "unscored": 1, "error": 0}
    strings = grader_reward(build_grader(MULTI))(["q"], ['{"table": "users", "cols": "id, name"}'],
                                                 table=["users"], cols=["id, name"],
                                                 trainer_state=object())
    assert strings == [1.0]


def test_reward_with_tool_calls() -> None:
    spec = {"type": "tool_call", "name": "call", "function": "{{item.fn}}", "arguments": {"x": 1}}
    completion = [{"role": "assistant", "content": "",
                   "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}]
    assert build_grader(spec).as_reward()(["p"], [completion], fn=["f"]) == [1.0]


def test_cohen_kappa_by_hand() -> None:
    # 10 pairs: agree on 4 yes, 3 no; judge yes/human no 2; judge no/human yes 1
    pairs = [(True, True)] * 4 + [(False, False)] * 3 + [(True, False)] * 2 + [(False, True)]
    # po = 0.7; judge yes 0.6, human yes 0.5; pe = 0.3 + 0.2 = 0.5; kappa = 0.4
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, True)] * 3) == 1.0


class Judge:
    async def generate(self, request):
        text = request.messages[0]["content"]
        return Completion(text="{\"label\": \"good\"}" if "yes" in text else
                          ("garbled" if "??" in text else "{\"label\": \"bad\"}"))


def test_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    rows = [({"output_text": "yes"}, True), ({"output_text": "yes"}, False),
            ({"output_text": "no"}, False), ({"output_text": "no"}, False),
            ({"output_text": "??"}, True)]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(json.dumps({"item": {}, "sample": s, "label": label})
                                for s, label in rows))
    spec = {"type": "label_model", "name": "j", "model": "fake", "input": "{{sample.output_text}}",
            "labels": ["good", "bad"], "passing_labels": ["good"]}
    from posttrain.graders import GraderContext
    from posttrain.graders.calibration import load_labels

    grader = build_grader(spec, GraderContext(model_factory=lambda _: Judge()))
    [result] = calibrate([grader], load_labels(labels))
    assert (result.n, result.unscored, result.accuracy) == (4, 1, 0.75)
    assert result.kappa == pytest.approx(0.5)
    monkeypatch.setattr("posttrain.cli.grade._model_factory", lambda: lambda _: Judge())
    path = write(tmp_path / "j.json", spec)
    assert main(["calibrate", path, "--labels", str(labels), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["kappa"] == pytest.approx(0.5) and out["unscored"] == 1

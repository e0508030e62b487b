"""Red-team faults in ``posttrain import openai-batch --results``: a custom_id answered twice is
an error (never one answer silently replacing another, never a request with no answer hidden
by a repeated line), a bad output line is one line, and the whole output file is checked before
eval.yaml / items.jsonl are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main

QUESTIONS = [("a", "Capital of France?"), ("b", "Capital of Spain?"), ("c", "Capital of Italy?")]


def _input(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(
        {"custom_id": c, "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": q}]}})
        + "\n" for c, q in QUESTIONS))
    return path


def _out(cid: str, text: str) -> dict:
    return {"id": "r" + cid, "custom_id": cid, "error": None, "response": {
        "status_code": 200, "request_id": "q", "body": {
            "id": "x", "object": "chat.completion", "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}}}


def _run(tmp_path: Path, lines: list, capsys) -> tuple[int, list[str]]:
    results = tmp_path / "out.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = main(["import", "openai-batch", str(_input(tmp_path)), "--results", str(results),
                 "-o", str(tmp_path / "ev"), "--store", str(tmp_path / "s.db")])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("second", ["Paris", "Lyon"])
def test_a_custom_id_answered_twice_is_an_error_and_nothing_is_written(
        second: str, tmp_path: Path, capsys) -> None:
    code, err = _run(tmp_path, [_out("a", "Paris"), _out("b", "Madrid"), _out("a", second)],
                     capsys)
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith(f"posttrain: error: {tmp_path / 'out.jsonl'}:3: custom_id: ")
    assert "'a' is answered twice (first on line 1)" in err[0]
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("line, field, what", [
    ({"custom_id": "b", "response": "timeout"}, "response", "not a string"),
    ({"custom_id": "b", "response": ["x"]}, "response", "not an array"),
    ({"custom_id": "b", "response": {"status_code": 200, "body": "x"}}, "response.body",
     "not a string"),
    ({"custom_id": ["b"], "response": {}}, "custom_id", "a custom_id string"),
    ("just text", None, "object"),
])
def test_a_bad_output_line_is_one_line_before_anything_is_written(
        line, field: str | None, what: str, tmp_path: Path, capsys) -> None:
    code, err = _run(tmp_path, [_out("a", "Paris"), line], capsys)
    assert code == 2
    assert len(err) == 1 and "Traceback" not in "\n".join(err)
    prefix = f"posttrain: error: {tmp_path / 'out.jsonl'}:2: " + (f"{field}: " if field else "")
    assert err[0].startswith(prefix) and what in err[0]
    assert not (tmp_path / "ev").exists()
    assert not (tmp_path / "s.db").exists() or (tmp_path / "s.db").stat().st_size == 0


def test_an_unknown_custom_id_writes_nothing(tmp_path: Path, capsys) -> None:
    code, err = _run(tmp_path, [_out("a", "Paris"), _out("zzz", "x")], capsys)
    assert code == 2 and len(err) == 1 and "custom_id 'zzz' is no line" in err[0]
    assert not (tmp_path / "ev").exists()


def test_missing_answers_count_distinct_requests(tmp_path: Path, capsys) -> None:
    code, err = _run(tmp_path, [_out("a", "Paris"), _out("b", "Madrid")], capsys)
    assert code == 0
    assert any("1 requests have no line in the output file" in line for line in err)

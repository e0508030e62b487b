"""Red-team faults in reading OTLP trace exports (``posttrain.usage.otel``): error lines never
quote the export (it is unredacted input), a file that is not UTF-8 is one line, and every
span not read is counted with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.errors import UserError

pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto: pip install "
                                                  "'posttrain[otel]'")

TRACE = "5b8efff798038103d269b633813fc60c"
PII = ("Maria Lopez", "maria.lopez@example.com", "4111 1111 1111 1111")
SECRET = f"I am {PII[0]}, {PII[1]}, card {PII[2]}"


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str, user: str = SECRET, **extra: str) -> dict:
    attrs = [_attr("gen_ai.operation.name", "chat"),
             _attr("gen_ai.input.messages", json.dumps(
                 [{"role": "user", "parts": [{"type": "text", "content": user}]}])),
             _attr("gen_ai.output.messages", json.dumps(
                 [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]))]
    attrs += [_attr(k, v) for k, v in extra.items()]
    return {"traceId": TRACE, "spanId": span_id, "name": "chat", "attributes": attrs}


def _doc(*spans: dict) -> dict:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


def _ingest(path: Path, tmp_path: Path, capsys) -> tuple[int, str, str]:
    code = main(["ingest", str(path), "-o", str(tmp_path / "out"), "--embed", "tfidf"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _no_pii(text: str) -> None:
    for secret in PII:
        assert secret not in text


@pytest.mark.parametrize("shape", ["list", "jsonl-list", "string", "number"])
def test_an_export_that_is_not_an_object_is_one_line_quoting_nothing(
        shape: str, tmp_path: Path, capsys) -> None:
    doc = _doc(_span("eee19b7ec3c1b174"))
    path = tmp_path / ("t.jsonl" if shape == "jsonl-list" else "t.json")
    text = {"list": json.dumps([doc]),
            "jsonl-list": json.dumps(doc) + "\n" + json.dumps([doc]) + "\n",
            "string": json.dumps(json.dumps(doc)),
            "number": json.dumps({"resourceSpans": 5, "x": SECRET})}[shape]
    path.write_text(text)
    code = main(["ingest", str(path), "-o", str(tmp_path / "out"), "--embed", "tfidf",
                 "--format", "otel"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"posttrain: error: {path}")
    assert "not an OTLP trace export" in lines[0]
    if shape == "jsonl-list":
        assert lines[0].startswith(f"posttrain: error: {path}:2: ")
    _no_pii(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("span_patch, kind", [
    ({"startTimeUnixNano": SECRET}, "not an integer"),
    ({"kind": SECRET}, "enum"),
    ({"name": 5, SECRET: 1}, "not a string"),
    ({"Maria Lopez maria.lopez@example.com": 1}, "unknown field"),
])
def test_a_protobuf_parse_error_names_the_field_never_the_value(
        span_patch: dict, kind: str, tmp_path: Path) -> None:
    from posttrain.usage.otel import read_otel

    path = tmp_path / "t.json"
    path.write_text(json.dumps(_doc({**_span("eee19b7ec3c1b174"), **span_patch})))
    with pytest.raises(UserError) as caught:
        read_otel(path)
    message = str(caught.value)
    assert "\n" not in message and kind in message and "resourceSpans" in message
    _no_pii(message)
    assert "{" not in message.split("not an OTLP trace export")[1]


def test_a_skip_reason_never_quotes_a_part_type(tmp_path: Path) -> None:
    from posttrain.usage.otel import read_otel

    bad = _span("eee19b7ec3c1b175")
    bad["attributes"][1] = _attr("gen_ai.input.messages", json.dumps(
        [{"role": "user", "parts": [{"type": SECRET, "content": "x"}]}]))
    shapes = [_span("eee19b7ec3c1b176"), _span("eee19b7ec3c1b177")]
    shapes[0]["attributes"][1] = _attr("gen_ai.input.messages", json.dumps({"a": SECRET}))
    shapes[1]["attributes"][1] = _attr("gen_ai.input.messages", json.dumps([SECRET]))
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_doc(_span("eee19b7ec3c1b174", "hello"), bad, *shapes)))
    records, problems, facts = read_otel(path)
    assert len(records) == 1 and facts["lines"] == 4
    assert len(problems) == 3
    for problem in problems:
        _no_pii(problem.reason)
    assert "of an unknown type" in problems[0].reason
    assert "not an array" in problems[1].reason and "not a message object" in problems[2].reason


def test_a_file_that_is_not_utf8_is_one_line_with_its_line(tmp_path: Path, capsys) -> None:
    doc = _doc(_span("eee19b7ec3c1b174", "Cheapest day to fly to Rome?"))
    good = json.dumps(doc)
    path = tmp_path / "t.jsonl"
    path.write_bytes((good + "\n" + good.replace("Rome", "R\u00f4me") + "\n")
                     .encode("latin-1"))
    code, _, err = _ingest(path, tmp_path, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"posttrain: error: {path}:2: not UTF-8")
    assert "Traceback" not in err


def test_every_span_not_read_is_counted_with_its_reason(tmp_path: Path, capsys) -> None:
    http = {"traceId": TRACE, "spanId": "eee19b7ec3c1b175", "name": "HTTP GET",
            "attributes": []}
    embed = {"traceId": TRACE, "spanId": "eee19b7ec3c1b176", "name": "embeddings",
             "attributes": [_attr("gen_ai.operation.name", "embeddings")]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_doc(_span("eee19b7ec3c1b174", "Cheapest day?"), http, embed)))
    code, out, err = _ingest(path, tmp_path, capsys)
    assert code == 0
    assert "read 1 of 3 spans" in out
    assert "1 spans are not GenAI spans" in err
    assert "1 GenAI spans of another operation" in err

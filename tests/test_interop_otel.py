"""OpenTelemetry GenAI traces into ``posttrain ingest`` (both attribute styles give identical
items) and grades back out as ``gen_ai.evaluation.result`` events (``posttrain export otel``).

The OTLP JSON exports are written here from the OTLP/JSON encoding and the GenAI semantic
conventions: the same three conversations (one with a tool call, one with user feedback on its
span) once with ``gen_ai.input.messages`` / ``gen_ai.output.messages``, once with the older
``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes, plus a span without content and a
span that is not a GenAI call. Skipped where opentelemetry-proto is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main

pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto: pip install "
                                                  "'posttrain[otel]'")

TRACE = "5b8efff798038103d269b633813fc60c"
SPANS = ["eee19b7ec3c1b174", "eee19b7ec3c1b175", "eee19b7ec3c1b176"]
CONVERSATIONS = [
    {"system": "You are a travel agent.", "turns": [("user", "Cheapest day to fly to Rome?")],
     "answer": "Tuesdays are usually cheapest.", "feedback": None},
    {"system": None, "turns": [("user", "What's the weather in Oslo?")],
     "answer": "", "calls": [("call_1", "get_weather", '{"city": "Oslo"}')],
     "feedback": None},
    {"system": "Answer briefly.", "turns": [("user", "Capital of Australia?"),
                                            ("assistant", "Sydney."),
                                            ("user", "Are you sure?")],
     "answer": "Yes, Sydney.", "feedback": (0, "wrong: it is Canberra")},
]


def _attr(key: str, value) -> dict:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _new_style(conv: dict) -> list[dict]:
    attrs = []
    if conv["system"]:
        attrs.append(_attr("gen_ai.system_instructions",
                           json.dumps([{"type": "text", "content": conv["system"]}])))
    attrs.append(_attr("gen_ai.input.messages", json.dumps(
        [{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in conv["turns"]])))
    parts = [{"type": "text", "content": conv["answer"]}] if conv["answer"] else []
    parts += [{"type": "tool_call", "id": i, "name": n, "arguments": json.loads(a)}
              for i, n, a in conv.get("calls", [])]
    attrs.append(_attr("gen_ai.output.messages", json.dumps(
        [{"role": "assistant", "parts": parts, "finish_reason": "stop"}])))
    return attrs


def _old_style(conv: dict) -> list[dict]:
    attrs = []
    index = 0
    if conv["system"]:
        attrs += [_attr("gen_ai.prompt.0.role", "system"),
                  _attr("gen_ai.prompt.0.content", conv["system"])]
        index = 1
    for role, text in conv["turns"]:
        attrs += [_attr(f"gen_ai.prompt.{index}.role", role),
                  _attr(f"gen_ai.prompt.{index}.content", text)]
        index += 1
    attrs += [_attr("gen_ai.completion.0.role", "assistant"),
              _attr("gen_ai.completion.0.finish_reason", "stop")]
    if conv["answer"]:
        attrs.append(_attr("gen_ai.completion.0.content", conv["answer"]))
    for n, (cid, name, args) in enumerate(conv.get("calls", [])):
        attrs += [_attr(f"gen_ai.completion.0.tool_calls.{n}.id", cid),
                  _attr(f"gen_ai.completion.0.tool_calls.{n}.name", name),
                  _attr(f"gen_ai.completion.0.tool_calls.{n}.arguments", args)]
    return attrs


def _export(style) -> dict:
    spans = []
    for conv, span_id in zip(CONVERSATIONS, SPANS, strict=True):
        events = []
        if conv["feedback"]:
            value, comment = conv["feedback"]
            events.append({"timeUnixNano": "1767225601000000000",
                           "name": "gen_ai.evaluation.result", "attributes": [
                               _attr("gen_ai.evaluation.name", "user_feedback"),
                               {"key": "gen_ai.evaluation.score.value",
                                "value": {"doubleValue": float(value)}},
                               _attr("gen_ai.evaluation.explanation", comment)]})
        spans.append({"traceId": TRACE, "spanId": span_id, "name": "chat gpt-4.1-mini",
                      "kind": 3, "startTimeUnixNano": "1767225600000000000",
                      "endTimeUnixNano": "1767225601000000000",
                      "attributes": [_attr("gen_ai.operation.name", "chat"),
                                     _attr("gen_ai.request.model", "gpt-4.1-mini"),
                                     _attr("gen_ai.response.model", "gpt-4.1-mini-2025-04-14"),
                                     _attr("gen_ai.usage.input_tokens", 20),
                                     *style(conv)],
                      "events": events})
    spans.append({"traceId": TRACE, "spanId": "eee19b7ec3c1b177", "name": "chat gpt-4.1-mini",
                  "kind": 3, "attributes": [_attr("gen_ai.operation.name", "chat")]})
    spans.append({"traceId": TRACE, "spanId": "eee19b7ec3c1b178", "name": "GET /search",
                  "kind": 2, "attributes": [_attr("http.request.method", "GET")]})
    return {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "app")]},
                               "scopeSpans": [{"scope": {"name": "openai.instrumentation"},
                                               "spans": spans}]}]}


def _ingest(tmp_path: Path, name: str, document: dict, capsys, *, jsonl: bool = False) -> dict:
    path = tmp_path / f"{name}.json"
    text = json.dumps(document) if jsonl else json.dumps(document, indent=2)
    path.write_text(text + "\n")
    argv = ["ingest", str(path), "-o", str(tmp_path / name), "--embed", "tfidf", "--json",
            "--no-names", "--store", str(tmp_path / f"{name}.db")]
    pytest.importorskip("numpy", reason="ingest's themes need numpy: pip install "
                                        "'posttrain[ingest]'")
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _items(folder: Path) -> list[dict]:
    return sorted((json.loads(line) for path in sorted(folder.glob("*.jsonl"))
                   for line in path.open()), key=lambda row: row["provenance"]["trace"])


def test_both_attribute_styles_give_identical_items(tmp_path: Path, capsys) -> None:
    new = _ingest(tmp_path, "new", _export(_new_style), capsys)
    old = _ingest(tmp_path, "old", _export(_old_style), capsys, jsonl=True)
    assert new["format"] == old["format"] == "otel"
    assert new["parsed"] == old["parsed"] == 3
    new_items, old_items = _items(tmp_path / "new"), _items(tmp_path / "old")
    assert len(new_items) == 3 and new_items == old_items
    by_span = {row["provenance"]["trace"]: row for row in new_items}
    first = by_span[f"{TRACE}:{SPANS[0]}"]
    assert first["messages"] == [{"role": "system", "content": "You are a travel agent."},
                                 {"role": "user", "content": "Cheapest day to fly to Rome?"}]
    assert first["reference"] == "Tuesdays are usually cheapest."
    assert first["provenance"]["model"] == "gpt-4.1-mini-2025-04-14"
    tool = by_span[f"{TRACE}:{SPANS[1]}"]
    assert tool["reference_tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    rated = by_span[f"{TRACE}:{SPANS[2]}"]
    assert "feedback:negative" in rated["tags"]  # a 0 on the conventions' 0-1 scale
    assert rated["provenance"]["feedback"]["comment"] == "wrong: it is Canberra"
    assert [m["role"] for m in rated["messages"]] == ["system", "user", "assistant", "user"]
    assert any("carry no messages" in p["reason"] for p in new["skipped"])


def test_grades_go_back_as_evaluation_events_on_their_spans(tmp_path: Path, capsys) -> None:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    summary = _ingest(tmp_path, "new", _export(_new_style), capsys)
    graded = [r for r in summary["runs"] if r["graded"]]
    assert graded, summary["runs"]
    out = tmp_path / "events.json"
    store = str(tmp_path / "new.db")
    assert main(["export", "otel", *[r["run"] for r in graded], "-o", str(out), "--store",
                 store]) == 0
    assert "on the spans they judge" in capsys.readouterr().out
    document = json.loads(out.read_text())
    ParseDict(document, ExportLogsServiceRequest())
    records = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert records and all(r["eventName"] == "gen_ai.evaluation.result" for r in records)
    assert {r["traceId"] for r in records} == {TRACE}
    assert {r["spanId"] for r in records} <= set(SPANS)

    def attrs(record: dict) -> dict:
        return {a["key"]: next(iter(a["value"].values())) for a in record["attributes"]}

    headline = [attrs(r) for r in records if attrs(r)["gen_ai.evaluation.name"] == "posttrain"]
    assert len(headline) == sum(1 for r in records if attrs(r)["gen_ai.evaluation.name"]
                                == "posttrain")
    # the logged answers graded against themselves as references: each passes
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    with Store(store) as db:
        expected = {(s.item_id, s.value) for run in graded
                    for s in load_results(db, run["run"]).samples}
    got = {(a["posttrain.item.id"], a.get("gen_ai.evaluation.score.value")) for a in headline}
    assert got == expected
    assert all(a["gen_ai.evaluation.score.label"] in ("pass", "fail") for a in headline)


def test_a_broken_trace_export_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "traces.json"
    bad.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": SPANS[0], "attributes": [{"key": "a", "value":
                                                               {"stringValue": 5}}]}]}]}]}))
    assert main(["ingest", str(bad), "-o", str(tmp_path / "o"), "--embed", "tfidf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {bad}: not an OTLP trace "
                                               "export")


def _openinference(conv: dict) -> list[dict]:
    """The same conversation in OpenInference's flattened attributes (Arize Phoenix)."""
    attrs, index = [], 0
    if conv["system"]:
        attrs += [_attr("llm.input_messages.0.message.role", "system"),
                  _attr("llm.input_messages.0.message.content", conv["system"])]
        index = 1
    for role, text in conv["turns"]:
        base = f"llm.input_messages.{index}.message"
        if role == "user" and index % 2:  # content items instead of content, on some turns
            attrs += [_attr(f"{base}.role", role),
                      _attr(f"{base}.contents.0.message_content.type", "text"),
                      _attr(f"{base}.contents.0.message_content.text", text)]
        else:
            attrs += [_attr(f"{base}.role", role), _attr(f"{base}.content", text)]
        index += 1
    attrs.append(_attr("llm.output_messages.0.message.role", "assistant"))
    if conv["answer"]:
        attrs.append(_attr("llm.output_messages.0.message.content", conv["answer"]))
    for n, (cid, name, args) in enumerate(conv.get("calls", [])):
        base = f"llm.output_messages.0.message.tool_calls.{n}.tool_call"
        attrs += [_attr(f"{base}.id", cid), _attr(f"{base}.function.name", name),
                  _attr(f"{base}.function.arguments", args)]
    return attrs


def test_openinference_spans_give_the_same_items(tmp_path: Path, capsys) -> None:
    """Phoenix / OpenInference instrumentors write llm.* attributes, not gen_ai.*: the same
    conversations give the same items (the model from llm.model_name, the tools offered from
    llm.tools.N.tool.json_schema)."""
    document = _export(_openinference)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        attrs = span["attributes"]
        if attrs and attrs[0]["key"] == "gen_ai.operation.name":
            kept = [a for a in attrs if not a["key"].startswith("gen_ai.")]
            span["attributes"] = [_attr("openinference.span.kind", "LLM"),
                                  _attr("llm.model_name", "gpt-4.1-mini-2025-04-14"), *kept]
            if span["spanId"] == SPANS[1]:
                span["attributes"].append(_attr("llm.tools.0.tool.json_schema",
                                                json.dumps(tool)))
    oi = _ingest(tmp_path, "oi", document, capsys)
    new = _ingest(tmp_path, "new", _export(_new_style), capsys)
    assert oi["parsed"] == new["parsed"] == 3
    oi_items, new_items = _items(tmp_path / "oi"), _items(tmp_path / "new")
    by_span = {row["provenance"]["trace"]: row for row in oi_items}
    assert by_span[f"{TRACE}:{SPANS[1]}"].pop("tools") == [tool]
    assert oi_items == new_items
    assert any("carry no messages" in p["reason"] for p in oi["skipped"])


@pytest.mark.parametrize("events,rating", [
    ([(1, 1.0, None)], "positive"),  # 1.0 is a full score on a 0-1 scale, not a 1 of 5
    ([(1, 0.2, None)], "negative"),
    ([(1, 2.0, None)], 2.0),  # above 1: a 1-5 scale (2 is negative there)
    ([(1, 1.0, "thumbs_down")], "thumbs_down"),  # a thumbs label wins over the value
    ([(1, 0.0, None), (5, 1.0, None), (3, 0.0, None)], "positive"),  # the latest event
])
def test_feedback_scale_and_latest_event(events, rating) -> None:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from posttrain.usage.logs import rating_label
    from posttrain.usage.otel import _feedback

    span = ParseDict({"events": [
        {"timeUnixNano": str(t), "name": "gen_ai.evaluation.result", "attributes": [
            _attr("gen_ai.evaluation.name", "user_feedback"),
            {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": v}},
            *([_attr("gen_ai.evaluation.score.label", label)] if label else [])]}
        for t, v, label in events]}, Span())
    feedback = _feedback(span)
    assert feedback is not None and feedback["rating"] == rating
    assert rating_label(feedback["rating"]) == ("positive" if rating == "positive" else
                                                "negative")
    assert feedback.get("events", 1) == len(events)


def test_each_logged_model_is_its_own_run_and_trace_ids_are_not_secrets(tmp_path: Path,
                                                                       capsys) -> None:
    document = _export(_new_style)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for span in spans:  # the third conversation answered by another model (OpenInference)
        if span["spanId"] == SPANS[2]:
            kept = [a for a in span["attributes"] if not a["key"].startswith("gen_ai.")]
            span["attributes"] = [_attr("gen_ai.operation.name", "chat"),
                                  _attr("llm.model_name", "gpt-4o"), *kept,
                                  *[a for a in span["attributes"]
                                    if a["key"].startswith("gen_ai.") and "model" not in
                                    a["key"] and a["key"] != "gen_ai.operation.name"]]
    summary = _ingest(tmp_path, "mixed", document, capsys)
    assert summary["redactions"]["secret"] == 0  # TRACE_ID:SPAN_ID is no secret
    models = {r["model"]: r["items"] for r in summary["runs"]}
    assert models.get("logged:gpt-4o") == 1, summary["runs"]
    assert "logged:gpt-4.1-mini-2025-04-14" in models
    from posttrain.runner.store import Store

    with Store(tmp_path / "mixed.db") as db:
        for entry in summary["runs"]:
            run = db.get_run(entry["run"])
            assert run.model == entry["model"]
    ids = {row["id"] for row in _items(tmp_path / "mixed")}
    assert f"{TRACE}:{SPANS[0]}" in ids


def test_the_exported_epoch_is_an_otlp_integer(tmp_path: Path, capsys) -> None:
    """OTLP/JSON writes int64 as a decimal string: {"intValue": "0"} is an integer."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    summary = _ingest(tmp_path, "new", _export(_new_style), capsys)
    graded = [r for r in summary["runs"] if r["graded"]]
    out = tmp_path / "events.json"
    assert main(["export", "otel", *[r["run"] for r in graded], "-o", str(out), "--store",
                 str(tmp_path / "new.db")]) == 0
    request = ParseDict(json.loads(out.read_text()), ExportLogsServiceRequest())
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    epoch = next(a.value for a in record.attributes if a.key == "posttrain.epoch")
    assert epoch.WhichOneof("value") == "int_value" and epoch.int_value == 0

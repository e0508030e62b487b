"""OpenTelemetry traces (OTLP JSON) with the GenAI semantic conventions -> usage log records.

An OTLP JSON export (``ExportTraceServiceRequest``: ``{"resourceSpans": [...]}``, one document
or one per line as the collector's file exporter writes them) is read with
``opentelemetry-proto``. Each span with ``gen_ai.operation.name`` ``chat`` (or
``text_completion``, ``generate_content``) and its messages becomes one record, whichever way
the instrumentation wrote the messages:

- the current conventions: ``gen_ai.system_instructions``, ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (JSON: ``{role, parts: [{type: text, content} | {type: tool_call,
  id, name, arguments} | {type: tool_call_response, id, response}], finish_reason?}``);
- the older indexed attributes: ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_call_id``
  and ``gen_ai.completion.N.role`` / ``.content`` / ``.finish_reason`` /
  ``.tool_calls.M.id|name|arguments``.

- OpenInference's flattened attributes (Arize Phoenix, and the OpenInference instrumentors for
  OpenAI, LangChain, LlamaIndex, ...), on spans with ``openinference.span.kind`` ``LLM``:
  ``llm.input_messages.N.message.role`` / ``.content`` (or ``.contents.K.message_content.text``)
  / ``.tool_call_id`` / ``.tool_calls.M.tool_call.id|function.name|function.arguments``, the
  same under ``llm.output_messages``, the tools offered as ``llm.tools.N.tool.json_schema`` and
  the model as ``llm.model_name`` (https://arize-ai.github.io/openinference/spec/).

All three give the same record for the same conversation. The record's id and ``trace`` are
``TRACE_ID:SPAN_ID`` (hex, as written; ``trace`` is kept unredacted in the item's provenance),
so grades exported later (``posttrain export otel``) attach to the span.
User feedback recorded on the span as a ``gen_ai.evaluation.result`` event whose
``gen_ai.evaluation.name`` mentions feedback becomes the record's feedback (the latest such
event when there are several; a thumbs ``score.label`` the rating, else ``score.value``, on a
0-1 scale when in [0, 1] and 1-5 above; ``explanation`` the comment). Spans without messages (content
capture off) are counted and reported, never guessed.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, json_kind
from posttrain.loaders.storable import check_storable
from posttrain.usage.logs import LogRecord, Problem, model_name

OPERATIONS = ("chat", "text_completion", "generate_content")
EXTRA = "otel"


def is_otlp(path: Path) -> bool:
    """Whether the file looks like an OTLP JSON trace export."""
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    return b'"resourceSpans"' in head or b'"resource_spans"' in head


def _hex(raw: bytes) -> str:
    """OTLP JSON writes ids as hex; protobuf's JSON reader took them as base64: undo it."""
    return base64.b64encode(raw).decode() if raw else ""


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.values}
    if kind == "bytes_value":
        return bytes(value).decode("utf-8", "replace")
    return value


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _json(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{where} is not JSON") from None
        try:
            check_storable(value, parsed)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return parsed
    return value


#: part types of the GenAI conventions that are not read: named in a skip reason (any other
#: type is input content, never quoted)
_KNOWN_PARTS = ("blob", "file", "uri", "image", "image_url", "audio", "input_audio", "video",
                "document", "refusal", "server_tool_call", "server_tool_call_response")


def _json_list(value: Any, where: str) -> list[Any]:
    """An attribute holding a JSON array (or nothing): the array; ValueError naming the
    attribute and what it holds otherwise."""
    parsed = _json(value, where)
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise ValueError(f"{where} is {json_kind(parsed)}, not an array")
    return parsed


def _parts_message(message: Any, where: str) -> tuple[dict[str, Any], list[Any]]:
    """One GenAI message (``{role, parts}``) as a chat message; (message, tool results)."""
    if not isinstance(message, dict):
        raise ValueError(f"{where} is {json_kind(message)}, not a message object {{role, parts}}")
    role = message.get("role")
    parts = message.get("parts") or []
    if not isinstance(parts, list):
        raise ValueError(f"{where}.parts is {json_kind(parts)}, not an array")
    texts, calls, results = [], [], []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise ValueError(f"{where}.parts[{index}] is {json_kind(part)}, not an object "
                             "{type, ...}")
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            arguments = part.get("arguments")
            calls.append({"id": part.get("id"), "type": "function", "function": {
                "name": part.get("name"), "arguments": arguments if isinstance(arguments, str)
                else json.dumps(arguments)}})
        elif kind == "tool_call_response":
            response = part.get("response")
            results.append({"role": "tool", "tool_call_id": part.get("id"),
                            "content": response if isinstance(response, str)
                            else json.dumps(response)})
        elif kind == "reasoning":
            continue
        else:  # the type is named only when it is one of the conventions' (never content)
            named = repr(kind) if kind in _KNOWN_PARTS else "of an unknown type"
            raise ValueError(f"{where}.parts[{index}]: a part {named} is not read (text, "
                             "tool_call, tool_call_response, reasoning)")
    entry: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if calls:
        entry["tool_calls"] = calls
    return entry, results


def _new_style(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    if "gen_ai.input.messages" not in attrs:
        return None
    messages: list[dict[str, Any]] = []
    for part in _json_list(attrs.get("gen_ai.system_instructions"),
                           "gen_ai.system_instructions"):
        if isinstance(part, dict) and part.get("type") == "text":
            messages.append({"role": "system", "content": str(part.get("content", ""))})
    for index, message in enumerate(_json_list(attrs["gen_ai.input.messages"],
                                               "gen_ai.input.messages")):
        entry, results = _parts_message(message, f"gen_ai.input.messages[{index}]")
        if entry["role"] == "tool" and results and not entry["content"]:
            messages.extend(results)
        else:
            messages.append(entry)
            messages.extend(results)
    outputs = _json_list(attrs.get("gen_ai.output.messages"), "gen_ai.output.messages")
    if not outputs:
        raise ValueError("gen_ai.output.messages is empty")
    answer, _ = _parts_message(outputs[0], "gen_ai.output.messages[0]")
    return messages, answer


def _flat_calls(attrs: dict[str, Any], prefix: str, id_key: str, name_key: str,
                args_key: str) -> list[dict[str, Any]]:
    """Tool calls flattened as ``PREFIX.M.<key>`` attributes (M = 0, 1, ...) as
    chat-completions ``tool_calls`` (arguments as a JSON string)."""
    calls, call = [], 0
    while f"{prefix}.{call}.{name_key}" in attrs:
        arguments = attrs.get(f"{prefix}.{call}.{args_key}") or "{}"
        calls.append({"id": attrs.get(f"{prefix}.{call}.{id_key}"), "type": "function",
                      "function": {"name": attrs[f"{prefix}.{call}.{name_key}"],
                                   "arguments": arguments if isinstance(arguments, str)
                                   else json.dumps(arguments)}})
        call += 1
    return calls


def _old_style(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    if "gen_ai.prompt.0.role" not in attrs and "gen_ai.prompt.0.content" not in attrs:
        return None

    def indexed(prefix: str) -> list[dict[str, Any]]:
        out = []
        index = 0
        while f"{prefix}.{index}.role" in attrs or f"{prefix}.{index}.content" in attrs:
            base = f"{prefix}.{index}"
            entry: dict[str, Any] = {"role": attrs.get(f"{base}.role", "user"),
                                     "content": str(attrs.get(f"{base}.content") or "")}
            calls = _flat_calls(attrs, f"{base}.tool_calls", "id", "name", "arguments")
            if calls:
                entry["tool_calls"] = calls
            if f"{base}.tool_call_id" in attrs:
                entry["tool_call_id"] = attrs[f"{base}.tool_call_id"]
            out.append(entry)
            index += 1
        return out

    messages = indexed("gen_ai.prompt")
    outputs = indexed("gen_ai.completion")
    if not outputs:
        raise ValueError("no gen_ai.completion.0.* attributes")
    answer = outputs[0]
    answer["role"] = "assistant"
    return messages, answer


def _openinference_message(attrs: dict[str, Any], base: str) -> dict[str, Any]:
    """One ``BASE.message.*`` group as a chat-completions message."""
    content = attrs.get(f"{base}.message.content")
    if content is None:  # content items: the text ones, in order
        texts, index = [], 0
        while f"{base}.message.contents.{index}.message_content.type" in attrs or \
                f"{base}.message.contents.{index}.message_content.text" in attrs:
            text = attrs.get(f"{base}.message.contents.{index}.message_content.text")
            if text is not None:
                texts.append(str(text))
            index += 1
        content = "".join(texts)
    entry: dict[str, Any] = {"role": attrs.get(f"{base}.message.role", "user"),
                             "content": str(content or "")}
    calls = _flat_calls(attrs, f"{base}.message.tool_calls", "tool_call.id",
                        "tool_call.function.name", "tool_call.function.arguments")
    if calls:
        entry["tool_calls"] = calls
    if f"{base}.message.tool_call_id" in attrs:
        entry["tool_call_id"] = attrs[f"{base}.message.tool_call_id"]
    return entry


def _openinference(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                   dict[str, Any]] | None:
    def indexed(prefix: str) -> list[dict[str, Any]]:
        out, index = [], 0
        while any(key.startswith(f"{prefix}.{index}.message.") for key in attrs):
            out.append(_openinference_message(attrs, f"{prefix}.{index}"))
            index += 1
        return out

    messages = indexed("llm.input_messages")
    if not messages:
        return None
    outputs = indexed("llm.output_messages")
    if not outputs:
        raise ValueError("no llm.output_messages.0.message.* attributes")
    answer = outputs[0]
    answer["role"] = "assistant"
    return messages, answer


def _openinference_tools(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools, index = [], 0
    while f"llm.tools.{index}.tool.json_schema" in attrs:
        tools.append(_json(attrs[f"llm.tools.{index}.tool.json_schema"],
                           f"llm.tools.{index}.tool.json_schema"))
        index += 1
    return tools or None


def _is_llm_span(attrs: dict[str, Any]) -> bool:
    return (attrs.get("gen_ai.operation.name") in OPERATIONS
            or attrs.get("openinference.span.kind") == "LLM")


_PASS_WORDS = {"pass": "positive", "passed": "positive", "fail": "negative",
               "failed": "negative"}


def _feedback(span: Any) -> dict[str, Any] | None:
    """The span's latest user-feedback event (by its time; the last written on a tie), as a
    rating: a label that is a thumbs word (``positive``, ``thumbs_down``, ``pass``...) wins;
    else ``score.value``, read on a 0-1 scale when it lies in [0, 1] (0.5 and up positive: the
    conventions' evaluation scores are shares) and on a 1-5 scale when above 1. How many
    feedback events the span had is kept (``events``)."""
    from posttrain.usage.logs import rating_label

    found: list[tuple[int, int, dict[str, Any]]] = []
    for order, event in enumerate(span.events):
        if event.name != "gen_ai.evaluation.result":
            continue
        attrs = _attributes(event.attributes)
        if "feedback" not in str(attrs.get("gen_ai.evaluation.name", "")).lower():
            continue
        found.append((int(event.time_unix_nano or 0), order, attrs))
    if not found:
        return None
    attrs = max(found, key=lambda t: (t[0], t[1]))[2]
    value = attrs.get("gen_ai.evaluation.score.value")
    label = attrs.get("gen_ai.evaluation.score.label")
    rating: Any = None
    scale = None
    if isinstance(label, str) and label.strip():
        word = _PASS_WORDS.get(label.strip().lower(), label.strip().lower())
        try:
            float(word)
        except ValueError:
            if rating_label(word) is not None:
                rating, scale = word, "label"
    if rating is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 <= value <= 1:
            rating, scale = ("positive" if value >= 0.5 else "negative"), "0-1"
        else:
            rating, scale = value, "1-5"
    if rating is None:
        rating = value if value is not None else label
    out = {"rating": rating, "comment": attrs.get("gen_ai.evaluation.explanation"),
           "correction": None, "score": value, "label": label, "scale": scale}
    if len(found) > 1:
        out["events"] = len(found)
    return {k: v for k, v in out.items() if v is not None or k in ("comment", "correction")}


def _text(path: Path) -> str:
    """The file as text; one line naming the file (and the line of the first byte that is not
    UTF-8) otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the file ({exc.strerror or type(exc).__name__})",
                        file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        raise UserError(f"not UTF-8 text (byte 0x{raw[start]:02x} at offset {start}): an OTLP "
                        "JSON export is UTF-8", file=path, line=line) from None


def _documents(path: Path) -> list[tuple[int, Any]]:
    text = _text(path)
    stripped = text.strip()
    try:
        return [(1, json.loads(stripped))]
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise UserError("not OTLP JSON: nested too deeply", file=path) from None
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                docs.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserError(f"not OTLP JSON: {exc.msg}", file=path, line=number) from None
            except RecursionError:
                raise UserError("not OTLP JSON: nested too deeply", file=path,
                                line=number) from None
    return docs


_FAILED = re.compile(r"Failed to parse (\w+) field: ")
_AT = re.compile(r' at "?ExportTraceServiceRequest((?:\.\w+|\[\d+\])*)"?')


def _parse_problem(message: str) -> str:
    """What protobuf's ParseError says, without what it quotes: its messages carry the
    offending value (or the whole document), unredacted input. Only the field path (proto
    field names, read from the anchored ``Failed to parse X field:`` chain) and the kind of
    fault are kept."""
    fields: list[str] = []
    rest = message
    while (match := _FAILED.match(rest)) is not None:
        fields.append(match.group(1))
        rest = rest[match.end():]
    path = ".".join(fields)
    at = _AT.search(rest)
    if at is not None:  # the path with its indices, when its names are those of the chain
        indexed = at.group(1).lstrip(".")
        if re.sub(r"\[\d+\]", "", indexed).split(".") == (fields or [""]) or (
                not fields and not indexed):
            path = indexed or path
    if rest.startswith("Message type") and "has no field named" in rest:
        kind = "an unknown field"
    elif rest.startswith(("Couldn't parse integer", "invalid literal for int")):
        kind = "a value that is not an integer"
    elif rest.startswith("Invalid enum value"):
        kind = "a value that is not one of the enum's names"
    elif rest.startswith("repeated field"):
        kind = "a value that is not an array"
    elif rest.startswith("expected string"):
        kind = "a value that is not a string"
    else:
        kind = "a value of the wrong type or shape"
    return f"{kind} at {path}" if path else kind


def read_otel(path: Path) -> tuple[list[LogRecord], list[Problem], dict[str, Any]]:
    """Records, problems and facts, as ``posttrain.usage.logs.read_logs`` returns them."""
    from posttrain.models.checks import require_extra

    require_extra("reading OTLP traces", "opentelemetry.proto", extra=EXTRA)
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    records: list[LogRecord] = []
    problems: list[Problem] = []
    spans_seen = 0
    no_content = 0
    position = 0
    not_genai = other_operations = 0
    documents = _documents(path)
    for number, doc in documents:
        line = number if len(documents) > 1 or number > 1 else None
        if not isinstance(doc, dict):  # never quoted: the document is unredacted input
            raise UserError(f"not an OTLP trace export: the document is {json_kind(doc)}, not an "
                            'object {"resourceSpans": [...]} (one per line in JSONL)',
                            file=path, line=line)
        request = ExportTraceServiceRequest()
        try:
            ParseDict(doc, request, ignore_unknown_fields=False)
        except ParseError as exc:
            raise UserError(f"not an OTLP trace export: {_parse_problem(str(exc))}",
                            file=path, line=line) from None
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise UserError(f"not an OTLP trace export ({type(exc).__name__})", file=path,
                            line=line) from None
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans_seen += 1
                    attrs = _attributes(span.attributes)
                    if not _is_llm_span(attrs):
                        if "gen_ai.operation.name" in attrs:
                            other_operations += 1
                        else:
                            not_genai += 1
                        continue
                    position += 1
                    span_id = f"{_hex(span.trace_id)}:{_hex(span.span_id)}"
                    try:
                        found = (_new_style(attrs) or _old_style(attrs)
                                 or _openinference(attrs))
                        tools = _openinference_tools(attrs)
                    except ValueError as exc:  # its messages name fields and kinds only
                        problems.append(Problem(number, f"span {span_id}: {exc}", str(path)))
                        continue
                    except (AttributeError, TypeError, KeyError, RecursionError) as exc:
                        problems.append(Problem(number, f"span {span_id}: its GenAI "
                                                "attributes have an unexpected shape "
                                                f"({type(exc).__name__})", str(path)))
                        continue
                    if found is None:
                        no_content += 1
                        continue
                    messages, answer = found
                    model = attrs.get("gen_ai.response.model") or attrs.get(
                        "gen_ai.request.model") or attrs.get("llm.model_name")
                    feedback = _feedback(span)
                    if feedback is not None:
                        feedback["line"] = number
                    records.append(LogRecord(
                        id=span_id, line=position, messages=messages,
                        response_text=answer.get("content") or "",
                        response_tools=answer.get("tool_calls") or [],
                        tools=tools, created=span.start_time_unix_nano // 10**9 or None,
                        model=model_name(model), feedback=feedback,
                        trace=span_id))
    if no_content:
        problems.append(Problem(1, f"{no_content} GenAI spans carry no messages (content "
                                "capture was off): nothing to read from them", str(path)))
    facts = {"format": "otel", "lines": spans_seen, "parsed": len(records)}
    if not records and not problems:
        raise UserError("no GenAI chat spans (gen_ai.operation.name: chat, or OpenInference's "
                        "openinference.span.kind: LLM) in this trace export", file=path)
    # every span not read is counted with its reason: the summary's "read N of M spans" adds up
    if other_operations:
        problems.append(Problem(1, f"{other_operations} GenAI spans of another operation "
                                f"than {', '.join(OPERATIONS)} (embeddings, tool "
                                "execution, ...): not read", str(path)))
    if not_genai:
        problems.append(Problem(1, f"{not_genai} spans are not GenAI spans (no "
                                "gen_ai.operation.name or openinference.span.kind LLM): not "
                                "read", str(path)))
    return records, problems, facts

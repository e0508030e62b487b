"""Reading usage logs and feedback into plain records, line by line, reporting what is skipped.

Shapes (one JSON object a line):
- ``chat``: ``{"id", "created", "request": {"model", "messages", "tools"?}, "response":
  {"choices": [...], "usage"?}}`` (``messages``/``choices`` at the top level are accepted too);
- ``responses``: the Responses API, ``{"input", "instructions"?, "tools"?, "output": [...]}``,
  top level or under ``request``/``response``;
- ``mapped``: any JSONL with ``--map prompt=PATH,response=PATH,id=PATH,...``.

A file is one shape: lines of another shape are reported as mixed, with their line numbers,
and skipped. Reasons never quote line content (it is unredacted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from posttrain.errors import UserError
from posttrain.loaders.datasets import not_utf8
from posttrain.loaders.storable import check_storable
from posttrain.template import TemplateError, resolve

MAP_KEYS = ("id", "created", "model", "prompt", "messages", "system", "response", "tools",
            "rating", "comment", "correction")


@dataclass
class LogRecord:
    id: str | None
    line: int
    messages: list[dict[str, Any]]
    response_text: str
    response_tools: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    created: Any = None
    model: str | None = None
    feedback: dict[str, Any] | None = None
    #: ``TRACE_ID:SPAN_ID`` of the span it came from (OpenTelemetry traces): random ids, not
    #: personal data, kept unredacted so grades can be written back to the span
    trace: str | None = None


@dataclass
class Problem:
    line: int
    reason: str
    file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


#: the longest model name kept: it names a run and is copied into every item's provenance
MAX_MODEL = 200


def model_name(value: Any) -> str | None:
    """A logged model's name as text, cut to ``MAX_MODEL`` characters (None when absent)."""
    return str(value)[:MAX_MODEL] if value else None


def parse_map(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        key, sep, path = part.partition("=")
        key, path = key.strip(), path.strip()
        if not sep or not key or not path:
            raise UserError(f"expected KEY=PATH, got {part!r}", field="--map")
        if key not in MAP_KEYS:
            raise UserError(f"unknown key {key!r}; known: {', '.join(MAP_KEYS)}", field="--map")
        mapping[key] = path
    if "prompt" not in mapping and "messages" not in mapping:
        raise UserError("needs prompt=PATH or messages=PATH", field="--map")
    return mapping


def text_of(content: Any) -> str:
    """Plain text of a message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def detect(row: dict[str, Any]) -> str | None:
    request = row.get("request") if isinstance(row.get("request"), dict) else row
    response = row.get("response") if isinstance(row.get("response"), dict) else row
    if "messages" in request and "choices" in response:
        return "chat"
    if "input" in request and "output" in response:
        return "responses"
    return None


def _chat(row: dict[str, Any]) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]], Any, Any]:
    request = row.get("request") if isinstance(row.get("request"), dict) else row
    response = row.get("response") if isinstance(row.get("response"), dict) else row
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError("request.messages is not a list of {role, content}")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("response.choices is empty")
    if not isinstance(choices[0], dict):
        raise ValueError("response.choices[0] is not an object")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("response.choices[0].message is "
                         + ("missing" if message is None else "not an object"))
    text = text_of(message.get("content"))
    tool_calls = message.get("tool_calls") or []
    model = request.get("model") or response.get("model")
    return messages, text, tool_calls, request.get("tools"), model


def _check_calls(calls: Any, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise ValueError(f"{where} is not a list")
    for index, call in enumerate(calls):
        if not isinstance(call, dict):
            raise ValueError(f"{where}[{index}] is not an object")
        function = call.get("function", call)
        if not isinstance(function, dict) or not isinstance(function.get("name", ""), str):
            raise ValueError(f"{where}[{index}].function is not an object with a name")


def _check_shapes(messages: Any, calls: Any, tools: Any) -> None:
    """What the rest of ingest reads of a parsed line, checked once here (a line that does not
    hold it is skipped and said, never a traceback): messages are objects with a text role,
    tool calls are objects whose function has a name, tools are objects."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("no messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"messages[{index}] is not an object with a text role")
        _check_calls(message.get("tool_calls"), f"messages[{index}].tool_calls")
    _check_calls(calls, "the answer's tool_calls")
    if tools is not None and (not isinstance(tools, list)
                              or not all(isinstance(tool, dict) for tool in tools)):
        raise ValueError("tools is not a list of objects")


def _responses_input(value: Any, instructions: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(value, str):
        return [*messages, {"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ValueError("input is neither text nor a list")
    for entry in value:
        if not isinstance(entry, dict):
            raise ValueError("an input entry is not an object")
        kind = entry.get("type", "message")
        if kind == "message" or "role" in entry:
            messages.append({"role": entry.get("role", "user"), "content": text_of(entry.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": [{
                "id": entry.get("call_id"), "type": "function",
                "function": {"name": entry.get("name"), "arguments": entry.get("arguments", "")}}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": entry.get("call_id"),
                             "content": text_of(entry.get("output"))})
    if not messages:
        raise ValueError("input has no messages")
    return messages


def _responses(row: dict[str, Any]) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]], Any, Any]:
    request = row.get("request") if isinstance(row.get("request"), dict) else row
    response = row.get("response") if isinstance(row.get("response"), dict) else row
    messages = _responses_input(request.get("input"), request.get("instructions"))
    output = response.get("output")
    if not isinstance(output, list):
        raise ValueError("output is not a list")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for entry in output:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "message":
            texts.append(text_of(entry.get("content")))
        elif entry.get("type") == "function_call":
            calls.append({"id": entry.get("call_id") or entry.get("id"), "type": "function",
                          "function": {"name": entry.get("name"),
                                       "arguments": entry.get("arguments", "")}})
    tools = request.get("tools")
    if isinstance(tools, list):
        tools = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
                 if isinstance(t, dict) and t.get("type") == "function" and "function" not in t
                 else t for t in tools]
    model = request.get("model") or response.get("model")
    return messages, "\n".join(texts), calls, tools, model


def _get(row: dict[str, Any], path: str | None) -> Any:
    if path is None:
        return None
    try:
        return resolve("row." + path, {"row": row})
    except TemplateError:
        return None


def _mapped(row: dict[str, Any], mapping: dict[str, str]):
    messages = _get(row, mapping.get("messages"))
    if messages is None:
        prompt = _get(row, mapping.get("prompt"))
        if isinstance(prompt, list):
            messages = prompt
        elif isinstance(prompt, str) and prompt.strip():
            messages = [{"role": "user", "content": prompt}]
        else:
            raise ValueError(f"no prompt at {mapping.get('prompt') or mapping.get('messages')}")
        system = _get(row, mapping.get("system"))
        if isinstance(system, str) and system:
            messages = [{"role": "system", "content": system}, *messages]
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m
                                                 for m in messages):
        raise ValueError("the mapped messages are not a list of {role, content}")
    response = _get(row, mapping.get("response"))
    if "response" in mapping and response is None:
        raise ValueError(f"no response at {mapping['response']}")
    text = text_of(response) if response is not None else ""
    return messages, text, [], _get(row, mapping.get("tools")), _get(row, mapping.get("model"))


def _iter_json_lines(path: Path, problems: list[Problem] | None = None,
                     counted: list[int] | None = None, *, last: int | None = None,
                     progress: Any = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each JSON-object line, read as the file is streamed (a line
    is held only while it is parsed); lines that are not one go to ``problems``; ``counted``
    gets the number of non-blank lines; ``last``: stop after this line number."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", file=path) from None
    total = 0
    with handle:
        for number, raw in enumerate(handle, start=1):
            if last is not None and number > last:
                break
            if progress is not None:
                progress.advance(len(raw))
            if not raw.strip():
                continue
            total += 1
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError:  # what json accepts and orjson not (NaN, big ints)
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError as bad:  # "not UTF-8 (byte 0xFF); save the file..."
                    if problems is not None:
                        problems.append(Problem(
                            number, not_utf8(raw, bad.start, path, line=number).message,
                            str(path)))
                    continue
                try:
                    row = json.loads(text)
                    check_storable(text, row)
                except ValueError as exc:
                    if problems is not None:
                        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                        problems.append(Problem(number, f"not valid JSON ({reason})", str(path)))
                    continue
            if not isinstance(row, dict):
                if problems is not None:
                    problems.append(Problem(
                        number, f"expected an object, got {type(row).__name__}", str(path)))
                continue
            try:  # orjson reads deeper than it writes
                check_storable(raw, row, escapes=False)
            except ValueError as exc:
                if problems is not None:
                    problems.append(Problem(number, str(exc), str(path)))
                continue
            yield number, row
    if counted is not None:
        counted.append(total)


def _read_json_lines(path: Path) -> tuple[list[tuple[int, Any]], list[Problem], int]:
    problems: list[Problem] = []
    counted: list[int] = []
    rows = list(_iter_json_lines(path, problems, counted))
    return rows, problems, counted[0]


def read_logs(path: Path, *, mapping: dict[str, str] | None = None, fmt: str = "auto",
              progress: Any = None) -> tuple[list[LogRecord], list[Problem], dict[str, Any]]:
    """Records, problems (line, reason) and facts about the file (format, line counts). The
    file is streamed: only the records are held, not its lines. ``progress``: a
    :class:`~posttrain.usage.progress.StageProgress` (counts bytes read)."""
    problems: list[Problem] = []
    facts: dict[str, Any] = {}
    records = list(iter_logs(path, problems, facts, mapping=mapping, fmt=fmt,
                             progress=progress))
    return records, problems, facts


def iter_logs(path: Path, problems: list[Problem], facts: dict[str, Any], *,
              mapping: dict[str, str] | None = None, fmt: str = "auto",
              progress: Any = None, expected: list[int] | None = None
              ) -> Iterator[LogRecord]:
    """:func:`read_logs` one record at a time (none held here): ``problems`` (sorted by line)
    and ``facts`` are complete once the records are all read. ``expected`` gets, once the
    file's shape is known, how many of its lines have that shape (records to come)."""
    if mapping is None and fmt in ("auto", "otel"):  # OpenTelemetry GenAI traces (OTLP JSON)
        from posttrain.usage.otel import is_otlp, read_otel

        if fmt == "otel" or is_otlp(path):
            records, found, otel_facts = read_otel(path)
            problems.extend(found)
            facts.update(otel_facts)
            yield from records
            return
    counted: list[int] = []
    size = path.stat().st_size if path.is_file() else None
    if mapping is not None:
        fmt = "mapped"
    elif fmt == "auto":  # a first pass over the file for its shape, holding no line
        if progress is not None:
            progress.stage("scan (bytes)", size)
        last = 0
        shapes: Counter[str] = Counter()
        for last, row in _iter_json_lines(path, problems, counted,  # noqa: B007
                                          progress=progress):
            shape = detect(row)
            if shape:
                shapes[shape] += 1
        if not shapes:
            raise _nothing_read(path, problems, counted[0]) or UserError(
                "no line looks like a chat-completions or Responses-API log; "
                "use --map prompt=PATH,response=PATH for other shapes", file=path)
        fmt = shapes.most_common(1)[0][0]
        if expected is not None:
            expected.append(shapes[fmt])
    elif fmt not in ("chat", "responses"):
        raise UserError(f"unknown format {fmt!r} (auto, chat, responses, otel)",
                        field="--format")
    if progress is not None:
        progress.stage("read (bytes)", size)
    if counted:  # the second pass: the same lines (a log still growing: not its new ones)
        rows = _iter_json_lines(path, last=last, progress=progress)
    else:
        rows = _iter_json_lines(path, problems, counted, progress=progress)
    parsed = 0
    for number, row in rows:
        if fmt != "mapped":
            shape = detect(row)
            if shape != fmt:
                what = f"a {shape} log" if shape else "neither a chat nor a responses log"
                problems.append(Problem(number, f"mixed: this line is {what}; the file is {fmt}",
                                        str(path)))
                continue
        try:
            if fmt == "chat":
                messages, text, calls, tools, model = _chat(row)
            elif fmt == "responses":
                messages, text, calls, tools, model = _responses(row)
            else:
                messages, text, calls, tools, model = _mapped(row, mapping or {})
            _check_shapes(messages, calls, tools)
        except ValueError as exc:
            problems.append(Problem(number, str(exc), str(path)))
            continue
        raw_id = _get(row, mapping.get("id")) if mapping else row.get("id")
        if raw_id is None and fmt == "responses" and isinstance(row.get("response"), dict):
            raw_id = row["response"].get("id")
        created = (_get(row, mapping.get("created")) if mapping
                   else row.get("created", row.get("created_at")))
        feedback = None
        if mapping and any(k in mapping for k in ("rating", "comment", "correction")):
            feedback = {k: _get(row, mapping.get(k)) for k in ("rating", "comment", "correction")
                        if k in mapping}
            if all(v is None for v in feedback.values()):
                feedback = None
            elif feedback is not None:
                feedback["line"] = number
        parsed += 1
        yield LogRecord(
            id=None if raw_id is None else str(raw_id), line=number, messages=messages,
            response_text=text, response_tools=calls if isinstance(calls, list) else [],
            tools=tools if isinstance(tools, list) and tools else None, created=created,
            model=model_name(model), feedback=feedback,
        )
    if not parsed and (error := _nothing_read(path, problems, counted[0])) is not None:
        raise error
    facts.update({"format": fmt, "lines": counted[0], "parsed": parsed})
    problems.sort(key=lambda p: p.line)


def _nothing_read(path: Path, problems: list[Problem], lines: int) -> UserError | None:
    """Why no line of the file could be read, when that is the file itself rather than the
    shape of its lines: it is empty (or blank), it is not UTF-8 (the first line that is not,
    and its byte), or no line is JSON at all (binary or another format)."""
    if not lines:
        return UserError("the file is empty" if path.is_file() and path.stat().st_size == 0
                         else "the file has only blank lines", file=path)
    for problem in problems:
        if problem.file == str(path) and problem.reason.startswith("not UTF-8"):
            return UserError(problem.reason, file=path, line=problem.line)
    unread = [p for p in problems if p.file == str(path) and p.reason.startswith("not valid JSON")]
    if len(unread) == lines:
        return UserError(f"no line of the file is JSON (this one: {unread[0].reason}); "
                         "expected one JSON object a line (JSONL)", file=path, line=unread[0].line)
    return None


_POSITIVE = {"up", "thumbs_up", "thumbsup", "thumbs-up", "+1", "good", "positive", "like",
             "liked", "yes", "true", "👍", "helpful", "correct"}
_NEGATIVE = {"down", "thumbs_down", "thumbsdown", "thumbs-down", "-1", "bad", "negative",
             "dislike", "disliked", "no", "false", "👎", "unhelpful", "wrong", "incorrect"}


def rating_label(value: Any) -> str | None:
    """positive / negative / neutral, or None when the rating is not understood.

    Booleans and thumbs words are thumbs; numbers are a 1-5 scale (4-5 positive, 3 neutral,
    1-2 and 0 negative); a fraction in (0, 1) is positive from 0.5.
    """
    if isinstance(value, bool):
        return "positive" if value else "negative"
    if isinstance(value, (int, float)):
        if 0 < value < 1:
            return "positive" if value >= 0.5 else "negative"
        if value >= 4 and value <= 5:
            return "positive"
        if value == 3:
            return "neutral"
        if 0 <= value <= 2:
            return "negative"
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _POSITIVE:
            return "positive"
        if word in _NEGATIVE:
            return "negative"
        try:
            return rating_label(float(word))
        except ValueError:
            return None
    return None


def read_feedback(path: Path) -> tuple[dict[str, dict[str, Any]], list[Problem], int]:
    rows, problems, total = _read_json_lines(path)
    feedback: dict[str, dict[str, Any]] = {}
    for number, row in rows:
        if row.get("id") is None:
            problems.append(Problem(number, "feedback row has no id", str(path)))
            continue
        key = str(row["id"])
        entry = {"rating": row.get("rating"), "comment": row.get("comment"),
                 "correction": row.get("correction"), "line": number}
        if row.get("rating") is not None and rating_label(row.get("rating")) is None:
            problems.append(Problem(number, "rating not understood (use up/down, 1-5 or a "
                                    "boolean); the row is kept without a rating", str(path)))
            entry["rating"] = None
        if key in feedback:
            problems.append(Problem(number, f"second feedback row for the same id (first on "
                                    f"line {feedback[key]['line']}); it replaces the first",
                                    str(path)))
        feedback[key] = entry
    return feedback, problems, total

"""What a chat request's parts may hold, checked before anything is sent: ``sampling`` (typed,
known names only), ``extra_body``, messages, ``tools``, ``tool_choice``, ``response_format``.

The shapes are OpenAI's chat-completions request body (platform.openai.com/docs/api-reference/chat);
every provider maps them. Used by eval files and by judges' ``sampling_params`` alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.errors import UserError, did_you_mean

_SAMPLING_KEYS = {"temperature", "max_tokens", "top_p", "seed", "stop"}
_NUMBER, _INT, _STR, _BOOL, _DICT = ("number",), ("integer",), ("string",), ("boolean",), \
    ("object",)
#: what ``sampling:`` may set (chat-completions names) and each value's type; anything else
#: is refused with a "did you mean", never sent to the API as written (``max_token``)
SAMPLING_FIELDS: dict[str, tuple[str, ...]] = {
    "temperature": _NUMBER, "max_tokens": _INT, "max_completion_tokens": _INT, "top_p": _NUMBER,
    "seed": _INT, "stop": ("string", "list of strings"), "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER, "reasoning_effort": _STR, "parallel_tool_calls": _BOOL,
    "logprobs": _BOOL, "top_logprobs": _INT, "logit_bias": _DICT, "top_k": _INT,
    "min_p": _NUMBER, "repetition_penalty": _NUMBER, "service_tier": _STR, "verbosity": _STR,
    "user": _STR, "n": _INT, "extra_body": _DICT,
}


#: keys ``sampling.extra_body`` may not hold: they would replace what posttrain builds and
#: checks (the model, the messages, one answer per request, tools, the format) or are spelled
#: as sampling fields, which are checked and mapped for each provider
EXTRA_BODY_REFUSED = frozenset({
    "model", "messages", "stream", "stream_options", "n", "tools", "tool_choice",
    "response_format", "functions", "function_call", "system", "prompt", "stop_sequences",
    "metadata", "output_config", "thinking", "max_output_tokens", "input"})
_INT64 = (-(2 ** 63), 2 ** 64 - 1)  # what JSON encoders and APIs carry as an integer


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def non_finite(value: Any, where: str) -> str | None:
    """The path (``where`` extended) of the first NaN or infinity inside ``value``; None."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for key, inner in value.items():
            found = non_finite(inner, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, inner in enumerate(value):
            found = non_finite(inner, f"{where}[{index}]")
            if found:
                return found
    return None


def check_sampling(sampling: Any, source: Path | None, where: str) -> dict[str, Any]:
    """A ``sampling`` mapping with known keys and typed values; UserError naming the field.

    ``n`` other than 1 is refused: posttrain takes several samples per item as ``--epochs``,
    each stored and graded (a provider's extra choices would be dropped unseen). Numbers are
    finite (``.nan`` and ``.inf`` are refused: JSON has no form for them). Sampling is not a
    template: its values are sent as written, one setting per eval or variant, so a
    placeholder (``stop: ["{{item.x}}"]``) is refused rather than sent literally.
    ``extra_body`` may not hold what posttrain builds itself (:data:`EXTRA_BODY_REFUSED`) or a
    sampling field (set that as ``sampling.FIELD``: checked and mapped for each provider).
    """
    import math

    from posttrain.template import placeholders_by_field

    if not isinstance(sampling, dict):
        raise UserError("must be a mapping", file=source, field=where)
    for key, value in sampling.items():
        kinds = SAMPLING_FIELDS.get(key)
        if kinds is None:
            raise UserError("unknown sampling parameter" + did_you_mean(str(key), SAMPLING_FIELDS)
                            + f" (known: {', '.join(SAMPLING_FIELDS)})", file=source,
                            field=f"{where}.{key}")
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {"number": number, "integer": isinstance(value, int) and number,
              "string": isinstance(value, str), "boolean": isinstance(value, bool),
              "object": isinstance(value, dict),
              "list of strings": isinstance(value, list) and all(isinstance(v, str)
                                                                 for v in value)}
        if not any(ok[kind] for kind in kinds):
            raise UserError(f"must be {' or '.join(_article(k) for k in kinds)}, got {value!r}",
                            file=source, field=f"{where}.{key}")
        if number and not math.isfinite(value):
            raise UserError(f"must be a finite number, got {value!r}", file=source,
                            field=f"{where}.{key}")
        if isinstance(value, int) and number and not _INT64[0] <= value <= _INT64[1]:
            raise UserError(f"{value} does not fit in 64 bits", file=source,
                            field=f"{where}.{key}")
        if key == "n" and value != 1:
            raise UserError("posttrain samples an item several times with --epochs N (each "
                            "answer stored and graded); use that instead of n", file=source,
                            field=f"{where}.{key}")
        if key == "extra_body":
            _check_extra_body(value, source, f"{where}.{key}")
    found = non_finite(sampling, where)
    if found:
        raise UserError("must be a finite number (JSON has no NaN or infinity)", file=source,
                        field=found)
    for field_path, path in placeholders_by_field(sampling, where):
        raise UserError(f"{{{{{path}}}}}: sampling is not a template (one setting per eval "
                        "or variant, sent as written); write the value itself, or vary it with "
                        "variants", file=source, field=field_path)
    return dict(sampling)


def _check_extra_body(body: dict[str, Any], source: Path | None, where: str) -> None:
    for key in body:
        if key in SAMPLING_FIELDS:
            raise UserError(f"set it as sampling.{key} (checked, and mapped for each provider),"
                            " not inside extra_body", file=source, field=f"{where}.{key}")
        if key in EXTRA_BODY_REFUSED:
            raise UserError("posttrain builds this part of the request itself (the model, the "
                            "messages, one answer per request, tools and format from the eval)"
                            "; extra_body may not replace it", file=source,
                            field=f"{where}.{key}")


ROLES = ("system", "developer", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
#: content part types and the keys each takes
PART_KEYS = {"text": ("type", "text"), "image_url": ("type", "image_url"),
             "input_audio": ("type", "input_audio"), "file": ("type", "file")}


def message_problem(message: Any) -> tuple[str, str] | None:
    """(field inside the message, what is wrong) for a chat message, or None when it is fine:
    a known role, known keys (did you mean), content present (an assistant message with
    ``tool_calls`` may omit it), content a string or a list of known parts."""

    if not isinstance(message, dict):
        return "", f"must be a {{role, content}} mapping, got {type(message).__name__}"
    for key in message:
        if key not in MESSAGE_KEYS:
            return str(key), ("unknown message field" + did_you_mean(str(key), MESSAGE_KEYS)
                              + f" (a message has {', '.join(MESSAGE_KEYS)})")
    role = message.get("role")
    if "role" not in message:
        return "role", "each message needs a `role`"
    if role not in ROLES:
        return "role", (f"unknown role {role!r}" + did_you_mean(str(role), ROLES)
                        + f" (roles: {', '.join(ROLES)})")
    content = message.get("content")
    if content is None and not (role == "assistant" and message.get("tool_calls")):
        return "content", "required: the message's text (or a list of content parts)"
    if isinstance(content, list):
        for index, part in enumerate(content):
            where = f"content[{index}]"
            if not isinstance(part, dict):
                return where, "a content part is a mapping such as {type: text, text: ...}"
            kind = part.get("type")
            if kind not in PART_KEYS:
                return f"{where}.type", (f"unknown content part type {kind!r}"
                                         + did_you_mean(str(kind), PART_KEYS)
                                         + f" (types: {', '.join(PART_KEYS)})")
            for key in part:
                if key not in PART_KEYS[kind]:
                    return f"{where}.{key}", (f"unknown field of a {kind} part"
                                              + did_you_mean(str(key), PART_KEYS[kind])
                                              + f" (it has {', '.join(PART_KEYS[kind])})")
            if kind not in part:
                return f"{where}.{kind}", "required"
    elif content is not None and not isinstance(content, str):
        return "content", f"must be text or a list of content parts, got {content!r}"
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return "tool_call_id", "a tool message needs the `tool_call_id` it answers"
    calls = message.get("tool_calls")
    if calls is not None and (role != "assistant" or not isinstance(calls, list)):
        return "tool_calls", "only an assistant message has tool_calls (a list)"
    return None


def _check_messages(value: Any, source: Path | None, field_name: str, *,
                    line: int | None = None) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise UserError("must be a non-empty list of {role, content} messages", file=source,
                        line=line, field=field_name)
    for index, message in enumerate(value):
        problem = message_problem(message)
        if problem is not None:
            inner, reason = problem
            raise UserError(reason, file=source, line=line,
                            field=f"{field_name}[{index}]" + (f".{inner}" if inner else ""))
    return value


TOOL_CHOICES = ("auto", "none", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_FUNCTION_KEYS = ("name", "description", "parameters", "strict")
_SCHEMA_KEYS = ("name", "schema", "strict", "description")


def tools_problem(tools: Any) -> tuple[str, str] | None:
    """(field inside ``tools``, what is wrong) for a chat-completions ``tools`` list, or None:
    each ``{type: function, function: {name, description?, parameters?, strict?}}``, names
    unique."""

    if not isinstance(tools, list):
        return "", f"must be a list of {{type: function, function: {{name, ...}}}}, got {tools!r}"
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"[{index}]"
        if not isinstance(tool, dict):
            return where, "a tool is {type: function, function: {name, description, parameters}}"
        for key in tool:
            if key not in ("type", "function"):
                return f"{where}.{key}", ("unknown tool field" + did_you_mean(str(key), (
                    "type", "function")) + " (a tool has type and function)")
        if tool.get("type") != "function":
            return f"{where}.type", (f"must be function, got {tool.get('type')!r}"
                                     + did_you_mean(str(tool.get("type")), ("function",)))
        function = tool.get("function")
        if not isinstance(function, dict):
            return f"{where}.function", "required: {name, description, parameters}"
        for key in function:
            if key not in _FUNCTION_KEYS:
                return f"{where}.function.{key}", (
                    "unknown function field" + did_you_mean(str(key), _FUNCTION_KEYS)
                    + f" (a function has {', '.join(_FUNCTION_KEYS)})")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            return f"{where}.function.name", "required: the function's name"
        if name in names:
            return f"{where}.function.name", f"two tools are named {name!r}"
        names.add(name)
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            return f"{where}.function.parameters", "must be a JSON schema (a mapping)"
        if function.get("description") is not None and \
                not isinstance(function["description"], str):
            return f"{where}.function.description", "must be text"
    return None


def tool_choice_problem(choice: Any, tools: Any) -> str | None:
    """What is wrong with ``tool_choice`` given the (rendered) ``tools``, or None: auto, none,
    required or ``{type: function, function: {name}}`` naming one of the tools; never without
    tools."""

    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            return (f"must be auto, none, required or {{type: function, function: {{name}}}}; "
                    f"got {choice!r}" + did_you_mean(choice, TOOL_CHOICES))
    elif not (isinstance(choice, dict) and choice.get("type") == "function"
              and set(choice) <= {"type", "function"} and isinstance(choice.get("function"), dict)
              and set(choice["function"]) == {"name"}
              and isinstance(choice["function"].get("name"), str)):
        return ("must be auto, none, required or {type: function, function: {name: NAME}}; "
                f"got {choice!r}")
    if not tools:
        return "needs `tools` to choose from (the APIs refuse a tool_choice without tools)"
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        names = [t["function"]["name"] for t in tools]
        if name not in names:
            return (f"names no tool: {name!r}" + did_you_mean(name, names)
                    + f" (tools: {', '.join(names)})")
    return None


def response_format_problem(value: Any) -> tuple[str, str] | None:
    """(field inside ``response_format``, what is wrong), or None: ``{type: text}``,
    ``{type: json_object}`` or ``{type: json_schema, json_schema: {name, schema, strict?,
    description?}}``."""

    if not isinstance(value, dict):
        return "", f"must be {{type: json_schema, json_schema: {{name, schema}}}} or {{type: " \
                   f"json_object}}, got {value!r}"
    kind = value.get("type")
    if kind not in RESPONSE_FORMATS:
        return "type", (f"must be one of {', '.join(RESPONSE_FORMATS)}; got {kind!r}"
                        + did_you_mean(str(kind), RESPONSE_FORMATS))
    allowed = ("type", "json_schema") if kind == "json_schema" else ("type",)
    for key in value:
        if key not in allowed:
            return str(key), ("unknown field" + did_you_mean(str(key), allowed)
                              + f" (a {kind} format has {', '.join(allowed)})")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            return "json_schema", "required: {name, schema}"
        for key in spec:
            if key not in _SCHEMA_KEYS:
                return f"json_schema.{key}", ("unknown field" + did_you_mean(str(key), _SCHEMA_KEYS)
                                              + f" (it has {', '.join(_SCHEMA_KEYS)})")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return "json_schema.name", "required: a name for the schema"
        if not isinstance(spec.get("schema"), dict):
            return "json_schema.schema", "required: the JSON schema (a mapping)"
    return None

"""The pieces of OpenAI's JSON shapes both directions need: messages and content parts, grader
(testing criteria) fields, sampling parameters, response formats and tools.

OpenAI -> posttrain is what the importers call; posttrain -> OpenAI is what the exporters call;
each pair is written so that ``to_openai(from_openai(x))`` gives ``x`` back for every shape the
exporters write (the round trip the tests check).
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.interop._files import Notes, Source

#: the fields each grader type has in OpenAI's format (openai-python ``types/graders``)
GRADER_FIELDS: dict[str, frozenset[str]] = {
    "string_check": frozenset({"type", "name", "input", "reference", "operation"}),
    "text_similarity": frozenset({"type", "name", "input", "reference", "evaluation_metric",
                                  "pass_threshold"}),
    "python": frozenset({"type", "name", "source", "image_tag", "pass_threshold"}),
    "score_model": frozenset({"type", "name", "model", "input", "range", "sampling_params",
                              "pass_threshold"}),
    "label_model": frozenset({"type", "name", "model", "input", "labels", "passing_labels"}),
    "multi": frozenset({"type", "name", "graders", "calculate_output", "pass_threshold"}),
}
#: OpenAI's ``sampling_params`` names -> posttrain's ``sampling`` names
SAMPLING_IN = {"temperature": "temperature", "top_p": "top_p", "seed": "seed",
               "max_completion_tokens": "max_tokens", "max_completions_tokens": "max_tokens",
               "max_tokens": "max_tokens", "reasoning_effort": "reasoning_effort"}
SAMPLING_OUT = {"temperature": "temperature", "top_p": "top_p", "seed": "seed",
                "max_tokens": "max_completion_tokens", "reasoning_effort": "reasoning_effort"}
_UUID_SUFFIX = re.compile(r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def criterion_name(name: str) -> str:
    """A result's criterion name without the uuid suffix the API appends (``exact-<uuid>``)."""
    return _UUID_SUFFIX.sub("", name)


# ---- messages -----------------------------------------------------------------------------
def content_in(content: Any, source: Source, where: str) -> Any:
    """OpenAI message content (a string, one part, a list of parts: input_text, output_text,
    input_image, input_audio) -> chat-completions content (a string, or text / image_url /
    input_audio parts). One text part becomes a string."""
    if isinstance(content, str):
        return content
    parts = [content] if isinstance(content, dict) else content
    if not isinstance(parts, list):
        raise source.error(f"must be text, a content part or a list of parts, got {content!r}",
                           where)
    out: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]" if isinstance(content, list) else where
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise source.error("a text part needs `text`", f"{at}.text")
            out.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise source.error("an input_image part needs `image_url`", f"{at}.image_url")
            image = {"url": url, **({"detail": part["detail"]} if part.get("detail") else {})}
            out.append({"type": "image_url", "image_url": image})
        elif kind == "image_url":
            out.append({"type": "image_url", "image_url": part.get("image_url")})
        elif kind == "input_audio":
            out.append({"type": "input_audio", "input_audio": part.get("input_audio")})
        else:
            raise source.error(f"unknown content part type {kind!r} (input_text, output_text, "
                               "input_image, input_audio)", f"{at}.type")
    if len(out) == 1 and out[0]["type"] == "text":
        return out[0]["text"]
    return out


def content_out(content: Any) -> Any:
    """posttrain content -> OpenAI's (strings stay strings; parts become input_* parts)."""
    if isinstance(content, str) or content is None:
        return content
    out = []
    for part in content:
        if part.get("type") == "text":
            out.append({"type": "input_text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            out.append({"type": "input_image", "image_url": image.get("url"),
                        **({"detail": image["detail"]} if image.get("detail") else {})})
        else:
            out.append(dict(part))
    return out


_MESSAGE_KEYS = {"type", "role", "content"}


def messages_in(value: Any, source: Source, where: str, notes: Notes) -> list[dict[str, Any]]:
    """OpenAI input messages (``EasyInputMessage`` / ``EvalItem``, optionally with ``type:
    message``) -> chat messages."""
    if not isinstance(value, list) or not value:
        raise source.error("must be a non-empty list of messages", where)
    out = []
    for index, message in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(message, dict) or "role" not in message:
            raise source.error("a message needs `role` and `content`", at)
        if message.get("type", "message") != "message":
            raise source.error(f"only `message` items can be a prompt, got "
                               f"{message.get('type')!r}", f"{at}.type")
        extra = {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}
        keep = {k: v for k, v in extra.items() if k in ("name", "tool_calls", "tool_call_id")}
        notes.unknown(source, f"{at}.", {k: v for k, v in extra.items() if k not in keep},
                      _MESSAGE_KEYS | set(keep), "message")
        content = message.get("content")
        converted = {"role": message["role"],
                     "content": None if content is None else
                     content_in(content, source, f"{at}.content"), **keep}
        out.append(converted)
    return out


def messages_out(messages: list[dict[str, Any]], *, typed: bool = True) -> list[dict[str, Any]]:
    """chat messages -> OpenAI template messages (``type: message`` when ``typed``)."""
    out = []
    for message in messages:
        item = {"type": "message"} if typed else {}
        item.update({"role": message["role"], "content": content_out(message.get("content"))})
        for key in ("name", "tool_calls", "tool_call_id"):
            if key in message:
                item[key] = message[key]
        out.append(item)
    return out


# ---- graders ------------------------------------------------------------------------------
def judge_spec(model: str, judge: str | None) -> str:
    """A judge's model as posttrain names it: ``--judge`` when given, else the OpenAI model
    through the ``openai:`` provider."""
    if judge:
        return judge
    return model if ":" in model else f"openai:{model}"


def grader_in(spec: Any, source: Source, where: str, notes: Notes, *,
              judge: str | None = None, nested: bool = False) -> dict[str, Any]:
    """An OpenAI grader (testing criterion, RFT grader, multi's sub-grader) -> posttrain's grader
    spec: the same JSON but for the spellings posttrain does not read (``neq``, a bare judge
    model name, OpenAI's message shapes) and the fields it does not use (warned, dropped)."""
    if not isinstance(spec, dict):
        raise source.error("a grader is a JSON object", where)
    kind = spec.get("type")
    if kind not in GRADER_FIELDS:
        from posttrain.errors import did_you_mean

        raise source.error(f"unknown grader type {kind!r}" + did_you_mean(str(kind),
                                                                            GRADER_FIELDS)
                           + f" ({', '.join(GRADER_FIELDS)})", f"{where}.type")
    notes.unknown(source, f"{where}.", spec, GRADER_FIELDS[kind], f"{kind} grader")
    out = {k: v for k, v in spec.items() if k in GRADER_FIELDS[kind]}
    if kind == "string_check" and out.get("operation") == "neq":
        notes.warn(source, f"{where}.operation", "read `neq` (the guide's spelling) as `ne`")
        out["operation"] = "ne"
    threshold = out.get("pass_threshold")
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        bounds = (out.get("range") or [0, 1]) if kind == "score_model" else [0, 1]
        if kind in ("text_similarity", "python", "score_model") and \
                isinstance(bounds, list) and len(bounds) == 2 and \
                all(isinstance(b, (int, float)) for b in bounds) and \
                not bounds[0] <= threshold <= bounds[1]:
            what = "the criterion's range" if kind == "score_model" else "scores"
            never = "pass" if threshold > bounds[1] else "fail"
            raise source.error(f"{threshold:g} is outside [{bounds[0]:g}, {bounds[1]:g}], where "
                               f"{what} lie: no score could {never}", f"{where}.pass_threshold")
    if kind in ("score_model", "label_model"):
        if not isinstance(out.get("model"), str):
            raise source.error("required: the judge model", f"{where}.model")
        out["model"] = judge_spec(out["model"], judge)
        if "input" in out:
            out["input"] = messages_in(out["input"], source, f"{where}.input", notes)
    if kind == "multi":
        if nested:
            raise source.error("a multi grader cannot hold another multi grader", where)
        graders = out.get("graders")
        if isinstance(graders, dict) and isinstance(graders.get("type"), str):
            # the SDK types `graders` as one grader; the guides write a mapping
            graders = {str(graders.get("name") or "grader"): graders}
        if not isinstance(graders, dict) or not graders:
            raise source.error("must be a mapping of key -> grader", f"{where}.graders")
        out["graders"] = {key: grader_in(inner, source, f"{where}.graders.{key}", notes,
                                         judge=judge, nested=True)
                          for key, inner in graders.items()}
    return out


def openai_model_name(spec: str) -> str:
    """A posttrain model spec as OpenAI names the model: ``openai:gpt-4.1?base_url=...`` ->
    ``gpt-4.1`` (the provider and its options are posttrain's, not part of the name)."""
    return spec.removeprefix("openai:").split("?", 1)[0]


def grader_out(spec: dict[str, Any]) -> dict[str, Any]:
    """posttrain grader spec -> OpenAI's (judge ``openai:X`` -> ``X``, messages typed)."""
    out = dict(spec)
    if out.get("type") in ("score_model", "label_model"):
        out["model"] = openai_model_name(str(out.get("model", "")))
        if isinstance(out.get("input"), list):
            out["input"] = messages_out(out["input"])
    if out.get("type") == "multi" and isinstance(out.get("graders"), dict):
        out["graders"] = {k: grader_out(v) for k, v in out["graders"].items()}
    return out


# ---- sampling, formats, tools -------------------------------------------------------------
def response_format_in(value: Any, source: Source, where: str) -> dict[str, Any] | None:
    """Chat ``response_format`` or Responses ``text.format`` -> chat ``response_format``
    (``text`` is no format)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise source.error("must be a response format object", where)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if "json_schema" in value:  # chat shape
            return {"type": "json_schema", "json_schema": dict(value["json_schema"])}
        inner = {k: value[k] for k in ("name", "schema", "strict", "description") if k in value}
        return {"type": "json_schema", "json_schema": inner}  # Responses text.format shape
    raise source.error(f"unknown format type {kind!r} (text, json_object, json_schema)",
                       f"{where}.type")


def tools_in(tools: Any, source: Source, where: str, notes: Notes) -> list[dict[str, Any]] | None:
    """Chat or Responses function tools -> chat tools; hosted tools (web_search, file_search,
    ...) are warned and left out (nothing here runs them)."""
    if not tools:
        return None
    if not isinstance(tools, list):
        raise source.error("must be a list of tools", where)
    out = []
    for index, tool in enumerate(tools):
        at = f"{where}[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            notes.warn(source, at, f"left out: a hosted {tool.get('type') if isinstance(tool, dict) else tool!r}"
                       " tool runs only on OpenAI's servers")
            continue
        if isinstance(tool.get("function"), dict):
            out.append({"type": "function", "function": dict(tool["function"])})
        else:  # Responses shape: the function's fields at the top
            function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                        if k in tool}
            out.append({"type": "function", "function": function})
    return out or None


def _check_sampling(key: str, value: Any, source: Source, where: str) -> None:
    """A sampling value of the right type and range, refused at its own field otherwise."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in ("max_completion_tokens", "max_completions_tokens", "max_tokens"):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise source.error(f"must be a positive integer, got {value!r}", where)
    elif key == "seed":
        if not isinstance(value, int) or isinstance(value, bool):
            raise source.error(f"must be an integer, got {value!r}", where)
    elif key == "temperature":
        if not number or not 0 <= value <= 2:
            raise source.error(f"must be a number in [0, 2], got {value!r}", where)
    elif key == "top_p" and (not number or not 0 < value <= 1):
        raise source.error(f"must be a number in (0, 1], got {value!r}", where)


def sampling_in(params: Any, source: Source, where: str, notes: Notes
                ) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]] | None]:
    """``sampling_params`` -> (posttrain sampling, response_format, tools)."""
    if params is None:
        return {}, None, None
    if not isinstance(params, dict):
        raise source.error("must be an object", where)
    sampling: dict[str, Any] = {}
    for key, value in params.items():
        if key in SAMPLING_IN:
            if value is not None:
                _check_sampling(key, value, source, f"{where}.{key}")
                sampling[SAMPLING_IN[key]] = value
        elif key not in ("response_format", "text", "tools"):
            notes.warn(source, f"{where}.{key}", "not read: unknown sampling parameter")
    response_format = response_format_in(params.get("response_format"), source,
                                         f"{where}.response_format")
    text = params.get("text")
    if isinstance(text, dict) and text.get("format") is not None:
        response_format = response_format_in(text["format"], source, f"{where}.text.format")
    return sampling, response_format, tools_in(params.get("tools"), source, f"{where}.tools",
                                               notes)


def sampling_out(sampling: dict[str, Any], response_format: Any, tools: Any, *,
                 responses: bool = False) -> dict[str, Any]:
    out = {SAMPLING_OUT.get(k, k): v for k, v in sampling.items()}
    if response_format is not None:
        if responses:
            spec = response_format.get("json_schema") or {}
            out["text"] = {"format": {"type": response_format["type"], **spec}}
        else:
            out["response_format"] = response_format
    if tools:
        out["tools"] = tools
    return out

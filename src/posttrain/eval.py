"""An eval: dataset × prompt variants × graders (+ tags, pass bar), from YAML or Python.

YAML shape (every field but ``name`` and a dataset is optional)::

    name: capitals
    dataset: capitals.jsonl        # relative to this file (.jsonl, .csv, .json, .yaml); or `items:`
    messages:                      # {{item.<field>}} fills from the row; default: the row's `messages`
      - {role: system, content: "Answer with the city name only."}
      - {role: user, content: "{{item.question}}"}
    variants:                      # compared side by side; "default" is the base messages
      terse: {messages: [{role: user, content: "{{item.question}} One word."}]}
    graders: [{type: string_check, name: exact, input: "{{sample.output_text}}",
               reference: "{{item.answer}}", operation: ilike}]
    tag: category                  # item field(s) for the per-tag breakdown
    pass_bar: 0.8
    sampling: {temperature: 0, max_tokens: 64}
    tools: "{{item.tools}}"        # optional; also response_format
    solver: package.module:function   # optional multi-turn solver (tool-use environments)
    reasoning: strip               # strip (default): graders see the answer without <think>
                                   # blocks, the reasoning as {{sample.reasoning}}; keep: as written
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import build_grader
from posttrain.reasoning import MODES as REASONING_MODES
from posttrain.template import TemplateError, render
from posttrain.types import ChatRequest, Completion, Item

DEFAULT_VARIANT = "default"
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

    from posttrain.graders.registry import did_you_mean
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


_TOP_LEVEL_KEYS = {
    "name", "description", "dataset", "items", "messages", "input", "variants", "graders", "tag",
    "tags", "pass_bar", "sampling", "tools", "tool_choice", "response_format", "solver",
    "id_field", "score", "split", "metadata", "reasoning",
}


@dataclass
class Variant:
    """A prompt variant: its own messages and/or sampling over the eval's defaults."""

    name: str
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass
class Eval:
    name: str
    items: list[Item]
    graders: list[Grader]
    messages: list[dict[str, Any]] | None = None
    variants: dict[str, Variant] = field(default_factory=dict)
    tag_fields: list[str] = field(default_factory=list)
    pass_bar: float | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    tools: Any = None
    tool_choice: Any = None
    response_format: Any = None
    solver: str | None = None
    primary: str | None = None  # grader whose value is the sample's score; default: mean of all
    description: str = ""
    source: Path | None = None
    dataset: Path | None = None  # the dataset file, when the rows come from one
    grader_specs: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str = "strip"  # strip | keep: see posttrain.reasoning

    def __post_init__(self) -> None:
        # the base messages first, then the named variants in file order
        self.variants = {DEFAULT_VARIANT: self.variants.get(DEFAULT_VARIANT, Variant(DEFAULT_VARIANT)),
                         **self.variants}

    # ---- requests -------------------------------------------------------------------------
    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(self.variants)
            raise UserError(f"unknown variant {name!r}; this eval has: {known}",
                            field="--variant") from None

    def request_for(self, item: Item, variant_name: str = DEFAULT_VARIANT) -> ChatRequest:
        """The chat request for one item under one variant (templates filled)."""
        variant = self.variant(variant_name)
        context = {"item": item.data}
        template = variant.messages or self.messages
        try:
            if template is None:
                messages = item.data.get("messages")
                if not isinstance(messages, list):
                    raise UserError("the eval has no `messages` template and the row has no "
                                    "`messages` list", file=self.dataset or self.source,
                                    line=item.line, field="messages")
                messages = [dict(message) for message in messages]
            else:
                messages = [
                    {**message, "content": render(message.get("content", ""), context,
                                                  keep_type=False)}
                    if isinstance(message.get("content"), str) else render(message, context)
                    for message in template
                ]
            if variant.system is not None:
                messages = [m for m in messages if m.get("role") not in ("system", "developer")]
                messages.insert(0, {"role": "system",
                                    "content": render(variant.system, context, keep_type=False)})
            tools = render(self.tools, context) if self.tools is not None else None
            response_format = (render(self.response_format, context)
                               if self.response_format is not None else None)
        except TemplateError as exc:
            # the row lacks what the eval's templates read: name the row where it is
            raise UserError(f"the eval's template reads {exc}", file=self.dataset or self.source,
                            line=item.line, field=f"item {item.id}") from None
        sampling = {**self.sampling, **variant.sampling}
        extra = {k: v for k, v in sampling.items() if k not in _SAMPLING_KEYS}
        return ChatRequest(
            messages=messages, tools=tools or None, tool_choice=self.tool_choice,
            response_format=response_format,
            temperature=sampling.get("temperature"), max_tokens=sampling.get("max_tokens"),
            top_p=sampling.get("top_p"), seed=sampling.get("seed"), stop=sampling.get("stop"),
            extra=extra,
        )

    def sample_of(self, completion: Completion, request: ChatRequest | None = None
                  ) -> dict[str, Any]:
        """The grader's ``sample`` for an answer to this eval (its reasoning mode, and the
        request's ``response_format`` deciding whether ``output_json`` is parsed)."""
        response_format = request.response_format if request is not None else None
        return completion.to_sample(response_format, reasoning=self.reasoning)

    def tags_of(self, item: Item) -> list[str]:
        return item.tags

    # ---- identity -------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of what defines the eval's requests (dataset + templates), for run identity."""
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        for item in self.items:
            digest.update(item.id.encode())
            digest.update(json.dumps(item.data, sort_keys=True, default=str).encode())
        digest.update(json.dumps([self.messages, self.sampling, self.tools, self.response_format,
                                  {k: vars(v) for k, v in sorted(self.variants.items())}],
                                 sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    async def aclose(self) -> None:
        """Close what the graders opened (judge clients)."""
        for grader in self.graders:
            await grader.aclose()

    def load_solver(self) -> Callable[..., Any] | None:
        if self.solver is None:
            return None
        module_name, _, attr = self.solver.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr or "solve")
        except (ImportError, AttributeError) as exc:
            raise UserError(f"cannot load solver {self.solver!r}: {exc}", file=self.source,
                            field="solver") from None


# ---- building from data ---------------------------------------------------------------------
def make_items(rows: Sequence[tuple[int, dict[str, Any]]], *, tag_fields: Sequence[str] = (),
               id_field: str = "id", source: Path | None = None) -> list[Item]:
    items: list[Item] = []
    seen: dict[str, tuple[int, bool]] = {}  # id -> (line, whether the row wrote it)
    for line, row in rows:
        row = exact_values(row)
        raw_id = row.get(id_field)
        item_id = str(raw_id) if raw_id is not None else str(line)
        if item_id in seen:
            first, written = seen[item_id]
            how = [f"line {first} has no `{id_field}`, so its id is its line number"] \
                if not written else []
            if raw_id is None:
                how.append(f"this row has no `{id_field}`, so its id is its line number {line}")
            note = f" ({'; '.join(how)}: give every row an `{id_field}`, or none)" if how else ""
            raise UserError(f"duplicate item id {item_id!r} (first on line {first}){note}",
                            file=source, line=line, field=id_field)
        seen[item_id] = (line, raw_id is not None)
        tags: list[str] = []
        for tag_field in tag_fields:
            value = row.get(tag_field)
            if isinstance(value, list):
                tags.extend(str(v) for v in value)
            elif value is not None:
                tags.append(str(value))
        if "tags" not in tag_fields and isinstance(row.get("tags"), list):
            tags.extend(str(v) for v in row["tags"])
        items.append(Item(id=item_id, data=row, tags=tags, line=line))
    return items


def exact_values(value: Any) -> Any:
    """``value`` with what JSON cannot carry exactly kept as its text: an integer beyond 64
    bits becomes its decimal string (``12345678901234567890123``), a NaN or infinity its
    name (``nan``, ``inf``); everything else unchanged (the same object when nothing
    changes). The loaders keep the text as written; this covers rows built in Python."""
    import math

    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        changed = {key: exact_values(inner) for key, inner in value.items()}
        return value if all(changed[k] is value[k] for k in value) else changed
    if isinstance(value, list):
        items = [exact_values(inner) for inner in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


#: chat-completions message roles and the keys a message may carry
ROLES = ("system", "developer", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
#: content part types and the keys each takes
PART_KEYS = {"text": ("type", "text"), "image_url": ("type", "image_url"),
             "input_audio": ("type", "input_audio"), "file": ("type", "file")}


def message_problem(message: Any) -> tuple[str, str] | None:
    """(field inside the message, what is wrong) for a chat message, or None when it is fine:
    a known role, known keys (did you mean), content present (an assistant message with
    ``tool_calls`` may omit it), content a string or a list of known parts."""
    from posttrain.graders.registry import did_you_mean

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
    from posttrain.graders.registry import did_you_mean

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
    from posttrain.graders.registry import did_you_mean

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
    from posttrain.graders.registry import did_you_mean

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


def _check_request_shapes(spec: dict[str, Any], first: Item, source: Path | None,
                          dataset: Path | None) -> None:
    """``tools``, ``tool_choice`` and ``response_format`` have the chat-completions shapes
    (checked for every provider, templated ones as the first row renders them)."""
    context = {"item": first.data}
    row = (f" (as the first row renders it: {dataset}:{first.line})" if dataset
           else f" (as the first item, {first.id}, renders it)")
    tools = None
    for key, check in (("tools", tools_problem), ("response_format", response_format_problem)):
        if spec.get(key) is None:
            continue
        value = render(spec[key], context)
        if value is None and isinstance(spec[key], str):
            continue  # a row whose field is null sends none (a suite's per-row tools)
        if key == "tools":
            tools = value
        problem = check(value)
        if problem is not None:
            inner, reason = problem
            whole = isinstance(spec[key], str)  # the whole value comes from the row
            if whole:
                reason += row
            elif inner:
                key += inner if inner.startswith("[") else f".{inner}"
            raise UserError(reason, file=source, field=key)
    if spec.get("tool_choice") is not None:
        reason = tool_choice_problem(spec["tool_choice"], tools)
        if reason is not None:
            raise UserError(reason, file=source, field="tool_choice")


def _check_template_syntax(spec: dict[str, Any], source: Path | None) -> None:
    """A malformed placeholder (``{{x}``, ``{{ x | upper }}``) anywhere a template is rendered
    is an error at load time, naming the field (``load_eval`` adds its line)."""
    from posttrain.template import GRADER_NOT_TEMPLATES, syntax_errors

    templates = {key: spec[key] for key in ("messages", "input", "tools", "response_format",
                                            "variants") if key in spec}
    problems = [*syntax_errors(templates),
                *syntax_errors(spec.get("graders"), "graders", skip=GRADER_NOT_TEMPLATES)]
    if problems:
        where, exc = problems[0]
        raise UserError(str(exc), file=source, field=where)


#: the fields of the grader's ``sample`` (see ``Completion.to_sample``); ``transcript`` only
#: with a ``solver``
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools", "choices", "reasoning", "meta")


def _check_paths(spec: dict[str, Any], first: Item, *, solver: bool, source: Path | None,
                 dataset: Path | None) -> None:
    """Every placeholder of every template (messages, variants, tools, response_format and
    graders) resolves before anything is sent: ``item.*`` paths against the first row,
    ``sample.*`` paths against the fields a sample has. The error names the eval file's own
    field (``load_eval`` adds its line) and the row it was checked against."""
    from posttrain.graders.registry import did_you_mean
    from posttrain.template import (
        GRADER_NOT_TEMPLATES,
        TemplateError,
        placeholders_by_field,
        resolve,
    )

    sample_fields = SAMPLE_FIELDS + (("transcript",) if solver else ())
    row = f"{dataset}:{first.line}" if dataset is not None and first.line else f"item {first.id}"
    templates = {key: spec[key] for key in ("messages", "input", "tools", "response_format",
                                            "variants") if key in spec}
    found = [*placeholders_by_field(templates),
             *placeholders_by_field(spec.get("graders"), "graders", skip=GRADER_NOT_TEMPLATES)]
    for where, path in found:
        root, _, rest = path.partition(".")
        root = root.split("[", 1)[0]
        if root == "item":
            try:
                resolve(path, {"item": first.data})
            except TemplateError as exc:
                missing = exc.reason.split("'")[1] if exc.reason.count("'") >= 2 else ""
                hint = did_you_mean(missing, first.data) if exc.step == 1 and missing else ""
                raise UserError(f"{{{{{path}}}}}: the first row ({row}) has {exc.reason}{hint}",
                                file=source, field=where) from None
        elif root == "sample" and where.startswith("graders"):
            name = rest.split(".", 1)[0].split("[", 1)[0]
            if name not in sample_fields:
                raise UserError(f"{{{{{path}}}}}: a sample has no field {name!r}"
                                + did_you_mean(name, sample_fields)
                                + f" (it has {', '.join(sample_fields)})",
                                file=source, field=where)
        elif not (root == "pair" and where.startswith("graders")):
            allowed = "`item.*` and, in graders, `sample.*`"
            raise UserError(f"{{{{{path}}}}}: a template reads {allowed}, not {root!r}",
                            file=source, field=where)


def resolve_judge(spec: str) -> Any:
    """The default way a judge grader reaches its model: the spec (or a models-file name) as
    ``posttrain eval --model`` reads it."""
    from posttrain.models import resolve_model

    return resolve_model(spec)


def check_share(value: Any) -> float:
    """A pass bar or score threshold: a finite number in [0, 1]; ValueError saying so."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ValueError(f"must be a number from 0 to 1, got {value!r}")
    if not 0 <= value <= 1:
        if 1 < value <= 100:
            raise ValueError(f"must be a share from 0 to 1, got {value:g}: write "
                             f"{value / 100:g} for {value:g}%")
        raise ValueError(f"must be a share from 0 to 1 (0.8 for 80%), got {value!r}")
    return float(value)


def _check_row_messages(items: Sequence[Item], dataset: Path | None, source: Path | None, *,
                        from_items: bool) -> None:
    """The eval has no ``messages`` template: every row must carry valid ``messages``, checked
    now, naming the dataset's line (or the eval file's ``items[i]``)."""
    for index, item in enumerate(items):
        value = item.data.get("messages")
        where = f"items[{index}].messages" if from_items else "messages"
        file, line = (source, None) if from_items else (dataset or source, item.line)
        if not isinstance(value, list) or not value:
            got = "no `messages`" if value is None else f"messages {value!r}"
            raise UserError(f"the eval has no `messages` template, so each row needs its own "
                            f"`messages` list; this row has {got}", file=file, line=line,
                            field=where)
        _check_messages(value, file, where, line=line)


def eval_from_dict(spec: dict[str, Any], *, source: Path | None = None,
                   base_dir: Path | None = None,
                   model_factory: Callable[[str], Any] | None = None,
                   rows: Sequence[tuple[int, dict[str, Any]]] | None = None) -> Eval:
    """Build an Eval from the YAML structure (already parsed). ``rows`` overrides the dataset."""
    from posttrain.data.loaders import load_rows

    if not isinstance(spec, dict):
        raise UserError("an eval file must be a mapping", file=source)
    unknown = sorted(set(spec) - _TOP_LEVEL_KEYS)
    if unknown:
        from posttrain.graders.registry import did_you_mean

        raise UserError("unknown field" + did_you_mean(str(unknown[0]), _TOP_LEVEL_KEYS),
                        file=source, field=str(unknown[0]))
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise UserError("required: a non-empty string", file=source, field="name")
    _check_template_syntax(spec, source)
    base_dir = base_dir or (source.parent if source else Path.cwd())

    tag_fields = _as_list(spec.get("tag", spec.get("tags")))
    id_field = spec.get("id_field", "id")
    dataset_path: Path | None = None
    if rows is None:
        if "items" in spec and "dataset" in spec:
            raise UserError("give `dataset: FILE` or `items: [...]`, not both", file=source,
                            field="items")
        if "items" in spec:
            if not isinstance(spec["items"], list):
                raise UserError("must be a list of objects", file=source, field="items")
            rows = [(index + 1, row) for index, row in enumerate(spec["items"])]
            for index, row in rows:
                if not isinstance(row, dict):
                    raise UserError("must be an object", file=source, field=f"items[{index - 1}]")
        elif isinstance(spec.get("dataset"), str):
            dataset_path = (base_dir / spec["dataset"]).resolve()
            if not dataset_path.exists():
                raise UserError(f"dataset not found: {dataset_path}", file=source, field="dataset")
            rows = load_rows(dataset_path)
        else:
            raise UserError("required: `dataset: FILE` or `items: [...]`", file=source,
                            field="dataset")
    items = make_items(rows, tag_fields=tag_fields, id_field=id_field,
                       source=dataset_path or source)
    if not items:
        raise UserError("the dataset has no rows", file=dataset_path or source, field="dataset")

    if "messages" in spec and "input" in spec:
        raise UserError("`input` is another name for `messages`: give one of them", file=source,
                        field="input")
    messages = spec.get("messages", spec.get("input"))
    if messages is not None:
        messages = _check_messages(messages, source,
                                   "messages" if "messages" in spec else "input")

    variants: dict[str, Variant] = {}
    raw_variants = spec.get("variants") or {}
    if not isinstance(raw_variants, dict):
        raise UserError("must be a mapping of name -> {messages, system, sampling}", file=source,
                        field="variants")
    for variant_name, variant_spec in raw_variants.items():
        where = f"variants.{variant_name}"
        if not isinstance(variant_spec, dict):
            raise UserError("must be a mapping", file=source, field=where)
        extra = sorted(set(variant_spec) - {"messages", "system", "sampling"})
        if extra:
            from posttrain.graders.registry import did_you_mean

            raise UserError("unknown field" + did_you_mean(
                str(extra[0]), ("messages", "system", "sampling")) + " (a variant has messages, "
                "system, sampling)", file=source, field=f"{where}.{extra[0]}")
        variant_messages = variant_spec.get("messages")
        if variant_messages is not None:
            variant_messages = _check_messages(variant_messages, source, f"{where}.messages")
        variants[str(variant_name)] = Variant(
            name=str(variant_name), messages=variant_messages, system=variant_spec.get("system"),
            sampling=check_sampling(variant_spec.get("sampling") or {}, source,
                                    f"{where}.sampling"),
        )

    grader_specs = spec.get("graders")
    if not isinstance(grader_specs, list) or not grader_specs:
        raise UserError("required: a non-empty list of graders", file=source, field="graders")
    graders: list[Grader] = []
    names: set[str] = set()
    for index, grader_spec in enumerate(grader_specs):
        context = GraderContext(base_dir=base_dir, model_factory=model_factory or resolve_judge,
                                source=str(source) if source else "<eval>")
        try:
            grader = build_grader(grader_spec, context)
        except UserError as exc:
            raise exc.at(file=source, field_prefix=f"graders[{index}]") from None
        if grader.name in names:
            raise UserError(f"duplicate grader name {grader.name!r}", file=source,
                            field=f"graders[{index}].name")
        names.add(grader.name)
        graders.append(grader)

    pass_bar = spec.get("pass_bar")
    if pass_bar is not None:
        try:
            pass_bar = check_share(pass_bar)
        except ValueError as exc:
            raise UserError(str(exc), file=source, field="pass_bar") from None
    sampling = check_sampling(spec.get("sampling") or {}, source, "sampling")
    for tag_field in tag_fields:
        if tag_field != "tags" and not any(tag_field in item.data for item in items):
            from posttrain.graders.registry import did_you_mean

            raise UserError(f"no row has a field {tag_field!r}"
                            + did_you_mean(tag_field, items[0].data), file=source,
                            field="tag" if "tag" in spec else "tags")
    if messages is None and any(v.messages is None for v in
                                [variants.get(DEFAULT_VARIANT, Variant(DEFAULT_VARIANT)),
                                 *variants.values()]):
        _check_row_messages(items, dataset_path, source, from_items=dataset_path is None)
    _check_paths(spec, items[0], solver=bool(spec.get("solver")), source=source,
                 dataset=dataset_path)
    _check_request_shapes(spec, items[0], source, dataset_path)
    primary = spec.get("score")
    if primary is not None and primary not in names:
        raise UserError(f"names no grader ({', '.join(sorted(names))})", file=source,
                        field="score")
    reasoning = spec.get("reasoning", "strip")
    if reasoning not in REASONING_MODES:
        raise UserError(f"must be one of {', '.join(REASONING_MODES)}; got {reasoning!r}",
                        file=source, field="reasoning")
    return Eval(
        name=name, items=items, graders=graders, messages=messages, variants=variants,
        tag_fields=tag_fields, pass_bar=pass_bar, sampling=dict(sampling),
        tools=spec.get("tools"), tool_choice=spec.get("tool_choice"),
        response_format=spec.get("response_format"), solver=spec.get("solver"), primary=primary,
        description=str(spec.get("description") or ""), source=source, dataset=dataset_path,
        grader_specs=list(grader_specs), reasoning=reasoning,
    )


def load_eval(path: str | Path, *, model_factory: Callable[[str], Any] | None = None) -> Eval:
    """Load an eval from a YAML (or JSON) file: YAML 1.2 core schema, inline ``items`` as
    written (see ``posttrain.data.yaml12``), UTF-8 with or without a byte-order mark."""
    from posttrain.data import yaml12

    path = Path(path).resolve()  # errors name files by their absolute path, everywhere
    spec, text = yaml12.load_file(path, what="eval file", items_key="items")
    try:
        return eval_from_dict(spec, source=path, model_factory=model_factory)
    except UserError as exc:
        if exc.line is None and exc.field and exc.file == str(path.resolve()):
            exc.line = yaml_line(text, exc.field)
        raise


def yaml_line(text: str, field_path: str) -> int | None:
    """1-based line of ``a.b[2].c`` in a YAML document (the deepest part that exists)."""
    import re

    import yaml

    from posttrain.data import yaml12

    try:
        node = yaml12.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_path):
        if node is None:
            break
        if key and isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            line = match.start_mark.line + 1
            for k, _v in node.value:
                if getattr(k, "value", None) == key:
                    line = k.start_mark.line + 1
            node = match
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line

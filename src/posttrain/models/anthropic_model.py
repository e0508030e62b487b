"""``anthropic:MODEL`` through the official SDK (optional extra ``posttrain[anthropic]``).

Chat-completions requests are translated to the Messages API (``POST /v1/messages``, reference:
https://docs.anthropic.com/en/api/messages, and the ``MessageCreateParams`` types of the
``anthropic`` SDK) and answers back, so evals and graders see the same shapes whichever provider
answered. :func:`to_anthropic` is the whole mapping; fields the Messages API has no form for
(``seed``, ``min_p``, penalties, ...) are refused before the first request
(``posttrain.models.base.FIELD_SUPPORT``), never dropped.

Tested with ``anthropic`` 0.40 to 2.x: since 1.0 the SDK has no ``temperature``, ``top_p`` or
``top_k`` keywords, so fields the installed SDK lacks travel in ``extra_body`` and the JSON body
is the same whichever version is installed (:func:`posttrain.models.base.split_sdk_arguments`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from posttrain.models.base import (
    SUPPORTS,
    FatalError,
    Price,
    UnsupportedField,
    max_tokens_of,
    response_format_instruction,
    split_sdk_arguments,
    supported_fields,
)
from posttrain.models.identity import EndpointIdentity
from posttrain.models.openai_compat import sdk_errors
from posttrain.plugins import register_provider
from posttrain.types import ChatRequest, Completion

#: ``max_tokens`` is required by the Messages API; this is sent when the eval sets none
DEFAULT_MAX_TOKENS = 1024
#: ``output_config.effort`` levels (``OutputConfigParam``); ``reasoning_effort`` takes them as is
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
#: ``service_tier`` values the Messages API takes
SERVICE_TIERS = ("auto", "standard_only")
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _capability(capabilities: dict[str, Any] | None, *path: str) -> bool | None:
    """``capabilities.<path>.supported`` from the Models API (None: not reported)."""
    node: Any = capabilities
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    supported = node.get("supported") if isinstance(node, dict) else None
    return supported if isinstance(supported, bool) else None


def _content(content: Any) -> Any:
    """Chat-completions content (a string or parts) as Messages API content."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return json.dumps(content)
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            head, _, data = url.partition(",")
            media = head.removeprefix("data:").removesuffix(";base64")
            if url.startswith("data:") and head.endswith(";base64") and media in _MEDIA_TYPES:
                blocks.append({"type": "image", "source": {"type": "base64",
                                                           "media_type": media, "data": data}})
            elif url.startswith(("http://", "https://")):
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
            else:
                raise UnsupportedField("messages", "an image the Messages API cannot take (a "
                                       f"URL or base64 {', '.join(_MEDIA_TYPES)})")
        else:
            raise UnsupportedField("messages", f"a content part of type {kind!r} has no "
                                   "Messages API form here (text and image_url do)")
    return blocks


def _messages(request: ChatRequest) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, messages): system/developer messages become ``system``, ``tool`` messages
    ``tool_result`` blocks of a user turn, assistant ``tool_calls`` ``tool_use`` blocks."""
    system_parts: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            if isinstance(content, list):
                system_parts.extend(str(p.get("text", "")) for p in content
                                    if isinstance(p, dict))
            else:
                system_parts.append(content if isinstance(content, str) else json.dumps(content))
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                     "content": _content(content)}
            if messages and messages[-1]["role"] == "user" and \
                    isinstance(messages[-1]["content"], list):
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            text = _content(content)
            if isinstance(text, list):
                blocks.extend(text)
            elif text:
                blocks.append({"type": "text", "text": text})
            for call in message["tool_calls"]:
                function = call.get("function", {})
                arguments = function.get("arguments") or "{}"
                blocks.append({"type": "tool_use", "id": call.get("id", ""),
                               "name": function.get("name", ""),
                               "input": json.loads(arguments) if isinstance(arguments, str)
                               else arguments})
            messages.append({"role": "assistant", "content": blocks})
        elif role == "user" and messages and messages[-1]["role"] == "user" and \
                isinstance(messages[-1]["content"], list):
            # consecutive user turns are one (the API combines them too): after tool results,
            # the text follows the tool_result blocks, as the Messages API requires
            more = _content(content)
            messages[-1]["content"].extend(
                more if isinstance(more, list) else [{"type": "text", "text": more}])
        elif role in ("user", "assistant"):
            messages.append({"role": role, "content": _content(content)})
        else:
            raise UnsupportedField("messages", f"a message with role {role!r} has no Messages "
                                   "API form (system, developer, user, assistant, tool do)")
    return system_parts, messages


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") if tool.get("type") == "function" else None
    if not isinstance(function, dict):
        raise UnsupportedField("tools", f"a tool of type {tool.get('type')!r} has no Messages "
                               "API form here (function tools do)")
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise UnsupportedField("tools", "a function tool needs function.name (keys: "
                               f"{', '.join(map(str, function)) or 'none'})")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """``tool_choice`` + ``parallel_tool_calls`` as the Messages API ``tool_choice``
    (``ToolChoiceAuto/Any/Tool/None``): auto -> auto, none -> none, required -> any, a named
    function -> tool; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use: true``."""
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and \
            isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise UnsupportedField("tool_choice", f"{choice!r} has no Messages API form (auto, none, "
                               "required, or {type: function, function: {name: ...}})")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def to_anthropic(request: ChatRequest, model: str | None = None,
                 capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Messages API request body for a chat-completions request (with ``model`` if given).

    ``capabilities`` is the model's ``capabilities`` from the Models API (``GET
    /v1/models/{id}``), when known: a ``json_schema`` response format becomes
    ``output_config.format`` (structured outputs) unless they say the model has none, and then a
    system instruction; ``reasoning_effort`` is refused where they say the level is not
    supported. UnsupportedField for any field the Messages API cannot carry (see
    ``FIELD_SUPPORT`` in ``posttrain.models.base`` for the table).
    """
    fields = supported_fields(request, "anthropic")
    system_parts, messages = _messages(request)
    body: dict[str, Any] = {"model": model} if model is not None else {}
    body["messages"] = messages
    body["max_tokens"] = max_tokens_of(fields) or DEFAULT_MAX_TOKENS
    output_config: dict[str, Any] = {}
    response_format = fields.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise UnsupportedField("response_format", "json_schema needs json_schema.schema")
            if _capability(capabilities, "structured_outputs") is False:
                system_parts.append(response_format_instruction(response_format) or "")
            else:
                output_config["format"] = {"type": "json_schema", "schema": schema}
        elif kind == "json_object":
            system_parts.append(response_format_instruction(response_format) or "")
        elif kind != "text":
            raise UnsupportedField("response_format", f"type {kind!r} has no Messages API form "
                                   "(json_schema, json_object, text)")
    effort = fields.get("reasoning_effort")
    if effort is not None:
        if effort == "none":
            if _capability(capabilities, "thinking", "types", "disabled") is False:
                raise UnsupportedField("reasoning_effort", "none: this model cannot turn "
                                       "thinking off (Models API capabilities)")
            body["thinking"] = {"type": "disabled"}
        elif effort in EFFORT_LEVELS:
            if _capability(capabilities, "effort") is False or \
                    _capability(capabilities, "effort", effort) is False:
                raise UnsupportedField("reasoning_effort", f"{effort}: this model does not take "
                                       "that effort level (Models API capabilities.effort)")
            output_config["effort"] = effort
        else:
            raise UnsupportedField("reasoning_effort", f"{effort!r} has no Messages API form "
                                   f"({', '.join(EFFORT_LEVELS)}, or none to turn thinking off)")
    if output_config:
        body["output_config"] = output_config
    if system_parts:
        body["system"] = "\n\n".join(system_parts)
    for name in ("temperature", "top_p", "top_k"):
        if name in fields:
            body[name] = fields[name]
    if "stop" in fields:
        stop = fields["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if "tools" in fields:
        body["tools"] = [_tool(tool) for tool in fields["tools"]]
    choice = _tool_choice(fields.get("tool_choice"), fields.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if "user" in fields:
        body["metadata"] = {"user_id": str(fields["user"])}
    if "service_tier" in fields:
        if fields["service_tier"] not in SERVICE_TIERS:
            raise UnsupportedField("service_tier", f"{fields['service_tier']!r}: the Messages "
                                   f"API takes {' or '.join(SERVICE_TIERS)}")
        body["service_tier"] = fields["service_tier"]
    extra_body = fields.get("extra_body")
    if isinstance(extra_body, dict):
        body.update(extra_body)
    return body


def usage_from_anthropic(usage: Any) -> dict[str, int]:
    """A Messages API ``usage`` object as posttrain's token counts.

    Field names from the Anthropic API reference (``Usage`` in the ``anthropic`` SDK): its
    ``input_tokens`` *excludes* ``cache_read_input_tokens`` and ``cache_creation_input_tokens``,
    so all three are added into posttrain's ``input_tokens``; ``output_tokens`` includes extended
    thinking (``output_tokens_details.thinking_tokens``), billed as output.
    """
    def count(source: Any, name: str) -> int:
        value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    fresh = count(usage, "input_tokens")
    cached = count(usage, "cache_read_input_tokens")
    written = count(usage, "cache_creation_input_tokens")
    details = (usage.get("output_tokens_details") if isinstance(usage, dict)
               else getattr(usage, "output_tokens_details", None))
    counts = {"input_tokens": fresh + cached + written,
              "output_tokens": count(usage, "output_tokens")}
    for key, value in (("cached_input_tokens", cached), ("cache_write_tokens", written),
                       ("reasoning_tokens", count(details, "thinking_tokens") if details else 0)):
        if value:
            counts[key] = value
    return counts


def from_anthropic(message: Any, latency_s: float, price: Price | None) -> Completion:
    """A Messages API ``Message`` as a Completion: text blocks are the answer, ``thinking``
    blocks the reasoning, ``tool_use`` blocks chat-completions tool calls; ``stop_reason`` maps
    to the chat-completions ``finish_reason``."""
    texts: list[str] = []
    thoughts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":  # extended thinking: reasoning, not the answer
            thoughts.append(getattr(block, "thinking", "") or "")
        elif block.type == "tool_use":
            tool_calls.append({"id": block.id, "type": "function",
                               "function": {"name": block.name, "arguments": json.dumps(block.input)}})
    finish = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls",
              "stop_sequence": "stop", "refusal": "content_filter",
              "model_context_window_exceeded": "length"}.get(message.stop_reason,
                                                             message.stop_reason)
    tokens = usage_from_anthropic(message.usage)
    served = getattr(message, "model", None)
    return Completion(text="".join(texts), tool_calls=tool_calls, finish_reason=finish,
                      reasoning="\n".join(t for t in thoughts if t) or None,
                      **tokens, latency_s=latency_s,
                      cost_usd=price.cost(**tokens) if price else 0.0,
                      served_model=served if isinstance(served, str) and served else None)


def _plain(value: Any) -> dict[str, Any] | None:
    """An SDK object (pydantic) or dict as a plain dict; None for anything else."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump()
    return value if isinstance(value, dict) else None


class AnthropicModel:
    """``anthropic:MODEL``: the Messages API through ``anthropic.AsyncAnthropic``, retries off
    (the runner owns retries). ``base_url`` points it at any server speaking the Messages API."""

    SUPPORTS = SUPPORTS["anthropic"]

    def __init__(self, name: str, model: str, *, api_key: str | None = None,
                 base_url: str | None = None, max_concurrency: int = 8,
                 price: Price | None = None, timeout_s: float = 120.0,
                 key_env: str | None = None, withheld_key: str | None = None) -> None:
        self.name = name
        self.model = model
        self.key_env = key_env or "ANTHROPIC_API_KEY"
        #: a variable whose key was not sent to this host (``posttrain.models.api_key_for``)
        self.withheld_key = withheld_key
        self.cache_id = f"anthropic:{base_url or 'default'}:{model}"
        self.max_concurrency = max_concurrency
        self.price = price
        self._api_key = api_key
        self._base_url = base_url
        self.timeout_s = timeout_s
        self._client: Any = None
        #: ``capabilities`` of the model from the Models API, once ``check`` has read them
        self.capabilities: dict[str, Any] | None = None
        # the Models API resolves an alias to its dated snapshot: that id is the identity
        self.identity = EndpointIdentity(name, self._probe)

    async def check(self) -> None:
        """Before the first request: the SDK, a key for Anthropic's API, and a model the
        Models API knows (UserError naming the spec)."""
        from posttrain.errors import UserError
        from posttrain.models.checks import require_key, require_packages

        require_packages(self.name, "anthropic")
        require_key(self.name, self.key_env, self._api_key,
                    self._base_url or "https://api.anthropic.com", needed=not self._base_url)
        import anthropic

        try:
            info = await self._get_client().models.retrieve(self.model,
                                                            timeout=min(10.0, self.timeout_s))
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            note = ""
            if self.withheld_key:
                note = (f"; no key was sent: {self.withheld_key} goes only to Anthropic's API, "
                        "the server ANTHROPIC_BASE_URL names and servers on this machine or "
                        f"network; to send it here, add &api_key_env={self.withheld_key} to the "
                        f"spec (models file: api_key_env: {self.withheld_key})")
            elif not self._api_key:
                note = f"; no key was sent ({self.key_env} is not set)"
            raise UserError(f"{self.name}: the API refused the credentials ({exc}){note}",
                            field="--model") from None
        except anthropic.NotFoundError:
            raise UserError(f"{self.name}: no model {self.model!r} at "
                            f"{self._base_url or 'api.anthropic.com'}", field="--model") from None
        except anthropic.APIConnectionError as exc:
            raise UserError(f"{self.name}: cannot connect to "
                            f"{self._base_url or 'api.anthropic.com'} ({exc})",
                            field="--model") from None
        except anthropic.APIError:
            return  # transient or unsupported (a proxy without the Models API): the run decides
        self.capabilities = _plain(getattr(info, "capabilities", None))

    async def _probe(self) -> str | None:
        info = await self._get_client().models.retrieve(self.model,
                                                         timeout=min(10.0, self.timeout_s))
        return getattr(info, "id", None) or None

    def _get_client(self) -> Any:
        if self._client is None:
            try:
                import anthropic
            except ImportError:
                raise FatalError("anthropic: models need the extra: pip install 'posttrain[anthropic]'") from None
            # without a key (a server you run that needs none) the SDK would read
            # ANTHROPIC_API_KEY itself, or refuse to send anything: a placeholder, as for the
            # openai SDK
            self._client = anthropic.AsyncAnthropic(api_key=self._api_key or "not-needed",
                                                    base_url=self._base_url, max_retries=0,
                                                    timeout=self.timeout_s)
        return self._client

    def to_wire(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages API body for ``request`` (UnsupportedField for a field it lacks)."""
        return to_anthropic(request, self.model, self.capabilities)

    async def generate(self, request: ChatRequest) -> Completion:
        import anthropic

        body = self.to_wire(request)
        client = self._get_client()
        started = time.perf_counter()
        with sdk_errors(anthropic, self.timeout_s):
            message = await client.messages.create(
                **split_sdk_arguments(client.messages.create, body))
        return from_anthropic(message, time.perf_counter() - started, self.price)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


@register_provider("anthropic", order=1, env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
                   hosted="https://api.anthropic.com", priced=True,
                   options={"base_url": "url", "api_key_env": "env", "concurrency": "count"})
def build(config: Any, *, api_key: str | None, withheld: str | None, concurrency: int | None,
          timeout_s: float) -> Any:
    """``anthropic:MODEL``: the Messages API through the ``anthropic`` SDK."""
    return AnthropicModel(config.name, config.model, api_key=api_key, base_url=config.base_url,
                          max_concurrency=concurrency or 8, price=config.price,
                          timeout_s=timeout_s, key_env=config.api_key_env, withheld_key=withheld)

"""``anthropic:MODEL`` through the official SDK (optional extra ``posttrain[anthropic]``).

Chat-completions messages, tools and tool calls are translated to the Messages API and back,
so evals and graders see the same shapes whichever provider answered.
"""

from __future__ import annotations

import json
import time
from typing import Any

from posttrain.models.base import FatalError, Price, response_format_instruction
from posttrain.models.identity import EndpointIdentity
from posttrain.models.openai_compat import sdk_errors
from posttrain.types import ChatRequest, Completion


def to_anthropic(request: ChatRequest) -> dict[str, Any]:
    """Translate a chat-completions request into Messages API arguments."""
    system_parts: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system_parts.append(content if isinstance(content, str) else json.dumps(content))
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                     "content": content if isinstance(content, str) else json.dumps(content)}
            if messages and messages[-1]["role"] == "user" and isinstance(messages[-1]["content"], list):
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if content:
                blocks.append({"type": "text", "text": content})
            for call in message["tool_calls"]:
                function = call.get("function", {})
                arguments = function.get("arguments") or "{}"
                blocks.append({"type": "tool_use", "id": call.get("id", ""),
                               "name": function.get("name", ""),
                               "input": json.loads(arguments) if isinstance(arguments, str) else arguments})
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append({"role": role, "content": content if content is not None else ""})
    instruction = response_format_instruction(request.response_format)
    if instruction:
        system_parts.append(instruction)
    kwargs: dict[str, Any] = {"messages": messages, "max_tokens": request.max_tokens or 1024}
    if system_parts:
        kwargs["system"] = "\n\n".join(system_parts)
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.stop:
        kwargs["stop_sequences"] = request.stop
    if request.tools:
        kwargs["tools"] = [
            {"name": tool["function"]["name"],
             "description": tool["function"].get("description", ""),
             "input_schema": tool["function"].get("parameters") or {"type": "object", "properties": {}}}
            for tool in request.tools if tool.get("type") == "function"
        ]
    return kwargs


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
              "stop_sequence": "stop"}.get(message.stop_reason, message.stop_reason)
    tokens = usage_from_anthropic(message.usage)
    served = getattr(message, "model", None)
    return Completion(text="".join(texts), tool_calls=tool_calls, finish_reason=finish,
                      reasoning="\n".join(t for t in thoughts if t) or None,
                      **tokens, latency_s=latency_s,
                      cost_usd=price.cost(**tokens) if price else 0.0,
                      served_model=served if isinstance(served, str) and served else None)


class AnthropicModel:
    def __init__(self, name: str, model: str, *, api_key: str | None = None,
                 base_url: str | None = None, max_concurrency: int = 8,
                 price: Price | None = None, timeout_s: float = 120.0) -> None:
        self.name = name
        self.model = model
        self.cache_id = f"anthropic:{base_url or 'default'}:{model}"
        self.max_concurrency = max_concurrency
        self.price = price
        self._api_key = api_key
        self._base_url = base_url
        self.timeout_s = timeout_s
        self._client: Any = None
        # the Models API resolves an alias to its dated snapshot: that id is the identity
        self.identity = EndpointIdentity(name, self._probe)

    async def check(self) -> None:
        """Before the first request: the SDK, a key for Anthropic's API, and a model the
        Models API knows (UserError naming the spec)."""
        from posttrain.errors import UserError
        from posttrain.models.checks import require_key, require_packages

        require_packages(self.name, "anthropic")
        require_key(self.name, "ANTHROPIC_API_KEY", self._api_key,
                    self._base_url or "https://api.anthropic.com", needed=not self._base_url)
        import anthropic

        try:
            await self._get_client().models.retrieve(self.model,
                                                     timeout=min(10.0, self.timeout_s))
        except anthropic.AuthenticationError as exc:
            raise UserError(f"{self.name}: the API refused the credentials ({exc})",
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
            self._client = anthropic.AsyncAnthropic(api_key=self._api_key, base_url=self._base_url,
                                                    max_retries=0, timeout=self.timeout_s)
        return self._client

    async def generate(self, request: ChatRequest) -> Completion:
        import anthropic

        client = self._get_client()
        started = time.perf_counter()
        with sdk_errors(anthropic, self.timeout_s):
            message = await client.messages.create(model=self.model, **to_anthropic(request))
        return from_anthropic(message, time.perf_counter() - started, self.price)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

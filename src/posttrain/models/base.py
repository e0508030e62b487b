"""The model contract and the errors a provider raises so the runner knows whether to retry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from posttrain.types import ChatRequest, Completion


class ModelError(Exception):
    """A request failed. ``retryable`` tells the runner whether another attempt may succeed."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableError(ModelError):
    """429, 5xx, timeouts, dropped connections and malformed response bodies."""

    retryable = True


class FatalError(ModelError):
    """4xx other than 408/409/429 (a bad request, a bad key): retrying cannot help."""


def classify_status(status: int) -> type[ModelError]:
    if status in (408, 409, 425, 429) or status >= 500:
        return RetryableError
    return FatalError


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens, as providers bill them.

    ``cached_input`` is the rate of prompt tokens read from the provider's prompt cache (OpenAI's
    "cached input", Anthropic's "cache hits"); ``cache_write`` the rate of prompt tokens written
    to it (Anthropic bills a 5-minute write at 1.25x the input rate). Either left ``None`` bills
    those tokens at the plain ``input`` rate, which is what a provider without that tier charges.
    """

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0,
             cache_write_tokens: int = 0, reasoning_tokens: int = 0) -> float:
        """USD for one request: the one cost formula every provider and ``pick`` use.

        ``input_tokens`` counts every prompt token, cached and cache-written ones included (the
        normalised count of :class:`posttrain.types.Completion`); ``output_tokens`` counts every
        generated token, reasoning included, so ``reasoning_tokens`` (a part of it, accepted so
        a usage dict can be passed whole) adds nothing: reasoning is billed as output.
        """
        del reasoning_tokens
        cached = max(0, min(cached_input_tokens, input_tokens))
        written = max(0, min(cache_write_tokens, input_tokens - cached))
        fresh = input_tokens - cached - written
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        return (fresh * self.input + cached * cached_rate + written * write_rate
                + output_tokens * self.output) / 1_000_000

    def as_dict(self) -> dict[str, float]:
        """The models-file form (``price:``), without the tiers left unset."""
        out = {"input": self.input, "output": self.output}
        if self.cached_input is not None:
            out["cached_input"] = self.cached_input
        if self.cache_write is not None:
            out["cache_write"] = self.cache_write
        return out


PRICE_KEYS = ("input", "output", "cached_input", "cache_write")


def price_from_dict(value: Any) -> Price | None:
    """A Price from ``{input, output, cached_input?, cache_write?}`` (USD per million tokens) or
    an ``(input, output)`` pair; None for None. Raises ValueError on anything else."""
    if value is None:
        return None
    if isinstance(value, Price):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return Price(float(value[0]), float(value[1]))
    if not isinstance(value, dict):
        raise ValueError("a price is {input, output, cached_input, cache_write} in USD per "
                         "million tokens")
    unknown = sorted(set(value) - set(PRICE_KEYS))
    if unknown:
        raise ValueError(f"unknown price field {unknown[0]!r} (known: {', '.join(PRICE_KEYS)})")
    rates: dict[str, float | None] = {}
    for key in PRICE_KEYS:
        rate = value.get(key)
        if rate is None:
            rates[key] = None
            continue
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
            raise ValueError(f"{key} must be a number of USD per million tokens, got {rate!r}")
        rates[key] = float(rate)
    return Price(rates["input"] or 0.0, rates["output"] or 0.0, rates["cached_input"],
                 rates["cache_write"])


@runtime_checkable
class Model(Protocol):
    """Anything that answers a chat request. ``name`` is the spec users wrote.

    A provider whose endpoint can report what it serves also has ``identity``
    (:class:`posttrain.models.identity.EndpointIdentity`); the response cache checks it before a
    hit is served. Without one, the cache relies on ``cache_id`` and its expiry.
    """

    name: str
    #: a stable identity for caching (provider + base URL + model), never containing a key
    cache_id: str
    max_concurrency: int
    price: Price | None

    async def generate(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...


def response_format_instruction(response_format: dict | None) -> str | None:
    """For providers without structured output: the format as a system instruction."""
    if not response_format:
        return None
    if response_format.get("type") == "json_schema":
        import json

        schema = (response_format.get("json_schema") or {}).get("schema", {})
        return "Respond with only a JSON object matching this JSON schema:\n" + json.dumps(schema)
    if response_format.get("type") == "json_object":
        return "Respond with only a JSON object."
    return None

"""The model contract and the errors a provider raises so the runner knows whether to retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from posttrain.errors import UserError
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

    # optional: ``to_wire(request)`` -> the request in this provider's wire form, raising
    # UnsupportedField for a field it cannot honour (see map_request)


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


# ---- request fields: what each provider honours, in one place --------------------------------

#: ChatRequest attributes that are request fields (``messages`` is always sent)
CORE_FIELDS = ("tools", "tool_choice", "response_format", "temperature", "max_tokens", "top_p",
               "seed", "stop")
#: the other ``sampling:`` keys of an eval, carried in ``ChatRequest.extra``
EXTRA_FIELDS = ("max_completion_tokens", "presence_penalty", "frequency_penalty",
                "reasoning_effort", "parallel_tool_calls", "logprobs", "top_logprobs",
                "logit_bias", "top_k", "min_p", "repetition_penalty", "service_tier",
                "verbosity", "user", "n", "extra_body")
REQUEST_FIELDS = CORE_FIELDS + EXTRA_FIELDS
PROVIDER_KINDS = ("openai", "anthropic", "hf", "vllm")
_EVAL_KEYS = {"messages", "tools", "tool_choice", "response_format"}  # not under ``sampling:``

_AS_IS = (True, "sent as is")
_LOCAL = "no request body: local generation"
_NO_LOGPROBS = ("posttrain does not read log-probabilities from this provider (false, which "
                "asks for none, is fine)")
_NO_TOP_LOGPROBS = "posttrain does not read log-probabilities from this provider"


def _row(openai: tuple[bool, str], anthropic: tuple[bool, str], hf: tuple[bool, str],
         vllm: tuple[bool, str]) -> dict[str, tuple[bool, str]]:
    return {"openai": openai, "anthropic": anthropic, "hf": hf, "vllm": vllm}


#: field -> provider -> (honoured, how it is sent / why it is refused). ``openai`` is both
#: clients (lean and SDK): the chat-completions body carries every field and the server decides.
#: A refused field stops the run before any request (:func:`map_request`); values a provider
#: cannot honour (``tool_choice: required`` on ``hf:``) are refused by its ``to_wire``.
FIELD_SUPPORT: dict[str, dict[str, tuple[bool, str]]] = {
    "tools": _row(_AS_IS, (True, "tools[].input_schema (function tools only)"),
                  (True, "the chat template's tools (a template without tools: described in "
                         "the system message, calls and results as `<tool_call>` text)"),
                  (True, "the chat template's tools (a template without tools: as for `hf:`)")),
    "tool_choice": _row(
        _AS_IS, (True, "auto, none; required -> any; a function -> {type: tool, name}"),
        (True, "auto; none leaves the tools out; required or a function: refused"),
        (True, "auto; none leaves the tools out; required or a function: refused")),
    "parallel_tool_calls": _row(
        _AS_IS, (True, "false -> tool_choice.disable_parallel_tool_use: true"),
        (True, "true only: the model is not constrained to one call"),
        (True, "true only: the model is not constrained to one call")),
    "response_format": _row(
        _AS_IS, (True, "json_schema -> output_config.format (a model without structured "
                       "outputs: a system instruction); json_object -> a system instruction"),
        (True, "json_schema, json_object -> a system instruction (no constrained decoding)"),
        (True, "json_schema, json_object -> structured outputs (guided decoding)")),
    "temperature": _row(_AS_IS, (True, "temperature"), (True, "sampling when > 0, else greedy"),
                        (True, "SamplingParams.temperature (unset: 0)")),
    "top_p": _row(_AS_IS, (True, "top_p"), (True, "top_p (when sampling)"),
                  (True, "SamplingParams.top_p")),
    "top_k": _row(_AS_IS, (True, "top_k"), (True, "top_k (when sampling)"),
                  (True, "SamplingParams.top_k")),
    "min_p": _row(_AS_IS, (False, "the Messages API has no min_p"), (True, "min_p"),
                  (True, "SamplingParams.min_p")),
    "max_tokens": _row(_AS_IS, (True, "max_tokens (required there: 1024 when unset)"),
                       (True, "max_new_tokens (256 when unset)"),
                       (True, "SamplingParams.max_tokens (256 when unset)")),
    "max_completion_tokens": _row(_AS_IS, (True, "max_tokens"), (True, "max_new_tokens"),
                                  (True, "SamplingParams.max_tokens")),
    "stop": _row(_AS_IS, (True, "stop_sequences"), (True, "the answer is cut at the first stop"),
                 (True, "SamplingParams.stop")),
    "seed": _row(_AS_IS, (False, "the Messages API has no seed; leave it out for this model"),
                 (True, "torch.manual_seed before sampling"), (True, "SamplingParams.seed")),
    "reasoning_effort": _row(
        _AS_IS, (True, "low, medium, high, xhigh, max -> output_config.effort; none -> "
                       "thinking: {type: disabled}; minimal: refused"),
        (False, "no reasoning setting for a local model"),
        (False, "no reasoning setting for a local model")),
    "presence_penalty": _row(_AS_IS, (False, "the Messages API has no presence_penalty"),
                             (False, "transformers has no presence_penalty"),
                             (True, "SamplingParams.presence_penalty")),
    "frequency_penalty": _row(_AS_IS, (False, "the Messages API has no frequency_penalty"),
                              (False, "transformers has no frequency_penalty"),
                              (True, "SamplingParams.frequency_penalty")),
    "repetition_penalty": _row(_AS_IS, (False, "the Messages API has no repetition_penalty"),
                               (True, "repetition_penalty"),
                               (True, "SamplingParams.repetition_penalty")),
    "logit_bias": _row(_AS_IS, (False, "the Messages API has no logit_bias"),
                       (False, "token biases are not applied by hf: here"),
                       (True, "SamplingParams.logit_bias (token ids)")),
    "logprobs": _row(_AS_IS, (False, _NO_LOGPROBS), (False, _NO_LOGPROBS),
                     (False, _NO_LOGPROBS)),
    "top_logprobs": _row(_AS_IS, (False, _NO_TOP_LOGPROBS), (False, _NO_TOP_LOGPROBS),
                         (False, _NO_TOP_LOGPROBS)),
    "service_tier": _row(_AS_IS, (True, "auto, standard_only; other tiers: refused"),
                         (False, _LOCAL), (False, _LOCAL)),
    "verbosity": _row(_AS_IS, (False, "the Messages API has no verbosity"), (False, _LOCAL),
                      (False, _LOCAL)),
    "user": _row(_AS_IS, (True, "metadata.user_id"), (False, _LOCAL), (False, _LOCAL)),
    "n": _row((True, "1 only (more answers: --epochs N)"), (True, "1 only (--epochs N)"),
              (True, "1 only (--epochs N)"), (True, "1 only (--epochs N)")),
    "extra_body": _row((True, "merged into the body"), (True, "merged into the body"),
                       (False, _LOCAL), (False, _LOCAL)),
}

#: the fields each provider honours (some only for some values: see FIELD_SUPPORT)
SUPPORTS: dict[str, frozenset[str]] = {
    kind: frozenset(f for f, row in FIELD_SUPPORT.items() if row[kind][0])
    for kind in PROVIDER_KINDS
}


def support_table() -> str:
    """:data:`FIELD_SUPPORT` as the Markdown table the README shows (a test keeps them equal)."""
    lines = ["| field | " + " | ".join(f"`{kind}:`" for kind in PROVIDER_KINDS) + " |",
             "| --- | " + " | ".join("---" for _ in PROVIDER_KINDS) + " |"]
    for field, row in FIELD_SUPPORT.items():
        cells = [text if honoured else f"**refused**: {text}"
                 for honoured, text in (row[kind] for kind in PROVIDER_KINDS)]
        lines.append(f"| `{field_label(field)}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class UnsupportedField(FatalError):
    """A request field, or a value of one, that a provider cannot honour: never retried.

    Raised by a provider's ``to_wire``; :func:`map_request` turns it into a ``UserError``
    naming the model spec before the first request, and a request that reaches ``generate``
    anyway (a judge's) fails with it as its error.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field_label(field)}: {reason}")


def field_label(field: str) -> str:
    """A field as the eval file spells it: ``sampling.seed``, ``tool_choice``."""
    return field if field in _EVAL_KEYS else f"sampling.{field}"


def set_fields(request: ChatRequest) -> dict[str, Any]:
    """Every field the request sets (``None`` and empty ``stop``/``tools`` are unset)."""
    fields: dict[str, Any] = {}
    for name in CORE_FIELDS:
        value = getattr(request, name)
        if value is None or (name in ("stop", "tools") and not value):
            continue
        fields[name] = value
    fields.update((key, value) for key, value in request.extra.items() if value is not None)
    return fields


def supported_fields(request: ChatRequest, kind: str) -> dict[str, Any]:
    """The request's set fields, after checking each against :data:`FIELD_SUPPORT`.

    UnsupportedField for the first field ``kind`` refuses, for ``n`` other than 1, and, except
    on ``openai`` (whose body carries any key), for a field posttrain does not know.
    """
    fields = set_fields(request)
    for name, value in fields.items():
        row = FIELD_SUPPORT.get(name)
        if row is None:
            if kind == "openai":
                continue
            raise UnsupportedField(name, f"unknown request field for {kind}: models")
        honoured, how = row[kind]
        if not honoured and not (name == "logprobs" and value is False):  # false asks nothing
            raise UnsupportedField(name, how)
        if name == "n" and value != 1:
            raise UnsupportedField(name, "posttrain stores one answer per request; sample an "
                                         "item several times with --epochs N")
    return fields


def max_tokens_of(fields: dict[str, Any]) -> int | None:
    """``max_tokens`` or ``max_completion_tokens`` (the OpenAI names of one limit) for providers
    with a single length limit; UnsupportedField when both are set and differ."""
    plain, completion = fields.get("max_tokens"), fields.get("max_completion_tokens")
    if plain is not None and completion is not None and plain != completion:
        raise UnsupportedField("max_completion_tokens", f"and max_tokens ({plain}) are one "
                               "limit for this provider; set one of them")
    return completion if completion is not None else plain


def map_request(model: Any, request: ChatRequest) -> Any:
    """``request`` in ``model``'s wire form (its ``to_wire``), or a one-line UserError naming
    the model spec and the field it cannot honour (exit 2). Run once per eval, per model and
    variant, before the first request; a model without ``to_wire`` is not checked."""
    to_wire = getattr(model, "to_wire", None)
    if to_wire is None:
        return None
    try:
        return to_wire(request)
    except UnsupportedField as exc:
        raise UserError(f"{model.name}: {exc}", field="--model") from None


def split_sdk_arguments(create: Callable[..., Any], body: dict[str, Any]
                        ) -> dict[str, Any]:
    """Keyword arguments for a Stainless SDK's ``create`` carrying exactly ``body`` on the wire.

    Fields the installed SDK has no keyword for (``temperature`` in ``anthropic>=1``, which
    dropped the sampling keywords; ``top_k`` in ``openai``) go in ``extra_body``, which the SDK
    merges into the JSON body, so the request is the same whichever SDK version is installed.
    """
    import inspect

    try:
        known = set(inspect.signature(create).parameters)
    except (TypeError, ValueError):
        known = set()
    known -= {"extra_body", "extra_headers", "extra_query", "timeout", "stream"}
    kwargs = {key: value for key, value in body.items() if key in known}
    rest = {key: value for key, value in body.items() if key not in known}
    if rest:
        kwargs["extra_body"] = rest
    return kwargs

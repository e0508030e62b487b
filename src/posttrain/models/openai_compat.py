"""OpenAI-compatible chat completions: a lean aiohttp + orjson client, and the official SDK.

Both speak to any server with ``/v1/chat/completions`` (OpenAI, vLLM, llama.cpp, Ollama,
``transformers serve``). The lean client is the default because the SDK costs about 1 ms of CPU
per request; ``client: sdk`` (models file) or ``openai:MODEL?client=sdk`` selects the SDK.
Both are tested against the same real server.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from posttrain.models.base import (
    SUPPORTS,
    FatalError,
    ModelError,
    Price,
    RetryableError,
    classify_status,
    split_sdk_arguments,
    supported_fields,
)
from posttrain.models.identity import (
    EndpointIdentity,
    is_self_hosted,
    listing_identity,
    local_weights_identity,
    server_clock,
)
from posttrain.plugins import register_provider
from posttrain.types import ChatRequest, Completion

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@contextmanager
def sdk_errors(sdk: Any, timeout_s: float) -> Iterator[None]:
    """Map a Stainless-generated SDK's exceptions (``openai``, ``anthropic``) to ours."""
    try:
        yield
    except sdk.APITimeoutError:
        raise RetryableError(f"timed out after {timeout_s:g} s") from None
    except sdk.APIConnectionError as exc:
        raise RetryableError(f"connection error: {exc}") from None
    except sdk.APIStatusError as exc:
        kind = classify_status(exc.status_code)
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        raise kind(f"HTTP {exc.status_code}: {str(exc)[:300]}", status=exc.status_code,
                   retry_after=retry_after) from None


def openai_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The chat-completions request body (https://platform.openai.com/docs/api-reference/chat/
    create): every field as the eval wrote it, ``extra_body`` merged in last (as the ``openai``
    SDK merges its ``extra_body``), so the lean client and the SDK send the same JSON.
    UnsupportedField only for ``n`` other than 1 (posttrain reads one choice)."""
    supported_fields(request, "openai")
    body: dict[str, Any] = {"model": model, **request.to_payload()}
    extra_body = body.pop("extra_body", None)
    if isinstance(extra_body, dict):
        body.update(extra_body)
    return body


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_openai(usage: Any) -> dict[str, int]:
    """A chat-completions ``usage`` object as posttrain's token counts.

    Field names from the OpenAI API reference (``CompletionUsage`` in the ``openai`` SDK):
    ``prompt_tokens`` (all prompt tokens, cached ones included),
    ``prompt_tokens_details.cached_tokens`` (read from the prompt cache) and ``.cache_write_tokens``
    (written to it), ``completion_tokens`` (reasoning included, billed as output) and
    ``completion_tokens_details.reasoning_tokens``. DeepSeek's ``prompt_cache_hit_tokens`` stands
    in for ``cached_tokens`` where only it is given. Some OpenAI-compatible bridges (Gemini's)
    leave reasoning out of ``completion_tokens``; when ``total_tokens`` shows that, it is added
    back, since it is billed as output all the same.
    """
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = usage.get("completion_tokens_details")
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    cached = _count(prompt_details.get("cached_tokens")) or _count(
        usage.get("prompt_cache_hit_tokens"))
    written = _count(prompt_details.get("cache_write_tokens"))
    reasoning = _count(completion_details.get("reasoning_tokens"))
    total = _count(usage.get("total_tokens"))
    if reasoning and (reasoning > completion or total == prompt + completion + reasoning):
        completion += reasoning  # reported beside completion_tokens, not inside them
    counts = {"input_tokens": prompt, "output_tokens": completion}
    for key, value in (("cached_input_tokens", min(cached, prompt)),
                       ("cache_write_tokens", min(written, max(0, prompt - cached))),
                       ("reasoning_tokens", reasoning)):
        if value:
            counts[key] = value
    return counts


def completion_from_body(body: dict[str, Any], latency_s: float, price: Price | None) -> Completion:
    """Read a chat-completions response body; RetryableError if it is not one."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        error = body.get("error") if isinstance(body, dict) else None
        raise RetryableError(f"malformed response: no choices[0].message ({str(error or body)[:200]})") from None
    if not isinstance(message, dict):
        raise RetryableError("malformed response: message is not an object")
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    tool_calls = message.get("tool_calls") or []
    tokens = usage_from_openai(body.get("usage"))
    served = body.get("model")
    fingerprint = body.get("system_fingerprint")
    # reasoning parsed by the server: vLLM / DeepSeek ``reasoning_content``, OpenRouter and
    # newer vLLM ``reasoning``; kept apart from the answer the graders see
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return Completion(
        reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        text=content or "", tool_calls=tool_calls, finish_reason=choice.get("finish_reason"),
        **tokens, latency_s=latency_s, cost_usd=price.cost(**tokens) if price else 0.0,
        served_model=served if isinstance(served, str) and served else None,
        fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
    )


class _Endpoint:
    """What both clients share: identity (cache id without any key), limits and price.

    ``cache_id`` is the base URL and model name, plus a digest of the weights when the name is a
    path on this machine served from this machine (``transformers serve`` takes paths). The
    endpoint's reported identity (``GET /models``, the served model id, the fingerprint) is
    ``identity``; see :mod:`posttrain.models.identity`.
    """

    SUPPORTS = SUPPORTS["openai"]

    def __init__(self, name: str, model: str, *, base_url: str | None = None,
                 api_key: str | None = None, max_concurrency: int = 16,
                 price: Price | None = None, timeout_s: float = 120.0,
                 compare_fingerprint: bool | None = None, key_env: str | None = None,
                 withheld_key: str | None = None) -> None:
        self.name = name
        #: the variable the key comes from, and one whose key was not sent to this host
        #: (``posttrain.models.api_key_for``)
        self.key_env = key_env or "OPENAI_API_KEY"
        self.withheld_key = withheld_key
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.self_hosted = is_self_hosted(self.base_url)
        weights = ""
        if self.self_hosted and "#" not in model:  # a path or hub id this machine serves
            local = local_weights_identity(model)
            weights = "#" + local.rsplit("#", 1)[1] if "#" in local else ""
        self.cache_id = f"openai:{self.base_url}:{model}{weights}"
        self.max_concurrency = max_concurrency
        self.price = price
        self.timeout_s = timeout_s
        self._api_key = api_key
        self.identity = EndpointIdentity(
            name, self._probe, requested=model,
            compare_fingerprint=self.self_hosted if compare_fingerprint is None
            else compare_fingerprint)

    async def check(self) -> None:
        """Before the first request: a key where the hosted API needs one, and an endpoint
        that answers, accepts the key and serves the model (UserError naming the spec)."""
        from posttrain.models.checks import check_openai_endpoint, require_key

        require_key(self.name, self.key_env, self._api_key, self.base_url,
                    needed=self.base_url == DEFAULT_BASE_URL)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        await check_openai_endpoint(self.name, self.base_url, self.model, headers,
                                    timeout_s=min(10.0, self.timeout_s),
                                    withheld_key=self.withheld_key)

    def to_wire(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body both clients send (:func:`openai_body`)."""
        return openai_body(request, self.model)

    async def _probe(self) -> str | None:
        """The digest of this model's entry in ``GET {base_url}/models`` (no tokens spent); the
        response's ``Date`` header tells a ``created`` stamped by the listing from the model's."""
        body, date = await self._list_models()
        return listing_identity(body, self.model, local=self.self_hosted,
                                server_now=server_clock(date))

    async def _list_models(self) -> tuple[Any, str | None]:
        """The ``/models`` listing and the ``Date`` header it came with."""
        raise NotImplementedError


class LeanOpenAIModel(_Endpoint):
    """aiohttp + orjson: the hot path. One connection pool per model."""

    def __init__(self, name: str, model: str, *, extra_headers: dict[str, str] | None = None,
                 **endpoint: Any) -> None:
        super().__init__(name, model, **endpoint)
        api_key = self._api_key
        self._url = self.base_url + "/chat/completions"
        self._headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: Any = None
        #: every attempt of :meth:`generate` ends within this (the session's total timeout,
        #: connecting to reading the body, raised as a retryable error): the retry loop adds
        #: no timer of its own when its limit is no shorter
        self.own_timeout_s: float = float(self.timeout_s)

    def _client(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=max(1, self.max_concurrency) * 2,
                                             ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def generate(self, request: ChatRequest) -> Completion:
        import aiohttp

        data = orjson.dumps(self.to_wire(request))
        session = self._client()
        started = time.perf_counter()
        try:
            async with session.post(self._url, data=data) as response:
                raw = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise RetryableError(f"timed out after {self.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise RetryableError(f"connection error: {type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - started
        if status != 200:
            kind = classify_status(status)
            raise kind(f"HTTP {status}: {raw[:300].decode('utf-8', 'replace')}", status=status,
                       retry_after=retry_after)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RetryableError(f"malformed response body: {raw[:200]!r}") from None
        if not isinstance(body, dict):
            raise RetryableError("malformed response: body is not an object")
        return completion_from_body(body, latency, self.price)

    async def _list_models(self) -> tuple[Any, str | None]:
        """``GET /models`` with the standard library in a thread: a fully cached run then
        never imports aiohttp (a fifth of a second), and a probe is once per run anyway."""
        import asyncio

        return await asyncio.to_thread(self._list_models_sync)

    def _list_models_sync(self) -> tuple[Any, str | None]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.base_url + "/models", headers=self._headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as aiohttp
        try:
            with opener.open(request, timeout=min(10.0, self.timeout_s)) as response:
                return orjson.loads(response.read()), response.headers.get("Date")
        except (urllib.error.URLError, OSError, ValueError):
            return None, None

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class SDKOpenAIModel(_Endpoint):
    """The official ``openai`` SDK (AsyncOpenAI), retries off: the runner owns retries."""

    def __init__(self, name: str, model: str, **endpoint: Any) -> None:
        super().__init__(name, model, **endpoint)
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(base_url=self.base_url,
                                              api_key=self._api_key or "not-needed",
                                              max_retries=0, timeout=self.timeout_s)
        return self._client

    async def generate(self, request: ChatRequest) -> Completion:
        import openai

        client = self._get_client()
        create = client.chat.completions.with_raw_response.create
        # fields the SDK has no keyword for (top_k, min_p, ...) travel in extra_body
        arguments = split_sdk_arguments(client.chat.completions.create, self.to_wire(request))
        started = time.perf_counter()
        with sdk_errors(openai, self.timeout_s):
            response = await create(**arguments)
        latency = time.perf_counter() - started
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RetryableError(f"malformed response body: {response.content[:200]!r}") from None
        if not isinstance(body, dict):
            raise RetryableError("malformed response: body is not an object")
        return completion_from_body(body, latency, self.price)

    async def _list_models(self) -> tuple[Any, str | None]:
        response = await self._get_client().models.with_raw_response.list(
            timeout=min(10.0, self.timeout_s))
        return orjson.loads(response.content), response.headers.get("date")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


__all__ = ["LeanOpenAIModel", "SDKOpenAIModel", "ModelError", "FatalError", "RetryableError"]


@register_provider("openai", order=0, env=("OPENAI_API_KEY", "OPENAI_BASE_URL"),
                   hosted="https://api.openai.com/v1", priced=True,
                   options={"base_url": "url", "api_key_env": "env", "client": "client",
                            "concurrency": "count", "cache_fingerprint": "bool"})
def build(config: Any, *, api_key: str | None, withheld: str | None, concurrency: int | None,
          timeout_s: float) -> Any:
    """``openai:MODEL``: any OpenAI-compatible endpoint, the lean client or the SDK."""
    from posttrain.models import _flag

    cls = SDKOpenAIModel if config.client == "sdk" else LeanOpenAIModel
    return cls(config.name, config.model, base_url=config.base_url, api_key=api_key,
               max_concurrency=concurrency or 16, price=config.price, timeout_s=timeout_s,
               compare_fingerprint=_flag(config.options.get("cache_fingerprint")),
               key_env=config.api_key_env, withheld_key=withheld)

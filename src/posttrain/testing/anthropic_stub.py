"""A small Messages-API server for client tests: what the ``anthropic`` SDK sends, on the wire.

Not a model: like :mod:`posttrain.testing.stub_server` it answers from directives in the last
user message, so tests control each answer; its point is the request body the client sends and
the response shapes the client must read (https://docs.anthropic.com/en/api/messages, the
``Message`` and ``ModelInfo`` types of the ``anthropic`` SDK).

- ``POST /v1/messages``: checks what the real API checks first (an ``x-api-key`` header, an
  ``anthropic-version`` header, ``model``/``max_tokens``/``messages`` present, no top-level
  field the API does not know: ``400 invalid_request_error``, ``<field>: Extra inputs are not
  permitted``, as Anthropic answers ``seed`` or ``response_format``; ``tool_choice`` shapes and
  a ``tool`` choice naming a tool that is in ``tools``), then answers with content blocks:
  ``[[answer:TEXT]]`` for the text (otherwise ``echo: <message>``), ``[[tool:NAME:{"a": 1}]]``
  (one or more) for ``tool_use`` blocks. ``tool_choice`` is obeyed: ``tool`` calls that tool,
  ``any`` calls one, ``none`` never calls, ``disable_parallel_tool_use`` keeps one call.
  ``stop_sequences`` cut the text (``stop_reason: stop_sequence``), ``max_tokens`` cuts it at
  that many words (``stop_reason: max_tokens``), ``thinking``/``output_config.effort`` add a
  ``thinking`` block. ``usage`` has the real fields, cache ones included
  (``[[cache:READ:WRITE]]`` sets them).
- ``GET /v1/models/{id}`` and ``GET /v1/models``: ``ModelInfo`` with ``capabilities``
  (all supported unless the app was made with other ones for that model; 404 for a model not
  served).
- ``GET /stats``: ``last_request`` (the last messages body), ``last_headers`` (whether a key
  came, and the ``anthropic-version``), ``requests``.

Run: ``python -m posttrain.testing.anthropic_stub --port 0`` (prints ``PORT <n>`` when ready).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import re
import sys
from typing import Any

import orjson
from aiohttp import web

_ANSWER = re.compile(r"\[\[answer:(.*?)\]\]", re.S)
_TOOL = re.compile(r"\[\[tool:(\w+):(\{.*?\})\]\]", re.S)
_CACHE = re.compile(r"\[\[cache:(\d+):(\d+)\]\]")

#: top-level ``POST /v1/messages`` fields (the API reference's request body)
MESSAGES_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "tools", "tool_choice", "thinking", "metadata", "service_tier",
    "output_config", "container", "context_management", "mcp_servers", "cache_control",
    "inference_geo", "speed",
})
_TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
_SUPPORTED = {"supported": True}


def full_capabilities() -> dict[str, Any]:
    """A ``ModelCapabilities`` object with everything supported."""
    return {
        "batch": _SUPPORTED, "citations": _SUPPORTED, "code_execution": _SUPPORTED,
        "context_management": {"supported": True}, "image_input": _SUPPORTED,
        "pdf_input": _SUPPORTED, "structured_outputs": _SUPPORTED,
        "effort": {"supported": True, **{level: _SUPPORTED for level in
                                         ("low", "medium", "high", "xhigh", "max")}},
        "server_tools": {"supported": True, "code_execution": _SUPPORTED,
                         "web_search": _SUPPORTED},
        "thinking": {"supported": True, "types": {kind: _SUPPORTED for kind in
                                                  ("adaptive", "between_tools", "disabled",
                                                   "enabled")}},
    }


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message},
                              "request_id": "req_stub"}, status=status)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(block.get("text", "") for block in content
                         if isinstance(block, dict) and block.get("type") == "text")
    return ""


def _check_body(body: Any, served: dict[str, dict[str, Any]]) -> web.Response | None:
    """The 4xx the real API gives a malformed request, or None."""
    if not isinstance(body, dict):
        return _error(400, "invalid_request_error", "body: must be an object")
    for field in body:
        if field not in MESSAGES_FIELDS:
            return _error(400, "invalid_request_error", f"{field}: Extra inputs are not permitted")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return _error(400, "invalid_request_error", f"{field}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return _error(400, "invalid_request_error", "max_tokens: must be a positive integer")
    if not isinstance(body["messages"], list) or not body["messages"]:
        return _error(400, "invalid_request_error", "messages: at least one message is required")
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return _error(400, "invalid_request_error",
                          f"messages.{index}.role: Input should be 'user' or 'assistant'")
    if body["model"] not in served:
        return _error(404, "not_found_error", f"model: {body['model']}")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICE_TYPES:
            return _error(400, "invalid_request_error",
                          "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        names = [tool.get("name") for tool in body.get("tools") or []]
        if choice["type"] == "tool" and choice.get("name") not in names:
            return _error(400, "invalid_request_error",
                          f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
        if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
            return _error(400, "invalid_request_error",
                          "tool_choice.disable_parallel_tool_use: Extra inputs are not permitted")
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or not tool.get("name") or \
                not isinstance(tool.get("input_schema"), dict):
            return _error(400, "invalid_request_error", "tools: each needs name and input_schema")
    output_config = body.get("output_config")
    if output_config is not None:
        extra = set(output_config) - {"effort", "format"}
        if extra:
            return _error(400, "invalid_request_error",
                          f"output_config.{sorted(extra)[0]}: Extra inputs are not permitted")
    return None


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """The ``Message`` the directives in the last user turn ask for."""
    last_user = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {})
    user = _text_of(last_user.get("content"))
    match = _ANSWER.search(user)
    text = match.group(1) if match else f"echo: {user}"
    tools = [tool["name"] for tool in body.get("tools") or []]
    choice = body.get("tool_choice") or {"type": "auto"}
    calls = [(name, orjson.loads(args)) for name, args in _TOOL.findall(user) if name in tools]
    if choice["type"] == "none" or not tools:
        calls = []
    elif choice["type"] == "tool":
        calls = [c for c in calls if c[0] == choice["name"]] or [(choice["name"], {})]
    elif choice["type"] == "any" and not calls:
        calls = [(tools[0], {})]
    if choice.get("disable_parallel_tool_use"):
        calls = calls[:1]
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive") or \
            (body.get("output_config") or {}).get("effort"):
        content.append({"type": "thinking", "thinking": "Let me think.",
                        "signature": "c2lnbmF0dXJl"})
    stop_reason, stop_sequence = "end_turn", None
    if calls:
        content.extend({"type": "tool_use", "id": f"toolu_0{index}", "name": name,
                        "input": arguments} for index, (name, arguments) in enumerate(calls))
        stop_reason = "tool_use"
    else:
        found = [(text.index(s), s) for s in body.get("stop_sequences") or [] if s and s in text]
        if found:
            at, stop_sequence = min(found)
            text, stop_reason = text[:at], "stop_sequence"
        words = text.split(" ")
        if len(words) > body["max_tokens"]:
            text, stop_reason = " ".join(words[: body["max_tokens"]]), "max_tokens"
        content.append({"type": "text", "text": text})
    cache = _CACHE.search(user)
    read, written = (int(cache.group(1)), int(cache.group(2))) if cache else (0, 0)
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": body["model"], "content": content, "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": max(1, len(orjson.dumps(body["messages"])) // 4),
                  "output_tokens": max(1, len(text) // 4),
                  "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
                  "cache_creation": {"ephemeral_5m_input_tokens": written,
                                     "ephemeral_1h_input_tokens": 0},
                  "service_tier": "standard"},
    }


def make_app(api_key: str | None = None,
             models: dict[str, dict[str, Any] | None] | None = None) -> web.Application:
    """The server. ``models``: model id -> its ``capabilities`` (None: all supported); by
    default it serves ``claude-sonnet-4-6`` and ``claude-sonnet-4`` with everything supported."""
    served = {name: caps if caps is not None else full_capabilities()
              for name, caps in (models or {"claude-sonnet-4-6": None,
                                            "claude-sonnet-4": None}).items()}
    state: dict[str, Any] = {"requests": 0, "last": None, "headers": None}

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            # ``x-api-key`` (anthropic < 2) or ``Authorization: Bearer`` (the 2.x SDKs)
            bearer = request.headers.get("Authorization", "")
            key = request.headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None
            if not key or (api_key is not None and key != api_key):
                return _error(401, "authentication_error", "invalid x-api-key")
            if not request.headers.get("anthropic-version"):
                return _error(400, "invalid_request_error",
                              "anthropic-version: header is required")
        return await handler(request)

    async def messages(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request_error", "body: not JSON")
        state["requests"] += 1
        state["last"] = body
        state["headers"] = {"key": bool(request.headers.get("x-api-key")
                                        or request.headers.get("Authorization")),
                            "anthropic-version": request.headers.get("anthropic-version")}
        refused = _check_body(body, served)
        if refused is not None:
            return refused
        return web.Response(body=orjson.dumps(_answer(body)), content_type="application/json")

    def info(name: str) -> dict[str, Any]:
        return {"type": "model", "id": name, "display_name": name.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z", "lifecycle": "active",
                "max_input_tokens": 200000, "max_tokens": 64000,
                "capabilities": copy.deepcopy(served[name])}

    async def model(request: web.Request) -> web.Response:
        name = request.match_info["model_id"]
        if name not in served:
            return _error(404, "not_found_error", f"model: {name}")
        return web.json_response(info(name))

    async def model_list(_request: web.Request) -> web.Response:
        data = [info(name) for name in served]
        return web.json_response({"data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"requests": state["requests"], "last_request": state["last"],
                                  "last_headers": state["headers"]})

    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[auth])
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", model_list)
    app.router.add_get("/v1/models/{model_id}", model)
    app.router.add_get("/stats", stats)
    return app


async def _serve(port: int, api_key: str | None) -> None:
    runner = web.AppRunner(make_app(api_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", help="answer 401 to any other x-api-key")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.port, args.api_key))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

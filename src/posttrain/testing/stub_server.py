"""A small OpenAI-compatible stub server for client tests: injected faults and overhead benches.

Not a model: it answers from directives in the last user message, so tests control each item.

- ``[[answer:TEXT]]``: reply with TEXT (otherwise the reply is ``echo: <message>``);
- ``[[as:MODEL:TEXT]]``: when the request names MODEL, reply with TEXT (before ``answer``), so
  one server plays two models that answer differently (``--models prod,new``);
- ``[[tool:NAME:{"arg": 1}]]``: reply with a call of tool NAME with those arguments (unless an
  ``as`` for the requested model matched: a judge reading that message answers in text);
- ``[[fault:KIND:N]]``: the first N attempts of this message fail (N ``always`` = every attempt);
  KIND is ``500``, ``503``, ``429`` (with ``Retry-After: 0.2``), ``hang`` (sleeps 30 s),
  ``malformed`` (a body that is not JSON), ``noshape`` (JSON without ``choices``), ``400``.

``GET /stats`` returns attempt and success counts per message, so tests can check that no
answered request was sent twice. Run: ``python -m posttrain.testing.stub_server --port 0``
(prints ``PORT <n>`` when ready). ``--latency S`` adds a fixed delay to every answer;
``--api-key K`` answers 401 to requests without ``Authorization: Bearer K``; ``--models a,b``
serves only those model names (others get 404, as a real server does).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter

import orjson
from aiohttp import web

_ANSWER = re.compile(r"\[\[answer:(.*?)\]\]", re.S)
_FAULT = re.compile(r"\[\[fault:(\w+):(\w+)\]\]")
_AS = re.compile(r"\[\[as:([^:\]]+):(.*?)\]\]", re.S)
_TOOL = re.compile(r"\[\[tool:(\w+):(\{.*?\})\]\]", re.S)


def make_app(latency: float = 0.0, api_key: str | None = None,
             models: list[str] | None = None) -> web.Application:
    attempts: Counter[str] = Counter()
    successes: Counter[str] = Counter()
    last: dict[str, object] = {}
    served = models or ["stub"]
    restricted = models is not None

    @web.middleware
    async def auth(request: web.Request, handler: object) -> web.StreamResponse:
        if api_key and request.path.startswith("/v1") and \
                request.headers.get("Authorization") != f"Bearer {api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided"}},
                                     status=401)
        return await handler(request)  # type: ignore[operator]

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if restricted and body.get("model") not in served:
            return web.json_response({"error": {"message": f"model {body.get('model')!r} "
                                                           "does not exist"}}, status=404)
        last["body"] = body
        last["authorization"] = bool(request.headers.get("Authorization"))
        messages = body.get("messages") or []
        user = next((m.get("content") or "" for m in reversed(messages)
                     if m.get("role") == "user"), "")
        if not isinstance(user, str):
            user = orjson.dumps(user).decode()
        attempts[user] += 1
        fault = _FAULT.search(user)
        if fault:
            kind, count = fault.group(1), fault.group(2)
            if count == "always" or attempts[user] <= int(count):
                if kind == "hang":
                    await asyncio.sleep(30)
                if kind == "malformed":
                    return web.Response(body=b"<html>not json{", content_type="text/html")
                if kind == "noshape":
                    return web.json_response({"object": "chat.completion", "oops": True})
                if kind == "429":
                    return web.json_response({"error": {"message": "rate limited"}}, status=429,
                                             headers={"Retry-After": "0.2"})
                if kind.isdigit():
                    return web.json_response({"error": {"message": f"injected {kind}"}},
                                             status=int(kind))
        if latency:
            await asyncio.sleep(latency)
        match = _ANSWER.search(user)
        text = match.group(1) if match else f"echo: {user}"
        as_named = False
        for as_model in _AS.finditer(user):
            if as_model.group(1) == body.get("model"):
                text, as_named = as_model.group(2), True
                break
        successes[user] += 1
        message: dict[str, object] = {"role": "assistant", "content": text}
        finish = "stop"
        tool = None if as_named else _TOOL.search(user)
        if tool:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": tool.group(1), "arguments": tool.group(2)}}]}
            finish = "tool_calls"
        payload = {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": max(1, len(user) // 4),
                      "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": max(1, len(user) // 4) + max(1, len(text) // 4)},
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"attempts": dict(attempts), "successes": dict(successes),
                                  "total_attempts": sum(attempts.values()),
                                  "total_successes": sum(successes.values()),
                                  "last_request": last.get("body"),
                                  "last_had_authorization": last.get("authorization")})

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list",
                                  "data": [{"id": name, "object": "model"} for name in served]})

    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[auth])
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    return app


async def _serve(port: int, latency: float, api_key: str | None = None,
                 models: list[str] | None = None) -> None:
    runner = web.AppRunner(make_app(latency, api_key, models), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--api-key", help="answer 401 without this bearer key")
    parser.add_argument("--models", help="comma-separated model names served (others: 404)")
    args = parser.parse_args(argv)
    models = [m for m in (args.models or "").split(",") if m] or None
    try:
        asyncio.run(_serve(args.port, args.latency, args.api_key, models))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

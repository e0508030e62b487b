"""An OpenAI-compatible and Anthropic Messages stub on 127.0.0.1, in a thread, whose served model a
test can switch between calls: what it answers, the usage it reports, its ``model`` and
``system_fingerprint``, and its ``/models`` entry. Bodies have the shape of the real APIs (they
validate as the ``openai`` / ``anthropic`` SDK response types). A stub is fine here: the tests
are about the client (usage parsing, cost, cache identity), not a model's behaviour.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web


def openai_body(*, model: str, text: str, usage: dict[str, Any],
                fingerprint: str | None = None) -> dict[str, Any]:
    """A chat-completions response body as OpenAI returns it."""
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
        "created": 1741569952, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                              "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage, "service_tier": "default", "system_fingerprint": fingerprint,
    }


def anthropic_body(*, model: str, text: str, usage: dict[str, Any]) -> dict[str, Any]:
    """A Messages API response body as Anthropic returns it."""
    return {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}


class Endpoint:
    """The server; mutate ``state`` to change what it serves (thread-safe enough for tests)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {
            "answer": "Paris",           # every reply's text
            "served": None,              # the response's ``model`` (None: echo the request's)
            "fingerprint": None,         # ``system_fingerprint``
            "listing": None,             # this model's ``/models`` entry (None: 404)
            "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
            "anthropic_usage": {"input_tokens": 20, "output_tokens": 2},
            "anthropic_resolved": None,  # ``GET /v1/models/{id}`` answers this id (None: 404)
        }
        self.chat_requests = 0
        self.probes = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.anthropic_url = f"http://127.0.0.1:{self.port}"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models/{model_id}", self._model_info)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()
        self._loop.run_forever()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chat_requests += 1
        state = self.state
        return web.json_response(openai_body(
            model=state["served"] or body["model"], text=state["answer"], usage=state["usage"],
            fingerprint=state["fingerprint"]))

    async def _models(self, _request: web.Request) -> web.Response:
        self.probes += 1
        listing = self.state["listing"]
        if listing is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return web.json_response({"object": "list", "data": [listing]})

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chat_requests += 1
        state = self.state
        return web.json_response(anthropic_body(
            model=state["served"] or body["model"], text=state["answer"],
            usage=state["anthropic_usage"]))

    async def _model_info(self, request: web.Request) -> web.Response:
        self.probes += 1
        resolved = self.state["anthropic_resolved"]
        if resolved is None:
            return web.json_response({"type": "error", "error": {
                "type": "not_found_error", "message": "model not found"}}, status=404)
        return web.json_response({"type": "model", "id": resolved,
                                  "display_name": "Claude Sonnet 4",
                                  "created_at": "2025-05-22T00:00:00Z"})

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        time.sleep(0)

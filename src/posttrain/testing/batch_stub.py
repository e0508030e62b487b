"""A stub of OpenAI's Files and Batches endpoints, for ``--backend openai-batch`` tests.

Not a model: each request of a batch is answered from directives in its last user message, as
``posttrain.testing.stub_server`` answers (``[[answer:TEXT]]``, else ``echo: <message>``;
``[[fault:400:always]]`` makes that request fail with HTTP 400 in the batch's error file).

Endpoints (shapes from OpenAI's API reference): ``GET /v1/models``; ``POST /v1/files``
(multipart ``file``, ``purpose``); ``GET /v1/files/{id}/content``; ``POST /v1/batches``
(``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``); ``GET
/v1/batches/{id}``; ``GET /v1/batches`` (a list page). A batch is ``validating``, then
``in_progress``, then ``completed`` with its output and error files, one step per ``GET``;
started with ``--hold`` it stays ``in_progress`` until ``POST /control/release``. ``GET
/stats`` counts files uploaded, batches created and batch polls.

Run: ``python -m posttrain.testing.batch_stub --port 0 [--hold]`` (prints ``PORT <n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any

import orjson
from aiohttp import web

_ANSWER = re.compile(r"\[\[answer:(.*?)\]\]", re.S)
_FAULT = re.compile(r"\[\[fault:(\d+):always\]\]")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _answer(custom_id: str, body: dict[str, Any], index: int) -> tuple[dict[str, Any], bool]:
    """(output line, ok) for one batch request."""
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    text = _text(users[-1].get("content")) if users else ""
    fault = _FAULT.search(text)
    if fault:
        status = int(fault.group(1))
        return {"id": f"batch_req_{index}", "custom_id": custom_id,
                "response": {"status_code": status, "request_id": f"req_{index}",
                             "body": {"error": {"message": "stub fault", "type":
                                                "invalid_request_error"}}},
                "error": None}, False
    match = _ANSWER.search(text)
    reply = match.group(1) if match else f"echo: {text}"
    completion = {"id": f"chatcmpl-{index}", "object": "chat.completion",
                  "created": int(time.time()), "model": body.get("model"),
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": reply}}],
                  "usage": {"prompt_tokens": 10 + len(text) // 4,
                            "completion_tokens": max(1, len(reply) // 4),
                            "total_tokens": 10 + len(text) // 4 + max(1, len(reply) // 4)}}
    return {"id": f"batch_req_{index}", "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": f"req_{index}", "body": completion},
            "error": None}, True


def make_app(*, hold: bool = False, models: tuple[str, ...] = ()) -> web.Application:
    files: dict[str, dict[str, Any]] = {}
    batches: dict[str, dict[str, Any]] = {}
    stats = {"files": 0, "batches": 0, "polls": 0, "released": not hold}

    def new_file(content: bytes, purpose: str, name: str) -> dict[str, Any]:
        file_id = f"file-{len(files) + 1}"
        files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                          "created_at": int(time.time()), "filename": name, "purpose": purpose,
                          "content": content}
        return files[file_id]

    def public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "content"}

    async def list_models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "stub"} for m in models]})

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        upload_ = form.get("file")
        if upload_ is None or form.get("purpose") != "batch":
            return web.json_response({"error": {"message": "file and purpose=batch required"}},
                                     status=400)
        content = upload_.file.read()
        stats["files"] += 1
        return web.json_response(public(new_file(content, "batch", upload_.filename)))

    async def content(request: web.Request) -> web.Response:
        record = files.get(request.match_info["file_id"])
        if record is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=record["content"], content_type="application/octet-stream")

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("input_file_id") not in files:
            return web.json_response({"error": {"message": "no such input file"}}, status=400)
        stats["batches"] += 1
        batch_id = f"batch_{stats['batches']}"
        lines = files[body["input_file_id"]]["content"].decode().splitlines()
        batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
            "input_file_id": body["input_file_id"], "completion_window":
                body.get("completion_window"), "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "metadata": body.get("metadata"), "errors": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        return web.json_response(batches[batch_id])

    def advance(batch: dict[str, Any]) -> None:
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress" and stats["released"]:
            lines = files[batch["input_file_id"]]["content"].decode().splitlines()
            done, failed = [], []
            for index, line in enumerate(lines):
                request = orjson.loads(line)
                row, ok = _answer(request["custom_id"], request["body"], index)
                (done if ok else failed).append(orjson.dumps(row))
            if done:
                batch["output_file_id"] = new_file(b"\n".join(done) + b"\n", "batch_output",
                                                   "output.jsonl")["id"]
            if failed:
                batch["error_file_id"] = new_file(b"\n".join(failed) + b"\n", "batch_output",
                                                  "errors.jsonl")["id"]
            batch["request_counts"].update(completed=len(done), failed=len(failed))
            batch["status"] = "completed"

    async def retrieve(request: web.Request) -> web.Response:
        batch = batches.get(request.match_info["batch_id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        stats["polls"] += 1
        advance(batch)
        return web.json_response(batch)

    async def list_batches(_request: web.Request) -> web.Response:
        data = sorted(batches.values(), key=lambda b: b["id"], reverse=True)
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def release(_request: web.Request) -> web.Response:
        stats["released"] = True
        return web.json_response({"released": True})

    async def get_stats(_request: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/files", upload)
    app.router.add_get("/v1/files/{file_id}/content", content)
    app.router.add_post("/v1/batches", create)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", retrieve)
    app.router.add_post("/control/release", release)
    app.router.add_get("/stats", get_stats)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--models", default="gpt-4.1-mini")
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = web.AppRunner(make_app(hold=args.hold, models=tuple(args.models.split(","))))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

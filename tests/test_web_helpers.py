"""Helpers (no tests): a small eval folder and a store with two graded runs, for the web tests."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from posttrain.eval import load_eval
from posttrain.runner.store import Store
from posttrain.types import Completion, Score

ROWS = [
    {"id": "q1", "question": "Capital of France?", "answer": "Paris", "category": "europe"},
    {"id": "q2", "question": "Capital of Japan?", "answer": "Tokyo", "category": "asia"},
    {"id": "q3", "question": "Capital of Australia?", "answer": "Sydney", "category": "oceania"},
    {"id": "q4", "question": "Capital of Italy?", "answer": "Rome", "category": "europe"},
]
ANSWERS = {
    "model-a": {"q1": "Paris", "q2": "Tokyo", "q3": "Canberra", "q4": "Rome"},
    "model-b": {"q1": "The capital is Paris.", "q2": "Kyoto", "q3": "Canberra", "q4": None},
}


def build(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """(store path, eval path, model -> run id)."""
    folder = tmp / "capitals"
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    eval_path = folder / "eval.yaml"
    eval_path.write_text(
        "name: capitals\ndataset: data.jsonl\ntag: category\n"
        "messages:\n  - {role: user, content: '{{item.question}}'}\n"
        "graders:\n  - {type: string_check, name: exact, input: '{{sample.output_text}}',"
        " reference: '{{item.answer}}', operation: ilike}\n")
    ev = load_eval(eval_path)
    store_path = tmp / "store.db"
    runs = {}
    with Store(store_path) as store:
        for model, answers in ANSWERS.items():
            run = store.create_run(run_key=f"k-{model}", eval_name=ev.name,
                                   eval_path=str(eval_path), eval_hash=ev.fingerprint(),
                                   model=model, variant="default", epochs=1, config={},
                                   items=ev.items)
            for index, item in enumerate(ev.items):
                text = answers[item.id]
                if text is None:
                    store.record_sample(run.id, item.id, 0, completion=None, request_key=None,
                                        attempts=3, error="HTTP 500 after 3 attempts")
                    continue
                completion = Completion(text=text, latency_s=0.2 + index / 10, cost_usd=0.001,
                                        input_tokens=12, output_tokens=3)
                sample = completion.to_sample()
                scores: list[Score] = [g.grade(sample, item.data) for g in ev.graders]
                store.record_sample(run.id, item.id, 0, completion=completion, request_key=None,
                                    attempts=1, scores=scores)
            store.finish_run(run.id)
            runs[model] = run.id
    return store_path, eval_path, runs


LONG_MODEL = "hf:/home/me/models/qwen2.5-0.5b-instruct-sft/checkpoint-300"
#: a second run of model-a (after build's), and a fine-tuned checkpoint with a long path
ANSWERS_MORE = {
    "model-a": {"q1": "Paris", "q2": "Osaka", "q3": "Canberra", "q4": "Rome"},
    LONG_MODEL: {"q1": "Paris", "q2": "Tokyo", "q3": "Sydney", "q4": "Rome"},
}


def add_runs(store_path: Path, eval_path: Path) -> dict[str, str]:
    """More runs of build's eval: model-a again (q2 now wrong: "changed since the last run"),
    and a model with a long path; the checkpoint's q4 is a multi-turn tool-use transcript."""
    ev = load_eval(eval_path)
    runs = {}
    with Store(store_path) as store:
        for model, answers in ANSWERS_MORE.items():
            run = store.create_run(run_key=f"k2-{model}", eval_name=ev.name,
                                   eval_path=str(eval_path), eval_hash=ev.fingerprint(),
                                   model=model, variant="default", epochs=1, config={},
                                   items=ev.items)
            for item in ev.items:
                transcript = None
                if model == LONG_MODEL and item.id == "q4":
                    transcript = tool_transcript()
                completion = Completion(text=answers[item.id], latency_s=0.5, cost_usd=0.0,
                                        input_tokens=20, output_tokens=4, transcript=transcript,
                                        meta=TOOL_META if transcript else {})
                sample = completion.to_sample()
                scores: list[Score] = [g.grade(sample, item.data) for g in ev.graders]
                store.record_sample(run.id, item.id, 0, completion=completion, request_key=None,
                                    attempts=1, scores=scores)
            store.finish_run(run.id)
            runs[model] = run.id
    return runs


def tool_transcript() -> list[dict]:
    return [
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_0_0", "type": "function",
             "function": {"name": "lookup_capital", "arguments": '{"country": "Italy"}'}}]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": '{"capital": "Rome"}'},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1_0", "type": "function",
             "function": {"name": "save_answer", "arguments": '{"answer": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": '{"saved": true}'},
        {"role": "assistant", "content": "Rome"},
    ]


TOOL_META = {
    "calls": [
        {"turn": 0, "name": "lookup_capital", "ok": True, "fault": None,
         "arguments": {"country": "Italy"}, "result": '{"capital": "Rome"}'},
        {"turn": 1, "name": "save_answer", "ok": True, "fault": None,
         "arguments": {"answer": "Rome"}, "result": '{"saved": true}'},
    ],
    "initial_state_hash": "aaaa1111", "final_state_hash": "bbbb2222",
    "expected_state_hash": "bbbb2222", "turns": 3, "hit_turn_cap": False,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(store_path: Path, **app_options: Any) -> Iterator[str]:
    """The real viewer on 127.0.0.1 in a thread of this process; yields its base URL."""
    from aiohttp import web

    from posttrain.web.server import create_app

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(store_path, **app_options), shutdown_timeout=1.0)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def app_client(store_path: Path) -> Any:
    """An aiohttp test client of the viewer on 127.0.0.1 (started; the caller closes it)."""
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    client = TestClient(TestServer(create_app(store_path, seed=1), host="127.0.0.1"))
    await client.start_server()
    return client

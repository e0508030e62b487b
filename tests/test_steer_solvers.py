"""Follow along and steer for a ``solver:`` of one's own, one that does not call run_episode:
steerable through the ``Episode`` hook, refused with its reason (HTTP 409) without it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posttrain.environment import Episode, episode_watcher
from posttrain.runner.store import Store
from posttrain.types import ChatRequest, Completion
from tests import steer_env
from tests.conftest import StubServer
from tests.test_steer import ScriptedWatcher, _reviewer


@pytest.fixture
def slow_stub() -> Iterator[StubServer]:
    server = StubServer(0.3)
    yield server
    server.close()


def test_the_episode_hook_streams_every_message_and_records_the_correction() -> None:
    async def generate(request: ChatRequest) -> Completion:
        if request.messages[-1]["content"] == "Answer now.":
            return Completion(text="5 degrees", input_tokens=2)
        return Completion(text="", input_tokens=1, tool_calls=[{"id": "c", "function": {
            "name": "weather", "arguments": "{}"}}])

    async def solve() -> Completion:
        episode = Episode(ChatRequest(messages=[{"role": "user", "content": "hi"}]), generate)
        while True:
            action = await episode.model_turn()
            if not action.get("tool_calls"):
                return episode.answer({"mine": 1})
            episode.observe([{"role": "tool", "tool_call_id": action["tool_calls"][0]["id"],
                              "content": '{"celsius": 21}'}])

    watcher = ScriptedWatcher()
    token = episode_watcher.set(watcher)
    try:
        done = asyncio.run(solve())
    finally:
        episode_watcher.reset(token)
    assert done.text == "5 degrees" and done.meta["mine"] == 1
    (record,) = done.meta["steering"]
    assert record["turn"] == 1 and record["original"]["tool_calls"]
    assert record["corrected"] == {"role": "assistant", "content": "5 degrees"}
    assert done.transcript[2]["content"] == '{"celsius": 5}'
    assert done.input_tokens == 1 + 1 + 2  # turn 0, the original continuation, turn 1
    # the prompt, turn 0 with its tool result, the correction (from the edit), the last turn
    assert watcher.seen == [(0, 0), (0, 1), (1, 2), (1, 4)]


def test_the_episode_hook_outside_a_run_never_waits() -> None:
    async def generate(request: ChatRequest) -> Completion:
        return Completion(text="ok")

    async def solve() -> Completion:
        episode = Episode(ChatRequest(messages=[{"role": "user", "content": "hi"}]), generate)
        with pytest.raises(ValueError, match="before any model_turn"):
            episode.answer()
        await episode.model_turn()
        return episode.answer()

    done = asyncio.run(solve())
    assert done.transcript == [{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "ok"}]
    assert "steering" not in done.meta


def test_a_custom_solver_using_the_hook_is_followed_and_steered(tmp_path: Path, slow_stub,
                                                                monkeypatch) -> None:
    from posttrain.api import arun_eval

    monkeypatch.setenv("OPENAI_BASE_URL", slow_stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = steer_env.write_solver_eval(tmp_path / "ev", "solve_by_hand")
    store_path = tmp_path / "s.db"

    async def main() -> dict[str, Any]:
        review = asyncio.create_task(asyncio.to_thread(_reviewer, store_path, "w0", True))
        await arun_eval(eval_path, ["openai:stub"], store=store_path)
        return await review

    review = asyncio.run(main())
    with Store(store_path) as store:
        rows = {r["item_id"]: json.loads(r["completion"]) for r in
                store.samples(review["run_id"])}
        (record,) = rows["w0"]["meta"]["steering"]
        assert rows["w0"]["meta"]["by_hand"] is True
        assert record["added_message"]["content"] == "[[answer:21 degrees]]"
        assert record["edited_tool_results"][0]["after"].endswith('"edited"}')
        assert rows["w0"]["transcript"][-1] == {"role": "assistant", "content": "21 degrees"}
        assert [(c["action"], c["status"]) for c in store.controls(review["run_id"])] == \
            [("pause", "applied"), ("resume", "applied")]
        streamed = {r["position"]: r["message"] for r in store.steps_after(0, item_id="w0")
                    if r["kind"] == "message"}
        assert [streamed[i] for i in sorted(streamed)] == rows["w0"]["transcript"]
        scores = {r["item_id"]: r["value"] for r in store.scores(review["run_id"])}
        assert scores == {"w0": 1.0, "w1": 0.0}


def test_a_custom_solver_without_the_hook_cannot_be_paused_and_says_why(
        tmp_path: Path, stub_server: StubServer, monkeypatch) -> None:
    """The runner plays it (the real runner, the real store); while its second sample is in
    flight, the pause is refused with the solver's name and the hook to use, and the
    trajectory page is told so (no pause button that does nothing)."""
    from posttrain.api import arun_eval
    from posttrain.web import live

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = steer_env.write_solver_eval(tmp_path / "ev", "solve_silently")
    store_path = tmp_path / "s.db"
    steer_env.RELEASE.clear()

    def reviewer() -> tuple[str, dict[str, Any]]:
        with Store(store_path) as store:
            deadline = time.monotonic() + 60
            while not store.conn.execute("SELECT 1 FROM samples WHERE item_id = 'w0'"
                                         ).fetchone():
                assert time.monotonic() < deadline, "w0 was never answered"
                time.sleep(0.02)
            run_id = store.list_runs()[0].id
            try:
                with pytest.raises(live.Conflict) as refused:
                    live.request_pause(store, run_id, "w1", 0)
                page = live.trajectory(store, run_id, "w1", 0)
            finally:
                steer_env.RELEASE.set()
            assert store.controls(run_id) == []  # nothing was written for the runner
            return str(refused.value), page

    async def main() -> tuple[str, dict[str, Any]]:
        check = asyncio.create_task(asyncio.to_thread(reviewer))
        await arun_eval(eval_path, ["openai:stub"], store=store_path)
        return await check

    try:
        reason, page = asyncio.run(main())
    finally:
        steer_env.RELEASE.set()
    assert "tests.steer_env:solve_silently" in reason and "reports no steps" in reason
    assert "Episode" in reason
    assert page["cannot_pause"] == reason and not page["finished"]

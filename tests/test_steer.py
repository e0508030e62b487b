"""Follow along and steer: the episode watcher, the store's control channel, the exports."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posttrain.environment import (
    Intervention,
    apply_intervention,
    episode_watcher,
    run_episode,
    unseen_tool_results,
)
from posttrain.runner.store import Store
from posttrain.types import ChatRequest, Completion, Item, Score
from tests.conftest import StubServer
from tests.steer_env import WeatherEnv, write_weather_eval

CONVERSATION = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"celsius": 21}'},
]


def test_only_unseen_tool_results_can_be_edited() -> None:
    assert unseen_tool_results(CONVERSATION) == [2]
    edited, record = apply_intervention(CONVERSATION, Intervention(
        tool_results={2: '{"celsius": 5}'}, message="Use Celsius.", reviewer="ann"))
    assert edited[2]["content"] == '{"celsius": 5}' and CONVERSATION[2]["content"] == \
        '{"celsius": 21}'
    assert edited[3] == {"role": "user", "content": "Use Celsius."}
    assert record["edited_tool_results"] == [{"index": 2, "tool_call_id": "c1",
                                              "before": '{"celsius": 21}',
                                              "after": '{"celsius": 5}'}]
    assert record["added_message"] == {"index": 3, "content": "Use Celsius."}
    for index in (0, 1, 7):  # the prompt, a model turn, nothing: refused
        with pytest.raises(ValueError, match="not a tool result"):
            apply_intervention(CONVERSATION, Intervention(tool_results={index: "x"}))
    with pytest.raises(ValueError, match="empty"):
        apply_intervention(CONVERSATION, Intervention(message="  "))


class ScriptedWatcher:
    """Steers before turn 1: edits the tool result and adds a message."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_messages(self, turn: int, messages: list[dict[str, Any]], start: int) -> None:
        self.seen.append((turn, start))

    async def checkpoint(self, turn: int, messages: list[dict[str, Any]]) -> Intervention | None:
        if turn != 1:
            return None
        (index,) = unseen_tool_results(messages)
        return Intervention(tool_results={index: '{"celsius": 5}'}, message="Answer now.")


def test_run_episode_records_the_intervention_and_never_executes_the_original() -> None:
    env = WeatherEnv()
    steps: list[dict[str, Any]] = []
    original_step = env.step

    def step(action: dict[str, Any]) -> Any:
        steps.append(action)
        return original_step(action)

    env.step = step  # type: ignore[method-assign]
    seen: list[list[dict[str, Any]]] = []

    async def generate(request: ChatRequest) -> Completion:
        seen.append(request.messages)
        if request.messages[-1]["content"] == "Answer now.":
            return Completion(text="5 degrees")
        return Completion(text="", tool_calls=[{"id": "c", "function": {
            "name": "weather", "arguments": "{}"}}])

    watcher = ScriptedWatcher()
    token = episode_watcher.set(watcher)
    try:
        done = asyncio.run(run_episode(env, ChatRequest(messages=[{"role": "user",
                                                                   "content": "hi"}]),
                                       Item(id="a", data={}), generate))
    finally:
        episode_watcher.reset(token)
    assert done.text == "5 degrees"
    # turn 0 call, the original continuation (a call: not executed), the corrected answer
    assert len(seen) == 3 and len(steps) == 2
    assert steps[1] == {"role": "assistant", "content": "5 degrees"}
    (record,) = done.meta["steering"]
    assert record["turn"] == 1 and record["at"] == 4
    assert record["original"]["tool_calls"][0]["function"]["name"] == "weather"
    assert record["corrected"] == {"role": "assistant", "content": "5 degrees"}
    assert done.transcript[2]["content"] == '{"celsius": 5}'
    assert done.transcript[3] == {"role": "user", "content": "Answer now."}
    assert done.meta["lookups"] == 1  # the environment saw only the executed call
    assert watcher.seen == [(0, 0), (0, 1), (1, 2), (1, 4)]


def _reviewer(store_path: Path, item_id: str, edit: bool) -> dict[str, Any]:
    """Wait for the episode's first tool result, pause, wait for the pause, steer (in its own
    thread, as the viewer is its own process)."""
    store = Store(store_path)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            rows = [r for r in store.steps_after(0, item_id=item_id) if r["kind"] == "message"
                    and r["message"]["role"] == "tool"]
            if rows:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("no tool result was streamed")
        run_id = rows[0]["run_id"]
        store.add_control(run_id, item_id, 0, "pause")
        while not any(r["kind"] == "paused" for r in store.steps_after(0, item_id=item_id)):
            assert time.monotonic() < deadline, "the episode never paused"
            time.sleep(0.02)
        steps = store.steps_after(0, item_id=item_id)
        messages: dict[int, dict[str, Any]] = {r["position"]: r["message"] for r in steps
                                               if r["kind"] == "message"}
        ordered = [messages[i] for i in sorted(messages)]
        payload: dict[str, Any] = {"message": "[[answer:21 degrees]]", "reviewer": "ann"}
        if edit:
            (index,) = unseen_tool_results(ordered)
            payload["tool_results"] = {str(index): '{"city": "Paris", "celsius": 21, "note": '
                                                   '"edited"}'}
        store.add_control(run_id, item_id, 0, "resume", payload)
        return {"run_id": run_id, "paused_at": len(ordered)}
    finally:
        store.close()


@pytest.fixture
def slow_stub() -> Iterator[StubServer]:
    """Answers in 0.3 s: an episode of 6 turns lasts long enough to be paused."""
    server = StubServer(0.3)
    yield server
    server.close()


def test_a_run_streams_steps_and_takes_a_reviewers_steering(tmp_path: Path, slow_stub,
                                                            monkeypatch) -> None:
    from posttrain.api import arun_eval

    monkeypatch.setenv("OPENAI_BASE_URL", slow_stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = write_weather_eval(tmp_path / "ev", n=2)
    store_path = tmp_path / "s.db"

    async def main() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        review = asyncio.create_task(asyncio.to_thread(_reviewer, store_path, "w0", True))
        summaries = await arun_eval(eval_path, ["openai:stub"], store=store_path)
        return summaries, await review

    summaries, review = asyncio.run(main())
    with Store(store_path) as store:
        rows = {r["item_id"]: r for r in store.samples(review["run_id"])}
        steered = json.loads(rows["w0"]["completion"])
        plain = json.loads(rows["w1"]["completion"])
        (record,) = steered["meta"]["steering"]
        assert record["added_message"]["content"] == "[[answer:21 degrees]]"
        assert record["edited_tool_results"][0]["after"].endswith('"edited"}')
        assert record["original"]["tool_calls"]  # the model would have called again
        assert record["corrected"]["content"] == "21 degrees"
        assert record["reviewer"] == "ann"
        transcript = steered["transcript"]
        assert transcript[record["at"] - 1] == {"role": "user",
                                                "content": "[[answer:21 degrees]]"}
        assert "steering" not in plain["meta"] and plain["meta"]["hit_turn_cap"]
        scores = {(r["item_id"]): r["value"] for r in store.scores(review["run_id"])}
        assert scores == {"w0": 1.0, "w1": 0.0}  # the grader grades the steered answer
        statuses = [(c["action"], c["status"]) for c in store.controls(review["run_id"])]
        assert statuses == [("pause", "applied"), ("resume", "applied")]
        kinds = [r["kind"] for r in store.steps_after(0, item_id="w0")]
        assert "paused" in kinds and "resumed" in kinds
        # every message of the stored transcript was streamed, the edit as a later row
        streamed: dict[int, dict[str, Any]] = {}
        for row in store.steps_after(0, item_id="w0"):
            if row["kind"] == "message":
                streamed[row["position"]] = row["message"]
        assert [streamed[i] for i in sorted(streamed)] == transcript
    assert summaries[0]["n"] == 2

    # the corrected trajectory as SFT data and a preference pair, through the usual exports
    from posttrain.cli import main as cli_main
    from posttrain.train.data import pairs_from_steering, rows_from_steering
    from posttrain.train.dpo import to_pair
    from posttrain.train.sft import to_prompt_completion

    (row,) = rows_from_steering(store_path)
    sft = to_prompt_completion(row)
    assert sft["completion"] == [{"role": "assistant", "content": "21 degrees"}]
    assert sft["prompt"][-1] == {"role": "user", "content": "[[answer:21 degrees]]"}
    assert '"note": "edited"' in sft["prompt"][-2]["content"]  # the edited tool result
    assert "<tool_call>" in sft["prompt"][2]["content"]  # calls written as the hf provider does
    (pair,) = pairs_from_steering(store_path, review["run_id"])
    dpo = to_pair(pair)
    assert dpo["chosen"] == [{"role": "assistant", "content": "21 degrees"}]
    assert "<tool_call>" in dpo["rejected"][0]["content"] and "weather" in \
        dpo["rejected"][0]["content"]
    # the same context; the SFT row trains only its last turn (earlier ones weight 0)
    assert dpo["prompt"] == [{k: v for k, v in m.items() if k != "weight"} for m in sft["prompt"]]
    assert {m.get("weight") for m in sft["prompt"] if m["role"] == "assistant"} == {0}
    out = tmp_path / "sft.jsonl"
    assert cli_main(["export", "openai-ft", "--kind", "sft", "--from-steering", "--store",
                     str(store_path), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1
    assert cli_main(["export", "openai-ft", "--kind", "dpo", "--from-steering", review["run_id"],
                     "--store", str(store_path), "-o", str(tmp_path / "dpo.jsonl")]) == 0
    exported = json.loads((tmp_path / "dpo.jsonl").read_text())
    assert exported["preferred_output"] == [{"role": "assistant", "content": "21 degrees"}]


def test_no_steering_is_one_clear_line(tmp_path: Path) -> None:
    from posttrain.errors import UserError
    from posttrain.train.data import pairs_from_steering, rows_from_steering

    Store(tmp_path / "s.db").close()
    with pytest.raises(UserError, match="no steered trajectories"):
        rows_from_steering(tmp_path / "s.db")
    with pytest.raises(UserError, match="no steered trajectories"):
        pairs_from_steering(tmp_path / "s.db")


def _live_store(path: Path) -> str:
    """A running run with one agentic sample part-way: a tool call and its result streamed."""
    with Store(path) as store:
        run = store.create_run(run_key="k", eval_name="weather", eval_path=None, eval_hash="h",
                               model="stub", variant="default", epochs=1, config={},
                               items=[Item(id="w0", data={}), Item(id="w1", data={})])
        store.add_steps(run.id, "w0", 0, 0, [("message", i, m)
                                             for i, m in enumerate(CONVERSATION)])
        return run.id


async def test_live_api_stream_and_guarded_steering(tmp_path: Path, monkeypatch) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web import live as live_module

    monkeypatch.setattr(live_module, "RESUME_WAIT_S", 0.2)

    from posttrain.web.server import create_app

    run_id = _live_store(tmp_path / "s.db")
    client = TestClient(TestServer(create_app(tmp_path / "s.db"), host="127.0.0.1"))
    await client.start_server()
    try:
        (live,) = await (await client.get("/api/live")).json()
        assert live["status"] == "running" and live["done"] == 0 and live["total"] == 2
        assert live["in_flight"] == [{"item_id": "w0", "epoch": 0, "steps": 3, "last": 3,
                                      "paused": False}]
        assert live["steered"] == 0
        t = await (await client.get(f"/api/live/{run_id}/w0")).json()
        assert [s["summary"] for s in t["steps"]] == [
            "user: weather?", "calls weather()", 'weather → {"celsius": 21}']
        assert not t["paused"] and t["editable"] == []

        # the stream: the steps so far, then progress, then a step the runner adds later
        stream = await client.get(f"/api/live/stream?run={run_id}&item=w0&epoch=0&after=1")
        assert stream.headers["Content-Type"] == "text/event-stream"
        text = ""
        while text.count("event: step") < 2 or "event: progress" not in text:
            text += (await stream.content.readany()).decode()
        with Store(tmp_path / "s.db") as store:
            store.add_steps(run_id, "w0", 0, 1, [("paused", None, {"turn": 1})])
        while "paused by a reviewer before turn 1" not in text:
            text += (await stream.content.readany()).decode()
        stream.close()

        # steering POSTs: the viewer's guard applies (JSON only, same origin, this host)
        body = {"run": run_id, "item_id": "w0", "epoch": 0}
        form = await client.post("/api/steer/pause", data="run=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status == 415
        cross = await client.post("/api/steer/pause", json=body,
                                  headers={"Origin": "http://evil.example"})
        assert cross.status == 403
        rebound = await client.post("/api/steer/pause", json=body,
                                    headers={"Host": "evil.example"})
        assert rebound.status == 421
        # not paused yet: a resume is refused; a pause is recorded for the runner
        refused = await client.post("/api/steer/resume", json={**body, "message": "hi"})
        assert refused.status == 409 and "not paused" in (await refused.json())["error"]
        ok = await client.post("/api/steer/pause", json=body)
        assert ok.status == 200 and (await ok.json())["state"] == "requested"
        again = await client.post("/api/steer/pause", json=body)
        assert again.status == 409
        with Store(tmp_path / "s.db") as store:  # the runner takes it
            (pause,) = store.pending_controls(run_id, "w0", 0)
            store.set_control_status(pause["id"], "taken")
        t = await (await client.get(f"/api/live/{run_id}/w0")).json()
        assert t["paused"] and t["editable"] == [2]
        wrong = await client.post("/api/steer/resume", json={**body, "tool_results": {"1": "x"}})
        assert wrong.status == 400 and "not a tool result" in (await wrong.json())["error"]
        done = await client.post("/api/steer/resume", json={
            **body, "tool_results": {"2": '{"celsius": 5}'}, "message": "Answer now."})
        # no runner takes it within the wait: the page is told so, not "sent; it goes on"
        answer = await done.json()
        assert answer["state"] == "pending" and answer["steered"] is True
        assert "has not taken it yet" in answer["message"]
        with Store(tmp_path / "s.db") as store:
            (resume,) = store.pending_controls(run_id, "w0", 0)
            assert resume["payload"] == {"tool_results": {"2": '{"celsius": 5}'},
                                         "message": "Answer now."}
    finally:
        await client.close()


async def test_steering_needs_the_token_off_localhost(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    run_id = _live_store(tmp_path / "s.db")
    client = TestClient(TestServer(create_app(tmp_path / "s.db", token="secret"),
                                   host="127.0.0.1"))
    await client.start_server()
    try:
        body = {"run": run_id, "item_id": "w0", "epoch": 0}
        assert (await client.post("/api/steer/pause", json=body)).status == 401
        assert (await client.get("/api/live/stream")).status == 401
        ok = await client.post("/api/steer/pause", json=body,
                               headers={"X-Posttrain-Token": "secret"})
        assert ok.status == 200
    finally:
        await client.close()


def test_a_pause_the_episode_never_reached_is_refused(tmp_path: Path) -> None:
    from posttrain.runner.steering import StoreWatcher

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        store.add_control(run_id, "w0", 0, "pause")
        StoreWatcher(store, run_id, "w0", 0).finish()
        (control,) = store.controls(run_id)
        assert (control["status"], control["note"]) == ("refused", "the episode ended first")


def test_the_runner_checks_the_correction_again_and_takes_only_the_reviewers_text(
        tmp_path: Path) -> None:
    """A resume written to the store by anything but the viewer is checked by the runner:
    an edit of the prompt or of a model turn, or a message that is not text, is refused and the
    episode stays paused until a valid one comes."""
    from posttrain.runner.steering import StoreWatcher

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        store.add_control(run_id, "w0", 0, "pause")
        store.add_control(run_id, "w0", 0, "resume", {"tool_results": {"1": "forged turn"}})
        store.add_control(run_id, "w0", 0, "resume", {"message": {"role": "assistant"}})
        store.add_control(run_id, "w0", 0, "resume", {"tool_results": {"2": "21 C"},
                                                      "message": "go on", "role": "system"})
        watcher = StoreWatcher(store, run_id, "w0", 0, poll_s=0.01)
        intervention = asyncio.run(watcher.checkpoint(1, [dict(m) for m in CONVERSATION]))
        assert intervention is not None
        assert (intervention.tool_results, intervention.message) == ({2: "21 C"}, "go on")
        edited, _record = apply_intervention(CONVERSATION, intervention)
        assert edited[-1] == {"role": "user", "content": "go on"}  # always a user message
        statuses = [(c["action"], c["status"]) for c in store.controls(run_id)]
        assert statuses == [("pause", "applied"), ("resume", "refused"), ("resume", "refused"),
                            ("resume", "applied")]
        notes = [c["note"] for c in store.controls(run_id)]
        assert "not a tool result" in notes[1] and "must be text" in notes[2]


def test_a_pause_nobody_resumes_expires(tmp_path: Path) -> None:
    from posttrain.runner.steering import StoreWatcher

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        store.add_control(run_id, "w0", 0, "pause")
        watcher = StoreWatcher(store, run_id, "w0", 0, pause_limit_s=0.05, poll_s=0.01)
        assert asyncio.run(watcher.checkpoint(1, list(CONVERSATION))) is None
        (control,) = store.controls(run_id)
        assert control["status"] == "expired"
        assert store.steps_after(3)[-1]["message"]["expired"] is True


def test_a_replayed_episode_replaces_the_trajectory(tmp_path: Path) -> None:
    """A run killed mid-episode and resumed plays the episode again from its prompt: the page's
    trajectory is the new attempt's, not a mix of both."""
    from posttrain.web.live import trajectory

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        store.add_steps(run_id, "w0", 0, 0, [("message", 0, CONVERSATION[0])])
        t = trajectory(store, run_id, "w0", 0)
        assert t["messages"] == CONVERSATION[:1] and len(t["steps"]) == 4


# ---- red team (issue 23): steered training data, dead runners, pauses ---------------------------
def _steered_store(path: Path) -> str:
    """A finished run with two steered samples: s-pass (its corrected trajectory passed the
    grader, two assistant turns after the correction) and s-fail (it failed)."""
    prompt = [{"role": "user", "content": "weather in Paris?"}]
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": '{"celsius": 21}'}
    added = {"role": "user", "content": "Answer in degrees."}
    transcript = [*prompt, call, result, added, {"role": "assistant", "content": "It is"},
                  {"role": "user", "content": "go on"},
                  {"role": "assistant", "content": "21 degrees"}]
    steering = [{"turn": 1, "at": 4, "edited_tool_results": [], "reviewer": "ann",
                 "added_message": {"index": 3, "content": added["content"]},
                 "original": call, "corrected": transcript[4]}]
    with Store(path) as store:
        run = store.create_run(run_key="k", eval_name="weather", eval_path=None, eval_hash="h",
                               model="stub", variant="default", epochs=1, config={},
                               items=[Item(id=i, data={"messages": prompt})
                                      for i in ("s-pass", "s-fail")])
        for item_id, passed in (("s-pass", True), ("s-fail", False)):
            completion = Completion(text=transcript[-1]["content"], transcript=transcript,
                                    meta={"steering": steering})
            store.record_sample(run.id, item_id, 0, completion=completion, request_key=None,
                                attempts=1, scores=[Score(value=float(passed), passed=passed,
                                                          name="exact")])
            control = store.add_control(run.id, item_id, 0, "resume", {"message": "x"})
            store.set_control_status(int(control), "applied")
        store.finish_run(run.id)
        return run.id


def test_only_steered_trajectories_that_passed_become_training_data(tmp_path: Path,
                                                                   capsys) -> None:
    from posttrain.cli import main as cli_main
    from posttrain.errors import UserError
    from posttrain.train.data import pairs_from_steering, rows_from_steering

    store_path = tmp_path / "s.db"
    _steered_store(store_path)
    rows = rows_from_steering(store_path)
    assert "skipped 1 steered sample whose corrected trajectory failed" in capsys.readouterr().err
    # s-pass alone: one row per assistant turn from the correction on, earlier turns weight 0
    assert len(rows) == 2
    for row in rows:
        *context, last = row["messages"]
        assert last["role"] == "assistant" and "weight" not in last
        assert all(m.get("weight") == 0 for m in context if m["role"] == "assistant")
    (pair,) = pairs_from_steering(store_path)
    assert pair["chosen"] == [{"role": "assistant", "content": "It is"}]
    out = tmp_path / "sft.jsonl"
    assert cli_main(["export", "openai-ft", "--kind", "sft", "--from-steering", "--store",
                     str(store_path), "-o", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(exported) == 2
    assert [m.get("weight") for m in exported[1]["messages"] if m["role"] == "assistant"] == \
        [0, 0, None]
    # a store whose only steered sample failed gives nothing, and says why
    with Store(store_path) as store:
        store.conn.execute("DELETE FROM samples WHERE item_id = 's-pass'")
        store.conn.commit()
    with pytest.raises(UserError, match="1 steered sample failed the eval's graders"):
        pairs_from_steering(store_path)
    # an unknown run names the flag that named it
    with pytest.raises(UserError) as caught:
        rows_from_steering(store_path, "nope")
    assert caught.value.field == "--from-steering"


def test_a_pause_frees_its_worker_for_the_runs_other_samples(tmp_path: Path, slow_stub,
                                                             monkeypatch) -> None:
    """With one worker, w1 is answered while a reviewer holds w0 paused (before, the pause
    held the only worker and the whole run waited for the reviewer)."""
    from posttrain.api import arun_eval
    from posttrain.runner.executor import RunOptions

    monkeypatch.setenv("OPENAI_BASE_URL", slow_stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = write_weather_eval(tmp_path / "ev", n=2, max_turns=3)
    store_path = tmp_path / "s.db"

    def reviewer() -> bool:
        store = Store(store_path)
        deadline = time.monotonic() + 30
        try:
            while not any(r["kind"] == "message" and r["message"]["role"] == "tool"
                          for r in store.steps_after(0, item_id="w0")):
                assert time.monotonic() < deadline, "no tool result was streamed"
                time.sleep(0.02)
            run_id = store.steps_after(0, item_id="w0")[0]["run_id"]
            store.add_control(run_id, "w0", 0, "pause")
            while not any(r["kind"] == "paused" for r in store.steps_after(0, item_id="w0")):
                assert time.monotonic() < deadline, "the episode never paused"
                time.sleep(0.02)
            other_done = False
            while time.monotonic() < deadline:
                if any(r["item_id"] == "w1" for r in store.samples(run_id)):
                    other_done = True
                    break
                time.sleep(0.05)
            store.add_control(run_id, "w0", 0, "resume", {})  # always: never leave it paused
            return other_done
        finally:
            store.close()

    async def main() -> bool:
        review = asyncio.create_task(asyncio.to_thread(reviewer))
        await arun_eval(eval_path, ["openai:stub"], store=store_path,
                        options=RunOptions(concurrency=1))
        return await review

    assert asyncio.run(main()), "w1 waited for the reviewer: the pause held the only worker"
    with Store(store_path) as store:
        assert {r["item_id"] for r in store.samples(store.list_runs()[0].id)} == {"w0", "w1"}


async def test_pauses_of_unknown_unstarted_or_plain_samples_are_refused(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        plain = store.create_run(run_key="p", eval_name="plain", eval_path=None, eval_hash="h",
                                 model="stub", variant="default", epochs=1, config={},
                                 items=[Item(id="q0", data={})])
    client = TestClient(TestServer(create_app(tmp_path / "s.db"), host="127.0.0.1"))
    await client.start_server()
    try:
        async def pause(run: str, item: str, epoch: int = 0) -> tuple[int, str]:
            response = await client.post("/api/steer/pause",
                                         json={"run": run, "item_id": item, "epoch": epoch})
            return response.status, (await response.json()).get("error", "")

        status, error = await pause(run_id, "nope")
        assert status == 404 and "no item 'nope'" in error
        assert (await pause(run_id, "w0", 3))[0] == 404
        status, error = await pause(run_id, "w1")  # not started yet
        assert status == 409 and "has not started yet" in error
        status, error = await pause(plain.id, "q0")
        assert status == 409 and "not agentic" in error
        with Store(tmp_path / "s.db") as store:
            assert store.controls(run_id) == [] and store.controls(plain.id) == []
    finally:
        await client.close()


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_correction_for_a_dead_runner_is_not_reported_sent(tmp_path: Path) -> None:
    import socket

    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:  # paused, then its runner was killed
        store.update_run_config(run_id, {"runner": {"pid": _dead_pid(),
                                                    "host": socket.gethostname()}})
        control = store.add_control(run_id, "w0", 0, "pause")
        store.set_control_status(control, "taken")
    client = TestClient(TestServer(create_app(tmp_path / "s.db"), host="127.0.0.1"))
    await client.start_server()
    try:
        (live,) = await (await client.get("/api/live")).json()
        assert live["runner"] == "gone"
        t = await (await client.get(f"/api/live/{run_id}/w0")).json()
        assert t["runner"] == "gone"
        body = {"run": run_id, "item_id": "w0", "epoch": 0}
        response = await client.post("/api/steer/resume", json={**body, "message": "go"})
        error = (await response.json())["error"]
        assert response.status == 409 and error.startswith("the run is not running")
        assert "the correction" in error and "dropped" in error
        with Store(tmp_path / "s.db") as store:
            statuses = [(c["action"], c["status"]) for c in store.controls(run_id)]
        assert statuses == [("pause", "abandoned")]  # nothing was written for a runner
        t = await (await client.get(f"/api/live/{run_id}/w0")).json()
        assert not t["paused"]
        response = await client.post("/api/steer/pause", json=body)
        assert response.status == 409 and "runner" in (await response.json())["error"]
    finally:
        await client.close()


def test_a_rerun_closes_the_earlier_attempts_pause_and_marks_the_attempt(tmp_path: Path
                                                                        ) -> None:
    from posttrain.runner.steering import StoreWatcher
    from posttrain.web.live import live_runs, trajectory

    run_id = _live_store(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        # attempt 1 was paused by a reviewer, then its runner died; a resume never read
        pause = store.add_control(run_id, "w0", 0, "pause")
        store.set_control_status(pause, "taken")
        store.add_steps(run_id, "w0", 0, 1, [("paused", None, {"turn": 1})])
        store.add_control(run_id, "w0", 0, "resume", {"message": "late"})
        # the rerun plays the episode again
        watcher = StoreWatcher(store, run_id, "w0", 0)
        watcher.start()
        watcher.on_messages(0, list(CONVERSATION), 0)
        assert [(c["action"], c["status"]) for c in store.controls(run_id)] == [
            ("pause", "abandoned"), ("resume", "refused")]
        assert not live_runs(store)[0]["in_flight"][0]["paused"]
        t = trajectory(store, run_id, "w0", 0)
        assert not t["paused"] and t["attempt"] == 2
        kinds = [(s["kind"], s["attempt"], s["current"]) for s in t["steps"]]
        assert kinds[:4] == [("message", 1, False)] * 3 + [("paused", 1, False)]
        assert ("attempt", 2, True) in kinds and kinds[-1] == ("message", 2, True)
        assert any("attempt 2: the run was resumed" in s["summary"] for s in t["steps"])
        # finished: never reported paused
        store.set_control_status(pause, "taken")  # even with a stale pause left over
        store.record_sample(run_id, "w0", 0, completion=Completion(text="21"),
                            request_key=None, attempts=1)
        t = trajectory(store, run_id, "w0", 0)
        assert t["finished"] and not t["paused"] and t["editable"] == []

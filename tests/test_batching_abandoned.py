"""A local engine never generates for a caller that gave up.

Seen on SmolLM2 (``suite:long_context?n=13&length=4096`` at the default 60 s per attempt, 2
cores): one batch of 13 long prompts took minutes, every caller timed out and retried, each retry
queued the same 13 prompts again behind the running batch, and the engine generated them once
per attempt (5 attempts) for callers that were gone: 13 errors after ~5 minutes, the CPU busy
after the run had ended. Now a queued request whose caller gave up is dropped when its batch is
formed, and a running generation stops once every caller of its batch is gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from posttrain.models.batching import BatchingModel
from posttrain.types import ChatRequest, Completion


def _request(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


class Slow(BatchingModel):
    batch_size = 4

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.batches: list[list[str]] = []

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        self.batches.append([r.messages[0]["content"] for r in requests])
        quick = all(r.messages[0]["content"].startswith("quick") for r in requests)
        deadline = time.monotonic() + (0.0 if quick else self.seconds)
        while time.monotonic() < deadline and not self.abandoned():
            time.sleep(0.01)
        return [Completion(text=r.messages[0]["content"]) for r in requests]


def test_a_request_whose_caller_gave_up_in_the_queue_is_not_generated() -> None:
    async def scenario() -> list[list[str]]:
        model = Slow(0.4)
        first = asyncio.create_task(model.generate(_request("first")))
        await asyncio.sleep(0.05)  # "first" is generating; "late" waits in the queue
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await model.generate(_request("late"))
        assert (await first).text == "first"
        assert (await model.generate(_request("next"))).text == "next"
        await model.aclose()
        return model.batches

    assert asyncio.run(scenario()) == [["first"], ["next"]]


def test_a_batch_whose_callers_all_gave_up_stops() -> None:
    async def scenario() -> tuple[float, list[list[str]]]:
        model = Slow(30.0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await asyncio.gather(model.generate(_request("a")), model.generate(_request("b")))
        # the engine is free again well before its 30 s: the next caller is answered
        assert (await asyncio.wait_for(model.generate(_request("quick")), 5)).text == "quick"
        elapsed = time.monotonic() - started
        await model.aclose()
        return elapsed, model.batches

    elapsed, batches = asyncio.run(scenario())
    assert elapsed < 5 and batches == [["a", "b"], ["quick"]]


def test_a_batch_with_one_caller_left_runs_to_the_end() -> None:
    async def scenario() -> str:
        model = Slow(0.3)
        kept = asyncio.create_task(model.generate(_request("kept")))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await model.generate(_request("gone"))
        text = (await kept).text
        await model.aclose()
        return text

    assert asyncio.run(scenario()) == "kept"


def test_hf_generation_stops_when_its_callers_are_gone(tmp_path_factory:
                                                      pytest.TempPathFactory) -> None:
    """The transformers path: a stopping criterion reads the same flag (tiny model)."""
    pytest.importorskip("transformers")
    from posttrain.models.hf import HFModel
    from posttrain.train.tiny import build_tiny_model

    folder: Path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", task=None)
    model = HFModel("hf:tiny", str(folder), batch_size=2)
    request = ChatRequest(messages=[{"role": "user", "content": "1 + 2 ="}], max_tokens=200)
    full = model.generate_batch([request])[0]
    gone = threading.Event()
    gone.set()
    model._abandoned = gone.is_set  # every caller of this batch has given up
    stopped = model.generate_batch([request])[0]
    assert full.output_tokens > 20 and stopped.output_tokens <= 1


class SlowLocal(Slow):
    name = "slow-local"
    cache_id = "test:slow-local"
    max_concurrency = 4
    price = None


def test_a_local_timeout_says_how_to_give_it_more_time(tmp_path: Path) -> None:
    """The long_context run's 13 errors said "timed out after 60 s (gave up after 5 attempts)":
    true, but a reader could not tell that the model was not broken, only slower on a CPU
    than the default allows."""
    from posttrain.analysis.results import load_results
    from posttrain.eval import eval_from_dict
    from posttrain.models.retry import RetryPolicy
    from posttrain.runner.executor import RunOptions, execute_eval
    from posttrain.runner.store import Store

    ev = eval_from_dict({
        "name": "slow", "items": [{"id": "i0", "q": "q"}],
        "messages": [{"role": "user", "content": "{{item.q}}"}],
        "graders": [{"type": "string_check", "name": "m", "operation": "eq",
                     "input": "{{sample.output_text}}", "reference": "q"}]})
    store = Store(tmp_path / "s.db")
    options = RunOptions(retry=RetryPolicy(max_retries=1, timeout_s=0.05, backoff_base_s=0.001))
    (handle,) = asyncio.run(execute_eval(ev, [SlowLocal(2.0)], ["default"], store, options))
    [sample] = load_results(store, handle.run).samples
    assert sample.status == "error" and sample.reason.startswith("timed out after 0.05 s")
    assert "--timeout" in sample.reason and "local model" in sample.reason

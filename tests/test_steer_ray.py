"""Follow along and steer on the Ray backend: a worker's episode streams its steps through the
driver, and a reviewer's pause and correction reach the worker playing it.

The first test runs the worker in-process (the worker's own code, the driver's own code, a real
store; only the Ray call between them is a direct call); the slow one runs the same on a real
local Ray cluster (``pytest -m slow tests/test_steer_ray.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posttrain.eval import load_eval
from posttrain.models import build_model, model_config
from posttrain.models.retry import RetryPolicy
from posttrain.runner.executor import RunOptions, plan_runs
from posttrain.runner.progress import Progress
from posttrain.runner.store import Store
from tests.conftest import StubServer
from tests.steer_env import write_weather_eval
from tests.test_steer import _reviewer

ray = pytest.importorskip("ray")

from posttrain.runner import ray_backend  # noqa: E402  (needs ray for cloudpickle)


@pytest.fixture
def slow_stub() -> Iterator[StubServer]:
    """Answers in 0.3 s: an episode of 6 turns lasts long enough to be paused."""
    server = StubServer(0.3)
    yield server
    server.close()


def _eval_with_its_module(folder: Path, n: int) -> Path:
    """The weather eval, its solver a module next to the eval file (what a Ray worker can
    import wherever its working directory is)."""
    path = write_weather_eval(folder, n=n)
    shutil.copy(Path(__file__).parent / "steer_env.py", folder / "weather_env.py")
    path.write_text(path.read_text().replace("tests.steer_env:solve", "weather_env:solve"))
    return path


def _check_steered(store: Store, run_id: str) -> None:
    rows = {r["item_id"]: r for r in store.samples(run_id)}
    steered = json.loads(rows["w0"]["completion"])
    (record,) = steered["meta"]["steering"]
    assert record["added_message"]["content"] == "[[answer:21 degrees]]"
    assert record["edited_tool_results"][0]["after"].endswith('"edited"}')
    assert record["corrected"]["content"] == "21 degrees" and record["reviewer"] == "ann"
    assert "steering" not in json.loads(rows["w1"]["completion"])["meta"]
    statuses = [(c["action"], c["status"]) for c in store.controls(run_id)]
    assert statuses == [("pause", "applied"), ("resume", "applied")]
    steps = store.steps_after(0, run_id=run_id, item_id="w0")
    assert [r["kind"] for r in steps].count("paused") == 1
    assert [r["kind"] for r in steps].count("resumed") == 1
    streamed = {r["position"]: r["message"] for r in steps if r["kind"] == "message"}
    assert [streamed[i] for i in sorted(streamed)] == steered["transcript"]
    # the live page's view of it: the steered answer shows as such
    from posttrain.web import live

    (run,) = [r for r in live.live_runs(store) if r["id"] == run_id]
    assert run["steered"] == 1


class _DirectActor:
    """A worker actor's handle, without Ray: ``actor.steer.remote(rows)`` awaits the worker."""

    def __init__(self, worker: Any) -> None:
        self.steer = self
        self.worker = worker

    def remote(self, rows: list[dict[str, Any]]) -> Any:
        return self.worker.steer(rows)


def test_a_workers_episode_is_followed_and_steered_through_the_driver(
        tmp_path: Path, slow_stub: StubServer) -> None:
    eval_path = write_weather_eval(tmp_path / "ev", n=2)
    eval_ = load_eval(eval_path)
    config = model_config(f"openai:stub?base_url={slow_stub.base_url}")
    options = RunOptions(preflight=False,
                         retry=RetryPolicy(max_retries=1, backoff_base_s=0.01, timeout_s=10))
    store_path = tmp_path / "s.db"
    model = build_model(config)
    with Store(store_path) as store:
        async def main() -> str:
            [plan] = await plan_runs(eval_, [model], ["default"], store, options,
                                     Progress(enabled=False))
            driver = ray_backend._Driver([plan], store, Progress(enabled=False))
            worker = ray_backend.RayEvalWorker(config, ray_backend.EvalRef.of(eval_), options, 2)
            actor = _DirectActor(worker)
            review = asyncio.create_task(asyncio.to_thread(_reviewer, store_path, "w0", True))
            relay = asyncio.create_task(driver.relay_steering(poll_s=0.05))
            try:
                async for events in worker.run_batch(plan.handle.run, "default",
                                                     [(item, 0) for item in eval_.items]):
                    for event in events:
                        driver.apply(0, event, {}, actor)
            finally:
                relay.cancel()
                await worker.aclose()
                await model.aclose()
            await review
            assert driver.episodes == {}  # both episodes finished: nothing left to forward to
            return plan.handle.run.id

        run_id = asyncio.run(main())
        _check_steered(store, run_id)


def test_a_control_for_an_episode_the_worker_no_longer_plays_is_refused_by_the_driver(
        tmp_path: Path) -> None:
    """A pause forwarded just as the episode ended: the worker drops it, and the driver's
    ``finish`` refuses it in the store, so the page does not wait for it."""
    with Store(tmp_path / "s.db") as store:
        from posttrain.types import Item

        run = store.create_run(run_key="k", eval_name="weather", eval_path=None, eval_hash="h",
                               model="stub", variant="default", epochs=1, config={},
                               items=[Item(id="w0", data={})])
        driver = ray_backend._Driver([], store, Progress(enabled=False))
        driver.planned = [type("Plan", (), {"handle": type("H", (), {"run": run})()})()]
        driver.apply(0, ("start", "w0", 0), {}, "actor")
        assert driver.episodes == {(run.id, "w0", 0): "actor"}
        control = store.add_control(run.id, "w0", 0, "pause")
        driver.apply(0, ("finish", "w0", 0), {}, "actor")
        assert driver.episodes == {}
        (row,) = store.controls(run.id)
        assert (row["id"], row["status"], row["note"]) == (control, "refused",
                                                           "the episode ended first")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ptray", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_ray_run_is_followed_and_steered_live(ray_cluster: None, tmp_path: Path,
                                                slow_stub: StubServer) -> None:
    from posttrain.runner.ray_backend import execute_eval_ray

    eval_path = _eval_with_its_module(tmp_path / "ev", n=2)
    store_path = tmp_path / "s.db"
    options = RunOptions(concurrency=2,
                         retry=RetryPolicy(max_retries=1, backoff_base_s=0.01, timeout_s=10))
    config = model_config(f"openai:stub?base_url={slow_stub.base_url}")
    with Store(store_path) as store:
        async def main() -> tuple[Any, dict[str, Any]]:
            review = asyncio.create_task(asyncio.to_thread(_reviewer, store_path, "w0", True))
            [handle] = await execute_eval_ray(load_eval(eval_path), [config], ["default"],
                                              store, options, workers=2)
            return handle, await review

        handle, review = asyncio.run(main())
        assert handle.run.status == "finished" and review["run_id"] == handle.run.id
        _check_steered(store, handle.run.id)


def _pause_when_streaming(store_path: Path, item_id: str) -> str:
    """Pause ``item_id`` once its first tool result is streamed; return when it is paused."""
    import time

    with Store(store_path) as store:
        deadline = time.monotonic() + 60
        while not [r for r in store.steps_after(0, item_id=item_id)
                   if r["kind"] == "message" and r["message"]["role"] == "tool"]:
            assert time.monotonic() < deadline, "no tool result was streamed"
            time.sleep(0.02)
        run_id = store.steps_after(0, item_id=item_id)[0]["run_id"]
        store.add_control(run_id, item_id, 0, "pause")
        while not any(r["kind"] == "paused" for r in store.steps_after(0, item_id=item_id)):
            assert time.monotonic() < deadline, "the episode never paused"
            time.sleep(0.02)
        return run_id


@pytest.mark.slow
def test_a_paused_episode_whose_worker_is_lost_is_closed_and_plays_again(
        ray_cluster: None, tmp_path: Path, slow_stub: StubServer) -> None:
    import signal

    from posttrain.runner.ray_backend import execute_eval_ray
    from posttrain.web import live

    eval_path = _eval_with_its_module(tmp_path / "ev", n=2)
    store_path = tmp_path / "s.db"
    options = RunOptions(concurrency=2,
                         retry=RetryPolicy(max_retries=1, backoff_base_s=0.01, timeout_s=10))
    config = model_config(f"openai:stub?base_url={slow_stub.base_url}")

    def run() -> Any:
        return execute_eval_ray(load_eval(eval_path), [config], ["default"], store, options,
                                workers=2)

    with Store(store_path) as store:
        async def main() -> str:
            running = asyncio.create_task(run())
            run_id = await asyncio.to_thread(_pause_when_streaming, store_path, "w0")
            for name in ray.util.list_named_actors():  # every worker, the paused one with them
                if name.startswith("posttrain:"):
                    os.kill(await ray.get_actor(name).pid.remote(), signal.SIGKILL)
            with pytest.raises(RuntimeError, match="were lost"):
                await running
            return run_id

        run_id = asyncio.run(main())
        (pause,) = store.controls(run_id, "w0", 0)
        assert pause["status"] == "abandoned" and "Ray worker" in pause["note"]
        last = store.steps_after(0, run_id=run_id, item_id="w0")[-1]
        assert last["kind"] == "resumed" and last["message"]["abandoned"]
        with pytest.raises(live.Conflict, match="not paused"):  # nothing would take it
            live.request_resume(store, run_id, "w0", 0, {"message": "go on"})

        [handle] = asyncio.run(run())  # the same command resumes the run
        assert handle.run.id == run_id and handle.run.status == "finished"
        kinds = [r["kind"] for r in store.steps_after(0, run_id=run_id, item_id="w0")]
        assert "attempt" in kinds and kinds.index("attempt") > kinds.index("resumed")
        page = live.trajectory(store, run_id, "w0", 0)
        assert page["attempt"] == 2 and page["finished"]
        sample = {r["item_id"]: json.loads(r["completion"]) for r in store.samples(run_id)}
        assert "steering" not in sample["w0"]["meta"]  # played again, nobody steered it


@pytest.mark.slow
def test_a_paused_episode_whose_worker_is_lost_plays_again_on_the_other_one(
        ray_cluster: None, tmp_path: Path, slow_stub: StubServer) -> None:
    import signal

    from posttrain.runner.ray_backend import execute_eval_ray

    eval_path = _eval_with_its_module(tmp_path / "ev", n=2)
    store_path = tmp_path / "s.db"
    options = RunOptions(concurrency=2,
                         retry=RetryPolicy(max_retries=1, backoff_base_s=0.01, timeout_s=10))
    config = model_config(f"openai:stub?base_url={slow_stub.base_url}")
    with Store(store_path) as store:
        async def main() -> tuple[Any, str]:
            running = asyncio.create_task(execute_eval_ray(
                load_eval(eval_path), [config], ["default"], store, options, workers=2))
            run_id = await asyncio.to_thread(_pause_when_streaming, store_path, "w0")
            for name in ray.util.list_named_actors():  # only the worker playing w0
                if name.startswith("posttrain:"):
                    actor = ray.get_actor(name)
                    if (run_id, "w0", 0) in [tuple(k) for k in await actor.playing.remote()]:
                        os.kill(await actor.pid.remote(), signal.SIGKILL)
                        break
            else:
                raise AssertionError("no worker plays w0")
            [handle] = await running
            return handle, run_id

        handle, run_id = asyncio.run(main())
        assert handle.run.status == "finished"
        (pause,) = store.controls(run_id, "w0", 0)
        assert pause["status"] == "abandoned" and "Ray worker" in pause["note"]
        kinds = [r["kind"] for r in store.steps_after(0, run_id=run_id, item_id="w0")]
        assert kinds.count("attempt") == 1 and kinds.index("attempt") > kinds.index("resumed")
        assert {r["item_id"] for r in store.samples(run_id)} == {"w0", "w1"}

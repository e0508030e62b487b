"""The Ray backend on a real local Ray cluster (2 worker actors) against the stub server.

Slow (Ray start-up alone is 3-15 s here); run with ``pytest -m slow tests/test_ray_backend.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posttrain.eval import load_eval
from posttrain.models import build_model, model_config
from posttrain.models.retry import RetryPolicy
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.store import Store
from tests.conftest import StubServer, write_eval

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ptray", dir="/tmp")  # short: Ray's socket paths are limited
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield
    ray.shutdown()


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        answer = "Paris" if i % 3 else "Lyon"  # every third answer is wrong
        question = f"q{i} capital? [[answer:{answer}]]"
        if i == 4:
            question += " [[fault:500:1]]"  # one retry
        if i == 7:
            question += " [[fault:400:always]]"  # a final error
        rows.append({"id": f"q{i}", "question": question, "answer": "Paris",
                     "category": "even" if i % 2 == 0 else "odd"})
    return rows


def _options(concurrency: int = 4) -> RunOptions:
    return RunOptions(concurrency=concurrency,
                      retry=RetryPolicy(max_retries=2, backoff_base_s=0.01, timeout_s=10))


def _results(store: Store, run_id: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    scores: dict[tuple[str, int], list[tuple[str, Any, str]]] = {}
    for row in store.scores(run_id):
        scores.setdefault((row["item_id"], row["epoch"]), []).append(
            (row["grader"], row["value"], row["status"]))
    out = {}
    for row in store.samples(run_id):
        key = (row["item_id"], row["epoch"])
        out[key] = (row["status"], row["error"] is not None, row["completion"] is not None,
                    tuple(scores.get(key, [])))
    return out


def _ray_run(eval_path: Path, server: StubServer, store: Store, *, workers: int = 2,
             concurrency: int = 4, epochs: int = 1):
    from posttrain.runner.ray_backend import execute_eval_ray

    config = model_config(f"openai:stub?base_url={server.base_url}")
    options = _options(concurrency)
    options.epochs = epochs
    return execute_eval_ray(load_eval(eval_path), [config], ["default"], store, options,
                            workers=workers)


async def _local_run(eval_path: Path, server: StubServer, store: Store, epochs: int = 1):
    model = build_model(model_config(f"openai:stub?base_url={server.base_url}"))
    options = _options()
    options.epochs = epochs
    try:
        return await execute_eval(load_eval(eval_path), [model], ["default"], store, options)
    finally:
        await model.aclose()


def test_ray_run_matches_local_and_repeats_from_cache(ray_cluster: None, tmp_path: Path) -> None:
    eval_path = write_eval(tmp_path / "ev", _rows(12))
    local_server, ray_server = StubServer(), StubServer()
    try:
        with Store(tmp_path / "local.db") as local_store, Store(tmp_path / "ray.db") as store:
            [local] = asyncio.run(_local_run(eval_path, local_server, local_store, epochs=2))
            [handle] = asyncio.run(_ray_run(eval_path, ray_server, store, epochs=2))
            assert handle.run.status == "finished"
            expected = _results(local_store, local.run.id)
            got = _results(store, handle.run.id)
            assert got == expected
            assert len(got) == 24
            assert got[("q1", 0)][3] == (("exact", 1.0, "scored"),)
            assert got[("q3", 1)][3] == (("exact", 0.0, "scored"),)
            assert got[("q7", 0)][0] == "error" and got[("q7", 1)][1]
            assert handle.counters.done == 24 and handle.counters.errors == 2
            assert handle.counters.retries == local.counters.retries == 1
            stats = ray_server.stats()
            assert stats["total_successes"] == 22  # 11 answerable messages × 2 epochs, once each

            # the same eval again: answered from the driver's cache, nothing sent to workers
            # but the two final errors (errors are never cached)
            [again] = asyncio.run(_ray_run(eval_path, ray_server, store, epochs=2))
            assert again.counters.cached == 22
            assert ray_server.stats()["total_successes"] == 22
            assert _results(store, again.run.id) == expected
    finally:
        local_server.close()
        ray_server.close()


async def _kill_workers_after(store_path: Path, stored: int, how_many: int) -> set[str]:
    """Wait until ``stored`` answers are in the store, SIGKILL ``how_many`` workers, and return
    the items that were stored at that moment."""
    with Store(store_path) as watcher:
        while True:
            rows = watcher.conn.execute(
                "SELECT item_id FROM samples WHERE status='ok'").fetchall()
            if len(rows) >= stored:
                break
            await asyncio.sleep(0.02)
        names = sorted(name for name in ray.util.list_named_actors()
                       if name.startswith("posttrain:"))
        for name in names[:how_many]:
            pid = await ray.get_actor(name).pid.remote()
            os.kill(pid, signal.SIGKILL)
        rows = watcher.conn.execute("SELECT item_id FROM samples WHERE status='ok'").fetchall()
        return {row[0] for row in rows}


def _slow_rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "question": f"s{i}? [[answer:{'Paris' if i % 4 else 'Rome'}]]",
             "answer": "Paris", "category": "x"} for i in range(n)]


def test_worker_killed_midway_loses_nothing_and_sends_nothing_twice(
        ray_cluster: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="posttrain.ray")
    n = 30
    eval_path = write_eval(tmp_path / "ev", _slow_rows(n))
    server = StubServer(latency=0.15)
    try:
        with Store(tmp_path / "ray.db") as store:
            async def scenario():
                run = asyncio.create_task(_ray_run(eval_path, server, store, concurrency=4))
                before = await _kill_workers_after(tmp_path / "ray.db", 6, 1)
                [handle] = await run
                return handle, before

            handle, stored_before_kill = asyncio.run(scenario())
            results = _results(store, handle.run.id)
            assert len(results) == n
            for i in range(n):
                value = 0.0 if i % 4 == 0 else 1.0
                assert results[(f"s{i}", 0)][:1] == ("ok",)
                assert results[(f"s{i}", 0)][3] == (("exact", value, "scored"),)
            successes = server.stats()["successes"]
            sent_twice = {message.split("?")[0] for message, count in successes.items()
                          if count > 1}
            # an answer stored before the kill is never asked again; only requests that were
            # in flight on the killed worker (at most its concurrency, 2) may be re-sent
            assert not sent_twice & stored_before_kill
            assert len(sent_twice) <= 2
            assert all(count <= 2 for count in successes.values())
            assert handle.counters.done == n
            requeued = [r.getMessage() for r in caplog.records if "re-queued" in r.getMessage()]
            assert requeued, "the killed worker's unfinished samples were re-queued"
            print(requeued, sorted(sent_twice), len(stored_before_kill))
    finally:
        server.close()


def test_all_workers_lost_then_resume(ray_cluster: None, tmp_path: Path) -> None:
    n = 24
    eval_path = write_eval(tmp_path / "ev", _slow_rows(n))
    server = StubServer(latency=0.15)
    try:
        with Store(tmp_path / "ray.db") as store:
            async def scenario():
                run = asyncio.create_task(_ray_run(eval_path, server, store, concurrency=4))
                before = await _kill_workers_after(tmp_path / "ray.db", 4, 2)
                with pytest.raises(RuntimeError, match="were lost"):
                    await run
                return before

            stored_before_kill = asyncio.run(scenario())
            [first] = store.list_runs()
            assert first.status == "running"
            partial = store.done_keys(first.id)
            assert 4 <= len(partial) < n

            [handle] = asyncio.run(_ray_run(eval_path, server, store, concurrency=4))
            assert handle.run.id == first.id  # resumed, not restarted
            assert handle.counters.total == n - len(partial)
            assert len(store.done_keys(first.id)) == n
            successes = server.stats()["successes"]
            assert len(successes) == n
            sent_twice = {m.split("?")[0] for m, c in successes.items() if c > 1}
            assert not sent_twice & stored_before_kill
            assert len(sent_twice) <= 4  # in flight on the two killed workers
    finally:
        server.close()

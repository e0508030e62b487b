"""Answers committed on the writer thread (``Store.group_commits(..., background_writes=True)``):
the same rows as the loop's own commits, acknowledged only once committed, other writes after
them, and a failed write raised, not lost."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

import pytest

from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score

ITEMS = [Item(id=f"q{i}", data={"id": f"q{i}"}) for i in range(40)]


def _score(name: str, value: float, passed: bool | None) -> Score:
    score = Score(value=value, passed=passed, explanation="é ✓ \"quoted\"\n")
    score.name = name
    return score


def _record(store: Store, run_id: str, index: int) -> None:
    """Answers with awkward values: unicode, floats, None, an infinite score (JSON has none)."""
    item = ITEMS[index]
    if index % 7 == 3:  # a request that failed for good
        store.record_sample(run_id, item.id, 0, completion=None, request_key=None, attempts=3,
                            error="HTTP 500: ✗")
        return
    completion = Completion(text=f"réponse {index} \u2028 {{json}}", input_tokens=index,
                            output_tokens=3, latency_s=0.1 + index / 3, cost_usd=index * 1e-7)
    value = math.inf if index == 5 else index / 7
    store.record_sample(run_id, item.id, 0, completion=completion,
                        request_key=f"key-{index:03d}", attempts=1,
                        scores=[_score("a", value, index % 2 == 0), _score("b", 0.1, None)],
                        cache=index % 5 != 0, cache_meta={"model": "m", "identity": None})


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            "samples": conn.execute(
                "SELECT item_id, epoch, status, request_key, completion, error, attempts, "
                "input_tokens, output_tokens, cost_usd, latency_s, cached, typeof(cost_usd), "
                "typeof(latency_s), typeof(attempts) FROM samples ORDER BY item_id").fetchall(),
            "scores": conn.execute(
                "SELECT item_id, grader, value, passed, status, explanation, sub_scores, "
                "typeof(value), typeof(passed) FROM scores ORDER BY item_id, grader").fetchall(),
            "cache": conn.execute("SELECT key, response, model, identity FROM cache "
                                  "ORDER BY key").fetchall(),
        }
    finally:
        conn.close()


async def _write_all(path: Path, threaded: bool) -> tuple[Store, str]:
    store = Store(path)
    run = store.create_run(run_key="k", eval_name="e", eval_path=None, eval_hash="h",
                           model="m", variant="default", epochs=1, config={}, items=ITEMS)
    store.group_commits(asyncio.get_running_loop(), background_checkpoints=True,
                        background_writes=threaded)
    for index in range(len(ITEMS)):
        _record(store, run.id, index)
        if index % 9 == 8:
            waiter = store.commit_waiter()
            assert (waiter is not None) == threaded
            if waiter is not None:
                await waiter
                # acknowledged: committed, visible to another connection
                seen = sqlite3.connect(path).execute(
                    "SELECT COUNT(*) FROM samples").fetchone()[0]
                assert seen == index + 1
            else:
                await asyncio.sleep(0)
    store.update_run_config(run.id, {"after": True})  # another write, after the answers
    store.group_commits(None)
    return store, run.id


async def test_writer_thread_writes_the_same_rows(tmp_path: Path) -> None:
    loop_store, _ = await _write_all(tmp_path / "loop.db", threaded=False)
    loop_store.close()
    thread_store, run_id = await _write_all(tmp_path / "thread.db", threaded=True)
    assert thread_store._writer is None  # stopped with the grouping
    assert thread_store.get_run(run_id).config["after"] is True
    thread_store.close()
    loop_rows = _tables(tmp_path / "loop.db")
    assert len(loop_rows["samples"]) == len(ITEMS) and len(loop_rows["cache"]) > 20
    assert any(row[2] == math.inf for row in loop_rows["scores"])
    assert _tables(tmp_path / "thread.db") == loop_rows


async def test_a_failed_write_reaches_the_waiting_answer(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run = store.create_run(run_key="k", eval_name="e", eval_path=None, eval_hash="h",
                           model="m", variant="default", epochs=1, config={}, items=ITEMS)
    store.group_commits(asyncio.get_running_loop(), background_writes=True)
    store.conn.execute("CREATE TRIGGER no_samples BEFORE INSERT ON samples "
                       "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    _record(store, run.id, 1)
    waiter = store.commit_waiter()
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        await waiter
    with pytest.raises(sqlite3.IntegrityError):  # and the grouping's end says so too
        store.group_commits(None)
    assert store.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
    store.close()

"""Training jobs in the store (``posttrain.runner.train_jobs``) and their API (fast)."""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.runner import train_jobs
from posttrain.runner.store import Store


def test_a_job_is_recorded_step_by_step_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as db:
        assert train_jobs.list_jobs(db) == [] and train_jobs.get_job(db, "x") is None
        job = train_jobs.start_job(db, kind="rft", model="hf:m", eval_name="qa", out_dir="o",
                                   config={"steps": 2})
        train_jobs.log_step(db, job, {"step": 0, "validation": 0.1})
    # each step is durable at once: another connection (the page) sees it mid-training
    with Store(path) as other:
        (row,) = train_jobs.list_jobs(other)
        assert (row["id"], row["status"], row["log_entries"]) == (job, "running", 1)
    with Store(path) as db:
        train_jobs.log_step(db, job, {"step": 1, "reward": 0.5, "reward_std": 0.1})
        train_jobs.finish_job(db, job, status="finished", result={"after": 0.4})
        got = train_jobs.get_job(db, job)
    assert got is not None and got["status"] == "finished" and got["finished"] >= got["created"]
    assert got["log"] == [{"step": 0, "validation": 0.1},
                          {"step": 1, "reward": 0.5, "reward_std": 0.1}]
    assert got["config"] == {"steps": 2} and got["result"] == {"after": 0.4}
    assert train_jobs.list_jobs(db := Store(path), "other-eval") == []
    db.close()


def test_the_api_lists_jobs_and_404s_an_unknown_one(tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    path = tmp_path / "s.db"
    with Store(path) as db:
        job = train_jobs.start_job(db, kind="rft", model="hf:m", eval_name="qa", out_dir=None,
                                   config={})

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(path))) as client:
            listed = await (await client.get("/api/training")).json()
            assert [j["id"] for j in listed] == [job]
            one = await client.get(f"/api/training/{job}")
            assert (await one.json())["log"] == []
            missing = await client.get("/api/training/nope")
            assert missing.status == 404 and "no training job" in json.dumps(await missing.json())

    asyncio.run(scenario())

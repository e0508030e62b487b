"""DNS rebinding: the viewer answers only to its bound address (and localhost) as ``Host``, and
takes writes only from those origins (aiohttp test server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from posttrain.runner.store import Store
from tests.test_web_helpers import app_client, build


@pytest.fixture
def env(tmp_path: Path):
    return build(tmp_path)


async def _client(store_path: Path) -> TestClient:
    return await app_client(store_path)


def _review(run: str) -> dict:
    return {"run": run, "item_id": "q3", "verdict": "misgraded", "field": "answer",
            "value": "Canberra", "note": "rebinding"}


async def test_foreign_host_is_refused_on_get(env) -> None:
    store_path, _, _ = env
    client = await _client(store_path)
    port = client.port
    try:
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}",
                     f"127.0.0.1:{port + 1}", f"user@127.0.0.1:{port}", ""):
            resp = await client.get("/api/runs", headers={"Host": host})
            assert resp.status == 421, host
            assert "model-a" not in await resp.text()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            resp = await client.get("/api/runs", headers={"Host": host})
            assert resp.status == 200, host
            assert {r["model"] for r in await resp.json()} == {"model-a", "model-b"}
    finally:
        await client.close()


async def test_post_with_matching_foreign_origin_and_host_is_refused(env) -> None:
    store_path, eval_path, runs = env
    dataset = eval_path.parent / "data.jsonl"
    before = dataset.read_text()
    client = await _client(store_path)
    port = client.port
    try:
        evil = f"rebind.example:{port}"
        resp = await client.post("/api/review", json=_review(runs["model-a"]),
                                 headers={"Host": evil, "Origin": f"http://{evil}"})
        assert resp.status == 421
        other_origin = await client.post("/api/review", json=_review(runs["model-a"]),
                                         headers={"Origin": f"http://evil.example:{port}"})
        assert other_origin.status == 403
        wrong_scheme = await client.post("/api/review", json=_review(runs["model-a"]),
                                         headers={"Origin": f"https://127.0.0.1:{port}"})
        assert wrong_scheme.status == 403
        assert dataset.read_text() == before  # the review handler was never reached
        with Store(store_path) as store:
            assert list(store.reviews()) == []
        own = await client.post("/api/review", json=_review(runs["model-a"]),
                                headers={"Origin": f"http://127.0.0.1:{port}"})
        assert own.status == 200, await own.text()
        assert dataset.read_text() != before
    finally:
        await client.close()

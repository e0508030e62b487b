"""``posttrain view --host 0.0.0.0``: the printed URL is one a browser can open, and the Host a
browser then sends is accepted; a rebound name is still refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from posttrain.cli.view import _addresses
from posttrain.web.server import create_app
from tests.test_web_helpers import build


def test_a_wildcard_host_prints_addresses_to_open() -> None:
    addresses = _addresses("0.0.0.0")
    assert addresses[-1] == "127.0.0.1" and "0.0.0.0" not in addresses
    assert _addresses("127.0.0.1") == ["127.0.0.1"]
    assert "::" not in _addresses("::")


@pytest.fixture
def env(tmp_path: Path):
    return build(tmp_path)


async def test_the_wildcard_literal_is_accepted_as_host(env) -> None:
    store_path, _, _ = env
    client = TestClient(TestServer(create_app(store_path, seed=1), host="127.0.0.1"))
    await client.start_server()
    port = client.port
    try:
        for host in (f"0.0.0.0:{port}", f"127.0.0.1:{port}", f"[::]:{port}"):
            resp = await client.get("/api/runs", headers={"Host": host})
            assert resp.status == 200, host
        for host in (f"evil.example:{port}", f"0.0.0.0:{port + 1}"):
            resp = await client.get("/api/runs", headers={"Host": host})
            assert resp.status == 421, host
    finally:
        await client.close()

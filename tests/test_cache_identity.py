"""The response cache never answers for another model: identity, expiry, scope, old stores, and
``posttrain cache ls|clear``."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.models import resolve_model
from posttrain.models.identity import (
    EndpointIdentity,
    identity_matches,
    is_self_hosted,
    listing_identity,
    local_weights_identity,
)
from posttrain.runner.cache import CachePolicy, parse_duration
from posttrain.runner.store import Store, request_key
from tests.conftest import write_eval
from tests.endpoint_stub import Endpoint

ROWS = [{"id": f"c{i}", "question": f"capital {i}?", "answer": "Paris", "category": "geo"}
        for i in range(4)]
# vLLM's /v1/models entry: `created` and `permission` are stamped at listing time
VLLM_A = {"id": "X", "object": "model", "owned_by": "vllm", "root": "/srv/models/base",
          "parent": None, "max_model_len": 4096}
VLLM_B = {**VLLM_A, "root": "/srv/models/rft"}


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def _vllm_entry(base: dict) -> dict:
    now = int(time.time())
    return {**base, "created": now, "permission": [
        {"id": f"modelperm-{os.urandom(8).hex()}", "object": "model_permission",
         "created": now, "allow_sampling": True}]}


def _eval(tmp_path: Path, argv_extra: list[str] | None = None, *, model: str,
          rows: list[dict] | None = None, capsys: pytest.CaptureFixture[str]) -> dict:
    eval_path = write_eval(tmp_path / "ev", rows or ROWS)
    argv = ["eval", str(eval_path), "--model", model, "--store", str(tmp_path / "s.db"),
            "--json", "--no-progress", *(argv_extra or [])]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)["runs"][0]


@pytest.mark.parametrize("client", ["lean", "sdk"])
def test_another_model_behind_the_same_name_and_url_is_not_served_from_cache(
        endpoint, tmp_path, capsys, client):
    """train -> serve the new weights under the old name -> eval again: the old model's cached
    answers must not come back. Model A (/srv/models/base, fp_a) answers right; model B
    (/srv/models/rft, fp_b) behind the same name X and URL answers wrong."""
    if client == "sdk":
        pytest.importorskip("openai")
    spec = f"openai:X?client={client}&base_url={endpoint.base_url}"
    endpoint.state.update(listing=_vllm_entry(VLLM_A), fingerprint="fp_a", answer="Paris")
    first = _eval(tmp_path, model=spec, capsys=capsys)
    assert (first["requests"], first["score"]) == (4, 1.0)
    endpoint.state.update(listing=_vllm_entry(VLLM_A))  # a new listing of the same model
    again = _eval(tmp_path, model=spec, capsys=capsys)
    assert (again["requests"], again["cached"], again["score"]) == (0, 4, 1.0)
    endpoint.state.update(listing=_vllm_entry(VLLM_B), fingerprint="fp_b", answer="Rome")
    swapped = _eval(tmp_path, model=spec, capsys=capsys)
    assert (swapped["requests"], swapped["cached"]) == (4, 0)
    assert swapped["score"] == 0.0  # B's own answers, graded
    assert endpoint.chat_requests == 8


def test_a_changed_served_model_id_or_fingerprint_stops_cache_hits(endpoint, tmp_path, capsys):
    """An endpoint with no /models entry: what its live answers report is the identity. After
    one live answer reports another model id (a proxy's upstream, a moved alias), the entries
    written by the old one are not served; hits served before it are reported."""
    spec = f"openai:X?base_url={endpoint.base_url}&concurrency=1"
    endpoint.state.update(served="x-2025-01-01", fingerprint="fp_a", answer="Paris")
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    endpoint.state.update(served="x-2025-06-01", fingerprint="fp_b", answer="Rome")
    # a new item first: its live answer reveals the new model before any lookup of the old ones
    rows = [{"id": "c-new", "question": "new?", "answer": "Paris", "category": "geo"}, *ROWS]
    run = _eval(tmp_path, model=spec, rows=rows, capsys=capsys)
    assert (run["requests"], run["cached"]) == (5, 0)


def test_hits_served_before_a_change_is_seen_are_reported(endpoint, tmp_path, capsys):
    spec = f"openai:X?base_url={endpoint.base_url}&concurrency=1"
    endpoint.state.update(served="x-2025-01-01", answer="Paris")
    _eval(tmp_path, model=spec, capsys=capsys)
    endpoint.state.update(served="x-2025-06-01", answer="Rome")
    rows = [*ROWS, {"id": "c-new", "question": "new?", "answer": "Paris", "category": "geo"}]
    eval_path = write_eval(tmp_path / "ev", rows)
    assert main(["eval", str(eval_path), "--model", spec, "--store", str(tmp_path / "s.db"),
                 "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["runs"][0]["cached"] == 4
    assert "4 answers earlier in this run came from cache entries another model wrote" \
        in captured.err


def test_fingerprints_are_compared_only_for_servers_you_run(endpoint, tmp_path, capsys):
    """Public APIs rotate several fingerprints across replicas of one model: comparing them
    would re-buy answers. ``cache_fingerprint: false`` (the default off this network) records
    them without comparing; the served model id still counts."""
    models = tmp_path / "models.yaml"
    models.write_text("models:\n"
                      f"  hosted: {{provider: openai, model: X, base_url: '{endpoint.base_url}', "
                      "cache_fingerprint: false}\n")
    extra = ["--models-file", str(models)]
    endpoint.state.update(fingerprint="fp_replica1")
    assert _eval(tmp_path, extra, model="hosted", capsys=capsys)["requests"] == 4
    endpoint.state.update(fingerprint="fp_replica2")
    rows = [{"id": "c-new", "question": "new?", "answer": "Paris", "category": "geo"}, *ROWS]
    assert _eval(tmp_path, extra, model="hosted", rows=rows, capsys=capsys)["requests"] == 1
    assert not is_self_hosted("https://api.openai.com/v1")
    assert is_self_hosted("http://127.0.0.1:8000/v1") and is_self_hosted("http://gpu-box:8000/v1")
    assert is_self_hosted("http://10.0.0.7/v1") and not is_self_hosted("https://example.com/v1")


def test_anthropic_alias_resolving_to_a_new_snapshot_is_not_served_from_cache(
        endpoint, tmp_path, capsys):
    pytest.importorskip("anthropic")
    os.environ.setdefault("ANTHROPIC_API_KEY", "test-key")
    spec = f"anthropic:claude-sonnet-4-0?base_url={endpoint.anthropic_url}"
    endpoint.state.update(anthropic_resolved="claude-sonnet-4-20250514",
                          served="claude-sonnet-4-20250514")
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 0
    endpoint.state.update(anthropic_resolved="claude-sonnet-4-20251101",
                          served="claude-sonnet-4-20251101")
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4


def test_expiry_default_and_flag(endpoint, tmp_path, capsys):
    spec = f"openai:X?base_url={endpoint.base_url}"
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    with sqlite3.connect(tmp_path / "s.db") as conn:  # eight days pass
        conn.execute("UPDATE cache SET created = created - 8 * 86400")
    assert _eval(tmp_path, ["--cache-expiry", "30d"], model=spec, capsys=capsys)["requests"] == 0
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4  # default: 7 days
    assert _eval(tmp_path, ["--cache-expiry", "never"], model=spec,
                 capsys=capsys)["requests"] == 0
    assert main(["eval", str(tmp_path / "ev" / "eval.yaml"), "--model", spec, "--store",
                 str(tmp_path / "s.db"), "--cache-expiry", "soon"]) == 2
    assert parse_duration("12h") == 43200 and parse_duration("never") is None
    # local weights: the key holds their digest, so no default expiry
    assert CachePolicy().max_age_s("hf:/m#0a1b") is None
    assert CachePolicy().max_age_s("openai:http://h/v1:x") == 7 * 86400
    assert CachePolicy(expiry_s=60).max_age_s("hf:/m#0a1b") == 60


def test_scopes(endpoint, tmp_path, capsys):
    spec = f"openai:X?base_url={endpoint.base_url}"
    assert _eval(tmp_path, ["--cache-scope", "run"], model=spec, capsys=capsys)["requests"] == 4
    # a new run in scope `run` draws fresh answers; `global` (the default) keeps the old keys
    assert _eval(tmp_path, ["--cache-scope", "run"], model=spec, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 0
    assert _eval(tmp_path, ["--cache-scope", "eval"], model=spec, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, ["--cache-scope", "eval"], model=spec, capsys=capsys)["requests"] == 0
    assert request_key("m", {"a": 1}, 0) != request_key("m", {"a": 1}, 0, "run:r1")


OLD_CACHE_TABLE = ("CREATE TABLE cache (key TEXT PRIMARY KEY, response TEXT NOT NULL, "
                   "created REAL NOT NULL) WITHOUT ROWID")


def test_a_store_from_before_identities_keeps_its_cache(endpoint, tmp_path, capsys):
    """Nothing computed is lost: an old store's cache table gains the columns, and its entries
    (no identity recorded) are served within the expiry."""
    spec = f"openai:X?base_url={endpoint.base_url}"
    _eval(tmp_path, model=spec, capsys=capsys)
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:  # rewrite the cache table as an older version wrote it
        rows = conn.execute("SELECT key, response, created FROM cache").fetchall()
        conn.execute("DROP TABLE cache")
        conn.execute(OLD_CACHE_TABLE)
        conn.executemany("INSERT INTO cache VALUES (?,?,?)", rows)
    endpoint.state.update(listing=_vllm_entry(VLLM_A), fingerprint="fp_a")
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 0
    assert main(["cache", "ls", "--store", str(db)]) == 0
    assert "(written before identities were recorded)" in capsys.readouterr().out


def test_cache_ls_and_clear(endpoint, tmp_path, capsys):
    db = str(tmp_path / "s.db")
    x = f"openai:X?base_url={endpoint.base_url}"
    y = f"openai:Y?base_url={endpoint.base_url}"
    _eval(tmp_path, model=x, capsys=capsys)
    _eval(tmp_path, model=y, capsys=capsys)
    assert main(["cache", "ls", "--store", db, "--json"]) == 0
    listed = {m["model"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    x_id = f"openai:{endpoint.base_url}:X"
    assert set(listed) == {x_id, f"openai:{endpoint.base_url}:Y"}
    assert listed[x_id]["entries"] == 4 and listed[x_id]["bytes"] > 0
    assert main(["cache", "ls", "--store", db]) == 0
    table = capsys.readouterr().out
    assert x_id in table and "7d" in table
    assert main(["cache", "clear", "--store", db, "--older-than", "1d"]) == 0
    assert "deleted 0 cache entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--store", db, "--model", "openai:X"]) == 0
    assert "deleted 4 cache entries" in capsys.readouterr().out
    assert _eval(tmp_path, model=x, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=y, capsys=capsys)["requests"] == 0
    assert main(["cache", "clear", "--store", db]) == 0
    assert "deleted 8 cache entries" in capsys.readouterr().out
    assert main(["report", "latest", "--store", db, "--json"]) == 0  # runs are kept
    assert json.loads(capsys.readouterr().out)["runs"][0]["n"] == 4
    assert main(["cache", "clear", "--store", db, "--older-than", "soon"]) == 2


# ---- identities -----------------------------------------------------------------------------
def _old_folder_identity(path: Path) -> str:
    """The digest earlier versions computed for a checkpoint folder (kept, so old stores resume)."""
    import hashlib

    stamps = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()
                    if p.suffix in (".safetensors", ".bin", ".json", ".jinja"))
    digest = hashlib.blake2b(json.dumps(stamps).encode(), digest_size=8).hexdigest()
    return f"{path.resolve()}#{digest}"


def test_local_weights_change_gives_a_new_identity(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"A" * 100_000)
    first = local_weights_identity(str(folder))
    assert first == _old_folder_identity(folder)
    (folder / "model.safetensors").write_bytes(b"B" * 100_000)  # retrained in place
    assert local_weights_identity(str(folder)) != first
    # one GGUF file (vllm:/models/x.gguf): new bytes of the same size, time put back
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"A" * 300_000)
    stat = gguf.stat()
    before = local_weights_identity(str(gguf))
    gguf.write_bytes(b"A" * 150_000 + b"B" * 150_000)
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert local_weights_identity(str(gguf)) != before and "#" in before
    # a hub id: the commit the local hub cache holds
    hub = tmp_path / "hub"
    ref = hub / "models--org--tiny" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("1111111111111111aaaa")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert local_weights_identity("org/tiny") == "org/tiny#1111111111111111"
    ref.write_text("2222222222222222bbbb")
    assert local_weights_identity("org/tiny") == "org/tiny#2222222222222222"
    assert local_weights_identity("org/absent") == "org/absent"


def test_a_path_served_from_this_machine_is_keyed_on_its_weights(tmp_path):
    folder = tmp_path / "out" / "rft"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"A" * 1000)
    served = resolve_model(f"openai:{folder}?base_url=http://127.0.0.1:8000/v1")
    (folder / "model.safetensors").write_bytes(b"B" * 1001)
    retrained = resolve_model(f"openai:{folder}?base_url=http://127.0.0.1:8000/v1")
    assert served.cache_id != retrained.cache_id
    assert served.cache_id.startswith(f"openai:http://127.0.0.1:8000/v1:{folder}#")
    hosted = resolve_model(f"openai:{folder}?base_url=https://api.example.com/v1")
    assert hosted.cache_id == f"openai:https://api.example.com/v1:{folder}"


def test_listing_identity_ignores_what_a_server_stamps_per_listing(tmp_path):
    assert listing_identity({"data": [_vllm_entry(VLLM_A)]}, "X", local=False) \
        == listing_identity({"data": [_vllm_entry(VLLM_A)]}, "X", local=False)
    assert listing_identity({"data": [_vllm_entry(VLLM_A)]}, "X", local=False) \
        != listing_identity({"data": [_vllm_entry(VLLM_B)]}, "X", local=False)
    # Ollama's `created` is the model's modification time: `ollama create X` again is new
    ollama = {"id": "X", "object": "model", "owned_by": "library", "created": 1718000000}
    assert listing_identity({"data": [ollama]}, "X", local=False) \
        != listing_identity({"data": [{**ollama, "created": 1719000000}]}, "X", local=False)
    assert listing_identity({"data": [ollama]}, "other", local=False) is None
    # a folder the entry names on this machine (vLLM's `root`) is read as weights
    folder = tmp_path / "rft"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"A" * 10)
    entry = {"id": "X", "root": str(folder)}
    before = listing_identity({"data": [entry]}, "X", local=True)
    (folder / "model.safetensors").write_bytes(b"B" * 11)
    assert listing_identity({"data": [entry]}, "X", local=True) != before


def test_identity_matching_compares_only_what_both_sides_know():
    assert identity_matches({"probe": "p1", "model": "m"}, {"probe": "p1"})
    assert not identity_matches({"probe": "p1"}, {"probe": "p2"})
    assert not identity_matches({"model": "m1"}, {"probe": "p", "model": "m2"})
    assert identity_matches(None, {"probe": "p"}) and identity_matches({"model": "m"}, {})
    hosted = EndpointIdentity("x", compare_fingerprint=False)
    assert hosted.of_answer("m", "fp_1") == {"model": "m"}
    local = EndpointIdentity("x", compare_fingerprint=True)
    assert local.of_answer("m", "fp_1") == {"model": "m", "fingerprint": "fp_1"}


def test_store_cache_get_checks_age_and_identity(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.cache_put("k", {"text": "old"}, model="openai:u:X",
                        identity=json.dumps({"probe": "p1", "model": "X"}))
        assert store.cache_get("k")["text"] == "old"
        assert store.cache_get("k", identity={"probe": "p1"}) is not None
        assert store.cache_get("k", identity={"probe": "p2"}) is None
        assert store.cache_get("k", max_age_s=3600) is not None
        store.conn.execute("UPDATE cache SET created = created - 7200")
        assert store.cache_get("k", max_age_s=3600) is None

"""The response cache never answers for another model: identity, expiry, scope, old stores, and
``posttrain cache ls|clear``."""

from __future__ import annotations

import email.utils
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from posttrain.cli import main
from posttrain.models import resolve_model
from posttrain.models.identity import (
    LISTING_STAMP_TOLERANCE_S,
    EndpointIdentity,
    identity_matches,
    is_listing_stamp,
    is_self_hosted,
    listing_identity,
    local_weights_identity,
    server_clock,
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


def _vllm_entry(base: dict, now: float | None = None) -> dict:
    """vLLM's entry as one listing stamps it: ``created`` is the server's time of the listing."""
    now = int(time.time() if now is None else now)
    return {**base, "created": now, "permission": [
        {"id": f"modelperm-{os.urandom(8).hex()}", "object": "model_permission",
         "created": now, "allow_sampling": True}]}


class ClockedEndpoint(Endpoint):
    """The stub with a clock of its own, ``clock_offset`` seconds from this machine's: its
    ``/models`` response carries that clock in its ``Date`` header, and ``listing`` may be a
    function of it (vLLM and llama.cpp stamp ``created`` with the time of each listing).
    ``state["chat_status"]`` other than 200 makes every chat request fail with that status."""

    clock_offset = 0.0

    async def _models(self, _request: web.Request) -> web.Response:
        self.probes += 1
        now = time.time() + self.clock_offset
        listing = self.state["listing"]
        if callable(listing):
            listing = listing(now)
        if listing is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return web.json_response({"object": "list", "data": [listing]},
                                 headers={"Date": email.utils.formatdate(now, usegmt=True)})

    async def _chat(self, request: web.Request) -> web.Response:
        status = self.state.get("chat_status", 200)
        if status != 200:
            self.chat_requests += 1
            return web.json_response({"error": {"message": "refused"}}, status=status)
        return await super()._chat(request)


@pytest.fixture
def clocked() -> Iterator[ClockedEndpoint]:
    server = ClockedEndpoint()
    yield server
    server.close()


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
    # one live request (the canary) confirms fp_a before the cached answers are served
    assert (again["requests"], again["cached"], again["score"]) == (1, 4, 1.0)
    assert again["cache_canary"] == "same"
    endpoint.state.update(listing=_vllm_entry(VLLM_B), fingerprint="fp_b", answer="Rome")
    swapped = _eval(tmp_path, model=spec, capsys=capsys)
    assert (swapped["requests"], swapped["cached"]) == (4, 0)
    assert swapped["score"] == 0.0  # B's own answers, graded
    assert endpoint.chat_requests == 9


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


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *, as_json: bool = True) -> Any:
    argv = ["report", "latest", "--store", str(tmp_path / "s.db")] + (["--json"] if as_json else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)["runs"][0] if as_json else out


def test_answers_served_from_another_models_entries_are_asked_again_in_the_same_run(
        endpoint, tmp_path, capsys):
    """No canary here (``cache_fingerprint: false``: fingerprints and canaries off, as for a
    hosted API), so the 4 old answers are served before the new item's live answer shows
    another served model. They must not count: they are asked again within the same run, their
    stale entries deleted, and the run says how many. (Before: score 0.8 from two models.)"""
    models = tmp_path / "models.yaml"
    models.write_text("models:\n"
                      f"  m: {{provider: openai, model: X, base_url: '{endpoint.base_url}', "
                      "cache_fingerprint: false, max_concurrency: 1}\n")
    extra = ["--models-file", str(models)]
    endpoint.state.update(served="x-2025-01-01", answer="Paris")
    assert _eval(tmp_path, extra, model="m", capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, extra, model="m", capsys=capsys)["requests"] == 0  # no canary
    endpoint.state.update(served="x-2025-06-01", answer="Rome")
    rows = [*ROWS, {"id": "c-new", "question": "new?", "answer": "Paris", "category": "geo"}]
    eval_path = write_eval(tmp_path / "ev", rows)
    assert main(["eval", str(eval_path), "--model", "m", "--store", str(tmp_path / "s.db"),
                 "--json", "--no-progress", *extra]) == 0
    captured = capsys.readouterr()
    run = json.loads(captured.out)["runs"][0]
    assert (run["score"], run["cached"], run["requests"], run["n"]) == (0.0, 0, 5, 5)
    assert run["cache_rerequested"] == 4
    assert "4 answers served earlier in this run came from cache entries another model " \
           "wrote: requesting them again" in captured.err
    # the stored run holds only the current model's answers; the stale entries are gone
    with sqlite3.connect(tmp_path / "s.db") as conn:
        served = {json.loads(r[0])["served_model"] for r in conn.execute(
            "SELECT completion FROM samples WHERE run_id = ?", (run["run_id"],))}
        assert served == {"x-2025-06-01"}
        recorded = {r[0] for r in conn.execute("SELECT identity FROM cache")}
        assert all("x-2025-06-01" in identity for identity in recorded)
    # a later report says so too
    assert _report(tmp_path, capsys)["cache_rerequested"] == 4
    assert "4 answers served from cache entries another model wrote were requested again" \
        in _report(tmp_path, capsys, as_json=False)


THREE = ROWS[:3]


def test_a_run_on_a_server_you_run_checks_one_live_answer_before_serving_cached_ones(
        endpoint, tmp_path, capsys):
    """Only the fingerprint tells model A (fp1) from model B (fp2). A fully cached run has no
    live answer to compare, so on a server you run one request (the first hit's own, the
    canary) asks; B's run gets B's answers, partly or fully cached alike. (Before: score 1.0
    from A's answers, and 0.75 with one new item.)"""
    spec = f"openai:X?base_url={endpoint.base_url}"
    # listed (so the preflight sends no request of its own), with nothing that tells A from B
    endpoint.state.update(listing={"id": "X", "object": "model", "owned_by": "me"},
                          fingerprint="fp1", answer="Paris")
    assert _eval(tmp_path, model=spec, rows=THREE, capsys=capsys)["requests"] == 3
    same = _eval(tmp_path, model=spec, rows=THREE, capsys=capsys)
    assert (same["requests"], same["cached"], same["score"], same["cache_canary"]) \
        == (1, 3, 1.0, "same")
    assert "cache_rerequested" not in same
    endpoint.state.update(fingerprint="fp2", answer="Rome")
    swapped = _eval(tmp_path, model=spec, rows=THREE, capsys=capsys)
    # the canary's own answer is the first item's; the two others are asked live
    assert (swapped["requests"], swapped["cached"], swapped["score"],
            swapped["cache_canary"]) == (3, 0, 0.0, "changed")
    assert endpoint.chat_requests == 3 + 1 + 3
    again = _eval(tmp_path, model=spec, rows=THREE, capsys=capsys)
    assert (again["requests"], again["cached"], again["score"]) == (1, 3, 0.0)
    # partly cached: fp1's entries, then fp2 with one new item (the red team's case)
    assert main(["cache", "clear", "--store", str(tmp_path / "s.db")]) == 0
    capsys.readouterr()
    endpoint.state.update(fingerprint="fp1", answer="Paris")
    assert _eval(tmp_path, model=spec, rows=THREE, capsys=capsys)["requests"] == 3
    endpoint.state.update(fingerprint="fp2", answer="Rome")
    partly = _eval(tmp_path, model=spec, rows=ROWS, capsys=capsys)
    assert (partly["requests"], partly["cached"], partly["score"]) == (4, 0, 0.0)


def test_no_canary_for_hosted_apis_weights_in_the_key_or_entries_that_tell_nothing(
        endpoint, tmp_path, capsys):
    """A cached rerun stays at zero requests where a canary would cost money (hosted APIs),
    where the key holds the weights (a path served from this machine), and where the answers
    recorded nothing a live one could contradict (no fingerprint, the name asked for echoed)."""
    endpoint.state.update(served="x-2025-01-01", fingerprint="fp1")
    models = tmp_path / "models.yaml"
    models.write_text("models:\n"
                      f"  hosted: {{provider: openai, model: X, base_url: '{endpoint.base_url}', "
                      "cache_fingerprint: false}\n")
    extra = ["--models-file", str(models)]
    assert _eval(tmp_path, extra, model="hosted", capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, extra, model="hosted", capsys=capsys)["requests"] == 0
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"A" * 100)
    weights = f"openai:{folder}?base_url={endpoint.base_url}"
    assert _eval(tmp_path, model=weights, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=weights, capsys=capsys)["requests"] == 0
    endpoint.state.update(served=None, fingerprint=None)  # vLLM: echoes the name, no fingerprint
    echo = f"openai:Y?base_url={endpoint.base_url}"
    assert _eval(tmp_path, model=echo, capsys=capsys)["requests"] == 4
    assert _eval(tmp_path, model=echo, capsys=capsys)["requests"] == 0


def test_a_failed_canary_serves_the_cached_answers_unchecked_and_says_so(
        clocked, tmp_path, capsys):
    spec = f"openai:X?base_url={clocked.base_url}"
    clocked.state.update(fingerprint="fp1")
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    clocked.state.update(chat_status=400)
    eval_path = tmp_path / "ev" / "eval.yaml"
    assert main(["eval", str(eval_path), "--model", spec, "--store", str(tmp_path / "s.db"),
                 "--json", "--no-progress", "--max-retries", "0"]) == 0
    captured = capsys.readouterr()
    run = json.loads(captured.out)["runs"][0]
    assert (run["cached"], run["score"], run["cache_canary"]) == (4, 1.0, "failed")
    assert "serving them unchecked" in captured.err


def test_cached_judge_verdicts_cost_no_request_to_regrade_even_on_a_server_you_run(
        endpoint, tmp_path, capsys):
    """Judges send no canary (README): re-grading from their cache stays free."""
    judge = Endpoint()
    try:
        judge.state.update(answer='{"result": 1}', fingerprint="fp_judge",
                           listing={"id": "J", "object": "model", "owned_by": "me"})
        graders = ('  - {type: score_model, name: judge, model: "openai:J?base_url='
                   f'{judge.base_url}", input: [{{role: user, content: "{{{{item.question}}}} '
                   '{{sample.output_text}}"}]}\n')
        eval_path = write_eval(tmp_path / "ev", ROWS, graders=graders)
        db = str(tmp_path / "s.db")
        spec = f"openai:X?base_url={endpoint.base_url}"
        assert main(["eval", str(eval_path), "--model", spec, "--store", db, "--json",
                     "--no-progress"]) == 0
        run = json.loads(capsys.readouterr().out)["runs"][0]
        assert run["judge_requests"] == 4 and judge.chat_requests == 4
        assert main(["regrade", run["run_id"], "--store", db, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["runs"][0]["requests"] == 0
        assert judge.chat_requests == 4
        # a live verdict from another judge model: the cached verdicts are reported
        judge.state.update(served="j-2")
        rows = [*ROWS, {"id": "c-new", "question": "new?", "answer": "Paris", "category": "geo"}]
        eval_path = write_eval(tmp_path / "ev", rows, graders=graders)
        assert main(["eval", str(eval_path), "--model", spec, "--store", db, "--json",
                     "--no-progress", "--concurrency", "1"]) == 0
        assert "4 verdicts came from cache entries another judge wrote" in capsys.readouterr().err
    finally:
        judge.close()


# ---- /models listings: a listing's time stamp is not the model's time ------------------------
def _ollama_entry(created: int) -> dict:
    """Ollama's /v1/models entry: ``created`` is the model's modification time."""
    return {"id": "X", "object": "model", "created": created, "owned_by": "library"}


def test_a_model_created_minutes_before_each_eval_is_not_served_the_last_ones_answers(
        clocked, tmp_path, capsys):
    """Ollama: `ollama create X` (model A), eval; `ollama create X` again from retrained
    weights (model B), eval. Both were created less than ten minutes before their eval; their
    `created` differ and that must count. (Before: B's run was served A's answers, score 1.0.)"""
    spec = f"openai:X?base_url={clocked.base_url}"
    now = int(time.time())
    clocked.state.update(listing=_ollama_entry(now - 120), answer="Paris",
                         fingerprint="fp_ollama")  # Ollama's fingerprint: the same for all
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    clocked.state.update(listing=_ollama_entry(now - 5), answer="Rome")
    retrained = _eval(tmp_path, model=spec, capsys=capsys)
    assert (retrained["requests"], retrained["cached"], retrained["score"]) == (4, 0, 0.0)
    again = _eval(tmp_path, model=spec, capsys=capsys)  # B again: served from cache
    assert (again["cached"], again["score"]) == (4, 0.0)


@pytest.mark.parametrize("skew_s", [0, -1200, 1200])
def test_listing_stamps_stay_cacheable_across_runs_whatever_the_servers_clock(
        clocked, tmp_path, capsys, skew_s):
    """vLLM stamps `created` with the time of every listing: it is told from a model's time by
    the server's own clock (the `Date` header of the same response), so a server whose clock
    is 20 minutes off still gets its cached answers back. (Before: a server 20 minutes behind
    never did.)"""
    clocked.clock_offset = skew_s
    spec = f"openai:X?base_url={clocked.base_url}"
    clocked.state.update(listing=lambda now: _vllm_entry(VLLM_A, now))
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4
    clocked.clock_offset += 7  # time passes: the next listing has another stamp
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 0
    clocked.state.update(listing=lambda now: _vllm_entry(VLLM_B, now))  # retrained, new root
    assert _eval(tmp_path, model=spec, capsys=capsys)["requests"] == 4


def test_a_created_is_a_listing_stamp_only_at_the_servers_own_time():
    server_now = 1_700_000_000.0
    assert is_listing_stamp(1_700_000_000, server_now)
    assert is_listing_stamp(server_now - LISTING_STAMP_TOLERANCE_S, server_now)
    assert not is_listing_stamp(1_700_000_000 - 5, server_now)  # a model modified 5 s before
    assert not is_listing_stamp(1_700_000_000 - 120, server_now)
    assert not is_listing_stamp("1700000000", server_now) and not is_listing_stamp(True, 1.0)
    # no Date header: this machine's clock stands in
    assert is_listing_stamp(int(time.time()), None)
    assert not is_listing_stamp(int(time.time()) - 120, None)
    assert server_clock("Tue, 14 Nov 2023 22:13:20 GMT") == server_now
    assert server_clock(None) is None and server_clock("yesterday") is None
    ollama = _ollama_entry(1_699_999_880)
    assert listing_identity({"data": [ollama]}, "X", local=False, server_now=server_now) \
        != listing_identity({"data": [_ollama_entry(1_699_999_995)]}, "X", local=False,
                            server_now=server_now)
    assert listing_identity({"data": [_vllm_entry(VLLM_A, server_now)]}, "X", local=False,
                            server_now=server_now) \
        == listing_identity({"data": [_vllm_entry(VLLM_A, server_now + 60)]}, "X",
                            local=False, server_now=server_now + 61)


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

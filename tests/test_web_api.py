"""The viewer's JSON API over HTTP (aiohttp test server on 127.0.0.1), regrade and votes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from posttrain.analysis.results import load_results
from posttrain.runner.regrade import regrade_run
from posttrain.runner.store import Store
from posttrain.usage.votes import preference_pairs
from posttrain.web.server import create_app
from posttrain.web.views import diff_ops
from tests.test_web_helpers import build


@pytest.fixture
def env(tmp_path: Path):
    return build(tmp_path)


async def _client(store_path: Path, token: str | None = None) -> TestClient:
    client = TestClient(TestServer(create_app(store_path, token=token, seed=1), host="127.0.0.1"))
    await client.start_server()
    return client


async def test_runs_run_samples_and_filters(env) -> None:
    store_path, _, runs = env
    client = await _client(store_path)
    try:
        resp = await client.get("/")
        assert resp.status == 200 and "app.js" in await resp.text()
        assert (await client.get("/static/app.js")).status == 200
        assert (await client.get("/static/../server.py")).status == 404
        listing = await (await client.get("/api/runs")).json()
        by_model = {r["model"]: r for r in listing}
        a = by_model["model-a"]
        assert a["score"]["mean"] == pytest.approx(0.75) and a["score"]["n"] == 4
        assert a["score"]["low"] < 0.75 < a["score"]["high"]
        assert a["tags"]["europe"]["mean"] == 1.0 and a["tags"]["oceania"]["mean"] == 0.0
        assert by_model["model-b"]["statuses"] == {"scored": 3, "error": 1}
        # the failed request did not pass: 1 of 4, as `posttrain report` says (not 1 of 3)
        assert by_model["model-b"]["pass_rate"] == pytest.approx(0.25)
        assert by_model["model-b"]["coverage"] == {"scored": 3, "expected": 4}

        page = await (await client.get(f"/api/runs/{runs['model-a']}")).json()
        charts = page["charts"]
        assert {t["tag"]: t["mean"] for t in charts["tags"]} == {
            "asia": 1.0, "europe": 1.0, "oceania": 0.0}
        # the latency histogram comes counted: each answer's latency in one bar of one width
        latency = charts["latency"]
        assert latency["n"] == 4 and sum(b["count"] for b in latency["bins"]) == 4
        for value in (0.2, 0.3, 0.4, 0.5):
            holding = [b for b in latency["bins"] if b["start"] <= value + 1e-9 < b["end"]]
            assert len(holding) == 1 and holding[0]["count"] == 1, (value, latency)
        assert all(b["end"] - b["start"] == pytest.approx(latency["step"])
                   for b in latency["bins"])
        peers = {p["model"]: p for p in charts["peers"]}
        assert peers["model-a"]["this"] and peers["model-a"]["score"] == pytest.approx(0.75)
        # model-b: $0.003 over 3 answers (its failed request cost nothing)
        assert peers["model-b"]["cost_per_sample"] == pytest.approx(0.001)
        assert peers["model-b"]["score"] == pytest.approx(0.25)
        assert [o["id"] for o in page["others"]] == [runs["model-b"]]
        history = {h["model"]: h for h in charts["history"]}
        assert history["model-b"]["score"] == pytest.approx(0.25)
        assert history["model-a"]["this"] and charts["heatmap"] == []

        base = f"/api/runs/{runs['model-b']}/samples"
        failed = await (await client.get(base + "?filter=failed")).json()
        assert {r["item_id"] for r in failed} == {"q2", "q3"}
        errors = await (await client.get(base + "?filter=errors")).json()
        assert [r["item_id"] for r in errors] == ["q4"]
        europe = await (await client.get(base + "?tag=europe")).json()
        assert {r["item_id"] for r in europe} == {"q1", "q4"}
        graded = await (await client.get(base + "?grader=exact")).json()
        assert {r["item_id"] for r in graded} == {"q1", "q2", "q3"}
        assert (await client.get(base + "?filter=bogus")).status == 400

        detail = await (await client.get(base + "/q2")).json()
        assert detail["messages"] == [{"role": "user", "content": "Capital of Japan?"}]
        assert detail["output"] == "Kyoto" and detail["grades"]["exact"]["passed"] is False
        assert detail["reference_fields"] == ["answer"]
        assert (await client.get(base + "/nope")).status == 404
    finally:
        await client.close()


async def test_compare_vote_blind_and_preference_pairs(env) -> None:
    store_path, _, runs = env
    client = await _client(store_path)
    try:
        cmp = await (await client.get(f"/api/compare?a={runs['model-a']}&b={runs['model-b']}"))\
            .json()
        assert [r["item_id"] for r in cmp["rows"]] == ["q1", "q2", "q3", "q4"]
        assert ["+", "Kyoto"] in cmp["rows"][1]["diff"]

        assert cmp["paired"]["overall"]["diff"] == pytest.approx(-0.5)
        assert (cmp["total"], cmp["offset"]) == (4, 0)
        # paged: the next page starts where the first ended, in (item, epoch) order
        page = await (await client.get(f"/api/compare?a={runs['model-a']}&b={runs['model-b']}"
                                       "&offset=1&limit=2")).json()
        assert [r["item_id"] for r in page["rows"]] == ["q2", "q3"] and page["total"] == 4
        assert page["rows"][0] == cmp["rows"][1] and page["paired"] == cmp["paired"]
        assert {g["group"] for g in cmp["paired"]["groups"]} == {"asia", "europe", "oceania"}

        seen_orders = set()
        # q1..q3 are answered by both runs (q4 failed for model-b); q3's answers are the same
        # ("Canberra") so it is never offered
        for _ in range(2):
            pair = await (await client.get(
                f"/api/arena/next?a={runs['model-a']}&b={runs['model-b']}")).json()
            assert not pair["done"]
            assert "model-a" not in json.dumps(pair) and "model-b" not in json.dumps(pair)
            assert pair["item_id"] in ("q1", "q2")
            a_on_left = pair["left"]["output"] == {"q1": "Paris", "q2": "Tokyo"}[pair["item_id"]]
            seen_orders.add(a_on_left)
            # vote for model-a's answer on q2, a tie on q1
            choice = ("left" if a_on_left else "right") if pair["item_id"] == "q2" else "tie"
            out = await (await client.post("/api/arena/vote",
                                           json={"pair": pair["pair"], "choice": choice})).json()
            assert set(out["reveal"].values()) == {"model-a", "model-b"}
            assert out["winner"] == ("tie" if choice == "tie" else "a")
            reuse = await client.post("/api/arena/vote", json={"pair": pair["pair"],
                                                               "choice": "left"})
            assert reuse.status == 404
        done = await (await client.get(
            f"/api/arena/next?a={runs['model-a']}&b={runs['model-b']}")).json()
        assert done["done"] is True
        progress = done["progress"]
        assert (progress["total"], progress["identical"], progress["votable"],
                progress["voted"]) == (3, 1, 2, 2)
        assert progress["wins"] == {"a": 1, "b": 0, "tie": 1}
        # q2: graded 1 vs 0 and voted for A; q1: both graded 1, not counted
        assert progress["grade_agreement"] == {"n": 1, "agree": 1}
        assert progress["voter_agreement"] == {"n": 0, "agree": 0}
        # seen from the other side, the same votes
        flipped = await (await client.get(
            f"/api/arena/progress?a={runs['model-b']}&b={runs['model-a']}")).json()
        assert flipped["wins"] == {"a": 0, "b": 1, "tie": 1}
        assert flipped["grade_agreement"] == {"n": 1, "agree": 1}
    finally:
        await client.close()
    with Store(store_path) as store:
        assert [v["winner"] for v in store.votes()].count("a") == 1
        pairs = preference_pairs(store)
    assert len(pairs) == 1  # the tie is not a preference
    for pair in pairs:
        assert pair["prompt"][0]["role"] == "user"
        assert pair["chosen"][0]["role"] == "assistant"
    q2 = next(p for p in pairs if p["prompt"][0]["content"] == "Capital of Japan?")
    assert q2["chosen"][0]["content"] == "Tokyo" and q2["rejected"][0]["content"] == "Kyoto"


async def test_review_edits_dataset_with_history_and_regrades(env) -> None:
    store_path, eval_path, runs = env
    dataset = eval_path.parent / "data.jsonl"
    before = dataset.read_text().splitlines()
    client = await _client(store_path)
    try:
        flag = await client.post("/api/review", json={"run": runs["model-a"], "item_id": "q1",
                                                      "verdict": "fine"})
        assert flag.status == 200 and (await flag.json())["regraded"] == 0
        bad = await client.post("/api/review", json={"run": runs["model-a"], "item_id": "q3",
                                                     "verdict": "wrong"})
        assert bad.status == 400
        bad_field = await client.post("/api/review", json={
            "run": runs["model-a"], "item_id": "q3", "verdict": "misgraded",
            "field": "question", "value": "x"})
        assert bad_field.status == 400
        form = await client.post("/api/review", data="verdict=fine")
        assert form.status == 415
        cross = await client.post("/api/review", json={}, headers={"Origin": "http://evil"})
        assert cross.status == 403

        resp = await client.post("/api/review", json={
            "run": runs["model-a"], "item_id": "q3", "verdict": "misgraded", "field": "answer",
            "value": "Canberra", "note": "Sydney is not the capital"})
        body = await resp.json()
        assert resp.status == 200, body
        assert body["regraded"] == 2  # both runs answered q3
        assert body["sample"]["value"] == 1.0 and body["sample"]["item"]["answer"] == "Canberra"
    finally:
        await client.close()
    after = dataset.read_text().splitlines()
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]
    assert json.loads(after[2])["answer"] == "Canberra"
    history = [json.loads(line) for line in
               (eval_path.parent / "data.history.jsonl").read_text().splitlines()]
    assert history == [{**history[0], "item_id": "q3", "field": "answer", "old": "Sydney",
                        "new": "Canberra", "note": "Sydney is not the capital", "who": "web"}]
    with Store(store_path) as store:
        reviews = store.reviews("capitals")
        assert [r["verdict"] for r in reviews] == ["fine", "misgraded"]
        assert json.loads(reviews[1]["old_value"]) == {"answer": "Sydney"}
        for model in ("model-a", "model-b"):
            results = load_results(store, runs[model])
            q3 = next(s for s in results.samples if s.item_id == "q3")
            assert q3.value == 1.0
        assert load_results(store, runs["model-a"]).item_scores() == {
            "q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 1.0}


def test_regrade_run_direct(env) -> None:
    store_path, eval_path, runs = env
    dataset = eval_path.parent / "data.jsonl"
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    rows[1]["answer"] = "Kyoto"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Store(store_path) as store:
        n = regrade_run(store, runs["model-b"])
        assert n == 3  # q4 is a request error: nothing to re-grade, no new request
        scores = load_results(store, runs["model-b"]).item_scores()
        # headline: q4's request error counts 0; it is not scored
        assert scores["q2"] == 1.0 and scores["q4"] == 0.0
        assert "q4" not in load_results(store, runs["model-b"]).item_scores(scored_only=True)


async def test_token_required_off_localhost(env) -> None:
    store_path, _, _ = env
    client = await _client(store_path, token="s3cret")
    try:
        assert (await client.get("/api/runs")).status == 401
        assert (await client.get("/?token=wrong")).status == 401
        opened = await client.get("/?token=s3cret")
        assert opened.status == 200 and "posttrain_token" in opened.cookies
        assert (await client.get("/api/runs")).status == 200  # cookie now set
        client.session.cookie_jar.clear()
        assert (await client.get("/static/app.js")).status == 401
        ok = await client.get("/api/runs", headers={"X-Posttrain-Token": "s3cret"})
        assert ok.status == 200
    finally:
        await client.close()


def test_diff() -> None:
    assert diff_ops("the cat sat", "the dog sat") == [
        ["=", "the "], ["-", "cat"], ["+", "dog"], ["=", " sat"]]


def test_cli_view_off_localhost_prints_and_checks_token(env) -> None:
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    store_path, _, _ = env
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "posttrain.cli.view", "--store",
                             str(store_path), "--host", "0.0.0.0", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "?token=" in line, line
        token = line.strip().rsplit("?token=", 1)[1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/runs",
                                         headers={"X-Posttrain-Token": token})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert len(json.loads(resp.read())) == 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_view_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from posttrain.cli.view import main

    assert main(["--store", str(tmp_path / "none.db")]) == 2
    assert "no store" in capsys.readouterr().err


async def test_score_over_time_carries_each_models_release_date(env) -> None:
    """Shelf life: the run page's history gives each run its model's `released:` date (as the
    models file had it when the run was made), None where there is none."""
    from posttrain.runner.store import Store

    store_path, _, runs = env
    with Store(store_path) as store:
        store.update_run_config(runs["model-a"], {"model": {"released": "2025-04-14"}})
    client = await _client(store_path)
    try:
        page = await (await client.get(f"/api/runs/{runs['model-a']}")).json()
        history = {h["model"]: h for h in page["charts"]["history"]}
        assert history["model-a"]["released"] == "2025-04-14"
        assert history["model-b"]["released"] is None
    finally:
        await client.close()


async def test_live_runs_carry_the_short_model_name(tmp_path: Path) -> None:
    """The live page listed the whole model path where every other page shows its last parts
    (full name on hover): the listing now carries the short name."""
    from tests.test_web_helpers import LONG_MODEL, add_runs

    store_path, eval_path, _ = build(tmp_path)
    add_runs(store_path, eval_path)
    client = await _client(store_path)
    try:
        live = await (await client.get("/api/live")).json()
        runs = live["runs"] if isinstance(live, dict) else live
        by_model = {r["model"]: r for r in runs}
        assert by_model[LONG_MODEL]["short"] == "qwen2.5-0.5b-instruct-sft/checkpoint-300"
        assert by_model["model-b"]["short"] == "model-b"
    finally:
        await client.close()


def test_a_long_answer_in_the_sample_list_says_it_is_cut() -> None:
    """The run's sample list cut answers at 200 characters mid-word with no sign ("lorem ip")."""
    from posttrain.web.views import PREVIEW_CHARS, _preview

    text = "lorem ipsum " * 100
    preview = _preview(text)
    assert preview.endswith(" lorem …") and len(preview) <= PREVIEW_CHARS + 2
    assert _preview("Paris") == "Paris"
    assert _preview("x" * 500) == "x" * PREVIEW_CHARS + " …"


def test_tags_sort_numbers_as_numbers() -> None:
    """The score-by-tag chart read tag0, tag1, tag10, tag11, tag2 (text order)."""
    from posttrain.web.views import natural_key

    tags = ["tag10", "tag2", "Tag1", "tag1b", "europe", "tag0"]
    assert sorted(tags, key=natural_key) == ["europe", "tag0", "Tag1", "tag1b", "tag2", "tag10"]



async def test_the_page_forbids_inline_scripts_and_framing(env) -> None:
    """The page had no Content-Security-Policy: an answer that reached the DOM as HTML could run
    its onerror handler, and the viewer could be framed to click a vote or review."""
    store_path, _, _ = env
    client = await _client(store_path)
    try:
        resp = await client.get("/")
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self' 'unsafe-eval';" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert resp.headers["X-Frame-Options"] == "DENY"
    finally:
        await client.close()


async def _edit_q3(store_path: Path, runs: dict[str, str]) -> tuple[Any, dict]:
    """A review through the viewer that sets q3's reference to "Canberra": (response, JSON)."""
    client = await _client(store_path)
    try:
        resp = await client.post("/api/review", json={
            "run": runs["model-a"], "item_id": "q3", "verdict": "misgraded",
            "field": "answer", "value": "Canberra"})
        return resp, await resp.json()
    finally:
        await client.close()


async def test_a_review_whose_regrade_is_refused_is_saved_once_and_says_so(env) -> None:
    """A run a live eval is answering is not regraded now: the review and its new reference are
    saved (200), the refused run is named with why, and nothing tells the reviewer to send the
    review again (which would record it twice)."""
    from tests.conftest import live_eval_on

    store_path, eval_path, runs = env
    with live_eval_on(store_path, runs["model-b"]):
        resp, body = await _edit_q3(store_path, runs)
    assert resp.status == 200, body
    assert body["regraded"] == 1  # model-a's answer
    assert [miss["run"] for miss in body["not_regraded"]] == [runs["model-b"]]
    assert "being answered now" in body["not_regraded"][0]["error"]
    with Store(store_path) as store:
        assert [r["verdict"] for r in store.reviews("capitals")] == ["misgraded"]
    assert json.loads((eval_path.parent / "data.jsonl").read_text().splitlines()[2])[
        "answer"] == "Canberra"


async def test_a_review_in_a_folder_it_cannot_write_is_one_line(env) -> None:
    """The eval's folder is read-only here: a 403 with one line naming the file, no 500, no
    review recorded, the dataset as it was."""
    from tests.test_store_read_only import _lock

    store_path, eval_path, runs = env
    dataset = eval_path.parent / "data.jsonl"
    before = dataset.read_text()
    for _ in _lock([eval_path.parent, dataset]):
        resp, body = await _edit_q3(store_path, runs)
    assert resp.status == 403, body
    assert "cannot write the eval's dataset" in body["error"] and "\n" not in body["error"]
    assert dataset.read_text() == before
    with Store(store_path) as store:
        assert store.reviews("capitals") == []


async def test_a_review_whose_history_cannot_be_written_changes_nothing(env) -> None:
    """The folder is writable, the dataset's history file is not: the review is a 403 and the
    dataset keeps its old value (a correction is never applied without its record)."""
    from tests.test_store_read_only import _lock

    store_path, eval_path, runs = env
    dataset = eval_path.parent / "data.jsonl"
    history = eval_path.parent / "data.history.jsonl"
    history.write_text('{"note": "an earlier review"}\n')
    before, logged = dataset.read_text(), history.read_text()
    for _ in _lock([history]):
        resp, body = await _edit_q3(store_path, runs)
    assert resp.status == 403, body
    assert dataset.read_text() == before and history.read_text() == logged
    assert not list(eval_path.parent.glob("*.tmp"))
    with Store(store_path) as store:
        assert store.reviews("capitals") == []

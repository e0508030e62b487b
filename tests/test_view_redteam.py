"""Red-team faults of the viewer, run refs and blind votes: each test failed before its fix."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from posttrain.cli import main as cli_main
from posttrain.errors import UserError
from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score
from posttrain.web.server import create_app
from tests.test_web_helpers import build


async def _client(store_path: Path) -> TestClient:
    client = TestClient(TestServer(create_app(store_path, seed=1), host="127.0.0.1"))
    await client.start_server()
    return client


# ---- 3: run refs and run limits ---------------------------------------------------------------
@pytest.mark.parametrize("ref", ["latest~-1", "latest~-2", "latest~x", "latest~", "latest~ 1",
                                 "latest~+1", "latest~1_0", "latest~\u0661"])
def test_a_malformed_latest_ref_is_a_user_error(tmp_path: Path, ref: str) -> None:
    store_path, _, _runs = build(tmp_path)
    with Store(store_path, reading=True) as store, pytest.raises(UserError, match="latest~N"):
        store.resolve_run(ref)


def test_latest_n_counts_from_the_newest_and_past_the_oldest_is_no_run(tmp_path: Path) -> None:
    store_path, _, runs = build(tmp_path)
    with Store(store_path, reading=True) as store:
        newest = store.list_runs()
        assert [store.resolve_run(f"latest~{n}").id for n in range(2)] == [r.id for r in newest]
        for ref in ("latest~2", "latest~99999999999999999999", "latest~" + "9" * 400):
            with pytest.raises(KeyError):
                store.resolve_run(ref)


@pytest.mark.parametrize("ref", ["%", "_", "%%", "2%", "_" * 3, "", "\\"])
def test_a_run_prefix_matches_its_characters_literally(tmp_path: Path, ref: str) -> None:
    store_path, _, runs = build(tmp_path)
    with sqlite3.connect(store_path) as conn:  # one run left: a wildcard named it
        conn.execute("DELETE FROM runs WHERE id = ?", (runs["model-b"],))
    with Store(store_path, reading=True) as store:
        only = runs["model-a"]
        with pytest.raises(KeyError):
            store.resolve_run(ref)
        assert store.resolve_run(only[:-3]).id == only  # a real prefix still works


def test_list_runs_limit_is_checked(tmp_path: Path) -> None:
    store_path, _, _runs = build(tmp_path)
    with Store(store_path, reading=True) as store:
        assert len(store.list_runs(limit=2**70)) == 2
        assert len(store.list_runs(limit=1)) == 1
        for bad in (0, -1, True, "3"):
            with pytest.raises(UserError, match="--limit"):
                store.list_runs(limit=bad)


@pytest.mark.parametrize("argv", [["runs", "--limit", "0"], ["runs", "--limit", "-1"],
                                  ["report", "latest~-1"], ["report", "latest~x"],
                                  ["report", "latest~99999999999999999999"], ["report", "%"],
                                  ["report", "_"], ["report", ""]])
def test_cli_bad_run_ref_or_limit_is_one_line_exit_2(tmp_path: Path, argv: list[str],
                                                     capsys: pytest.CaptureFixture) -> None:
    store_path, _, _runs = build(tmp_path)
    assert cli_main([*argv, "--store", str(store_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_cli_runs_huge_limit_lists_every_run(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    store_path, _, runs = build(tmp_path)
    assert cli_main(["runs", "--limit", "99999999999999999999", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert all(run in out for run in runs.values())


@pytest.mark.parametrize(("ref", "status"), [("latest~-1", 400), ("latest~x", 400),
                                             ("latest~99999999999999999999", 404),
                                             ("%25", 404), ("_", 404)])
async def test_viewer_bad_run_ref_is_400_or_404(tmp_path: Path, ref: str, status: int) -> None:
    store_path, _, _runs = build(tmp_path)
    client = await _client(store_path)
    try:
        response = await client.get(f"/api/runs/{ref}")
        assert response.status == status
        assert "error" in await response.json()
    finally:
        await client.close()


# ---- 6: reading commands never create a store in an empty file --------------------------------
def _empty_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")  # a database file with a header and no tables
    conn.close()


@pytest.mark.parametrize("kind", ["zero-bytes", "no-tables"])
@pytest.mark.parametrize("argv", [["store", "info"], ["store", "info", "--json"], ["runs"],
                                  ["report"], ["store", "vacuum"], ["compare", "a", "b"],
                                  ["audit", "ev"], ["pick", "ev", "--bar", "0.5"],
                                  ["cache", "ls"], ["export", "openai-ft", "--kind", "dpo",
                                                    "--from-votes", "-o", "x.jsonl"]])
def test_reading_an_empty_file_writes_nothing(tmp_path: Path, kind: str, argv: list[str],
                                              capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "empty.db"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    else:
        _empty_sqlite(path)
    before = path.read_bytes()
    assert cli_main([*argv, "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert "empty store" in err and "Traceback" not in err
    assert path.read_bytes() == before
    assert not path.with_name("empty.db-wal").exists()


def test_the_viewer_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="empty store"):
        create_app(path)
    assert path.stat().st_size == 0


# ---- 5: every integer the viewer reads is checked; a review keeps the field's JSON type --------
@pytest.mark.parametrize("epoch", ["99999999999999999999", "-99999999999999999999", "1e3",
                                   "abc", "1.5", "\u0661", "-1"])
async def test_sample_epoch_is_validated(tmp_path: Path, epoch: str) -> None:
    store_path, _, runs = build(tmp_path)
    client = await _client(store_path)
    try:
        response = await client.get(f"/api/runs/{runs['model-a']}/samples/q1",
                                    params={"epoch": epoch})
        assert response.status == 400, await response.text()
        assert "epoch" in (await response.json())["error"]
        assert (await client.get(f"/api/runs/{runs['model-a']}/samples/q1?epoch=0")).status \
            == 200
    finally:
        await client.close()


@pytest.mark.parametrize("epoch", ["abc", [1], 1e300, 1.5, True, {"a": 1}, 2**70, -1, "0"])
@pytest.mark.parametrize("path", ["/api/review", "/api/steer/pause"])
async def test_json_epoch_is_validated(tmp_path: Path, epoch: Any, path: str) -> None:
    store_path, _, runs = build(tmp_path)
    client = await _client(store_path)
    try:
        response = await client.post(path, json={
            "run": runs["model-a"], "item_id": "q1", "verdict": "fine", "epoch": epoch})
        assert response.status == 400, await response.text()
        assert "epoch" in (await response.json())["error"]
    finally:
        await client.close()


@pytest.mark.parametrize("value", [{"a": 1}, ["Paris"], 3, None, True])
async def test_a_review_keeps_a_string_field_a_string(tmp_path: Path, value: Any) -> None:
    store_path, eval_path, runs = build(tmp_path)
    dataset = eval_path.parent / "data.jsonl"
    before = dataset.read_text()
    client = await _client(store_path)
    try:
        response = await client.post("/api/review", json={
            "run": runs["model-a"], "item_id": "q1", "verdict": "misgraded", "field": "answer",
            "value": value})
        assert response.status == 400, await response.text()
        assert "string" in (await response.json())["error"]
        ok = await client.post("/api/review", json={
            "run": runs["model-a"], "item_id": "q1", "verdict": "misgraded", "field": "answer",
            "value": "paris"})
        assert ok.status == 200, await ok.text()
    finally:
        await client.close()
    assert json.loads(dataset.read_text().splitlines()[0])["answer"] == "paris"
    assert before.splitlines()[1:] == dataset.read_text().splitlines()[1:]
    with Store(store_path, reading=True) as store:
        assert [r["verdict"] for r in store.reviews("capitals")] == ["misgraded"]


def test_natural_key_of_a_superscript_digit_tag() -> None:
    from posttrain.web.views import natural_key

    assert natural_key("\u00b2") and natural_key("tag2") < natural_key("tag10")


# ---- 1 and 2: the matrix's tags and search ----------------------------------------------------
def _matrix_run(store: Store, model: str, items: list[Item], answers: dict[str, str | None],
                eval_name: str = "m") -> str:
    run = store.create_run(run_key=f"k-{model}", eval_name=eval_name, eval_path=None, eval_hash="h",
                           model=model, variant="default", epochs=1, config={}, items=items)
    for item in items:
        text = answers.get(item.id, "")
        if text is None:
            store.record_sample(run.id, item.id, 0, completion=None, request_key=None,
                                attempts=3, error=f"HTTP 503 for {item.id}")
        else:
            store.record_sample(run.id, item.id, 0, completion=Completion(text=text),
                                request_key=None, attempts=1,
                                scores=[Score(value=1.0, passed=True, name="g")])
    store.finish_run(run.id)
    return run.id


def test_matrix_tags_are_the_union_of_the_columns(tmp_path: Path) -> None:
    """The columns disagree on an item's tags (the dataset was re-tagged between the runs): the
    tag offered filters to the items any column tags with it, and rows show every tag."""
    from posttrain.web import matrix

    old = [Item(id=f"i{n}", data={"q": f"Q{n}"}, tags=["old"]) for n in range(4)]
    new = [Item(id=i.id, data=i.data, tags=["new"] if i.id == "i1" else ["old"])
           for i in reversed(old)] + [Item(id="i9", data={"q": "Q9"}, tags=["old"])]
    same = [Item(id=i.id, data=i.data, tags=["fresh"] if i.id == "i2" else i.tags) for i in old]
    with Store(tmp_path / "s.db") as store:
        first = _matrix_run(store, "model-a", old, {})
        second = _matrix_run(store, "model-b", new, {})
        third = _matrix_run(store, "model-c", same, {})  # the same items, in order, as `first`
        for ids, tag, rows in (([first, second], "new", ["i1"]), ([second, first], "new", ["i1"]),
                               ([first, second], "old", ["i0", "i1", "i2", "i3", "i9"]),
                               ([first, third], "fresh", ["i2"]),
                               ([third, first], "fresh", ["i2"])):
            columns = [store.get_run(r) for r in ids]
            whole = matrix.matrix(store, columns, limit=None)
            assert tag in whole["tags"]
            picked = matrix.matrix(store, columns, tag=tag, limit=None)
            assert sorted(r["item_id"] for r in picked["rows"]) == rows
            assert picked["total"] == len(rows)
            assert matrix.matrix(store, columns, tag=tag)["total"] == len(rows)  # paged count
            for row in whole["rows"]:  # every tag a filter keeps the row for, and only those
                keeps = {t for t in whole["tags"] if row["item_id"] in
                         {r["item_id"] for r in matrix.matrix(store, columns, tag=t,
                                                              limit=None)["rows"]}}
                assert set(row["tags"]) == keeps, row
        # the newest run's tags first
        row = next(r for r in matrix.matrix(store, [store.get_run(first), store.get_run(second)],
                                            limit=None)["rows"] if r["item_id"] == "i1")
        assert row["tags"] == ["new", "old"]


SEARCH_ITEMS = [
    Item(id="q1", data={"question": 'say "hi"', "answer": "ok"}),
    Item(id="q2", data={"question": "C:\\temp", "answer": "ok"}),
    Item(id="q3", data={"question": "line1\nline2\ttab", "answer": "ok"}),
    Item(id="q4", data={"question": "plain 100% sure_thing", "answer": "ok",
                        "messages": [{"role": "user", "content": "Nested CONTENT here"}]}),
    Item(id="q5", data={"question": "caf\u00e9 \u00fcber", "answer": "ok", "n": 12345,
                        "flag": True}),
    Item(id="q6", data={"question": "sums", "answer": "ok", "x": 0.30000000000000004,
                        "tiny": 1e-07, "price": 123456789.12345679, "off": False}),
]
SEARCH_ANSWERS = {"q1": "the model says hello", "q2": None, "q3": "a\\b \"quoted\" answer",
                  "q4": "", "q5": "x", "q6": "y"}


def _visible_truth(items: list[Item], answers: dict[str, str | None], q: str) -> list[str]:
    """Items whose id, string, number or boolean values (any depth, as Python writes them, as
    the page shows them), answer or error hold q, ignoring ASCII case."""
    def strings(value: Any) -> list[str]:
        if isinstance(value, (str, bool)):
            return [str(value)]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [str(value)]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    def fold(text: str) -> str:
        return "".join(c.lower() if c.isascii() else c for c in text)

    out = []
    for item in items:
        answer = answers.get(item.id)
        texts = [item.id, *strings(item.data),
                 answer if answer is not None else f"HTTP 503 for {item.id}"]
        if any(fold(q) in fold(t) for t in texts):
            out.append(item.id)
    return out


@pytest.mark.parametrize("q", ['say "hi"', "C:\\temp", "line1\nline2", "\t", "question", '":"',
                               "\x00", "{", "%", "_", "100%", "sure_thing", "nested content",
                               "\\", '"', "HTTP 503", "hello", 'b "quoted', "q3", "messages",
                               "role", "user", "CAF\u00e9", "\u00dcber", "12345", "234", "'", "true",
                               "0.30000000000000004", "1e-07", "123456789.12345679", "false",
                               "0.3"])
def test_matrix_search_matches_what_the_page_shows(tmp_path: Path, q: str) -> None:
    from posttrain.web import matrix

    with Store(tmp_path / "s.db") as store:
        a = _matrix_run(store, "model-a", SEARCH_ITEMS, SEARCH_ANSWERS)
        b = _matrix_run(store, "model-b", SEARCH_ITEMS[:3], {})  # other items: another query
        truth = _visible_truth(SEARCH_ITEMS, SEARCH_ANSWERS, q)
        for ids in ([a], [a, b]):
            columns = [store.get_run(r) for r in ids]
            found = matrix.matrix(store, columns, search=q, limit=None)
            assert [r["item_id"] for r in found["rows"]] == truth, (ids, q)
            assert matrix.matrix(store, columns, search=q)["total"] == len(truth)


# ---- 4: blind votes pair only answers to the same question ------------------------------------
def _ask(text: str, item_id: str = "0") -> Item:
    return Item(id=item_id, data={"messages": [{"role": "user", "content": text}]})


def _votes_store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "votes.db"
    with Store(path) as store:
        runs = {
            "capitals": _matrix_run(store, "model-a", [_ask("Capital of France?"),
                                                       _ask("Capital of Peru?", "1")],
                                    {"0": "Paris", "1": "Lima"}, eval_name="capitals"),
            "math": _matrix_run(store, "model-b", [_ask("What is 2+2?"), _ask("3+3?", "1")],
                                {"0": "4", "1": "6"}, eval_name="math"),
            # capitals again, its item 0 edited since (another question), item 1 unchanged
            "edited": _matrix_run(store, "model-c", [_ask("Capital of Spain?"),
                                                     _ask("Capital of Peru?", "1")],
                                  {"0": "Madrid", "1": "Lima, Peru"}, eval_name="capitals"),
        }
    return path, runs


async def test_arena_refuses_runs_of_different_evals(tmp_path: Path) -> None:
    path, runs = _votes_store(tmp_path)
    client = await _client(path)
    try:
        for route in ("next", "progress"):
            response = await client.get(f"/api/arena/{route}",
                                        params={"a": runs["capitals"], "b": runs["math"]})
            assert response.status == 400, await response.text()
            assert "different evals" in (await response.json())["error"]
    finally:
        await client.close()


async def test_arena_refuses_runs_of_different_variants(tmp_path: Path) -> None:
    path = tmp_path / "variants.db"
    with Store(path) as store:
        items = [_ask("Capital of France?")]
        first = _matrix_run(store, "model-a", items, {"0": "Paris"})
        run = store.create_run(run_key="k-v2", eval_name="m", eval_path=None, eval_hash="h",
                               model="model-b", variant="terse", epochs=1, config={},
                               items=items)
        store.record_sample(run.id, "0", 0, completion=Completion(text="paris"),
                            request_key=None, attempts=1)
        store.finish_run(run.id)
    client = await _client(path)
    try:
        response = await client.get("/api/arena/next", params={"a": first, "b": run.id})
        assert response.status == 400 and "variant" in (await response.json())["error"]
    finally:
        await client.close()


async def test_arena_never_offers_an_item_edited_between_the_runs(tmp_path: Path) -> None:
    path, runs = _votes_store(tmp_path)
    client = await _client(path)
    try:
        seen = set()
        while True:
            pair = await (await client.get("/api/arena/next", params={
                "a": runs["capitals"], "b": runs["edited"]})).json()
            assert pair["progress"]["changed"] == 1 and "differs" in pair["progress"]["note"]
            if pair["done"]:
                break
            seen.add(pair["item_id"])
            vote = await client.post("/api/arena/vote", json={"pair": pair["pair"],
                                                              "choice": "left"})
            assert vote.status == 200
        assert seen == {"1"}
    finally:
        await client.close()


def _old_votes(tmp_path: Path) -> Path:
    """The votes store with three votes an older viewer took: across evals, on an item edited
    between the runs, and one on the same question (the only pair)."""
    path, runs = _votes_store(tmp_path)
    with Store(path) as store:
        store.add_vote(runs["capitals"], runs["math"], "0", "a")
        store.add_vote(runs["capitals"], runs["edited"], "0", "b")
        store.add_vote(runs["capitals"], runs["edited"], "1", "a")  # the same question: kept
    return path


def test_preference_pairs_skip_votes_on_different_questions(tmp_path: Path) -> None:
    from posttrain.usage.votes import preference_pairs

    path = _old_votes(tmp_path)
    with Store(path) as store:
        pairs = preference_pairs(store)
        assert pairs == [{"prompt": [{"role": "user", "content": "Capital of Peru?"}],
                          "chosen": [{"role": "assistant", "content": "Lima"}],
                          "rejected": [{"role": "assistant", "content": "Lima, Peru"}]}]
        skipped: list[dict[str, Any]] = []
        assert preference_pairs(store, skipped=skipped) == pairs
    assert sorted((s["item_id"], "evals" in s["reason"], "differs" in s["reason"])
                  for s in skipped) == [("0", False, True), ("0", True, False)]


def test_training_from_votes_leaves_out_votes_on_different_questions(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``export openai-ft --kind dpo --from-votes`` and ``train --from-votes`` read votes
    through ``train.data.pairs_from_votes``: a vote an older viewer took across evals, or on an
    item edited between the runs, became a pair of one question with another's answer."""
    from posttrain.train.data import pairs_from_votes

    pairs = pairs_from_votes(_old_votes(tmp_path))
    assert [(p["prompt"][-1]["content"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("Capital of Peru?", "Lima", "Lima, Peru")]
    err = capsys.readouterr().err
    assert "left out 1 vote (not the same question: item '0' differs between the runs" in err
    assert "1 vote (not the same question: the runs are of different evals)" in err


def test_votes_need_the_same_prompts_and_the_same_typed_item(tmp_path: Path) -> None:
    """Two runs of one eval and variant whose templates were edited between them (their
    recorded ``prompts`` digests differ) answered different prompts; an item whose value
    changed type (true -> 1) renders another prompt: neither makes a preference pair."""
    from posttrain.runner.votes import runs_refusal, same_data, vote_refusal
    from posttrain.web.views import arena_refusal

    assert same_data('{"a": 1, "b": 2}', '{"b":2,"a":1}')
    assert not same_data('{"x": true}', '{"x": 1}') and not same_data('{"x": 1}', '{"x": 1.0}')
    with Store(tmp_path / "p.db") as store:
        made = {}
        for name, prompts, value in (("fr", "aaa", True), ("de", "bbb", True),
                                     ("fr2", "aaa", 1)):
            made[name] = store.create_run(
                run_key=name, eval_name="translate", eval_path=None, eval_hash=name,
                model=f"m-{name}", variant="default", epochs=1, config={"prompts": prompts},
                items=[Item(id="0", data={"x": value})])
        fr, de, fr2 = made["fr"], made["de"], made["fr2"]
        assert "prompts" in (runs_refusal(fr, de) or "")
        assert "prompts" in (arena_refusal(fr, de) or "")
        assert "prompts" in (vote_refusal(store, fr, de, "0") or "")
        assert runs_refusal(fr, fr2) is None
        assert "differs between the runs" in (vote_refusal(store, fr, fr2, "0") or "")


def test_a_reviewed_value_keeps_the_type_of_the_dataset_row_not_of_a_run_copy(
        tmp_path: Path) -> None:
    """The type is checked against the dataset row the review writes: an older run's copy may
    hold "5" where the row now holds 5, and a review from that run turned the number into
    text."""
    from posttrain.usage.review import reviewed_value

    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "q1", "answer": 5, "label": "hi"}) + "\n")
    (tmp_path / "eval.yaml").write_text(
        "name: t\ndataset: data.jsonl\nmessages:\n  - {role: user, content: hi}\n"
        "graders:\n  - {type: string_check, name: g, input: x, reference: y, operation: eq}\n")
    path = tmp_path / "eval.yaml"
    assert reviewed_value(path, "q1", "answer", "6") == 6
    assert reviewed_value(path, "q1", "label", "there") == "there"
    for field, value in (("answer", "six"), ("label", {"a": 1}), ("answer", [6])):
        with pytest.raises(UserError, match=f"field '{field}' holds"):
            reviewed_value(path, "q1", field, value)

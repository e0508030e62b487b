"""The viewer at scale: a re-graded run's samples page is read in a few queries (not one load
per row) through an index on (run, item, epoch); paged endpoints refuse bad offsets, limits,
graders and sort columns with a 400 and cap what they send; the latency chart's data is
bounded; ``posttrain view --port 0`` prints the port it bound."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from posttrain.analysis.results import load_results
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.runner.store import Store
from posttrain.web import matrix, views
from tests.test_web_helpers import app_client, build


def _regraded_store(path: Path, n: int = 60, rounds: int = 3) -> tuple[Store, str]:
    """A run of ``n`` items re-graded ``rounds`` times (as ``posttrain regrade`` writes: the
    old grades kept in ``score_history``), each round flipping every grade."""
    store = Store(path)
    run_id = simulate_run(store, "ev", StubModel("m", 0.7), make_items(n), seed=1).id
    for _ in range(rounds):
        answers = []
        for sample in load_results(store, run_id).samples:
            flipped = [dataclasses.replace(g, value=1.0 - (g.value or 0.0),
                                           passed=None if g.passed is None else not g.passed)
                       for g in sample.grades.values()]
            answers.append((sample.item_id, sample.epoch, flipped, False))
        store.replace_scores_many(run_id, answers)
    return store, run_id


def test_a_regraded_runs_page_is_read_in_a_few_queries(tmp_path: Path) -> None:
    store, run_id = _regraded_store(tmp_path / "s.db")
    assert store.conn.execute("SELECT COUNT(*) FROM score_history").fetchone()[0] >= 180
    whole = views.samples(store, run_id)
    counts = {}
    for limit in (5, 40):
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        page, total = views.samples_page(store, run_id, limit=limit, offset=10)
        store.conn.set_trace_callback(None)
        assert total == 60 and page == whole[10:10 + limit]
        counts[limit] = len(statements)
    # the same few queries for 5 rows or 40 (one load per row made ~5 a row)
    assert counts[40] == counts[5] <= 12, counts
    # the rows carry the latest grades (three flips from the first)
    first = load_results(store, run_id, only=(page[0]["item_id"], page[0]["epoch"]))
    assert page[0]["value"] == first.samples[0].value
    store.close()


def test_one_answers_history_is_found_by_index(tmp_path: Path) -> None:
    store, _run_id = _regraded_store(tmp_path / "s.db", n=5, rounds=1)
    for sql, columns in [
            ("SELECT * FROM score_history WHERE run_id = ? AND item_id = ? AND epoch = ? "
             "ORDER BY replaced", "run_id=? AND item_id=? AND epoch=?"),
            ("SELECT * FROM score_history WHERE run_id = ? AND item_id BETWEEN ? AND ? "
             "ORDER BY replaced", "run_id=? AND item_id>? AND item_id<?")]:
        plan = " ".join(row[3] for row in store.conn.execute(
            "EXPLAIN QUERY PLAN " + sql, ("x",) * sql.count("?")))
        assert "USING INDEX score_history_key" in plan and columns in plan, plan
    store.close()


def test_a_store_written_before_the_index_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, run_id = _regraded_store(path, n=5, rounds=1)
    # as stores written before: an index on run_id only
    store.conn.execute("DROP INDEX score_history_key")
    store.conn.execute("CREATE INDEX score_history_run ON score_history(run_id)")
    store.close()
    with Store(path) as again:
        names = {row[1] for row in again.conn.execute("PRAGMA index_list(score_history)")}
        assert names == {"score_history_key"}
        assert len(again.score_history(run_id)) == 5


def test_the_latency_chart_data_is_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    run_id = simulate_run(store, "ev", StubModel("m", 0.7), make_items(1500), seed=2).id
    latencies = [r[0] for r in store.conn.execute(
        "SELECT latency_s FROM samples WHERE run_id = ?", (run_id,))]
    chart = views.run_page(store, run_id)["charts"]["latency"]
    assert chart["n"] == 1500 and len(chart["bins"]) <= views.LATENCY_BINS
    assert len(json.dumps(chart)) < 4000
    # every latency counted in the bar that holds it
    for bar in chart["bins"]:
        held = sum(1 for v in latencies if bar["start"] - 1e-9 <= v < bar["end"] - 1e-9)
        assert held == bar["count"], bar
    assert views.latency_histogram(store, "no-such-run") == {"n": 0, "step": None, "bins": []}
    store.close()


@pytest.fixture
def env(tmp_path: Path):
    return build(tmp_path)


async def _client(store_path: Path) -> TestClient:
    return await app_client(store_path)


async def _refused(client: TestClient, url: str, says: str) -> None:
    resp = await client.get(url)
    body = await resp.json()
    assert resp.status == 400 and says in body["error"] and "\n" not in body["error"], (url, body)


async def test_paged_endpoints_refuse_bad_values_and_cap_limits(env, monkeypatch) -> None:
    store_path, _, runs = env
    client = await _client(store_path)
    try:
        base = f"/api/runs/{runs['model-b']}/samples"
        await _refused(client, base + "?offset=-100", "offset")
        await _refused(client, base + "?limit=0", "limit")
        await _refused(client, base + "?limit=x", "limit must be an integer")
        await _refused(client, base + "?grader=bogus", "grader must be one of exact")
        await _refused(client, base + "?filter=bogus", "filter must be one of")
        for huge in ("9223372036854775808", "99999999999999999999"):  # were HTTP 500
            await _refused(client, base + f"?offset={huge}", "offset is too large")
            await _refused(client, f"/api/matrix?eval=capitals&offset={huge}",
                           "offset is too large")
        # no limit: the default page; a limit over the cap: the cap
        monkeypatch.setattr(views, "SAMPLES_PAGE", 2)
        monkeypatch.setattr(views, "MAX_SAMPLES_PAGE", 3)
        resp = await client.get(base)
        assert len(await resp.json()) == 2 and resp.headers["X-Total-Count"] == "4"
        for query in ("?limit=1000000", "?filter=all&tag=&limit=9", "?grader=exact&limit=9"):
            assert len(await (await client.get(base + query)).json()) == 3, query
        assert len(await (await client.get(base + "?offset=3&limit=9")).json()) == 1

        await _refused(client, "/api/matrix?eval=capitals&offset=-5", "offset")
        await _refused(client, "/api/matrix?eval=capitals&limit=-1", "limit")
        for col in ("99", "-1", "2"):
            await _refused(client, f"/api/matrix?eval=capitals&sort=score&col={col}",
                           "col must be a column of the matrix, 0 to 1")
        good = await (await client.get("/api/matrix?eval=capitals&sort=-score&col=1")).json()
        assert good["total"] == 4
        capped = await (await client.get("/api/matrix?eval=capitals&limit=99999")).json()
        assert capped["limit"] == matrix.MAX_LIMIT and capped["offset"] == 0

        pair = f"/api/compare?a={runs['model-a']}&b={runs['model-b']}"
        await _refused(client, pair + "&offset=-1", "offset")
        await _refused(client, pair + "&limit=0", "limit")
        assert (await (await client.get(pair + "&limit=99999")).json())["limit"] == \
            views.MAX_COMPARE_PAGE
    finally:
        await client.close()


def test_view_on_port_0_prints_the_port_it_bound(env) -> None:
    store_path, _, _ = env
    proc = subprocess.Popen([sys.executable, "-m", "posttrain.cli.view", "--store",
                             str(store_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found and found.group(1) != "0", line
        with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/api/runs",
                                    timeout=10) as resp:
            assert len(json.loads(resp.read())) == 2
    finally:
        proc.terminate()
        proc.wait(10)


def _mixed_grades(item, text: str, epoch: int) -> list:
    """Two graders; some answers unscored by one (no value), some not graded by "b"."""
    from posttrain.types import Score

    ok = text == item.data["answer"]
    index = int(item.id[1:])
    grades = [Score(value=1.0 if ok else 0.0, passed=ok, name="a")]
    if index % 3 == 1:
        grades.append(Score(value=None, passed=None, status="unscored", name="b"))
    elif index % 3 == 2:
        grades.append(Score(value=float(epoch % 2), passed=epoch % 2 == 1, name="b"))
    return grades


@pytest.mark.parametrize("flt", views.FILTERS)
@pytest.mark.parametrize("tag", [None, "alpha", "nope"])
@pytest.mark.parametrize("grader", [None, "a", "b"])
def test_a_filtered_page_in_sql_is_the_page_of_the_whole_run(tmp_path: Path, flt: str,
                                                              tag: str | None,
                                                              grader: str | None) -> None:
    store = Store(tmp_path / "s.db")
    items = make_items(30, tags=("alpha", "beta", "gamma"))
    run_id = simulate_run(store, "ev", StubModel("m", 0.6), items, seed=3, epochs=2,
                          grade=_mixed_grades).id
    # a failed request (an error answer)
    store.conn.execute("UPDATE samples SET status = 'error', error = 'boom' "
                       "WHERE run_id = ? AND item_id = 'q004' AND epoch = 1", (run_id,))
    whole = views._sample_rows(load_results(store, run_id), flt, tag, grader)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    for offset, limit in ((0, 7), (5, 11), (0, 500)):
        page, total = views.samples_page(store, run_id, flt, tag, grader, limit=limit,
                                         offset=offset)
        assert total == len(whole) and page == whole[offset:offset + limit], (offset, limit)
    store.conn.set_trace_callback(None)
    # no answer read as a Python object but the pages' (the kept facts are built once in SQL)
    whole_reads = [s for s in statements if "completion, error, attempts" in s
                   and "BETWEEN" not in s]
    assert not whole_reads, whole_reads
    store.close()

"""The matrix's SQL agrees with the Python results every report uses; filters, paging, exports."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from posttrain.analysis.results import load_results
from posttrain.analysis.stats import mean_ci
from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score
from posttrain.web import matrix, views
from posttrain.web.server import create_app
from tests.test_web_helpers import LONG_MODEL, add_runs, build

GRADERS = ("g1", "g2")


def _random_run(store: Store, rng: random.Random, model: str, config: dict, items: list[Item],
                epochs: int) -> str:
    run = store.create_run(run_key=f"k-{model}", eval_name="rand", eval_path=None,
                           eval_hash="h", model=model, variant="v", epochs=epochs,
                           config=config, items=items)
    for item in items:
        for epoch in range(epochs):
            roll = rng.random()
            if roll < 0.08:
                continue  # not answered (yet)
            if roll < 0.16:
                store.record_sample(run.id, item.id, epoch, completion=None, request_key=None,
                                    attempts=3, error="HTTP 503")
                continue
            scores = []
            for name in GRADERS:
                g = rng.random()
                if g < 0.07:
                    continue  # this grader's grade is missing
                if g < 0.14:
                    scores.append(Score(value=None, passed=None, status="unscored", name=name,
                                        explanation="judge said nothing"))
                elif g < 0.18:
                    scores.append(Score(value=None, passed=None, status="error", name=name,
                                        explanation="boom"))
                else:
                    value = rng.choice([0.0, 0.25, 0.5, 1.0])
                    passed = rng.choice([value >= 0.5, None]) if name == "g2" else value >= 0.5
                    scores.append(Score(value=value, passed=passed, name=name))
            store.record_sample(run.id, item.id, epoch, request_key=None, attempts=1,
                                completion=Completion(text=f"{model} says {item.id}/{epoch}",
                                                      cost_usd=0.001, latency_s=rng.random()),
                                scores=scores)
    store.finish_run(run.id)
    return run.id


def _expected_status(samples: list, epochs: int) -> str:
    statuses = [s.status for s in samples]
    if "error" in statuses:
        return "error"
    if "unscored" in statuses:
        return "unscored"
    if len(samples) < epochs:
        return "missing"
    if any(s.passed is False for s in samples):
        return "fail"
    if all(s.passed is True for s in samples):
        return "pass"
    return "scored"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cells_and_headers_match_load_results(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    items = [Item(id=f"i{n:03d}", data={"q": f"question {n}", "length": 1000 * (1 + n % 3),
                                        "depth": (n % 4) / 4}, tags=[rng.choice("xyz")])
             for n in range(60)]
    configs = {"primary-g2": {"primary": "g2"}, "both": {"grader_names": list(GRADERS)},
               "unlisted": {}}
    with Store(tmp_path / "s.db") as store:
        ids = {name: _random_run(store, rng, name, config, items, epochs=2)
               for name, config in configs.items()}
        columns = [store.get_run(ids[name]) for name in configs]
        data = matrix.matrix(store, columns, limit=None)
        assert data["total"] == len(items)
        for index, name in enumerate(configs):
            results = load_results(store, ids[name])
            item_scores = results.item_scores()
            by_item = results.by_item()
            header = data["columns"][index]
            mean, low, high = mean_ci(list(item_scores.values()))
            assert header["score"]["mean"] == pytest.approx(mean)
            assert (header["score"]["low"], header["score"]["high"]) == pytest.approx((low, high))
            assert header["coverage"]["scored"] == results.coverage()[0]
            assert header["coverage"]["expected"] == results.coverage()[1]
            assert header["cost_usd"] == pytest.approx(sum(s.cost_usd for s in results.samples))
            for sample in results.samples[:40]:  # one answer read alone: the same outcome
                detail = views.sample_detail(store, ids[name], sample.item_id, sample.epoch)
                assert (detail["status"], detail["value"], detail["passed"], detail["reason"]) \
                    == (sample.status, sample.value, sample.passed, sample.reason)
            for row in data["rows"]:
                cell = row["cells"][index]
                samples = by_item.get(row["item_id"], [])
                assert cell["status"] == _expected_status(samples, 2), (name, row["item_id"])
                assert cell["answers"] == len(samples)
                if samples:
                    assert cell["score"] == pytest.approx(item_scores[row["item_id"]])
                else:
                    assert cell["score"] is None
        # a status filter keeps exactly the rows where some column has that status
        for status in matrix.STATUSES:
            kept = matrix.matrix(store, columns, status=status, limit=None)
            expected = [r["item_id"] for r in data["rows"]
                        if any(c["status"] == status for c in r["cells"])]
            assert [r["item_id"] for r in kept["rows"]] == expected
        # sorting by a column's score, then paging, in SQL
        ranked = matrix.matrix(store, columns, sort="-score", sort_col=1, limit=None)
        values = [r["cells"][1]["score"] or 0 for r in ranked["rows"]]
        assert values == sorted(values, reverse=True)
        page = matrix.matrix(store, columns, sort="-score", sort_col=1, offset=20, limit=10)
        assert [r["item_id"] for r in page["rows"]] == [r["item_id"]
                                                        for r in ranked["rows"][20:30]]
        assert page["total"] == 60
        beyond = matrix.matrix(store, columns, offset=100, limit=10)
        assert beyond["rows"] == [] and beyond["total"] == 60
        # the run page's charts: a length x depth heatmap (12 cells), score over time
        charts = views.run_page(store, ids["both"])["charts"]
        assert len(charts["heatmap"]) == 12 and len(charts["history"]) == 3
        both = load_results(store, ids["both"]).item_scores()
        cell = next(c for c in charts["heatmap"] if (c["length"], c["depth"]) == (2000, 0.25))
        chosen = [both[f"i{n:03d}"] for n in range(60) if n % 3 == 1 and n % 4 == 1]
        assert cell["score"] == pytest.approx(sum(chosen) / len(chosen))
        tagged = matrix.matrix(store, columns, tag="x", limit=None)
        assert {r["item_id"] for r in tagged["rows"]} == {i.id for i in items if i.tags == ["x"]}


def test_disagreement_changed_search_and_short_names(tmp_path: Path) -> None:
    store_path, eval_path, runs = build(tmp_path)
    more = add_runs(store_path, eval_path)
    with Store(store_path) as store:
        columns = matrix.default_columns(store, "capitals")
        # the latest run of each model, by model name (model-a's second run, not its first)
        assert [c.id for c in columns] == [more[LONG_MODEL], more["model-a"], runs["model-b"]]
        data = matrix.matrix(store, columns)
        assert data["columns"][1]["previous_run"] == runs["model-a"]
        assert data["columns"][2]["previous_run"] is None
        assert data["tags"] == ["asia", "europe", "oceania"]
        # q1: pass everywhere; the others differ somewhere
        disagree = matrix.matrix(store, columns, disagree=True)
        assert [r["item_id"] for r in disagree["rows"]] == ["q2", "q3", "q4"]
        changed = matrix.matrix(store, columns, changed=True)
        assert [r["item_id"] for r in changed["rows"]] == ["q2"]
        assert changed["rows"][0]["cells"][1]["previous"] == {"status": "pass", "score": 1.0}
        # search: items, answers and errors; LIKE wildcards are literal
        assert [r["item_id"] for r in matrix.matrix(store, columns, search="osaka")["rows"]] \
            == ["q2"]
        assert [r["item_id"] for r in matrix.matrix(store, columns, search="HTTP 5")["rows"]] \
            == ["q4"]
        assert matrix.matrix(store, columns, search="%")["total"] == 0
        assert matrix.matrix(store, columns, search="Capital of")["total"] == 4
        with pytest.raises(ValueError):
            matrix.matrix(store, columns, status="bogus")
    assert matrix.short_name("hf:/home/me/models/qwen-sft/checkpoint-300") == \
        "qwen-sft/checkpoint-300"
    assert matrix.short_name("openai:gpt-4o-mini") == "openai:gpt-4o-mini"
    assert matrix.short_name("hf:Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert matrix.short_name("model-a") == "model-a"


async def test_matrix_api_and_exports(tmp_path: Path) -> None:
    store_path, eval_path, runs = build(tmp_path)
    client = TestClient(TestServer(create_app(store_path, seed=1), host="127.0.0.1"))
    await client.start_server()
    try:
        data = await (await client.get("/api/matrix?eval=capitals&limit=2")).json()
        assert data["total"] == 4 and [r["item_id"] for r in data["rows"]] == ["q1", "q2"]
        assert [c["model"] for c in data["columns"]] == ["model-a", "model-b"]
        page2 = await (await client.get("/api/matrix?eval=capitals&limit=2&offset=2")).json()
        assert [r["item_id"] for r in page2["rows"]] == ["q3", "q4"]
        resp = await client.get("/api/matrix?eval=capitals&status=fail&format=csv")
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert {r["item_id"] for r in rows} == {"q2", "q3"}
        assert {(r["item_id"], r["model"], r["status"]) for r in rows} >= {
            ("q2", "model-b", "fail"), ("q2", "model-a", "pass"), ("q3", "model-a", "fail")}
        exported = json.loads(await (await client.get(
            "/api/matrix?eval=capitals&q=kyoto&format=json")).text())
        assert exported["filters"] == {"search": "kyoto", "sort": "item"}
        assert [r["output"] for r in exported["rows"]] == ["Tokyo", "Kyoto"]
        runs_param = f"{runs['model-b']},{runs['model-a']}"
        picked = await (await client.get(f"/api/matrix?runs={runs_param}")).json()
        assert [c["model"] for c in picked["columns"]] == ["model-b", "model-a"]
        # a run named twice (or by its id and a prefix) is one column, not two
        twice = f"{runs['model-b']},{runs['model-a']},{runs['model-b'][:-1]}"
        picked = await (await client.get(f"/api/matrix?runs={twice}")).json()
        assert [c["model"] for c in picked["columns"]] == ["model-b", "model-a"]
        for bad in ("status=nope", "sort=up", "offset=x", "format=xml", ""):
            assert (await client.get(f"/api/matrix?{bad}&eval=capitals" if bad
                                     else "/api/matrix")).status == 400, bad
        assert (await client.get("/api/matrix?eval=nope")).status == 404
        vendor = await client.get("/static/vendor/vega-lite.min.js")
        assert vendor.status == 200 and "max-age" in vendor.headers["Cache-Control"]
        assert (await client.get("/static/vendor/vega.LICENSE.txt")).status == 404
        assert (await client.get("/static/vendor/..%2Fapp.js")).status == 404
    finally:
        await client.close()


def test_vendored_library_is_package_data_with_licences() -> None:
    from importlib import resources

    vendor = resources.files("posttrain.web").joinpath("static", "vendor")
    readme = vendor.joinpath("README.txt").read_text()
    for name, version in (("vega", "6.4.0"), ("vega-lite", "6.5.0"), ("vega-embed", "7.3.0")):
        assert f"{name}@{version}" in readme
        assert "Redistribution" in vendor.joinpath(f"{name}.LICENSE.txt").read_text()
        assert vendor.joinpath(f"{name}.min.js").read_bytes()[:1] == b"!"
    assert "vega-lite@6.5.0" in readme and '"6.5.0"' in vendor.joinpath(
        "vega-lite.min.js").read_text()[:400]


def test_arena_progress_counts_voters_and_grades(tmp_path: Path) -> None:
    store_path, _, runs = build(tmp_path)
    a, b = runs["model-a"], runs["model-b"]
    with Store(store_path) as store:
        # q1 and q2 differ (q3: both "Canberra"; q4: model-b failed)
        store.add_vote(a, b, "q2", "a", voter="ann")
        store.add_vote(b, a, "q2", "b", voter="bob")  # stored the other way round: also A
        store.add_vote(a, b, "q1", "a", voter="ann")
        store.add_vote(a, b, "q1", "tie", voter="bob")
        progress = views.arena_progress(store, a, b)
    assert (progress["total"], progress["identical"], progress["votable"]) == (3, 1, 2)
    assert progress["voted"] == 2 and progress["todo"] == []
    assert progress["wins"] == {"a": 3, "b": 0, "tie": 1}
    # q2 graded 1 vs 0: both votes agree; q1 graded 1 vs 1: not counted
    assert progress["grade_agreement"] == {"n": 2, "agree": 2}
    # two voters on q2 agree, on q1 they do not
    assert progress["voter_agreement"] == {"n": 2, "agree": 1}


def test_csv_export_never_hands_a_spreadsheet_a_formula() -> None:
    from posttrain.web.matrix import to_csv

    row = {"item_id": "a", "tags": "", "run": "r", "model": "m", "variant": "default",
           "status": "fail", "score": -0.5, "answers": 1,
           "output": '=HYPERLINK("http://evil.example","click")', "error": "@SUM(1)"}
    text = to_csv([row])
    assert "'=HYPERLINK" in text and "'@SUM(1)" in text
    assert ",-0.5," in text  # a negative number is a number, not text

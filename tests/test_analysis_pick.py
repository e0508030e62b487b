"""pick and shelf life on ladders of stub endpoints with known accuracy, price and latency."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from posttrain.analysis.pick import cost_per_item, pareto_front, pick
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import load_all, select_runs
from posttrain.analysis.shelf_life import shelf_life
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.cli.analysis import main
from posttrain.runner.store import Store

LADDER = [
    StubModel("premium", 0.97, price=(10.0, 30.0), latency_s=1.0),
    StubModel("standard", 0.92, price=(1.0, 3.0), latency_s=6.0),
    StubModel("mini", 0.75, price=(0.2, 0.6), latency_s=0.5),
    StubModel("nano", 0.50, price=(0.05, 0.1), latency_s=0.3),
]


def _ladder(path: Path, seed: int, n: int = 300, **kwargs) -> Store:
    store = Store(path)
    items = make_items(n)
    for model in LADDER:
        simulate_run(store, "ladder", model, items, seed=seed, **kwargs)
    return store


def test_pick_cheapest_that_clears_over_seeds(tmp_path: Path) -> None:
    for seed in range(4):
        store = _ladder(tmp_path / f"p{seed}.db", seed)
        report = pick(load_all(store, select_runs(store, "ladder")), 0.85)
        assert report["choice"] == "standard", report["message"]
        by_model = {c["model"]: c for c in report["candidates"]}
        assert by_model["premium"]["clears"] and by_model["standard"]["clears"]
        assert not by_model["mini"]["clears"] and not by_model["nano"]["clears"]
        # 200 input + 20 output tokens at the list price
        assert by_model["standard"]["cost_usd_per_item"] == pytest.approx(
            (200 * 1.0 + 20 * 3.0) / 1e6)
        assert by_model["premium"]["latency_p95_s"] <= 1.5
        # the list is sorted by cost; each candidate is cheaper *or* better than the next
        costs = [c["cost_usd_per_item"] for c in report["candidates"]]
        assert costs == sorted(costs)


def test_pick_none_clears_and_latency_filter(tmp_path: Path) -> None:
    store = _ladder(tmp_path / "n.db", 1)
    results = load_all(store, select_runs(store, "ladder"))
    report = pick(results, 0.995)
    assert report["choice"] is None
    assert report["message"].startswith("none clears")
    assert not any(c["clears"] for c in report["candidates"])
    # standard is cheap enough but too slow: the bar is cleared only by premium
    report = pick(results, 0.85, max_latency_p95=3.0)
    assert report["choice"] == "premium"
    slow = next(c for c in report["candidates"] if c["model"] == "standard")
    assert slow["too_slow"] and not slow["clears"]


def test_cost_from_tokens_and_run_price_when_not_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    items = make_items(20)
    priced = simulate_run(store, "t", StubModel("cached", 0.9, price=(2.0, 8.0),
                                                stored_cost=False), items, seed=0)
    unknown = simulate_run(store, "t", StubModel("local-thing", 0.9), items, seed=0)
    assert cost_per_item(load_results(store, priced.id)) == pytest.approx(
        (200 * 2.0 + 20 * 8.0) / 1e6)
    assert cost_per_item(load_results(store, unknown.id)) is None
    # a models-file price overrides the run's recorded one
    assert cost_per_item(load_results(store, priced.id), {"cached": {"input": 1.0,
                                                                     "output": 0.0}}) == \
        pytest.approx(200 / 1e6)


def test_pareto_front() -> None:
    points = [
        {"cost_usd_per_item": 1.0, "latency_p95_s": 1.0, "score": 0.9},
        {"cost_usd_per_item": 2.0, "latency_p95_s": 2.0, "score": 0.8},  # dominated by 0
        {"cost_usd_per_item": 0.5, "latency_p95_s": 3.0, "score": 0.7},
        {"cost_usd_per_item": None, "latency_p95_s": 0.1, "score": 0.95},
    ]
    assert pareto_front(points) == [0, 2, 3]


def test_out_of_reach_tags(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db")
    items = make_items(90, tags=("easy", "cusp", "impossible"))
    hard = {i.id: 0.25 for i in items if i.tags == ["cusp"]}
    hard.update({i.id: 0.0 for i in items if i.tags == ["impossible"]})
    for model in LADDER[:2]:
        simulate_run(store, "o", model, items, seed=5, item_accuracy=hard)
    report = pick(load_all(store, select_runs(store, "o")), 0.8)
    tags = {e["tag"]: e for e in report["out_of_reach"]}
    assert set(tags) == {"cusp", "(all items)"}  # overall ~0.41, cusp ~0.25; 0% is not a cusp
    assert "RFT" in tags["cusp"]["recommendation"]
    assert 0.1 <= tags["cusp"]["best_score"] <= 0.6


def test_cli_pick_json_terminal_and_html(tmp_path: Path, capsys) -> None:
    db = tmp_path / "c.db"
    _ladder(db, 2).close()
    eval_file = tmp_path / "ladder.yaml"
    eval_file.write_text("name: ladder\nitems: [{id: a}]\ngraders: [{type: string_check, "
                         "name: exact, input: x, reference: y, operation: eq}]\n")
    assert main(["pick", str(eval_file), "--bar", "0.85", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["choice"] == "standard"
    keys = {"model", "score", "ci_low", "cost_usd_per_item", "latency_p95_s", "clears"}
    assert keys <= set(report["candidates"][0])
    assert "out_of_reach" in report
    html = tmp_path / "pick.html"
    assert main(["pick", str(eval_file), "--bar", "0.85", "--store", str(db), "--models",
                 "premium", "mini", "--html", str(html)]) == 0
    captured = capsys.readouterr()
    assert "premium <-" in captured.out and "standard" not in captured.out
    page = html.read_text()
    assert page.count("<svg") == 2 and "<polyline" in page
    _assert_svgs_well_formed(page)
    assert main(["pick", str(eval_file), "--bar", "1.5", "--store", str(db)]) == 2


def _assert_svgs_well_formed(page: str) -> None:
    import re
    import xml.etree.ElementTree as ET

    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and len(root) > 3


def test_shelf_life_running_best_and_release_dates(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path / "s.db")
    items = make_items(100)
    start = dt.datetime(2025, 1, 1).timestamp()
    for month, accuracy in enumerate([0.3, 0.5, 0.45, 0.7, 0.98]):
        simulate_run(store, "shelf", StubModel(f"gen{month}", accuracy), items, seed=month,
                     created=start + month * 30 * 86400)
    results = load_all(store, select_runs(store, "shelf"))
    report = shelf_life(results)["evals"]["shelf"]
    best = [p["best_so_far"] for p in report["points"]]
    assert best == sorted(best) and len(best) == 5
    assert report["points"][0]["date"].startswith("2025-01")
    assert report["best"]["model"] == "gen4"
    # release dates put gen4 first: the running best is then flat at its score
    released = {"gen4": dt.date(2024, 6, 1)}
    moved = shelf_life(results, released=released)["evals"]["shelf"]
    assert moved["points"][0]["model"] == "gen4" and moved["points"][0]["date_source"] == \
        "released"
    assert len({p["best_so_far"] for p in moved["points"]}) == 1
    models_file = tmp_path / "models.yaml"
    models_file.write_text("models:\n  gen4: {provider: openai, model: gen4, "
                           "released: 2024-06-01}\n")
    html = tmp_path / "shelf.html"
    assert main(["shelf-life", "--store", str(store.path), "--models-file", str(models_file),
                 "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "2024-06-01 (released)" in out
    assert "<svg" in html.read_text()
    _assert_svgs_well_formed(html.read_text())


def test_a_run_of_part_of_the_eval_is_not_ranked_against_whole_runs(tmp_path: Path,
                                                                   capsys) -> None:
    """A cheap model's run of the first 30 items (``--limit``) scores its items, not the eval's:
    pick does not choose it, the matrix and the audit do not take it as the best, and each says
    so (it was chosen as "clears" while its whole run does not)."""
    db = tmp_path / "p.db"
    store = Store(db)
    items = make_items(300)
    simulate_run(store, "ladder", StubModel("standard", 0.92, price=(1.0, 3.0)), items, seed=1)
    simulate_run(store, "ladder", StubModel("nano", 1.0, price=(0.05, 0.1)), items[:30],
                 seed=1)
    store.close()
    eval_file = tmp_path / "ladder.yaml"
    eval_file.write_text("name: ladder\nitems: [{id: a}]\ngraders: [{type: string_check, "
                         "name: exact, input: x, reference: y, operation: eq}]\n")
    assert main(["pick", str(eval_file), "--bar", "0.85", "--store", str(db), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    nano = next(c for c in report["candidates"] if c["model"] == "nano")
    assert report["choice"] == "standard" and not nano["clears"] and nano["partial"]
    assert nano["items"] == 30 and "nano" in report["warnings"][0]
    assert main(["pick", str(eval_file), "--bar", "0.85", "--store", str(db)]) == 0
    text = capsys.readouterr().out
    assert "part of the eval" in text and "warning: nano: its run" in text
    assert main(["compare", str(eval_file), "--store", str(db), "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert matrix["best"] == "standard" and "nano" in matrix["warnings"][0]
    row = next(r for r in matrix["rows"] if r["label"] == "nano")
    assert row["partial"] and row["vs_best_n"] == 30
    assert main(["audit", str(eval_file), "--store", str(db), "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["saturation"]["best"]["label"] == "standard"

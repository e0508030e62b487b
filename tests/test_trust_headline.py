"""The headline counts every item; pick, compare, fail-under and pass bars use it; a cached
rerun keeps its answers' original latency (issue 11, sections 1 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.analysis.pick import pick
from posttrain.analysis.report import render_table, summarize
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import load_all, select_runs
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.cli.analysis import main as analysis_main
from posttrain.runner.store import Store
from posttrain.types import Score


def _errors_on_most(store: Store, items: list, name: str, share: float) -> None:
    """A model whose request fails (context too long) on ``share`` of the items and that is
    right on every item it answers."""
    run = store.create_run(run_key=name, eval_name="long", eval_path=None, eval_hash="h",
                           model=name, variant="default", epochs=1,
                           config={"primary": None, "pass_bar": 0.8, "grader_names": ["exact"]},
                           items=items)
    from posttrain.types import Completion

    cut = int(len(items) * share)
    for index, item in enumerate(items):
        if index < cut:
            store.record_sample(run.id, item.id, 0, completion=None, request_key=None,
                                attempts=1, error="HTTP 400: context length exceeded")
        else:
            store.record_sample(run.id, item.id, 0, completion=Completion(
                text=item.data["truth"], latency_s=0.2), request_key=None, attempts=1,
                scores=[Score(1.0, True, name="exact")])
    store.finish_run(run.id)


def test_a_model_that_errors_on_most_items_does_not_clear_the_bar(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    items = make_items(200)
    _errors_on_most(store, items, "long-context-fails", 0.85)
    simulate_run(store, "long", StubModel("steady", 0.9), items, seed=1,
                 extra_config={"pass_bar": 0.8, "grader_names": ["exact"]})
    results = load_all(store, select_runs(store, "long"))
    report = pick(results, 0.8)
    assert report["choice"] == "steady", report["message"]
    by_model = {c["model"]: c for c in report["candidates"]}
    failing = by_model["long-context-fails"]
    assert failing["score"] == pytest.approx(0.15) and not failing["clears"]
    assert failing["coverage"] == pytest.approx(0.15)

    summary = summarize(next(r for r in results if r.run.model == "long-context-fails"))
    assert summary["score"] == pytest.approx(0.15) and summary["clears_bar"] is False
    assert summary["score_scored_only"] == 1.0 and summary["coverage"] == pytest.approx(0.15)
    assert summary["errors"] == 170 and summary["ci_high"] < 0.25
    assert summary["ci_method"] == "wilson"
    assert summary["pass_rate"] == pytest.approx(0.15)
    table = render_table([summary])
    assert "coverage" in table and "15%" in table and "scored-only" in table


def test_cli_pick_keeps_every_models_flag(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path / "s.db")
    items = make_items(60)
    for name, accuracy in [("a", 0.9), ("b", 0.8), ("c", 0.7)]:
        simulate_run(store, "ladder", StubModel(name, accuracy), items, seed=2)
    store.close()
    assert analysis_main(["pick", "ladder", "--bar", "0.5", "--store", str(tmp_path / "s.db"),
                          "--models", "a", "--models", "b", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {c["model"] for c in report["candidates"]} == {"a", "b"}


def test_cached_rerun_keeps_the_original_latency(tmp_path, stub_server) -> None:
    from posttrain.api import run_eval

    spec = {"name": "lat", "items": [{"id": str(i), "q": f"[[answer:{i}]]", "a": str(i)}
                                     for i in range(6)],
            "messages": [{"role": "user", "content": "{{item.q}}"}],
            "graders": [{"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                         "reference": "{{item.a}}", "operation": "eq"}]}
    from posttrain.eval import eval_from_dict

    model = f"openai:stub?base_url={stub_server.base_url}"
    [first] = run_eval(eval_from_dict(spec), [model], store=str(tmp_path / "a.db"))
    [again] = run_eval(eval_from_dict(spec), [model], store=str(tmp_path / "a.db"))
    assert again["cached"] == 6 and again["requests"] == 0
    assert first["latency_p50_s"] and first["latency_p50_s"] > 0
    assert again["latency_p50_s"] == pytest.approx(first["latency_p50_s"], rel=1e-3)
    with Store(tmp_path / "a.db") as store:
        assert all(s.latency_s and s.latency_s > 0
                   for s in load_results(store, again["run_id"]).samples)

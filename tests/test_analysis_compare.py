"""compare: paired run comparisons and the eval matrix, on stores written by stub models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.analysis.compare import compare_matrix, compare_runs
from posttrain.analysis.results import load_results
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.cli.analysis import main
from posttrain.runner.store import Store
from posttrain.types import Score


def _sql_grader(columns_broken_on_beta: bool):
    """A grader with two sub-components (right table, right columns). The new model picks the
    right table more often but gets the columns wrong on every `beta` item."""

    def grade(item, text, epoch):
        table_ok = text == item.data["answer"]
        columns_ok = table_ok and not (columns_broken_on_beta
                                       and item.data["category"] == "beta")
        value = (table_ok + columns_ok) / 2
        return [Score(value=value, passed=value == 1.0, name="sql",
                      sub_scores={"table": float(table_ok), "columns": float(columns_ok)})]

    return grade


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(tmp_path / "c.db")
    items = make_items(200, tags=("alpha", "beta"))
    old = simulate_run(store, "sql", StubModel("old", 0.6), items, seed=1, grade=_sql_grader(False))
    new = simulate_run(store, "sql", StubModel("new", 0.85), items, seed=2,
                       grade=_sql_grader(True))
    return store, old.id, new.id


def test_compare_detects_planted_difference_per_tag_and_component(two_runs) -> None:
    store, a, b = two_runs
    ra, rb = load_results(store, a), load_results(store, b)
    report = compare_runs(ra, rb, n_boot=500)
    overall = report["overall"]
    assert report["n_common"] == 200
    expected = (sum(rb.item_scores().values()) - sum(ra.item_scores().values())) / 200
    assert overall["diff"] == pytest.approx(expected)
    assert overall["ci_low"] <= overall["diff"] <= overall["ci_high"]
    # +table on all items, -columns on beta: overall the two nearly cancel out (0.64 vs 0.60)
    assert abs(overall["diff"]) < 0.12
    components = {c["component"]: c for c in report["components"]}
    assert set(components) == {"sql", "sql.table", "sql.columns"}
    # "better at picking the table by this much, worse at the columns by that much"
    assert components["sql.table"]["diff"] > 0.1 and components["sql.table"]["significant"]
    assert components["sql.columns"]["diff"] < -0.1 and components["sql.columns"]["significant"]
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"alpha", "beta"} and groups["alpha"]["n"] == 100
    assert groups["alpha"]["diff"] > 0 and groups["alpha"]["significant"]
    assert groups["beta"]["diff"] < 0
    # half points: item scores are not binary, so the sign-flip test (exact or Monte-Carlo
    # with its standard error), never a normal approximation
    assert overall["test"] in ("sign-flip exact", "sign-flip monte-carlo")
    assert overall["p_value_se"] == 0.0 or overall["draws"] > 0
    for row in [overall, *report["groups"], *report["components"]]:
        # every interval agrees with its test, lies in [-1, 1] and names its method
        excludes_zero = not row["ci_low"] <= 0.0 <= row["ci_high"]
        assert row["significant"] == excludes_zero == (row["p_value"] < 0.05)
        assert -1.0 <= row["ci_low"] <= row["diff"] <= row["ci_high"] <= 1.0
        assert row["ci_method"] and row["level"] == 0.95
    fixed = {e["item_id"] for e in report["fixed"]}
    regressed = {e["item_id"] for e in report["regressed"]}
    scores_a, scores_b = ra.item_scores(), rb.item_scores()
    assert fixed == {i for i in scores_a if scores_b[i] > scores_a[i]}
    assert regressed == {i for i in scores_a if scores_b[i] < scores_a[i]}
    entry = report["regressed"][0]
    assert entry["a_output"] and entry["b_output"] and entry["a"] > entry["b"]


def test_compare_by_field_and_identical_runs(two_runs) -> None:
    store, a, _ = two_runs
    ra = load_results(store, a)
    same = compare_runs(ra, ra, by="category", n_boot=200)
    assert same["by"] == "category"
    assert same["overall"]["diff"] == 0 and same["overall"]["p_value"] == 1.0
    assert not same["regressed"] and not same["fixed"]
    assert {g["group"] for g in same["groups"]} == {"alpha", "beta"}


def test_compare_counts_items_scored_by_one_run_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "u.db")
    items = make_items(10)

    def sometimes_unscored(item, text, epoch):
        if item.id in ("q001", "q002"):
            return [Score.unscored("judge reply did not parse", name="exact")]
        ok = text == item.data["answer"]
        return [Score(value=float(ok), passed=ok, name="exact")]

    a = simulate_run(store, "u", StubModel("a", 0.5), items, seed=0)
    b = simulate_run(store, "u", StubModel("b", 0.5), items, seed=0, grade=sometimes_unscored)
    report = compare_runs(load_results(store, a.id), load_results(store, b.id), n_boot=100)
    # headline: every item is compared, B's two unscored items counting 0; they are listed
    assert report["n_common"] == 10
    assert report["scored_only_in_a"] == ["q001", "q002"]
    ra, rb = load_results(store, a.id), load_results(store, b.id)
    assert report["overall"]["mean_b"] == pytest.approx(
        sum(rb.item_scores(scored_only=True).values()) / 10)
    assert report["overall"]["mean_a"] == pytest.approx(sum(ra.item_scores().values()) / 10)


def test_matrix_ranks_runs_and_tests_against_best(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    items = make_items(150)
    for name, accuracy in [("weak", 0.5), ("best", 0.9), ("close", 0.88)]:
        simulate_run(store, "mx", StubModel(name, accuracy), items, seed=4)
    simulate_run(store, "mx", StubModel("best", 0.6), items, seed=4, variant="terse")
    results = [load_results(store, r) for r in store.list_runs("mx")]
    report = compare_matrix(results, n_boot=200)
    rows = {r["label"]: r for r in report["rows"]}
    assert set(rows) == {"weak", "best", "close", "best/terse"}
    assert report["rows"][0]["is_best"]
    top = report["rows"][0]["label"]
    assert top in ("best", "close")
    assert rows["weak"]["vs_best_significant"] and rows["best/terse"]["vs_best_significant"]
    for row in report["rows"]:
        assert 0.0 <= row["ci_low"] <= row["score"] <= row["ci_high"] <= 1.0
        assert row["ci_method"] == "wilson"  # one epoch of pass/fail items
        if not row["is_best"]:
            low, high = row["vs_best_ci"]
            assert row["vs_best_significant"] == (not low <= 0.0 <= high)
            assert row["vs_best_ci_method"] and row["vs_best_p_se"] == 0.0
    assert set(report["groups"]) == {"alpha", "beta"}


def test_cli_compare_two_runs_matrix_and_html(two_runs, tmp_path: Path, capsys) -> None:
    store, a, b = two_runs
    db = str(store.path)
    assert main(["compare", a, b, "--store", db, "--json", "--bootstrap", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_a"]["id"] == a and report["overall"]["n"] == 200
    html = tmp_path / "c.html"
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert main(["compare", a[:common + 1], b, "--store", db, "--html", str(html), "--limit", "3",
                 "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "Regressed" in out and "sql.columns" in out
    assert "<table>" in html.read_text() and "<script" not in html.read_text()
    assert main(["compare", "sql", "--store", db, "--bootstrap", "200",
                 "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "old" in out and "new" in out and "vs best" in out
    assert "<svg" in html.read_text()
    assert main(["compare", a, "nope", "--store", db]) == 2
    assert "no run matches" in capsys.readouterr().err


def test_compare_warns_when_the_runs_were_graded_by_different_graders(tmp_path, stub_server,
                                                                       capsys, monkeypatch):
    """Run A re-graded with an edited grader, run B not: the same eval hash, so nothing warned
    that a difference may be the graders' (the red team's compare said `warnings: []`)."""
    import json

    from posttrain.cli import main as cli_main
    from tests.conftest import write_eval

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"#{i} [[answer:{'paris' if i % 2 else 'Paris'}]]",
             "answer": "Paris"} for i in range(6)]
    eval_path = write_eval(tmp_path / "ev", rows)  # ilike
    store = str(tmp_path / "s.db")
    ids = []
    for _ in range(2):
        assert cli_main(["eval", str(eval_path), "--model", "openai:stub", "--store", store,
                         "--json", "--no-cache"]) == 0
        ids.append(json.loads(capsys.readouterr().out)["runs"][0]["run_id"])
    assert cli_main(["compare", *ids, "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    eval_path.write_text(eval_path.read_text().replace("ilike", "eq"))
    assert cli_main(["regrade", ids[0], "--store", store]) == 0
    capsys.readouterr()
    assert cli_main(["compare", *ids, "--store", store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["diff"] > 0  # B (ilike) above A (eq now)
    assert any("grades of exact were given by different graders" in w
               for w in report["warnings"])

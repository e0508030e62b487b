"""Audit on synthetic evals with stub models of known accuracy and planted bad items."""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.analysis.audit import audit, export_suspects, judge_components
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import load_all, select_runs
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.cli.analysis import main
from posttrain.runner.store import Store
from posttrain.types import Score

LADDER = [("frontier", 0.95), ("large", 0.9), ("medium", 0.85), ("small", 0.55), ("tiny", 0.35)]
MISGRADED = ["q004", "q011", "q023", "q038", "q052"]


def _ladder_store(path: Path, seed: int) -> Store:
    store = Store(path)
    items = make_items(60, misgraded=MISGRADED)
    for name, accuracy in LADDER:
        simulate_run(store, "health", StubModel(name, accuracy), items, seed=seed)
    return store


def test_audit_finds_planted_misgraded_items(tmp_path: Path) -> None:
    found, false_flags = 0, []
    for seed in range(5):
        store = _ladder_store(tmp_path / f"s{seed}.db", seed)
        report = audit(load_all(store, select_runs(store, "health")))
        agreeing = {s["item_id"] for s in report["suspects"]
                    if s["reason"] == "strong_models_agree_against_reference"}
        found += len(agreeing & set(MISGRADED))
        false_flags += sorted(agreeing - set(MISGRADED))
        for suspect in report["suspects"]:
            if suspect["item_id"] in MISGRADED:
                evidence = suspect["evidence"]
                assert suspect["reference"].startswith("mistaken")
                assert evidence["common_answer"] == f"answer {int(suspect['item_id'][1:])}"
                assert set(evidence["strong_models"]) == {"frontier", "large", "medium"}
    assert found >= 0.9 * 5 * len(MISGRADED)
    assert false_flags == []


def test_audit_saturation_numbers(tmp_path: Path) -> None:
    store = _ladder_store(tmp_path / "s.db", 1)
    results = load_all(store, select_runs(store, "health"))
    sat = audit(results)["saturation"]
    assert sat["best"]["label"] == "frontier"
    best_score = sum(results[0].item_scores().values()) / 60
    scores = {r.run.model: sum(r.item_scores().values()) / 60 for r in results}
    assert sat["best"]["score"] == max(scores.values())
    assert abs(sat["headroom"] - (1 - sat["best"]["score"])) < 1e-12
    # every planted item is failed by every model (no model gives the mistaken reference)
    assert set(MISGRADED) <= set(sat["all_fail"])
    assert sat["all_pass_share"] + sat["all_fail_share"] + sat["discriminating_share"] == 1.0
    assert best_score <= 1.0


def _judged(flaky: set[str]):
    def grade(item, text, epoch):
        ok = text == item.data["answer"]
        other = (not ok) if item.id in flaky else ok
        return [Score(value=float(ok), passed=ok, name="exact"),
                Score(value=float(ok), passed=ok, name="judge_a"),
                Score(value=float(other), passed=other, name="judge_b")]
    return grade


def test_audit_judges_disagree_and_grade_flips(tmp_path: Path) -> None:
    store = Store(tmp_path / "j.db")
    items = make_items(30)
    disputed = {"q003", "q017"}
    specs = [{"type": "string_check", "name": "exact"},
             {"type": "score_model", "name": "judge_a"},
             {"type": "label_model", "name": "judge_b"}]
    config = {"primary": "exact", "graders": specs}
    model = StubModel("m", 0.8)
    simulate_run(store, "judged", model, items, seed=3, grade=_judged(disputed),
                 extra_config=config)
    # a second run of the same model, identical answers, re-graded with flips on two items
    flipped = {"q005", "q020"}

    def regrade(item, text, epoch):
        ok = (text == item.data["answer"]) != (item.id in flipped)
        return _judged(disputed)(item, text, epoch)[1:] + [
            Score(value=float(ok), passed=ok, name="exact")]

    simulate_run(store, "judged", model, items, seed=3, grade=regrade, extra_config=config)
    latest = load_all(store, select_runs(store, "judged"))
    every = load_all(store, select_runs(store, "judged", latest_only=False))
    assert len(latest) == 1 and len(every) == 2
    judges = judge_components(specs)
    assert judges == ["judge_a", "judge_b"]
    report = audit(latest, all_runs=every, judges=judges)
    by_reason: dict[str, set[str]] = {}
    for suspect in report["suspects"]:
        by_reason.setdefault(suspect["reason"], set()).add(suspect["item_id"])
    assert by_reason.get("judges_disagree") == disputed
    assert by_reason.get("grade_flips_same_output") == flipped
    assert "strong_models_agree_against_reference" not in by_reason  # one model: no ranking


def test_audit_epochs_coin_flip_items(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    items = make_items(30)
    coin = {"q002", "q009", "q015"}
    simulate_run(store, "flaky", StubModel("m", 1.0), items, seed=2, epochs=8,
                 item_accuracy={i: 0.5 for i in coin})
    results = load_all(store, select_runs(store, "flaky"))
    report = audit(results)
    flagged = {s["item_id"] for s in report["suspects"] if s["reason"] == "epochs_disagree"}
    rates = {}
    for item_id, samples in results[0].by_item().items():
        rates[item_id] = sum(bool(s.passed) for s in samples) / len(samples)
    expected = {i for i, r in rates.items() if 0.25 <= r <= 0.75}
    assert flagged == expected
    assert flagged <= coin and len(flagged) >= 2


def test_judge_components_inside_multi() -> None:
    specs = [{"type": "multi", "name": "combo", "graders": {
        "tone": {"type": "score_model"}, "exact": {"type": "string_check"},
        "facts": {"type": "label_model"}}}]
    assert judge_components(specs) == ["combo.tone", "combo.facts"]


def test_export_and_cli_audit(tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.db"
    _ladder_store(db, 0).close()
    eval_file = tmp_path / "health.yaml"
    eval_file.write_text("name: health\nitems: [{id: a}]\ngraders: [{type: string_check, "
                         "name: exact, input: x, reference: y, operation: eq}]\n")
    export = tmp_path / "suspects.jsonl"
    code = main(["audit", str(eval_file), "--store", str(db), "--json", "--export", str(export)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"saturation", "suspects"}
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == len(report["suspects"]) > 0
    assert {"item_id", "reason", "evidence", "item"} <= set(lines[0])
    assert lines[0]["item"]["answer"].startswith("mistaken")
    # terminal and HTML
    html = tmp_path / "audit.html"
    assert main(["audit", "health", "--store", str(db), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "suspect items" in out and "q004" in out
    # the count is of items (an item flagged for two reasons is one suspect item)
    distinct = len({s["item_id"] for s in report["suspects"]})
    assert f"suspect items: {distinct} ({len(report['suspects'])} findings: " in out, out
    assert "<table>" in html.read_text()
    # direct export API
    store = Store(db)
    results = load_all(store, select_runs(store, "health"))
    assert export_suspects(audit(results), results, str(tmp_path / "x.jsonl")) >= 4
    assert load_results(store, "latest").run.eval_name == "health"


def test_cli_audit_errors(tmp_path: Path, capsys) -> None:
    assert main(["audit", "health", "--store", str(tmp_path / "none.db")]) == 2
    assert "no store" in capsys.readouterr().err
    _ladder_store(tmp_path / "s.db", 0).close()
    assert main(["audit", "other", "--store", str(tmp_path / "s.db")]) == 2
    assert "no stored runs" in capsys.readouterr().err


def test_audit_inverted_difficulty(tmp_path: Path) -> None:
    store = Store(tmp_path / "i.db")
    items = make_items(60)
    inverted = {"q007", "q030"}
    for name, accuracy in LADDER:
        strong = accuracy > 0.8
        planted = {i: (0.0 if strong else 1.0) for i in inverted}
        simulate_run(store, "inv", StubModel(name, accuracy), items, seed=9,
                     item_accuracy=planted)
    # "small" scores about 0.6 here; the floor that makes only the three >0.8 models strong:
    report = audit(load_all(store, select_runs(store, "inv")), strong_floor=0.75)
    flagged = {s["item_id"] for s in report["suspects"] if s["reason"] == "inverted_difficulty"}
    assert flagged == inverted
    suspect = next(s for s in report["suspects"] if s["item_id"] == "q007")
    assert suspect["evidence"]["weak_pass_rate"] == 1.0


def test_weak_runs_agreeing_never_make_a_reference_suspect(tmp_path: Path) -> None:
    """Two weak models sharing a misconception say nothing about the reference."""
    store = Store(tmp_path / "w.db")
    items = make_items(80)
    for name, accuracy in [("small", 0.4), ("tiny", 0.3)]:
        simulate_run(store, "weak", StubModel(name, accuracy, distractor=1.0), items, seed=3)
    report = audit(load_all(store, select_runs(store, "weak")))
    assert report["suspect_counts"]["strong_models_agree_against_reference"] == 0
    assert report["strong"]["models"] == [] and "fewer than two" in report["strong"]["note"]


def test_majority_of_strong_models_with_their_own_mistakes(tmp_path: Path) -> None:
    """Planted misgraded items, strong models that also err on some of them, weak models that
    agree on misconceptions: recall >= 0.9 at precision >= 0.7, agreement shown."""
    from posttrain.analysis.synthetic import AUDIT_STRONG, AUDIT_WEAK, audit_scenario

    true_pos = planted_total = flagged_total = 0
    for seed in range(2):
        planted, flagged = audit_scenario(tmp_path, seed, 200, AUDIT_STRONG + AUDIT_WEAK)
        true_pos += len(planted & flagged)
        planted_total += len(planted)
        flagged_total += len(flagged)
    assert true_pos / planted_total >= 0.9
    assert true_pos / flagged_total >= 0.7
    store = Store(tmp_path / "audit-0-6.db")
    report = audit(load_all(store, select_runs(store, "audit")))
    agreements = [s["evidence"]["agreement"] for s in report["suspects"]
                  if s["reason"] == "strong_models_agree_against_reference"]
    assert agreements and all(a.endswith("of 3 strong models") for a in agreements)
    assert any(a.startswith("2 of") for a in agreements)  # a majority, not only unanimity

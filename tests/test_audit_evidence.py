"""Every audit finding shows its evidence: a reason whose evidence the views render as an empty
cell reads as a claim with nothing behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.analysis import views
from posttrain.analysis.audit import REASONS, audit
from posttrain.analysis.cells import load_cells
from posttrain.analysis.selection import load_all, select_runs
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.analysis.views import _suspect_rows, audit_html, audit_text
from posttrain.runner.store import Store
from posttrain.types import Score
from tests.test_analysis_audit import LADDER, _judged, _ladder_store

#: what each reason's evidence cell says, at least
SHOWS = {
    "strong_models_agree_against_reference": "strong models: answer",
    "inverted_difficulty": "weaker pass 100%",
    "judges_disagree": "judge_a",
    "grade_flips_same_output": "#0 ",
    "grade_flips_on_regrade": "exact 1 -> 0 (m)",
    "epochs_disagree": "multi-epoch runs: m",
}


def _reports(tmp_path: Path) -> list[dict[str, Any]]:
    """Audits of stores that hold every kind of finding."""
    reports = []
    store = _ladder_store(tmp_path / "ladder.db", 0)  # strong models agree
    reports.append(audit(load_all(store, select_runs(store, "health"))))
    store = Store(tmp_path / "inv.db")
    items = make_items(60)
    for name, accuracy in LADDER:
        planted = {i: (0.0 if accuracy > 0.8 else 1.0) for i in ("q007", "q030")}
        simulate_run(store, "inv", StubModel(name, accuracy), items, seed=9,
                     item_accuracy=planted)
    reports.append(audit(load_all(store, select_runs(store, "inv")), strong_floor=0.75))
    store = Store(tmp_path / "j.db")  # judges disagree; an identical answer graded twice
    items = make_items(30)
    config = {"primary": "exact", "graders": [{"type": "string_check", "name": "exact"},
                                              {"type": "score_model", "name": "judge_a"},
                                              {"type": "label_model", "name": "judge_b"}]}

    def flipped(item: Any, text: str, epoch: int) -> list[Score]:
        ok = (text == item.data["answer"]) != (item.id == "q005")
        return _judged({"q003"})(item, text, epoch)[1:] + [
            Score(value=float(ok), passed=ok, name="exact")]

    for grade in (_judged({"q003"}), flipped):
        simulate_run(store, "judged", StubModel("judged", 0.8), items, seed=3, grade=grade,
                     extra_config=config)
    runs = select_runs(store, "judged", latest_only=False)
    reports.append(audit(load_all(store, runs[:1]), all_runs=load_all(store, runs),
                         judges=["judge_a", "judge_b"]))
    store = Store(tmp_path / "e.db")  # epochs disagree; a grade that flipped on a regrade
    items = make_items(30)
    simulate_run(store, "flaky", StubModel("m", 1.0), items, seed=2, epochs=8,
                 item_accuracy={"q002": 0.5, "q009": 0.5})
    run = store.list_runs("flaky")[0]
    store.replace_scores(run.id, "q020", 0, [Score(value=0.0, passed=False, name="exact")],
                         history=True, grader_changed={"exact": 0})
    runs = store.list_runs("flaky")
    reports.append(audit(load_all(store, runs)))
    assert audit(load_cells(store, runs)) == reports[-1]
    return reports


def test_every_finding_shows_its_evidence(tmp_path: Path) -> None:
    assert set(REASONS) == set(SHOWS)  # a new reason: say how its evidence reads
    seen: set[str] = set()
    for report in _reports(tmp_path):
        rows = _suspect_rows(report, None)
        assert len(rows) == len(report["suspects"])
        for (item, reason, _reference, evidence), suspect in zip(rows, report["suspects"],
                                                                  strict=True):
            assert (item, reason) == (suspect["item_id"], suspect["reason"])
            seen.add(reason)
            assert evidence.strip() and "None" not in evidence, (item, reason, evidence)
            assert SHOWS[reason] in evidence, (item, reason, evidence)
        text = audit_text(report)
        assert all(row[3][:20] in text for row in rows)
        assert "<table" in audit_html(report)
    assert seen == set(REASONS)
    assert set(views.EVIDENCE) == set(REASONS)  # each reason rendered its own way

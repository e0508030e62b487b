"""`posttrain regrade` records whether the grader that gave an old grade is the one that gave the
new; `posttrain audit` calls a re-grade's changes suspect only when neither the item nor the
grader changed, and never compares grades given by two specs of a grader."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from posttrain.analysis.audit import audit
from posttrain.analysis.cells import load_cells
from posttrain.analysis.selection import load_all
from posttrain.cli import main
from posttrain.graders.base import Grader
from posttrain.graders.registry import require
from posttrain.plugins import KINDS
from posttrain.runner.store import Store
from posttrain.types import Score
from tests.conftest import write_eval
from tests.test_store_read_only import _lock

#: the items the ``switch`` grader fails (its verdict flipped by the test between re-grades)
FLIPPED: set[str] = set()


class Switch(Grader):
    """Passes every answer but those of the items in ``FLIPPED``: a grader whose spec is the
    same while its verdict changes (a fragile grader)."""

    type = "switch"

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        ok = item["id"] not in FLIPPED
        return Score(value=float(ok), passed=ok, name=self.name)


class AsyncSwitch(Switch):
    """The same, graded as a judge is (awaited: re-graded on the runner's path)."""

    type = "async_switch"
    is_async = True

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        return Switch.grade(self, sample, item)


@pytest.fixture
def switch_graders(monkeypatch):
    FLIPPED.clear()
    for kind, cls in (("switch", Switch), ("async_switch", AsyncSwitch)):
        def build(spec: dict[str, Any], context: Any, cls: type[Switch] = cls) -> Switch:
            require(spec, "version", str, context, default="")  # only in the spec
            return cls(require(spec, "name", str, context, default="switch"), None)

        monkeypatch.setitem(KINDS["grader"].parts, kind, build)
        monkeypatch.setitem(KINDS["grader"].meta, kind, {})
    yield
    FLIPPED.clear()


EXACT = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
         'reference: "{{item.answer}}", operation: eq}\n')


def _loose(operation: str) -> str:
    return ('  - {type: string_check, name: loose, input: "{{sample.output_text}}", '
            f'reference: "{{{{item.answer}}}}", operation: {operation}}}\n')


def _rows(n: int) -> list[dict[str, Any]]:
    """Items answered "Paris" (even) or "paris" (odd) against the reference "paris"."""
    return [{"id": f"q{i}", "question": f"q{i} [[answer:{'Paris' if i % 2 == 0 else 'paris'}]]",
             "answer": "paris"} for i in range(n)]


def _audit(eval_path: Path, store: str, capsys) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["audit", str(eval_path), "--store", store, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _reasons(report: dict[str, Any], reason: str) -> set[str]:
    return {s["item_id"] for s in report["suspects"] if s["reason"] == reason}


def _history(store: str, run_id: str) -> list[tuple[str, str, int | None]]:
    with Store(store) as db:
        return [(row["item_id"], row["grader"], row["grader_changed"])
                for row in db.score_history(run_id)]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "answer-by-answer"])
def test_an_edited_grader_is_not_a_fragile_grader(tmp_path, stub_server, capsys, monkeypatch,
                                                  bulk):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    if not bulk:
        monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
    eval_path = write_eval(tmp_path / "ev", _rows(10), graders=EXACT + _loose("ilike"))
    store = str(tmp_path / "s.db")
    for model in ("openai:stub", "openai:stub-b"):  # two runs, the same answers
        assert main(["eval", str(eval_path), "--model", model, "--store", store]) == 0
    with Store(store) as db:
        first = db.resolve_run("latest").id
    # `loose` edited (case-sensitive now), and one run re-graded with it
    write_eval(tmp_path / "ev", _rows(10), graders=EXACT + _loose("like"))
    assert main(["regrade", first, "--store", store]) == 0
    history = _history(store, first)
    assert sorted(history) == [(f"q{i}", "loose", 1) for i in (0, 2, 4, 6, 8)]
    report = _audit(eval_path, store, capsys)
    assert not _reasons(report, "grade_flips_on_regrade")
    assert not _reasons(report, "grade_flips_same_output")
    assert [(c["grader"], c["cause"], c["grades"], c["items"])
            for c in report["regrade_changes"]] == [("loose", "grader edited", 5, 5)]
    with Store(store) as db:  # reading every answer finds what the kept facts find
        runs = db.list_runs("stubby")
        assert audit(load_all(db, runs)) == audit(load_cells(db, runs))
    capsys.readouterr()
    assert main(["audit", str(eval_path), "--store", store]) == 0
    text = capsys.readouterr().out
    assert "grade_flips" not in text and "grader edited" in text


@pytest.mark.parametrize("kind", ["switch", "async_switch"])
def test_an_unchanged_grader_that_changes_its_verdict_is_reported(
        tmp_path, stub_server, capsys, monkeypatch, switch_graders, kind):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = _rows(6)

    def graders(version: str) -> str:
        return EXACT + f"  - {{type: {kind}, name: switch, version: {version}}}\n"

    eval_path = write_eval(tmp_path / "ev", rows, graders=graders("v1"))
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    with Store(store) as db:
        run_id = db.resolve_run("latest").id
    FLIPPED.update({"q1", "q2"})  # the same grader, another verdict
    assert main(["regrade", run_id, "--store", store]) == 0
    assert sorted(_history(store, run_id)) == [("q1", "switch", 0), ("q2", "switch", 0)]
    report = _audit(eval_path, store, capsys)
    assert _reasons(report, "grade_flips_on_regrade") == {"q1", "q2"}
    capsys.readouterr()
    assert main(["audit", str(eval_path), "--store", store]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("q") and "grade_flips_on_regrade" in line]
    assert len(lines) == 2 and all("switch 1 -> 0 (openai:stub)" in line for line in lines), lines
    # the grader edited (and its verdicts back): not suspect; then, with the edited spec
    # unchanged, another verdict flips: suspect (compared with the spec the run now records)
    write_eval(tmp_path / "ev", rows, graders=graders("v2"))
    FLIPPED.clear()
    assert main(["regrade", run_id, "--store", store]) == 0
    FLIPPED.add("q3")
    assert main(["regrade", run_id, "--store", store]) == 0
    assert sorted(_history(store, run_id)) == [
        ("q1", "switch", 0), ("q1", "switch", 1), ("q2", "switch", 0), ("q2", "switch", 1),
        ("q3", "switch", 0)]
    report = _audit(eval_path, store, capsys)
    # q1 and q2 flipped once with the grader unchanged (each change shown as it happened:
    # the grade before and the one that replaced it, not the one now)
    assert _reasons(report, "grade_flips_on_regrade") == {"q1", "q2", "q3"}
    assert [(c["grader"], c["cause"], c["grades"]) for c in report["regrade_changes"]] == [
        ("switch", "grader edited", 2)]
    evidence = {s["item_id"]: s["evidence"]["changes"] for s in report["suspects"]}
    assert {item: [(c["before"], c["after"]) for c in changes]
            for item, changes in evidence.items()} == {
        "q1": [(1.0, 0.0)], "q2": [(1.0, 0.0)], "q3": [(1.0, 0.0)]}
    with Store(store) as db:  # reading every answer finds what the SQL finds
        runs = db.list_runs("stubby")
        assert audit(load_all(db, runs)) == audit(load_cells(db, runs))


def _legacy_store(tmp_path: Path, stub_server, monkeypatch) -> tuple[Path, str, str]:
    """Two runs, one re-graded after its grader was edited, as an older version left them:
    ``score_history`` without ``grader_changed``, runs without ``graded_with``."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = write_eval(tmp_path / "ev", _rows(6), graders=EXACT + _loose("ilike"))
    store = str(tmp_path / "db" / "s.db")
    for model in ("openai:stub", "openai:stub-b"):
        assert main(["eval", str(eval_path), "--model", model, "--store", store]) == 0
    write_eval(tmp_path / "ev", _rows(6), graders=EXACT + _loose("like"))
    with Store(store) as db:
        run_id = db.resolve_run("latest").id
    assert main(["regrade", run_id, "--store", store]) == 0
    conn = sqlite3.connect(store)
    conn.execute("ALTER TABLE score_history DROP COLUMN grader_changed")
    for rid, config in conn.execute("SELECT id, config FROM runs").fetchall():
        config = json.loads(config)
        config.pop("graded_with", None)
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), rid))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return eval_path, store, run_id


#: what the audit of :func:`_legacy_store` lists apart: the changes of the re-grade, not known
#: to be a fragile grader's
LEGACY_CHANGES = [("loose", "grader spec not recorded", 3, 3)]


def _no_regrade_suspects(report: dict[str, Any]) -> None:
    assert not _reasons(report, "grade_flips_on_regrade")
    assert not _reasons(report, "grade_flips_same_output")
    assert [(c["grader"], c["cause"], c["grades"], c["items"])
            for c in report["regrade_changes"]] == LEGACY_CHANGES


def test_a_store_without_the_column_opens_and_audits(tmp_path, stub_server, capsys,
                                                     monkeypatch):
    eval_path, store, run_id = _legacy_store(tmp_path, stub_server, monkeypatch)
    _no_regrade_suspects(_audit(eval_path, store, capsys))
    with Store(store) as db:  # opened to write: the column is added, old rows not known
        assert db.history_records_grader()
        assert {row["grader_changed"] for row in db.score_history(run_id)} == {None}
    _no_regrade_suspects(_audit(eval_path, store, capsys))


def test_a_read_only_store_without_the_column_audits(tmp_path, stub_server, capsys,
                                                     monkeypatch):
    eval_path, store, _run_id = _legacy_store(tmp_path, stub_server, monkeypatch)
    for extra in ("-wal", "-shm"):
        Path(store + extra).unlink(missing_ok=True)
    with contextmanager(_lock)([Path(store).parent, Path(store)]):  # read-only: not migrated
        with Store(store, reading=True) as db:
            assert db.read_only and not db.history_records_grader()
        _no_regrade_suspects(_audit(eval_path, store, capsys))


def test_an_imports_grades_graded_here_are_not_a_fragile_grader(tmp_path, capsys) -> None:
    """An OpenAI import keeps OpenAI's grades in the history and grades the answers here: a
    grade posttrain's grader gives otherwise is another grader's, listed apart."""
    from tests.test_interop_openai_evals import DATA, OUTPUTS, _import

    rows = [json.loads(line) for line in OUTPUTS[0].read_text().splitlines()]
    toronto = next(r for r in rows if r["sample"]["output"][0]["content"] == "Toronto")
    exact = next(r for r in toronto["results"] if r["name"].startswith("exact"))
    exact.update(score=1.0, passed=True)  # OpenAI said pass: posttrain's grade differs
    changed = tmp_path / "items.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _import(tmp_path, output_items=[changed, OUTPUTS[1]])
    store = str(tmp_path / "s.db")
    with Store(store) as db:
        runs = db.list_runs()
        assert {row["grader_changed"] for run in runs for row in db.score_history(run.id)} \
            == {2}  # grader_record.IMPORTED
        eval_name = runs[0].eval_name
    report = _audit(Path(eval_name), store, capsys)
    assert not _reasons(report, "grade_flips_on_regrade")
    # each disagreement with OpenAI's grades (a pass/fail that differs) is among them (and
    # grades whose value alone differs)
    found = {(run["run_id"], d["criterion"]) for run in result.runs
             for d in run["disagreements"]}
    assert found and found <= {(c["id"], c["grader"]) for c in report["regrade_changes"]}
    assert {c["cause"] for c in report["regrade_changes"]} == {
        "imported grades (OpenAI's grader) graded here"}
    assert DATA.exists()
    # then a grader edited here: its changes are an edited grader's, not the import's
    with Store(store) as db:
        run = db.list_runs()[0]
    eval_file = Path(run.eval_path)
    eval_file.write_text(eval_file.read_text().replace("operation: eq", "operation: ne", 1))
    assert main(["regrade", run.id, "--store", store]) == 0
    capsys.readouterr()
    report = _audit(Path(eval_name), store, capsys)
    causes = {(c["id"], c["grader"], c["cause"]) for c in report["regrade_changes"]}
    assert (run.id, "exact", "grader edited") in causes
    assert not _reasons(report, "grade_flips_on_regrade")


def test_a_python_graders_edited_source_file_is_an_edited_grader(tmp_path, stub_server, capsys,
                                                                 monkeypatch) -> None:
    """The spec names the file, the grades depend on its code: an edit of the file with the spec
    unchanged is the grader's edit (history 1, "grader edited"), not a fragile grader."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"id": f"q{i}", "question": f"capital #{i}? [[answer:Paris]]", "answer": "Paris"}
            for i in range(4)]
    folder = tmp_path / "ev"
    code = folder / "check.py"
    folder.mkdir()
    code.write_text("def grade(sample, item):\n    return 1.0\n")
    eval_path = write_eval(folder, rows, graders=(
        "  - {type: python, name: check, source_file: check.py, pass_threshold: 0.5}\n"))
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store,
                 "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    code.write_text("def grade(sample, item):\n    return 0.0\n")
    assert main(["regrade", run_id, "--store", store]) == 0
    assert {flag for _item, _grader, flag in _history(store, run_id)} == {1}
    report = _audit(eval_path, store, capsys)
    assert not _reasons(report, "grade_flips_on_regrade")
    assert {(c["grader"], c["cause"]) for c in report["regrade_changes"]} == {
        ("check", "grader edited")}

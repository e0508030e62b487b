"""`posttrain regrade`: stored answers graded again with no requests; flips reach the audit."""

from __future__ import annotations

import json

from posttrain.cli import main
from posttrain.runner.store import Store
from tests.conftest import write_eval

COIN = ('  - {type: python, name: coin, source: "import random\\ndef grade(sample, item):\\n'
        '    return float(random.random() < 0.5)\\n"}\n')


def test_regrade_keeps_history_and_audit_flags_flips(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(30)]
    eval_path = write_eval(tmp_path / "ev", rows, graders=COIN)
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    capsys.readouterr()
    sent = stub_server.stats()["total_attempts"]
    assert main(["regrade", "latest", "--store", store, "--json"]) == 0
    regraded = json.loads(capsys.readouterr().out)
    assert regraded["runs"][0]["scored"] == 30 and regraded["runs"][0]["requests"] == 0
    assert stub_server.stats()["total_attempts"] == sent  # no new requests
    db = Store(store)
    run = db.resolve_run("latest")
    history = db.score_history(run.id)
    assert not any(row["item_changed"] for row in history)
    now = {row["item_id"]: row["value"] for row in db.scores(run.id)}
    # only the grades that changed keep their old value (an answer graded as stored is not
    # written again): each history row is a flip
    assert all(now[row["item_id"]] != row["value"] for row in history)
    assert main(["audit", str(eval_path), "--store", store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    flipped = {s["item_id"] for s in report["suspects"] if s["reason"] == "grade_flips_on_regrade"}
    assert 3 <= len(flipped) <= 27  # a coin: about half of the 30 grades flip
    assert flipped == {row["item_id"] for row in history}


def test_regrade_after_an_edited_item_is_not_a_flip(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(4)]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    capsys.readouterr()
    rows[0]["answer"] = "y"  # a reviewer fixes a reference
    with (tmp_path / "ev" / "data.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    assert main(["regrade", "latest", "--store", store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["score"] == 0.75
    db = Store(store)
    history = {row["item_id"]: row["item_changed"] for row in db.score_history(
        db.resolve_run("latest").id)}
    assert history == {"q0": 1}  # the others were graded as stored: no history row
    assert main(["audit", str(eval_path), "--store", store, "--json"]) == 0
    suspects = json.loads(capsys.readouterr().out)["suspects"]
    assert not [s for s in suspects if s["reason"] == "grade_flips_on_regrade"]


def test_regrading_unchanged_grades_keeps_no_history_and_writes_nothing(
        tmp_path, stub_server, capsys, monkeypatch):
    """Regrading the same answers with the same graders, in bulk or answer by answer (the
    judges' path), grew `score_history` by the run's grades each time (20k, 40k, 60k rows after
    three regrades): an answer graded as stored now keeps no history row and is not written."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(12)]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    for bulk in (True, False, True):
        if not bulk:
            monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
        else:
            monkeypatch.undo()
            monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
        with Store(store) as db:
            revision = db.run_stamp(db.resolve_run("latest"))
        assert main(["regrade", "latest", "--store", store, "--json"]) == 0
        capsys.readouterr()
        with Store(store) as db:
            run = db.resolve_run("latest")
            assert db.score_history(run.id) == []
            assert db.run_stamp(run) == revision  # nothing written: kept summaries still hold
    # a changed grade keeps its old one, and only that answer's
    rows[3]["answer"] = "y"
    write_eval(tmp_path / "ev", rows)
    assert main(["regrade", "latest", "--store", store, "--json"]) == 0
    with Store(store) as db:
        history = db.score_history(db.resolve_run("latest").id)
        assert [(r["item_id"], r["value"], r["item_changed"]) for r in history] == [("q3", 1.0, 1)]


def test_editing_one_grader_keeps_history_only_for_that_graders_changed_grades(
        tmp_path, stub_server, capsys, monkeypatch):
    """Two graders, one edited: only the edited grader's changed grades keep their old value
    (the other grader's unchanged grades of the same answers were kept too), in bulk and
    answer by answer."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:Paris]]", "answer": "paris"}
            for i in range(10)]
    both = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
            'reference: "{{item.answer}}", operation: OP}\n'
            '  - {type: string_check, name: loose, input: "{{sample.output_text}}", '
            'reference: "{{item.answer}}", operation: ilike}\n')
    for bulk in (True, False):
        folder = tmp_path / ("bulk" if bulk else "one")
        eval_path = write_eval(folder, rows, graders=both.replace("OP", "eq"))
        store = str(folder / "s.db")
        assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
        write_eval(folder, rows, graders=both.replace("OP", "ilike"))  # exact: 0 -> 1
        if not bulk:
            monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
        assert main(["regrade", "latest", "--store", store, "--json"]) == 0
        capsys.readouterr()
        with Store(store) as db:
            history = db.score_history(db.resolve_run("latest").id)
            assert sorted((r["grader"], r["value"]) for r in history) == [("exact", 0.0)] * 10

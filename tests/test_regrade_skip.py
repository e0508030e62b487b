"""`posttrain regrade` grades again only what could change: with deterministic graders recorded
as those that made the run's grades (``graded_with``: spec, reasoning mode, response_format,
posttrain version), only the answers of edited items (and answers missing a grade) are graded;
the store ends exactly as a full regrade leaves it."""

from __future__ import annotations

import gc
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from posttrain.cli import main as posttrain_main
from posttrain.runner import regrade_fast
from posttrain.runner.executor import grade_all
from posttrain.runner.regrade import regrade_run
from posttrain.runner.store import Store
from tests.conftest import live_eval_on, regrade_helper_on, write_eval

TWO = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
       'reference: "{{item.answer}}", operation: eq}\n'
       '  - {type: string_check, name: loose, input: "{{sample.output_text}}", '
       'reference: "{{item.answer}}", operation: ilike}\n')
N = 30


def _rows(answers: dict[int, str] | None = None) -> list[dict]:
    answers = answers or {}
    return [{"id": f"q{i}", "question": f"capital #{i}? [[answer:{'Paris' if i % 4 else 'Rome'}]]",
             "answer": answers.get(i, "Paris")} for i in range(N)]


@pytest.fixture()
def evaluated(tmp_path: Path, stub_server, capsys, monkeypatch) -> tuple[Path, Path, str]:
    """A run the runner made (2 epochs, two string graders), its eval and store."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = write_eval(tmp_path / "ev", _rows(), graders=TWO)
    store = tmp_path / "s.db"
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--epochs", "2",
                           "--store", str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    return eval_path, store, run_id


def _graded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The item of every answer the bulk regrade grades, in order."""
    seen: list[str] = []
    original = regrade_fast._grader

    def spy(*args):
        grade = original(*args)

        def counted(answer):
            seen.append(answer[0])
            return grade(answer)
        return counted

    monkeypatch.setattr(regrade_fast, "_grader", spy)
    monkeypatch.setattr("posttrain.runner.regrade_split.usable", lambda *a: False)
    return seen


def _dump(store: Path, run_id: str) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT item_id, epoch, grader, value, passed, status, explanation "
                            "FROM scores WHERE run_id = ? ORDER BY 1, 2, 3", (run_id,)).fetchall()


def test_nothing_changed_grades_nothing_and_an_edited_item_only_its_answers(
        evaluated, monkeypatch, capsys) -> None:
    eval_path, store, run_id = evaluated
    graded = _graded(monkeypatch)
    before = _dump(store, run_id)
    assert posttrain_main(["regrade", run_id, "--store", str(store), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["runs"][0]
    assert graded == [] and out["regrade"]["kept"] == 2 * N
    assert _dump(store, run_id) == before
    # a reviewer fixes one reference: only its two answers are graded, and their grades move
    write_eval(eval_path.parent, _rows({3: "Paris!"}), graders=TWO)
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert graded == ["q3", "q3"]
    assert f"re-graded 2 of {2 * N} answers" in err and f"{2 * N - 2} kept" in err
    after = _dump(store, run_id)
    assert [r for r in after if r[0] != "q3"] == [r for r in before if r[0] != "q3"]
    assert [r[3] for r in after if r[0] == "q3" and r[2] == "exact"] == [0.0, 0.0]
    # the same store, graded again in full, holds the same grades
    graded.clear()
    assert posttrain_main(["regrade", run_id, "--store", str(store), "--full"]) == 0
    assert len(graded) == 2 * N and _dump(store, run_id) == after


def test_an_edited_grader_grades_every_answer_and_then_stands(evaluated, monkeypatch) -> None:
    eval_path, store, run_id = evaluated
    graded = _graded(monkeypatch)
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    with Store(store) as opened:
        assert regrade_run(opened, run_id) == 2 * N
    assert len(graded) == 2 * N
    graded.clear()
    with Store(store) as opened:  # the new grader's signature is the run's now
        regrade_run(opened, run_id)
    assert graded == []
    write_eval(eval_path.parent, _rows(), graders=TWO)  # and back: every answer again
    with Store(store) as opened:
        regrade_run(opened, run_id)
    assert len(graded) == 2 * N


def _grader_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(grader, answer text) of every string_check grade given, in order."""
    from posttrain.graders.string_check import StringCheckGrader

    calls: list[tuple[str, str]] = []
    original = StringCheckGrader.grade

    def spy(self, sample, item):
        calls.append((self.name, item["id"]))
        return original(self, sample, item)

    monkeypatch.setattr(StringCheckGrader, "grade", spy)
    monkeypatch.setattr("posttrain.runner.regrade_split.usable", lambda *a: False)
    return calls


def _history(store: Path, run_id: str) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT item_id, epoch, grader, value, passed, status, "
                            "item_changed, grader_changed FROM score_history WHERE run_id = ? "
                            "ORDER BY 1, 2, 3", (run_id,)).fetchall()


def test_only_the_edited_grader_grades_the_unchanged_items(evaluated, tmp_path, monkeypatch,
                                                           capsys) -> None:
    """One grader edited, one reference edited: the edited grader grades every answer, the
    unchanged grader only the edited item's; the store (grades, history, kept facts and
    report) ends as a full regrade leaves it."""
    eval_path, store, run_id = evaluated
    write_eval(eval_path.parent, _rows({3: "paris"}), graders=TWO.replace("ilike", "like"))
    default, full = _two_stores(tmp_path, store)
    calls = _grader_calls(monkeypatch)
    assert posttrain_main(["regrade", run_id, "--store", str(default), "--json"]) == 0
    out = capsys.readouterr()
    assert sorted(item for name, item in calls if name == "exact") == ["q3", "q3"]
    assert len([1 for name, _item in calls if name == "loose"]) == 2 * N
    regrade = json.loads(out.out)["runs"][0]["regrade"]
    assert regrade["kept"] == 0 and regrade["kept_grades"] == 2 * N - 2
    assert regrade["kept_graders"] == ["exact"] and regrade["grades"] == 2 * N + 2
    assert f"{2 * N - 2} grades of exact kept" in out.err
    calls.clear()
    assert posttrain_main(["regrade", run_id, "--store", str(full), "--full", "--json"]) == 0
    full_report = json.loads(capsys.readouterr().out)["runs"][0]
    assert len(calls) == 4 * N
    assert _dump(default, run_id) == _dump(full, run_id)
    assert _history(default, run_id) == _history(full, run_id)
    # q3's new reference "paris": `like` is case-sensitive (the old `ilike` matched)
    assert ("q3", 0, "loose", 1.0, 1, "scored", 1, 1) in _history(default, run_id)
    assert posttrain_main(["report", run_id, "--store", str(default), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["runs"][0]
    for key in ("scores", "by_tag", "n"):
        assert report.get(key) == full_report.get(key), key
    calls.clear()  # recorded now: nothing is graded again
    assert posttrain_main(["regrade", run_id, "--store", str(default)]) == 0
    assert calls == []


@pytest.mark.parametrize("edited", ["two", "most"])
@pytest.mark.parametrize("helper_fails", [False, True], ids=["helper", "helper-fails"])
def test_a_helper_grading_the_edited_grader_ahead_stores_what_a_full_regrade_does(
        evaluated, tmp_path, monkeypatch, capsys, helper_fails, edited) -> None:
    """One grader edited, two references edited (one item's answers graded here, one's by the
    forked helper, which starts on the edited grader before the items are compared): the
    helper's answers of an edited item get the unchanged grader's grades too; the store ends
    as a full regrade leaves it, and as it does when the helper dies. With most references
    edited, the helper is started again grading with every grader (else this process would
    grade most of its answers a second time): the same store."""
    from posttrain.runner import regrade_split

    if not regrade_split.usable([], 10**9):
        pytest.skip("no fork or one core")
    eval_path, store, run_id = evaluated
    # answers in item-id order: q0, q1, q10..q19 first (24 of 60), the helper from the 25th
    changed = [3, 10] if edited == "two" else [i for i in range(N) if i not in (0, 1)]
    write_eval(eval_path.parent, _rows(dict.fromkeys(changed, "paris")),
               graders=TWO.replace("ilike", "like"))
    started: list[int] = []
    original_init = regrade_split.Helper.__init__

    def counted(self, grade, answers, start):
        started.append(start)
        original_init(self, grade, answers, start)

    monkeypatch.setattr(regrade_split.Helper, "__init__", counted)
    default, full = _two_stores(tmp_path, store)
    results = regrade_helper_on(monkeypatch, fails=helper_fails)
    assert posttrain_main(["regrade", run_id, "--store", str(default), "--json"]) == 0
    regrade = json.loads(capsys.readouterr().out)["runs"][0]["regrade"]
    assert results == [not helper_fails]
    assert len(started) == (1 if edited == "two" else 2)
    kept = 2 * N - 2 * len(changed)
    assert regrade["kept_grades"] == kept and regrade["grades"] == 2 * N + 2 * len(changed)
    assert posttrain_main(["regrade", run_id, "--store", str(full), "--full", "--json"]) == 0
    full_report = json.loads(capsys.readouterr().out)["runs"][0]
    assert _dump(default, run_id) == _dump(full, run_id)
    assert _history(default, run_id) == _history(full, run_id)
    # q3's and q10's new reference "paris": `eq` no longer matches "Paris" (q3's answer)
    assert ("q3", 0, "exact", 1.0, 1, "scored", 1, 0) in _history(default, run_id)
    assert ("q10", 1, "exact", 1.0, 1, "scored", 1, 0) in _history(default, run_id)
    assert posttrain_main(["report", run_id, "--store", str(default), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["runs"][0]
    for key in ("scores", "by_tag", "n", "components"):
        assert report.get(key) == full_report.get(key), key


@pytest.mark.parametrize("path", ["bulk", "batches"])
def test_a_regrade_that_dies_leaves_the_next_one_grading_everything(evaluated, monkeypatch,
                                                                    path) -> None:
    """Graders edited, the regrade dies part-way (the answer-by-answer path has committed some
    batches of the new grader's grades), then the edit is undone: the run's grades are a mix,
    so the next regrade grades every answer, not none."""
    eval_path, store, run_id = evaluated
    graded = _graded(monkeypatch)
    original = _dump(store, run_id)
    with Store(store) as opened:
        before = opened.get_run(run_id).config["graded_with"]["loose"]
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    calls = 0

    async def dies_late(graders, sample, item, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 2 * N - 5:
            raise RuntimeError("killed")
        return await grade_all(graders, sample, item, **kwargs)

    def dies(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patched:
        if path == "bulk":
            patched.setattr(regrade_fast, "_write", dies)
        else:
            patched.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
            patched.setattr("posttrain.runner.regrade.COMMIT_EVERY", 10)
            patched.setattr("posttrain.runner.regrade.grade_all", dies_late)
        with Store(store) as opened, pytest.raises(RuntimeError):
            regrade_run(opened, run_id)
    if path == "batches":  # some of the new grader's grades were committed
        assert _dump(store, run_id) != original
    write_eval(eval_path.parent, _rows(), graders=TWO)
    graded.clear()
    with Store(store) as opened:
        recorded = opened.get_run(run_id).config["graded_with"]["loose"]
        regrade_run(opened, run_id)
    if path == "batches":  # a mix: not known, every answer graded again
        assert recorded is None and len(graded) == 2 * N
    else:  # one transaction, nothing written: the old spec's grades, the old record
        assert recorded == before and graded == []
    assert _dump(store, run_id) == original


def test_an_answer_missing_a_grade_is_graded(evaluated, monkeypatch) -> None:
    _eval_path, store, run_id = evaluated
    graded = _graded(monkeypatch)
    full = _dump(store, run_id)
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM scores WHERE run_id = ? AND item_id = 'q7' AND epoch = 1 "
                     "AND grader = 'loose'", (run_id,))
    with Store(store) as opened:
        regrade_run(opened, run_id)
    assert graded == ["q7"] and _dump(store, run_id) == full


def test_signatures_do_not_touch_the_kept_summaries(evaluated) -> None:
    _eval_path, store, run_id = evaluated
    with Store(store) as opened:
        run = opened.get_run(run_id)
        stamp = opened.run_stamp(run)
        assert run.config["graded_with"].keys() == {"exact", "loose"}
        opened.update_run_config(run_id, {"graded_with": {"exact": None, "loose": None}})
        assert opened.run_stamp(opened.get_run(run_id)) == stamp


def _two_stores(tmp_path: Path, store: Path) -> tuple[Path, Path]:
    """Copies of ``store``: one to regrade by default, one with ``--full``."""
    gc.collect()
    with Store(store) as opened:
        opened.checkpoint("TRUNCATE")
    default, full = tmp_path / "default.db", tmp_path / "full.db"
    shutil.copyfile(store, default)
    shutil.copyfile(store, full)
    return default, full


def _regrade_both(default: Path, full: Path, run_id: str) -> None:
    assert posttrain_main(["regrade", run_id, "--store", str(default)]) == 0
    assert posttrain_main(["regrade", run_id, "--store", str(full), "--full"]) == 0
    assert _dump(default, run_id) == _dump(full, run_id)


@pytest.mark.parametrize("before,after", [(1, 1.0), (True, 1), ({"x": 1, "y": 2},
                                                                  {"y": 2, "x": 1})])
def test_a_value_edited_to_another_json_type_or_key_order_is_an_edited_item(
        tmp_path, stub_server, capsys, monkeypatch, before, after) -> None:
    """Python says 1 == 1.0 == True and dicts equal in any key order; a template renders each
    differently, so the grade may differ: the item is edited, graded, and its history says so."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    text = json.dumps(before)
    rows = [{"id": "a", "question": f"q [[answer:{text}]]", "answer": before},
            {"id": "b", "question": "q [[answer:Paris]]", "answer": "Paris"}]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = tmp_path / "s.db"
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--store",
                           str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    default, full = _two_stores(tmp_path, store)
    rows[0]["answer"] = after
    write_eval(tmp_path / "ev", rows)
    _regrade_both(default, full, run_id)
    err = capsys.readouterr().err
    assert "re-graded 1 of 2 answers" in err
    with sqlite3.connect(default) as conn:
        assert conn.execute("SELECT item_changed FROM score_history WHERE run_id = ?",
                            (run_id,)).fetchall() == [(1,)]
        stored = conn.execute("SELECT data FROM run_items WHERE run_id = ? AND item_id = 'a'",
                              (run_id,)).fetchone()[0]
    assert json.loads(stored)["answer"] == after
    assert json.dumps(after, separators=(",", ":")) in stored


def test_a_grader_named_empty_is_not_its_unnamed_twin(tmp_path, stub_server, capsys,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    graders = ('  - {type: string_check, name: "", input: "{{sample.output_text}}", '
               'reference: "{{item.answer}}", operation: eq}\n'
               '  - {type: string_check, input: "{{sample.output_text}}", '
               'reference: "{{item.answer}}", operation: eq}\n')
    eval_path = write_eval(tmp_path / "ev", _rows(), graders=graders)
    store = tmp_path / "s.db"
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--store",
                           str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    default, full = _two_stores(tmp_path, store)
    write_eval(tmp_path / "ev", _rows(), graders=graders.replace("operation: eq", "operation: ne",
                                                                 1))
    _regrade_both(default, full, run_id)
    # the edited grader (named "") grades every answer; its unnamed twin keeps its grades
    err = capsys.readouterr().err
    assert f"re-graded {N} answers" in err and f"{N} grades of string_check kept" in err


def test_a_plugin_graders_grades_are_always_graded_again(tmp_path, stub_server, capsys,
                                                         monkeypatch) -> None:
    """A plugin's grader says it is deterministic, but its code is not posttrain's: a new
    version of it leaves no trace in the run, so regrade never keeps its grades."""
    from posttrain.graders.string_check import StringCheckGrader, build
    from posttrain.plugins import register_grader

    class Trimmed(StringCheckGrader):
        type = "test_trimmed_check"

        def grade(self, sample, item):
            strip = TRIM["on"]
            sample = {**sample, "output_text": sample["output_text"].rstrip("!") if strip
                      else sample["output_text"]}
            return super().grade(sample, item)

    TRIM = {"on": True}

    @register_grader("test_trimmed_check")
    def build_trimmed(spec, context):
        made = build(spec, context)
        return Trimmed(made.name, made.input, made.reference, made.operation)

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"id": f"q{i}", "question": "q [[answer:Paris!]]", "answer": "Paris"}
            for i in range(3)]
    graders = ('  - {type: test_trimmed_check, name: t, input: "{{sample.output_text}}", '
               'reference: "{{item.answer}}", operation: eq}\n')
    eval_path = write_eval(tmp_path / "ev", rows, graders=graders)
    store = tmp_path / "s.db"
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--store",
                           str(store), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    TRIM["on"] = False  # the plugin's next version
    default, full = _two_stores(tmp_path, store)
    _regrade_both(default, full, run_id)
    assert {r[3] for r in _dump(default, run_id)} == {0.0}


def test_a_regrade_refuses_to_write_over_a_change_made_while_it_read(evaluated, monkeypatch,
                                                                     capsys) -> None:
    """Another writer (a review in the viewer, another regrade) changes the run between this
    regrade's reads and its write: nothing is written, one line, exit 2; run again, it holds."""
    eval_path, store, run_id = evaluated
    original = regrade_fast._stored_grades
    done = []

    def meanwhile(cursor, run, *partial):
        if not done:  # a review edits an item's stored copy
            with sqlite3.connect(store) as other:
                other.execute("UPDATE run_items SET data = json_set(data, '$.answer', 'Rome') "
                              "WHERE run_id = ? AND item_id = 'q1'", (run,))
            done.append(True)
        return original(cursor, run, *partial)

    monkeypatch.setattr(regrade_fast, "_stored_grades", meanwhile)
    with Store(store) as opened:
        recorded = opened.get_run(run_id).config["graded_with"]
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    before = _dump(store, run_id)
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 2
    assert "changed while this regrade read it" in capsys.readouterr().err
    assert _dump(store, run_id) == before
    with Store(store) as opened:  # nothing written: the old spec's grades, the old record
        assert opened.get_run(run_id).config["graded_with"] == recorded
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 0
    assert _dump(store, run_id) != before


def test_the_answer_by_answer_path_refuses_to_write_over_a_change_made_while_it_ran(
        evaluated, monkeypatch, capsys) -> None:
    """Graders that wait (judges, sandboxes) regrade in batches: a review that changes the run
    between two batches stops the regrade before its next write (one line, exit 2); the
    review's edit stays, the batches written before it too, and a second regrade completes."""
    eval_path, store, run_id = evaluated
    monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
    monkeypatch.setattr("posttrain.runner.regrade.COMMIT_EVERY", 10)
    calls = 0

    async def review_meanwhile(graders, sample, item, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 15:  # after the first batch: a reviewer edits q1's stored copy
            with sqlite3.connect(store) as other:
                other.execute("UPDATE run_items SET data = json_set(data, '$.answer', 'Rome') "
                              "WHERE run_id = ? AND item_id = 'q1'", (run_id,))
        return await grade_all(graders, sample, item, **kwargs)

    monkeypatch.setattr("posttrain.runner.regrade.grade_all", review_meanwhile)
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    before = _dump(store, run_id)
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "changed while this regrade ran" in err and "Traceback" not in err
    with sqlite3.connect(store) as conn:
        data = conn.execute("SELECT data FROM run_items WHERE run_id = ? AND item_id = 'q1'",
                            (run_id,)).fetchone()[0]
        explanations = [r[0] for r in conn.execute(
            "SELECT explanation FROM scores WHERE run_id = ? AND grader = 'loose' "
            "ORDER BY item_id, epoch", (run_id,))]
    assert json.loads(data)["answer"] == "Rome"  # the review's edit is not written over
    assert 0 < sum(e.startswith("like") for e in explanations) < 2 * N  # one batch written
    assert _dump(store, run_id) != before
    with Store(store) as opened:
        assert opened.get_run(run_id).config["graded_with"]["loose"] is None
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 0
    with sqlite3.connect(store) as conn:
        assert all(e.startswith("like") for (e,) in conn.execute(
            "SELECT explanation FROM scores WHERE run_id = ? AND grader = 'loose'", (run_id,)))


@pytest.mark.parametrize("path", ["bulk", "batches"])
def test_answers_of_items_left_out_during_a_grader_edit_are_graded_when_they_return(
        evaluated, tmp_path, monkeypatch, capsys, path) -> None:
    """A grader edited while some items are out of the dataset: their answers are not graded
    (counted and said), so the new spec is not recorded as the run's; once they are back, the
    default regrade ends as --full does (it kept their old spec's grades as if the new one had
    made them)."""
    eval_path, store, run_id = evaluated
    write_eval(eval_path.parent, _rows()[10:], graders=TWO.replace("ilike", "like"))
    with monkeypatch.context() as patched:
        if path == "batches":
            patched.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
        assert posttrain_main(["regrade", run_id, "--store", str(store), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["runs"][0]["regrade"]["not_in_eval"] == 20
    assert "20 answers not graded: their items are no longer in the eval" in out.err
    with Store(store) as opened:
        assert opened.get_run(run_id).config["graded_with"]["loose"] is None
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    default, full = _two_stores(tmp_path, store)
    _regrade_both(default, full, run_id)
    assert {r[6].split(":")[0] for r in _dump(default, run_id) if r[2] == "loose"} == {"like"}
    assert _history(default, run_id) == _history(full, run_id)


def test_a_run_a_live_eval_is_answering_is_not_regraded(evaluated, capsys) -> None:
    """Its answers still to come are graded by the graders that eval loaded: a regrade now
    would record specs its later grades were not made with. Refused, one line, exit 2."""
    _eval_path, store, run_id = evaluated
    with live_eval_on(store, run_id) as pid:
        before = _dump(store, run_id)
        assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert f"being answered now by process {pid}" in err and "Traceback" not in err
        assert _dump(store, run_id) == before
    assert posttrain_main(["regrade", run_id, "--store", str(store)]) == 0  # its runner is gone


def test_a_killed_batch_regrade_leaves_an_edited_item_seen_as_edited(evaluated, tmp_path,
                                                                      monkeypatch) -> None:
    """The answer-by-answer path (judges, sandboxes) writes an edited item's stored copy with
    its answers' grades, not before: killed between them, the next regrade still sees the item
    edited and grades it, ending as --full does (it kept the old reference's grades)."""
    eval_path, store, run_id = evaluated
    write_eval(eval_path.parent, _rows({14: "Rome"}), graders=TWO)
    calls = 0

    async def dies_late(graders, sample, item, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 14:  # by item id: q0, q1, q10-q12 written (a batch of 10),
            # q13 and q14 graded, not written
            raise RuntimeError("killed")
        return await grade_all(graders, sample, item, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
        patched.setattr("posttrain.runner.regrade.COMMIT_EVERY", 10)
        patched.setattr("posttrain.runner.regrade.grade_all", dies_late)
        with Store(store) as opened, pytest.raises(RuntimeError):
            regrade_run(opened, run_id)
    with sqlite3.connect(store) as conn:
        copy = conn.execute("SELECT data FROM run_items WHERE run_id = ? AND item_id = 'q14'",
                            (run_id,)).fetchone()[0]
    assert json.loads(copy)["answer"] == "Paris"  # not refreshed without its grades
    default, full = _two_stores(tmp_path, store)
    _regrade_both(default, full, run_id)
    assert [r[3] for r in _dump(default, run_id) if r[0] == "q14" and r[2] == "exact"] == [0.0, 0.0]
    assert _history(default, run_id) == _history(full, run_id)


def test_regrading_runs_one_of_which_is_live_regrades_none(evaluated, capsys) -> None:
    """`posttrain regrade R1 R2` with R2 answered by a live eval: refused before R1 is touched
    (one line, exit 2), rather than R1 regraded and its summary lost with the error."""
    eval_path, store, first = evaluated
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--store",
                           str(store), "--json"]) == 0  # one epoch: another run
    second = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    assert second != first
    write_eval(eval_path.parent, _rows(), graders=TWO.replace("ilike", "like"))
    with live_eval_on(store, second):
        before = _dump(store, first)
        assert posttrain_main(["regrade", first, second, "--store", str(store), "--json"]) == 2
        out = capsys.readouterr()
        assert f"run {second} is being answered now" in out.err and "re-graded" not in out.err
        assert _dump(store, first) == before


THIRD = ('  - {type: string_check, name: third, input: "{{sample.output_text}}", '
         'reference: "{{item.answer}}", operation: like}\n')


@pytest.mark.parametrize("change", ["added", "renamed"])
def test_an_added_or_renamed_grader_grades_alone(evaluated, tmp_path, monkeypatch, capsys,
                                                 change) -> None:
    """A grader added (or one renamed: its grades under the old name are dropped) grades
    every answer; the graders kept as they were grade none (every answer lacked the new
    grader's grade, which made all of them count as incomplete); the store ends as a full
    regrade leaves it. With a grader edited and every reference edited, nothing is kept and
    no grader is named as kept."""
    eval_path, store, run_id = evaluated
    graders = TWO + THIRD if change == "added" else TWO.replace("name: loose", "name: loose2")
    write_eval(eval_path.parent, _rows(), graders=graders)
    default, full = _two_stores(tmp_path, store)
    calls = _grader_calls(monkeypatch)
    assert posttrain_main(["regrade", run_id, "--store", str(default), "--json"]) == 0
    regrade = json.loads(capsys.readouterr().out)["runs"][0]["regrade"]
    new = "third" if change == "added" else "loose2"
    kept = ["exact", "loose"] if change == "added" else ["exact"]
    assert sorted({name for name, _item in calls}) == [new]
    assert len(calls) == 2 * N
    assert regrade["kept_grades"] == 2 * N * len(kept) and regrade["kept_graders"] == kept
    assert posttrain_main(["regrade", run_id, "--store", str(full), "--full", "--json"]) == 0
    capsys.readouterr()
    assert _dump(default, run_id) == _dump(full, run_id)
    assert _history(default, run_id) == _history(full, run_id)
    # every reference edited and a grader edited: nothing kept, no grader named as kept
    write_eval(eval_path.parent, _rows(dict.fromkeys(range(N), "paris")),
               graders=graders.replace("operation: eq", "operation: ilike"))
    assert posttrain_main(["regrade", run_id, "--store", str(default), "--json"]) == 0
    regrade = json.loads(capsys.readouterr().out)["runs"][0]["regrade"]
    assert regrade["kept_grades"] == 0 and regrade["kept_graders"] == []

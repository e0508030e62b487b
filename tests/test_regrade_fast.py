"""The bulk regrade of string graders (runner/regrade_fast.py) stores what grading answer by
answer stores: the same grades, the same history, the same items, the same report, and kept
facts equal to a full build (patched, or built again where a patch cannot promise that)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest

from posttrain.analysis.stored import stored_summary
from posttrain.runner import facts, facts_patch
from posttrain.runner.regrade import regrade_run
from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score
from tests.conftest import regrade_helper_on

STRING = (
    '  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
    'reference: "{{item.answer}}", operation: eq}\n'
    '  - {type: string_check, name: loose, input: "{{sample.output_text}}", '
    'reference: "{{item.answer}}", operation: ilike}\n'
    '  - {type: text_similarity, name: close, input: "{{sample.output_text}}", '
    'reference: "{{item.answer}}", evaluation_metric: fuzzy_match}\n')
MULTI = STRING + (  # sub-scores: the kept facts are built again, not patched
    "  - type: multi\n    name: both\n    calculate_output: (a + b) / 2\n    graders:\n"
    '      a: {type: string_check, input: "{{sample.output_text}}", reference: "{{item.answer}}",'
    " operation: eq}\n"
    '      b: {type: string_check, input: "{{sample.output_text}}", reference: "{{item.answer}}",'
    " operation: like}\n")
EPOCHS = 2


def _items(n: int) -> list[Item]:
    tags = ("alpha", "beta", "gamma")
    return [Item(id=f"q{i:03d}", data={"id": f"q{i:03d}", "question": f"question {i}?",
                                        "answer": f"Answer {i}", "category": tags[i % 3]},
                 tags=[tags[i % 3]]) for i in range(n)]


def _write_eval(folder: Path, items: list[Item], graders: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_bytes(b"".join(orjson.dumps(i.data) + b"\n" for i in items))
    path = folder / "eval.yaml"
    path.write_text("name: ev\ndataset: data.jsonl\nmessages:\n"
                    '  - {role: user, content: "{{item.question}}"}\ngraders:\n' + graders
                    + "tag: category\n")
    return path


def _store(path: Path, eval_path: Path, items: list[Item], graders: list[str]) -> str:
    """A finished run with epochs, failed requests, unscored answers (a grade that errored, a
    grader missing), an empty answer, grades that differ from what the graders give now."""
    with Store(path) as store:
        run = store.create_run(run_key="k", eval_name="ev", eval_path=str(eval_path),
                               eval_hash="h", model="m", variant="default", epochs=EPOCHS,
                               config={"primary": None, "grader_names": graders},
                               items=items)
        for index, item in enumerate(items):
            for epoch in range(EPOCHS):
                if index % 9 == 4 and epoch == 1:
                    store.record_sample(run.id, item.id, epoch, completion=None,
                                        request_key=None, attempts=3, error="HTTP 500")
                    continue
                text = ["Answer {i}", "answer {i}", "the answer {i}!", "no idea", ""][
                    (index + epoch) % 5].format(i=index)
                scores = [Score(value=float(index % 2), passed=bool(index % 2), name=name,
                                explanation="old") for name in graders]
                if index % 7 == 2:
                    scores[0] = Score(value=None, passed=None, name=graders[0], status="error",
                                      explanation="grader crashed")
                if index % 11 == 5:
                    scores = scores[1:]  # a grader never ran: unscored
                store.record_sample(run.id, item.id, epoch,
                                    completion=Completion(text=text, latency_s=0.1 * epoch),
                                    request_key=None, attempts=1, scores=scores)
        store.finish_run(run.id)
        return run.id


def _dump(path: Path, run_id: str) -> dict:
    conn = sqlite3.connect(path)
    out = {table: conn.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}",
                               (run_id,)).fetchall()
           for table, order in (("scores", "item_id, epoch, grader"),
                                ("run_items", "position"))}
    out["history"] = conn.execute(
        "SELECT run_id, item_id, epoch, grader, value, passed, status, item_changed "
        "FROM score_history WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    conn.close()
    return out


def _kept_equals_full_build(store: Store, run_id: str) -> None:
    run = store.get_run(run_id)
    tables, kept = facts.ensure(store, run)
    assert tables is facts.KEPT
    rows = store.conn.execute("SELECT * FROM sample_facts WHERE run_id = ? ORDER BY item_id, "
                              "epoch", (run_id,)).fetchall()
    cells = store.conn.execute("SELECT * FROM item_cells WHERE run_id = ? ORDER BY position",
                               (run_id,)).fetchall()
    store.conn.execute("DELETE FROM run_columns WHERE run_id = ?", (run_id,))
    _, built = facts.ensure(store, run)
    assert kept.pop("stamp") == f"{facts._KIND}:{store.run_stamp(run)}".encode()  # kept
    assert kept == built
    assert [tuple(r) for r in rows] == [tuple(r) for r in store.conn.execute(
        "SELECT * FROM sample_facts WHERE run_id = ? ORDER BY item_id, epoch", (run_id,))]
    assert [tuple(r) for r in cells] == [tuple(r) for r in store.conn.execute(
        "SELECT * FROM item_cells WHERE run_id = ? ORDER BY position", (run_id,))]


@pytest.mark.parametrize("graders", [STRING, MULTI], ids=["string", "with-sub-scores"])
def test_bulk_regrade_stores_what_answer_by_answer_stores(tmp_path, monkeypatch, graders):
    items = _items(40)
    eval_path = _write_eval(tmp_path / "ev", items, graders)
    names = ["exact", "loose", "close", "both"][:4 if graders is MULTI else 3]
    fast_db, slow_db = tmp_path / "fast.db", tmp_path / "slow.db"
    run_id = _store(fast_db, eval_path, items, names)
    shutil.copyfile(fast_db, slow_db)
    applied = _spy_on_patches(monkeypatch)
    for edit in (False, True):  # the second time a reviewer has edited two items
        if edit:
            items[3].data["answer"] = "answer 3"
            items[5].tags = ["beta"]
            items[5].data["category"] = "beta"
            _write_eval(tmp_path / "ev", items, graders)
        count, fast_summary = _regrade_pair(fast_db, slow_db, run_id, monkeypatch)
        assert count == 40 * EPOCHS - 4  # failed requests are not graded
        assert fast_summary["unscored"] == 0 and fast_summary["errors"] == 4
    # string graders: the kept facts patched, never when an item changed or with sub-scores
    assert applied == [True] if graders is STRING else True not in applied


def test_bulk_regrade_writes_only_grades_that_changed(tmp_path):
    items = _items(12)
    eval_path = _write_eval(tmp_path / "ev", items, STRING)
    db = tmp_path / "s.db"
    run_id = _store(db, eval_path, items, ["exact", "loose", "close"])
    with Store(db) as store:
        regrade_run(store, run_id)
        kept = len(store.score_history(run_id))
        grades = list(store.scores(run_id))
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        regrade_run(store, run_id)  # nothing changed since
        store.conn.set_trace_callback(None)
        assert not [s for s in statements if s.startswith("INSERT OR REPLACE INTO scores")]
        assert len(grades) == 3 * (12 * EPOCHS - 1)  # one failed request
        assert [tuple(r) for r in store.scores(run_id)] == [tuple(r) for r in grades]
        assert len(store.score_history(run_id)) == kept  # graded as stored: no history row
        _kept_equals_full_build(store, run_id)
        assert sqlite3.connect(db).execute(  # the revision triggers are back
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'scores'"
        ).fetchone()[0] == 3


DETERMINISTIC = STRING.split("  - {type: text_similarity")[0]  # string_check only


def _spy_on_patches(monkeypatch) -> list[bool]:
    """Whether each regrade patched the kept facts (``facts_patch.apply``'s answers, in order)."""
    applied: list[bool] = []
    original = facts_patch.apply

    def spy(*args, **kwargs):
        applied.append(original(*args, **kwargs))
        return applied[-1]

    monkeypatch.setattr(facts_patch, "apply", spy)
    return applied


def _regrade_both(tmp_path, monkeypatch, items, names, graders, edit=None):
    """The same store regraded by the bulk path and answer by answer; returns the fast store's
    path and run id after asserting both stored the same."""
    eval_path = _write_eval(tmp_path / "ev", items, graders)
    fast_db, slow_db = tmp_path / "fast.db", tmp_path / "slow.db"
    run_id = _store(fast_db, eval_path, items, names)
    shutil.copyfile(fast_db, slow_db)
    if edit is not None:
        _write_eval(tmp_path / "ev", items, edit)
    _regrade_pair(fast_db, slow_db, run_id, monkeypatch)
    return fast_db, run_id


def _regrade_pair(fast_db, slow_db, run_id, monkeypatch, **options):
    """Regrade ``run_id`` in both stores, the bulk path and answer by answer (``options``:
    ``regrade_run``'s); assert they stored the same (and the bulk path's kept facts equal a
    full build); (count, summary)."""
    with Store(fast_db) as store:
        count = regrade_run(store, run_id, **options)
        fast_summary = stored_summary(store, store.get_run(run_id))
        _kept_equals_full_build(store, run_id)
    with monkeypatch.context() as slow:
        slow.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
        with Store(slow_db) as store:
            assert regrade_run(store, run_id, **options) == count
            slow_summary = stored_summary(store, store.get_run(run_id))
    assert _dump(fast_db, run_id) == _dump(slow_db, run_id)
    assert fast_summary == slow_summary
    return count, fast_summary


def test_keep_all_keeps_every_old_grade_as_answer_by_answer_does(tmp_path, monkeypatch):
    """``keep_all`` (an import keeping the grades it brought): every answer's old grades go
    to the history, changed (a value, or the explanation alone) or not, in the bulk path as
    answer by answer, whether an answer's grades are compared grader by grader (the same
    graders before and after) or as a whole (a grader missing from the stored grades)."""
    items = _items(24)
    names = ["exact", "loose", "close"]
    eval_path = _write_eval(tmp_path / "ev", items, STRING)
    fast_db, slow_db = tmp_path / "fast.db", tmp_path / "slow.db"
    run_id = _store(fast_db, eval_path, items, names)
    shutil.copyfile(fast_db, slow_db)
    stored = len(_dump(fast_db, run_id)["scores"])
    for _ in range(2):  # the stored grades' explanations all change; then nothing does
        before = len(_dump(fast_db, run_id)["history"])
        _regrade_pair(fast_db, slow_db, run_id, monkeypatch, keep_all=True)
        assert len(_dump(fast_db, run_id)["history"]) - before == stored
        stored = len(_dump(fast_db, run_id)["scores"])  # the missing grades are there now


@pytest.mark.parametrize("helper_fails", [False, True], ids=["helper", "helper-fails"])
def test_a_second_process_grades_the_same(tmp_path, monkeypatch, helper_fails):
    """Deterministic graders on many answers: a forked helper grades the tail; when it fails,
    this process grades those answers itself. Either way the same grades as answer by
    answer."""
    results = regrade_helper_on(monkeypatch, fails=helper_fails)
    _regrade_both(tmp_path, monkeypatch, _items(30), ["exact", "loose"], DETERMINISTIC)
    assert results == [not helper_fails]


@pytest.mark.parametrize("change", ["grader-dropped", "grader-added"])
def test_kept_facts_follow_a_changed_grader_list(tmp_path, monkeypatch, change):
    """A regrade that removes a grader's grades, or adds a grader's: the kept facts equal a
    full build (the graders named before and after, and each component's grade count, come
    from what the regrade read and wrote)."""
    names = ["exact", "loose", "close"] if change == "grader-dropped" else ["exact", "loose"]
    graders = STRING if change == "grader-dropped" else DETERMINISTIC
    edit = DETERMINISTIC if change == "grader-dropped" else STRING
    db, run_id = _regrade_both(tmp_path, monkeypatch, _items(24), names, graders, edit)
    with Store(db) as store:
        present = {r[0] for r in store.conn.execute(
            "SELECT DISTINCT grader FROM scores WHERE run_id = ?", (run_id,))}
    assert present == ({"exact", "loose"} if change == "grader-dropped"
                       else {"exact", "loose", "close"})


def test_component_counts_move_with_the_scored_grades(tmp_path, monkeypatch):
    """A grader edited so that it no longer scores (its reference names a field the items
    lack): the kept facts are patched, each component's count moved by the scored grades
    only (not by every grade), and equal a full build."""
    items = _items(24)
    items[0].data["extra"] = "Answer 0"  # the only item with the field
    db, run_id = _regrade_both(tmp_path, monkeypatch, items, ["exact", "loose", "close"],
                               STRING)
    applied = _spy_on_patches(monkeypatch)
    _write_eval(tmp_path / "ev", items, STRING.replace(
        'reference: "{{item.answer}}", operation: eq', 'reference: "{{item.extra}}", '
        "operation: eq"))
    with Store(db) as store:
        regrade_run(store, run_id)
        _kept_equals_full_build(store, run_id)
        statuses = {r[0] for r in store.conn.execute(
            "SELECT status FROM scores WHERE run_id = ? AND grader = 'exact' "
            "AND item_id != 'q000'", (run_id,))}
    assert applied == [True] and "scored" not in statuses


def test_an_edited_reference_keeps_the_facts_patched(tmp_path, monkeypatch):
    """An item's data is not in the kept facts (its tags are): a regrade after references were
    edited patches them, equal to a full build, instead of building them again."""
    items = _items(30)
    eval_path = _write_eval(tmp_path / "ev", items, DETERMINISTIC)
    fast_db, slow_db = tmp_path / "fast.db", tmp_path / "slow.db"
    run_id = _store(fast_db, eval_path, items, ["exact", "loose"])
    shutil.copyfile(fast_db, slow_db)
    applied = _spy_on_patches(monkeypatch)
    _regrade_pair(fast_db, slow_db, run_id, monkeypatch)
    for index in (3, 4, 17):
        items[index].data["answer"] = f"answer {index}"  # the tags stay
    _write_eval(tmp_path / "ev", items, DETERMINISTIC)
    _regrade_pair(fast_db, slow_db, run_id, monkeypatch)  # asserts kept == a full build
    assert applied == [True, True]

"""Cache hits read and stored in bulk (``RunExecution._source``) store the same run as the
one-by-one path: same answers, grades, counts and report, in a complete new run."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from posttrain.cli import main
from posttrain.runner import executor
from tests.conftest import write_eval

#: a grader that cannot grade some answers (their row lacks the reference) and a
#: string check: both kinds of score go through the bulk path
GRADERS = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
           'reference: "{{item.answer}}", operation: ilike}\n'
           '  - {type: string_check, name: strict, input: "{{sample.output_text}}", '
           'reference: "{{item.strict}}", operation: eq}\n')
PYTHON_GRADER = ('  - {type: python, name: py, source: "def grade(sample, item):\\n'
                 '    return 1.0 if sample[\'output_text\'] == item[\'answer\'] else 0.0"}\n')


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        answer = "Paris" if i % 3 else "Lyon"
        row: dict[str, Any] = {"id": f"q{i}", "question": f"capital #{i}? [[answer:{answer}]]",
                               "answer": "Paris", "category": "even" if i % 2 == 0 else "odd"}
        if i % 5 != 1:
            row["strict"] = "Paris"
        rows.append(row)
    return rows


def _one_by_one(self: executor.RunExecution, pending: list[tuple[Any, int]]) -> Any:
    """The path before bulk reads: every (item, epoch) looked up on its own."""
    for item, epoch in pending:
        yield item, epoch, None


def _stored(db: Path, run_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    samples = conn.execute(
        "SELECT item_id, epoch, status, request_key, "
        "CASE WHEN cached THEN completion ELSE json_remove(completion, '$.latency_s') END, "
        "error, attempts, input_tokens, "
        "output_tokens, cost_usd, CASE WHEN cached THEN latency_s END, cached FROM samples "
        "WHERE run_id = ? ORDER BY item_id, epoch", (run_id,)).fetchall()
    scores = conn.execute(
        "SELECT item_id, epoch, grader, value, passed, status, explanation, sub_scores, "
        "cost_usd, requests, confinement IS NOT NULL, retries FROM scores WHERE run_id = ? "
        "ORDER BY item_id, epoch, grader", (run_id,)).fetchall()
    conn.close()
    return samples, scores


def _eval(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)["runs"][0]


@pytest.mark.parametrize("graders", [GRADERS, GRADERS + PYTHON_GRADER],
                         ids=["inline", "graded-in-tasks"])
def test_bulk_hits_store_the_same_run_as_one_by_one(tmp_path, stub_server, capsys, monkeypatch,
                                                    graders):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setattr(executor, "PREFETCH", 7)  # several chunks, one partly cached
    eval_path = write_eval(tmp_path / "ev", _rows(30), graders=graders)
    first = tmp_path / "first.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--epochs", "2", "--json"]
    before = stub_server.stats()["total_attempts"]
    _eval(argv + ["--store", str(first)], capsys)
    assert stub_server.stats()["total_attempts"] - before == 60
    # ten new items: a run of 40 items x 2 epochs, 60 answers from the cache and 20 sent
    write_eval(tmp_path / "ev", _rows(40), graders=graders)
    bulk_db, slow_db = tmp_path / "bulk.db", tmp_path / "slow.db"
    for copy in (bulk_db, slow_db):
        for suffix in ("", "-wal"):
            if Path(f"{first}{suffix}").exists():
                shutil.copyfile(f"{first}{suffix}", f"{copy}{suffix}")
    bulk = _eval(argv + ["--store", str(bulk_db)], capsys)
    with monkeypatch.context() as patch:
        patch.setattr(executor.RunExecution, "_source", _one_by_one)
        slow = _eval(argv + ["--store", str(slow_db)], capsys)
    assert stub_server.stats()["total_attempts"] - before == 60 + 20 + 20
    assert bulk["requests"] == slow["requests"] == 20
    assert bulk["n"] == 80 and bulk["scored"] + bulk["unscored"] + bulk["errors"] == 80
    different = {"run_id", "latency_p50_s", "latency_p95_s", "created", "finished",
                 "duration_s", "confinement"}  # a sandbox's uid is drawn per run
    assert {k: v for k, v in bulk.items() if k not in different} \
        == {k: v for k, v in slow.items() if k not in different}
    bulk_rows, slow_rows = _stored(bulk_db, bulk["run_id"]), _stored(slow_db, slow["run_id"])
    assert bulk_rows == slow_rows
    samples, scores = bulk_rows
    assert len(samples) == 80 and sum(row[-1] for row in samples) == 60
    assert {row[5] for row in scores} == {"scored", "unscored"}  # strict: rows lacking it
    conn = sqlite3.connect(bulk_db)
    assert conn.execute("SELECT status FROM runs WHERE id = ?",
                        (bulk["run_id"],)).fetchone()[0] == "finished"
    assert conn.execute("SELECT COUNT(*) FROM run_items WHERE run_id = ?",
                        (bulk["run_id"],)).fetchone()[0] == 40
    conn.close()


def test_a_fully_cached_rerun_is_a_complete_new_run(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setattr(executor, "PREFETCH", 8)
    eval_path = write_eval(tmp_path / "ev", _rows(25), graders=GRADERS)
    store = tmp_path / "s.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(store), "--json"]
    before = stub_server.stats()["total_attempts"]
    first = _eval(argv, capsys)
    again = _eval(argv, capsys)
    # the loopback stub's fingerprint is compared: one live request (the canary) first
    assert again["requests"] <= 1 and again["run_id"] != first["run_id"]
    assert stub_server.stats()["total_attempts"] - before <= 26
    assert (again["score"], again["scored"], again["errors"]) \
        == (first["score"], first["scored"], first["errors"])
    first_samples, first_scores = _stored(store, first["run_id"])
    again_samples, again_scores = _stored(store, again["run_id"])
    assert [row[:4] for row in again_samples] == [row[:4] for row in first_samples]
    assert sum(row[-1] for row in again_samples) >= 24
    assert again_scores == first_scores


def _copy_store(source: Path, target: Path) -> None:
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def _spy_replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many hits each ``_replay`` call stored (copied with an earlier run's grades)."""
    counts: list[int] = []
    original = executor.RunExecution._replay

    def spy(self: executor.RunExecution, *args: Any) -> Any:
        copied = original(self, *args)
        counts.append(len(copied) if copied is not None else 0)
        return copied

    monkeypatch.setattr(executor.RunExecution, "_replay", spy)
    return counts


def test_replayed_hits_store_the_same_run_as_grading_again(tmp_path, stub_server, capsys,
                                                          monkeypatch):
    """A rerun's cache hits copied in SQLite with the first run's grades store the rows that
    grading each hit again stores, and the same report."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setattr(executor, "PREFETCH", 7)
    eval_path = write_eval(tmp_path / "ev", _rows(30), graders=GRADERS)
    first = tmp_path / "first.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--epochs", "2", "--json"]
    _eval(argv + ["--store", str(first)], capsys)
    fast_db, slow_db = tmp_path / "fast.db", tmp_path / "slow.db"
    _copy_store(first, fast_db)
    _copy_store(first, slow_db)
    replays = _spy_replays(monkeypatch)
    fast = _eval(argv + ["--store", str(fast_db)], capsys)
    assert sum(replays) >= 58  # every hit but the canary's answer and its chunk's
    with monkeypatch.context() as patch:
        patch.setattr(executor.Store, "replay_source", lambda *_args: None)
        replays.clear()
        slow = _eval(argv + ["--store", str(slow_db)], capsys)
        assert replays == []
    different = {"run_id", "latency_p50_s", "latency_p95_s", "created", "finished",
                 "duration_s"}
    assert {k: v for k, v in fast.items() if k not in different} \
        == {k: v for k, v in slow.items() if k not in different}
    assert fast["n"] == 60 and fast["unscored"] > 0  # strict: rows lacking its reference
    assert _stored(fast_db, fast["run_id"]) == _stored(slow_db, slow["run_id"])
    # the score facts: copied from the first run's (``replayed_from``) vs built from the rows
    fast_facts, slow_facts = _facts(fast_db, fast["run_id"]), _facts(slow_db, slow["run_id"])
    assert fast_facts[0] is not None and slow_facts[0] is None
    assert fast_facts[1:] == slow_facts[1:] and len(fast_facts[1]) == 60
    fast_kinds, slow_kinds = _summaries(fast_db, fast["run_id"]), _summaries(slow_db, slow["run_id"])
    for kinds in (fast_kinds, slow_kinds):
        kinds["report"] = {k: v for k, v in kinds["report"].items() if k not in different}
    assert fast_kinds == slow_kinds


@pytest.mark.parametrize("order", ["copy first", "source first"])
def test_a_regraded_copy_keeps_facts_of_its_own_grades(tmp_path, stub_server, capsys,
                                                      monkeypatch, order):
    """A cached rerun's score facts are copied from the run it copied; once the copy is
    re-graded (references fixed, an item retagged) its report, tags and comparison are of its
    own grades, also when every kept table is dropped and built again in either order (the
    source's facts were copied back over the copy's new grades)."""
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = _rows(12)
    for row in rows:
        row["answer"] = "Lyon"  # the answers are Paris but for every third
    eval_path = write_eval(tmp_path / "ev", rows, graders=GRADERS)
    store = tmp_path / "s.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--json", "--store", str(store)]
    source = _eval(argv, capsys)
    copy = _eval(argv, capsys)
    assert _facts(store, copy["run_id"])[0] is not None  # its facts are the source's
    rows = _rows(12)  # the references fixed, one item retagged
    rows[3]["category"] = "new"
    write_eval(tmp_path / "ev", rows, graders=GRADERS)
    assert main(["regrade", copy["run_id"], "--store", str(store)]) == 0
    capsys.readouterr()

    def shown(run_id: str) -> tuple[Any, ...]:
        assert main(["report", run_id, "--store", str(store), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)["runs"][0]
        return report["score"], sorted(report["by_tag"])

    def truth(run_id: str) -> tuple[Any, ...]:
        with Store(store) as db:
            report = summarize(load_results(db, db.get_run(run_id)))
        return report["score"], sorted(report["by_tag"])

    assert shown(copy["run_id"]) == truth(copy["run_id"])
    assert "new" in truth(copy["run_id"])[1] and truth(copy["run_id"]) != truth(source["run_id"])
    with sqlite3.connect(store) as conn:
        for table in ("run_summaries", "sample_facts", "item_cells", "run_columns"):
            conn.execute(f"DELETE FROM {table}")
    runs = [copy["run_id"], source["run_id"]]
    for run_id in runs if order == "copy first" else runs[::-1]:
        shown(run_id)
    for run_id in runs:
        assert shown(run_id) == truth(run_id)


def _facts(db: Path, run_id: str) -> tuple[Any, ...]:
    """A run's ``replayed_from`` and its kept score facts (per answer, per item, packed)."""
    conn = sqlite3.connect(db)
    config = json.loads(conn.execute("SELECT config FROM runs WHERE id = ?",
                                     (run_id,)).fetchone()[0])
    facts = conn.execute("SELECT item_id, epoch, st, v, passed, answered, text_key FROM "
                         "sample_facts WHERE run_id = ? ORDER BY item_id, epoch",
                         (run_id,)).fetchall()
    cells = conn.execute("SELECT position, item_id, tags, answers, errors, unscored, scored, "
                         "npass, nfail, passes, total, score, status FROM item_cells "
                         "WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
    columns = conn.execute("SELECT name, body FROM run_columns WHERE run_id = ? AND "
                           "name != 'stamp' ORDER BY name", (run_id,)).fetchall()
    conn.close()
    return config.get("replayed_from"), facts, cells, columns


def _summaries(db: Path, run_id: str) -> dict[str, Any]:
    """Every kind of kept summary of a finished run (``analysis.stored``), its id left out."""
    from posttrain.analysis.stored import KINDS, stored
    from posttrain.runner.store import Store

    with Store(db) as store:
        return {kind: stored(store, run_id, kind) for kind in KINDS}


def _planted_first_run(tmp_path, stub_server, capsys, monkeypatch):
    """A first run of the 12-item eval whose stored grades are planted ones grading again
    would never give (a copied one would show); (eval path, store, argv, its summary, an open
    connection to the store)."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    eval_path = write_eval(tmp_path / "ev", _rows(12), graders=GRADERS)
    store = tmp_path / "s.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--json", "--store", str(store)]
    first = _eval(argv, capsys)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE scores SET value = 0.25, explanation = 'planted' WHERE run_id = ?",
                 (first["run_id"],))
    return eval_path, store, argv, first, conn


@pytest.mark.parametrize("change", ["item", "regrade", "graders"])
def test_replay_only_copies_grades_of_the_same_answer_item_and_graders(
        tmp_path, stub_server, capsys, monkeypatch, change):
    """An earlier run's grades are not copied for an item whose stored copy a review edited,
    from a run re-graded since, or when the graders changed: those answers are graded again."""
    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    if change == "item":  # a reviewed reference in the run's copy of one item
        conn.execute("UPDATE run_items SET data = json_set(data, '$.answer', 'Lyon') "
                     "WHERE run_id = ? AND item_id = 'q4'", (first["run_id"],))
    elif change == "regrade":
        conn.execute("INSERT INTO score_history (run_id, item_id, epoch, grader, status, "
                     "replaced) VALUES (?, 'q4', 0, 'exact', 'scored', 0)", (first["run_id"],))
    conn.commit()
    conn.close()
    if change == "graders":
        write_eval(tmp_path / "ev", _rows(12), graders=GRADERS.replace("ilike", "like"))
    replays = _spy_replays(monkeypatch)
    again = _eval(argv, capsys)
    _samples, scores = _stored(store, again["run_id"])
    planted = {row[0] for row in scores if row[6] == "planted"}
    if change == "item":
        assert sum(replays) >= 10 and "q4" not in planted and "q5" in planted
    else:
        assert replays == [] and planted == set()


def _planted(store: Path, run_id: str) -> set[str]:
    return {row[0] for row in _stored(store, run_id)[1] if row[6] == "planted"}


def test_a_run_resumed_with_other_graders_lends_no_grades(tmp_path, stub_server, capsys,
                                                          monkeypatch):
    """A run stopped part way and resumed with an edited grader holds grades of two specs: a
    later run with either spec copies none of them (it kept the first spec's signature and
    later runs copied grades the second gave)."""
    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    run_id = first["run_id"]
    for table in ("samples", "scores"):  # as if killed after half its answers
        conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND item_id >= 'q5'", (run_id,))
    conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE id = ?", (run_id,))
    conn.commit()
    conn.close()
    write_eval(tmp_path / "ev", _rows(12), graders=GRADERS.replace("ilike", "like"))
    resumed = _eval(argv, capsys)
    assert resumed["run_id"] == run_id
    write_eval(tmp_path / "ev", _rows(12), graders=GRADERS)  # the first spec again
    replays = _spy_replays(monkeypatch)
    again = _eval(argv, capsys)
    assert again["run_id"] != run_id
    assert replays == [] and _planted(store, again["run_id"]) == set()


def test_a_source_run_changed_during_a_replay_lends_no_more_grades(tmp_path, stub_server,
                                                                  capsys, monkeypatch):
    """Another process re-grades (or a review edits) the run being copied from while a rerun
    copies its grades chunk by chunk: what it wrote after the rerun chose it is not copied;
    the rest of the rerun is graded here."""
    from posttrain.runner.store import Store

    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    conn.commit()
    conn.close()
    monkeypatch.setattr(executor, "PREFETCH", 4)
    original = Store.replay_answers
    calls: list[int] = []

    def meanwhile(self: Store, *args: Any, **kwargs: Any) -> Any:
        if len(calls) == 1:  # after the first chunk: another writer changes the source
            self.conn.execute("UPDATE scores SET explanation = 'changed', value = 0.5 "
                              "WHERE run_id = ?", (first["run_id"],))  # (this one holds the lock)
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "replay_answers", meanwhile)
    again = _eval(argv, capsys)
    _samples, scores = _stored(store, again["run_id"])
    assert len(calls) >= 2
    assert not [row for row in scores if row[6] == "changed"]
    assert 1 <= len(_planted(store, again["run_id"])) <= 4  # the first chunk, copied before
    assert _facts(store, again["run_id"])[0] is None  # its facts are built, not copied


def _unregistered_after(monkeypatch: pytest.MonkeyPatch, type_name: str) -> None:
    """The grader type a test registers is gone after it."""
    from posttrain.plugins import KINDS

    for table in (KINDS["grader"].parts, KINDS["grader"].meta):
        monkeypatch.setitem(table, type_name, None)


def _plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> Path:
    import importlib

    path = tmp_path / "plug" / f"{name}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    monkeypatch.syspath_prepend(str(path.parent))
    importlib.import_module(name)
    monkeypatch.delitem(__import__("sys").modules, name)
    return path


@pytest.mark.parametrize("how", ["builder", "helper", "no source"])
def test_grades_of_a_plugins_code_are_graded_again(tmp_path, stub_server, capsys, monkeypatch,
                                                   how):
    """Plugin code can change with no trace in the run wherever it is: a plugin builder that
    returns posttrain's own class (the operation its own), a subclass calling a helper module,
    a class defined where no source can be read. Neither a rerun nor a regrade keeps their
    grades."""
    _unregistered_after(monkeypatch, "bulk_cache_mine")
    if how == "builder":
        _plugin(tmp_path, monkeypatch, "bulk_cache_builder",
                "from posttrain.graders.string_check import StringCheckGrader\n"
                "from posttrain.plugins import register_grader\nOP = 'eq'\n\n"
                "@register_grader('bulk_cache_mine')\ndef build(spec, context):\n"
                "    spec.get('operation')\n"
                "    return StringCheckGrader(spec['name'], spec['input'], spec['reference'], OP)\n")
    else:
        from posttrain.graders.string_check import StringCheckGrader, build
        from posttrain.plugins import register_grader

        namespace: dict[str, Any] = {"StringCheckGrader": StringCheckGrader}
        # a class compiled from a string: its module has no source file to digest
        exec("class Mine(StringCheckGrader):\n    type = 'bulk_cache_mine'\n", namespace)
        mine = namespace["Mine"]
        if how == "helper":
            mine.__module__ = "tests.test_eval_bulk_cache"  # a readable file: its helpers not

        @register_grader("bulk_cache_mine")
        def build_mine(spec: dict[str, Any], context: Any) -> Any:
            made = build(spec, context)
            return mine(made.name, made.input, made.reference, made.operation)

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    graders = ('  - {type: bulk_cache_mine, name: mine, input: "{{sample.output_text}}", '
               'reference: "{{item.answer}}", operation: eq}\n')
    eval_path = write_eval(tmp_path / "ev", _rows(8), graders=graders)
    store = tmp_path / "s.db"
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--json", "--store", str(store)]
    first = _eval(argv, capsys)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE scores SET explanation = 'planted' WHERE run_id = ?",
                     (first["run_id"],))
    replays = _spy_replays(monkeypatch)
    again = _eval(argv, capsys)
    assert replays == [] and _planted(store, again["run_id"]) == set()
    assert main(["regrade", first["run_id"], "--store", str(store)]) == 0
    assert _planted(store, first["run_id"]) == set()


def test_an_eval_built_in_python_lends_no_grades(tmp_path, stub_server, monkeypatch):
    """Graders constructed in Python have no spec to digest: two such evals with the same name
    and items, one grading `eq` and one `ilike`, share no grade."""
    from posttrain.api import run_eval
    from posttrain.eval import Eval
    from posttrain.graders.string_check import StringCheckGrader
    from posttrain.types import Item

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    store = tmp_path / "s.db"

    def built(operation: str) -> Eval:
        return Eval(name="py", items=[Item(id=f"q{i}", data={
            "question": f"#{i} [[answer:{'paris' if i % 3 == 0 else 'Paris'}]]",
            "answer": "Paris"}) for i in range(6)],
                    graders=[StringCheckGrader("exact", "{{sample.output_text}}",
                                               "{{item.answer}}", operation)],
                    messages=[{"role": "user", "content": "{{item.question}}"}])

    from posttrain.runner.executor import RunOptions

    (strict,) = run_eval(built("eq"), ["openai:stub"], store=str(store))
    (loose,) = run_eval(built("ilike"), ["openai:stub"], store=str(store))
    (fresh,) = run_eval(built("ilike"), ["openai:stub"], store=str(tmp_path / "f.db"),
                        options=RunOptions(use_cache=False))
    assert loose["score"] == fresh["score"] > strict["score"]
    assert loose["cached"] == 6  # the same answers, graded again


def test_a_replay_takes_the_write_lock_before_its_checks(tmp_path, stub_server, capsys,
                                                        monkeypatch):
    """The replay reads (the source's stamp, its answers) before it writes: its transaction
    holds the write lock from the start, so another process cannot commit between the checks
    and the copy (it waits; here it gives up after 0.2 s)."""
    from posttrain.runner.store import Store

    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    conn.commit()
    conn.close()
    blocked: list[str] = []
    with Store(store) as db:
        run = db.get_run(first["run_id"])
        stamp = db.run_stamp(run)
        original = Store.run_stamp

        def stamp_then_another_writer(self: Store, run: Any) -> str:
            value = original(self, run)
            other = sqlite3.connect(store, timeout=0.2)
            try:
                other.execute("UPDATE runs SET config = config WHERE id = ?", (run.id,))
                other.commit()
            except sqlite3.OperationalError as exc:
                blocked.append(str(exc))
            finally:
                other.close()
            return value

        monkeypatch.setattr(Store, "run_stamp", stamp_then_another_writer)
        copied = db.replay_answers(run.id, "another-run", 2,
                                   [("q0", 0, "no-such-key", 1, 1, 0.0, None, "{}")], stamp)
    assert copied == {} and blocked == ["database is locked"]


def test_grades_of_other_posttrain_code_are_not_copied(tmp_path, stub_server, capsys,
                                                       monkeypatch):
    """posttrain upgraded (or its checkout edited) between two runs: the second grades again,
    since the grading code is in the signature (:func:`grader_record.own_code`)."""
    from posttrain.runner import grader_record

    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    conn.commit()
    conn.close()
    assert len(_planted(store, first["run_id"])) == 12
    monkeypatch.setattr(grader_record, "own_code", lambda: "0.1.0:another checkout")
    replays = _spy_replays(monkeypatch)
    again = _eval(argv, capsys)
    assert replays == [] and _planted(store, again["run_id"]) == set()


def test_own_code_digest_reads_the_grading_modules(tmp_path, monkeypatch):
    """The digest covers the graders' sources and the modules a sample is built with: an edit
    to any of them changes it; other modules do not."""
    import posttrain
    from posttrain.runner import grader_record

    root = Path(posttrain.__file__).parent
    copy = tmp_path / "posttrain"
    for part in ("graders", "eval"):
        shutil.copytree(root / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__init__.py", "template.py", "reasoning.py", "types.py", "cli/__init__.py"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, copy / name)
    monkeypatch.setattr(posttrain, "__file__", str(copy / "__init__.py"))
    digest = grader_record.own_code.__wrapped__
    before = digest()
    assert before == grader_record.own_code()  # the copy is the code that runs
    (copy / "cli" / "__init__.py").write_text("# not grading code\n")
    assert digest() == before
    for edited in ("graders/string_check.py", "template.py", "eval/__init__.py"):
        path = copy / edited
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert digest() != before, edited
        path.write_text(text)
    assert digest() == before


def test_a_metric_librarys_version_is_part_of_what_gave_the_grades(monkeypatch):
    """text_similarity's grades come from its metric library: another version of it is
    another source of grades (``graded_with`` differs, so a regrade grades them again)."""
    from posttrain.eval import eval_from_dict
    from posttrain.runner import grader_record

    ev = eval_from_dict({"name": "sim", "items": [{"q": "x", "a": "y"}],
                         "messages": [{"role": "user", "content": "{{item.q}}"}],
                         "graders": [{"type": "text_similarity", "name": "fuzzy",
                                      "input": "{{sample.output_text}}",
                                      "reference": "{{item.a}}",
                                      "evaluation_metric": "fuzzy_match"}]})
    from importlib.metadata import version

    assert f"library:rapidfuzz:{version('rapidfuzz')}" in grader_record.code_digests(
        ev.graders[0])
    before = grader_record.eval_digests(ev)
    monkeypatch.setattr(grader_record, "_library_version", lambda name: "9.9.9")
    assert grader_record.eval_digests(ev)["fuzzy"] != before["fuzzy"]


@pytest.mark.parametrize("change", ["response", "expired", "canary"])
def test_replay_copies_no_grade_of_an_answer_the_cache_no_longer_serves_alike(
        tmp_path, stub_server, capsys, monkeypatch, change):
    """The replay checks each hit against the response read from the cache now: an entry
    replaced since the first run (another answer), an expired entry (asked again) and entries
    that must wait for the canary (another model wrote them) get no copied grade."""
    eval_path, store, argv, first, conn = _planted_first_run(tmp_path, stub_server, capsys,
                                                              monkeypatch)
    key = conn.execute("SELECT request_key FROM samples WHERE run_id = ? AND item_id = 'q4'",
                       (first["run_id"],)).fetchone()[0]
    if change == "response":  # the entry now holds another answer than the run's
        conn.execute("UPDATE cache SET response = json_set(response, '$.text', 'Lyon') "
                     "WHERE key = ?", (key,))
    elif change == "expired":
        conn.execute("UPDATE cache SET created = 0 WHERE key = ?", (key,))
    else:  # every entry (and the run's copy of it) says another model answered
        for table, column in (("cache", "response"), ("samples", "completion")):
            conn.execute(f"UPDATE {table} SET {column} = "
                         f"json_set({column}, '$.served_model', 'impostor')")
    conn.commit()
    conn.close()
    replays = _spy_replays(monkeypatch)
    before = stub_server.stats()["total_attempts"]
    again = _eval(argv, capsys)
    samples, scores = _stored(store, again["run_id"])
    planted = {row[0] for row in scores if row[6] == "planted"}
    texts = {row[0]: json.loads(row[4])["text"] for row in samples}
    if change == "canary":
        assert replays == [] and planted == set()
        assert stub_server.stats()["total_attempts"] > before  # the canary, then asked again
        return
    assert sum(replays) >= 10 and "q4" not in planted and "q5" in planted
    q4 = [row for row in scores if row[0] == "q4" and row[2] == "exact"][0]
    if change == "response":  # served and graded: the entry's answer, not the run's
        assert texts["q4"] == "Lyon" and q4[3] == 0.0
        assert stub_server.stats()["total_attempts"] == before + (again["requests"] or 0)
    else:  # asked again, graded again
        assert again["requests"] >= 1 and q4[3] == 1.0


def test_the_eval_fingerprint_and_requests_are_those_of_before(tmp_path) -> None:
    """Run identity (``run_key``) and cache keys depend on these bytes: the fingerprint is still
    sha256 over ``json.dumps(data, sort_keys=True, default=str)`` per item, and a message's
    content is what ``render(..., keep_type=False)`` gives (a row with non-ASCII text, nested
    fields, numbers, null and a JSON string)."""
    import hashlib

    from posttrain.eval import load_eval
    from posttrain.template import render

    rows = [{"id": "a", "question": "Zoë's {x}?", "n": 3, "nested": {"b": [1, None, 2.5]},
             "answer": "Paris", "strict": "Paris", "blob": '{"k": 1}'},
            {"id": "b", "question": "plain", "n": None, "nested": {"b": []}, "answer": "x",
             "strict": "x", "blob": "[1]"}]
    path = write_eval(tmp_path / "ev", rows, graders=GRADERS)
    text = path.read_text().replace("{{item.question}}",
                                    "{{item.question}} / {{item.n}} / {{item.nested.b}} / "
                                    "{{item.blob}} / {{item.nested}}")
    path.write_text(text)
    eval_ = load_eval(path)
    digest = hashlib.sha256(eval_.name.encode())
    for item in eval_.items:
        digest.update(item.id.encode())
        digest.update(json.dumps(item.data, sort_keys=True, default=str).encode())
    digest.update(json.dumps([eval_.messages, eval_.sampling, eval_.tools, eval_.response_format,
                              {k: {f: x for f, x in vars(v).items() if f != "provenance"}
                               for k, v in sorted(eval_.variants.items())}],
                             sort_keys=True, default=str).encode())
    assert eval_.fingerprint() == digest.hexdigest()[:16]
    # tool_choice and the solver shape the answers: evals differing only there are two runs
    import dataclasses

    choices = {dataclasses.replace(eval_, tool_choice=choice).fingerprint()
               for choice in (None, "auto", "required", "none")}
    solvers = {dataclasses.replace(eval_, solver=solver).fingerprint()
               for solver in ("a:solve", "b:solve")}
    assert len(choices) == 4 and len(solvers) == 2 and not choices & solvers
    for item in eval_.items:
        request = eval_.request_for(item)
        assert request.messages[-1]["content"] == render(
            eval_.messages[-1]["content"], {"item": item.data}, keep_type=False)
    assert "Zoë's {x}? / 3 / [1, null, 2.5]" in eval_.request_for(eval_.items[0]).messages[-1][
        "content"]

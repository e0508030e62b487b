"""The store at scale: `posttrain store vacuum|info`, WAL checkpoints, indexes for the queries
the commands make, loaders that read only what they need, regrades that commit in groups.

No timings here (they live in bench/bench_scale.py): these check the mechanisms.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from posttrain.analysis.results import load_results
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.cli import main
from posttrain.runner import store as store_module
from posttrain.runner.store import Store
from tests.conftest import write_eval


def _store(path: Path, n: int = 40, runs: int = 2) -> tuple[Store, list[str]]:
    store = Store(path)
    items = make_items(n, tags=("a", "b"))
    ids = [simulate_run(store, "ev", StubModel(f"m{k}", 0.7), items, seed=k).id
           for k in range(runs)]
    return store, ids


def test_vacuum_shrinks_after_deletes_and_keeps_everything(tmp_path, capsys) -> None:
    path = tmp_path / "s.db"
    store, ids = _store(path, n=300, runs=3)
    before = load_results(store, ids[0]).item_scores()
    store.conn.execute("DELETE FROM samples WHERE run_id = ?", (ids[2],))
    store.conn.execute("DELETE FROM scores WHERE run_id = ?", (ids[2],))
    store.close()
    assert main(["store", "info", "--store", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 600 and info["free_bytes"] > 0 and info["bytes_per_sample"] > 0
    assert main(["store", "vacuum", "--store", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bytes_after"] < result["bytes_before"]
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0
    with Store(path) as again:
        assert load_results(again, ids[0]).item_scores() == before
        assert again.info()["free_bytes"] == 0


def test_vacuum_of_a_missing_store_is_one_line(tmp_path, capsys) -> None:
    assert main(["store", "vacuum", "--store", str(tmp_path / "none.db")]) == 2
    assert "no store here" in capsys.readouterr().err


def test_wal_is_bounded_and_checkpointed(tmp_path, monkeypatch) -> None:
    store = Store(tmp_path / "s.db")
    limit = store.conn.execute("PRAGMA journal_size_limit").fetchone()[0]
    assert limit == store_module.WAL_SIZE_LIMIT
    calls: list[str] = []
    original = Store.checkpoint

    def spy(self: Store, mode: str = "TRUNCATE") -> tuple[int, int, int]:
        calls.append(mode)
        return original(self, mode)

    monkeypatch.setattr(Store, "checkpoint", spy)
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY_COMMITS", 5)

    class Loop:  # group commits, flushed by hand
        def call_soon(self, _fn: object) -> None:
            pass

    store.group_commits(Loop())
    for index in range(12):
        store.cache_put(f"k{index}", {"text": "x" * 1000})
        store.flush()
    assert calls == ["PASSIVE", "PASSIVE"]  # after commits 5 and 10
    busy, _pages, _done = store.checkpoint("TRUNCATE")
    assert busy == 0 and Path(str(store.path) + "-wal").stat().st_size == 0
    store.close()


@pytest.mark.parametrize("sql", [
    "SELECT item_id, epoch, status FROM samples WHERE run_id = ? ORDER BY item_id, epoch",
    "SELECT item_id, grader FROM scores WHERE run_id = ? ORDER BY item_id, epoch, grader",
    "SELECT item_id, tags, data FROM run_items WHERE run_id = ? ORDER BY position",
    "SELECT * FROM runs WHERE eval_name = ? ORDER BY created DESC",
    "SELECT * FROM runs WHERE run_key = ? AND status = 'running' ORDER BY created DESC",
    "SELECT * FROM reviews WHERE eval_name = ? ORDER BY id",
    "SELECT * FROM score_history WHERE run_id = ? ORDER BY replaced",
    # one answer's re-grades (the viewer's pages, `load_results(only=...)`)
    "SELECT * FROM score_history WHERE run_id = ? AND item_id = ? AND epoch = ? "
    "ORDER BY replaced",
    "SELECT response FROM cache WHERE key = ?",
])
def test_the_commands_queries_use_an_index(tmp_path, sql: str) -> None:
    store, _ids = _store(tmp_path / "s.db", n=5, runs=1)
    plan = " ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                         ("x",) * sql.count("?")))
    assert "USING" in plan and "SCAN" not in plan.replace("USING INDEX", ""), plan
    store.close()


def test_one_answer_is_read_without_the_rest_of_the_run(tmp_path) -> None:
    store, ids = _store(tmp_path / "s.db", n=50, runs=1)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    one = load_results(store, ids[0], only=("q007", 0))
    store.conn.set_trace_callback(None)
    whole = load_results(store, ids[0])
    assert [s.item_id for s in one.samples] == ["q007"] and [i.id for i in one.items] == ["q007"]
    expected = next(s for s in whole.samples if s.item_id == "q007")
    assert (one.samples[0].value, one.samples[0].grades) == (expected.value, expected.grades)
    reads = [s for s in statements if s.startswith("SELECT") and "FROM runs" not in s]
    assert reads and all("'q007'" in s for s in reads), reads
    store.close()


def test_completions_are_parsed_only_when_read(tmp_path) -> None:
    store, ids = _store(tmp_path / "s.db", n=10, runs=1)
    results = load_results(store, ids[0])
    sample = results.samples[0]
    assert sample._completion is None and sample.answered  # not parsed yet
    assert not sample.completion_mentions("reasoning_tokens")
    from posttrain.analysis.report import summarize

    summarize(results)
    assert all(s._completion is None for s in results.samples)  # the report did not need them
    assert sample.output_text and sample._completion is not None
    store.close()


def test_runs_of_one_eval_share_their_items(tmp_path) -> None:
    from posttrain.analysis.selection import load_all

    store, ids = _store(tmp_path / "s.db", n=10, runs=2)
    first, second = load_all(store, [store.get_run(i) for i in ids])
    assert all(a is b for a, b in zip(first.items, second.items, strict=True))
    store.close()


def test_regrade_commits_in_groups(tmp_path, stub_server, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(30)]
    eval_path = write_eval(tmp_path / "ev", rows)
    path = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", path]) == 0
    write_eval(tmp_path / "ev", rows, graders=(  # an edited grader: every grade changes
        '  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
        'reference: "{{item.answer}}", operation: ne}\n'))
    commits: list[int] = []
    original = Store.flush

    def counting(self: Store) -> None:
        if self.conn.in_transaction:
            commits.append(1)
        original(self)

    monkeypatch.setattr(Store, "flush", counting)
    monkeypatch.setattr("posttrain.runner.regrade.COMMIT_EVERY", 10)
    # the answer-by-answer path (judges): string graders alone are re-graded in one transaction
    monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
    assert main(["regrade", "latest", "--store", path, "--json"]) == 0
    capsys.readouterr()
    assert 1 <= len(commits) <= 5  # 30 answers: every 10 and the last, not one per answer
    with Store(path) as store:
        run = store.resolve_run("latest")
        assert len(store.score_history(run.id)) == 30
        assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 30


def test_stored_summaries_are_served_only_while_the_run_is_unchanged(tmp_path) -> None:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.stored import stored, stored_summary
    from posttrain.types import Score

    store, ids = _store(tmp_path / "s.db", n=30, runs=1)
    run = store.get_run(ids[0])
    first = stored_summary(store, run)
    assert first == summarize(load_results(store, run))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    assert stored_summary(store, run) == first
    assert round(stored(store, run, "card")["score"]["mean"], 4) == first["score"]  # one read
    store.conn.set_trace_callback(None)
    assert not any("FROM samples" in s or "FROM scores" in s for s in statements)
    # any write to the run's grades, answers or items, through the store or not, is seen
    store.add_scores(run.id, "q000", 0, [Score(value=0.0, passed=False, name="exact")])
    store.add_scores(run.id, "q001", 0, [Score(value=1.0, passed=True, name="exact")])
    again = stored_summary(store, run)
    assert again == summarize(load_results(store, run))
    store.conn.execute("UPDATE scores SET value = 1 - value, passed = 1 - passed "
                       "WHERE run_id = ? AND item_id = 'q002'", (run.id,))
    assert stored_summary(store, run) == summarize(load_results(store, run)) != again
    store.conn.execute("DELETE FROM samples WHERE run_id = ? AND item_id = 'q003'", (run.id,))
    assert stored_summary(store, run)["missing"] == 1
    assert stored_summary(store, run, requests=7)["requests"] == 7
    store.close()


def test_a_store_from_before_the_triggers_gains_them(tmp_path) -> None:
    path = tmp_path / "old.db"
    store, ids = _store(path, n=5, runs=1)
    for (name,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                      ).fetchall():
        store.conn.execute(f"DROP TRIGGER {name}")
    store.close()
    with Store(path) as again:
        names = {r[0] for r in again.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert {"samples_insert_revision", "scores_update_revision",
                "run_items_delete_revision"} <= names


def test_a_large_run_is_created_with_one_revision_bump(tmp_path) -> None:
    """Creating a run of many items bumps its revision once (the run_items triggers are
    dropped inside the write and back before it commits); a failed creation keeps them."""
    from posttrain.analysis.synthetic import make_items

    def triggers(store: Store) -> set[str]:
        return {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")}

    store = Store(tmp_path / "s.db")
    every = triggers(store)
    assert len(every) == 9
    items = make_items(1500, tags=("a",))
    run = store.create_run(run_key="k", eval_name="ev", eval_path=None, eval_hash="h",
                           model="m", variant="default", epochs=1, config={}, items=items)
    assert triggers(store) == every
    assert [i.id for i in store.run_items(run.id)] == [i.id for i in items]  # positions kept
    stamp = store.run_stamp(run)
    assert stamp.startswith("1:")
    store.update_item(run.id, items[0])  # a later edit is still seen
    assert store.run_stamp(run) != stamp
    with pytest.raises(sqlite3.IntegrityError):  # the same item twice: nothing is kept
        store.create_run(run_key="k2", eval_name="ev", eval_path=None, eval_hash="h",
                         model="m", variant="default", epochs=1, config={},
                         items=items + items[:1])
    assert triggers(store) == every
    assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    store.close()


def test_the_viewer_pages_samples_in_sql(tmp_path) -> None:
    from posttrain.web import views

    store, ids = _store(tmp_path / "s.db", n=60, runs=1)
    whole = views.samples(store, ids[0])
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    page, total = views.samples_page(store, ids[0], limit=10, offset=20)
    store.conn.set_trace_callback(None)
    assert total == 60 and page == whole[20:30]
    whole_reads = [s for s in statements if "FROM samples WHERE run_id" in s
                   and "LIMIT" not in s and "COUNT" not in s and "item_id =" not in s
                   and "BETWEEN" not in s]
    assert not whole_reads, whole_reads
    failed, count = views.samples_page(store, ids[0], "failed", limit=5)
    assert count == sum(1 for row in whole if row["passed"] is False) and len(failed) <= 5
    store.close()


def test_pick_from_kept_figures_is_pick_from_the_samples(tmp_path, capsys) -> None:
    from posttrain.analysis.pick import pick, pick_from
    from posttrain.analysis.selection import load_all, select_runs
    from posttrain.analysis.stored import stored

    path = tmp_path / "s.db"
    store = Store(path)
    items = make_items(90, tags=("a", "b", "c"))
    for name, accuracy in (("big", 0.5), ("mid", 0.3), ("small", 0.2)):
        simulate_run(store, "ev", StubModel(name, accuracy, price=(1.0, 2.0)), items, seed=3)
    runs = select_runs(store, "ev")
    full = pick(load_all(store, runs), 0.4)
    kept = pick_from(runs, [stored(store, run, "pick") for run in runs], 0.4)
    assert kept == full and full["out_of_reach"]
    store.close()
    assert main(["pick", "ev", "--bar", "0.4", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["candidates"] == full["candidates"]
    # runs over different items: their tags are combined from the samples, not the figures
    with Store(path) as again:
        simulate_run(again, "ev", StubModel("other", 0.4), make_items(30, tags=("a",)), seed=4)
        runs = select_runs(again, "ev")
        figures = [stored(again, run, "pick") for run in runs]
        assert pick_from(runs, figures, 0.4)["out_of_reach"] is None
    assert main(["pick", "ev", "--bar", "0.4", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out_of_reach"] is not None


def test_a_running_run_keeps_no_summary(tmp_path) -> None:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.stored import stored_summary

    store, ids = _store(tmp_path / "s.db", n=10, runs=1)
    store.conn.execute("UPDATE runs SET status = 'running', finished = NULL")
    run = store.get_run(ids[0])
    assert stored_summary(store, run) == summarize(load_results(store, run))
    assert store.conn.execute("SELECT COUNT(*) FROM run_summaries").fetchone()[0] == 0
    store.finish_run(run.id)
    stored_summary(store, run)
    assert store.conn.execute("SELECT COUNT(*) FROM run_summaries").fetchone()[0] == 4
    store.close()


def test_a_run_checkpoints_the_wal_in_a_thread_of_its_own(tmp_path, monkeypatch) -> None:
    """While a run groups its commits, the writer's automatic checkpoint is off and a background
    thread checkpoints: the WAL stays far smaller than all that was written."""
    import time as time_module

    from posttrain.runner import checkpointer as checkpointer_module

    monkeypatch.setattr(checkpointer_module, "EVERY_S", 0.01)
    store = Store(tmp_path / "s.db")

    class Loop:  # group commits, flushed by hand
        def call_soon(self, _fn: object) -> None:
            pass

    store.group_commits(Loop(), background_checkpoints=True)
    background = store._checkpointer
    assert background is not None
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    written = 0
    for round_ in range(8):
        for index in range(25):
            store.cache_put(f"k{round_}-{index}", {"text": "x" * 20_000})
            store.flush()
            written += 20_000
        seen = background.checkpoints
        deadline = time_module.monotonic() + 5
        while background.checkpoints <= seen + 1 and time_module.monotonic() < deadline:
            time_module.sleep(0.005)
    wal = Path(str(store.path) + "-wal").stat().st_size
    assert background.checkpoints >= 8 and background.error is None
    assert wal < written / 3, (wal, written)
    store.group_commits(None)
    assert store._checkpointer is None
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert store.conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 200
    store.close()


def test_a_cache_entry_is_written_to_one_btree_and_old_stores_drop_the_model_index(
        tmp_path) -> None:
    """Cache keys are random hashes, so each entry lands on a random page of every B-tree that
    holds it: the cache keeps none but its own (the old index on ``model`` doubled a fresh
    eval's random page writes). ``cache clear --model`` still finds its entries."""
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX cache_model ON cache(model)")  # as stores written before
    conn.commit()
    conn.close()
    store = Store(path)
    indexes = [row[1] for row in store.conn.execute("PRAGMA index_list(cache)")
               if row[3] != "pk"]
    assert indexes == []
    store.cache_put("k1", {"text": "a"}, model="m1")
    store.cache_put("k2", {"text": "b"}, model="m2")
    assert store.cache_clear(models=["m1"]) == 1
    assert [row["model"] for row in store.cache_stats()] == ["m2"]
    store.close()


def test_the_wal_stays_bounded_while_commits_never_pause(tmp_path, monkeypatch) -> None:
    """A run at full speed commits without a pause, so a PASSIVE checkpoint never copies the
    whole WAL and it was never started again (a 20k-item eval grew it to 755 MB): past a size
    the checkpointer asks for a RESTART checkpoint, and the file is cut back."""
    import threading
    import time

    from posttrain.runner import checkpointer as checkpointer_module

    monkeypatch.setattr(checkpointer_module, "EVERY_S", 0.01)
    monkeypatch.setattr(checkpointer_module, "RESTART_AT_BYTES", 1024 * 1024)
    monkeypatch.setattr(store_module, "WAL_SIZE_LIMIT", 1024 * 1024)
    store = Store(tmp_path / "s.db")

    class Loop:
        def call_soon(self, _fn: object) -> None:
            pass

    store.group_commits(Loop(), background_checkpoints=True)
    background = store._checkpointer
    assert background is not None
    wal = Path(str(store.path) + "-wal")
    largest = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal largest
        while not stop.is_set():
            if wal.exists():
                largest = max(largest, wal.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    written = 0
    try:
        for index in range(2500):  # ~50 MB of rows, one commit each (a run's pace: ~1 ms)
            store.cache_put(f"k{index}", {"text": "x" * 20_000})
            store.flush()
            written += 20_000
            time.sleep(0.001)
    finally:
        stop.set()
        watcher.join()
    assert background.error is None and background.restarts >= 1
    assert largest < written / 2, (largest, written)  # it was all of it: 54.7 of 50 MB
    store.group_commits(None)
    assert store.conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 2500
    store.close()


def test_a_run_another_live_process_is_answering_is_not_resumed_beside_it(
        tmp_path, capsys, monkeypatch) -> None:
    """Two `posttrain eval` of one eval and model on one store at once both resumed the same
    run and sent its pending requests twice (2,107 of 3,000 here): the second is refused, one
    line, exit 2, before any request; a runner that is gone (or whose pid now names another
    process) is resumed."""
    import subprocess
    import sys

    from posttrain.runner import process
    from tests.conftest import StubServer

    server = StubServer()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        rows = [{"id": f"q{k:02d}", "question": f"[[answer:{k}]]", "answer": str(k)}
                for k in range(40)]
        path = write_eval(tmp_path / "e", rows)
        db = str(tmp_path / "s.db")
        argv = ["eval", str(path), "--model", "openai:stub", "--store", db, "--no-progress",
                "--no-cache"]
        assert main(argv) == 0
        with Store(db) as store:  # as if a live process were half-way through it
            (run_id,) = store.conn.execute("SELECT id FROM runs").fetchone()
            store.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
            store.conn.execute("DELETE FROM samples WHERE run_id = ? AND item_id >= 'q20'",
                               (run_id,))
            store.conn.commit()
            store.update_run_config(run_id, {"runner": {
                **process.identity(), "pid": sleeper.pid,
                "start": process.start_time(sleeper.pid)}})
        capsys.readouterr()
        before = server.stats()["total_attempts"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert f"run {run_id} is being answered now by process {sleeper.pid}" in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert server.stats()["total_attempts"] == before
        # the same pid with another start time is another process: its run is resumed
        with Store(db) as store:
            store.update_run_config(run_id, {"runner": {
                **process.identity(), "pid": sleeper.pid, "start": "1"}})
        assert main(argv) == 0
        assert server.stats()["total_attempts"] == before + 20
        with Store(db) as store:
            assert store.get_run(run_id).status == "finished"
    finally:
        sleeper.kill()
        sleeper.wait()
        server.close()


def test_another_programs_sqlite_database_is_refused_not_turned_into_a_store(
        tmp_path, capsys) -> None:
    """`posttrain store info --store other.db` on another application's SQLite file added
    posttrain's tables to it and said "0 runs": refused, one line, the file left as it was."""
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    for argv in (["store", "info", "--store", str(other)], ["runs", "--store", str(other)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "not a posttrain store: an SQLite database of something else (tables invoices)" \
            in err and len(err.splitlines()) == 1, err
    assert other.read_bytes() == before
    assert [r[0] for r in sqlite3.connect(other).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")] == ["invoices"]
    # one that happens to have a `runs` table too
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE runs (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    assert main(["runs", "--store", str(other)]) == 2
    assert "not a posttrain store" in capsys.readouterr().err
    assert other.read_bytes() == before


def test_vacuum_is_refused_while_a_live_process_answers_a_run(tmp_path, capsys) -> None:
    import subprocess
    import sys

    from posttrain.runner import process

    store, ids = _store(tmp_path / "s.db", n=5, runs=1)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (ids[0],))
        store.conn.commit()
        store.update_run_config(ids[0], {"runner": {
            **process.identity(), "pid": sleeper.pid, "start": process.start_time(sleeper.pid)}})
        store.close()
        assert main(["store", "vacuum", "--store", str(tmp_path / "s.db")]) == 2
        err = capsys.readouterr().err
        assert f"is being answered now by process {sleeper.pid}" in err, err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["store", "vacuum", "--store", str(tmp_path / "s.db")]) == 0  # gone: vacuumed


def test_two_evals_of_one_run_started_at_the_same_moment_send_each_request_once(
        tmp_path) -> None:
    """Started together, both found no run to resume and each created its own: every request
    went out twice. The run is created in one write with the check, so the second is refused
    (one line, exit 2) and the stub answers each item once."""
    import subprocess
    import sys

    from tests.conftest import StubServer

    server = StubServer(0.1)
    try:
        rows = [{"id": f"q{k:03d}", "question": f"[[answer:{k}]]", "answer": str(k)}
                for k in range(300)]
        path = write_eval(tmp_path / "e", rows)
        argv = [sys.executable, "-m", "posttrain.cli", "eval", str(path), "--model",
                "openai:stub", "--store", str(tmp_path / "s.db"), "--no-progress",
                "--concurrency", "8"]
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(proc.wait(timeout=240), proc.stderr.read()) for proc in procs]
        codes = sorted(code for code, _err in results)
        assert codes == [0, 2], results
        (refused,) = [err for code, err in results if code == 2]
        assert "is being answered now by process" in refused and "Traceback" not in refused
        stats = server.stats()
        assert stats["total_attempts"] == 300, (stats["total_attempts"], results)
    finally:
        server.close()


def test_store_info_on_a_folder_says_it_is_a_folder(tmp_path, capsys) -> None:
    for command in ("info", "vacuum"):
        assert main(["store", command, "--store", str(tmp_path)]) == 2
        assert "is a folder: --store takes a store file" in capsys.readouterr().err



def test_a_config_update_never_writes_over_another_process_update(tmp_path,
                                                                  monkeypatch) -> None:
    """``update_run_config`` reads the config inside its write transaction, under the write
    lock: another process that updates the run meanwhile waits (here: is refused at once, with
    no busy wait) and its update, made after, is kept, as is this one's. Reading first and
    writing after let it land in between and be written over with the config read before."""
    path = tmp_path / "s.db"
    store, ids = _store(path, n=5, runs=1)
    other = Store(path)
    other.conn.execute("PRAGMA busy_timeout=0")
    refused: list[str] = []
    original = sqlite3.Connection.execute

    class Conn(sqlite3.Connection):  # the other process's update lands as this one reads
        def execute(self, sql, *args):  # type: ignore[override]
            result = original(self, sql, *args)
            if "FROM runs WHERE id" in sql and not refused:
                try:
                    other.update_run_config(ids[0], {"theirs": 1})
                    refused.append("landed")
                except sqlite3.OperationalError:
                    refused.append("waited")
            return result

    ours = Store(path)
    ours.conn.close()
    ours.conn = sqlite3.connect(path, factory=Conn, isolation_level=None, timeout=30)
    ours.conn.row_factory = sqlite3.Row
    ours.update_run_config(ids[0], {"ours": 1})
    if refused == ["landed"]:  # then it must not have been written over
        with Store(path) as reader:
            assert reader.get_run(ids[0]).config.get("theirs") == 1, "an update was lost"
    assert refused == ["waited"]
    other.update_run_config(ids[0], {"theirs": 1})  # the retry, after
    with Store(path) as reader:
        config = reader.get_run(ids[0]).config
    assert config["ours"] == 1 and config["theirs"] == 1
    with pytest.raises(KeyError):
        ours.update_run_config("no-such-run", {"x": 1})
    for opened in (ours, other, store):
        opened.conn.close()


def test_store_info_names_the_write_ahead_log(tmp_path, capsys) -> None:
    """The write-ahead log's bytes are part of the store's size and `vacuum` gives them back:
    `store info` says how many, beside the free pages (it counted them in the size alone)."""
    path = tmp_path / "s.db"
    store, ids = _store(path, n=200, runs=2)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")
    store.conn.execute("DELETE FROM samples WHERE run_id = ?", (ids[1],))
    wal = Path(str(path) + "-wal").stat().st_size
    assert wal > 0
    assert main(["store", "info", "--store", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["wal_bytes"] == wal and info["bytes"] >= wal + info["free_bytes"]
    assert main(["store", "info", "--store", str(path)]) == 0
    assert f"{wal / 1e6:.1f} MB write-ahead log" in capsys.readouterr().out
    store.close()

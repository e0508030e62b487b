"""A store this process cannot write (an archive, a read-only share): the commands that only
read it work; those that write are refused before anything runs; the viewer browses it and
refuses votes."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.cli import main as posttrain_main
from posttrain.runner.store import Store
from tests.conftest import write_eval


def _lock(paths: list[Path]) -> Iterator[None]:
    """Make ``paths`` unwritable for this process: ``chattr +i`` as root (root ignores modes),
    else modes; skipped where neither holds."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("root without chattr: cannot make a file read-only")
        done = []
        try:
            for path in paths:
                if subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
                    pytest.skip("this file system does not take chattr +i")
                done.append(path)
            yield
        finally:
            for path in done:
                subprocess.run([chattr, "-i", str(path)], capture_output=True)
    else:
        modes = [(path, path.stat().st_mode) for path in paths]
        try:
            for path in paths:
                path.chmod(0o555 if path.is_dir() else 0o444)
            yield
        finally:
            for path, mode in modes:
                path.chmod(mode)


@pytest.fixture()
def finished_store(tmp_path: Path, stub_server, capsys, monkeypatch) -> tuple[Path, Path, str]:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"id": f"q{i}", "question": f"capital #{i}? [[answer:{'Paris' if i % 3 else 'Rome'}]]",
             "answer": "Paris"} for i in range(6)]
    eval_path = write_eval(tmp_path / "ev", rows)
    folder = tmp_path / "archive"
    folder.mkdir()
    store = folder / "s.db"
    for variant in ("a", "b"):  # two runs, so compare has a pair
        assert posttrain_main(["eval", str(eval_path), "--model", f"openai:stub-{variant}",
                               "--store", str(store), "--json"]) == 0
    capsys.readouterr()
    gc.collect()  # the commands' stores, closed (a process ends with its connections)
    with Store(store) as opened:
        opened.checkpoint("TRUNCATE")
    assert not list(folder.glob("s.db-*"))  # the last connection folded the WAL in
    return store, eval_path, "stubby"


@pytest.mark.parametrize("folder_too", [False, True])
def test_reading_commands_work_on_a_read_only_store(finished_store, capsys, folder_too) -> None:
    store, eval_path, name = finished_store
    with Store(store, reading=True) as before:
        runs = [run.id for run in before.list_runs(name)]
    assert not before.read_only and not list(store.parent.glob("s.db-*"))
    locked = [store, store.parent] if folder_too else [store]
    for _ in _lock(locked):
        for args in (["report", "--eval", name], ["runs"], ["compare", name],
                     ["compare", runs[0], runs[1]], ["audit", name], ["pick", name, "--bar", "0.5"],
                     ["store", "info"], ["cache", "ls"]):
            assert posttrain_main([*args, "--store", str(store)]) == 0, args
            assert "read-only" not in capsys.readouterr().err
        assert posttrain_main(["report", runs[0], "--store", str(store), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)["runs"][0]
        assert (summary["n"], summary["scored"], summary["score"]) == (6, 6, round(4 / 6, 4))
        with Store(store, reading=True) as opened:
            assert opened.read_only
        for args in (["regrade", runs[0]], ["store", "vacuum"], ["cache", "clear"],
                     ["eval", str(eval_path), "--model", "openai:stub-a"]):
            assert posttrain_main([*args, "--store", str(store)]) == 2, args
            assert "read-only" in capsys.readouterr().err, args
        if folder_too:  # nothing was written beside it
            assert [p.name for p in store.parent.iterdir()] == ["s.db"]


async def test_the_viewer_browses_a_read_only_store_and_refuses_votes(finished_store) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    store, _eval_path, name = finished_store
    for _ in _lock([store]):
        client = TestClient(TestServer(create_app(store, seed=1), host="127.0.0.1"))
        await client.start_server()
        try:
            runs = await (await client.get("/api/runs")).json()
            assert len(runs) == 2
            assert (await (await client.get("/api/store")).json()) == {"read_only": True}
            page = await (await client.get(f"/api/matrix?eval={name}")).json()
            assert page["total"] == 6
            vote = await client.post("/api/arena/vote", json={})
            assert vote.status == 403
            assert "read-only" in (await vote.json())["error"]
        finally:
            await client.close()


def _json(capsys, args: list[str]) -> object:
    assert posttrain_main([*args, "--json"]) == 0, args
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("state", ["unfinished", "no_kept_facts", "changed_after_finish"])
def test_a_read_only_store_gives_the_writable_copys_numbers(finished_store, capsys, tmp_path,
                                                           state) -> None:
    """Runs whose figures are not kept (a run killed mid-way, a store from before the kept
    facts, a run changed after it finished): computed for the one command, the same numbers
    as a writable copy gives."""
    store, _eval_path, name = finished_store
    with Store(store) as opened:
        runs = [run.id for run in opened.list_runs(name)]
    score_before = _json(capsys, ["report", runs[1], "--store", str(store)])["runs"][0]["score"]
    conn = sqlite3.connect(store)
    if state == "unfinished":
        conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE id = ?",
                     (runs[0],))
        conn.execute("DELETE FROM samples WHERE run_id = ? AND item_id = 'q1'", (runs[0],))
    elif state == "no_kept_facts":
        for table in ("sample_facts", "item_cells", "run_columns"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM run_summaries")
    else:
        conn.execute("UPDATE scores SET value = 0, passed = 0 WHERE run_id = ? "
                     "AND item_id IN ('q1', 'q2')", (runs[1],))
    conn.commit()
    conn.close()
    gc.collect()  # every connection closed: the WAL folded into the file before it is copied
    with Store(store) as opened:
        opened.checkpoint("TRUNCATE")
    assert not list(store.parent.glob("s.db-*"))
    writable = tmp_path / "writable"
    writable.mkdir()
    shutil.copyfile(store, writable / "s.db")
    commands = [["report", "--eval", name], ["report", runs[0]], ["compare", runs[0], runs[1]],
                ["compare", name], ["audit", name], ["pick", name, "--bar", "0.5"]]
    expected = [_json(capsys, [*c, "--store", str(writable / "s.db")]) for c in commands]
    for _ in _lock([store, store.parent]):
        got = [_json(capsys, [*c, "--store", str(store)]) for c in commands]
    assert got == expected
    if state == "changed_after_finish":  # the change shows, not the figures kept before it
        changed = next(r for r in got[0]["runs"] if r["run_id"] == runs[1])
        assert changed["score"] < score_before
    if state == "unfinished":  # the deleted answer is missing, in both
        assert got[1]["runs"][0]["missing"] == 1


def test_readers_that_used_to_ask_for_a_writable_store(finished_store, capsys, tmp_path) -> None:
    """report --html (its heatmap sections), pick --models whose models all have runs; a model
    without a run cannot be run into a read-only store: one line, exit 2."""
    store, eval_path, name = finished_store
    for _ in _lock([store]):
        page = tmp_path / "r.html"
        assert posttrain_main(["report", "--eval", name, "--store", str(store),
                               "--html", str(page)]) == 0
        assert page.stat().st_size > 0
        capsys.readouterr()
        assert posttrain_main(["pick", str(eval_path), "--bar", "0.5", "--store", str(store),
                               "--models", "openai:stub-a", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["missing_models"] == []
        assert posttrain_main(["pick", str(eval_path), "--bar", "0.5", "--store", str(store),
                               "--models", "openai:newcomer"]) == 2
        err = capsys.readouterr().err
        assert "read-only" in err and "openai:newcomer" in err and len(err.splitlines()) == 1


async def test_the_viewer_lists_an_unfinished_run_of_a_read_only_store(finished_store) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from posttrain.web.server import create_app

    store, _eval_path, name = finished_store
    with Store(store) as opened:
        run = opened.list_runs(name)[0]
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE id = ?",
                     (run.id,))
    gc.collect()
    for _ in _lock([store, store.parent]):
        client = TestClient(TestServer(create_app(store, seed=1), host="127.0.0.1"))
        await client.start_server()
        try:
            listed = await client.get("/api/runs")
            assert listed.status == 200 and len(await listed.json()) == 2
            page = await client.get(f"/api/runs/{run.id}")
            assert page.status == 200
            assert (await client.get(f"/api/matrix?eval={name}")).status == 200
            same = await client.get(f"/api/compare?a={run.id}&b={run.id[:-1]}")
            assert same.status == 400
        finally:
            await client.close()

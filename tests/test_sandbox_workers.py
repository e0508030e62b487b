"""One warm sandbox worker per core: the pool's size, ``--sandbox-workers``, and a regrade of
sandbox-graded answers that keeps every worker busy and says its rate."""

from __future__ import annotations

import json
import threading

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.graders import build_grader, sandbox
from posttrain.runner.store import Store
from tests.conftest import write_eval

SLOW = ('  - {type: python, name: slow, source: "import time\\ndef grade(sample, item):\\n'
        '    time.sleep(0.1)\\n    return float(sample[\'output_text\'] == item[\'answer\'])\\n"}\n')


def test_default_workers_is_one_per_usable_core(monkeypatch) -> None:
    monkeypatch.delenv("POSTTRAIN_SANDBOX_WORKERS", raising=False)
    monkeypatch.setattr(sandbox.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert sandbox.cpu_cores() == 3 and sandbox.default_workers() == 3
    monkeypatch.setenv("POSTTRAIN_SANDBOX_WORKERS", "5")
    assert sandbox.default_workers() == 5
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("POSTTRAIN_SANDBOX_WORKERS", bad)
        with pytest.raises(UserError, match="POSTTRAIN_SANDBOX_WORKERS"):
            sandbox.default_workers()


def test_sandbox_workers_option_sizes_the_pool(monkeypatch, capsys) -> None:
    monkeypatch.setenv("POSTTRAIN_SANDBOX_WORKERS", "1")
    monkeypatch.setattr(sandbox, "_POOL", None)
    sandbox.configure(workers=3)
    pool = sandbox.default_pool()
    try:
        assert pool.size == 3
    finally:
        pool.close()
    with pytest.raises(UserError):
        sandbox.configure(workers=0)
    with pytest.raises(SystemExit):
        main(["regrade", "latest", "--sandbox-workers", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_multi_with_a_sandboxed_grader_is_graded_off_the_loop() -> None:
    multi = build_grader({"type": "multi", "name": "m", "calculate_output": "a + b", "graders": {
        "a": {"type": "python", "name": "a", "source": "def grade(s, i):\n    return 1\n"},
        "b": {"type": "string_check", "name": "b", "input": "x", "reference": "x",
              "operation": "eq"}}})
    assert multi.blocking is True
    plain = build_grader({"type": "multi", "name": "m", "calculate_output": "b", "graders": {
        "b": {"type": "string_check", "name": "b", "input": "x", "reference": "x",
              "operation": "eq"}}})
    assert plain.blocking is False


def test_regrade_grades_on_every_worker_and_says_its_rate(tmp_path, stub_server, capsys,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("POSTTRAIN_SANDBOX_WORKERS", "1")
    monkeypatch.setattr(sandbox, "_POOL", None)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(16)]
    eval_path = write_eval(tmp_path / "ev", rows, graders=SLOW)
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    capsys.readouterr()

    lock = threading.Lock()
    busy = {"now": 0, "peak": 0}
    call = sandbox._Worker.call

    def counted(self, *args, **kwargs):  # calls inside a worker at the same moment
        with lock:
            busy["now"] += 1
            busy["peak"] = max(busy["peak"], busy["now"])
        try:
            return call(self, *args, **kwargs)
        finally:
            with lock:
                busy["now"] -= 1

    monkeypatch.setattr(sandbox._Worker, "call", counted)
    try:
        assert main(["regrade", "latest", "--store", store, "--json",
                     "--sandbox-workers", "2"]) == 0
        out = capsys.readouterr()
        workers = len(sandbox.default_pool()._all)
    finally:
        sandbox.default_pool().close()
    run = json.loads(out.out)["runs"][0]
    assert run["score"] == 1.0 and run["scored"] == 16
    rate = run["regrade"]
    assert rate["answers"] == 16 and rate["grades"] == 16 and rate["sandbox_workers"] == 2
    assert rate["grades_per_s"] > 0 and rate["seconds"] > 0
    assert "grades/s on 2 sandbox workers" in out.err
    assert busy["peak"] == 2 and workers == 2  # both warm workers graded at once, never more
    # every grade as it was (rewritten only for its sandbox's description): no history row
    assert Store(store).score_history(Store(store).resolve_run("latest").id) == []


def test_regrade_with_string_graders_reports_no_sandbox(tmp_path, stub_server, capsys,
                                                        monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = [{"id": f"q{i}", "question": f"q{i} [[answer:x]]", "answer": "x"} for i in range(3)]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    capsys.readouterr()
    assert main(["regrade", "latest", "--store", store, "--json"]) == 0
    kept = json.loads(capsys.readouterr().out)["runs"][0]["regrade"]
    assert (kept["answers"], kept["kept"]) == (0, 3)  # graders and items unchanged
    assert main(["regrade", "latest", "--store", store, "--json", "--full"]) == 0
    out = capsys.readouterr()
    rate = json.loads(out.out)["runs"][0]["regrade"]
    assert rate["answers"] == 3 and rate["grades"] == 3 and rate["sandbox_workers"] is None
    assert "grades/s" in out.err and "sandbox worker" not in out.err

"""`posttrain eval` end to end against a stub server: the JSON contract, cache, resume, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posttrain.cli import main
from tests.conftest import StubServer, write_eval


def _rows(n: int, *, fault: str = "") -> list[dict]:
    rows = []
    for i in range(n):
        answer = "Paris" if i % 4 else "Lyon"  # one in four answered wrong
        rows.append({"id": f"q{i}", "question": f"capital #{i}? [[answer:{answer}]]{fault}",
                     "answer": "Paris", "category": "even" if i % 2 == 0 else "odd"})
    return rows


def _eval(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, (json.loads(out) if "--json" in argv and code in (0, 1) else {})


def test_json_contract_and_cached_rerun(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-123")
    eval_path = write_eval(tmp_path / "ev", _rows(20))
    store = str(tmp_path / "s.db")
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", store, "--json"]
    code, report = _eval(tmp_path, argv, capsys)
    assert code == 0
    (run,) = report["runs"]
    for key in ("run_id", "model", "variant", "n", "scored", "errors", "unscored", "score",
                "ci_low", "ci_high", "by_tag", "requests", "cost_usd", "latency_p50_s",
                "latency_p95_s"):
        assert key in run
    assert run["n"] == 20 and run["scored"] == 20 and run["errors"] == 0
    assert run["score"] == pytest.approx(15 / 20)
    assert run["ci_low"] < 0.75 < run["ci_high"]
    assert run["by_tag"]["even"]["n"] == 10
    assert run["requests"] == 20
    # a repeated run is served from the cache: zero requests, same score
    code, again = _eval(tmp_path, argv, capsys)
    assert code == 0
    assert again["runs"][0]["requests"] == 0
    assert again["runs"][0]["score"] == run["score"]
    assert stub_server.stats()["total_attempts"] == 20
    # --no-cache sends again
    code, fresh = _eval(tmp_path, argv + ["--no-cache"], capsys)
    assert fresh["runs"][0]["requests"] == 20
    # the API key is in no stored byte
    for file in tmp_path.glob("s.db*"):
        assert b"sk-test-secret-key-123" not in file.read_bytes()


def test_fail_under_exit_code(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    eval_path = write_eval(tmp_path / "ev", _rows(8))
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(tmp_path / "s.db")]
    assert main(argv + ["--fail-under", "0.9"]) == 1
    assert main(argv + ["--fail-under", "0.5"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("fault", ["500:2", "503:1", "429:2", "malformed:1", "noshape:2", "hang:1"])
def test_transient_faults_are_retried(tmp_path, stub_server, capsys, monkeypatch, fault):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    eval_path = write_eval(tmp_path / "ev", _rows(6, fault=f"[[fault:{fault}]]"))
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
            "--json", "--timeout", "1", "--max-retries", "3"]
    code, report = _eval(tmp_path, argv, capsys)
    assert code == 0
    run = report["runs"][0]
    assert run["errors"] == 0 and run["scored"] == 6
    assert run["retries"] >= 6
    stats = stub_server.stats()
    assert all(count == 1 for count in stats["successes"].values())  # none answered twice


@pytest.mark.parametrize("fault", ["500:always", "400:always"])
def test_permanent_faults_become_recorded_errors(tmp_path, stub_server, capsys, monkeypatch, fault):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = _rows(4)
    rows[0]["question"] += f"[[fault:{fault}]]"
    eval_path = write_eval(tmp_path / "ev", rows)
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
            "--json", "--max-retries", "2"]
    code, report = _eval(tmp_path, argv, capsys)
    assert code == 0
    run = report["runs"][0]
    assert run["errors"] == 1 and run["scored"] == 3 and run["n"] == 4
    reason = next(iter(run["problems"]))
    assert "HTTP" in reason
    attempts = stub_server.stats()["attempts"]
    expected = 3 if fault.startswith("500") else 1  # 4xx is not retried
    assert attempts[rows[0]["question"]] == expected


def test_sdk_client_same_results(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    rows = _rows(6)
    rows[1]["question"] += "[[fault:429:1]]"
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    _, lean = _eval(tmp_path, ["eval", str(eval_path), "--model", "openai:stub", "--store", store,
                               "--json"], capsys)
    _, sdk = _eval(tmp_path, ["eval", str(eval_path), "--model", "openai:stub?client=sdk",
                              "--store", store, "--json", "--no-cache"], capsys)
    assert lean["runs"][0]["score"] == sdk["runs"][0]["score"]
    assert sdk["runs"][0]["retries"] == 0  # the 429 was spent by the lean run
    assert sdk["runs"][0]["scored"] == 6


def test_kill_and_resume_loses_nothing_and_resends_nothing(tmp_path):
    server = StubServer(latency=0.05)
    try:
        eval_path = write_eval(tmp_path / "ev", _rows(200))
        store = tmp_path / "s.db"
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
        cmd = [sys.executable, "-m", "posttrain.cli", "eval", str(eval_path), "--model",
               "openai:stub", "--store", str(store), "--concurrency", "4", "--json"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        import sqlite3

        deadline = time.time() + 30
        done = 0
        while time.time() < deadline:
            time.sleep(0.2)
            if store.exists():
                try:
                    done = sqlite3.connect(store).execute("SELECT COUNT(*) FROM samples").fetchone()[0]
                except sqlite3.OperationalError:
                    continue
                if done >= 40:
                    break
        proc.kill()  # SIGKILL midway
        proc.wait()
        stored_before = sqlite3.connect(store).execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        assert 0 < stored_before < 200
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        run = json.loads(result.stdout)["runs"][0]
        assert run["n"] == 200 and run["scored"] == 200
        # only what was in flight at the kill may repeat: the 4 requests out, and the answers
        # that had arrived but waited to be graded and committed (the executor lets at most
        # 2 x workers wait, so the next request goes out before the last answer is stored)
        in_flight = 4 + 2 * 4
        assert run["requests"] <= 200 - stored_before + in_flight
        stats = server.stats()
        answered_twice = [k for k, v in stats["successes"].items() if v > 1]
        assert len(answered_twice) <= in_flight
        db = sqlite3.connect(store)
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(DISTINCT item_id) FROM samples").fetchone()[0] == 200
    finally:
        server.close()


def test_epochs_give_pass_at_k_and_pass_hat_k(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    eval_path = write_eval(tmp_path / "ev", _rows(8))
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
            "--json", "--epochs", "3"]
    code, report = _eval(tmp_path, argv, capsys)
    run = report["runs"][0]
    assert code == 0 and run["n"] == 24 and run["scored"] == 24
    assert run["requests"] == 24  # each epoch is its own request, not a cache hit
    # the stub is deterministic: every item passes all epochs or none
    assert run["pass_at_k"] == {"1": 0.75, "2": 0.75, "3": 0.75}
    assert run["pass_hat_k"]["3"] == 0.75


def test_report_command_and_html(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    eval_path = write_eval(tmp_path / "ev", _rows(8))
    store = str(tmp_path / "s.db")
    assert main(["eval", str(eval_path), "--model", "openai:stub", "--store", store]) == 0
    table = capsys.readouterr().out
    assert "stubby" in table and "by tag" in table and "0.750" in table
    html_path = tmp_path / "r.html"
    assert main(["report", "latest", "--store", store, "--html", str(html_path)]) == 0
    page = html_path.read_text()
    assert "<svg" in page and "openai:stub" in page and "<script src" not in page
    assert main(["report", "nope", "--store", store]) == 2
    capsys.readouterr()


def test_suite_ref_runs_and_html_has_length_depth_heatmap(tmp_path, stub_server, capsys,
                                                          monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    html_path = tmp_path / "lc.html"
    argv = ["eval", "suite:long_context?n=10&seed=3", "--model", "openai:stub", "--store",
            str(tmp_path / "s.db"), "--html", str(html_path), "--json"]
    code, report = _eval(tmp_path, argv, capsys)
    assert code == 0 and report["runs"][0]["n"] == 10
    assert (tmp_path / "cache" / "suites").is_dir()  # built once into the cache
    page = html_path.read_text()
    assert "score by context length × needle depth" in page

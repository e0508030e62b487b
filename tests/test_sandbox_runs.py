"""The sandbox in a run: confinement in the run's metadata and summary, refusal before any
request when no sandbox can be had, and ``--unsafe-no-sandbox`` shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.analysis.report import render_table
from posttrain.api import run_eval
from posttrain.cli import main as cli_main
from posttrain.eval import eval_from_dict
from posttrain.graders import sandbox
from posttrain.graders.sandbox import SandboxPool, SandboxUnavailable
from posttrain.runner.store import Store

CODE = {"type": "code_exec", "name": "code", "tests": ["assert add(2, 3) == 5"], "timeout": 5}


def _eval():
    items = [{"id": "good", "q": "[[answer:def add(a, b): return a + b]]"},
             {"id": "bad", "q": "[[answer:def add(a, b): return a - b]]"}]
    return eval_from_dict({"name": "sbx", "items": items,
                           "messages": [{"role": "user", "content": "{{item.q}}"}],
                           "graders": [CODE]})


@pytest.fixture
def pool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    kind = getattr(request, "param", "auto")
    made = (SandboxPool(size=1, mode="unsafe-none") if kind == "unsafe" else
            SandboxPool(size=1, simulate_missing={"landlock", "bwrap"}) if kind == "refused" else
            SandboxPool(size=1))
    monkeypatch.setattr(sandbox, "_POOL", made)
    yield made
    made.close()


def test_a_run_records_its_confinement(tmp_path: Path, stub_server, pool) -> None:
    [summary] = run_eval(_eval(), [f"openai:stub?base_url={stub_server.base_url}"],
                         store=str(tmp_path / "s.db"))
    assert summary["score"] == pytest.approx(0.5)
    assert summary["confinement"] == pool.confinement
    assert summary["confinement"].startswith(("kernel", "bwrap", "docker"))
    with Store(tmp_path / "s.db") as store:
        assert store.get_run(summary["run_id"]).config["confinement"] == pool.confinement
    assert "NO sandbox" not in render_table([summary])


@pytest.mark.parametrize("pool", ["refused"], indirect=True)
def test_no_sandbox_refuses_before_any_request(tmp_path: Path, stub_server, pool) -> None:
    with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
        run_eval(_eval(), [f"openai:stub?base_url={stub_server.base_url}"],
                 store=str(tmp_path / "s.db"))
    assert stub_server.stats()["total_attempts"] == 0


@pytest.mark.parametrize("pool", ["unsafe"], indirect=True)
def test_unsafe_opt_out_is_shown_in_the_report(tmp_path: Path, stub_server, pool) -> None:
    [summary] = run_eval(_eval(), [f"openai:stub?base_url={stub_server.base_url}"],
                         store=str(tmp_path / "s.db"))
    assert summary["confinement"] == sandbox.UNSAFE and summary["score"] == pytest.approx(0.5)
    assert "model-written code ran with NO sandbox" in render_table([summary])


@pytest.mark.parametrize("pool", ["refused"], indirect=True)
def test_cli_grade_refuses_in_one_line(tmp_path: Path, pool, capsys) -> None:
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps({"type": "python", "source": "def grade(s, i):\n    return 1\n"}))
    code = cli_main(["grade", str(grader), "--item", "{}", "--output-text", "x"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "refusing to run model-written code" in err


def test_cli_unsafe_flag_sets_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_SANDBOX", "auto")
    sandbox.apply_cli_arguments(type("Args", (), {"unsafe_no_sandbox": True})())
    try:
        assert sandbox.default_pool().mode == "unsafe-none"
    finally:
        sandbox.configure("auto")

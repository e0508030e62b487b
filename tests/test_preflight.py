"""Fail loud before spending (issue 12, section 1): every setup problem stops the run with one
line naming the file, line and field or the model spec, exit 2, before any request is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.runner.store import Store
from tests.conftest import StubServer, write_eval

ROWS = [{"id": "a", "question": "[[answer:Paris]]", "answer": "Paris", "category": "geo"},
        {"id": "b", "question": "[[answer:Rome]]", "answer": "Rome", "category": "geo"}]


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "posttrain.cli", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def keyed_server() -> Iterator[StubServer]:
    server = StubServer(0.0, "--api-key", "sk-right", "--models", "stub,other")
    yield server
    server.close()


def test_missing_key_for_the_hosted_api(tmp_path: Path) -> None:
    path = write_eval(tmp_path / "e", ROWS)
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    line = one_line_error(run_cli("eval", str(path), "--model", "openai:gpt-4.1-mini",
                                  "--store", str(tmp_path / "s.db"), env=env))
    assert "openai:gpt-4.1-mini" in line and "OPENAI_API_KEY is not set" in line


def test_endpoint_refusing_the_key_missing_model_and_refused_connection(
        tmp_path: Path, keyed_server: StubServer) -> None:
    path = write_eval(tmp_path / "e", ROWS)
    store = tmp_path / "s.db"
    url = keyed_server.base_url
    wrong = one_line_error(run_cli("eval", str(path), "--model", f"openai:stub?base_url={url}",
                                   "--store", str(store), env={"OPENAI_API_KEY": "sk-wrong"}))
    assert "refused the credentials (HTTP 401" in wrong and f"openai:stub?base_url={url}" in wrong
    missing = one_line_error(run_cli("eval", str(path), "--model", f"openai:nope?base_url={url}",
                                     "--store", str(store), env={"OPENAI_API_KEY": "sk-right"}))
    assert "does not serve model 'nope'" in missing and "it serves: stub, other" in missing
    refused = one_line_error(run_cli("eval", str(path), "--model",
                                     "openai:stub?base_url=http://127.0.0.1:9/v1",
                                     "--store", str(store)))
    assert "cannot connect to http://127.0.0.1:9/v1" in refused
    assert keyed_server.stats()["total_attempts"] == 0  # no eval request reached the server
    if store.exists():
        with Store(store) as db:
            assert db.list_runs() == []  # nothing created, nothing to resume
    ok = run_cli("eval", str(path), "--model", f"openai:stub?base_url={url}", "--store",
                 str(store), "--json", env={"OPENAI_API_KEY": "sk-right"})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["runs"][0]["score"] == 1.0


def test_local_model_path_that_does_not_exist(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # hf: checks its packages (posttrain[train]) before the path
    path = write_eval(tmp_path / "e", ROWS)
    line = one_line_error(run_cli("eval", str(path), "--model", f"hf:{tmp_path}/no-such-model",
                                  "--store", str(tmp_path / "s.db")))
    assert "no such file or folder" in line and "no-such-model" in line


@pytest.mark.parametrize(("extra", "graders", "where", "message"), [
    ("sampling: {max_token: 16}\n", None, "eval.yaml:8: sampling.max_token",
     "did you mean 'max_tokens'"),
    ("sampling: {temperature: zero}\n", None, "eval.yaml:8: sampling.temperature",
     "must be a number, got 'zero'"),
    ("sampling: {n: 3}\n", None, "sampling.n", "--epochs"),
    ("", '  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
         'reference: "{{item.answr}}", operation: eq}\n', "eval.yaml:6: graders[0].reference",
     "has no field 'answr'; did you mean 'answer'?"),
    ("", '  - {type: string_check, name: exact, input: "{{sample.output_txt}}", '
         'reference: "{{item.answer}}", operation: eq}\n', "graders[0].input",
     "did you mean 'output_text'"),
    ("", '  - {type: text_similarity, name: s, input: "{{sample.output_text}}", '
         'reference: "{{item.answer}}", evaluation_metric: fuzzy_match, pass_treshold: 0.8}\n',
     "graders[0].pass_treshold", "did you mean 'pass_threshold'"),
    ("tags: categry\n", None, "tags", "no row has a field 'categry'; did you mean 'category'"),
    ("reasonning: strip\n", None, "reasonning", "did you mean 'reasoning'"),
])
def test_eval_file_mistakes_are_caught_at_load(tmp_path: Path, stub_server: StubServer,
                                               extra: str, graders: str | None, where: str,
                                               message: str) -> None:
    path = write_eval(tmp_path / "e", ROWS, extra=extra, graders=graders)
    if extra.startswith("tags:"):  # the fixture already writes `tag: category`
        path.write_text(path.read_text().replace("tag: category\n", ""))
    line = one_line_error(run_cli("eval", str(path), "--model",
                                  f"openai:stub?base_url={stub_server.base_url}",
                                  "--store", str(tmp_path / "s.db")))
    assert where in line and message in line, line
    assert stub_server.stats()["total_attempts"] == 0


def test_no_sample_succeeded_exits_non_zero(tmp_path: Path, stub_server: StubServer) -> None:
    url = stub_server.base_url
    failing = [{"id": "a", "question": "[[fault:500:always]] a", "answer": "x"},
               {"id": "b", "question": "[[fault:500:always]] b", "answer": "x"}]
    result = run_cli("eval", str(write_eval(tmp_path / "f", failing)), "--model",
                     f"openai:stub?base_url={url}", "--store", str(tmp_path / "s.db"),
                     "--max-retries", "0")
    assert result.returncode == 1 and "no sample got an answer" in result.stderr
    refused = [{"id": "a", "question": "[[fault:400:always]] a", "answer": "x"}]
    result = run_cli("eval", str(write_eval(tmp_path / "g", refused)), "--model",
                     f"openai:stub?base_url={url}", "--store", str(tmp_path / "s.db"))
    assert result.returncode == 2 and "HTTP 400" in result.stderr
    partial = [{"id": "a", "question": "[[answer:x]]", "answer": "x"},
               {"id": "b", "question": "[[fault:500:always]] b", "answer": "x"}]
    result = run_cli("eval", str(write_eval(tmp_path / "h", partial)), "--model",
                     f"openai:stub?base_url={url}", "--store", str(tmp_path / "s.db"),
                     "--max-retries", "0")
    assert result.returncode == 0, result.stderr


def test_missing_optional_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "trl", None)  # as if `posttrain[train]` were not installed
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    code = main(["train", "sft", "--model", f"hf:{tmp_path}", "--data", str(data),
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'posttrain[train]'" in err and "Traceback" not in err


def test_every_command_is_listed_in_help() -> None:
    out = run_cli("--help").stdout
    for command in ("eval", "report", "compare", "audit", "pick", "train", "ingest", "view",
                    "grade", "cache", "suites", "quickstart"):
        assert command in out


def test_sandbox_options_name_the_sandbox_layers() -> None:
    from posttrain.cli.sandbox import LAYERS
    from posttrain.graders.sandbox import MODES

    assert tuple(m for m in MODES if m != "unsafe-none") == LAYERS

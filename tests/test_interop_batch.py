"""OpenAI Batch API: ``posttrain eval --backend openai-batch`` against a local stub of the Files
and Batches endpoints (``posttrain.testing.batch_stub``), resuming after a kill without
submitting again; and batch input / output files in (``posttrain import openai-batch``).

The batch files here were written for this project from the Batch API reference: one request
per line (``custom_id``, ``method``, ``url``, ``body``), results as ``{custom_id, response:
{status_code, body}, error}``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.cli import main


class BatchStub:
    def __init__(self, *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "posttrain.testing.batch_stub",
                                      "--port", "0", "--models", "stub", *extra],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as response:
            return json.loads(response.read())

    def release(self) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/control/release",
                                         method="POST")
        urllib.request.urlopen(request).read()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def stub() -> Iterator[BatchStub]:
    server = BatchStub()
    yield server
    server.close()


@pytest.fixture
def held() -> Iterator[BatchStub]:
    server = BatchStub("--hold")
    yield server
    server.close()


ROWS = [{"id": "a", "question": "[[answer:Paris]] capital of France?", "answer": "Paris"},
        {"id": "b", "question": "[[answer:Rome]] capital of Spain?", "answer": "Madrid"},
        {"id": "c", "question": "[[answer:Lisbon]] capital of Portugal?", "answer": "Lisbon"},
        {"id": "d", "question": "[[fault:400:always]] broken", "answer": "x"}]


def _eval(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (folder / "models.yaml").write_text(
        "models:\n  stub:\n    provider: openai\n    model: stub\n"
        "    price: {input: 2.0, output: 8.0}\n")
    path = folder / "eval.yaml"
    path.write_text("name: caps-batch\ndataset: data.jsonl\nmessages:\n"
                    "  - {role: user, content: \"{{item.question}}\"}\ngraders:\n"
                    "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
                    "reference: \"{{item.answer}}\", operation: eq}\n")
    return path


def _argv(eval_path: Path, store: Path) -> list[str]:
    return ["eval", str(eval_path), "--models-file", str(eval_path.parent / "models.yaml"),
            "--model", "stub", "--backend", "openai-batch", "--poll", "0.05", "--store",
            str(store), "--json", "--no-progress"]


def _samples(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT run_id, item_id, status, latency_s, cost_usd, error FROM "
                            "samples ORDER BY item_id").fetchall()


def test_eval_through_the_batch_api(tmp_path: Path, stub: BatchStub, capsys,
                                    monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = _eval(tmp_path / "ev")
    assert main(_argv(eval_path, tmp_path / "s.db")) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["n"], run["errors"], run["score"]) == (4, 1, 0.5)  # a, c right; b wrong; d error
    assert stub.stats() == {"files": 1, "batches": 1, "polls": 2, "released": True}
    rows = _samples(tmp_path / "s.db")
    assert [r[2] for r in rows] == ["ok", "ok", "ok", "error"]
    assert rows[3][5] == "openai batch: HTTP 400: stub fault"
    assert all(r[3] is None for r in rows)  # a batch answer has no latency of its own
    # half the list price: "[[answer:Paris]] capital of France?" is 35 characters: 10 + 8
    # prompt tokens, 1 completion token (the stub counts len // 4)
    assert rows[0][4] == pytest.approx(0.5 * (18 * 2.0 + 1 * 8.0) / 1e6)
    # the same command again: a new run, its answers from the cache, nothing submitted (the
    # failed request is submitted again: failures are not cached)
    assert main(_argv(eval_path, tmp_path / "s.db")) == 0
    again = json.loads(capsys.readouterr().out)["runs"][0]
    assert again["run_id"] != run["run_id"] and again["cached"] == 3
    assert (again["score"], again["errors"]) == (0.5, 1)
    assert stub.stats()["batches"] == 2 and stub.stats()["files"] == 2
    with urllib.request.urlopen(f"{stub.base_url}/batches/batch_2") as response:
        assert json.loads(response.read())["request_counts"]["total"] == 1


def _killed_while_waiting(tmp_path: Path, held: BatchStub) -> tuple[Path, Path]:
    """An eval through the held batch stub, SIGKILLed once its batch is submitted and being
    polled; returns (eval file, store)."""
    env = {**os.environ, "OPENAI_BASE_URL": held.base_url, "OPENAI_API_KEY": "sk-test"}
    eval_path = _eval(tmp_path / "ev")
    store = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "posttrain.cli", *_argv(eval_path, store)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while held.stats()["polls"] < 3:  # submitted, and waiting on the batch
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return eval_path, store


@pytest.mark.parametrize("lost", [False, True], ids=["batch-id-recorded", "killed-before-"
                                                                         "recording"])
def test_a_killed_eval_resumes_its_batch_without_submitting_again(
        tmp_path: Path, held: BatchStub, capsys, monkeypatch, lost: bool) -> None:
    eval_path, store = _killed_while_waiting(tmp_path, held)
    with sqlite3.connect(store) as conn:
        (run_id, config), = conn.execute("SELECT id, config FROM runs").fetchall()
        state = json.loads(config)["openai_batch"]
        assert state["batch_id"] == "batch_1" and state["input_file_id"] == "file-1"
        if lost:  # as if killed between creating the batch and recording its id
            config = json.loads(config)
            del config["openai_batch"]["batch_id"]
            conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config),
                                                                      run_id))
    assert _samples(store) == []
    held.release()
    monkeypatch.setenv("OPENAI_BASE_URL", held.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(_argv(eval_path, store)) == 0
    captured = capsys.readouterr()
    (run,) = json.loads(captured.out)["runs"]
    assert run["run_id"] == run_id and (run["n"], run["errors"], run["score"]) == (4, 1, 0.5)
    stats = held.stats()
    assert (stats["files"], stats["batches"]) == (1, 1)  # nothing submitted twice
    assert "resuming batch batch_1" in captured.err


def test_only_openai_models_go_through_the_batch_api(tmp_path: Path, capsys) -> None:
    eval_path = _eval(tmp_path / "ev")
    argv = ["eval", str(eval_path), "--model", "anthropic:claude-haiku-4-5", "--backend",
            "openai-batch", "--store", str(tmp_path / "s.db")]
    assert main(argv) == 2
    assert "takes openai: models only" in capsys.readouterr().err


# ---- batch files in -------------------------------------------------------------------------
INPUT = [
    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4.1-mini", "temperature": 0, "max_tokens": 16,
              "messages": [{"role": "system", "content": "One word."},
                           {"role": "user", "content": "Capital of France?"}]}},
    {"custom_id": "q2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4.1-mini", "temperature": 0, "max_tokens": 16,
              "messages": [{"role": "user", "content": "Capital of Spain?"}]}},
    {"custom_id": "q3", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4.1-mini", "temperature": 0, "max_tokens": 16, "store": True,
              "messages": [{"role": "user", "content": "Capital of Italy?"}]}},
]


def _output(cid: str, text: str) -> dict:
    return {"id": f"batch_req_{cid}", "custom_id": cid, "error": None,
            "response": {"status_code": 200, "request_id": "r", "body": {
                "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1-mini-2025",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}}}


def test_import_batch_input_and_results(tmp_path: Path, capsys) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in INPUT))
    (tmp_path / "out.jsonl").write_text(
        json.dumps(_output("q1", "Paris")) + "\n" + json.dumps(_output("q2", "Barcelona"))
        + "\n" + json.dumps({"id": "x", "custom_id": "q3", "error": None, "response": {
            "status_code": 429, "body": {"error": {"message": "rate limited"}}}}) + "\n")
    (tmp_path / "graders.yaml").write_text(
        "- {type: string_check, name: has-city, input: \"{{sample.output_text}}\", "
        "reference: \"a\", operation: ilike}\n")
    argv = ["import", "openai-batch", str(tmp_path / "in.jsonl"), "--results",
            str(tmp_path / "out.jsonl"), "--graders", str(tmp_path / "graders.yaml"), "-o",
            str(tmp_path / "ev"), "--store", str(tmp_path / "s.db"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items"] == 3 and result["models"] == ["gpt-4.1-mini"]
    assert any("body.store: not carried over: whether OpenAI keeps" in w
               for w in result["warnings"])
    assert not any("unknown" in w for w in result["warnings"])
    rows = [json.loads(line) for line in (tmp_path / "ev" / "items.jsonl").open()]
    assert rows[0] == {"id": "q1", "messages": INPUT[0]["body"]["messages"]}
    assert "temperature: 0" in (tmp_path / "ev" / "eval.yaml").read_text()
    assert main(["report", result["run"]["run_id"], "--store", str(tmp_path / "s.db"),
                 "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    # q1 Paris and q2 Barcelona contain an a; q3 failed at OpenAI (429): an error, 0
    assert (run["n"], run["errors"], run["score"], run["model"]) == \
        (3, 1, pytest.approx(2 / 3, abs=1e-4), "openai:gpt-4.1-mini")
    assert main(argv) == 0  # the same results again: stored once
    assert json.loads(capsys.readouterr().out)["run"]["new"] is False


def test_a_bad_batch_line_is_one_line_naming_it(tmp_path: Path, capsys) -> None:
    bad = dict(INPUT[1], url="/v1/embeddings")
    (tmp_path / "in.jsonl").write_text(json.dumps(INPUT[0]) + "\n" + json.dumps(bad) + "\n")
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "-o",
                 str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"posttrain: error: {tmp_path / 'in.jsonl'}:2: url: /v1/embeddings: only chat")


def test_a_responses_batch_is_read_too(tmp_path: Path, capsys) -> None:
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/responses",
            "body": {"model": "gpt-4.1-mini", "instructions": "One word.",
                     "input": "Capital of France?"}}
    (tmp_path / "in.jsonl").write_text(json.dumps(line) + "\n")
    result = {"id": "b1", "custom_id": "r1", "error": None, "response": {
        "status_code": 200, "body": {"id": "resp_1", "object": "response", "model":
                                     "gpt-4.1-mini", "status": "completed", "output": [
                                         {"type": "message", "role": "assistant", "content": [
                                             {"type": "output_text", "text": "Paris"}]}],
                                     "usage": {"input_tokens": 11, "output_tokens": 1,
                                               "total_tokens": 12}}}}
    (tmp_path / "out.jsonl").write_text(json.dumps(result) + "\n")
    (tmp_path / "g.yaml").write_text("{type: string_check, name: exact, input: "
                                     "\"{{sample.output_text}}\", reference: Paris, "
                                     "operation: eq}\n")
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "--results",
                 str(tmp_path / "out.jsonl"), "--graders", str(tmp_path / "g.yaml"), "-o",
                 str(tmp_path / "ev"), "--store", str(tmp_path / "s.db"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    rows = [json.loads(x) for x in (tmp_path / "ev" / "items.jsonl").open()]
    assert rows[0]["messages"] == [{"role": "developer", "content": "One word."},
                                   {"role": "user", "content": "Capital of France?"}]
    assert main(["report", imported["run"]["run_id"], "--store", str(tmp_path / "s.db"),
                 "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["score"], run["input_tokens"], run["output_tokens"]) == (1.0, 11, 1)


def test_each_run_submits_its_batch_at_once(tmp_path: Path, held: BatchStub, capsys,
                                            monkeypatch) -> None:
    """Two variants: both batches are submitted before either finishes (the stub holds them
    until released), then both are read."""
    import threading

    monkeypatch.setenv("OPENAI_BASE_URL", held.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = _eval(tmp_path / "ev")
    eval_path.write_text(eval_path.read_text() + "variants:\n  terse:\n    messages:\n"
                         "      - {role: user, content: \"{{item.question}} One word.\"}\n")
    seen: list[int] = []

    def release_when_both_submitted() -> None:
        deadline = time.monotonic() + 60
        while held.stats()["batches"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(held.stats()["batches"])
        held.release()

    releaser = threading.Thread(target=release_when_both_submitted)
    releaser.start()
    assert main(_argv(eval_path, tmp_path / "s.db")) == 0
    releaser.join()
    assert seen == [2]
    runs = {r["variant"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert set(runs) == {"default", "terse"}
    assert all((r["n"], r["errors"]) == (4, 1) for r in runs.values())


def test_batch_tools_are_carried_and_n_is_named_as_not_carried(tmp_path: Path,
                                                                capsys) -> None:
    from posttrain.eval import load_eval

    tool = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4.1-mini", "tools": [tool], "tool_choice": "auto",
                       "n": 2, "messages": [{"role": "user", "content": f"Weather {i}?"}]}}
             for i in (1, 2)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "g.yaml").write_text("{type: string_check, name: exact, input: "
                                     "\"{{sample.output_text}}\", reference: x, "
                                     "operation: eq}\n")
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "--graders",
                 str(tmp_path / "g.yaml"), "-o", str(tmp_path / "ev"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert any("body.n: not carried over: posttrain asks for one answer per request" in w
               for w in result["warnings"])
    assert not any("did you mean" in w for w in result["warnings"])
    eval_ = load_eval(tmp_path / "ev" / "eval.yaml")
    text = (tmp_path / "ev" / "eval.yaml").read_text()
    assert "weather" in text and "tool_choice: auto" in text
    assert eval_.tools and eval_.tools[0]["function"]["name"] == "weather"


def test_batch_graders_file_forms_shared_sampling_and_errors_before_writing(
        tmp_path: Path, capsys) -> None:
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4.1-mini", "max_tokens": 16, "temperature": t,
                       "messages": [{"role": "user", "content": f"Q{i}?"}]}}
             for i, t in ((1, 0), (2, 0.7))]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "g.yaml").write_text("graders:\n  - {type: string_check, name: exact, input: "
                                     "\"{{sample.output_text}}\", reference: x, "
                                     "operation: eq}\n")
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "--graders",
                 str(tmp_path / "g.yaml"), "-o", str(tmp_path / "ev"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    text = (tmp_path / "ev" / "eval.yaml").read_text()
    assert "max_tokens: 16" in text and "temperature" not in text  # the shared one is kept
    assert any("temperature differently" in w for w in result["warnings"])
    assert "exact" in text
    (tmp_path / "bad.yaml").write_text("- {type: string_check, name: exact, input: "
                                       "\"{{sample.output_text}}\", reference: x, "
                                       "operation: nope}\n")
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "--graders",
                 str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "ev2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "bad.yaml") in err[0]
    assert not (tmp_path / "ev2").exists()  # nothing written
    assert main(["import", "openai-batch", str(tmp_path / "in.jsonl"), "--results",
                 str(tmp_path / "missing.jsonl"), "--graders", str(tmp_path / "g.yaml"),
                 "-o", str(tmp_path / "ev3"), "--store", str(tmp_path / "s.db")]) == 2
    assert not (tmp_path / "ev3").exists()


def test_a_batch_left_in_flight_by_an_earlier_version_of_the_eval_is_named(
        tmp_path: Path, held: BatchStub, capsys, monkeypatch) -> None:
    """Killed while its batch waits, then the eval is edited: the rerun is a new run (a new
    eval hash), so the old run's batch is neither resumed nor counted; the command says so
    and names the batch instead of leaving it to run up cost unseen."""
    eval_path, store = _killed_while_waiting(tmp_path, held)
    with sqlite3.connect(store) as conn:
        (old_run,), = conn.execute("SELECT id FROM runs").fetchall()
    eval_path.write_text(eval_path.read_text().replace('content: "{{item.question}}"',
                                                       'content: "Q: {{item.question}}"'))
    held.release()
    monkeypatch.setenv("OPENAI_BASE_URL", held.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(_argv(eval_path, store)) == 0
    captured = capsys.readouterr()
    (run,) = json.loads(captured.out)["runs"]
    assert run["run_id"] != old_run
    assert f"warning: run {old_run}" in captured.err and "batch batch_1 in flight" in captured.err
    # the same command once more: the new run is finished, the old one still named
    assert main(_argv(eval_path, store)) == 0
    assert captured.err.count("warning: run") == 1
    assert f"warning: run {old_run}" in capsys.readouterr().err

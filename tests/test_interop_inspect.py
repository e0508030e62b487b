"""Inspect AI logs in and out: ``posttrain import inspect-log`` / ``export inspect-log``.

The logs are written in each test with inspect-ai itself (``write_eval_log``), from samples made
up here: a task of five questions, two epochs, three scorers (a C/I ``match``, a ``judge`` whose
value is a dict, a ``rating`` on a 1-10 scale that is not a share), one errored sample, one
sample with a tool call. Skipped (naming the package) where inspect-ai is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main

pytest.importorskip("inspect_ai", reason="needs inspect-ai: pip install 'posttrain[inspect]'")

from inspect_ai.log import (  # noqa: E402
    EvalConfig,
    EvalDataset,
    EvalError,
    EvalLog,
    EvalMetric,
    EvalResults,
    EvalSample,
    EvalScore,
    EvalSpec,
    read_eval_log,
    write_eval_log,
)
from inspect_ai.model import (  # noqa: E402
    ChatMessageAssistant,
    ChatMessageTool,
    ChatMessageUser,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.scorer import Score  # noqa: E402
from inspect_ai.tool import ToolCall  # noqa: E402

QUESTIONS = {1: ("2+2?", "4"), 2: ("Capital of France?", "Paris"), 3: ("3*3?", "9"),
             4: ("Weather in Oslo?", "cold"), "q5": ("Spell cat", "cat")}


def _sample(sid, epoch: int, model: str, right: bool, *, error: bool = False) -> EvalSample:
    question, target = QUESTIONS[sid]
    answer = target if right else "no idea"
    usage = ModelUsage(input_tokens=10 + epoch, output_tokens=3, total_tokens=13 + epoch,
                       input_tokens_cache_read=2)
    if error:
        return EvalSample(id=sid, epoch=epoch, input=question, target=target,
                          messages=[ChatMessageUser(content=question)],
                          error=EvalError(message="RateLimitError: 429", traceback="tb",
                                          traceback_ansi="tb"),
                          model_usage={model: usage})  # it spent tokens before it failed
    messages = [ChatMessageUser(content=question)]
    if sid == 4:  # an agent turn: a tool call, its result, then the answer
        call = ToolCall(id="call_1", function="weather", arguments={"city": "Oslo"})
        messages += [ChatMessageAssistant(content="", tool_calls=[call]),
                     ChatMessageTool(content="-3C", tool_call_id="call_1", function="weather")]
    messages.append(ChatMessageAssistant(content=answer))
    output = ModelOutput.from_content(model, answer)
    output.usage = usage
    output.time = 0.25
    rating = 7 if sid == 2 else (1 if right else 0)
    return EvalSample(
        id=sid, epoch=epoch, input=question, target=target, messages=messages, output=output,
        metadata={"topic": "math" if sid in (1, 3) else "other"},
        scores={"match": Score(value="C" if right else "I", answer=answer,
                               explanation="exact match"),
                "judge": Score(value={"correct": "C" if right else "I", "style": 0.5}),
                "rating": Score(value=rating)},
        model_usage={model: usage}, total_time=1.5, working_time=1.0, uuid=f"u-{sid}-{epoch}")


def _write_log(path: Path, model: str, right: dict, *, errors=(), eval_id="ev1") -> Path:
    samples = [_sample(sid, epoch, model, right[sid][epoch - 1], error=(sid, epoch) in errors)
               for sid in QUESTIONS for epoch in (1, 2)]
    accuracy = sum(right[s][e] for s in QUESTIONS for e in (0, 1)) / (2 * len(QUESTIONS))
    log = EvalLog(
        status="success",
        eval=EvalSpec(created="2026-01-05T10:00:00+00:00", task="quiz", task_id="task-1",
                      run_id=f"run-{eval_id}", eval_id=eval_id, model=model,
                      dataset=EvalDataset(name="quiz", samples=len(QUESTIONS),
                                          sample_ids=list(QUESTIONS)),
                      config=EvalConfig(epochs=2)),
        results=EvalResults(total_samples=10, completed_samples=10, scores=[
            EvalScore(name="match", scorer="match",
                      metrics={"accuracy": EvalMetric(name="accuracy", value=accuracy)})]),
        samples=samples)
    write_eval_log(log, str(path), format="eval" if path.suffix == ".eval" else "json")
    return path


RIGHT_A = {1: (True, True), 2: (True, False), 3: (True, True), 4: (False, False),
           "q5": (True, True)}
RIGHT_B = {1: (False, False), 2: (False, False), 3: (True, False), 4: (False, False),
           "q5": (True, False)}


def _import(*paths: Path, store: Path, capsys) -> dict:
    assert main(["import", "inspect-log", *map(str, paths), "--store", str(store),
                 "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _rows(store: Path, run_id: str) -> tuple[list, list]:
    from posttrain.runner.store import Store

    with Store(store) as db:
        samples = [(r["item_id"], r["epoch"], r["status"], r["error"], r["input_tokens"],
                    r["output_tokens"], r["latency_s"],
                    json.loads(r["completion"])["text"] if r["completion"] else None)
                   for r in db.samples(run_id)]
        scores = [(r["item_id"], r["epoch"], r["grader"], r["value"], r["passed"], r["status"])
                  for r in db.scores(run_id)]
    return samples, scores


@pytest.mark.parametrize("suffix", [".eval", ".json"])
def test_import_stores_samples_epochs_scores_usage(tmp_path: Path, capsys, suffix) -> None:
    log = _write_log(tmp_path / f"a{suffix}", "openai/gpt-4o-mini", RIGHT_A, errors={(3, 2)})
    out = _import(log, store=tmp_path / "s.db", capsys=capsys)
    (run,) = out["runs"]
    assert (run["task"], run["model"], run["epochs"], run["items"], run["samples"]) == \
        ("quiz", "openai:gpt-4o-mini", 2, 5, 10)
    assert run["scorers"] == ["match", "judge/correct", "judge/style", "rating"]
    samples, scores = _rows(tmp_path / "s.db", run["run_id"])
    by = {(s[0], s[1]): s for s in samples}
    assert by[("3", 1)][2] == "error" and by[("3", 1)][3] == "inspect: RateLimitError: 429"
    assert by[("3", 1)][4:6] == (12, 3)  # the failed sample's tokens still count
    assert by[("1", 0)][2:] == ("ok", None, 11, 3, 0.25, "4")
    assert by[("4", 0)][6] is None  # an agent's answer (two model calls) has no one latency
    grade = {(s[0], s[1], s[2]): s[3:] for s in scores}
    assert grade[("2", 1, "match")] == (0.0, 0, "scored")
    assert grade[("2", 0, "judge/correct")] == (1.0, 1, "scored")
    assert grade[("2", 0, "judge/style")] == (0.5, 0, "scored")
    assert grade[("2", 0, "rating")] == (None, None, "unscored")  # 7 is not a share
    assert grade[("1", 0, "rating")] == (1.0, 1, "scored")
    assert any("rating" in w and "outside [0, 1]" in w for w in out["warnings"])
    # the headline is the first scorer's, per item over epochs, the errored sample 0
    expected = [1, 0.5, 0.5, 0, 1]  # items 1, 2, 3 (one right, one error), 4, q5
    assert run["summary"]["score"] == pytest.approx(sum(expected) / 5, abs=1e-4)
    assert run["summary"]["errors"] == 1
    assert run["inspect_metrics"]["match"]["accuracy"] == pytest.approx(0.7)


def test_tool_calls_and_transcript_are_kept(tmp_path: Path, capsys) -> None:
    from posttrain.runner.store import Store

    log = _write_log(tmp_path / "a.eval", "openai/gpt-4o-mini", RIGHT_A)
    run = _import(log, store=tmp_path / "s.db", capsys=capsys)["runs"][0]
    with Store(tmp_path / "s.db") as db:
        row = next(r for r in db.samples(run["run_id"]) if r["item_id"] == "4")
        completion = json.loads(row["completion"])
        items = {i.id: i.data for i in db.run_items(run["run_id"])}
    roles = [m["role"] for m in completion["transcript"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    call = completion["transcript"][1]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city": "Oslo"}'}
    assert items["4"] == {"input": "Weather in Oslo?", "target": "cold",
                          "metadata": {"topic": "other"}}
    assert completion["cached_input_tokens"] == 2


def test_import_twice_stores_once_and_compare_pairs_two_models(tmp_path: Path,
                                                              capsys) -> None:
    a = _write_log(tmp_path / "logs" / "a.eval", "openai/gpt-4o-mini", RIGHT_A)
    _write_log(tmp_path / "logs" / "b.eval", "anthropic/claude-haiku-4-5", RIGHT_B,
                   eval_id="ev2")
    first = _import(tmp_path / "logs", store=tmp_path / "s.db", capsys=capsys)["runs"]
    again = _import(a, store=tmp_path / "s.db", capsys=capsys)["runs"]
    assert [r["new"] for r in first] == [True, True] and again[0]["new"] is False
    assert again[0]["run_id"] == first[0]["run_id"]
    ids = [r["run_id"] for r in first]
    assert main(["compare", *ids, "--store", str(tmp_path / "s.db"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    overall = result["overall"]
    assert (result["run_a"]["model"], result["run_b"]["model"]) == \
        ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    # per item over both epochs: A 1, .5, 1, 0, 1; B 0, 0, .5, 0, .5 (paired on 5 items)
    assert overall["n"] == 5 and result["n_common"] == 5
    assert (overall["mean_a"], overall["mean_b"]) == pytest.approx((0.7, 0.2))
    assert overall["diff"] == pytest.approx(-0.5)


def _comparable(log: EvalLog) -> list[tuple]:
    return sorted(((str(s.id), s.epoch, json.dumps({k: v.model_dump(exclude_none=True) for k, v in
                                                    (s.scores or {}).items()}, sort_keys=True),
                    s.output.completion, s.output.usage.input_tokens if s.output.usage else None,
                    s.error.message if s.error else None, s.input, s.target)
                   for s in log.samples or []), key=lambda t: (t[0], t[1]))


def test_round_trip_import_export_import(tmp_path: Path, capsys) -> None:
    source = _write_log(tmp_path / "a.eval", "openai/gpt-4o-mini", RIGHT_A, errors={(3, 2)})
    run = _import(source, store=tmp_path / "one.db", capsys=capsys)["runs"][0]
    back = tmp_path / "back" / "a.eval"
    assert main(["export", "inspect-log", run["run_id"], "-o", str(back), "--store",
                 str(tmp_path / "one.db")]) == 0
    assert "wrote" in capsys.readouterr().out
    original, exported = read_eval_log(str(source)), read_eval_log(str(back))
    assert exported.eval.task == "quiz" and exported.eval.model == "openai/gpt-4o-mini"
    assert exported.eval.run_id == original.eval.run_id
    assert exported.eval.dataset.sample_ids == original.eval.dataset.sample_ids
    assert exported.results == original.results
    assert _comparable(exported) == _comparable(original)
    assert [m.role for m in next(s for s in exported.samples if s.id == 4).messages] == \
        ["user", "assistant", "tool", "assistant"]
    again = _import(back, store=tmp_path / "two.db", capsys=capsys)["runs"][0]
    assert _rows(tmp_path / "two.db", again["run_id"]) == \
        _rows(tmp_path / "one.db", run["run_id"])


def test_export_of_a_posttrain_run_carries_its_grades(tmp_path: Path, capsys) -> None:
    from posttrain.runner.store import Store
    from posttrain.types import Completion, Item
    from posttrain.types import Score as PScore

    store = tmp_path / "s.db"
    with Store(store) as db:
        run = db.create_run(run_key="k", eval_name="caps", eval_path=None, eval_hash="h",
                            model="hf:./tiny", variant="default", epochs=1,
                            config={"grader_names": ["exact"], "primary": None},
                            items=[Item(id=str(i), data={"question": f"q{i}", "answer": "a"})
                                   for i in range(4)])
        for i, (value, status) in enumerate([(1.0, "scored"), (0.0, "scored"),
                                             (None, "unscored")]):
            db.record_sample(run.id, str(i), 0, completion=Completion(
                text=f"answer {i}", input_tokens=5, output_tokens=2, latency_s=0.1),
                request_key=None, attempts=1,
                scores=[PScore(value=value, passed=value == 1.0, status=status, name="exact",
                               explanation="judge reply did not parse" if value is None
                               else "")])
        db.record_sample(run.id, "3", 0, completion=None, request_key=None, attempts=3,
                         error="HTTP 500")
        db.finish_run(run.id)
    out = tmp_path / "caps.json"
    assert main(["export", "inspect-log", run.id, "-o", str(out), "--store", str(store)]) == 0
    log = read_eval_log(str(out))
    assert log.eval.model == "hf/./tiny" and log.eval.task == "caps"
    by = {s.id: s for s in log.samples}
    assert by["0"].scores["exact"].value == 1.0 and by["1"].scores["exact"].value == 0.0
    assert by["2"].scores["exact"].value == 0.0
    assert by["2"].scores["exact"].metadata["posttrain_status"] == "unscored"
    assert by["3"].error.message == "HTTP 500"
    assert by["0"].metadata == {"question": "q0", "answer": "a"}
    head = log.results.scores[0]
    assert head.name == "posttrain" and head.metrics["mean"].value == 0.25  # 1 of 4 items
    assert log.results.scores[1].metrics["mean"].value == 0.25
    capsys.readouterr()
    run2 = _import(out, store=tmp_path / "b.db", capsys=capsys)["runs"][0]
    # each sample carries its headline value as the "posttrain" score, read back as the primary
    assert run2["scorers"] == ["posttrain", "exact"]
    summary = run2["summary"]
    assert (summary["score"], summary["errors"], summary["unscored"]) == (0.25, 1, 1)


def test_a_posttrain_run_exported_and_imported_keeps_its_headline_and_tags(
        tmp_path: Path, capsys) -> None:
    """Two graders and no primary: the headline is the graders' mean per item, which is
    neither grader's own score; an Inspect log of the run imported again must score the same
    (it read the first grader as the score before), with the same interval, coverage and tags."""
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store
    from posttrain.types import Completion, Item
    from posttrain.types import Score as PScore

    grades = [((1, 0), "scored"), ((0, 0), "scored"), ((0, 1), "scored"), (None, "error"),
              ((1, None), "scored"), ((1, 1), "scored")]
    store = tmp_path / "s.db"
    with Store(store) as db:
        run = db.create_run(run_key="k", eval_name="two", eval_path=None, eval_hash="h",
                            model="openai:m1", variant="default", epochs=1,
                            config={"grader_names": ["exact", "jx"], "primary": None},
                            items=[Item(id=str(i), data={"q": f"q{i}"},
                                        tags=["math" if i % 2 else "chat"])
                                   for i in range(len(grades))])
        for i, (values, _status) in enumerate(grades):
            if values is None:
                db.record_sample(run.id, str(i), 0, completion=None, request_key=None,
                                 attempts=2, error="HTTP 500")
                continue
            scores = [PScore(value=v, passed=v == 1, name=name,
                             status="scored" if v is not None else "unscored",
                             explanation="" if v is not None else "judge reply did not parse")
                      for name, v in zip(("exact", "jx"), values, strict=True)]
            db.record_sample(run.id, str(i), 0, completion=Completion(text=f"a{i}"),
                             request_key=None, attempts=1, scores=scores)
        db.finish_run(run.id)
        before = summarize(load_results(db, run))
    assert before["score"] == pytest.approx(2.0 / 6, abs=1e-4)  # .5 + 0 + .5 + 0 + 0 (unscored) + 1
    out = tmp_path / "two.eval"
    assert main(["export", "inspect-log", run.id, "-o", str(out), "--store", str(store)]) == 0
    capsys.readouterr()
    imported = _import(out, store=tmp_path / "b.db", capsys=capsys)["runs"][0]
    after = imported["summary"]
    for key in ("score", "ci_low", "ci_high", "errors", "unscored", "n", "score_scored_only"):
        assert after[key] == pytest.approx(before[key]), key
    assert after["by_tag"].keys() == before["by_tag"].keys() == {"chat", "math"}
    for tag in ("chat", "math"):
        assert after["by_tag"][tag]["score"] == pytest.approx(before["by_tag"][tag]["score"])


@pytest.mark.parametrize("content,suffix,expect", [
    (b"not a zip", ".eval", "not an Inspect"),
    (b'{"version": 2, "status": "success"}', ".json", "eval"),
    (b'{"version": 2, "status": "succ', ".json", "not"),
])
def test_bad_logs_are_one_line_naming_the_file(tmp_path: Path, capsys, content, suffix,
                                                expect) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    assert main(["import", "inspect-log", str(bad), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {bad}") and expect in err[0]
    assert not (tmp_path / "s.db").exists()  # nothing stored


def test_a_bad_sample_midway_leaves_no_partial_run(tmp_path: Path, capsys) -> None:
    log = _write_log(tmp_path / "a.json", "openai/gpt-4o-mini", RIGHT_A)
    data = json.loads(log.read_text())
    data["samples"][6]["epoch"] = "second"
    log.write_text(json.dumps(data))
    assert main(["import", "inspect-log", str(log), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert f"{log}: samples[6].epoch:" in err
    from posttrain.runner.store import Store

    with Store(tmp_path / "s.db") as db:
        assert db.list_runs() == []
        assert db.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0


def test_missing_package_is_one_line_naming_the_extra(tmp_path: Path, capsys,
                                                      monkeypatch) -> None:
    import posttrain.models.checks as checks

    monkeypatch.setattr(checks, "missing_package", lambda *names: "inspect_ai")
    assert main(["import", "inspect-log", str(tmp_path), "--store", str(tmp_path / "s")]) == 2
    assert "pip install 'posttrain[inspect]'" in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_view_lists_and_shows_an_exported_run(tmp_path: Path, capsys) -> None:
    """``inspect view`` (inspect-ai's own viewer) serves the exported log; with Playwright and
    Chromium present, the page shows its samples and posttrain's score."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    source = _write_log(tmp_path / "a.eval", "openai/gpt-4o-mini", RIGHT_A, errors={(3, 2)})
    run = _import(source, store=tmp_path / "s.db", capsys=capsys)["runs"][0]
    logs = tmp_path / "logs"
    assert main(["export", "inspect-log", run["run_id"], "-o", str(logs / "quiz.eval"),
                 "--store", str(tmp_path / "s.db")]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    viewer = subprocess.Popen([sys.executable, "-m", "inspect_ai._cli.main", "view",
                               "--log-dir", str(logs), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        listing = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/logs") as response:
                    listing = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "inspect view did not start"
        assert [f["task"] for f in listing["files"]] == ["quiz"]
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            return
        import shutil

        browser_path = shutil.which("chromium")
        if browser_path is None:
            return
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path,
                                                 args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/#/logs/quiz.eval")
            page.wait_for_selector("text=RateLimitError", timeout=30000)
            text = page.inner_text("body")
            browser.close()
        assert "Weather in Oslo?" in text and "10 Samples" in text
    finally:
        viewer.terminate()
        viewer.wait(10)


@pytest.mark.slow
def test_a_log_inspect_itself_wrote_imports_to_its_own_numbers(tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    """A real ``inspect_ai.eval`` run (its offline ``mockllm/model``, two scorers, two epochs):
    posttrain's score equals Inspect's accuracy of its first scorer, and the log goes back out
    with the same samples, scores and results."""
    import gzip
    import hashlib

    bpe = pytest.importorskip("bpe_openai", reason="inspect counts tokens with tiktoken's "
                                                   "o200k, seeded offline from bpe-openai: "
                                                   "pip install 'posttrain[suites]'")
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes, match
    from inspect_ai.solver import generate

    # tiktoken would download o200k_base: its cache is seeded with the copy bpe-openai ships
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    vocab = Path(bpe.__file__).parent / "data" / "o200k_base.tiktoken.gz"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(
        vocab.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    samples = [Sample(id=i, input=f"Say something {i}",
                      target="Default output" if i % 2 else "nope") for i in range(1, 7)]
    task = Task(dataset=samples, solver=generate(), scorer=[includes(), match()],
                name="real-quiz")
    (log,) = inspect_eval(task, model="mockllm/model", log_dir=str(tmp_path / "logs"),
                          epochs=2, display="none")
    assert log.status == "success", log.error
    run = _import(tmp_path / "logs", store=tmp_path / "s.db", capsys=capsys)["runs"][0]
    accuracy = log.results.scores[0].metrics["accuracy"].value
    assert run["inspect_metrics"]["includes"]["accuracy"] == accuracy == 0.5
    assert run["summary"]["score"] == pytest.approx(accuracy) and run["samples"] == 12
    assert main(["export", "inspect-log", run["run_id"], "-o", str(tmp_path / "back.eval"),
                 "--store", str(tmp_path / "s.db")]) == 0
    back = read_eval_log(str(tmp_path / "back.eval"))
    original = read_eval_log(log.location)
    assert back.results == original.results
    assert _comparable(back) == _comparable(original)


def test_a_rescored_or_finished_log_with_the_same_eval_id_is_a_new_run(tmp_path: Path,
                                                                        capsys) -> None:
    started = tmp_path / "started.json"
    write_eval_log(EvalLog(status="started", eval=EvalSpec(
        created="2026-01-05T10:00:00+00:00", task="quiz", task_id="task-1", run_id="run-ev1",
        eval_id="ev1", model="openai/gpt-4o-mini",
        dataset=EvalDataset(name="quiz", samples=5), config=EvalConfig(epochs=2))),
        str(started), format="json")
    first = _import(started, store=tmp_path / "s.db", capsys=capsys)
    assert first["runs"][0]["samples"] == 0
    done = _write_log(tmp_path / "a.eval", "openai/gpt-4o-mini", RIGHT_A)
    second = _import(done, store=tmp_path / "s.db", capsys=capsys)
    assert second["runs"][0]["new"] is True and second["runs"][0]["samples"] == 10
    assert second["runs"][0]["run_id"] != first["runs"][0]["run_id"]
    assert any("same eval_id" in w and "'started' then 'success'" in w
               for w in second["warnings"])
    log = read_eval_log(str(done))
    assert log.results is not None
    log.results.scores[0].metrics["accuracy"].value = 1.0  # rescored: other results
    write_eval_log(log, str(tmp_path / "rescored.eval"))
    third = _import(tmp_path / "rescored.eval", store=tmp_path / "s.db", capsys=capsys)
    assert third["runs"][0]["new"] is True
    assert third["runs"][0]["run_id"] != second["runs"][0]["run_id"]
    assert _import(done, store=tmp_path / "s.db", capsys=capsys)["runs"][0]["new"] is False


def test_export_of_an_imported_log_with_nan_scores(tmp_path: Path, capsys) -> None:
    source = _write_log(tmp_path / "a.eval", "openai/gpt-4o-mini", RIGHT_A)
    log = read_eval_log(str(source))
    assert log.samples is not None and log.results is not None
    log.samples[0].scores["match"].value = float("nan")
    log.samples[1].scores["judge"].value = {"correct": float("nan"), "style": 0.5}
    write_eval_log(log, str(source))
    run = _import(source, store=tmp_path / "s.db", capsys=capsys)["runs"][0]
    back = tmp_path / "back.eval"
    assert main(["export", "inspect-log", run["run_id"], "-o", str(back), "--store",
                 str(tmp_path / "s.db")]) == 0
    again = read_eval_log(str(back))
    assert again.samples is not None
    value = again.samples[0].scores["match"].value
    assert isinstance(value, float) and value != value  # NaN, as Inspect wrote it
    assert again.samples[1].scores["judge"].value["style"] == 0.5


def test_a_cancelled_log_counts_the_samples_it_never_started(tmp_path: Path, capsys) -> None:
    """Cancelled after 3 of 5 samples (all right): the score is 3/5, not 3/3."""
    model = "openai/gpt-4o-mini"
    right = {sid: (True, True) for sid in QUESTIONS}
    ran = [1, 2, 3]
    log = EvalLog(
        status="cancelled",
        eval=EvalSpec(created="2026-01-05T10:00:00+00:00", task="quiz", task_id="task-1",
                      run_id="run-c", eval_id="evc", model=model,
                      dataset=EvalDataset(name="quiz", samples=len(QUESTIONS),
                                          sample_ids=list(QUESTIONS)),
                      config=EvalConfig(epochs=2)),
        samples=[_sample(sid, epoch, model, right[sid][epoch - 1])
                 for sid in ran for epoch in (1, 2)])
    path = tmp_path / "cancelled.eval"
    write_eval_log(log, str(path))
    out = _import(path, store=tmp_path / "s.db", capsys=capsys)
    run = out["runs"][0]
    assert run["never_started"] == 2 and run["items"] == 5
    assert run["summary"]["n"] == 10 and run["summary"]["score"] == pytest.approx(0.6)  # 5 x 2
    assert any("2 of its 5 samples never started" in w for w in out["warnings"])


def test_a_retried_sample_keeps_its_tries_and_what_they_spent(tmp_path: Path,
                                                               capsys) -> None:
    """Inspect's --retry-on-error keeps each failed try in ``error_retries`` (its error and
    events) and a model call's HTTP retries in ``ModelEvent.retries``: the import counts them
    as attempts (it stored 0 for every sample) and adds the failed tries' tokens (spent)."""
    from inspect_ai.event import ModelEvent
    from inspect_ai.log import EvalRetryError
    from inspect_ai.model import GenerateConfig

    model = "openai/gpt-4o-mini"
    log = _write_log(tmp_path / "a.eval", model, RIGHT_A)
    written = read_eval_log(str(log))
    first = written.samples[0]

    def call(retries: int) -> ModelEvent:
        output = ModelOutput.from_content(model, "partial")
        output.usage = ModelUsage(input_tokens=100, output_tokens=7, total_tokens=107)
        return ModelEvent(model=model, input=[], tools=[], tool_choice="auto",
                          config=GenerateConfig(), output=output, retries=retries)

    first.error_retries = [EvalRetryError(message="RateLimitError: 429", traceback="tb",
                                          traceback_ansi="tb", events=[call(1)]),
                           EvalRetryError(message="RateLimitError: 429", traceback="tb",
                                          traceback_ansi="tb", events=[call(0)])]
    first.events = [call(3)]  # the try that answered: its usage is the sample's own
    write_eval_log(written, str(log))
    (run,) = _import(log, store=tmp_path / "s.db", capsys=capsys)["runs"]
    from posttrain.runner.store import Store

    with Store(tmp_path / "s.db") as db:
        rows = {(r["item_id"], r["epoch"]): r for r in db.samples(run["run_id"])}
    retried = rows.pop((str(first.id), first.epoch - 1))
    assert retried["attempts"] == 1 + 2 + (1 + 0 + 3)
    assert (retried["input_tokens"], retried["output_tokens"]) == \
        (10 + first.epoch + 200, 3 + 14)
    assert {r["attempts"] for r in rows.values()} == {1}

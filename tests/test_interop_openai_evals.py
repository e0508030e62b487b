"""Importing OpenAI Evals (eval, runs, output items), grading them here, exporting them back.

The fixtures in tests/data/openai_evals/ were written for this project from the shapes in the
openai-python SDK's types and the Evals API reference: a 4-criterion eval (string_check with
the guide's ``neq`` spelling, text_similarity, python), two completions runs with different
prompts and models, their output items (OpenAI's grades, one sample with a rate-limit error)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.interop._files import Notes, Source
from posttrain.interop.openai_evals import export_openai_eval, import_openai_eval
from posttrain.interop.openai_format import content_in, criterion_name, messages_in

DATA = Path(__file__).parent / "data" / "openai_evals"
OUTPUTS = [DATA / "output_items_evalrun_001.jsonl", DATA / "output_items_evalrun_002.jsonl"]


def _import(tmp: Path, eval_file: Path = DATA / "eval.get.json", **kwargs):
    return import_openai_eval(eval_file, tmp / "imp", runs=[DATA / "runs.json"],
                              output_items=kwargs.pop("output_items", OUTPUTS),
                              store=tmp / "s.db", **kwargs)


def _stored(store: Path) -> dict[str, tuple]:
    """Per OpenAI run id: (model, variant, samples, scores) as stored (ids of the store left
    out)."""
    from posttrain.runner.store import Store

    out = {}
    with Store(store) as db:
        for run in db.list_runs():
            samples = [(r["item_id"], r["status"], r["completion"], r["error"],
                        r["input_tokens"], r["output_tokens"]) for r in db.samples(run.id)]
            scores = [(r["item_id"], r["grader"], r["value"], r["passed"], r["status"])
                      for r in db.scores(run.id)]
            out[run.config["openai"]["id"]] = (run.model, run.variant, samples, scores)
    return out


def test_import_regrades_to_openais_counts_with_no_requests(tmp_path: Path) -> None:
    result = _import(tmp_path)
    assert result.items == 6 and result.variants == ["default", "gpt-4.1-nano-tutor"]
    stored = json.loads((DATA / "runs.json").read_text())["data"]
    for run, report in zip(stored, result.runs, strict=True):
        assert report["requests"] == 0
        mine = report["posttrain"]["result_counts"]
        assert {k: mine[k] for k in run["result_counts"]} == run["result_counts"]
        assert mine["unscored"] == 0
        theirs = {criterion_name(e["testing_criteria"]): (e["passed"], e["failed"])
                  for e in run["per_testing_criteria_results"]}
        assert {e["testing_criteria"]: (e["passed"], e["failed"])
                for e in report["posttrain"]["per_testing_criteria_results"]} == theirs
        assert report["disagreements"] == []
    # the error sample is an error, with OpenAI's code; usage and the served model are kept
    by_run = _stored(tmp_path / "s.db")
    samples = by_run["evalrun_002"][2]
    errors = [s for s in samples if s[1] == "error"]
    assert [(s[0], s[3]) for s in errors] == [
        ("5", "openai: rate_limit_exceeded: Rate limit reached for requests")]
    ok = json.loads(samples[0][2])
    assert ok["served_model"] == "gpt-4.1-nano-2025-04-14" and samples[0][4] == 24
    # importing again stores nothing twice
    again = _import(tmp_path)
    assert [r["new"] for r in again.runs] == [False, False]


def test_warnings_name_file_line_and_field(tmp_path: Path) -> None:
    result = _import(tmp_path)
    neq = [n for n in result.notes if "operation" in n]
    assert len(neq) == 1 and neq[0].startswith(f"{DATA / 'eval.get.json'}:")
    line = int(neq[0].split(":")[1])
    assert '"neq"' in (DATA / "eval.get.json").read_text().splitlines()[line - 1]
    spec = json.loads((DATA / "eval.create.json").read_text())
    spec["testing_criteria"][0]["weight"] = 2
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec, indent=2))
    result = import_openai_eval(path, tmp_path / "w", runs=[DATA / "runs.json"])
    weight = [n for n in result.notes if "weight" in n]
    assert weight and weight[0].startswith(f"{path}:") and "testing_criteria[0].weight" in \
        weight[0]


def test_create_and_get_shapes_give_the_same_eval(tmp_path: Path) -> None:
    a = import_openai_eval(DATA / "eval.create.json", tmp_path / "a", runs=[DATA / "runs.json"])
    b = import_openai_eval(DATA / "eval.get.json", tmp_path / "b", runs=[DATA / "runs.json"])
    assert a.eval_path.read_text() == b.eval_path.read_text()
    manifest = json.loads((tmp_path / "b" / "openai.json").read_text())
    assert manifest["item_schema"]["required"] == ["q", "a"]  # from GET's {item, sample}


def test_round_trip_export_reimports_identically(tmp_path: Path) -> None:
    _import(tmp_path)
    export_openai_eval(tmp_path / "imp" / "eval.yaml", tmp_path / "exp", store=tmp_path / "s.db")
    exported = json.loads((tmp_path / "exp" / "eval.json").read_text())
    assert [c["operation"] for c in exported["testing_criteria"][:2]] == ["eq", "ne"]
    second = tmp_path / "second"
    second.mkdir()
    result = import_openai_eval(tmp_path / "exp" / "eval.json", second / "imp",
                                runs=[tmp_path / "exp" / "runs.json"],
                                output_items=[tmp_path / "exp" / "output_items"],
                                store=second / "s.db")
    for name in ("eval.yaml", "items.jsonl", "openai.json"):
        assert (second / "imp" / name).read_text() == (tmp_path / "imp" / name).read_text()
    assert _stored(second / "s.db") == _stored(tmp_path / "s.db")
    for report in result.runs:
        assert report["disagreements"] == [] and report["requests"] == 0
        assert report["openai"]["result_counts"] == {
            k: v for k, v in report["posttrain"]["result_counts"].items() if k != "unscored"}


def test_disagreements_are_listed_per_item_and_criterion(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in OUTPUTS[0].read_text().splitlines()]
    toronto = next(r for r in rows if r["sample"]["output"][0]["content"] == "Toronto")
    exact = next(r for r in toronto["results"] if r["name"].startswith("exact"))
    exact.update(score=1.0, passed=True)  # OpenAI said pass: a misgrade to find
    changed = tmp_path / "items.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _import(tmp_path, output_items=[changed, OUTPUTS[1]])
    (d,) = result.runs[0]["disagreements"]
    assert d["item"] == str(toronto["datasource_item_id"]) and d["criterion"] == "exact"
    assert d["openai"]["passed"] is True and d["posttrain"]["passed"] is False
    # the CLI prints it
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs",
                 str(DATA / "runs.json"), "--output-items", str(changed), "--output-items",
                 str(OUTPUTS[1]), "-o", str(tmp_path / "cli"), "--store", str(tmp_path / "c.db")])
    assert code == 0


def test_cli_prints_both_counts(tmp_path: Path, capsys) -> None:
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs",
                 str(DATA / "runs.json"), "--output-items", str(OUTPUTS[0]), "--output-items",
                 str(OUTPUTS[1]), "-o", str(tmp_path / "imp"), "--store", str(tmp_path / "s.db")])
    out = capsys.readouterr()
    assert code == 0
    assert "openai (stored counts)     passed 4  failed 1  errored 1  total 6" in out.out
    assert "posttrain                  passed 4  failed 1  errored 1  total 6" in out.out
    assert "graded here with 0 requests" in out.out
    assert "testing_criteria[1].operation: read `neq`" in out.err


@pytest.mark.parametrize("change, where", [
    (lambda e: e["testing_criteria"][0].update(operation="bogus"),
     "testing_criteria[0].operation: must be one of"),
    (lambda e: e["testing_criteria"][2].update(type="text_similarty"),
     "testing_criteria[2].type: unknown grader type 'text_similarty'; did you mean"),
    (lambda e: e["testing_criteria"][1].pop("name"), "testing_criteria[1].name: required"),
    (lambda e: e.update(data_source_config={"type": "logs"}),
     "data_source_config.type: a logs eval reads your stored"),
])
def test_bad_eval_is_one_line_with_file_line_field(tmp_path: Path, capsys, change,
                                                   where: str) -> None:
    spec = json.loads((DATA / "eval.create.json").read_text())
    change(spec)
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec, indent=2))
    code = main(["import", "openai-eval", str(path), "--runs", str(DATA / "runs.json"), "-o",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"posttrain: error: {path}:") and where in err[0], err[0]
    assert "Traceback" not in err[0]


def test_bad_output_item_and_run_name_their_line(tmp_path: Path, capsys) -> None:
    lines = OUTPUTS[0].read_text().splitlines()
    bad = json.loads(lines[2])
    bad["run_id"] = "evalrun_999"
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join([lines[0], lines[1], json.dumps(bad)]) + "\n")
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs",
                 str(DATA / "runs.json"), "--output-items", str(path), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"posttrain: error: {path}:3: run_id: names no run in --runs "
                                 "(runs: evalrun_001, evalrun_002)")
    runs = json.loads((DATA / "runs.json").read_text())
    runs["data"][1]["data_source"]["input_messages"]["template"][1]["content"] = \
        {"type": "input_video", "url": "x"}
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs, indent=2))
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs", str(path),
                 "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"{path}:" in err and "unknown content part type 'input_video'" in err


def test_a_judge_that_cannot_be_called_stops_before_anything_is_stored(
        tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    spec = json.loads((DATA / "eval.create.json").read_text())
    spec["testing_criteria"].append({
        "type": "label_model", "name": "tone", "model": "gpt-4.1",
        "input": [{"role": "developer", "content": "Is this answer polite?"},
                  {"role": "user", "content": "{{sample.output_text}}"}],
        "labels": ["polite", "rude"], "passing_labels": ["polite"]})
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec))
    args = ["import", "openai-eval", str(path), "--runs", str(DATA / "runs.json"),
            "--output-items", str(OUTPUTS[0]), "-o", str(tmp_path / "o"), "--store",
            str(tmp_path / "s.db")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"posttrain: error: {path}:1: testing_criteria[4].model: a judge: "
                          "openai:gpt-4.1: OPENAI_API_KEY is not set")
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "o").exists()
    assert main([*args, "--no-grade"]) == 0  # OpenAI's grades only
    out = capsys.readouterr().out
    assert "graded here" not in out and "passed 4  failed 2" in out


def test_content_shapes() -> None:
    src = Source(Path("x.json"))
    assert content_in("hi", src, "c") == "hi"
    assert content_in({"type": "input_text", "text": "hi"}, src, "c") == "hi"
    assert content_in([{"type": "output_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                      src, "c") == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    image = content_in([{"type": "input_text", "text": "what is it?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AA",
                         "detail": "low"}], src, "c")
    assert image[1] == {"type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}
    audio = content_in([{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}],
                       src, "c")
    assert audio == [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]
    notes = Notes()
    assert messages_in([{"type": "message", "role": "developer", "content": "x", "id": "m1"}],
                       src, "m", notes) == [{"role": "developer", "content": "x"}]
    assert notes.lines == ["x.json: m[0].id: not read: unknown message field"]


def test_jsonl_runs_item_reference_and_responses(tmp_path: Path) -> None:
    """A jsonl run (pre-generated samples, no output items) is stored as given; an
    item_reference run reads each item's trajectory; a responses run's text.format becomes the
    response format."""
    items = [{"input_trajectory": [{"role": "user", "content": "Say A"}], "expected": "A"},
             {"input_trajectory": [{"role": "user", "content": [{"type": "input_text",
                                                                  "text": "Say B"}]}],
              "expected": "B"}]
    eval_spec = {"name": "traj", "data_source_config": {"type": "custom", "item_schema": {}},
                 "testing_criteria": [{"type": "string_check", "name": "m",
                                       "input": "{{sample.output_json.letter}}",
                                       "reference": "{{item.expected}}", "operation": "eq"}]}
    fmt = {"type": "json_schema", "name": "letter", "strict": True,
           "schema": {"type": "object", "properties": {"letter": {"type": "string"}},
                      "required": ["letter"]}}
    runs = [{"id": "r1", "name": "given", "data_source": {"type": "jsonl", "source": {
                "type": "file_content", "content": [
                    {"item": items[0], "sample": {"output_text": '{"letter": "A"}'}},
                    {"item": items[1], "sample": {"output_text": '{"letter": "C"}'}}]}}},
            {"id": "r2", "name": "o4 responses", "data_source": {
                "type": "responses", "model": "o4-mini",
                "source": {"type": "file_content", "content": [{"item": i} for i in items]},
                "input_messages": {"type": "item_reference",
                                   "item_reference": "item.input_trajectory"},
                "sampling_params": {"seed": 3, "max_completion_tokens": 20,
                                    "text": {"format": fmt}}}}]
    (tmp_path / "eval.json").write_text(json.dumps(eval_spec))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    result = import_openai_eval(tmp_path / "eval.json", tmp_path / "imp",
                                runs=[tmp_path / "runs.jsonl"], store=tmp_path / "s.db")
    from posttrain.eval import load_eval

    ev = load_eval(result.eval_path)
    assert ev.response_format == {"type": "json_schema", "json_schema": {
        "name": "letter", "strict": True, "schema": fmt["schema"]}}
    request = ev.request_for(ev.items[1])
    assert request.messages == [{"role": "user", "content": "Say B"}]
    assert request.seed == 3 and request.max_tokens == 20
    (report,) = result.runs  # only the jsonl run has answers
    assert report["model"] == "jsonl:given"
    assert report["posttrain"]["result_counts"] == {"total": 2, "errored": 0, "failed": 1,
                                                    "passed": 1, "unscored": 0}
    # exported back: the jsonl run keeps its samples, the trajectory is not duplicated
    export_openai_eval(result.eval_path, tmp_path / "exp", store=tmp_path / "s.db")
    run, responses = json.loads((tmp_path / "exp" / "runs.json").read_text())
    content = run["data_source"]["source"]["content"]
    assert content[1] == {"item": items[1], "sample": {"output_text": '{"letter": "C"}'}}
    # the responses run (no answers) goes back too, as a responses run in its own shapes
    ds = responses["data_source"]
    assert responses["id"] == "r2" and ds["type"] == "responses" and ds["model"] == "o4-mini"
    assert ds["sampling_params"]["text"] == {"format": fmt}
    assert "response_format" not in ds["sampling_params"]
    assert ds["input_messages"] == runs[1]["data_source"]["input_messages"]
    assert ds["source"]["content"] == runs[1]["data_source"]["source"]["content"]
    # and the export imports to the same eval, items and manifest
    again = import_openai_eval(tmp_path / "exp" / "eval.json", tmp_path / "again",
                               runs=[tmp_path / "exp" / "runs.json"],
                               output_items=[tmp_path / "exp" / "output_items"],
                               store=tmp_path / "s2.db")
    for name in ("eval.yaml", "items.jsonl"):
        assert (tmp_path / "again" / name).read_text() == (tmp_path / "imp" / name).read_text()
    first = json.loads((tmp_path / "imp" / "openai.json").read_text())
    second = json.loads((tmp_path / "again" / "openai.json").read_text())
    assert [(r["id"], r["kind"], r["items"]) for r in second["runs"]] == \
        [(r["id"], r["kind"], r["items"]) for r in first["runs"]]
    assert again.runs[0]["posttrain"] == result.runs[0]["posttrain"]


def test_logs_eval_reads_ingested_items_with_its_filter_as_tags(tmp_path: Path) -> None:
    rows = [{"id": "a1", "messages": [{"role": "user", "content": "Where is my order?"}],
             "reference": "It ships today.", "tags": ["source:logged_response"]},
            {"id": "a2", "messages": [{"role": "user", "content": "Can I return it?"}],
             "reference": "Within 30 days.", "tags": []}]
    (tmp_path / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "support", "data_source_config": {"type": "logs",
                                                      "metadata": {"usecase": "support"}},
            "testing_criteria": [{"type": "text_similarity", "name": "sim",
                                  "input": "{{sample.output_text}}",
                                  "reference": "{{item.reference}}",
                                  "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8}]}
    (tmp_path / "eval.json").write_text(json.dumps(spec))
    result = import_openai_eval(tmp_path / "eval.json", tmp_path / "imp",
                                items_file=tmp_path / "dataset.jsonl")
    from posttrain.eval import load_eval

    ev = load_eval(result.eval_path)
    assert [i.tags for i in ev.items] == [["source:logged_response", "usecase:support"],
                                          ["usecase:support"]]
    assert ev.request_for(ev.items[0]).messages == rows[0]["messages"]


def test_file_id_source_is_found_next_to_the_runs(tmp_path: Path, capsys) -> None:
    runs = json.loads((DATA / "runs.json").read_text())["data"][:1]
    content = runs[0]["data_source"]["source"]["content"]
    runs[0]["data_source"]["source"] = {"type": "file_id", "id": "file-abc123"}
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs",
                 str(tmp_path / "runs.json"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "file 'file-abc123' lives at OpenAI" in err
    (tmp_path / "file-abc123.jsonl").write_text("".join(json.dumps(r) + "\n" for r in content))
    result = import_openai_eval(DATA / "eval.get.json", tmp_path / "o",
                                runs=[tmp_path / "runs.json"])
    assert result.items == 6


@pytest.mark.slow
def test_imported_eval_runs_again_on_a_local_model(tmp_path: Path) -> None:
    """The imported eval is an ordinary eval: it runs on a local model (the tiny one), each
    variant, and its runs sit beside the imported ones."""
    pytest.importorskip("transformers")
    from posttrain.api import run_eval
    from posttrain.train.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", task=None, seed=0)
    _import(tmp_path)
    shutil.copy(tmp_path / "s.db", tmp_path / "copy.db")
    summaries = run_eval(tmp_path / "imp" / "eval.yaml", [f"hf:{tiny}"], store=tmp_path / "s.db")
    assert [s["variant"] for s in summaries] == ["default", "gpt-4.1-nano-tutor"]
    assert all(s["n"] == 6 and s["answered"] == 6 for s in summaries)
    export_openai_eval(tmp_path / "imp" / "eval.yaml", tmp_path / "exp", store=tmp_path / "s.db")
    runs = json.loads((tmp_path / "exp" / "runs.json").read_text())
    assert len(runs) == 4 and runs[-1]["model"] == f"hf:{tiny}"


def _cli_import(tmp: Path, *extra: str, output_items: list[Path] = OUTPUTS) -> list[str]:
    args = ["import", "openai-eval", str(DATA / "eval.get.json"), "--runs",
            str(DATA / "runs.json"), "-o", str(tmp / "imp"), "--store", str(tmp / "s.db")]
    for path in output_items:
        args += ["--output-items", str(path)]
    return [*args, *extra]


def test_an_interrupted_import_is_completed_by_the_next_one(tmp_path: Path, capsys,
                                                           monkeypatch) -> None:
    from posttrain.runner.store import Store

    real = Store.record_sample
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):  # Ctrl-C after 3 answers
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "record_sample", interrupted)
    assert main(_cli_import(tmp_path)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with Store(tmp_path / "s.db") as db:
        (partial,) = db.list_runs()
        assert partial.status == "running"  # never marked finished
    monkeypatch.setattr(Store, "record_sample", real)
    result = _import(tmp_path)
    assert [r["state"] for r in result.runs] == ["replaced", "new"]
    assert any("interrupted import" in n for n in result.notes)
    assert [r["items"] for r in result.runs] == [6, 6]
    with Store(tmp_path / "s.db") as db:
        runs = db.list_runs()
        assert len(runs) == 2 and {r.status for r in runs} == {"finished"}
        assert {len(list(db.samples(r.id))) for r in runs} == {6}
    assert [r["state"] for r in _import(tmp_path).runs] == ["stored", "stored"]


def test_reimport_with_other_output_items_reports_the_differences(tmp_path: Path) -> None:
    _import(tmp_path)
    rows = [json.loads(line) for line in OUTPUTS[0].read_text().splitlines()]
    rows[1]["sample"]["output"][0]["content"] = "Lyon"
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _import(tmp_path, output_items=[changed, OUTPUTS[1]])
    assert [r["state"] for r in result.runs] == ["changed", "stored"]
    (note,) = [n for n in result.notes if "imported before" in n]
    assert f"1 answers differ (items {rows[1]['datasource_item_id']})" in note


def _rewrite(path: Path, out: Path, change) -> Path:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_duplicate_output_items(tmp_path: Path, capsys) -> None:
    same = _rewrite(OUTPUTS[0], tmp_path / "same.jsonl", lambda rows: rows.append(rows[2]))
    result = _import(tmp_path, output_items=[same, OUTPUTS[1]])
    assert result.runs[0]["items"] == 6
    assert any("1 output item appears twice, identical" in n for n in result.notes)

    def conflict(rows: list) -> None:
        other = json.loads(json.dumps(rows[2]))
        other["sample"]["output"][0]["content"] = "somewhere else"
        rows.append(other)

    bad = _rewrite(OUTPUTS[0], tmp_path / "bad.jsonl", conflict)
    code = main(_cli_import(tmp_path / "c", output_items=[bad, OUTPUTS[1]]))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    key = json.loads(OUTPUTS[0].read_text().splitlines()[2])["datasource_item_id"]
    assert f"{bad}:7: datasource_item_id: item {key} appears twice" in err
    assert not (tmp_path / "c" / "imp").exists() and not (tmp_path / "c" / "s.db").exists()


def test_an_output_item_for_no_item_of_its_run_is_refused(tmp_path: Path, capsys) -> None:
    def phantom(rows: list) -> None:
        rows[0]["datasource_item_id"] = 99

    bad = _rewrite(OUTPUTS[0], tmp_path / "bad.jsonl", phantom)
    code = main(_cli_import(tmp_path, output_items=[bad, OUTPUTS[1]]))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:1: datasource_item_id: 99 is not an item of run evalrun_001 (0-5)" in err
    assert not (tmp_path / "imp").exists() and not (tmp_path / "s.db").exists()


def test_the_imports_own_items_file_can_be_given_back(tmp_path: Path) -> None:
    first = _import(tmp_path)
    again = import_openai_eval(DATA / "eval.get.json", tmp_path / "again",
                               runs=[DATA / "runs.json"],
                               items_file=tmp_path / "imp" / "items.jsonl")
    assert again.items == first.items
    assert (tmp_path / "again" / "items.jsonl").read_text() == \
        (tmp_path / "imp" / "items.jsonl").read_text()


def test_ids_never_become_paths_outside_the_folders(tmp_path: Path, capsys) -> None:
    runs = json.loads((DATA / "runs.json").read_text())["data"]
    run = dict(runs[0], id="../../../escaped_run")
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([run], indent=1))
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs", str(path),
                 "-o", str(tmp_path / "imp")])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:4: id: '../../../escaped_run' is not a run id" in err
    (tmp_path / "outside.jsonl").write_text(json.dumps({"item": {"q": "x", "a": "y"}}) + "\n")
    (tmp_path / "files").mkdir()
    run = dict(runs[0], data_source=dict(runs[0]["data_source"],
                                         source={"type": "file_id", "id": "../outside"}))
    path.write_text(json.dumps([run], indent=1))
    code = main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs", str(path),
                 "--files", str(tmp_path / "files"), "-o", str(tmp_path / "imp")])
    err = capsys.readouterr().err
    assert code == 2 and "data_source.source.id: '../outside' is not a file id" in err
    assert not (tmp_path / "imp").exists()


def test_export_file_names_stay_in_the_output_folder() -> None:
    from posttrain.interop.openai_evals import _file_name

    assert _file_name("evalrun_001") == "evalrun_001"
    for bad in ("../../../escaped_run", "a/b", "..", "/etc/passwd"):
        name = _file_name(bad)
        assert "/" not in name and name not in ("", ".", "..") and not name.startswith(".")


def test_runs_file_notes_name_the_fields_own_line(tmp_path: Path) -> None:
    page = json.loads((DATA / "runs.json").read_text())
    page["data"][1]["data_source"]["colour"] = "blue"
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(page, indent=2))
    result = import_openai_eval(DATA / "eval.get.json", tmp_path / "imp", runs=[path])
    (note,) = [n for n in result.notes if "colour" in n]
    line = int(note.split(":")[1])
    assert '"colour"' in path.read_text().splitlines()[line - 1]


def test_judge_applies_to_this_grading_only(tmp_path: Path, stub_server, monkeypatch) -> None:
    """--judge grades here; the eval keeps, and export writes, the judge OpenAI's criterion
    names (a provider's options never go into OpenAI's model name)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = json.loads((DATA / "eval.create.json").read_text())
    spec["testing_criteria"].append({
        "type": "label_model", "name": "tone", "model": "gpt-4.1",
        "input": [{"role": "developer", "content": "Is this answer polite?"},
                  {"role": "user", "content": "{{sample.output_text}} [[answer:polite]]"}],
        "labels": ["polite", "rude"], "passing_labels": ["polite"]})
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec))
    judge = f"openai:stub?base_url={stub_server.base_url}"
    result = import_openai_eval(path, tmp_path / "imp", runs=[DATA / "runs.json"],
                                output_items=[OUTPUTS[0]], store=tmp_path / "s.db",
                                judge=judge)
    (report,) = result.runs
    assert report["requests"] == 6 and report["judge"] == judge
    tone = next(e for e in report["posttrain"]["per_testing_criteria_results"]
                if e["testing_criteria"] == "tone")
    assert tone["passed"] == 6
    text = result.eval_path.read_text()
    assert "openai:gpt-4.1" in text and "stub" not in text
    from posttrain.runner.store import Store

    with Store(tmp_path / "s.db") as db:
        (run,) = db.list_runs()
        assert run.config["judge_override"] == judge
    export_openai_eval(result.eval_path, tmp_path / "exp", store=tmp_path / "s.db")
    exported = json.loads((tmp_path / "exp" / "eval.json").read_text())
    assert exported["testing_criteria"][-1]["model"] == "gpt-4.1"


def test_export_strips_provider_options_from_model_names() -> None:
    from posttrain.interop.openai_format import grader_out, openai_model_name

    assert openai_model_name("openai:gpt-4.1?base_url=http://x/v1&concurrency=2") == "gpt-4.1"
    out = grader_out({"type": "score_model", "name": "s", "input": [],
                      "model": "openai:gpt-4.1?base_url=http://127.0.0.1:9/v1"})
    assert out["model"] == "gpt-4.1"


def _score_model_eval(tmp: Path, stub_url: str) -> tuple[Path, Path]:
    spec = json.loads((DATA / "eval.create.json").read_text())
    spec["testing_criteria"] = [{
        "type": "score_model", "name": "rating", "model": "gpt-4.1",
        "input": [{"role": "user", "content": "Rate {{sample.output_text}} from 0 to 10. "
                                              "[[answer:8]]"}],
        "range": [0, 10], "pass_threshold": 7}]
    path = tmp / "eval.json"
    path.write_text(json.dumps(spec))
    rows = [json.loads(line) for line in OUTPUTS[0].read_text().splitlines()]
    for row in rows:
        row["results"] = [{"name": "rating-0f5a1b2c-3d4e-4f60-8a7b-9c0d1e2f3a4b",
                           "type": "score_model", "score": 8.0, "passed": True}]
        row["status"] = "pass"
    items = tmp / "oi.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, items


def test_score_model_scores_stay_on_one_scale(tmp_path: Path, stub_server, monkeypatch) -> None:
    """OpenAI's 8.0 on [0, 10] is posttrain's 0.8: stored normalised, compared on that scale
    (no flip), exported raw."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path, items = _score_model_eval(tmp_path, stub_server.base_url)
    judge = f"openai:stub?base_url={stub_server.base_url}"
    result = import_openai_eval(path, tmp_path / "imp", runs=[DATA / "runs.json"],
                                output_items=[items], store=tmp_path / "s.db", judge=judge)
    (report,) = result.runs
    assert report["disagreements"] == []
    from posttrain.runner.store import Store

    with Store(tmp_path / "s.db") as db:
        (run,) = db.list_runs()
        theirs = {r["item_id"]: r["value"] for r in db.score_history(run.id)}
        mine = {r["item_id"]: r["value"] for r in db.scores(run.id)}
    assert set(theirs.values()) == {0.8} and theirs == mine
    export_openai_eval(result.eval_path, tmp_path / "exp", store=tmp_path / "s.db")
    (out,) = list((tmp_path / "exp" / "output_items").iterdir())
    scores = {r["results"][0]["score"] for r in map(json.loads, out.read_text().splitlines())}
    assert scores == {8.0}


def test_bad_result_values_are_refused_or_warned(tmp_path: Path, capsys) -> None:
    cases = [
        (lambda r: r["results"][0].update(status="banana"), "results[0].status: unknown status"),
        (lambda r: r["results"][0].update(score="1.0"), "results[0].score: must be a number"),
        (lambda r: r["results"].append(dict(r["results"][0])),
         "results[4].name: a second result for the criterion"),
        (lambda r: r["results"][0].update(passed="yes"), "results[0].passed: must be true"),
    ]
    for n, (change, message) in enumerate(cases):
        bad = _rewrite(OUTPUTS[0], tmp_path / f"bad{n}.jsonl",
                       lambda rows, change=change: change(rows[0]))
        code = main(_cli_import(tmp_path / f"c{n}", output_items=[bad, OUTPUTS[1]]))
        err = capsys.readouterr().err
        assert code == 2 and f"{bad}:1: {message}" in err, err
    extra = _rewrite(OUTPUTS[0], tmp_path / "extra.jsonl",
                     lambda rows: rows[0]["results"][0].update(colour="blue"))
    result = _import(tmp_path, output_items=[extra, OUTPUTS[1]])
    assert any(f"{extra}:1: results[0].colour: not read" in n for n in result.notes)


def _eval_with(tmp: Path, change) -> Path:
    spec = json.loads((DATA / "eval.create.json").read_text())
    change(spec)
    path = tmp / "eval.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _runs_with(tmp: Path, change, *, first_only: bool = False) -> Path:
    page = json.loads((DATA / "runs.json").read_text())
    change(page["data"][0])
    if first_only:
        page["data"] = page["data"][:1]
    path = tmp / "runs.json"
    path.write_text(json.dumps(page, indent=2))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("target", "change", "needle", "message"), [
    ("eval", lambda s: s["testing_criteria"][0].update(reference="{{item.answr}}"),
     "item.answr", "testing_criteria[0].reference: {{item.answr}}: no item has a field 'answr'"),
    ("eval", lambda s: s["testing_criteria"][0].update(reference="{{item.a}"), "{{item.a}\"",
     "testing_criteria[0].reference: malformed placeholder"),
    ("eval", lambda s: s["testing_criteria"][2].update(pass_threshold=1.5), "1.5",
     "testing_criteria[2].pass_threshold: 1.5 is outside [0, 1]"),
    ("runs", lambda r: r["data_source"]["input_messages"]["template"][-1].update(
        content="{{item.qq}}"), "item.qq",
     "data_source.input_messages.template[1].content: {{item.qq}}: no item has a field 'qq'"),
    ("runs", lambda r: r["data_source"]["sampling_params"].update(max_completion_tokens=-5),
     "-5", "data_source.sampling_params.max_completion_tokens: must be a positive integer"),
    ("runs", lambda r: r["data_source"]["sampling_params"].update(seed="7"), "\"7\"",
     "data_source.sampling_params.seed: must be an integer"),
])
def test_bad_input_names_the_users_file_before_anything_is_written(
        tmp_path: Path, capsys, target, change, needle, message) -> None:
    eval_file, runs_file = DATA / "eval.get.json", DATA / "runs.json"
    if target == "eval":
        eval_file = _eval_with(tmp_path, change)
    else:
        runs_file = _runs_with(tmp_path, change)
    code = main(["import", "openai-eval", str(eval_file), "--runs", str(runs_file),
                 "--output-items", str(OUTPUTS[0]), "--output-items", str(OUTPUTS[1]),
                 "-o", str(tmp_path / "o"), "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    path = eval_file if target == "eval" else runs_file
    assert code == 2 and "Traceback" not in err
    assert f"posttrain: error: {path}:{_line_of(path, needle)}: {message}" in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.db").exists()


def test_items_missing_a_field_do_not_depend_on_row_order(tmp_path: Path) -> None:
    """A field some items lack is warned with each item's file:line and rendered empty for
    every such row, wherever it sits (the first row or another)."""
    results = []
    for position in (0, 3):
        def drop(run: dict, position: int = position) -> None:
            for entry in run["data_source"]["source"]["content"]:
                entry["item"]["topic"] = entry["item"].get("topic", "x")
            del run["data_source"]["source"]["content"][position]["item"]["topic"]
            run["data_source"]["input_messages"]["template"][-1]["content"] = \
                "{{item.q}} ({{item.topic}})"
        folder = tmp_path / str(position)
        folder.mkdir()
        runs = _runs_with(folder, drop, first_only=True)
        result = import_openai_eval(DATA / "eval.get.json", folder / "imp", runs=[runs])
        (note,) = [n for n in result.notes if "no field 'topic'" in n]
        assert "1 item has no field 'topic'" in note and f"({runs}:" in note
        rows = [json.loads(r) for r in (folder / "imp" / "items.jsonl").read_text().splitlines()]
        assert rows[position]["topic"] == ""
        results.append(result.items)
    assert results[0] == results[1]


def test_item_reference_to_a_missing_field_names_the_runs_file(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs.jsonl"
    run = {"id": "r1", "data_source": {
        "type": "completions", "model": "gpt-4.1",
        "source": {"type": "file_content", "content": [
            {"item": {"traj": [{"role": "user", "content": "hi"}], "a": "x"}},
            {"item": {"a": "y"}}]},
        "input_messages": {"type": "item_reference", "item_reference": "item.traj"}}}
    runs.write_text(json.dumps(run) + "\n")
    spec = {"name": "t", "data_source_config": {"type": "custom", "item_schema": {}},
            "testing_criteria": [{"type": "string_check", "name": "m", "operation": "eq",
                                  "input": "{{sample.output_text}}", "reference": "{{item.a}}"}]}
    (tmp_path / "eval.json").write_text(json.dumps(spec))
    code = main(["import", "openai-eval", str(tmp_path / "eval.json"), "--runs", str(runs),
                 "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"{runs}:1: traj: item 1 has no field 'traj'" in err, err


def test_nan_infinity_and_deep_nesting_are_one_line(tmp_path: Path, capsys) -> None:
    text = (DATA / "eval.create.json").read_text()
    spec = json.loads(text)
    spec["testing_criteria"][2]["pass_threshold"] = "__NAN__"
    nan_eval = tmp_path / "nan.json"
    nan_eval.write_text(json.dumps(spec, indent=2).replace('"__NAN__"', "NaN"))
    rows = OUTPUTS[0].read_text().splitlines()
    nan_items = tmp_path / "nan.jsonl"
    nan_items.write_text("\n".join([rows[0], rows[1].replace('"score": 1.0', '"score": NaN', 1),
                                    *rows[2:]]) + "\n")
    deep = tmp_path / "deep.json"
    deep.write_text('{"name": "x", "metadata": ' + "[" * 5000 + "]" * 5000 + "}")
    deep_items = tmp_path / "deep.jsonl"
    deep_items.write_text('{"datasource_item_id": 0, "sample": ' + "[" * 5000 + "]" * 5000
                          + "}\n")
    cases = [
        (nan_eval, OUTPUTS[0], f"{nan_eval}:{_line_of(nan_eval, 'NaN')}: pass_threshold: NaN "
                               "is not JSON"),
        (DATA / "eval.get.json", nan_items, f"{nan_items}:2: score: NaN is not JSON"),
        (deep, OUTPUTS[0], f"{deep}: nested too deep"),
        (DATA / "eval.get.json", deep_items, f"{deep_items}:1: nested too deep"),
    ]
    for eval_file, items, message in cases:
        code = main(["import", "openai-eval", str(eval_file), "--runs", str(DATA / "runs.json"),
                     "--output-items", str(items), "-o", str(tmp_path / "o"), "--no-grade",
                     "--store", str(tmp_path / "s.db")])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_whitespace_differences_are_not_listed_as_misgrades(tmp_path: Path, capsys) -> None:
    """OpenAI's eq failed "Paris\\n"; posttrain grades the answer without its surrounding
    whitespace: a known difference, reported apart, never as a misgrade."""
    def trailing_newline(rows: list) -> None:
        row = rows[0]
        row["sample"]["output"][0]["content"] += "\n"
        for result in row["results"]:
            if result["name"].startswith("exact"):
                result.update(score=0.0, passed=False)
        row["status"] = "fail"

    changed = _rewrite(OUTPUTS[0], tmp_path / "ws.jsonl", trailing_newline)
    result = _import(tmp_path, output_items=[changed, OUTPUTS[1]])
    (d,) = result.runs[0]["disagreements"]
    assert d["criterion"] == "exact" and d["whitespace"] is True
    assert main(_cli_import(tmp_path / "cli", output_items=[changed, OUTPUTS[1]])) == 0
    out = capsys.readouterr().out
    assert "1 grade differs only by whitespace, not misgrades" in out
    assert "grade disagrees" not in out


def test_exported_counts_add_up_when_items_are_unscored(tmp_path: Path, stub_server,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = json.loads((DATA / "eval.create.json").read_text())
    spec["testing_criteria"].append({
        "type": "label_model", "name": "tone", "model": "gpt-4.1",
        "input": [{"role": "user", "content": "{{sample.output_text}} [[answer:neutral]]"}],
        "labels": ["polite", "rude"], "passing_labels": ["polite"]})
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec))
    result = import_openai_eval(path, tmp_path / "imp", runs=[DATA / "runs.json"],
                                output_items=[OUTPUTS[0]], store=tmp_path / "s.db",
                                judge=f"openai:stub?base_url={stub_server.base_url}")
    mine = result.runs[0]["posttrain"]["result_counts"]
    assert mine["unscored"] == 4 and mine["failed"] == 2
    export_openai_eval(result.eval_path, tmp_path / "exp", store=tmp_path / "s.db")
    (run,) = json.loads((tmp_path / "exp" / "runs.json").read_text())[:1]
    c = run["result_counts"]
    assert c["total"] == c["passed"] + c["failed"] + c["errored"] + c["unscored"] == 6
    for entry in run["per_testing_criteria_results"]:
        assert entry["passed"] + entry["failed"] + entry.get("unscored", 0) == 6


def test_get_shape_criterion_ids_match_results(tmp_path: Path) -> None:
    """GET returns each criterion with an `id` (`name-<uuid>`): results named by that id match
    the criterion even when the name is not the id's prefix."""
    spec = json.loads((DATA / "eval.get.json").read_text())
    spec["testing_criteria"][0]["id"] = "exact-match-0f5a1b2c-3d4e-4f60-8a7b-9c0d1e2f3a4b"
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(spec, indent=2))

    def rename(rows: list) -> None:
        for row in rows:
            for r in row["results"]:
                if r["name"].startswith("exact-"):
                    r["name"] = "exact-match-0f5a1b2c-3d4e-4f60-8a7b-9c0d1e2f3a4b"

    items = _rewrite(OUTPUTS[0], tmp_path / "oi.jsonl", rename)
    result = import_openai_eval(path, tmp_path / "imp", runs=[DATA / "runs.json"],
                                output_items=[items], store=tmp_path / "s.db")
    assert not [n for n in result.notes if ".id:" in n]
    assert result.runs[0]["disagreements"] == []
    per = {e["testing_criteria"] for e in
           result.runs[0]["openai_from_items"]["per_testing_criteria_results"]}
    assert "exact" in per


def test_per_criterion_openai_column_reads_the_output_items(tmp_path: Path, capsys) -> None:
    page = json.loads((DATA / "runs.json").read_text())
    for run in page["data"]:
        run.pop("per_testing_criteria_results", None)
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps(page))
    assert main(["import", "openai-eval", str(DATA / "eval.get.json"), "--runs", str(runs),
                 "--output-items", str(OUTPUTS[0]), "--output-items", str(OUTPUTS[1]),
                 "-o", str(tmp_path / "o"), "--store", str(tmp_path / "s.db")]) == 0
    out = capsys.readouterr().out
    exact = [line for line in out.splitlines() if line.strip().startswith("exact ")]
    assert exact and all("openai -" not in line for line in exact), out


def test_counts_that_do_not_match_the_output_items_are_warned(tmp_path: Path) -> None:
    rows = OUTPUTS[0].read_text().splitlines()
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("\n".join(rows[:4]) + "\n")
    result = _import(tmp_path, output_items=[fewer, OUTPUTS[1]])
    (note,) = [n for n in result.notes if "result_counts.total" in n]
    assert "6 items, but 4 output items were given for run evalrun_001" in note
    assert note.startswith(f"{DATA / 'runs.json'}:")


def test_responses_run_exports_responses_shapes() -> None:
    from types import SimpleNamespace

    from posttrain.interop.openai_evals import _data_source

    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    eval_ = SimpleNamespace(variants={"default": SimpleNamespace(messages=None, sampling={})},
                            messages=[{"role": "user", "content": "{{item.q}}"}],
                            sampling={"max_tokens": 5}, tools=[tool], response_format=fmt)
    ds = _data_source("responses", eval_, "default", "o4-mini", [], None)
    assert ds["type"] == "responses"
    params = ds["sampling_params"]
    assert params["tools"] == [{"type": "function", "name": "add",
                                "parameters": {"type": "object"}}]
    assert params["text"] == {"format": {"type": "json_schema", "name": "x",
                                         "schema": {"type": "object"}}}
    assert params["max_completion_tokens"] == 5 and "response_format" not in params
    chat = _data_source("completions", eval_, "default", "gpt-4.1", [], None)
    assert chat["sampling_params"]["tools"] == [tool]
    assert chat["sampling_params"]["response_format"] == fmt

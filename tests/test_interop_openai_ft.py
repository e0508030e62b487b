"""OpenAI fine-tuning job files run here (``posttrain train --job``), written back (``export
openai-ft --job``), and grades in the grader-run endpoint's shape (``grade --openai``).

The job files are written here from the documented shapes (the body of POST
/v1/fine_tuning/jobs; SFT, DPO and RFT training lines) over the quickstart's sums task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.interop.openai_ft import load_job, write_request
from posttrain.train import quicktask

SCHEMA = {"type": "json_schema", "json_schema": {
    "name": "sum", "strict": True, "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}},
        "required": ["answer"], "additionalProperties": False}}}


def _rft_rows(rows: list[dict]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"],
             "expected": r["expected"]} for r in rows]


def _write(folder: Path, name: str, rows: list[dict]) -> str:
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def rft_job(folder: Path, *, grader: dict | None = None, n_train: int = 24, n_valid: int = 12,
            hyper: dict | None = None, response_format: dict | None = SCHEMA) -> Path:
    """The RFT guide's style of job: a JSON-schema response format and a multi grader."""
    train, held = quicktask.split_items(seed=3, n_heldout=n_valid)
    grader = grader or {
        "type": "multi", "calculate_output": "0.5 * answer + 0.5 * judge",
        "graders": {
            "answer": {"type": "string_check", "name": "answer",
                       "input": "{{sample.output_json.answer}}", "reference": "{{item.answer}}",
                       "operation": "eq"},
            "judge": {"type": "score_model", "name": "judge", "model": "gpt-4o-2024-08-06",
                      "input": [{"role": "system", "content": "Score 1 if the reply is the "
                                 "correct sum as JSON, else 0."},
                                {"role": "user", "content": "Question: {{item.messages}}\n"
                                 "Reply: {{sample.output_text}}"}],
                      "range": [0, 1]}}}
    body = {"model": "o4-mini-2025-04-16", "suffix": "sums", "seed": 7,
            "training_file": _write(folder, "train.jsonl", _rft_rows(train[:n_train])),
            "validation_file": _write(folder, "valid.jsonl", _rft_rows(held)),
            "integrations": [{"type": "wandb", "wandb": {"project": "p"}}],
            "method": {"type": "reinforcement", "reinforcement": {
                "grader": grader, **({"response_format": response_format}
                                     if response_format else {}),
                "hyperparameters": hyper or {"n_epochs": 1, "batch_size": 4,
                                             "compute_multiplier": "auto",
                                             "eval_interval": 2, "eval_samples": 1,
                                             "reasoning_effort": "medium"}}}}
    path = folder / "job.json"
    path.write_text(json.dumps(body, indent=2))
    return path


def sft_job(folder: Path, method: str = "supervised") -> Path:
    rows = quicktask.all_items()[::25]
    if method == "supervised":
        lines = [{"messages": [{"role": "user", "content": r["prompt"]},
                               {"role": "assistant", "content": r["expected"]}]} for r in rows]
    else:
        lines = [{"input": {"messages": [{"role": "user", "content": r["prompt"]}]},
                  "preferred_output": [{"role": "assistant", "content": r["expected"]}],
                  "non_preferred_output": [{"role": "assistant",
                                            "content": f"The answer is {r['answer']}."}]}
                 for r in rows]
    body = {"model": "gpt-4.1-mini-2025-04-14", "training_file": _write(folder, "t.jsonl", lines),
            "method": {"type": method, method: {"hyperparameters": {
                "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": "auto",
                **({"beta": 0.2} if method == "dpo" else {})}}}}
    path = folder / "job.json"
    path.write_text(json.dumps(body, indent=2))
    return path


def test_rft_guide_job_loads_with_its_grader_and_format(tmp_path: Path) -> None:
    job = load_job(rft_job(tmp_path))
    assert job.method == "reinforcement" and job.kind == "rft"
    assert job.grader["graders"]["judge"]["model"] == "openai:gpt-4o-2024-08-06"
    assert job.response_format == SCHEMA
    assert len(job.training) == 24 and len(job.validation) == 12
    resolved = job.resolved(len(job.training))
    assert resolved["compute_multiplier"] == 1.0 and resolved["eval_interval"] == 2
    notes = "\n".join(job.notes)
    assert "reasoning_effort: not applicable" in notes and "integrations: wandb" in notes
    assert all(n.startswith(f"{tmp_path / 'job.json'}:") for n in job.notes)
    judged = load_job(rft_job(tmp_path), judge="hf:local-judge")
    assert judged.grader["graders"]["judge"]["model"] == "hf:local-judge"


def _edit(path: Path, change) -> Path:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body, indent=2))
    return path


@pytest.mark.parametrize("change, expected", [
    (lambda b: b.update(training_file="missing.jsonl"), "training_file: no such file"),
    (lambda b: b.update(training_file="file-abc"), "file ids live at OpenAI"),
    (lambda b: b["method"].update(type="rl"), "method.type: must be supervised, dpo or"),
    (lambda b: b["method"]["reinforcement"]["hyperparameters"].update(n_epochs=-1),
     "method.reinforcement.hyperparameters.n_epochs: must be \"auto\" or a positive integer"),
    (lambda b: b["method"]["reinforcement"]["grader"]["graders"]["answer"].update(
        operation="equals"), "method.reinforcement.grader.graders.answer.operation: must be"),
    (lambda b: b["method"]["reinforcement"]["grader"]["graders"]["answer"].update(
        reference="{{item.total}}"), "has no field 'total'"),
    (lambda b: b["method"]["reinforcement"].update(response_format={"type": "xml"}),
     "method.reinforcement.response_format.type: unknown format type 'xml'"),
    (lambda b: b.pop("validation_file"), "validation_file: an RFT job here needs"),
])
def test_bad_rft_job_is_one_line_with_file_and_field(tmp_path: Path, capsys, change,
                                                     expected: str) -> None:
    path = _edit(rft_job(tmp_path), change)
    code = main(["train", "--job", str(path), "--model", "hf:x", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("posttrain: error: ") and expected in err[0], err
    assert not (tmp_path / "o").exists()


def test_bad_training_line_names_its_line(tmp_path: Path, capsys) -> None:
    path = sft_job(tmp_path)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["messages"] = bad["messages"][:1]  # no assistant answer
    lines[2] = json.dumps(bad)
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    code = main(["train", "--job", str(path), "--model", "hf:x", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"posttrain: error: {tmp_path / 't.jsonl'}:3: "
                                 "messages[0].role: the last message must be from assistant, "
                                 "got 'user'")
    path = sft_job(tmp_path, "dpo")
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    rows[1].pop("preferred_output")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError) as info:
        load_job(path)
    assert str(info.value).startswith(f"{tmp_path / 't.jsonl'}:2: preferred_output:")


def test_unknown_fields_are_warnings(tmp_path: Path) -> None:
    path = _edit(sft_job(tmp_path), lambda b: (
        b.update(learning_rate=0.1),
        b["method"]["supervised"]["hyperparameters"].update(warmup=3)))
    job = load_job(path)
    text = "\n".join(job.notes)
    assert "learning_rate: not read: unknown job field" in text
    assert "method.supervised.hyperparameters.warmup: not read" in text
    assert job.resolved(len(job.training)) == {"n_epochs": 1, "batch_size": 4,
                                               "learning_rate_multiplier": 1.0}


def test_train_needs_a_kind_or_a_job(capsys) -> None:
    assert main(["train"]) == 2
    assert "give a KIND (sft, dpo, rft) or --job JOB.json" in capsys.readouterr().err


def test_export_job_writes_the_same_job_back(tmp_path: Path) -> None:
    job = load_job(rft_job(tmp_path))
    write_request(job, tmp_path / "run")
    code = main(["export", "openai-ft", "--job", str(tmp_path / "run"), "-o",
                 str(tmp_path / "back" / "job.json")])
    assert code == 0
    again = load_job(tmp_path / "back" / "job.json")
    original = json.loads((tmp_path / "job.json").read_text())
    assert json.loads((tmp_path / "back" / "job.json").read_text()) == original
    for attr in ("method", "hyper", "grader", "response_format", "training", "validation"):
        assert getattr(again, attr) == getattr(job, attr), attr


def test_grade_answers_in_the_grader_run_shape(tmp_path: Path, capsys) -> None:
    job = json.loads(rft_job(tmp_path).read_text())
    answer = job["method"]["reinforcement"]["grader"]["graders"]["answer"]
    multi = {"type": "multi", "name": "m", "calculate_output": "0.5 * answer + 0.5 * short",
             "graders": {"answer": answer,
                         "short": {"type": "python", "name": "short",
                                   "source": "def grade(sample, item):\n"
                                             "    return 1.0 if len(sample['output_text']) < 20 "
                                             "else 0.0\n"}}}
    body = tmp_path / "run.json"
    body.write_text(json.dumps({"grader": multi, "item": {"answer": 7},
                                "model_sample": '{"answer": 7}'}))
    assert main(["grade", str(body), "--json", "--openai"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reward"] == 1.0 and out["sub_rewards"] == {"answer": 1.0, "short": 1.0}
    assert out["metadata"]["type"] == "multi" and not any(
        v for v in out["metadata"]["errors"].values())
    broken = dict(answer, reference="{{item.total}}", name="b")
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps(broken))
    assert main(["grade", str(grader), "--item", '{"total": 1}', "--output-text", "x",
                 "--json", "--openai"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reward"] == 0.0 and out["metadata"]["posttrain"]["status"] == "scored"
    bad = dict(answer, name="c", input="{{sample.output_text}}")
    grader.write_text(json.dumps(bad))
    assert main(["grade", str(grader), "--item", '{"other": 1}', "--output-text", "7",
                 "--json", "--openai"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reward"] == 0.0 and out["metadata"]["errors"]["invalid_variable_error"] is True
    assert out["metadata"]["posttrain"]["status"] == "unscored"


# ---- training (slow) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_add() -> Path:
    pytest.importorskip("trl")
    from posttrain.train.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.mark.slow
def test_rft_job_validation_reward_equals_posttrain_eval_of_the_checkpoint(
        tmp_path: Path, tiny_add: Path, capsys) -> None:
    """An RFT job (a multi grader of two string_checks: partial credit for the right number,
    full for the exact JSON) on the tiny model: what the job reports as each kept
    checkpoint's validation reward is what `posttrain eval` of that checkpoint on the
    validation items gives, with no cache, in a fresh store. No response_format here: the
    tiny model never saw the instruction a local model is given for one, and answers in prose
    to it (reward 0 everywhere, which would make the comparison empty)."""
    job = rft_job(tmp_path, response_format=None, grader={
        "type": "multi", "calculate_output": "0.8 * answer + 0.2 * exact",
        "graders": {"answer": {"type": "string_check", "name": "answer",
                               "input": "{{sample.output_json.answer}}",
                               "reference": "{{item.answer}}", "operation": "eq"},
                    "exact": {"type": "string_check", "name": "exact",
                              "input": "{{sample.output_text}}",
                              "reference": "{{item.expected}}", "operation": "eq"}}})
    out, store = tmp_path / "out", tmp_path / "s.db"
    code = main(["train", "--job", str(job), "--model", f"hf:{tiny_add}", "-o", str(out),
                 "--store", str(store), "--max-tokens", "16", "--quiet"])
    assert code == 0
    capsys.readouterr()
    result = json.loads((out / "job.json").read_text())
    assert result["status"] == "succeeded" and result["object"] == "fine_tuning.job"
    runs = result["posttrain"]["validation_runs"]
    assert [r["step"] for r in runs] == [0, 2, 4, 6]
    checkpoints = json.loads((out / "checkpoints.json").read_text())["data"]
    assert 1 <= len(checkpoints) <= 3
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    metrics = [e["data"] for e in events if e["type"] == "metrics"]
    assert any("train_mean_reward" in m for m in metrics)
    graders = {g["name"] for m in metrics if "scores" in m for g in m["scores"]["graders"]}
    assert {"answer", "exact"} <= graders
    for checkpoint in checkpoints:
        step = checkpoint["step_number"]
        reported = checkpoint["metrics"]["full_valid_mean_reward"]
        assert main(["eval", str(out / "eval" / "eval.yaml"), "--model",
                     checkpoint["fine_tuned_model_checkpoint"], "--store",
                     str(tmp_path / "fresh.db"), "--no-cache", "--json", "--no-progress"]) == 0
        (summary,) = json.loads(capsys.readouterr().out)["runs"]
        assert summary["n"] == 12
        assert summary["score"] == round(reported, 4), step
    assert max(r["full_valid_mean_reward"] for r in runs) > 0  # the comparison is not 0 == 0
    # the final model is the best checkpoint by validation reward
    best = max(runs, key=lambda r: (r["full_valid_mean_reward"], -r["step"]))
    assert result["posttrain"]["best_step"] == best["step"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["supervised", "dpo"])
def test_sft_and_dpo_jobs_train_and_load(tmp_path: Path, method: str) -> None:
    pytest.importorskip("trl")
    from posttrain.train.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", task=None, seed=0)
    job = sft_job(tmp_path, method)
    assert main(["train", "--job", str(job), "--model", f"hf:{tiny}", "-o",
                 str(tmp_path / "out"), "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "job.json").read_text())
    assert result["status"] == "succeeded"
    assert result["method"][method]["hyperparameters"]["batch_size"] == 4
    assert result["posttrain"]["steps"] >= 1
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")


@pytest.mark.slow
def test_rft_guide_job_with_a_local_judge_runs_unchanged(tmp_path: Path, tiny_add: Path,
                                                         capsys, smollm2: str) -> None:
    """The RFT guide's style of job as written (JSON-schema format; multi of a string_check and
    a score_model naming gpt-4o) runs on the tiny model with SmolLM2 as the judge (--judge):
    the judge's grades reach the job's per-grader metrics, and each reported validation reward
    is again what `posttrain eval` of the checkpoint gives."""
    job = rft_job(tmp_path, n_train=8, n_valid=4, hyper={
        "n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.25, "eval_interval": 2})
    body = json.loads(job.read_text())
    judge = body["method"]["reinforcement"]["grader"]["graders"]["judge"]
    judge["sampling_params"] = {"temperature": 0, "max_completions_tokens": 48}
    job.write_text(json.dumps(body, indent=2))
    out, store = tmp_path / "out", tmp_path / "s.db"
    code = main(["train", "--job", str(job), "--model", f"hf:{tiny_add}", "-o", str(out),
                 "--store", str(store), "--max-tokens", "16", "--judge",
                 "hf:smollm2-135m-instruct", "--quiet"])
    err = capsys.readouterr().err
    result = json.loads((out / "job.json").read_text())
    if code == 2:
        # SmolLM2 as a score_model judge often gives no number (38 of 40 in examples/judge):
        # when it scored none of the first steps' rewards the job fails, as a hosted job would,
        # and says why rather than "succeeding" on rewards that were all None
        assert "none of the" in err and "GRPO steps was scored" in err
        assert result["status"] == "failed" and result["fine_tuned_model"] is None
        assert result["error"]["code"] == "NoScoredReward" and result["error"]["param"] == "--eval"
        return
    assert code == 0, err
    assert result["status"] == "succeeded"
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    names = {g["name"] for e in events if e["type"] == "metrics" and "scores" in e["data"]
             for g in e["data"]["scores"]["graders"]}
    # SmolLM2 as a score_model judge leaves most replies without a score (38 of 40 unscored in
    # examples/judge), so the multi grader may be unscored on every validation item and report
    # no per-grader mean; whatever is reported must name the job's own graders
    grader = body["method"]["reinforcement"]["grader"]
    assert names <= {grader.get("name"), *grader["graders"]}
    assert "hf:smollm2-135m-instruct" in (out / "eval" / "eval.yaml").read_text()
    for checkpoint in json.loads((out / "checkpoints.json").read_text())["data"]:
        code = main(["eval", str(out / "eval" / "eval.yaml"), "--model",
                     checkpoint["fine_tuned_model_checkpoint"], "--store",
                     str(tmp_path / "fresh.db"), "--no-cache", "--json", "--no-progress"])
        captured = capsys.readouterr()
        reported = round(checkpoint["metrics"]["full_valid_mean_reward"], 4)
        if code == 2:
            # SmolLM2 as a score_model judge often gives no number (38 of 40 in examples/judge):
            # when no answer could be graded, eval says so and exits 2, and the job's reward for
            # that checkpoint is the headline of all-unscored answers: 0
            assert "no answer could be graded" in captured.err and reported == 0.0
            continue
        assert code == 0, captured.err
        (summary,) = json.loads(captured.out)["runs"]
        assert summary["score"] == reported


def test_validation_metrics_are_the_runs_headline(tmp_path: Path) -> None:
    """full_valid_mean_reward is the stored run's headline (every item; an answer the grader
    cannot read counts 0), parse errors are answers that are not JSON where JSON was asked, and
    each grader's and component's mean is over what it scored."""
    import asyncio

    from posttrain.eval import eval_from_dict
    from posttrain.interop.openai_ft import validation_metrics
    from posttrain.runner.executor import grade_all
    from posttrain.runner.store import Store
    from posttrain.types import Completion

    grader = {"type": "multi", "name": "reward", "calculate_output": "0.5 * a + 0.5 * b",
              "graders": {"a": {"type": "string_check", "name": "a",
                                "input": "{{sample.output_json.answer}}",
                                "reference": "{{item.answer}}", "operation": "eq"},
                          "b": {"type": "string_check", "name": "b",
                                "input": "{{sample.output_text}}",
                                "reference": "{{item.expected}}", "operation": "eq"}}}
    rows = _rft_rows(quicktask.all_items()[:4])
    ev = eval_from_dict({"name": "v", "graders": [grader], "response_format": SCHEMA,
                         "id_field": "__line__"}, rows=list(enumerate(rows, start=1)))
    answers = [rows[0]["expected"], json.dumps({"answer": rows[1]["answer"]}), "seven",
               json.dumps({"answer": rows[3]["answer"]}, separators=(",", ":"))]
    # right; right; not JSON; the right number spelt otherwise
    with Store(tmp_path / "s.db") as db:
        run = db.create_run(run_key="k", eval_name="v", eval_path=None,
                            eval_hash=ev.fingerprint(), model="m", variant="default", epochs=1,
                            config={"grader_names": ["reward"]}, items=ev.items)
        for item, text in zip(ev.items, answers, strict=True):
            sample = ev.sample_of(Completion(text=text), ev.request_for(item))
            scores = asyncio.run(grade_all(ev.graders, sample, item.data))
            db.record_sample(run.id, item.id, 0, completion=Completion(text=text),
                             request_key=None, attempts=1, scores=scores)
        metrics = validation_metrics(db, run.id, ev)
    # item 1: 1.0; item 2: 1.0 (b compares text: same JSON spelling); item 3: 0; item 4: 0.5
    exact = [answers[i] == rows[i]["expected"] for i in range(4)]
    expected = [(1.0 + (1.0 if exact[i] else 0.0)) / 2 if i != 2 else 0.0 for i in range(4)]
    assert metrics["full_valid_mean_reward"] == pytest.approx(sum(expected) / 4)
    assert metrics["full_valid_mean_parse_error"] == 0.25
    means = {g["name"]: g["valid_reward_mean"] for g in metrics["scores"]["graders"]}
    assert means["a"] == pytest.approx(0.75) and means["reward"] == pytest.approx(
        sum(expected) / 4)


def test_export_job_refuses_to_overwrite_the_jobs_own_files(tmp_path: Path, capsys) -> None:
    job = load_job(rft_job(tmp_path))
    write_request(job, tmp_path / "run")
    (tmp_path / "run" / "job.json").write_text('{"object": "fine_tuning.job"}')
    before = (tmp_path / "run" / "job.json").read_text()
    code = main(["export", "openai-ft", "--job", str(tmp_path / "run"), "-o",
                 str(tmp_path / "run" / "job.json")])
    err = capsys.readouterr().err
    assert code == 2 and "would overwrite the job's own file" in err and "Traceback" not in err
    assert (tmp_path / "run" / "job.json").read_text() == before


def test_grade_sample_and_output_text_grade_the_same(tmp_path: Path, capsys) -> None:
    grader = tmp_path / "eq.json"
    grader.write_text(json.dumps({"type": "string_check", "name": "eq", "operation": "eq",
                                  "input": "{{sample.output_text}}",
                                  "reference": "{{item.a}}"}))
    results = []
    for args in (["--output-text", "Paris\n"], ["--sample", '{"output_text": "Paris\\n"}'],
                 ["--sample", '{"choices": [{"message": {"content": "Paris\\n"}}]}']):
        assert main(["grade", str(grader), "--item", '{"a": "Paris"}', "--json", *args]) == 0
        results.append(json.loads(capsys.readouterr().out)["passed"])
    assert results == [True, True, True]


def test_grade_with_a_judge_closes_its_client(tmp_path: Path, stub_server) -> None:
    import os
    import subprocess
    import sys

    grader = tmp_path / "lm.json"
    grader.write_text(json.dumps({
        "type": "label_model", "name": "t", "labels": ["polite", "rude"],
        "passing_labels": ["polite"], "model": f"openai:stub?base_url={stub_server.base_url}",
        "input": [{"role": "user", "content": "{{sample.output_text}} [[answer:polite]]"}]}))
    done = subprocess.run([sys.executable, "-m", "posttrain.cli", "grade", str(grader),
                           "--item", "{}", "--output-text", "hi"], capture_output=True,
                          text=True, env={**os.environ, "OPENAI_API_KEY": "sk-test"},
                          timeout=120)
    assert done.returncode == 0 and "passed yes" in done.stdout
    assert "Unclosed" not in done.stderr, done.stderr


def test_grader_run_wording_and_clamped_python_scores(tmp_path: Path, capsys) -> None:
    body = tmp_path / "run.json"
    body.write_text(json.dumps({"grader": {"type": "string_check", "name": "s", "reference": "x",
                                           "input": "{{sample.output_text}}",
                                           "operation": "eq"}, "item": {}}))
    assert main(["grade", str(body)]) == 2
    err = capsys.readouterr().err
    assert f"{body}: model_sample: the grader-run body has no model_sample" in err
    body.write_text(json.dumps({"grader": {"type": "python", "name": "py",
                                           "source": "def grade(sample, item):\n    return 5.0\n"},
                                "item": {}, "model_sample": "7"}))
    assert main(["grade", str(body), "--json", "--openai"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["reward"] == 1.0
    assert "warning: py: grade() = 5, clamped to 1" in captured.err


def test_method_type_that_names_another_block(tmp_path: Path, capsys) -> None:
    path = rft_job(tmp_path)
    job = json.loads(path.read_text())
    job["method"]["type"] = "dpo"
    path.write_text(json.dumps(job, indent=1))
    assert main(["train", "--job", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "method.type: method.type is 'dpo' but the block is method.reinforcement" in err
    assert not (tmp_path / "out").exists()


def test_rft_rows_missing_a_grader_field_are_warned_whatever_their_order(tmp_path: Path) -> None:
    for position in (0, 5):
        folder = tmp_path / str(position)
        folder.mkdir()
        path = rft_job(folder)
        rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
        del rows[position]["answer"]
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        job = load_job(path)
        (note,) = [n for n in job.notes if "no field 'answer'" in n]
        assert f"{folder / 'train.jsonl'}:{position + 1}" in note and "1 of 24 rows" in note


@pytest.mark.slow
def test_train_job_checks_its_judge_before_writing(tmp_path: Path, tiny_add: Path, capsys,
                                                  monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = rft_job(tmp_path)
    code = main(["train", "--job", str(path), "--model", f"hf:{tiny_add}", "-o",
                 str(tmp_path / "out"), "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "gpt-4o-2024-08-06" in text)
    assert (f"{path}:{line}: method.reinforcement.grader.graders.judge.model: a judge: "
            "openai:gpt-4o-2024-08-06: OPENAI_API_KEY is not set") in err
    assert "--judge SPEC" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.db").exists()


def test_train_job_refuses_a_max_tokens_below_one(tmp_path: Path, capsys) -> None:
    path = rft_job(tmp_path)
    assert main(["train", "--job", str(path), "--max-tokens", "0", "-o",
                 str(tmp_path / "out")]) == 2
    assert "--max-tokens: must be a positive number of tokens, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_rft_reward_closes_its_judge_clients(tmp_path: Path, stub_server) -> None:
    """The reward's judges keep one client across reward calls; closing the reward (after
    training) closes it in its own loop: no unclosed-session warnings at exit."""
    import os
    import subprocess
    import sys

    script = tmp_path / "reward.py"
    script.write_text(
        "from posttrain.graders.base import GraderContext\n"
        "from posttrain.graders.registry import build_grader\n"
        "from posttrain.models import resolve_model\n"
        f"spec = {{'type': 'label_model', 'name': 't', 'labels': ['polite', 'rude'],\n"
        "        'passing_labels': ['polite'],\n"
        f"        'model': 'openai:stub?base_url={stub_server.base_url}',\n"
        "        'input': [{'role': 'user', 'content': '{{sample.output_text}} [[answer:polite]]'}]}\n"
        "grader = build_grader(spec, GraderContext(model_factory=resolve_model))\n"
        "reward = grader.as_reward()\n"
        "print(reward(None, ['hi', 'there']))\n"
        "reward.close()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "OPENAI_API_KEY": "sk-test"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0, 1.0]"
    assert "Unclosed" not in done.stderr, done.stderr

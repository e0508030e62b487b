"""Eval files: loading, templates, variants, and clear errors (file, line, field; exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.eval import eval_from_dict, load_eval
from tests.conftest import write_eval

EXAMPLE = Path(__file__).parent.parent / "examples" / "capitals" / "eval.yaml"


def test_example_loads_with_ids_tags_and_variants():
    ev = load_eval(EXAMPLE)
    assert ev.name == "capitals"
    assert ev.items[0].id == "fr" and ev.items[0].tags == ["europe"]
    assert set(ev.variants) == {"default", "terse"}
    request = ev.request_for(ev.items[0])
    assert request.messages == [
        {"role": "system", "content": "Answer with the city name only."},
        {"role": "user", "content": "What is the capital of France?"}]
    assert request.temperature == 0 and request.max_tokens == 16
    terse = ev.request_for(ev.items[0], "terse")
    assert terse.messages == [{"role": "user", "content": "What is the capital of France? One word."}]


def test_line_numbers_are_item_ids_when_no_id(tmp_path):
    path = write_eval(tmp_path, [{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}])
    assert [item.id for item in load_eval(path).items] == ["1", "2"]


def test_python_api_same_as_yaml():
    spec = {"name": "py", "items": [{"id": "x", "q": "2+2?", "a": "4"}],
            "messages": [{"role": "user", "content": "{{item.q}}"}],
            "graders": [{"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                         "reference": "{{item.a}}", "operation": "eq"}]}
    ev = eval_from_dict(spec)
    assert ev.request_for(ev.items[0]).messages[0]["content"] == "2+2?"
    score = ev.graders[0].grade({"output_text": "4"}, ev.items[0].data)
    assert score.value == 1.0 and score.passed


def test_rows_with_messages_need_no_template(tmp_path):
    spec = {"name": "chat", "items": [{"messages": [{"role": "user", "content": "hi"}], "a": "x"}],
            "graders": [{"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                         "reference": "{{item.a}}", "operation": "eq"}]}
    ev = eval_from_dict(spec)
    assert ev.request_for(ev.items[0]).messages == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, field, line", [
    ("name: x\ndataset: data.jsonl\ngraders:\n  - {type: nope, name: a}\n", "graders[0].type", 4),
    ("name: x\ndataset: data.jsonl\ngraders:\n  - {type: string_check, name: a, input: i, reference: r, operation: bogus}\n",
     "graders[0].operation", 4),
    ("name: x\ndataset: missing.jsonl\ngraders: []\n", "dataset", 2),
    ("name: x\ndataset: data.jsonl\ngraderz: []\n", "graderz", 3),
    ("name: x\ndataset: data.jsonl\nmessages:\n  - {role: robot, content: hi}\ngraders: [{type: string_check, name: a, input: i, reference: r, operation: eq}]\n",
     "messages[0].role", 4),
])
def test_bad_eval_files_name_file_line_field(tmp_path, body, field, line):
    (tmp_path / "data.jsonl").write_text('{"a": 1}\n')
    path = tmp_path / "eval.yaml"
    path.write_text(body)
    with pytest.raises(UserError) as info:
        load_eval(path)
    assert info.value.field == field
    assert info.value.line == line
    assert str(path.name) in str(info.value)


def test_bad_dataset_line_is_named(tmp_path):
    path = write_eval(tmp_path, [{"question": "a", "answer": "b"}])
    with (tmp_path / "data.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(UserError) as info:
        load_eval(path)
    assert info.value.line == 2 and "data.jsonl" in str(info.value)


def test_duplicate_ids_rejected(tmp_path):
    path = write_eval(tmp_path, [{"id": 1, "question": "a", "answer": "b"},
                                 {"id": 1, "question": "c", "answer": "d"}])
    with pytest.raises(UserError, match="duplicate item id"):
        load_eval(path)


def test_missing_template_field_is_a_user_error(tmp_path):
    # the first row lacks it: refused at load, naming the eval file's own line and field
    path = write_eval(tmp_path, [{"id": "a", "answer": "b"}])
    with pytest.raises(UserError, match="question") as caught:
        load_eval(path)
    assert caught.value.file == str(path.resolve()) and caught.value.line == 4
    assert caught.value.field == "messages[0].content"
    # a later row lacks it: refused at load too (not when its turn comes, after the rows
    # before it were sent), naming that row in the dataset and the template's field
    path = write_eval(tmp_path, [{"id": "a", "question": "q", "answer": "b"},
                                 {"id": "b", "answer": "c"}])
    with pytest.raises(UserError, match=r"messages\[0\].content reads \{\{item.question\}\}: "
                       "this row has no field 'question'") as caught:
        load_eval(path)
    assert caught.value.file.endswith("data.jsonl") and caught.value.line == 2


def test_every_row_is_checked_for_the_request_templates_fields_before_anything_is_sent(
        tmp_path):
    """A nested path and a variant's template, on every row; a grader's reference missing from
    a later row is not refused (that grade is unscored, counted)."""
    folder = tmp_path / "e"
    folder.mkdir()
    rows = [{"id": f"r{k}", "q": {"text": f"q{k}"}, "answer": "a", "hint": "h"}
            for k in range(300)]
    rows[250]["q"] = {"body": "no text"}
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = ("name: nested\ndataset: data.jsonl\nmessages:\n"
            "  - {role: user, content: \"{{item.q.text}}\"}\n"
            "graders:\n  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
            "reference: \"{{item.answer}}\", operation: eq}\n")
    (folder / "eval.yaml").write_text(spec)
    with pytest.raises(UserError, match=r"\{\{item.q.text\}\}: this row has no field 'text'"
                       ) as caught:
        load_eval(folder / "eval.yaml")
    assert caught.value.line == 251 and caught.value.field == "item r250"
    rows[250]["q"] = {"text": "fixed"}
    del rows[120]["hint"]
    del rows[200]["answer"]  # a grader's reference: this grade is unscored, not refused
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "eval.yaml").write_text(spec + "variants:\n  hinted:\n    messages:\n"
                                      "      - {role: user, content: \"{{item.hint}}\"}\n")
    with pytest.raises(UserError, match=r"variants.hinted.messages\[0\].content reads "
                       r"\{\{item.hint\}\}: this row has no field 'hint'") as caught:
        load_eval(folder / "eval.yaml")
    assert caught.value.line == 121
    (folder / "eval.yaml").write_text(spec)
    assert len(load_eval(folder / "eval.yaml").items) == 300


def test_cli_exit_2_without_traceback(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("name: x\ndataset: data.jsonl\n  bad: [\n")
    result = subprocess.run([sys.executable, "-m", "posttrain.cli", "eval", str(path), "--model",
                             "openai:x", "--store", str(tmp_path / "s.db")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "eval.yaml:3" in result.stderr


def test_unknown_model_spec_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "posttrain.cli", "eval", str(EXAMPLE),
                             "--model", "nonsense", "--store", str(tmp_path / "s.db")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown model" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_start_up_imports_nothing_heavy():
    code = ("import sys, posttrain.cli as c; c.build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'numpy', 'openai', 'aiohttp', 'trl', "
            "'scipy', 'sacrebleu', 'nltk', 'yaml') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_a_graders_reference_some_rows_lack_is_unscored_there_and_one_no_row_has_is_refused(
        tmp_path):
    """The first row may lack a grader's reference that later rows have (its grade is
    unscored, counted); a reference no row has is a typo: refused, saying so."""
    path = write_eval(tmp_path / "a", [{"id": "a", "question": "q"},
                                       {"id": "b", "question": "q", "answer": "c"}])
    assert len(load_eval(path).items) == 2
    path = write_eval(tmp_path / "b", [{"id": "a", "question": "q", "answr": "b"},
                                       {"id": "b", "question": "q", "answr": "c"}])
    with pytest.raises(UserError, match=r"no row has it: the first row .* has no field "
                       "'answer'; did you mean 'answr'") as caught:
        load_eval(path)
    assert caught.value.field == "graders[0].reference"

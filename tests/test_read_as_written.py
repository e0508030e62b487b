"""Inputs read as the user wrote them (issue 12 §2): YAML 1.2 core schema and item fields as
written (the Norway problem), UTF-8 byte-order marks and non-UTF-8 bytes, literal ``{{`` in
prompts and malformed placeholders, values rendered as JSON, Unicode-aware ``string_check``,
and the ``numeric`` grader's thousands separators."""

from __future__ import annotations

import json
import math
import unicodedata

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.eval import eval_from_dict, load_eval
from posttrain.graders import build_grader
from posttrain.graders.base import GraderContext
from posttrain.graders.checks import last_number
from posttrain.loaders import yaml12
from posttrain.loaders.datasets import load_rows
from posttrain.models import load_models_file
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Completion

BOM = b"\xef\xbb\xbf"

# A perfect model for the stub: each question carries its answer as a directive, in a quoted
# string (so the answer the model gives never depends on how the `answer:` field was read).
NORWAY_ROWS = """\
- {id: norway, question: "ISO code of Norway? [[answer:NO]]", answer: NO}
- {id: yes, question: "Say yes. [[answer:yes]]", answer: yes}
- {id: switch, question: "Is the switch on? [[answer:on]]", answer: on}
- {id: lights, question: "And the lights? [[answer:off]]", answer: off}
- {id: zip, question: "Zip code? [[answer:01234]]", answer: 01234}
- {id: python, question: "Python version? [[answer:3.10]]", answer: 3.10}
- {id: big, question: "Python literal? [[answer:1_000]]", answer: 1_000}
- {id: truthy, question: "Capitalised? [[answer:True]]", answer: True}
- {id: date, question: "Release date? [[answer:2025-04-14]]", answer: 2025-04-14}
- {id: octal, question: "Octal literal? [[answer:0o17]]", answer: 0o17}
- {id: sci, question: "Scientific? [[answer:1e3]]", answer: 1e3}
- {id: plain, question: "Forty-two? [[answer:42]]", answer: 42}
- {id: half, question: "A half? [[answer:0.5]]", answer: 0.5}
- {id: json-true, question: "JSON true? [[answer:true]]", answer: true}
"""
NORWAY_EVAL = """\
name: norway
{source}
messages:
  - {{role: user, content: "{{{{item.question}}}}"}}
graders:
  - {{type: string_check, name: exact, input: "{{{{sample.output_text}}}}", reference: "{{{{item.answer}}}}", operation: eq}}
"""


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(argv)
    captured = capsys.readouterr()
    report = json.loads(captured.out) if code in (0, 1) and "--json" in argv else {}
    return code, report, captured.err


@pytest.fixture
def stub_env(stub_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return stub_server


# ---- YAML: the core schema, item fields as written ------------------------------------------
def test_norway_dataset_scores_a_perfect_model_100(tmp_path, stub_env, capsys):
    (tmp_path / "countries.yaml").write_text(NORWAY_ROWS)
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_text(NORWAY_EVAL.format(source="dataset: countries.yaml"))
    code, report, err = _run(["eval", str(eval_path), "--model", "openai:stub", "--store",
                              str(tmp_path / "s.db"), "--json"], capsys)
    assert code == 0, err
    (run,) = report["runs"]
    assert run["n"] == 14 and run["scored"] == 14
    assert run["score"] == 1.0


def test_norway_inline_items_score_a_perfect_model_100(tmp_path, stub_env, capsys):
    items = "items:\n" + "".join("  " + line + "\n" for line in NORWAY_ROWS.splitlines())
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_text(NORWAY_EVAL.format(source=items))
    code, report, err = _run(["eval", str(eval_path), "--model", "openai:stub", "--store",
                              str(tmp_path / "s.db"), "--json"], capsys)
    assert code == 0, err
    assert report["runs"][0]["score"] == 1.0


def test_item_fields_keep_their_text_unless_json_spells_them(tmp_path):
    path = tmp_path / "rows.yaml"
    path.write_text(NORWAY_ROWS + "- {id: empty, answer: , tilde: ~, nul: null, quoted: '3.10'}\n")
    rows = dict((row["id"], row) for _line, row in load_rows(path))
    answers = {key: row.get("answer") for key, row in rows.items()}
    assert answers == {
        "norway": "NO", "yes": "yes", "switch": "on", "lights": "off", "zip": "01234",
        "python": "3.10", "big": "1_000", "truthy": "True", "date": "2025-04-14",
        "octal": "0o17", "sci": "1e3", "plain": 42, "half": 0.5, "json-true": True, "empty": None}
    assert rows["empty"]["tilde"] is None and rows["empty"]["nul"] is None
    assert rows["empty"]["quoted"] == "3.10"
    assert type(answers["plain"]) is int and type(answers["json-true"]) is bool
    # each row keeps the line it starts on
    assert [line for line, _row in load_rows(path)] == list(range(1, 16))


def test_core_schema_outside_item_fields():
    data = yaml12.loads(
        "a: no\nb: yes\nc: on\nd: NO\ne: 01234\nf: 3.10\ng: 1_000\nh: 0o17\ni: 0x1F\n"
        "j: true\nk: True\nl: ~\nm: 2025-04-14\nn: -.inf\no: .nan\np: 0b101\nq: +12\n"
        "r: 1e3\ns: FALSE\nt: Null\n")
    assert data == {"a": "no", "b": "yes", "c": "on", "d": "NO", "e": 1234, "f": 3.1,
                    "g": "1_000", "h": 15, "i": 31, "j": True, "k": True, "l": None,
                    "m": "2025-04-14", "n": -math.inf, "o": data["o"], "p": "0b101",
                    "q": 12, "r": 1000.0, "s": False, "t": None}
    assert math.isnan(data["o"])
    # mapping keys too: a variant named `no` is the string "no", not False
    assert yaml12.loads("variants:\n  no: {}\n  on: {}\n") == {"variants": {"no": {}, "on": {}}}
    # the merge key still merges
    assert yaml12.loads("base: &b {x: 1}\nmore: {<<: *b, y: 2}\n")["more"] == {"x": 1, "y": 2}


def test_duplicate_key_and_bad_yaml_name_the_line(tmp_path):
    with pytest.raises(UserError) as err:
        yaml12.loads("name: a\ngraders: []\nname: b\n", file="e.yaml")
    assert str(err.value).startswith("e.yaml:3: not valid YAML: duplicate key 'name'")
    path = tmp_path / "rows.yaml"
    path.write_text("- {id: a}\n- just text\n")
    with pytest.raises(UserError) as err:
        load_rows(path)
    assert f"{path}:2: expected a mapping" in str(err.value)
    path.write_text("{id: a}\n")
    with pytest.raises(UserError, match="must be a list of mappings"):
        load_rows(path)
    path.write_text("- {id: a\n- {id: b}\n")
    with pytest.raises(UserError, match=r"rows\.yaml:2: not valid YAML"):
        load_rows(path)


def test_eval_file_variants_and_models_file_read_as_written(tmp_path):
    eval_path = tmp_path / "e.yaml"
    eval_path.write_text("name: v\nitems: [{q: a}]\nmessages: [{role: user, content: hi}]\n"
                         "variants:\n  no: {system: terse}\ngraders:\n"
                         "  - {type: string_check, name: x, input: '{{sample.output_text}}',"
                         " reference: 'no', operation: eq}\n")
    assert list(load_eval(eval_path).variants) == ["default", "no"]
    models = tmp_path / "models.yaml"
    models.write_bytes(BOM + b"models:\n  on:\n    provider: openai\n    model: gpt-4.1\n"
                             b"    released: 2025-04-14\n")
    configs = load_models_file(models)
    assert list(configs) == ["on"] and configs["on"].released == "2025-04-14"


# ---- files: byte-order marks, CRLF, bytes that are not UTF-8 --------------------------------
def test_bom_and_crlf_datasets_load(tmp_path):
    rows = [{"id": "a", "question": "café?", "answer": "oui"}, {"id": "b", "question": "x",
                                                                "answer": "y"}]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes(BOM + b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    json_file = tmp_path / "d.json"
    json_file.write_bytes(BOM + json.dumps(rows).encode())
    csv_file = tmp_path / "d.csv"  # as Excel saves "CSV UTF-8": BOM, CRLF, quoted newlines
    csv_file.write_bytes(BOM + "id,question,answer\r\na,café?,oui\r\nb,\"x\r\nmore\",y\r\nc,z,w\r\n"
                         .encode())
    yaml_file = tmp_path / "d.yaml"
    yaml_file.write_bytes(BOM + b"- {id: a, answer: oui}\r\n- {id: b, answer: y}\r\n")
    for path in (jsonl, json_file, csv_file, yaml_file):
        loaded = load_rows(path)
        assert [row["id"] for _line, row in loaded][:2] == ["a", "b"], path
        assert loaded[0][1]["answer"] == "oui"
    assert load_rows(jsonl)[0][1]["question"] == "café?"
    csv_rows = load_rows(csv_file)
    assert [line for line, _row in csv_rows] == [2, 3, 5]
    assert csv_rows[1][1]["question"] == "x\r\nmore"


def test_non_utf8_bytes_name_the_file_and_line(tmp_path):
    cases = {
        "d.jsonl": b'{"id": "a"}\n{"id": "b"}\n{"id": "caf\xe9"}\n',
        "d.csv": b"id,answer\na,1\nb,caf\xe9\n",
        "d.json": b'[{"id": "a"},\n {"id": "caf\xe9"}]',
        "d.yaml": b"- {id: a}\n- {id: caf\xe9}\n",
    }
    lines = {"d.jsonl": 3, "d.csv": 3, "d.json": 2, "d.yaml": 2}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError) as err:
            load_rows(path)
        assert str(err.value).startswith(f"{path}:{lines[name]}: not UTF-8"), str(err.value)
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("id,answer\r\na,1\r\n".encode("utf-16"))
    with pytest.raises(UserError, match=r"u\.csv:1: not UTF-8: this file is UTF-16"):
        load_rows(utf16)


def test_cli_bom_eval_and_dataset_run_and_latin1_exits_2(tmp_path, stub_env, capsys):
    (tmp_path / "d.csv").write_bytes(BOM + b"id,question,answer\r\n"
                                           b"a,Capital? [[answer:Paris]],Paris\r\n")
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_bytes(BOM + b"name: bom\r\ndataset: d.csv\r\nmessages:\r\n"
                          b"  - {role: user, content: '{{item.question}}'}\r\ngraders:\r\n"
                          b"  - {type: string_check, name: m, input: '{{sample.output_text}}',"
                          b" reference: '{{item.answer}}', operation: eq}\r\n")
    argv = ["eval", str(eval_path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
            "--json"]
    code, report, err = _run(argv, capsys)
    assert code == 0, err
    assert report["runs"][0]["score"] == 1.0
    (tmp_path / "d.csv").write_bytes(b"id,question,answer\na,Capital? [[answer:Paris]],Paris\n"
                                     b"b,Capitale de l'\xeele?,Paris\n")
    code, _report, err = _run(argv + ["--no-cache"], capsys)
    assert code == 2
    assert f"{tmp_path / 'd.csv'}:3: not UTF-8" in err


# ---- templates: literal braces, malformed placeholders, values as JSON ----------------------
LITERAL_EVAL = r"""name: literal
items: [{id: a, q: "What do they print?"}]
messages:
  - role: user
    content: |
      Vue: <p>\{{ message }}</p>. Jinja: \{{ user.name | upper }}. LaTeX: \frac{{{item.id}}}{2}.
      {{item.q}}
graders:
  - {type: string_check, name: vue, input: "{{sample.output_text}}", reference: '<p>\{{ message }}</p>', operation: like}
  - {type: string_check, name: jinja, input: "{{sample.output_text}}", reference: '\{{ user.name | upper }}', operation: like}
"""


def test_literal_braces_reach_the_model_unchanged(tmp_path, stub_env, capsys):
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_text(LITERAL_EVAL)
    code, report, err = _run(["eval", str(eval_path), "--model", "openai:stub", "--store",
                              str(tmp_path / "s.db"), "--json"], capsys)
    assert code == 0, err
    sent = stub_env.stats()["last_request"]["messages"][-1]["content"]
    assert sent == ("Vue: <p>{{ message }}</p>. Jinja: {{ user.name | upper }}. "
                    "LaTeX: \\frac{a}{2}.\nWhat do they print?\n")
    assert report["runs"][0]["score"] == 1.0  # the graders' escaped references match too


def test_literal_braces_in_tools_response_format_and_variants():
    spec = {
        "name": "t", "items": [{"id": "a", "x": 1}],
        "messages": [{"role": "user", "content": "{{item.x}}"}],
        "variants": {"v": {"system": r"Write \{{ name }} templates",
                           "messages": [{"role": "user", "content": r"\{{item.x}} is {{item.x}}"}]}},
        "tools": [{"type": "function", "function": {
            "name": "f", "description": r"Renders \{{ name }}", "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {
            "type": "object", "description": r"a \{{ handlebars }} template"}}},
        "graders": [{"type": "string_check", "name": "m", "input": "{{sample.output_text}}",
                     "reference": "1", "operation": "eq"}],
    }
    ev = eval_from_dict(spec)
    request = ev.request_for(ev.items[0], "v")
    assert request.messages == [{"role": "system", "content": "Write {{ name }} templates"},
                                {"role": "user", "content": "{{item.x}} is 1"}]
    assert request.tools[0]["function"]["description"] == "Renders {{ name }}"
    assert request.response_format["json_schema"]["schema"]["description"] == \
        "a {{ handlebars }} template"


@pytest.mark.parametrize(("content", "line", "field"), [
    ('"{{x}"', 4, "messages[0].content"),
    ('"{{ item.q | upper }}"', 4, "messages[0].content"),
    ('"{{ item.q() }}"', 4, "messages[0].content"),
])
def test_malformed_placeholder_in_messages_exits_2_before_sending(
        tmp_path, stub_env, capsys, content, line, field):
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_text("name: bad\nitems: [{q: a}]\nmessages:\n"
                         f"  - {{role: user, content: {content}}}\ngraders:\n"
                         "  - {type: string_check, name: m, input: '{{sample.output_text}}',"
                         " reference: x, operation: eq}\n")
    code, _report, err = _run(["eval", str(eval_path), "--model", "openai:stub", "--store",
                               str(tmp_path / "s.db")], capsys)
    assert code == 2
    assert f"{eval_path.resolve()}:{line}: {field}: malformed placeholder" in err
    assert stub_env.stats()["total_attempts"] == 0


def test_malformed_placeholder_in_a_grader_names_its_line(tmp_path, capsys):
    eval_path = tmp_path / "eval.yaml"
    eval_path.write_text("name: bad\nitems: [{q: a}]\nmessages:\n  - {role: user, content: hi}\n"
                         "graders:\n  - type: string_check\n    name: m\n"
                         "    input: '{{sample.output_text}'\n    reference: x\n"
                         "    operation: eq\n")
    with pytest.raises(UserError) as err:
        load_eval(eval_path)
    assert str(err.value).startswith(
        f"{eval_path.resolve()}:8: graders[0].input: malformed placeholder '{{{{sample.output_text}}'")
    # a python grader's source is code, not a template: its braces are left alone
    spec = {"name": "p", "items": [{"q": "a"}], "messages": [{"role": "user", "content": "hi"}],
            "graders": [{"type": "python", "name": "p",
                         "source": "def grade(sample, item):\n    return len(f'{{x}}') / 5\n"}]}
    eval_from_dict(spec)


def test_grade_cli_refuses_a_malformed_grader_file(tmp_path, capsys):
    from posttrain.cli.grade import main as grade_main

    grader = tmp_path / "g.yaml"
    grader.write_bytes(BOM + b"type: string_check\nname: m\ninput: '{{ sample.output_text | trim }}'"
                             b"\nreference: no\noperation: eq\n")
    assert grade_main(["grade", str(grader), "--validate"]) == 2
    err = capsys.readouterr().err
    assert f"{grader}: input: malformed placeholder" in err
    grader.write_bytes(BOM + b"type: string_check\nname: m\ninput: '{{sample.output_text}}'\n"
                             b"reference: no\noperation: eq\n")
    assert grade_main(["grade", str(grader), "--item", "{}", "--output-text", "no",
                       "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 1.0  # `no` is the string "no"


def test_values_render_as_json_inside_text():
    context = {"item": {"b": True, "f": False, "n": None, "i": 3, "x": 2.5, "l": [1, "é"],
                        "d": {"k": None}, "s": "text"}}
    text = "{{item.b}} {{item.f}} {{item.n}} {{item.i}} {{item.x}} {{item.l}} {{item.d}} {{item.s}}"
    assert render_text(text, context) == 'true false null 3 2.5 [1, "é"] {"k": null} text'
    assert render_text("{{item.b}}", context) == "true"
    assert render("{{item.b}}", context) is True  # one placeholder alone keeps the value's type


def test_template_escapes_and_runs_of_braces():
    context = {"item": {"x": "v"}}
    assert render(r"\{{item.x}} {{item.x}}", context) == "{{item.x}} v"
    assert render(r"\\{{item.x}}", context) == "\\v"  # an escaped backslash, then the value
    assert render(r"\{{{item.x}}\}", context) == r"\{v\}"  # LaTeX set braces around a value
    assert render("{{{item.x}}}", context) == "{v}"
    assert render("a }} b", context) == "a }} b"
    with pytest.raises(TemplateError, match="malformed placeholder"):
        render("{{ item.x", context)


# ---- string comparison: Unicode ---------------------------------------------------------------
def _check(operation: str, output: str, reference: str) -> float:
    grader = build_grader({"type": "string_check", "name": "s", "input": "{{sample.output_text}}",
                           "reference": "{{item.r}}", "operation": operation})
    return grader.grade(Completion(text=output).to_sample(), {"r": reference}).value


def test_ilike_folds_case_fully_and_normalizes():
    decomposed = unicodedata.normalize("NFD", "Café")
    assert _check("ilike", "Die STRASSE ist lang", "straße") == 1.0
    assert _check("ilike", "die Straße", "STRASSE") == 1.0
    assert _check("ilike", decomposed, "CAFÉ") == 1.0
    assert _check("ilike", "ＮＯ", "no") == 1.0  # full-width letters (NFKC)
    assert _check("ilike", "ὈΔΥΣΣΕΎΣ", "ὀδυσσεύς") == 1.0  # final sigma
    assert _check("ilike", "café", "cafe") == 0.0  # accents are not removed
    assert _check("ilike", decomposed, "cafe") == 0.0  # not even when decomposed


def test_eq_and_like_compare_canonically_equivalent_text():
    composed, decomposed = "Café", unicodedata.normalize("NFD", "Café")
    assert composed != decomposed
    assert _check("eq", decomposed, composed) == 1.0
    assert _check("ne", decomposed, composed) == 0.0
    assert _check("like", f"le {decomposed} noir", composed) == 1.0
    assert _check("like", decomposed, "Cafe") == 0.0  # `e` is not found inside a decomposed é
    assert _check("eq", "STRASSE", "straße") == 0.0  # case still counts for eq and like


# ---- numeric: thousands separators ------------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [
    ("so 1,000 total", 1000.0),
    ("$1{,}000$", 1000.0),
    (r"$1\,000\,000$", 1_000_000.0),
    ("1\u2009000", 1000.0),  # thin space
    ("1\u202f000,", 1000.0),  # narrow no-break space
    ("1\u00a0234.5", 1234.5),  # no-break space
    ("1.000", 1.0),  # English: a decimal point
    ("1,000.25", 1000.25),
    ("1.000.000", 1_000_000.0),  # two dot groups can only be thousands
    ("1,00,000", 100_000.0),  # Indian grouping
    ("x = −12", -12.0),  # U+2212 minus
    ("pages 10-12", 12.0),
    ("1,5", 5.0),  # a comma before one digit is not a decimal mark by default
])
def test_last_number_reads_thousands_separators(text, value):
    assert last_number(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("1.000", 1000.0), ("1,5", 1.5), ("1.234,5", 1234.5), ("$3{,}5$", 3.5),
    ("1\u202f234,5", 1234.5), ("-0,25", -0.25)])
def test_last_number_with_a_decimal_comma(text, value):
    assert last_number(text, ",") == value


def test_numeric_grader_reads_latex_and_decimal_option():
    sample = Completion(text=r"The total is $\boxed{1{,}000}$.").to_sample()
    grader = build_grader({"type": "numeric", "name": "n", "reference": "{{item.n}}"})
    assert grader.grade(sample, {"n": 1000}).value == 1.0
    comma = build_grader({"type": "numeric", "name": "n", "reference": "{{item.n}}",
                          "decimal": ","})
    assert comma.grade(Completion(text="Es sind 1.234,5 €").to_sample(), {"n": 1234.5}).value == 1
    assert comma.spec()["decimal"] == ","
    with pytest.raises(UserError, match="decimal"):
        build_grader({"type": "numeric", "name": "n", "reference": 1, "decimal": ";"})
    # an item written `n: 3.10` in YAML is the text "3.10", which numeric reads as 3.1
    assert grader.grade(Completion(text="3.1").to_sample(), {"n": "3.10"}).value == 1.0


def test_yaml_line_of_fields_after_a_bom(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_bytes(BOM + b"name: x\nitems: [{q: a}]\nmessages: [{role: user, content: hi}]\n"
                           b"graders:\n  - {type: string_check, name: m, input: a, reference: b,"
                           b" operation: bogus}\n")
    with pytest.raises(UserError) as err:
        load_eval(path)
    assert str(err.value).startswith(f"{path.resolve()}:5: graders[0].operation")


def test_labels_and_python_grader_files_with_a_bom(tmp_path):
    from posttrain.graders.calibration import load_labels

    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(BOM + b'{"item": {}, "sample": {"output_text": "x"}, "label": true}\r\n')
    assert load_labels(labels)[0]["label"] is True
    labels.write_bytes(b'{"item": {}, "sample": {}, "label": 1}\n{"item": "\xe9"}\n')
    with pytest.raises(UserError, match=r"labels\.jsonl:2: not UTF-8"):
        load_labels(labels)
    source = tmp_path / "g.py"  # as Notepad saves it
    source.write_bytes(BOM + b"def grade(sample, item):\r\n    return 1.0\r\n")
    grader = build_grader({"type": "python", "name": "p", "source_file": "g.py"},
                          GraderContext(base_dir=tmp_path))
    assert grader.name == "p"

"""promptfoo in and out: ``posttrain import promptfoo`` and ``posttrain export promptfoo``.

tests/data/promptfoo/ was written for this project from promptfoo's configuration guide: two
prompts (text, chat JSON file), three providers (one posttrain has no equivalent for), inline
tests with weights, a metric, a test threshold, ``cost`` / ``latency`` / ``llm-rubric``
assertions that cannot map here, a vars file and tests from CSV with ``__expected`` columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.graders.promptfoo_assert import PromptfooAssertGrader
from posttrain.interop.promptfoo import import_promptfoo

DATA = Path(__file__).parent / "data" / "promptfoo"
CONFIG = DATA / "promptfooconfig.yaml"


def test_import_writes_eval_items_models_and_lists_what_did_not_map(tmp_path: Path) -> None:
    from posttrain.eval import load_eval

    result = import_promptfoo(CONFIG, tmp_path / "pf")
    assert (result.items, result.variants, result.models) == (4, ["default", "chat"],
                                                              ["mini", "llama3.2"])
    eval_ = load_eval(result.eval_path)
    assert eval_.name == "support-answers" and eval_.sampling == {"temperature": 0,
                                                                  "max_tokens": 128}
    assert eval_.messages == [{"role": "user", "content": "Answer the customer's question in "
                                                          "one sentence: {{item.question}}"}]
    assert eval_.variants["chat"].messages[1] == {"role": "user",
                                                  "content": "{{item.question}}"}
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    assert rows[0]["policy"] == "Items can be returned within 30 days for a full refund.\n"
    assert rows[0]["assert"] == [  # defaultTest's first, then the test's; cost left out
        {"type": "not-icontains", "value": "as an AI"},
        {"type": "icontains", "value": "30 days", "metric": "accuracy"},
        {"type": "contains-any", "value": ["refund", "return"]}]
    assert rows[1]["assert_threshold"] == 0.5 and rows[1]["assert"][1]["weight"] == 2
    assert rows[2]["description"] == "shipping" and rows[2]["assert"][1:] == [
        {"type": "icontains", "value": "international"},
        {"type": "not-contains", "value": "sorry"}]
    assert [a["type"] for a in rows[3]["assert"]] == ["not-icontains", "is-json",
                                                      "contains-json"]
    models = (tmp_path / "pf" / "models.yaml").read_text()
    assert "base_url: http://localhost:11434/v1" in models
    lines = result.not_mapped
    assert f"{CONFIG}:17: providers[1].config.num_ctx: not carried over" in lines[0]
    assert f"{CONFIG}:18: providers[2]: provider 'bedrock:anthropic.claude-3-haiku'" in lines[1]
    assert any("1 'cost' assertion(s)" in line for line in lines)
    assert any("4 'latency' assertion(s)" in line for line in lines)
    assert any("llm-rubric on 1 of 4 tests" in line for line in lines)
    assert len(lines) == 5
    saved = json.loads((tmp_path / "pf" / "promptfoo.json").read_text())
    assert saved["not_mapped"] == lines and saved["prompt_labels"]["chat"] == "chat"


def _grade(asserts: list, output: str, threshold=None):
    item = {"assert": asserts}
    if threshold is not None:
        item["assert_threshold"] = threshold
    grader = PromptfooAssertGrader("promptfoo", "assert", "{{sample.output_text}}")
    return grader.grade({"output_text": output}, item)


HOURS = [{"type": "not-icontains", "value": "as an AI"},
         {"type": "regex", "value": r"\d{1,2}(am|pm| ?[AP]M)", "weight": 2, "metric": "accuracy"},
         {"type": "starts-with", "value": "We"}]


def test_scores_as_promptfoo_weights_threshold_not_and_metrics() -> None:
    full = _grade(HOURS, "We open at 9am.")
    assert (full.value, full.passed) == (1.0, True)
    # starts-with fails: (1*1 + 1*2 + 0*1) / 4; every assertion must pass without a threshold
    part = _grade(HOURS, "Open 9am daily")
    assert part.value == pytest.approx(0.75) and part.passed is False
    assert part.sub_scores == {"not-icontains": 1.0, "accuracy": 1.0, "starts-with": 0.0}
    assert "starts-with" in part.explanation
    # a test threshold decides instead: 0.75 >= 0.5 passes
    assert _grade(HOURS, "Open 9am daily", threshold=0.5).passed is True
    ai = _grade(HOURS, "As an AI I open at 9am")
    assert ai.value == pytest.approx(0.5) and ai.passed is False  # not-icontains inverted


@pytest.mark.parametrize("spec,output,passed", [
    ({"type": "equals", "value": "Paris"}, "Paris", True),
    ({"type": "equals", "value": "Paris"}, "paris", False),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1}', True),
    ({"type": "contains-all", "value": ["a", "b"]}, "a only", False),
    ({"type": "icontains-any", "value": "X, y"}, "why Y", True),
    ({"type": "is-json", "value": {"type": "object", "required": ["status"]}}, '{"s": 1}',
     False),
    ({"type": "is-json", "value": None}, '{"s": 1}', True),
    ({"type": "contains-json", "value": None}, 'Here: {"status": "sent"} ok', True),
    ({"type": "contains-json", "value": None}, "no json {here", False),
    ({"type": "levenshtein", "value": "kitten", "threshold": 3}, "sitting", True),
    ({"type": "levenshtein", "value": "kitten", "threshold": 2}, "sitting", False),
    ({"type": "not-regex", "value": "^\\d+$"}, "abc", True),
])
def test_each_assertion_type(spec: dict, output: str, passed: bool) -> None:
    assert _grade([spec], output).passed is passed


def test_a_bad_regex_is_unscored_not_a_failure() -> None:
    score = _grade([{"type": "regex", "value": "("}], "x")
    assert score.status == "unscored" and "regex" in score.explanation


def test_nunjucks_filters_and_missing_files_are_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "promptfooconfig.yaml"
    bad.write_text("prompts:\n  - 'Say {{ name | upper }}'\nproviders: [openai:gpt-4.1-mini]\n"
                   "tests:\n  - vars: {name: x}\n    assert: [{type: equals, value: X}]\n")
    assert main(["import", "promptfoo", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"posttrain: error: {bad}:2: prompts[0]: Nunjucks tags or filters ({{% %}}, "
                   "|) have no posttrain equivalent: only plain {{var}} placeholders map to "
                   "{{item.var}}"]
    bad.write_text("prompts: [file://missing.txt]\nproviders: [openai:gpt-4.1-mini]\n"
                   "tests: [{vars: {a: 1}, assert: [{type: equals, value: X}]}]\n")
    assert main(["import", "promptfoo", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: prompts[0]: file://missing.txt: no such file" in err
    assert not (tmp_path / "o").exists()


def test_run_the_import_and_export_promptfoo_v3(tmp_path: Path, stub_server, capsys,
                                               monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts:\n  - '{{question}}'\n  - 'Be brief. {{question}}'\n"
        "providers: [openai:stub]\n"
        "tests:\n"
        "  - vars: {question: '[[answer:We open at 9am.]] hours?'}\n"
        "    assert: [{type: starts-with, value: We}, {type: regex, value: '\\d+am'}]\n"
        "  - vars: {question: '[[answer:Sorry, no.]] ship abroad?'}\n"
        "    assert: [{type: icontains, value: international, weight: 3},\n"
        "             {type: not-contains, value: refund}]\n"
        "  - vars: {question: '[[fault:400:always]] broken'}\n"
        "    assert: [{type: contains, value: x}]\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    argv = ["eval", imported["eval"], "--models-file", imported["models_file"], "--model",
            "stub", "--store", str(tmp_path / "s.db"), "--json", "--no-progress"]
    code = main(argv)
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    runs = {r["variant"]: r for r in report["runs"]}
    assert set(runs) == {"default", "prompt2"}
    # items: 1, 0.25 ((0*3 + 1*1) / 4), and an errored request (0): the headline mean
    assert runs["default"]["score"] == pytest.approx((1 + 0.25 + 0) / 3, abs=1e-4)
    out = tmp_path / "results.json"
    assert main(["export", "promptfoo", runs["default"]["run_id"], runs["prompt2"]["run_id"],
                 "-o", str(out), "--store", str(tmp_path / "s.db")]) == 0
    data = json.loads(out.read_text())
    summary = data["results"]
    assert summary["version"] == 3 and len(summary["results"]) == 6
    assert summary["stats"]["successes"] == 2 and summary["stats"]["failures"] == 2
    assert summary["stats"]["errors"] == 2
    by = {(r["promptIdx"], r["testIdx"]): r for r in summary["results"]}
    first = by[(0, 0)]
    assert first["success"] is True and first["score"] == 1.0 and first["failureReason"] == 0
    assert first["response"]["output"] == "We open at 9am." and first["vars"]["question"]
    second = by[(0, 1)]
    assert (second["success"], second["failureReason"]) == (False, 1)
    assert second["score"] == pytest.approx(0.25)
    assert second["gradingResult"]["componentResults"][0]["score"] == pytest.approx(0.25)
    third = by[(0, 2)]
    assert third["failureReason"] == 2 and third["response"] is None and third["error"]
    metrics = summary["prompts"][0]["metrics"]
    assert (metrics["testPassCount"], metrics["testFailCount"], metrics["testErrorCount"]) == \
        (1, 1, 1)
    assert metrics["score"] == pytest.approx(1.25)
    assert summary["prompts"][0]["metadata"]["posttrain"]["score"] == \
        pytest.approx(runs["default"]["score"], abs=1e-4)


def test_rouge_n_scores_the_similarity_itself() -> None:
    pytest.importorskip("rouge_score", reason="needs rouge-score: pip install "
                                              "'posttrain[similarity]'")
    # ROUGE-1 F: the, cat, sat, on, mat overlap: precision 5/6, recall 5/6
    spec = {"type": "rouge-n", "value": "the cat sat on a mat"}
    score = _grade([spec], "the cat sat on the mat")
    assert score.value == pytest.approx(5 / 6) and score.passed is True
    inverted = _grade([{**spec, "type": "not-rouge-n"}], "the cat sat on the mat")
    assert inverted.value == pytest.approx(1 / 6) and inverted.passed is False


def test_python_asserts_every_test_shares_become_a_python_grader(tmp_path: Path, stub_server,
                                                                 capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "check.py").write_text(
        "def get_assert(output, context):\n"
        "    city = context['vars']['city']\n"
        "    if city.lower() in output.lower():\n"
        "        return {'pass': True, 'score': 1.0, 'reason': 'names the city'}\n"
        "    return False\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['{{question}}']\nproviders: [openai:stub]\n"
        "defaultTest:\n  assert: [{type: python, value: file://check.py}]\n"
        "tests:\n"
        "  - vars: {question: '[[answer:It is Paris.]] France?', city: Paris}\n"
        "    assert: [{type: icontains, value: paris}]\n"
        "  - vars: {question: '[[answer:Lyon]] France?', city: Paris}\n"
        "    assert: [{type: icontains, value: paris}]\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["not_mapped"] == []
    assert main(["eval", imported["eval"], "--models-file", imported["models_file"], "--model",
                 "stub", "--store", str(tmp_path / "s.db"), "--json", "--no-progress"]) in (0, 1)
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["components"]["python"]["score"] == 0.5  # the script passes the first answer
    assert run["score"] == 0.5  # the score is the promptfoo grader's: icontains, 1 then 0


@pytest.mark.parametrize("value,listed", [("len(output) < 40", False),
                                          (None, True)])
def test_inline_python_and_python_asserts_that_differ(tmp_path: Path, value, listed) -> None:
    from posttrain.eval import load_eval

    second = value or "output.startswith('x')"
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\ntests:\n"
        f"  - vars: {{q: a}}\n    assert: [{{type: python, value: '{value or 'len(output)'}'}},"
        " {type: equals, value: b}]\n"
        f"  - vars: {{q: c}}\n    assert: [{{type: python, value: \"{second}\"}},"
        " {type: equals, value: d}]\n")
    result = import_promptfoo(config, tmp_path / "pf")
    graders = [g.name for g in load_eval(result.eval_path).graders]
    if listed:
        assert graders == ["promptfoo"]
        assert any("python assertion(s) on 2 of 2 tests, they differ" in line
                   for line in result.not_mapped)
    else:
        assert graders == ["promptfoo", "python"] and result.not_mapped == []
        grader = load_eval(result.eval_path).graders[1]
        assert grader.grade({"output_text": "short"}, {"q": "a"}).value == 1.0
        assert grader.grade({"output_text": "x" * 50}, {"q": "a"}).value == 0.0


def test_factuality_closedqa_and_tools_call_asserts_run_through_judges_and_the_grader(
        tmp_path: Path, stub_server, capsys, monkeypatch) -> None:
    """factuality -> a label_model judge (A-E, D fails), model-graded-closedqa -> a Y/N
    label_model judge, is-valid-openai-tools-call -> the promptfoo grader with the provider's
    tools; the judges answer through the stub (``[[as:judge:...]]`` in the expert answer and
    the criterion), the model under test as ``stub``."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "tools.json").write_text(json.dumps([{"type": "function", "function": {
        "name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": False}}}]))
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['{{question}}']\n"
        "providers:\n  - id: openai:chat:stub\n    config: {tools: file://tools.json}\n"
        "tests:\n"
        "  - vars: {question: '[[as:stub:Paris]] capital of France?'}\n"
        "    assert:\n"
        "      - {type: factuality, value: 'Paris [[as:judge:C]]'}\n"
        "      - {type: model-graded-closedqa, value: 'names a city [[as:judge:Y]]'}\n"
        "  - vars: {question: '[[as:stub:Lyon]] capital of France?'}\n"
        "    assert:\n"
        "      - {type: factuality, value: 'Paris [[as:judge:D]]'}\n"
        "      - {type: model-graded-closedqa, value: 'names Paris [[as:judge:N]]'}\n"
        "  - vars: {question: 'weather in Oslo? [[tool:get_weather:{\"city\": \"Oslo\"}]]'}\n"
        "    assert:\n"
        "      - {type: is-valid-openai-tools-call}\n"
        "      - {type: factuality, value: 'a call [[as:judge:E]]'}\n"
        "      - {type: model-graded-closedqa, value: 'calls a tool [[as:judge:Y]]'}\n"
        "  - vars: {question: 'weather? [[tool:get_weather:{\"town\": \"Oslo\"}]]'}\n"
        "    assert:\n"
        "      - {type: is-valid-openai-tools-call}\n"
        "      - {type: factuality, value: 'a call [[as:judge:B]]'}\n"
        "      - {type: model-graded-closedqa, value: 'a valid call [[as:judge:N]]'}\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf"), "--json",
                 "--judge", "openai:judge"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["not_mapped"] == []
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    assert rows[0]["judge_question"] == "[[as:stub:Paris]] capital of France?"
    assert rows[0]["factuality"] == "Paris [[as:judge:C]]" and rows[0]["assert"] == []
    from posttrain.eval import load_eval

    eval_ = load_eval(Path(imported["eval"]))
    assert [g.name for g in eval_.graders] == ["promptfoo", "factuality", "closedqa"]
    assert eval_.tools and eval_.tools[0]["function"]["name"] == "get_weather"
    assert main(["eval", imported["eval"], "--models-file", imported["models_file"], "--model",
                 "stub", "--store", str(tmp_path / "s.db"), "--json", "--no-progress"]) in (0, 1)
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    assert run["errors"] == 0 and run["unscored"] == 0
    grades = {s.item_id: {k: g.passed for k, g in s.grades.items()}
              for s in load_results(Store(tmp_path / "s.db"), run["run_id"]).samples}
    # no deterministic assertion on t1, t2: the promptfoo grader passes them (noted on import)
    assert grades["t1"] == {"promptfoo": True, "factuality": True, "closedqa": True}
    assert grades["t2"] == {"promptfoo": True, "factuality": False, "closedqa": False}
    assert grades["t3"] == {"promptfoo": True, "factuality": True, "closedqa": True}
    assert grades["t4"]["promptfoo"] is False  # "town" is not in the schema
    assert grades["t4"]["factuality"] is True and grades["t4"]["closedqa"] is False
    # promptfoo's rule: a test passes when every assertion passes
    passed = {s.item_id: s.passed
              for s in load_results(Store(tmp_path / "s.db"), run["run_id"]).samples}
    assert passed == {"t1": True, "t2": False, "t3": True, "t4": False}
    assert any("2 of 4 tests have no assertion the promptfoo grader scores" in line
               for line in json.loads((tmp_path / "pf" / "promptfoo.json").read_text())["notes"])
    # the judges' own cost goes out with each result (as a priced judge would have spent it)
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE scores SET cost_usd = 0.25 WHERE grader != 'promptfoo'")
    assert main(["export", "promptfoo", run["run_id"], "--store", str(tmp_path / "s.db"),
                 "-o", str(tmp_path / "out.json")]) == 0
    exported = json.loads((tmp_path / "out.json").read_text())["results"]["results"]
    assert [r["metadata"]["posttrain"]["grading_cost_usd"] for r in exported] == [0.5] * 4


def test_a_tools_call_assert_without_provider_tools_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\n"
                      "tests:\n  - vars: {q: a}\n    assert: [{type: is-valid-openai-tools-call}]\n")
    with pytest.raises(Exception, match="needs the provider's config.tools"):
        import_promptfoo(config, tmp_path / "pf")


def test_tools_call_check_reasons() -> None:
    from posttrain.graders.promptfoo_assert import tools_call_check

    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}]
    call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    assert tools_call_check([call], tools) == (1.0, "1 valid tool call(s)")
    assert tools_call_check([], tools) == (0.0, "no tool call")
    bad = {"function": {"name": "g", "arguments": "{}"}}
    assert tools_call_check([bad], tools)[1] == "call 0: no tool named 'g'"
    assert "not JSON" in tools_call_check([{"function": {"name": "f", "arguments": "{x"}}],
                                          tools)[1]
    assert "'x' is a required property" in tools_call_check(
        [{"function": {"name": "f", "arguments": "{}"}}], tools)[1]


def test_a_python_grading_result_keeps_its_pass(tmp_path: Path) -> None:
    """promptfoo passes {pass: True, score: 0.7}: so does posttrain (not 0.7 < 1, failed)."""
    from posttrain.eval import load_eval

    (tmp_path / "check.py").write_text(
        "def get_assert(output, context):\n"
        "    ok = 'paris' in output.lower()\n"
        "    return {'pass': ok, 'score': 0.7 if ok else 0.9, 'reason': 'city' if ok else 'no'}\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\n"
                      "defaultTest:\n  assert: [{type: python, value: file://check.py}]\n"
                      "tests:\n  - vars: {q: a}\n")
    graders = load_eval(import_promptfoo(config, tmp_path / "pf").eval_path).graders
    grader = next(g for g in graders if g.name == "python")
    good = grader.grade({"output_text": "Paris"}, {"q": "a"})
    assert (good.value, good.passed) == (0.7, True) and "city" in (good.explanation or "")
    bad = grader.grade({"output_text": "Lyon"}, {"q": "a"})
    assert (bad.value, bad.passed) == (0.9, False)


def test_csv_expected_python_and_javascript_prefixes_are_not_equals(tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text(
        "q,__expected\na,python: len(output) < 10\nb,javascript: output === 'y'\n"
        "c,fn:output.length > 1\nd,plain\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\n"
                      "tests: file://tests.csv\n")
    result = import_promptfoo(config, tmp_path / "pf")
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    kinds = [[a["type"] for a in row["assert"]] for row in rows]
    assert kinds == [[], [], [], ["equals"]]  # no literal equals on the code
    assert any("2 'javascript' assertion(s) not carried over" in line
               for line in result.not_mapped)
    assert any("python assertion(s) on 1 of 4 tests" in line for line in result.not_mapped)


def test_array_vars_expand_to_one_test_per_value_as_promptfoo_does(tmp_path: Path) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['{{lang}}: {{text}}']\nproviders: [openai:gpt-4.1-mini]\ntests:\n"
        "  - vars: {lang: [French, German], text: [hi, bye], tags: [1, 2]}\n"
        "    assert: [{type: icontains, value: '{{text}}'}]\n"
        "  - vars: {lang: [Spanish, Italian]}\n    options: {disableVarExpansion: true}\n")
    result = import_promptfoo(config, tmp_path / "pf")
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    assert result.items == 5
    assert [(r["lang"], r.get("text")) for r in rows[:4]] == [
        ("French", "hi"), ("French", "bye"), ("German", "hi"), ("German", "bye")]
    assert rows[0]["tags"] == [1, 2]  # a list of non-strings is one value
    assert rows[1]["assert"] == [{"type": "icontains", "value": "bye"}]
    assert rows[4]["lang"] == ["Spanish", "Italian"]
    assert len({r["id"] for r in rows}) == 5


def test_test_vars_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "vars1.yaml").write_text("question: 2+2\nans: '4'\n")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{question}}']\nproviders: [openai:gpt-4.1-mini]\ntests:\n"
                      "  - vars: file://vars1.yaml\n    assert: [{type: equals, value: '4'}]\n")
    import_promptfoo(config, tmp_path / "pf")
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    assert (rows[0]["question"], rows[0]["ans"]) == ("2+2", "4")
    config.write_text(config.read_text().replace("vars1", "bad"))
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf2")]) == 2


@pytest.mark.parametrize("assertion,line,message", [
    ("{type: regex, value: '([a-z'}", 6, "regex /([a-z/ does not compile"),
    ("{type: is-json, value: {type: 12}}", 6, "is-json: not a JSON schema"),
    ("{type: equals}", 6, "equals needs a value"),
    ("{type: contains, value: x, weight: heavy}", 6, "weight must be a number"),
])
def test_a_bad_assertion_is_one_line_at_import(tmp_path: Path, capsys, assertion, line,
                                               message) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\ntests:\n"
                      "  - vars: {q: a}\n    assert:\n"
                      f"      - {assertion}\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{config}:{line}:" in err[0] and message in err[0]
    assert not (tmp_path / "pf" / "eval.yaml").exists()


def test_an_assertion_label_names_defaulttest_or_the_tests_own_index(tmp_path: Path) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['{{q}}']\nproviders: [openai:gpt-4.1-mini]\n"
                      "defaultTest:\n  assert: [{type: contains, value: a}, "
                      "{type: contains, value: b}]\n"
                      "tests:\n  - vars: {q: a}\n    assert: [{type: python, value: 'True'}]\n"
                      "  - vars: {q: b}\n")
    result = import_promptfoo(config, tmp_path / "pf")
    assert any("tests[0].assert[0]" in line for line in result.not_mapped)


@pytest.mark.parametrize("spec,output,reason", [
    ({"type": "equals", "value": "Paris"}, "Lyon", "equals: expected 'Paris', got 'Lyon'"),
    ({"type": "not-equals", "value": "x"}, "x", "not-equals: expected anything but 'x', got it"),
    ({"type": "not-contains", "value": "London"}, "in London",
     "not-contains: expected no 'London', found it in 'in London'"),
    ({"type": "icontains", "value": "paris"}, "Lyon",
     "icontains: expected 'paris' (any case) in the output, got 'Lyon'"),
    ({"type": "regex", "value": "^P"}, "Lyon",
     "regex: expected the output to match /^P/, got 'Lyon'"),
    ({"type": "not-starts-with", "value": "Red"}, "Red sky",
     "not-starts-with: expected the output not to start with 'Red', got 'Red sky'"),
])
def test_failure_reasons_say_what_was_expected_and_found(spec, output, reason) -> None:
    score = _grade([spec], output)
    assert score.passed is False and score.explanation == reason


def test_summary_messages_name_variants_missing_vars_and_why_python_is_listed(
        tmp_path: Path, capsys) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['Q: {{q}}', 'Ask {{q}} in {{lang}}']\nproviders: [openai:gpt-4.1-mini]\n"
        "defaultTest:\n  assert: [{type: llm-rubric, value: polite}]\ntests:\n"
        "  - vars: {q: a, lang: fr}\n    assert: [{type: python, value: 'True'}, "
        "{type: contains, value: a}]\n"
        "  - vars: {q: b}\n    assert: [{type: contains, value: b}]\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf")]) == 0
    out = capsys.readouterr()
    assert "variants: default, prompt2)" in out.out
    assert "var 'lang' is missing on 1 of 2 tests (t2): promptfoo renders a missing var as " \
           "empty" in out.err
    assert "python assertion(s) on 1 of 2 tests, 1 of 2 tests have none" in out.err
    rows = [json.loads(line) for line in (tmp_path / "pf" / "items.jsonl").open()]
    assert rows[1]["lang"] == ""


def test_an_eval_that_does_not_build_is_refused_before_writing(tmp_path: Path, capsys) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['Q: {{q}}']\nproviders:\n  - id: openai:gpt-4.1-mini\n"
                      "    config: {tool_choice: 5}\ntests:\n  - vars: {q: a}\n"
                      "    assert: [{type: contains, value: a}]\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {config}: tool_choice:")
    assert not (tmp_path / "pf").exists()


def test_a_python_grading_result_pass_counts_in_the_runs_pass_rate(
        tmp_path: Path, stub_server, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "check.py").write_text(
        "def get_assert(output, context):\n"
        "    return {'pass': 'paris' in output.lower(), 'score': 0.7, 'reason': 'partial'}\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['{{question}}']\nproviders: [openai:stub]\n"
        "defaultTest:\n  assert: [{type: python, value: file://check.py}]\n"
        "tests:\n  - vars: {question: '[[answer:It is Paris.]] France?'}\n"
        "  - vars: {question: '[[answer:Lyon]] France?'}\n")
    assert main(["import", "promptfoo", str(config), "-o", str(tmp_path / "pf"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert main(["eval", imported["eval"], "--models-file", imported["models_file"], "--model",
                 "stub", "--store", str(tmp_path / "s.db"), "--json", "--no-progress"]) in (0, 1)
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["pass_rate"] == 0.5  # promptfoo: 1 of 2 pass (score 0.7 each)

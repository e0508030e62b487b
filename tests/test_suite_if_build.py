"""instruction_following: generation, conflicts, the eval file and the ifeval grader."""

from __future__ import annotations

import json
import time
from pathlib import Path
from random import Random

import pytest

from posttrain.eval import load_eval
from posttrain.graders.registry import build_grader
from posttrain.suites import build_suite
from posttrain.suites.instruction_following import checkers as C
from posttrain.suites.instruction_following import generate
from posttrain.suites.instruction_following.developer import DEV_CONFLICTS, check_dev
from posttrain.suites.instruction_following.ifeval_items import pick_ids
from posttrain.types import Completion


def test_deterministic_by_seed_and_prefix_stable() -> None:
    assert generate(60, seed=7) == generate(60, seed=7)
    assert generate(60, seed=7) != generate(60, seed=8)
    assert generate(80, seed=7)[:60] == generate(60, seed=7)


def test_conflict_table_is_symmetric_and_honoured() -> None:
    for key, others in C.CONFLICTS.items():
        assert key in others
        for other in others:
            assert key in C.CONFLICTS[other]
    assert C.CONFLICTS["detectable_format:constrained_response"] == set(C.IDS)
    assert "keywords:existence" not in C.CONFLICTS["detectable_format:json_format"]
    for seed in range(300):
        ids = pick_ids(Random(seed), 3)
        assert len(ids) >= 1
        for a in ids:
            for b in ids:
                if a != b:
                    assert b not in C.CONFLICTS[a], (a, b)
    for row in generate(200, seed=1):
        ids = row["instruction_id_list"]
        table = DEV_CONFLICTS if row["kind"] == "developer" else C.CONFLICTS
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                assert b not in table[a], (row["id"], a, b)
        assert row["difficulty"] == ("easy", "medium", "hard")[len(ids) - 1]
        assert len(row["kwargs"]) == len(ids)


def test_build_loads_and_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = build_suite("instruction_following", tmp_path, n=None, seed=3)
    assert time.perf_counter() - start < 1.0
    ev = load_eval(path)
    assert len(ev.items) == 200
    assert {r.data["kind"] for r in ev.items} == {"ifeval", "developer"}
    assert {"developer", "ranking", "easy"} <= {t for r in ev.items for t in r.tags}
    request = ev.request_for(ev.items[0])
    assert request.messages[-1]["content"] == ev.items[0].data["prompt"]


def test_generated_repeat_prompt_is_checkable() -> None:
    rows = [r for r in generate(400, seed=2)
            if "combination:repeat_prompt" in r["instruction_id_list"]]
    assert rows
    row = rows[0]
    kwargs = row["kwargs"][row["instruction_id_list"].index("combination:repeat_prompt")]
    assert kwargs["prompt_to_repeat"] in row["prompt"]


def _grade(grader, text: str, item: dict) -> object:
    return grader.grade(Completion(text=text).to_sample(), item)


def test_grader_prompt_and_instruction_levels_on_a_batch() -> None:
    pytest.importorskip("nltk")  # capital_word_frequency: posttrain[suites]
    grader = build_grader({"type": "ifeval", "name": "if"})
    items = [
        {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"],
         "kwargs": [{}, {}], "prompt": "p"},
        {"instruction_id_list": ["keywords:existence", "change_case:capital_word_frequency",
                                 "change_case:capital_word_frequency"],
         "kwargs": [{"keywords": ["sun"]},
                    {"capital_frequency": 1, "capital_relation": "at least"},
                    {"capital_frequency": 2, "capital_relation": "less than"}], "prompt": "p"},
        # the HF copy fills unused kwargs with null
        {"instruction_id_list": ["detectable_format:title"],
         "kwargs": [{"num_words": None, "relation": None}], "prompt": "p"},
    ]
    responses = ["Sure:\n\"no commas here\"", "The SUN and the MOON and the STARS.",
                 "<<Title>> text"]
    scores = [_grade(grader, r, i) for r, i in zip(responses, items, strict=True)]
    # item 1: no_comma passes; quotation fails strict (preamble) but passes loose
    assert scores[0].sub_scores["strict_instruction"] == 0.5
    assert scores[0].sub_scores["loose_prompt"] == 1.0 and scores[0].passed is False
    # item 2: 3 capital words -> "at least 1" passes, "less than 2" fails; duplicates averaged
    assert scores[1].value == pytest.approx(2 / 3)
    assert scores[1].sub_scores["id:change_case:capital_word_frequency"] == 0.5
    assert scores[2].passed is True
    strict_prompt = sum(s.sub_scores["strict_prompt"] for s in scores) / 3
    loose_prompt = sum(s.sub_scores["loose_prompt"] for s in scores) / 3
    flat = [1, 0, 1, 1, 0, 1]
    assert strict_prompt == pytest.approx(1 / 3) and loose_prompt == pytest.approx(2 / 3)
    assert sum(flat) / len(flat) == pytest.approx(
        sum(s.sub_scores["strict_instruction"] * n for s, n in zip(scores, (2, 3, 1), strict=True))
        / 6)


def test_grader_unscored_on_bad_items() -> None:
    grader = build_grader({"type": "ifeval"})
    bad = _grade(grader, "x", {"instruction_id_list": ["nope:nope"], "kwargs": [{}]})
    assert bad.status == "unscored" and "unknown" in bad.explanation
    assert _grade(grader, "x", {"prompt": "no ids"}).status == "unscored"
    mismatch = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}
    assert _grade(grader, "x", mismatch).status == "unscored"


def test_user_ifeval_jsonl_roundtrip(tmp_path: Path) -> None:
    row = {"key": 1000, "prompt": "Write without commas.",
           "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    (tmp_path / "mine.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "eval.yaml").write_text(
        "name: mine\ndataset: mine.jsonl\nid_field: key\n"
        "messages: [{role: user, content: '{{item.prompt}}'}]\n"
        "graders: [{type: ifeval, name: ifeval}]\n")
    ev = load_eval(tmp_path / "eval.yaml")
    assert ev.request_for(ev.items[0]).messages[0]["content"] == "Write without commas."
    assert _grade(ev.graders[0], "fine text", ev.items[0].data).passed is True


@pytest.mark.parametrize(("instruction_id", "kwargs", "good", "bad"), [
    ("dev_format:json_keys", {"keys": ["name", "age"]}, '```json\n{"name": "a", "age": 3}\n```',
     'name: a\nage: 3'),
    ("dev_format:yaml_keys", {"keys": ["name", "age"]}, "name: a\nage: 3", "a plain sentence"),
    ("dev_format:xml", {"root": "employee", "children": ["name"]},
     "<employee><name>A</name></employee>", "<employee><name>A</employee>"),
    ("dev_format:markdown_table", {"columns": ["name", "city"], "min_rows": 2},
     "| Name | City |\n|---|---|\n| a | b |\n| c | d |", "| Name | City |\n|---|---|\n| a | b |"),
    ("dev_format:bullet_count", {"num_bullets": 2}, "- a\n- b", "1. a\n2. b"),
    ("dev_negative:no_capitals", {}, "all lowercase here.", "One capital."),
    ("dev_negative:no_question", {}, "Here is the plan.", "Shall I continue?"),
    ("dev_negative:forbidden_phrase", {"phrases": ["contact support"]}, "I fixed it.",
     "Please Contact Support."),
    ("dev_ordered:sequence", {"phrases": ["Goal:", "Plan:"]}, "Goal: x\nPlan: y",
     "Plan: y\nGoal: x"),
    ("dev_content:required_terms", {"terms": ["protein"]}, "30 g protein", "30 g proteins"),
    ("dev_content:ends_with", {"phrase": "Talk soon."}, "Bye. Talk soon.", "Talk soon. Bye."),
    ("dev_length:max_words", {"max_words": 3}, "one two three", "one two three four"),
    ("dev_ranking:order", {"order": ["B", "A"]}, "1. B\n2. A", "1. A\n2. B"),
    ("dev_overconfidence:fallback", {"fallback": "help@x.example", "answer": None},
     "Please write to help@x.example.", "Yes, we ship there."),
    ("dev_overconfidence:fallback", {"fallback": "help@x.example", "answer": "9 am"},
     "We open at 9 am.", "Write to help@x.example."),
])
def test_developer_checks(instruction_id: str, kwargs: dict, good: str, bad: str) -> None:
    assert check_dev(instruction_id, good, kwargs) is True
    assert check_dev(instruction_id, bad, kwargs) is False


def test_developer_items_are_graded_without_loose_transforms() -> None:
    grader = build_grader({"type": "dev_instructions", "name": "dev"})
    item = {"instruction_id_list": ["dev_negative:no_question"], "kwargs": [{}]}
    score = _grade(grader, "Here you go.\nAnything else?", item)
    assert score.sub_scores["loose_prompt"] == 0.0 and score.passed is False


def test_system_priority_and_later_items_carry_the_winning_instruction() -> None:
    rows = [r for r in generate(400, seed=5) if r["category"] in ("system_priority",
                                                                  "later_instruction")]
    assert rows
    for row in rows:
        if row["category"] == "system_priority":
            assert row["messages"][0]["role"] == "system"
        if "dev_format:bullet_count" in row["instruction_id_list"]:
            kw = row["kwargs"][row["instruction_id_list"].index("dev_format:bullet_count")]
            text = row["messages"][-1]["content"]
            if row["category"] == "later_instruction":
                assert text.rfind(f"exactly {kw['num_bullets']} bullet") > text.find("Update")

"""context_only: generator invariants, eval file, variants and the context_only grader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from posttrain.eval import load_eval
from posttrain.graders.registry import build_grader
from posttrain.suites import build_suite
from posttrain.suites.context_only import generate
from posttrain.suites.context_only.generate import ABSTAIN, mentions
from posttrain.types import Completion

ROWS = generate(300, seed=11)


def _of(kind: str) -> list[dict]:
    return [r for r in ROWS if r["item_type"] == kind]


def test_deterministic_by_seed() -> None:
    assert generate(50, seed=11) == ROWS[:50]
    assert generate(50, seed=12) != ROWS[:50]


def test_counterfactual_gold_in_context_and_real_fact_absent() -> None:
    for row in _of("counterfactual") + _of("multihop"):
        assert all(mentions(row["context"], a) for a in row["answers"]), row["id"]
        assert not any(mentions(row["context"], s) for s in row["stubborn"]), row["id"]
        assert row["answers"][0] not in row["stubborn"]
    for row in _of("multihop"):
        assert not mentions(row["context"], row["real_intermediate"])


def test_unanswerable_contexts_lack_the_answer() -> None:
    for row in _of("unanswerable"):
        assert not mentions(row["context"], row["hidden_answer"]), row["id"]
        assert row["answers"] == [ABSTAIN]


def test_conflicting_and_control_contexts() -> None:
    for row in _of("conflicting"):
        first, second = row["answers"]
        assert first != second and mentions(row["context"], first)
        assert mentions(row["context"], second)
    for row in _of("control"):
        assert mentions(row["context"], row["answers"][0])


def test_build_loads_with_both_system_prompts(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = build_suite("context_only", tmp_path, n=None, seed=0)
    assert time.perf_counter() - start < 1.0
    ev = load_eval(path)
    assert len(ev.items) == 150 and set(ev.variants) == {"default", "basic_knowledge"}
    default = ev.request_for(ev.items[0]).messages
    basic = ev.request_for(ev.items[0], "basic_knowledge").messages
    assert default[0]["content"].startswith("Only use the documents")
    assert basic[0]["content"].startswith("By default, use the provided external context")
    assert "# External Context" in default[1]["content"]
    assert {t for item in ev.items for t in item.tags} == {
        "counterfactual", "unanswerable", "conflicting", "multihop", "control"}


def _grade(text: str, item: dict):
    grader = build_grader({"type": "context_only", "name": "ctx"})
    return grader.grade(Completion(text=text).to_sample(), item)


def test_grader_counterfactual() -> None:
    row = _of("counterfactual")[0]
    gold, real = row["answers"][0], row["stubborn"][0]
    right = _grade(f"According to the context, it is {gold}.", row)
    assert right.passed and right.sub_scores == {"faithful": 1.0, "stubborn": 0.0,
                                                 "abstained": 0.0, "echoed": 0.0}
    stubborn = _grade(f"It is {real}.", row)
    assert not stubborn.passed and stubborn.sub_scores["stubborn"] == 1.0
    hedged = _grade(f"The document says {gold}, but really it is {real}.", row)
    assert not hedged.passed and hedged.sub_scores["stubborn"] == 1.0


def test_grader_unanswerable_conflicting_control_multihop() -> None:
    unanswerable = _of("unanswerable")[0]
    assert _grade(ABSTAIN + ".", unanswerable).passed
    assert _grade("I don\u2019t have the information needed to answer that", unanswerable).passed
    made_up = _grade("It was founded in 1950.", unanswerable)
    assert not made_up.passed and made_up.sub_scores["abstained"] == 0.0
    conflicting = _of("conflicting")[0]
    first, second = conflicting["answers"]
    assert _grade(f"The documents disagree: {first} or {second}.", conflicting).passed
    assert _grade(f"Sources say {first} and {second}.", conflicting).passed
    assert not _grade(f"It is {first}.", conflicting).passed
    control = _of("control")[0]
    assert _grade(control["answers"][0], control).passed
    over = _grade(ABSTAIN, control)
    assert not over.passed and over.sub_scores["abstained"] == 1.0 and "stubborn" not in \
        over.sub_scores
    multihop = _of("multihop")[0]
    assert _grade(multihop["answers"][0], multihop).passed
    assert _grade(multihop["stubborn"][0], multihop).sub_scores["stubborn"] == 1.0


@pytest.mark.parametrize("item", [{"answers": ["x"]}, {"item_type": "control"}])
def test_grader_unscored_on_bad_items(item: dict) -> None:
    assert _grade("x", item).status == "unscored"

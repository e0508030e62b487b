"""Suite graders on real answers: SmolLM2-135M-Instruct's own replies as fixtures.

Each case is an answer the real model gave (``posttrain eval "suite:NAME?n=.." --model
hf:smollm2-135m-instruct``, read by eye) that a grader misjudged, with the verdict a reader
gives it. No model is needed: the answers are inlined.
"""

from __future__ import annotations

from typing import Any

import pytest

from posttrain.graders.registry import build_grader
from posttrain.suites.context_only import BASIC_KNOWLEDGE, ONLY_CONTEXT, USER, generate
from posttrain.types import Completion


def _grade(spec: dict[str, Any], text: str, item: dict[str, Any]):
    return build_grader(spec).grade(Completion(text=text).to_sample(), item)


# ---- context_only ---------------------------------------------------------------------------
CONTEXT = {"type": "context_only", "name": "context"}
CONTEXT_ROWS = generate(40, seed=0)  # the items of `suite:context_only?n=40`


def _user_message(row: dict[str, Any]) -> str:
    return USER.replace("{{item.context}}", row["context"]).replace("{{item.question}}",
                                                                   row["question"])


@pytest.mark.parametrize("with_system", [False, True])
def test_context_only_an_echo_of_the_prompt_is_not_faithful(with_system: bool) -> None:
    """The prompt copied back scored 0.8 (1.0 with the system prompt, whose abstain phrase
    passed the unanswerable items): the documents name every gold value."""
    values = []
    for row in CONTEXT_ROWS:
        echo = _user_message(row)
        if with_system:
            echo = f"{ONLY_CONTEXT}\n\n{echo}"
        score = _grade(CONTEXT, echo, row)
        assert score.status == "scored" and score.sub_scores["echoed"] == 1.0, row["id"]
        values.append(score.value)
    assert sum(values) == 0


def test_context_only_an_echo_then_an_answer_is_graded_on_the_answer() -> None:
    row = next(r for r in CONTEXT_ROWS if r["item_type"] == "counterfactual")
    answered = _grade(CONTEXT, f"{_user_message(row)}\n\nThe answer is {row['answers'][0]}.", row)
    assert answered.passed and answered.sub_scores["echoed"] == 1.0
    stubborn = _grade(CONTEXT, f"{_user_message(row)}\n\nThe answer is {row['stubborn'][0]}.",
                      row)
    assert not stubborn.passed and stubborn.sub_scores["stubborn"] == 1.0
    unanswerable = next(r for r in CONTEXT_ROWS if r["item_type"] == "unanswerable")
    abstained = _grade(CONTEXT, f"{BASIC_KNOWLEDGE}\n{_user_message(unanswerable)}\n"
                       "I don't have the information needed to answer that.", unanswerable)
    assert abstained.passed and abstained.sub_scores["echoed"] == 1.0


def test_context_only_quoting_the_answer_sentence_is_not_an_echo() -> None:
    """ctx-0003 (multihop): the model copied the one sentence that answers; right, not echo."""
    row = CONTEXT_ROWS[3]
    assert row["answers"] == ["Helsinki"]
    assert "The capital of Vietnam is Helsinki." in row["context"]
    score = _grade(CONTEXT, "The capital of Vietnam is Helsinki.", row)
    assert score.passed and score.sub_scores["echoed"] == 0.0
    abstain = _grade(CONTEXT, "I don't have the information needed to answer that",
                     CONTEXT_ROWS[1])  # the system prompt's own phrase is the right answer
    assert abstain.passed and abstain.sub_scores["echoed"] == 0.0


def test_context_only_a_conflict_answered_with_one_value_is_not_faithful() -> None:
    """ctx-0012 (both variants): both towns named, but one is made a suburb of the other: the
    model picked Raipisstead and never said the documents disagree (was graded faithful)."""
    row = CONTEXT_ROWS[12]
    assert row["item_type"] == "conflicting" and row["answers"] == ["Raipisstead", "Tumeathham"]
    real = "Pofou Foods is headquartered in Raipisstead, a suburb of Tumeathham, Italy."
    score = _grade(CONTEXT, real, row)
    assert score.status == "scored" and not score.passed and score.value == 0.0
    for both in ("It is Raipisstead or Tumeathham.",
                 "The profile says Tumeathham, while the register says Raipisstead.",
                 "Document 1: Raipisstead. Document 2: Tumeathham.",
                 "The documents disagree; one says Raipisstead."):
        assert _grade(CONTEXT, both, row).passed, both

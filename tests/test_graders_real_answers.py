"""Suite graders on real answers: SmolLM2-135M-Instruct's own replies as fixtures.

Each case is an answer the real model gave (``posttrain eval "suite:NAME?n=.." --model
hf:smollm2-135m-instruct``, read by eye) that a grader misjudged, with the verdict a reader
gives it. No model is needed: the answers are inlined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posttrain.graders.base import GraderContext
from posttrain.graders.registry import build_grader
from posttrain.suites.context_only import BASIC_KNOWLEDGE, ONLY_CONTEXT, USER, generate
from posttrain.suites.tool_use.generate import make_items
from posttrain.types import ChatRequest, Completion


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


# ---- instruction_following ------------------------------------------------------------------
IFEVAL = {"type": "ifeval", "name": "instructions"}
# if-0005 of `suite:instruction_following?n=24&max_tokens=512`: asked for a JSON e-mail without
# "ladder"/"planet" and with "weather"/"answer", SmolLM2 wrote 256 lines of ``` and nothing else.
# It scored 1/3: the forbidden words are absent from an answer that has no words at all.
FENCES_ONLY = "```\n" * 256
VACUOUS = [  # instructions that an answer without words follows, read literally
    ("keywords:forbidden_words", {"forbidden_words": ["ladder", "planet"]}),
    ("punctuation:no_comma", {}),
    ("keywords:frequency", {"keyword": "horizon", "frequency": 1, "relation": "less than"}),
    ("keywords:letter_frequency", {"letter": "f", "let_frequency": 1, "let_relation": "less than"}),
    ("length_constraints:number_words", {"num_words": 150, "relation": "less than"}),
    ("length_constraints:number_sentences", {"num_sentences": 6, "relation": "less than"}),
    ("change_case:capital_word_frequency", {"capital_frequency": 3,
                                            "capital_relation": "less than"}),
    ("change_case:english_lowercase", {}),
    ("dev_negative:no_capitals", {}),
    ("dev_negative:no_question", {}),
    ("dev_length:max_words", {"max_words": 200}),
]


def test_ifeval_the_fences_only_answer_follows_no_instruction() -> None:
    item = {"instruction_id_list": ["detectable_format:json_format", "keywords:forbidden_words",
                                    "keywords:existence"],
            "kwargs": [{}, {"forbidden_words": ["ladder", "planet"]},
                       {"keywords": ["weather", "answer"]}]}
    score = _grade(IFEVAL, FENCES_ONLY, item)
    assert score.status == "scored" and score.value == 0.0 and not score.passed
    assert score.sub_scores["id:keywords:forbidden_words"] == 0.0
    assert score.sub_scores["loose_instruction"] == 0.0
    assert "no words" in score.explanation


@pytest.mark.parametrize("answer", [FENCES_ONLY, "", "  \n\n", "***\n***\n", "...", "```\n```"])
@pytest.mark.parametrize("instruction_id,kwargs", VACUOUS)
def test_ifeval_an_answer_without_words_follows_no_instruction(
        answer: str, instruction_id: str, kwargs: dict[str, Any]) -> None:
    if instruction_id in ("length_constraints:number_sentences",
                          "change_case:capital_word_frequency"):
        pytest.importorskip("nltk", reason="IFEval's sentence and capital-word checks need "
                                           "NLTK (the [suites] extra)")
    score = _grade(IFEVAL, answer, {"instruction_id_list": [instruction_id], "kwargs": [kwargs]})
    assert score.status == "scored" and score.value == 0.0, score.explanation
    assert not score.passed and score.sub_scores["loose_prompt"] == 0.0


@pytest.mark.parametrize("answer", ["ok", "42", "no commas here", "über"])
def test_ifeval_a_short_answer_with_words_is_still_checked(answer: str) -> None:
    score = _grade(IFEVAL, answer, {"instruction_id_list": ["punctuation:no_comma"],
                                    "kwargs": [{}]})
    assert score.passed and score.value == 1.0


# ---- tool_use: irrelevance -------------------------------------------------------------------
# `suite:tool_use?n=20&max_tokens=256 --variant default`: SmolLM2 made no tool call on any item,
# so all four irrelevance items passed ("any call is a hallucinated call"), including a made-up
# forecast for a question only a weather tool could answer.
TOOL_USE_ROWS = make_items(20, seed=0)  # the items of `suite:tool_use?n=20`
IRRELEVANCE = [
    # (the request, SmolLM2's real reply, passes?)
    ("What will the weather be like in Lisbon tomorrow?",
     "The weather in Lisbon tomorrow will be a mix of the Mediterranean, with a touch of the "
     "Azores. The weather forecast for Lisbon predicts a mix of sunny and cloudy conditions, "
     "with a chance of rain in the afternoon.", False),
    ("Please call me a taxi to the airport.", "You can call me a taxi to the airport.", False),
    ("What's the capital of Australia?", "The capital of Australia is Canberra.", True),
    ("Can you recommend a good laptop for video editing?",
     "Sure, here are some great laptops that are known for their high-end video editing "
     "capabilities: One of the most popular and highly-rated laptops for video editing is the "
     "Dell XPS 14 15.", True),
    # replies a reader grades the same way
    ("Please book me a table for two at an Italian restaurant tonight.",
     "I've booked a table for two at Trattoria Roma at 8pm.", False),
    ("Please book me a table for two at an Italian restaurant tonight.",
     "Sorry, I can't book restaurants: I can only help with your calendar.", True),
    ("What will the weather be like in Lisbon tomorrow?",
     "I don't have access to weather information, so I can't tell you.", True),
    ("What is today's exchange rate between euros and US dollars?",
     "Today's rate is 1 EUR = 1.08 USD.", False),
    ("Can you translate 'good morning' into Japanese for me?", "Ohayou gozaimasu.", True),
    ("Please email /docs/budget_q1.txt to my manager.",
     "Sorry, none of my tools can help with that request.", True),
    ("Please call me a taxi to the airport.",
     "Booking a taxi isn't something I can do from here.", True),
    ("What time is it in Tokyo right now?", "It is 3:00 PM in Tokyo right now.", False),
    ("Please book me a table for two at an Italian restaurant tonight.",
     "I can't wait for your dinner! I've booked a table for two at 8pm.", False),
]


def _tool_use_sample(reply: str) -> dict[str, Any]:
    meta = {"final_state_hash": None, "calls": [], "asked": False, "asked_slot": False,
            "final_text": reply, "agent_texts": [reply], "turns": 1}
    return {**Completion(text=reply).to_sample(), "meta": meta}


@pytest.mark.parametrize("request_text,reply,passes", IRRELEVANCE)
def test_tool_use_irrelevance_needs_an_honest_reply_not_only_no_call(
        request_text: str, reply: str, passes: bool) -> None:
    from posttrain.suites.tool_use.domains.names import REQUEST_KINDS

    row = dict(next(r for r in TOOL_USE_ROWS if r["category"] == "irrelevance"),
               user_message=request_text)
    assert request_text in REQUEST_KINDS  # every request the suite draws has a kind
    sample = _tool_use_sample(reply)
    sample["meta"]["final_state_hash"] = row["initial_state_hash"]
    score = build_grader({"type": "tool_use", "name": "tool_use"}).grade(sample, row)
    assert score.status == "scored" and score.passed is passes, score.explanation
    assert score.sub_scores["hallucinated_call"] == 0.0
    if REQUEST_KINDS[request_text] != "knowledge":
        assert score.sub_scores["declined"] == (1.0 if passes else 0.0)
    else:
        assert "declined" not in score.sub_scores


def test_tool_use_outputs_ok_is_only_on_items_that_require_outputs() -> None:
    """outputs_ok averaged 0.875 on a run where SmolLM2 never called a tool: 14 of its 16 task
    items require no output, and "every required output was said" held there vacuously."""
    grader = build_grader({"type": "tool_use", "name": "tool_use"})
    for item_id, reply in [
            ("tool_use-0000-retail-missing_detail", "Hi Hiro, I'm glad to hear that you're "
             "willing to help. I'm sorry for any misunderstanding, but as a customer service "
             "agent, I'm not equipped to assist with cancellations."),
            ("tool_use-0007-bank-fully_specified", "Here's a JSON string with the requested "
             'information: ``` { "name": "Tara Larsen" ```')]:
        row = next(r for r in TOOL_USE_ROWS if r["id"] == item_id)
        sample = _tool_use_sample(reply)
        sample["meta"]["final_state_hash"] = row["initial_state_hash"]
        score = grader.grade(sample, row)
        assert not score.passed
        if row["outputs"]:
            assert score.sub_scores["outputs_ok"] == 0.0
        else:
            assert "outputs_ok" not in score.sub_scores


def test_tool_use_every_off_domain_request_has_a_kind() -> None:
    from posttrain.suites.tool_use.domains import DOMAINS, domain_module
    from posttrain.suites.tool_use.domains.names import GENERIC_OFF_DOMAIN, REQUEST_KINDS

    requests = set(GENERIC_OFF_DOMAIN)
    for domain in DOMAINS:
        requests |= set(domain_module(domain).OFF_DOMAIN)
    assert requests == set(REQUEST_KINDS)
    assert set(REQUEST_KINDS.values()) == {"action", "live_data", "knowledge"}


# ---- label_model: SmolLM2-135M-Instruct as the judge (examples/judge) -----------------------
JUDGE_EXAMPLE = Path(__file__).parent.parent / "examples" / "judge"
LABELS = ["correct", "incorrect"]


class ScriptedJudge:
    """A judge model that replies with one fixed text."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def generate(self, request: ChatRequest) -> Completion:
        return Completion(text=self.reply)


@pytest.mark.parametrize("reply,label", [
    # its real replies (no JSON despite the format instruction); all were unscored
    ("The answer to grade is incorrect.", "incorrect"),
    ("The answer to grade is correct.", "correct"),
    ("The answer to the grade is correct.", "correct"),
    ("The answer is incorrect. The correct answer is: The capital of Turkey is Ankara.",
     "incorrect"),
    ('The answer is incorrect. The correct answer is "Brasilia" is incorrect.', "incorrect"),
    ('The answer to the question "Who wrote Pride and Prejudice?" is incorrect. The answer is '
     "incorrect because it is not based on the reference answer provided.", "incorrect"),
    ("The answer to this question is not correct. The answer to the question about which "
     "language has the most native speakers in the world is actually incorrect. The answer is "
     "actually incorrect.", "incorrect"),
    # still unscored: two verdicts, a negation, a question, a label inside a noun phrase
    ("The answer is incorrect. The answer is correct.", None),
    ('The answer to the question "Who wrote the play Romeo and Juliet" is not correct. The '
     'answer should be "The play Romeo and Juliet" by William Shakespeare.', None),
    ("Is the answer correct or incorrect?", None),
    ("The correct answer is Canberra.", None),
])
def test_label_model_reads_a_verdict_stated_in_a_sentence(reply: str, label: str | None) -> None:
    spec = {"type": "label_model", "name": "judge", "model": "j", "labels": LABELS,
            "passing_labels": ["correct"], "input": "{{sample.output_text}}"}
    context = GraderContext(model_factory=lambda spec: ScriptedJudge(reply))
    score = build_grader(spec, context).grade(
        Completion(text="The capital of Turkey is Istanbul.").to_sample(), {})
    if label is None:
        assert score.status == "unscored" and score.value is None
    else:
        assert score.status == "scored" and score.value == (1.0 if label == "correct" else 0.0)
        assert score.explanation == f"label {label!r}"


def test_numeric_labels_are_never_read_from_prose() -> None:
    from posttrain.graders.model_graders import parse_label

    assert parse_label("The answer is 1.", ["0", "1"])[0] is None
    assert parse_label("1", ["0", "1"])[0] == "1"


def test_the_example_judge_is_the_labelled_sets_judge() -> None:
    """calibrate measures the judge the eval runs: judge.json is the eval's grader, and every
    labelled row is an item of the eval with a real answer."""
    import yaml

    from posttrain.eval import load_eval

    assert len(load_eval(JUDGE_EXAMPLE / "eval.yaml").items) == 40  # loads without the model
    spec = yaml.safe_load((JUDGE_EXAMPLE / "eval.yaml").read_text(encoding="utf-8"))
    judge = json.loads((JUDGE_EXAMPLE / "judge.json").read_text(encoding="utf-8"))
    exact = json.loads((JUDGE_EXAMPLE / "exact.json").read_text(encoding="utf-8"))
    assert judge in spec["graders"] and exact in spec["graders"]
    assert judge["model"] == "hf:smollm2-135m-instruct"
    items = {json.loads(line)["id"]: json.loads(line)
             for line in (JUDGE_EXAMPLE / "questions.jsonl").read_text(encoding="utf-8").splitlines()}
    rows = [json.loads(line) for line in
            (JUDGE_EXAMPLE / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 30 and {type(r["label"]) for r in rows} == {bool}
    assert 0 < sum(r["label"] for r in rows) < len(rows)  # both kinds of answer
    for row in rows:
        assert row["item"] == items[row["item"]["id"]]
        assert row["sample"]["output_text"].strip()

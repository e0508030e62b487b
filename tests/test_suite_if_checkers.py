"""Each of the 25 IFEval checkers on hand-written passing and failing responses."""

from __future__ import annotations

import pytest

from posttrain.suites.instruction_following import checkers as C

LOREM = " ".join(["word"] * 120)

# id -> (kwargs, passing response, failing response)
CASES = {
    "keywords:existence": ({"keywords": ["river", "lamp"]},
                           "The river shone under the lamp.", "The river shone."),
    "keywords:frequency": ({"keyword": "cat", "frequency": 2, "relation": "at least"},
                           "A cat met another cat.", "A cat met a dog."),
    "keywords:forbidden_words": ({"forbidden_words": ["red"]},
                                 "The bored blue car stopped.", "The Red car stopped."),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2, "let_relation": "less than"},
                                  "A lazy day.", "Zigzag pizza."),
    "language:response_language": ({"language": "fr"},
                                    "Bonjour, je m'appelle Marie et j'habite à Paris avec ma "
                                    "famille depuis dix ans.",
                                    "Hello, my name is Mary and I have lived in London with my "
                                    "family for ten years."),
    "length_constraints:number_sentences": ({"num_sentences": 3, "relation": "less than"},
                                            "One. Two.", "One. Two. Three. Four."),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2},
                                             "First part.\n***\nSecond part.",
                                             "First part.\n***\n\n***\nSecond part."),
    "length_constraints:number_words": ({"num_words": 100, "relation": "at least"},
                                        LOREM, "too short"),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "garden"},
        "Intro here.\n\n\"Garden, said she, is green.", "Intro here.\n\nForest is green."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2},
                                               "Dear [name], at [address].", "Dear [name],"),
    "detectable_content:postscript": ({"postscript_marker": "P.S."},
                                      "Hello.\nP.S. see you soon", "Hello. See you soon."),
    "detectable_format:number_bullet_lists": ({"num_bullets": 2},
                                              "* one\n- two", "* one\n* two\n* three"),
    "detectable_format:constrained_response": ({}, "My answer is no.", "No, I don't think so."),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2},
                                                      "*one* and **two**", "*one* and ** **"),
    "detectable_format:multiple_sections": ({"section_spliter": "Section", "num_sections": 2},
                                            "Section 1\nabc\nSection 2\ndef", "Section 1\nabc"),
    "detectable_format:json_format": ({}, "```json\n{\"a\": 1}\n```", "{a: 1}"),
    "detectable_format:title": ({}, "<<My Title>>\nText", "<< >>\nText"),
    "combination:two_responses": ({}, "First answer.******Second answer.",
                                  "Same.******Same."),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Write a poem."},
                                  "write a poem. Roses are red.", "Sure! Write a poem."),
    "startend:end_checker": ({"end_phrase": "Any other questions?"},
                             "Done. Any other questions?\"", "Any other questions? Bye."),
    "startend:quotation": ({}, "\"Hello there\"", "Hello \"there\""),
    "change_case:capital_word_frequency": ({"capital_frequency": 2,
                                            "capital_relation": "at least"},
                                           "This is VERY, VERY good.", "This is Very good."),
    "change_case:english_capital": ({}, "THIS IS A RESPONSE WRITTEN ENTIRELY IN CAPITAL LETTERS.",
                                    "This is not in capitals."),
    "change_case:english_lowercase": ({}, "this is a response written entirely in lowercase.",
                                      "This is Not lowercase."),
    "punctuation:no_comma": ({}, "No commas here.", "Well, here is one."),
}


# the checkers that need a library of posttrain[suites] (skipped on a core-only install)
NEEDS = {"language:response_language": "langdetect", "change_case:english_capital": "langdetect",
         "change_case:english_lowercase": "langdetect",
         "length_constraints:number_sentences": "nltk", "change_case:capital_word_frequency": "nltk"}


def test_every_id_has_a_case() -> None:
    assert set(CASES) == set(C.IDS) and len(C.IDS) == 25


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_strict_pass_and_fail(instruction_id: str) -> None:
    if instruction_id in NEEDS:
        pytest.importorskip(NEEDS[instruction_id])
    kwargs, good, bad = CASES[instruction_id]
    assert C.check(instruction_id, good, kwargs) is True
    assert C.check(instruction_id, bad, kwargs) is False


def test_empty_response_never_passes() -> None:
    assert C.check("punctuation:no_comma", "   ", {}) is False


def test_langdetect_failure_counts_as_pass() -> None:
    pytest.importorskip("langdetect")
    assert C.check("language:response_language", "1234 5678", {"language": "de"}) is True


def test_loose_removes_first_and_last_lines_and_asterisks() -> None:
    # a chatty preamble breaks strict repeat/quotation/json, loose forgives it
    response = "Sure, here you go:\n\"Hello there\""
    assert not C.check("startend:quotation", response, {})
    assert C.check_loose("startend:quotation", response, {})
    closing = "```json\n{\"a\": 1}\n```\nHope this helps!"
    assert not C.check("detectable_format:json_format", closing, {})
    assert C.check_loose("detectable_format:json_format", closing, {})
    stars = "**<<Title>>** *Section* 1 text"
    assert C.check_loose("detectable_format:title", stars, {})
    # loose is still a real check
    assert not C.check_loose("punctuation:no_comma", "a, b\nc, d\ne, f", {})


def test_loose_variants_count() -> None:
    assert len(C.loose_variants("a\nb\nc")) == 8


def test_sentences_and_capital_words_are_nltks() -> None:
    """punkt and nltk.word_tokenize, as the reference: ``U.S. The`` and ``etc. The`` end a
    sentence, ``...`` before a capital does not, ``CANNOT`` is two capital words."""
    pytest.importorskip("nltk")
    from posttrain.suites.instruction_following.text import count_sentences, word_tokenize

    assert count_sentences("Dr. Smith paid 3.5 dollars. He left! Why?") == 3
    assert count_sentences("He moved to the U.S. The weather was better.") == 2
    assert count_sentences("Pens, paper, etc. The meeting starts. Wait... What now?") == 3
    assert [t for t in word_tokenize("DON'T stop") if t.isupper()] == ["DO", "N'T"]
    assert [t for t in word_tokenize("I CANNOT") if t.isupper()] == ["I", "CAN", "NOT"]
    kwargs = {"num_sentences": 2, "relation": "less than"}
    assert not C.check("length_constraints:number_sentences", "Moved to the U.S. The end.", kwargs)


def test_kwargs_are_trimmed_where_the_reference_trims_them() -> None:
    """``keyword``, ``postscript_marker``, ``section_spliter``, ``end_phrase`` are stripped by
    the reference's build_description; ``keywords`` and ``forbidden_words`` are not."""
    frequency = {"keyword": " cat ", "frequency": 2, "relation": "at least"}
    assert C.check("keywords:frequency", "cat, cat", frequency)
    assert C.check("detectable_content:postscript", "Hi.\nP.S. bye",
                   {"postscript_marker": " P.S. "})
    assert not C.check("detectable_content:postscript", "Hi.\nPS bye",
                       {"postscript_marker": " P.S. "})
    assert not C.check("keywords:existence", "the cat sat", {"keywords": ["sat "]})


@pytest.mark.parametrize(("instruction_id", "kwargs"), [
    ("length_constraints:number_words", {"num_words": -1, "relation": "at least"}),
    ("length_constraints:number_words", {"num_words": "300", "relation": "at least"}),
    ("length_constraints:number_words", {"relation": "at least"}),
    ("keywords:existence", {"keywords": []}),
    ("keywords:existence", {"keywords": ["(c"]}),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}),
    ("language:response_language", {"language": "zz"}),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}),
    ("combination:repeat_prompt", {"prompt_to_repeat": ""}),
    ("punctuation:no_comma", {"num_words": 3}),
])
def test_kwargs_the_reference_would_redraw_or_reject_are_reported(
        instruction_id: str, kwargs: dict) -> None:
    with pytest.raises(C.KwargsError):
        C.check(instruction_id, "some response", kwargs)
    with pytest.raises(C.KwargsError):  # whatever the response, even an empty one
        C.check_loose(instruction_id, "", kwargs)


def test_thresholds_compare_as_given() -> None:
    """A fractional threshold is not truncated (the reference compares ``3 < 3.5``), and a
    negative capital_frequency stands (that checker redraws only a missing one)."""
    pytest.importorskip("nltk")  # capital_word_frequency
    assert C.check("length_constraints:number_words", "one two three",
                   {"num_words": 3.5, "relation": "less than"})
    assert C.check("change_case:capital_word_frequency", "none here",
                   {"capital_frequency": -1, "capital_relation": "at least"})


def test_without_punkt_the_grader_reports_unscored_naming_the_extra(monkeypatch) -> None:
    import sys

    nltk = pytest.importorskip("nltk")
    from posttrain.graders.registry import build_grader
    from posttrain.suites.instruction_following import text as T
    from posttrain.types import Completion

    for name in ("punkt", "punkt.data", "punkt.data.english"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(nltk.data, "path", [])
    T._punkt.cache_clear()
    try:
        assert not T.sentence_tokenizer_available()
        grader = build_grader({"type": "ifeval", "name": "if"})
        sample = Completion(text="One. Two.").to_sample()
        item = {"instruction_id_list": ["punctuation:no_comma",
                                        "length_constraints:number_sentences"],
                "kwargs": [{}, {"num_sentences": 2, "relation": "at least"}]}
        score = grader.grade(sample, item)
        assert score.status == "unscored"
        assert "length_constraints:number_sentences" in score.explanation
        assert "posttrain[suites]" in score.explanation
        other = grader.grade(sample, {"instruction_id_list": ["punctuation:no_comma"],
                                      "kwargs": [{}]})
        assert other.status == "scored" and other.passed is True
    finally:
        T._punkt.cache_clear()


def test_bad_kwargs_raise() -> None:
    with pytest.raises(C.KwargsError):
        C.check("keywords:frequency", "x", {"keyword": "x", "frequency": 1, "relation": "about"})
    with pytest.raises(C.KwargsError):
        C.check("no:such_id", "x", {})

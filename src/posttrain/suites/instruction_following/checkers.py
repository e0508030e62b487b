"""The 25 IFEval instruction checkers, re-implemented from their documented behaviour.

Each instruction id has three parts: ``check(response, kwargs) -> bool`` (the exact IFEval
rule), ``describe(kwargs) -> str`` (the instruction text a prompt carries) and
``sample(rng, task) -> kwargs`` (random parameters, as IFEval's ``build_description`` draws
them), so the same table grades any IFEval-format item and generates new ones.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from posttrain.suites.instruction_following import text as T

RELATIONS = ("less than", "at least")

# Words used for keyword instructions (self-authored; neutral, common).
WORD_LIST = (
    "garden", "window", "river", "pattern", "signal", "market", "lantern", "harbor", "season",
    "journey", "balance", "circle", "engine", "forest", "letter", "mirror", "bridge", "compass",
    "meadow", "orbit", "pencil", "ribbon", "silver", "thunder", "valley", "whistle", "anchor",
    "blanket", "candle", "desert", "feather", "glacier", "horizon", "island", "jacket", "kettle",
    "ladder", "marble", "needle", "ocean", "planet", "quartz", "rocket", "shadow", "tunnel",
    "umbrella", "velvet", "wagon", "yellow", "zebra", "account", "budget", "chapter", "detail",
    "effort", "factor", "growth", "history", "impact", "kitchen", "lesson", "method", "network",
    "option", "process", "quality", "reason", "schedule", "theory", "update", "version", "weather",
    "answer", "basket", "cotton", "dinner", "energy", "finger", "guitar", "hammer", "insect",
    "jungle", "knight", "lemon", "monkey", "napkin", "oxygen", "parrot", "rabbit", "salmon",
    "tomato", "violin", "walnut", "cabin", "dragon", "falcon", "puzzle", "castle", "museum",
    "notebook", "picture", "station", "village", "library", "morning", "evening", "summer",
    "winter", "coffee", "butter", "silence", "courage", "freedom", "memory", "wonder", "spark",
)

LANGUAGES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil",
    "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew",
    "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}
CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
SECTION_SPLITTERS = ("Section", "SECTION")


class KwargsError(ValueError):
    """An item's kwargs are missing or invalid for its instruction id.

    Raised wherever Google's reference gives no verdict of its own: it would draw the parameter
    at random (a missing or negative number, an empty keyword list, a ``letter`` longer than one
    character) or raise (an unknown kwarg, an unknown relation or language, a kwarg that is not a
    valid regular expression). The grader reports such an item unscored with this message.
    """


def _need(kwargs: dict[str, Any], key: str) -> Any:
    value = kwargs.get(key)
    if value is None:
        raise KwargsError(f"missing kwarg {key!r}")
    return value


def _int(kwargs: dict[str, Any], key: str) -> int:
    value = _need(kwargs, key)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise KwargsError(f"kwarg {key!r} must be an integer, got {value!r}") from None


def _relation(kwargs: dict[str, Any], key: str) -> str:
    value = _need(kwargs, key)
    if value not in RELATIONS:
        raise KwargsError(f"kwarg {key!r} must be one of {RELATIONS}, got {value!r}")
    return value


def _compare(count: int, relation: str, threshold: float) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


# ---- kwargs, as the reference's build_description(**kwargs) keeps them -------------------------
def _number(kwargs: dict[str, Any], key: str, *, negative: bool = False) -> int | float:
    """A count threshold, compared as given (``3.5`` stays 3.5, as in the reference)."""
    value = _need(kwargs, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KwargsError(f"kwarg {key!r} must be a number, got {value!r}")
    if value < 0 and not negative:
        raise KwargsError(f"kwarg {key!r} must be >= 0, got {value!r} (IFEval's reference "
                          "draws a random value instead)")
    return value


def _text(kwargs: dict[str, Any], key: str, *, strip: bool = False,
          nonempty: bool = False) -> str:
    value = _need(kwargs, key)
    if not isinstance(value, str):
        raise KwargsError(f"kwarg {key!r} must be a string, got {value!r}")
    if nonempty and not value:
        raise KwargsError(f"kwarg {key!r} must not be empty")
    return value.strip() if strip else value


def _regex(pattern: str, key: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise KwargsError(f"kwarg {key!r} gives an invalid regular expression {pattern!r}: "
                          f"{exc}") from None
    return pattern


def _word_list(kwargs: dict[str, Any], key: str, *, bounded: bool) -> list[str]:
    words = _need(kwargs, key)
    if not isinstance(words, list | tuple) or not words \
            or not all(isinstance(w, str) for w in words):
        raise KwargsError(f"kwarg {key!r} must be a non-empty list of strings, got {words!r}")
    for word in words:  # used as regular expressions, unstripped, as in the reference
        _regex(r"\b" + word + r"\b" if bounded else word, key)
    return list(words)


def _prep_existence(kw: dict[str, Any]) -> dict[str, Any]:
    return {"keywords": _word_list(kw, "keywords", bounded=False)}


def _prep_frequency(kw: dict[str, Any]) -> dict[str, Any]:
    keyword = _regex(_text(kw, "keyword", strip=True, nonempty=True), "keyword")
    return {"keyword": keyword, "frequency": _number(kw, "frequency"),
            "relation": _relation(kw, "relation")}


def _prep_forbidden(kw: dict[str, Any]) -> dict[str, Any]:
    return {"forbidden_words": _word_list(kw, "forbidden_words", bounded=True)}


def _prep_letter(kw: dict[str, Any]) -> dict[str, Any]:
    letter = _text(kw, "letter")
    if len(letter) != 1:  # checked before lower(): "İ".lower() has two characters
        raise KwargsError(f"kwarg 'letter' must be one character, got {letter!r}")
    return {"letter": letter.strip().lower(), "let_frequency": _number(kw, "let_frequency"),
            "let_relation": _relation(kw, "let_relation")}


def _prep_language(kw: dict[str, Any]) -> dict[str, Any]:
    language = _need(kw, "language")
    if language not in LANGUAGES:
        raise KwargsError(f"kwarg 'language' must be one of IFEval's codes "
                          f"({', '.join(LANGUAGES)}), got {language!r}")
    return {"language": language}


def _prep_counted(key: str, *, relation: str | None = "relation",
                  negative: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def prepare(kw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {key: _number(kw, key, negative=negative)}
        if relation:
            out[relation] = _relation(kw, relation)
        return out
    return prepare


def _prep_nth(kw: dict[str, Any]) -> dict[str, Any]:
    count = _number(kw, "num_paragraphs")
    nth = _need(kw, "nth_paragraph")
    if isinstance(nth, bool) or not isinstance(nth, int) or not 1 <= nth <= count:
        raise KwargsError(f"kwarg 'nth_paragraph' must be an integer from 1 to num_paragraphs "
                          f"({count!r}), got {nth!r}")
    return {"num_paragraphs": count, "nth_paragraph": nth,
            "first_word": _text(kw, "first_word").lower()}


def _prep_postscript(kw: dict[str, Any]) -> dict[str, Any]:
    marker = _text(kw, "postscript_marker", strip=True)
    _regex(r"\s*" + marker.lower() + r".*$", "postscript_marker")
    return {"postscript_marker": marker}


def _prep_sections(kw: dict[str, Any]) -> dict[str, Any]:
    splitter = _text(kw, "section_spliter", strip=True)
    _regex(r"\s?" + splitter + r"\s?\d+\s?", "section_spliter")
    return {"section_spliter": splitter, "num_sections": _number(kw, "num_sections")}


def _prep_repeat(kw: dict[str, Any]) -> dict[str, Any]:
    return {"prompt_to_repeat": _text(kw, "prompt_to_repeat", nonempty=True)}


def _prep_end(kw: dict[str, Any]) -> dict[str, Any]:
    return {"end_phrase": _text(kw, "end_phrase", strip=True)}


# ---- checks (one per id; each mirrors check_following in the IFEval reference) ------------------
def _existence(r: str, p: dict[str, Any]) -> bool:
    return all(re.search(k, r, flags=re.IGNORECASE) for k in p["keywords"])


def _frequency(r: str, p: dict[str, Any]) -> bool:
    count = len(re.findall(p["keyword"], r, flags=re.IGNORECASE))
    return _compare(count, p["relation"], p["frequency"])


def _forbidden(r: str, p: dict[str, Any]) -> bool:
    return not any(re.search(r"\b" + w + r"\b", r, flags=re.IGNORECASE)
                   for w in p["forbidden_words"])


def _letter_frequency(r: str, p: dict[str, Any]) -> bool:
    count = Counter(r.lower())[p["letter"]]
    return _compare(count, p["let_relation"], p["let_frequency"])


def _language(r: str, p: dict[str, Any]) -> bool:
    detected = T.detect_language(r)
    return detected is None or detected == p["language"]


def _sentences(r: str, p: dict[str, Any]) -> bool:
    return _compare(T.count_sentences(r), p["relation"], p["num_sentences"])


def _paragraphs(r: str, p: dict[str, Any]) -> bool:
    pieces = re.split(r"\s?\*\*\*\s?", r)
    count = len(pieces)
    for index, piece in enumerate(pieces):
        if not piece.strip():
            if index in (0, len(pieces) - 1):
                count -= 1
            else:
                return False
    return count == p["num_paragraphs"]


def _words(r: str, p: dict[str, Any]) -> bool:
    return _compare(T.count_words(r), p["relation"], p["num_words"])


def _nth_first_word(r: str, p: dict[str, Any]) -> bool:
    nth = p["nth_paragraph"]
    pieces = re.split(r"\n\n", r)
    count = sum(1 for piece in pieces if piece.strip())
    if nth > count:
        return False
    paragraph = pieces[nth - 1].strip()  # indexes the raw pieces, empty ones included
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    found = ""
    for char in word:
        if char in ".,?!'\"":
            break
        found += char.lower()
    return count == p["num_paragraphs"] and found == p["first_word"]


def _placeholders(r: str, p: dict[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", r)) >= p["num_placeholders"]


def _postscript(r: str, p: dict[str, Any]) -> bool:
    marker = p["postscript_marker"]
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


def _bullets(r: str, p: dict[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
    return len(stars) + len(dashes) == p["num_bullets"]


def _constrained(r: str, p: dict[str, Any]) -> bool:
    stripped = r.strip()
    return any(option in stripped for option in CONSTRAINED_OPTIONS)


def _highlights(r: str, p: dict[str, Any]) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", r)
              if h.removeprefix("**").removesuffix("**").strip()]
    return len(single) + len(double) >= p["num_highlights"]


def _sections(r: str, p: dict[str, Any]) -> bool:
    pieces = re.split(r"\s?" + p["section_spliter"] + r"\s?\d+\s?", r)
    return len(pieces) - 1 >= p["num_sections"]


def _json(r: str, p: dict[str, Any]) -> bool:
    value = r.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(prefix)
    value = value.removesuffix("```").strip()
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _title(r: str, p: dict[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))


def _two_responses(r: str, p: dict[str, Any]) -> bool:
    pieces = r.split("******")
    valid = []
    for index, piece in enumerate(pieces):
        if not piece.strip():
            if index not in (0, len(pieces) - 1):
                return False
        else:
            valid.append(piece)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def _repeat_prompt(r: str, p: dict[str, Any]) -> bool:
    return r.strip().lower().startswith(p["prompt_to_repeat"].strip().lower())


def _end(r: str, p: dict[str, Any]) -> bool:
    return r.strip().strip('"').lower().endswith(p["end_phrase"].lower())


def _quotation(r: str, p: dict[str, Any]) -> bool:
    value = r.strip()
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


def _capital_words(r: str, p: dict[str, Any]) -> bool:
    count = sum(1 for token in T.word_tokenize(r) if token.isupper())
    return _compare(count, p["capital_relation"], p["capital_frequency"])


def _english_capital(r: str, p: dict[str, Any]) -> bool:
    if not r.isupper():
        return False
    detected = T.detect_language(r)
    return detected is None or detected == "en"


def _english_lowercase(r: str, p: dict[str, Any]) -> bool:
    if not r.islower():
        return False
    detected = T.detect_language(r)
    return detected is None or detected == "en"


def _no_comma(r: str, p: dict[str, Any]) -> bool:
    return not re.search(r"\,", r)


# ---- descriptions (self-authored wording) ---------------------------------------------------------
def _quoted(words: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "keywords:existence": lambda k: f"Include the keywords {_quoted(k['keywords'])} in your response.",
    "keywords:frequency": lambda k: (f'The word "{k["keyword"]}" should appear {k["relation"]} '
                                     f'{k["frequency"]} times in your response.'),
    "keywords:forbidden_words": lambda k: (f"Do not use the words {_quoted(k['forbidden_words'])} "
                                           "anywhere in your response."),
    "keywords:letter_frequency": lambda k: (f'The letter "{k["letter"]}" should appear '
                                            f'{k["let_relation"]} {k["let_frequency"]} times in '
                                            "your response."),
    "language:response_language": lambda k: (f"Your whole response must be written in "
                                             f"{LANGUAGES[k['language']]}; no other language is "
                                             "allowed."),
    "length_constraints:number_sentences": lambda k: (f"Your response should have {k['relation']} "
                                                      f"{k['num_sentences']} sentences."),
    "length_constraints:number_paragraphs": lambda k: (
        f"Write exactly {k['num_paragraphs']} paragraphs, separated from each other by the "
        "markdown divider ***."),
    "length_constraints:number_words": lambda k: f"Answer with {k['relation']} {k['num_words']} words.",
    "length_constraints:nth_paragraph_first_word": lambda k: (
        f"Write exactly {k['num_paragraphs']} paragraphs, separated only by a blank line (two new "
        f"lines). Paragraph {k['nth_paragraph']} must begin with the word \"{k['first_word']}\"."),
    "detectable_content:number_placeholders": lambda k: (
        f"Include at least {k['num_placeholders']} placeholders in square brackets, such as "
        "[name]."),
    "detectable_content:postscript": lambda k: (f"End your response with a postscript that starts "
                                                f"with {k['postscript_marker']}"),
    "detectable_format:number_bullet_lists": lambda k: (
        f"Your answer must contain exactly {k['num_bullets']} markdown bullet points, like:\n"
        "* first point\n* second point"),
    "detectable_format:constrained_response": lambda k: (
        "Answer with one of these options only: " + ", ".join(f'"{o}"' for o in CONSTRAINED_OPTIONS)
        + "."),
    "detectable_format:number_highlighted_sections": lambda k: (
        f"Highlight at least {k['num_highlights']} sections of your answer with markdown, for "
        "example *highlighted section*."),
    "detectable_format:multiple_sections": lambda k: (
        f"Divide your response into {k['num_sections']} sections. Start each section with "
        f"{k['section_spliter']} X, for example:\n{k['section_spliter']} 1\n[content]\n"
        f"{k['section_spliter']} 2\n[content]"),
    "detectable_format:json_format": lambda k: ("Format your entire output as JSON; you may wrap it "
                                                "in markdown ``` ticks."),
    "detectable_format:title": lambda k: ("Give your answer a title wrapped in double angular "
                                          "brackets, such as <<a bright morning>>."),
    "combination:two_responses": lambda k: ("Give two different responses, separated by six "
                                            "asterisks (******) and nothing else."),
    "combination:repeat_prompt": lambda k: (
        f'First repeat this request word for word without any change: "{k["prompt_to_repeat"]}" '
        "Then give your answer. Say nothing before the repeated request."),
    "startend:end_checker": lambda k: (f'Finish your response with the exact phrase "{k["end_phrase"]}" '
                                       "and put nothing after it."),
    "startend:quotation": lambda k: "Wrap your entire response in double quotation marks.",
    "change_case:capital_word_frequency": lambda k: (
        f"Words written entirely in capital letters should appear {k['capital_relation']} "
        f"{k['capital_frequency']} times in your response."),
    "change_case:english_capital": lambda k: ("Your entire response must be in English and in "
                                              "capital letters only."),
    "change_case:english_lowercase": lambda k: ("Your entire response must be in English and in "
                                                "lowercase letters only; no capital letters."),
    "punctuation:no_comma": lambda k: "Do not use any commas in your response.",
}


# ---- parameter sampling (like build_description with no arguments) -------------------------------
def _sample(instruction_id: str, rng: Random, task: str) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    match instruction_id:
        case "keywords:existence":
            return {"keywords": rng.sample(WORD_LIST, 2)}
        case "keywords:frequency":
            return {"keyword": rng.choice(WORD_LIST), "frequency": rng.randint(1, 3),
                    "relation": relation}
        case "keywords:forbidden_words":
            return {"forbidden_words": rng.sample(WORD_LIST, 2)}
        case "keywords:letter_frequency":
            return {"letter": rng.choice(string.ascii_lowercase),
                    "let_frequency": rng.randint(1, 10), "let_relation": relation}
        case "language:response_language":
            return {"language": rng.choice(list(LANGUAGES))}
        case "length_constraints:number_sentences":
            return {"num_sentences": rng.randint(1, 20), "relation": relation}
        case "length_constraints:number_paragraphs":
            return {"num_paragraphs": rng.randint(1, 5)}
        case "length_constraints:number_words":
            return {"num_words": rng.randint(100, 500), "relation": relation}
        case "length_constraints:nth_paragraph_first_word":
            count = rng.randint(1, 5)
            return {"num_paragraphs": count, "nth_paragraph": rng.randint(1, count),
                    "first_word": rng.choice(WORD_LIST)}
        case "detectable_content:number_placeholders":
            return {"num_placeholders": rng.randint(1, 4)}
        case "detectable_content:postscript":
            return {"postscript_marker": rng.choice(POSTSCRIPT_MARKERS)}
        case "detectable_format:number_bullet_lists":
            return {"num_bullets": rng.randint(1, 5)}
        case "detectable_format:number_highlighted_sections":
            return {"num_highlights": rng.randint(1, 4)}
        case "detectable_format:multiple_sections":
            return {"section_spliter": rng.choice(SECTION_SPLITTERS),
                    "num_sections": rng.randint(1, 5)}
        case "combination:repeat_prompt":
            return {"prompt_to_repeat": task}
        case "startend:end_checker":
            return {"end_phrase": rng.choice(END_PHRASES)}
        case "change_case:capital_word_frequency":
            return {"capital_frequency": rng.randint(1, 20), "capital_relation": relation}
    return {}


def _no_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Instruction:
    """One instruction id: ``prepare`` turns an item's kwargs into the parameters the check
    uses (as the reference's ``build_description`` keeps them: trimmed where it trims, validated
    where it would redraw or raise), ``check`` is ``check_following``. ``prepare=None`` passes
    kwargs through unchanged (the developer ids)."""

    id: str
    check: Callable[[str, dict[str, Any]], bool]
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    args: tuple[str, ...] | None = None

    def params(self, kwargs: dict[str, Any] | None) -> dict[str, Any]:
        kwargs = clean_kwargs(kwargs)
        if self.args is not None:
            extra = sorted(set(kwargs) - set(self.args))
            if extra:
                raise KwargsError(f"unexpected kwarg {extra[0]!r} for {self.id} (it takes "
                                  f"{', '.join(self.args) or 'none'})")
        return self.prepare(kwargs) if self.prepare else kwargs


def _ifeval(instruction_id: str, check: Callable[[str, dict[str, Any]], bool],
            prepare: Callable[[dict[str, Any]], dict[str, Any]] = _no_kwargs,
            args: tuple[str, ...] = ()) -> Instruction:
    return Instruction(instruction_id, check, prepare, args)


INSTRUCTIONS: dict[str, Instruction] = {
    i.id: i for i in (
        _ifeval("keywords:existence", _existence, _prep_existence, ("keywords",)),
        _ifeval("keywords:frequency", _frequency, _prep_frequency,
                ("keyword", "frequency", "relation")),
        _ifeval("keywords:forbidden_words", _forbidden, _prep_forbidden, ("forbidden_words",)),
        _ifeval("keywords:letter_frequency", _letter_frequency, _prep_letter,
                ("letter", "let_frequency", "let_relation")),
        _ifeval("language:response_language", _language, _prep_language, ("language",)),
        _ifeval("length_constraints:number_sentences", _sentences,
                _prep_counted("num_sentences"), ("num_sentences", "relation")),
        _ifeval("length_constraints:number_paragraphs", _paragraphs,
                _prep_counted("num_paragraphs", relation=None), ("num_paragraphs",)),
        _ifeval("length_constraints:number_words", _words, _prep_counted("num_words"),
                ("num_words", "relation")),
        _ifeval("length_constraints:nth_paragraph_first_word", _nth_first_word, _prep_nth,
                ("num_paragraphs", "nth_paragraph", "first_word")),
        _ifeval("detectable_content:number_placeholders", _placeholders,
                _prep_counted("num_placeholders", relation=None), ("num_placeholders",)),
        _ifeval("detectable_content:postscript", _postscript, _prep_postscript,
                ("postscript_marker",)),
        _ifeval("detectable_format:number_bullet_lists", _bullets,
                _prep_counted("num_bullets", relation=None), ("num_bullets",)),
        _ifeval("detectable_format:constrained_response", _constrained),
        _ifeval("detectable_format:number_highlighted_sections", _highlights,
                _prep_counted("num_highlights", relation=None), ("num_highlights",)),
        _ifeval("detectable_format:multiple_sections", _sections, _prep_sections,
                ("section_spliter", "num_sections")),
        _ifeval("detectable_format:json_format", _json),
        _ifeval("detectable_format:title", _title),
        _ifeval("combination:two_responses", _two_responses),
        _ifeval("combination:repeat_prompt", _repeat_prompt, _prep_repeat,
                ("prompt_to_repeat",)),
        _ifeval("startend:end_checker", _end, _prep_end, ("end_phrase",)),
        _ifeval("startend:quotation", _quotation),
        # the reference redraws only a missing capital_frequency; a negative one stands
        _ifeval("change_case:capital_word_frequency", _capital_words,
                _prep_counted("capital_frequency", relation="capital_relation", negative=True),
                ("capital_frequency", "capital_relation")),
        _ifeval("change_case:english_capital", _english_capital),
        _ifeval("change_case:english_lowercase", _english_lowercase),
        _ifeval("punctuation:no_comma", _no_comma),
    )
}
IDS: tuple[str, ...] = tuple(INSTRUCTIONS)


def _conflicts() -> dict[str, set[str]]:
    """IFEval's conflict table, made symmetric; every id conflicts with itself."""
    everything = set(IDS)
    table: dict[str, set[str]] = {i: {i} for i in IDS}
    table["language:response_language"] |= {
        "detectable_format:multiple_sections", "keywords:existence", "keywords:frequency",
        "keywords:forbidden_words", "startend:end_checker", "change_case:english_capital",
        "change_case:english_lowercase"}
    table["length_constraints:number_paragraphs"] |= {
        "length_constraints:nth_paragraph_first_word", "length_constraints:number_sentences"}
    table["length_constraints:nth_paragraph_first_word"] |= {
        "length_constraints:number_paragraphs"}
    table["detectable_format:constrained_response"] = set(everything)
    table["detectable_format:multiple_sections"] |= {
        "language:response_language", "detectable_format:number_highlighted_sections"}
    table["detectable_format:json_format"] = everything - {
        "keywords:forbidden_words", "keywords:existence"}
    table["combination:two_responses"] = everything - {
        "keywords:forbidden_words", "keywords:existence", "language:response_language",
        "detectable_format:title", "punctuation:no_comma"}
    table["combination:repeat_prompt"] = everything - {
        "keywords:existence", "detectable_format:title", "punctuation:no_comma"}
    table["change_case:capital_word_frequency"] |= {
        "change_case:english_lowercase", "change_case:english_capital"}
    table["change_case:english_lowercase"] |= {"change_case:english_capital"}
    table["startend:quotation"] |= {"detectable_format:title"}
    for key in list(table):
        for other in table[key]:
            table[other].add(key)
        table[key].add(key)
    return table


CONFLICTS: dict[str, set[str]] = _conflicts()


def describe(instruction_id: str, kwargs: dict[str, Any]) -> str:
    return _DESCRIBE[instruction_id](kwargs)


def sample_kwargs(instruction_id: str, rng: Random, task: str) -> dict[str, Any]:
    return _sample(instruction_id, rng, task)


def clean_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Drop null fields (the HF copy of IFEval fills every unused kwarg with null)."""
    return {k: v for k, v in (kwargs or {}).items() if v is not None}


def _instruction(instruction_id: str) -> Instruction:
    if instruction_id not in INSTRUCTIONS:
        raise KwargsError(f"unknown IFEval instruction id {instruction_id!r}")
    return INSTRUCTIONS[instruction_id]


def check(instruction_id: str, response: str, kwargs: dict[str, Any]) -> bool:
    """Strict IFEval check (``evaluation_lib.test_instruction_following_strict``): the kwargs
    are valid, the stripped response is non-empty and the rule holds."""
    instruction = _instruction(instruction_id)
    params = instruction.params(kwargs)
    return bool(response.strip()) and instruction.check(response, params)


def loose_variants(response: str) -> list[str]:
    """IFEval's 8 loose variants: with/without ``*``, first/last/both lines removed."""
    lines = response.split("\n")
    drop_first = "\n".join(lines[1:]).strip()
    drop_last = "\n".join(lines[:-1]).strip()
    drop_both = "\n".join(lines[1:-1]).strip()
    bases = [response, drop_first, drop_last, drop_both]
    return bases + [b.replace("*", "") for b in bases]


def check_loose(instruction_id: str, response: str, kwargs: dict[str, Any]) -> bool:
    """Loose IFEval check (``test_instruction_following_loose``): any loose variant passes."""
    instruction = _instruction(instruction_id)
    params = instruction.params(kwargs)
    return any(variant.strip() and instruction.check(variant, params)
               for variant in loose_variants(response))

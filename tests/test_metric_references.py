"""Graders that re-create a published metric agree with it, differentially, on generated pairs.

Each reference below is the published code restated (MRCR's ``grade`` from the openai/mrcr card,
Graphwalks' ``get_list`` and F1 from the openai/graphwalks card, RULER's ``postprocess_pred``
and ``string_match_all`` / ``string_match_part`` from NVIDIA/RULER ``scripts/eval``) or the real
library (sacrebleu's ``sentence_bleu``, rouge-score's ``RougeScorer``). Seeded generators aim at
the edges: long texts where difflib's autojunk applies, prefixes that are almost there, final
answers with two spaces or quotes or a trailing newline, needles in other cases and around
control characters, punctuation and Unicode that tokenizers treat differently. The product is
called through ``build_grader`` (the path an eval takes), so templating and clipping count too.

To count disagreements of another implementation, call the ``*_disagreements`` helpers.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Iterator
from difflib import SequenceMatcher
from typing import Any

import pytest

from posttrain.graders import build_grader

N = 1500
WORDS = ("the", "a", "river", "garden", "poem", "tapir", "frog", "blog", "post", "about", "rocks",
         "and", "of", "in", "light", "morning", "market", "is", "was", "it", "to", "quietly",
         "e", "ee", "eee", "banana", "Mississippi", "x", "42", "3.14", "2024", "don't", "it's",
         "well-known", "U.S.", "e.g.", "snake_case", "C++", "#tag", "@user")
PUNCT = (".", ",", "!", "?", ";", ":", "—", "–", "…", "’", "“", "”", "(", ")", "\"", "'", "-", "/")
UNICODE = ("café", "naïve", "Zürich", "你好", "世界", "Привет", "مرحبا", "😀", "İstanbul", "ß", "ﬁne")


def _words(rng: random.Random, n: int, unicode: float = 0.0) -> str:
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < unicode:
            out.append(rng.choice(UNICODE))
        elif roll < unicode + 0.12:
            out.append(rng.choice(PUNCT))
        else:
            word = rng.choice(WORDS)
            out.append(word.upper() if rng.random() < 0.05 else word)
    sep = rng.choice((" ", " ", " ", "\n", "  ", ""))
    return sep.join(out) if sep else " ".join(out)


def _edit(rng: random.Random, text: str) -> str:
    """Random word-level edits: drop, duplicate, swap, substitute, re-case."""
    words = text.split(" ")
    for _ in range(rng.randint(0, 6)):
        if not words:
            break
        i = rng.randrange(len(words))
        op = rng.choice(("drop", "dup", "swap", "sub", "case"))
        if op == "drop":
            words.pop(i)
        elif op == "dup":
            words.insert(i, words[i])
        elif op == "swap" and len(words) > 1:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        elif op == "sub":
            words[i] = rng.choice(WORDS)
        else:
            words[i] = words[i].swapcase()
    return " ".join(words)


def _grade(spec: dict[str, Any], output: str, item: dict[str, Any]) -> Any:
    return build_grader(spec).grade({"output_text": output}, item)


# ---- MRCR ---------------------------------------------------------------------------------------
def mrcr_reference(response: str, answer: str, random_string_to_prepend: str) -> float:
    """The openai/mrcr card's ``grade`` (difflib's default autojunk kept)."""
    if not response.startswith(random_string_to_prepend):
        return 0
    response = response.removeprefix(random_string_to_prepend)
    answer = answer.removeprefix(random_string_to_prepend)
    return float(SequenceMatcher(None, response, answer).ratio())


def mrcr_cases(seed: int, n: int) -> Iterator[tuple[str, str, str]]:
    rng = random.Random(seed)
    for _ in range(n):
        prefix = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        target = _words(rng, rng.choice((3, 20, 60, 120)))  # long ones hit autojunk (>= 200)
        answer = prefix + target
        roll = rng.random()
        if roll < 0.15:
            response = answer
        elif roll < 0.55:
            response = prefix + _edit(rng, target)
        elif roll < 0.65:
            response = _edit(rng, target)  # no prefix
        elif roll < 0.72:
            response = rng.choice((" ", "\n", "`")) + answer  # almost the prefix
        elif roll < 0.78:
            response = prefix.lower() + target
        elif roll < 0.84:
            response = prefix + prefix + target
        elif roll < 0.9:
            response = prefix + _words(rng, rng.choice((5, 60, 120)))  # another needle
        elif roll < 0.95:
            response = prefix
        else:
            response = prefix[:-1] + target
        yield response, answer, prefix


def mrcr_disagreements(cases: Iterator[tuple[str, str, str]]) -> list[tuple[Any, ...]]:
    spec = {"type": "mrcr", "name": "m"}
    out = []
    for response, answer, prefix in cases:
        item = {"answer": answer, "random_string_to_prepend": prefix}
        got = _grade(spec, response, item).value
        via_suite = _grade({"type": "long_context"}, response, {"task": "mrcr", **item}).value
        want = mrcr_reference(response, answer, prefix)
        if got != want or via_suite != want:
            out.append((response[:60], answer[:60], prefix, want, got, via_suite))
    return out


def test_mrcr_equals_the_official_grade() -> None:
    wrong = mrcr_disagreements(mrcr_cases(11, N // 2))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]!r}"


def test_mrcr_cases_reach_autojunk() -> None:
    """Some long pairs score differently with and without autojunk: the cases can tell a
    re-implementation that drops it (rapidfuzz, autojunk=False) from the official grade."""
    differ = 0
    for response, answer, prefix in mrcr_cases(11, 200):
        if response.startswith(prefix):
            a, b = response.removeprefix(prefix), answer.removeprefix(prefix)
            differ += SequenceMatcher(None, a, b).ratio() != \
                SequenceMatcher(None, a, b, autojunk=False).ratio()
    assert differ >= 10


# ---- Graphwalks ----------------------------------------------------------------------------------
def graphwalks_reference(response: str, truth: list[str]) -> float:
    """The openai/graphwalks card's ``get_list`` and F1, with its two known defects corrected:
    the list is what ``strip("[]")`` meant (the bracket contents; the card's code leaves
    ``Final Answer: [`` on the first node), and no overlap scores 0 unless both sets are empty
    (the card's ``else 1`` gives a disjoint answer full marks). A parse failure scores 0."""
    line = response.split("\n")[-1]
    if "Final Answer:" not in line:
        return 0.0
    found = re.search(r"Final Answer: ?\[.*\]", line)
    if not found:
        return 0.0
    inner = found.group(0)[found.group(0).index("[") + 1:-1]
    sampled = {item.strip() for item in inner.split(",") if item.strip()}
    golden = set(truth)
    overlap = len(sampled & golden)
    recall = overlap / len(golden) if golden else 0
    precision = overlap / len(sampled) if sampled else 0
    if recall + precision > 0:
        return 2 * (recall * precision) / (recall + precision)
    return 1.0 if not sampled and not golden else 0.0


def _node(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(10))


def graphwalks_cases(seed: int, n: int) -> Iterator[tuple[str, list[str]]]:
    rng = random.Random(seed)
    for _ in range(n):
        truth = [_node(rng) for _ in range(rng.choice((0, 0, 1, 2, 3, 5, 8)))]
        said = [node for node in truth if rng.random() < 0.8]
        said += [_node(rng) for _ in range(rng.choice((0, 0, 0, 1, 2)))]
        if said and rng.random() < 0.1:
            said.append(said[0])  # a duplicate
        rng.shuffle(said)
        sep = rng.choice((", ", ",", " , ", ",\t", ", , "))
        quote = rng.choice(("",) * 8 + ("'", '"', "`"))
        listed = sep.join(f"{quote}{node}{quote}" for node in said)
        head = rng.choice(("Final Answer: ",) * 6 + ("Final Answer:", "Final Answer:  ",
                                                      "final answer: ", "**Final Answer:** ",
                                                      "Final answer: ", "Final Answer:\t"))
        last = f"{head}[{listed}]"
        roll = rng.random()
        if roll < 0.05:
            last += " (done)"
        elif roll < 0.1:
            last += f" and [{_node(rng)}]"
        elif roll < 0.13:
            last = f"{head}{listed}"  # no brackets
        elif roll < 0.16:
            last = "The answer is " + last
        reasoning = "\n".join(_words(rng, 8) for _ in range(rng.randint(0, 3)))
        response = (reasoning + "\n" if reasoning else "") + last
        roll = rng.random()
        if roll < 0.08:
            response += "\n"
        elif roll < 0.12:
            response += "\nHope this helps."
        elif roll < 0.15:
            response += " \r"
        yield response, truth


def graphwalks_disagreements(cases: Iterator[tuple[str, list[str]]]) -> list[tuple[Any, ...]]:
    out = []
    for response, truth in cases:
        got = _grade({"type": "graphwalks"}, response, {"answer_nodes": truth}).value
        via_suite = _grade({"type": "long_context"}, response,
                           {"task": "graphwalks", "answer_nodes": truth}).value
        want = graphwalks_reference(response, truth)
        if got != pytest.approx(want) or via_suite != pytest.approx(want):
            out.append((response[-80:], truth, want, got, via_suite))
    return out


def test_graphwalks_equals_the_cards_f1() -> None:
    wrong = graphwalks_disagreements(graphwalks_cases(12, N))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]!r}"


# ---- RULER ---------------------------------------------------------------------------------------
def ruler_postprocess(pred: str) -> str:
    """RULER ``scripts/eval/evaluate.py`` ``postprocess_pred``."""
    pred = pred.strip()
    return re.sub(r"[\x00-\x1f]", "\n", pred).strip()


def ruler_reference(metric: str, pred: str, refs: list[str]) -> float:
    """RULER ``scripts/eval/synthetic/constants.py`` on one prediction (as a fraction)."""
    pred = ruler_postprocess(pred)
    hits = [1.0 if r.lower() in pred.lower() else 0.0 for r in refs]
    return sum(hits) / len(refs) if metric == "string_match_all" else max(hits)


def ruler_cases(seed: int, n: int) -> Iterator[tuple[str, str, list[str]]]:
    rng = random.Random(seed)
    for _ in range(n):
        kind = rng.choice(("number", "uuid", "word"))
        refs = []
        for _ in range(rng.choice((1, 1, 2, 4))):
            if kind == "number":
                refs.append(str(rng.randint(10**6, 10**7 - 1)))
            elif kind == "uuid":
                refs.append("-".join(_node(rng)[:k] for k in (8, 4, 4, 4, 12)))
            else:
                refs.append(rng.choice(("Apple", "blue-sky", "ÉCOLE", "ß", "İstanbul", "tab\tword",
                                        "line\nbreak", " padded ", "x")))
        parts = [_words(rng, rng.randint(0, 6))]
        for ref in refs:
            roll = rng.random()
            if roll < 0.5:
                parts.append(ref)
            elif roll < 0.65:
                parts.append(ref.upper() if rng.random() < 0.5 else ref.lower())
            elif roll < 0.75:
                parts.append(ref[:-1])
            elif roll < 0.85:
                cut = rng.randrange(1, max(2, len(ref)))
                parts.append(ref[:cut] + rng.choice(("\x00", "\t", "\n", " ")) + ref[cut:])
        pred = rng.choice(("", " ", "\n", "\x01")) + " ".join(parts) + rng.choice(("", " ", "\x1f"))
        metric = rng.choice(("string_match_all", "string_match_part"))
        yield metric, pred, refs


def ruler_disagreements(cases: Iterator[tuple[str, str, list[str]]]) -> list[tuple[Any, ...]]:
    out = []
    for metric, pred, refs in cases:
        got = _grade({"type": metric}, pred, {"outputs": refs}).value
        want = ruler_reference(metric, pred, refs)
        via_suite = (_grade({"type": "long_context"}, pred, {"task": "niah", "outputs": refs}).value
                     if metric == "string_match_all" else want)
        if got != pytest.approx(want) or via_suite != pytest.approx(want):
            out.append((metric, pred[:80], refs, want, got, via_suite))
    return out


def test_ruler_string_match_equals_rulers() -> None:
    wrong = ruler_disagreements(ruler_cases(13, N))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]!r}"


# ---- BLEU and ROUGE ------------------------------------------------------------------------------
def text_pairs(seed: int, n: int, unicode: float = 0.0) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    for _ in range(n):
        reference = _words(rng, rng.choice((0, 1, 3, 8, 20, 40)), unicode)
        roll = rng.random()
        if roll < 0.1:
            text = reference
        elif roll < 0.7:
            text = _edit(rng, reference)
        elif roll < 0.8:
            text = reference.upper() if rng.random() < 0.5 else reference.lower()
        else:
            text = _words(rng, rng.choice((0, 2, 10, 30)), unicode)
        yield text, reference


def bleu_reference(text: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_bleu(text, [reference]).score / 100.0


ROUGE_KEYS = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_3": "rouge3", "rouge_4": "rouge4",
              "rouge_5": "rouge5", "rouge_l": "rougeL"}


def rouge_reference(metric: str, text: str, reference: str) -> float:
    from rouge_score import rouge_scorer

    key = ROUGE_KEYS[metric]
    return float(rouge_scorer.RougeScorer([key]).score(reference, text)[key].fmeasure)


def similarity_disagreements(metric: str, reference_fn: Callable[..., float],
                             pairs: Iterator[tuple[str, str]]) -> list[tuple[Any, ...]]:
    spec = {"type": "text_similarity", "name": "s", "input": "{{sample.output_text}}",
            "reference": "{{item.ref}}", "evaluation_metric": metric}
    grader = build_grader(spec)
    out = []
    for text, reference in pairs:
        got = grader.grade({"output_text": text}, {"ref": reference}).value
        want = reference_fn(text, reference)
        if got != pytest.approx(want, abs=1e-12):
            out.append((metric, text[:60], reference[:60], want, got))
    return out


def test_bleu_equals_sacrebleus_sentence_bleu() -> None:
    pytest.importorskip("sacrebleu")
    wrong = similarity_disagreements("bleu", bleu_reference, text_pairs(14, N, unicode=0.05))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]!r}"


@pytest.mark.parametrize("metric", sorted(ROUGE_KEYS))
def test_rouge_equals_rouge_score(metric: str) -> None:
    """Equal to rouge-score's F-measure on every text whose letters and digits are ASCII
    (curly quotes, dashes, emoji and other non-ASCII punctuation included)."""
    pytest.importorskip("rouge_score")
    pairs = [(t, r) for t, r in text_pairs(15, N // 3)]
    pairs += [(t + " ’ — 😀", r + " “") for t, r in text_pairs(16, N // 6)]
    wrong = similarity_disagreements(metric, lambda t, r: rouge_reference(metric, t, r),
                                     iter(pairs))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]!r}"


def test_rouge_keeps_non_ascii_letters_that_rouge_score_deletes() -> None:
    """The one documented departure: rouge-score's tokenizer deletes every non-ASCII letter
    ("你好" scores 0 against itself, "café" becomes "caf"); here they stay word characters."""
    pytest.importorskip("rouge_score")
    assert rouge_reference("rouge_1", "你好 世界", "你好 世界") == 0.0
    spec = {"type": "text_similarity", "name": "s", "input": "{{sample.output_text}}",
            "reference": "{{item.ref}}", "evaluation_metric": "rouge_1"}
    grader = build_grader(spec)
    assert grader.grade({"output_text": "你好 世界"}, {"ref": "你好 世界"}).value == 1.0
    assert grader.grade({"output_text": "café"}, {"ref": "caf"}).value == 0.0
    assert rouge_reference("rouge_1", "café", "caf") == 1.0

"""``context_only``: was the answer faithful to the context, stubborn, or an abstention?

Spec: ``{type: context_only, name, input?: "{{sample.output_text}}"}``. Reads the item's
``item_type``, ``answers`` and ``stubborn`` fields. Matching is whole-word and
case-insensitive.

- counterfactual / multihop / control: faithful = a gold answer appears and no stubborn value
  (the real-world fact) does; ``stubborn`` is reported for counterfactual and multihop.
- unanswerable: faithful = the answer abstains.
- conflicting: faithful = the conflict is named, or both values are given as alternatives
  (joined by a word such as "and", "or", "while", or in separate sentences); "A, a suburb of
  B" names both but answers A.
``abstained`` is reported for every type (on control items it is over-abstention).

An answer that copies the prompt is not faithful by copying it: when it reproduces at least
half of the context (or of one of the suite's system prompts) in runs of
``COPY_RUN`` words or more, its copied passages (``ECHO_PASSAGE`` words or more) are removed
and only the rest is graded (``echoed`` = 1). An echo of the documents names the gold value (and, on
conflicting items, both values) without answering anything; quoting the one sentence that
holds the answer is not an echo.
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score

ABSTAIN_MARKERS = (
    "don't have the information", "do not have the information", "not enough information",
    "cannot answer", "can't answer", "unable to answer", "no information", "not mentioned",
    "not provided", "does not say", "doesn't say", "does not mention", "doesn't mention",
    "not specified", "not stated", "i don't know", "i do not know", "not in the context",
    "not included in", "does not contain", "doesn't contain", "no mention",
)
CONFLICT_MARKERS = ("conflict", "contradict", "inconsistent", "disagree", "differ",
                    "discrepan", "two different", "sources vary")
ITEM_TYPES = ("counterfactual", "unanswerable", "conflicting", "multihop", "control")
COPY_RUN = 6  # words: a run this long found verbatim in the prompt is copied text
ECHO_SHARE = 0.5  # share of the context (or a system prompt) copied that makes an echo
ECHO_PASSAGE = 12  # words: a copied stretch this long is echo, not a quoted answer
# between two values given as alternatives: a joining word, or a sentence or clause break
_ALTERNATIVES = re.compile(
    r"\b(?:and|or|but|while|whereas|versus|vs|however|although|though|other|another|"
    r"also|either|both|according)\b|[.;/\n]|\d\)")
_WORD = re.compile(r"\w+")


def _normal(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def abstains(text: str) -> bool:
    lowered = _normal(text)
    return any(marker in lowered for marker in ABSTAIN_MARKERS)


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _runs(words: list[tuple[str, int, int]]) -> set[tuple[str, ...]]:
    tokens = [w for w, _, _ in words]
    return {tuple(tokens[i:i + COPY_RUN]) for i in range(len(tokens) - COPY_RUN + 1)}


def _share_copied(source: str, answer_runs: set[tuple[str, ...]]) -> float:
    """The share of ``source``'s words that the answer reproduces in runs of COPY_RUN words."""
    tokens = [w for w, _, _ in _words(source)]
    if len(tokens) < COPY_RUN:
        return 0.0
    covered = [False] * len(tokens)
    for i in range(len(tokens) - COPY_RUN + 1):
        if tuple(tokens[i:i + COPY_RUN]) in answer_runs:
            covered[i:i + COPY_RUN] = [True] * COPY_RUN
    return sum(covered) / len(tokens)


def prompt_sources(item: dict[str, Any]) -> list[str]:
    """What the model was shown: the item's context and question, the suite's system prompts."""
    from posttrain.suites.context_only import BASIC_KNOWLEDGE, BASIC_KNOWLEDGE_ABSTAIN, ONLY_CONTEXT

    return [str(item.get("context") or ""), ONLY_CONTEXT,
            BASIC_KNOWLEDGE + BASIC_KNOWLEDGE_ABSTAIN, str(item.get("question") or "")]


def strip_echo(text: str, item: dict[str, Any]) -> tuple[str, float]:
    """(the answer without its echoed passages, the largest share of a source copied).

    Unchanged unless the answer copies at least ECHO_SHARE of the context or of a system
    prompt. Then each stretch of ECHO_PASSAGE words or more copied from the prompt is removed;
    shorter copies (the abstain phrase, one quoted sentence) stay, they can be the answer.
    """
    words = _words(text)
    answer_runs = _runs(words)
    if not answer_runs:
        return text, 0.0
    sources = prompt_sources(item)
    share = max(_share_copied(source, answer_runs) for source in sources[:3])
    if share < ECHO_SHARE:
        return text, share
    prompt_runs = set().union(*(_runs(_words(source)) for source in sources))
    copied = [False] * len(words)
    tokens = [w for w, _, _ in words]
    for i in range(len(tokens) - COPY_RUN + 1):
        if tuple(tokens[i:i + COPY_RUN]) in prompt_runs:
            copied[i:i + COPY_RUN] = [True] * COPY_RUN
    pieces, last, i = [], 0, 0
    while i < len(words):
        j = i
        while j < len(words) and copied[j]:
            j += 1
        if j - i >= ECHO_PASSAGE:  # words[i:j] is one echoed passage
            pieces.append(text[last:words[i][1]] + " ")
            last = words[j - 1][2]
        i = max(j, i + 1)
    pieces.append(text[last:])
    return "".join(pieces), share


def _as_alternatives(text: str, first: str, second: str) -> bool:
    """Both values named, with a joining word or a sentence break between some mention of one
    and a later mention of the other ("A or B", "A. ... B"), not "A, a suburb of B"."""
    spans = {value: [m.span() for m in re.finditer(r"(?<!\w)" + re.escape(value) + r"(?!\w)",
                                                    text, re.IGNORECASE)]
             for value in (first, second)}
    for a, b in ((first, second), (second, first)):
        for _, a_end in spans[a]:
            for b_start, _ in spans[b]:
                if b_start >= a_end and _ALTERNATIVES.search(_normal(text[a_end:b_start])):
                    return True
    return False


def classify(text: str, item: dict[str, Any]) -> dict[str, float]:
    from posttrain.suites.context_only.generate import mentions

    item_type = item["item_type"]
    answers = [str(a) for a in item.get("answers") or []]
    stubborn_values = [str(s) for s in item.get("stubborn") or []]
    text, share = strip_echo(text, item)
    abstained = abstains(text)
    sub: dict[str, float] = {"abstained": float(abstained),
                             "echoed": float(share >= ECHO_SHARE)}
    if item_type == "unanswerable":
        sub["faithful"] = float(abstained)
    elif item_type == "conflicting":
        if len(answers) >= 2:
            both = _as_alternatives(text, answers[0], answers[1]) and all(
                mentions(text, a) for a in answers[2:])
        else:
            both = all(mentions(text, a) for a in answers)
        flagged = any(m in _normal(text) for m in CONFLICT_MARKERS)
        sub["faithful"] = float(both or flagged)
    else:
        stubborn = any(mentions(text, s) for s in stubborn_values)
        gold = any(mentions(text, a) for a in answers)
        sub["faithful"] = float(gold and not stubborn)
        if item_type in ("counterfactual", "multihop"):
            sub["stubborn"] = float(stubborn)
    return sub


class ContextOnlyGrader(Grader):
    type = "context_only"

    def __init__(self, name: str, input: str) -> None:
        super().__init__(name)
        self.input = input

    def components(self) -> list[str]:
        return ["faithful", "stubborn", "abstained", "echoed"]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        try:
            text = render_text(self.input, {"sample": sample, "item": item})
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if item.get("item_type") not in ITEM_TYPES:
            return Score.unscored(f"item_type must be one of {', '.join(ITEM_TYPES)}",
                                  name=self.name)
        if item["item_type"] != "unanswerable" and not item.get("answers"):
            return Score.unscored("item has no `answers`", name=self.name)
        sub = classify(text, item)
        faithful = sub["faithful"] == 1.0
        parts = [f"{item['item_type']}: {'faithful' if faithful else 'not faithful'}"]
        if sub.get("stubborn"):
            parts.append("used the real-world value")
        if sub["abstained"]:
            parts.append("abstained")
        if sub["echoed"]:
            parts.append("echoed the prompt (graded without the copied text)")
        return Score(value=sub["faithful"], passed=faithful, name=self.name, sub_scores=sub,
                     explanation="; ".join(parts))

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input}


@register_grader("context_only")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return ContextOnlyGrader(
        name=require(spec, "name", str, context, default="context_only"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
    )

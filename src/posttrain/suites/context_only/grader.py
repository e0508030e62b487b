"""``context_only``: was the answer faithful to the context, stubborn, or an abstention?

Spec: ``{type: context_only, name, input?: "{{sample.output_text}}"}``. Reads the item's
``item_type``, ``answers`` and ``stubborn`` fields. Matching is whole-word and
case-insensitive.

- counterfactual / multihop / control: faithful = a gold answer appears and no stubborn value
  (the real-world fact) does; ``stubborn`` is reported for counterfactual and multihop.
- unanswerable: faithful = the answer abstains.
- conflicting: faithful = both values appear or the conflict is named.
``abstained`` is reported for every type (on control items it is over-abstention).
"""

from __future__ import annotations

from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import register, require
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


def _normal(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def abstains(text: str) -> bool:
    lowered = _normal(text)
    return any(marker in lowered for marker in ABSTAIN_MARKERS)


def classify(text: str, item: dict[str, Any]) -> dict[str, float]:
    from posttrain.suites.context_only.generate import mentions

    item_type = item["item_type"]
    answers = [str(a) for a in item.get("answers") or []]
    stubborn_values = [str(s) for s in item.get("stubborn") or []]
    abstained = abstains(text)
    sub: dict[str, float] = {"abstained": float(abstained)}
    if item_type == "unanswerable":
        sub["faithful"] = float(abstained)
    elif item_type == "conflicting":
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
        return ["faithful", "stubborn", "abstained"]

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
        return Score(value=sub["faithful"], passed=faithful, name=self.name, sub_scores=sub,
                     explanation="; ".join(parts))

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input}


@register("context_only")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return ContextOnlyGrader(
        name=require(spec, "name", str, context, default="context_only"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
    )

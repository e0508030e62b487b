"""``mrcr``: OpenAI MRCR's grade: 0 without the random prefix, else SequenceMatcher ratio.

Spec fields (all optional): ``input`` (default ``{{sample.output_text}}``), ``reference``
(``{{item.answer}}``), ``prefix`` (``{{item.random_string_to_prepend}}``), ``pass_threshold``
(default 0.95; the official grade defines no pass mark).
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score


def mrcr_grade(response: str, answer: str, prefix: str) -> float:
    """The official grade(): SequenceMatcher with its default autojunk, as the public code."""
    if not response.startswith(prefix):
        return 0.0
    response = response.removeprefix(prefix)
    answer = answer.removeprefix(prefix)
    return float(SequenceMatcher(None, response, answer).ratio())


def mrcr_score(response: str, answer: str, prefix: str, *, name: str = "mrcr",
               threshold: float = 0.95) -> Score:
    if not prefix:
        return Score.unscored("the item has no random_string_to_prepend", name=name)
    has_prefix = response.startswith(prefix)
    value = mrcr_grade(response, answer, prefix)
    why = (f"similarity {value:.3f} to the target reply" if has_prefix
           else f"response does not start with {prefix!r}")
    return Score(value=value, passed=value >= threshold, name=name, explanation=why,
                 sub_scores={"prefix": 1.0 if has_prefix else 0.0, "similarity": value})


class MrcrGrader(Grader):
    type = "mrcr"

    def __init__(self, name: str, input: str, reference: str, prefix: str,
                 pass_threshold: float) -> None:
        super().__init__(name, pass_threshold)
        self.input, self.reference, self.prefix = input, reference, prefix

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = {"sample": sample, "item": item}
        try:
            response = render_text(self.input, context)
            answer = render_text(self.reference, context)
            prefix = render_text(self.prefix, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        return mrcr_score(response, answer, prefix, name=self.name,
                          threshold=self.pass_threshold or 0.95)

    def components(self) -> list[str]:
        return ["prefix", "similarity"]

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference, "prefix": self.prefix,
                "pass_threshold": self.pass_threshold}


@register_grader("mrcr")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return MrcrGrader(
        name=require(spec, "name", str, context, default="mrcr"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        reference=require(spec, "reference", str, context, default="{{item.answer}}"),
        prefix=require(spec, "prefix", str, context,
                       default="{{item.random_string_to_prepend}}"),
        pass_threshold=float(require(spec, "pass_threshold", (int, float), context,
                                     default=0.95)),
    )

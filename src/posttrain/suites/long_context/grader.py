"""``long_context``: grades a long_context suite row by its ``task``.

``mrcr`` rows use the official MRCR grade, ``graphwalks`` rows strict/flexible F1, ``niah`` rows
RULER's ``string_match_all``. One grader for the whole suite, so one eval covers all three tasks.
Spec field: ``input`` (default ``{{sample.output_text}}``).
"""

from __future__ import annotations

from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.graphwalks import graphwalks_score
from posttrain.graders.mrcr import mrcr_score
from posttrain.graders.registry import require
from posttrain.graders.string_match import string_match_score
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score


class LongContextGrader(Grader):
    type = "long_context"

    def __init__(self, name: str, input: str) -> None:
        super().__init__(name)
        self.input = input

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        try:
            output = render_text(self.input, {"sample": sample, "item": item})
        except TemplateError as exc:
            return template_failure(exc, self, item)
        task = item.get("task")
        if task == "mrcr":
            return mrcr_score(output, str(item.get("answer", "")),
                              str(item.get("random_string_to_prepend") or ""), name=self.name)
        if task == "graphwalks":
            truth = item.get("answer_nodes")
            if not isinstance(truth, list):
                return Score.unscored("the row has no answer_nodes list", name=self.name)
            return graphwalks_score(output, truth, name=self.name)
        if task == "niah":
            return string_match_score(output, item.get("outputs"), name=self.name)
        return Score.unscored(f"unknown long_context task {task!r}", name=self.name)

    def components(self) -> list[str]:
        return ["prefix", "similarity", "strict_f1", "flexible_f1", "parsed"]

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input}


@register_grader("long_context")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return LongContextGrader(
        name=require(spec, "name", str, context, default="long_context"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
    )

"""``graphwalks``: F1 between the node set in the answer's ``Final Answer: [...]`` and the truth.

Scoring follows the recommended reading of the public grader: no parseable final answer gives 0,
both sets empty gives 1, exactly one empty gives 0, otherwise F1. ``strict`` reads only the last
line of the response (as the public README); ``flexible`` takes the last ``Final Answer: [...]``
anywhere (as lm-eval). The value is the strict F1; both are sub-scores.
Spec fields: ``input`` (default ``{{sample.output_text}}``), ``reference`` (``{{item.answer_nodes}}``).
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import register, require
from posttrain.template import TemplateError, render
from posttrain.types import Score

_FINAL = re.compile(r"Final Answer:\s*\[(.*?)\]")


def _nodes(inner: str) -> set[str]:
    return {part.strip().strip("'\"`").strip() for part in inner.split(",")} - {""}


def parse_strict(response: str) -> set[str] | None:
    """Nodes from the last line (trailing whitespace ignored); None if it has no final answer."""
    last = response.rstrip().split("\n")[-1]
    match = _FINAL.search(last)
    return _nodes(match.group(1)) if match else None


def parse_flexible(response: str) -> set[str] | None:
    matches = _FINAL.findall(response)
    return _nodes(matches[-1]) if matches else None


def f1(predicted: set[str] | None, truth: set[str]) -> float:
    if predicted is None:
        return 0.0
    if not predicted and not truth:
        return 1.0
    if not predicted or not truth:
        return 0.0
    overlap = len(predicted & truth)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(truth)
    return 2 * precision * recall / (precision + recall)


def graphwalks_score(response: str, truth: list[str], *, name: str = "graphwalks") -> Score:
    truth_set = {str(node) for node in truth}
    strict = parse_strict(response)
    flexible = parse_flexible(response)
    strict_f1, flexible_f1 = f1(strict, truth_set), f1(flexible, truth_set)
    if strict is None:
        why = "no 'Final Answer: [...]' on the last line"
    else:
        why = f"F1 {strict_f1:.3f}: {len(strict & truth_set)} of {len(truth_set)} nodes found, " \
              f"{len(strict - truth_set)} extra"
    return Score(value=strict_f1, passed=strict_f1 >= 1.0, name=name, explanation=why,
                 sub_scores={"strict_f1": strict_f1, "flexible_f1": flexible_f1,
                             "parsed": 0.0 if strict is None else 1.0})


class GraphwalksGrader(Grader):
    type = "graphwalks"

    def __init__(self, name: str, input: str, reference: str) -> None:
        super().__init__(name)
        self.input, self.reference = input, reference

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = {"sample": sample, "item": item}
        try:
            response = render(self.input, context, keep_type=False)
            truth = render(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if not isinstance(truth, list):
            return Score.unscored("the reference is not a list of nodes", name=self.name)
        return graphwalks_score(str(response), truth, name=self.name)

    def components(self) -> list[str]:
        return ["strict_f1", "flexible_f1", "parsed"]

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference}


@register("graphwalks")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return GraphwalksGrader(
        name=require(spec, "name", str, context, default="graphwalks"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        reference=require(spec, "reference", str, context, default="{{item.answer_nodes}}"),
    )

r"""``graphwalks``: F1 between the node set in the answer's ``Final Answer: [...]`` and the truth.

The value (``strict_f1``) is the openai/graphwalks dataset card's grader: ``get_list`` reads the
very last line (``response.split("\n")[-1]``, so a trailing newline is a parse failure), which
must contain ``Final Answer:`` and match ``Final Answer: ?\[.*\]`` (one optional space, greedy
to the last ``]``); the nodes are the comma-separated items, whitespace-stripped, empties dropped
(quotes are part of a node). Then ``n_overlap = |sampled & truth|``, ``recall = n_overlap /
n_golden``, ``precision = n_overlap / n_sampled``, ``f1 = 2 * recall * precision / (recall +
precision)``. Two defects of the card's code are corrected, as every public port does: the list
is the bracket contents (the card's ``group(0).strip("[]")`` keeps ``Final Answer: [`` on the
first node), and no overlap scores 0 unless both sets are empty (its ``else 1`` gives a disjoint
answer full marks); a parse failure scores 0. Checked differentially in
``tests/test_metric_references.py``.

``flexible_f1`` (a sub-score) is lenient, like lm-eval's flexible filter: the last ``Final
Answer: [...]`` anywhere, any whitespace after the colon, quotes around nodes ignored.
Spec fields: ``input`` (default ``{{sample.output_text}}``), ``reference`` (``{{item.answer_nodes}}``).
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render
from posttrain.types import Score

_CARD = re.compile(r"Final Answer: ?\[(.*)\]")
_FINAL = re.compile(r"Final Answer:\s*\[(.*?)\]")


def parse_strict(response: str) -> set[str] | None:
    """The card's ``get_list``: nodes from the very last line; None on a parse failure."""
    last = response.split("\n")[-1]
    match = _CARD.search(last)
    if match is None:
        return None
    return {item.strip() for item in match.group(1).split(",") if item.strip()}


def parse_flexible(response: str) -> set[str] | None:
    """The last ``Final Answer: [...]`` anywhere; quotes and backticks around nodes ignored."""
    matches = _FINAL.findall(response)
    if not matches:
        return None
    return {part.strip().strip("'\"`").strip() for part in matches[-1].split(",")} - {""}


def f1(predicted: set[str] | None, truth: set[str]) -> float:
    """The card's set F1; None (no parseable answer) and a disjoint answer score 0, two empty
    sets 1."""
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
        why = "no 'Final Answer: [...]' on the very last line"
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


@register_grader("graphwalks")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return GraphwalksGrader(
        name=require(spec, "name", str, context, default="graphwalks"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        reference=require(spec, "reference", str, context, default="{{item.answer_nodes}}"),
    )

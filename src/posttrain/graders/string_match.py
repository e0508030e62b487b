r"""``string_match_all`` / ``string_match_part``: RULER's metrics over a list of references.

``all``: the share of references found in the output as case-insensitive substrings;
``part``: 1 if any reference is found. As NVIDIA/RULER ``scripts/eval``: the prediction first
goes through ``postprocess_pred`` (stripped, control characters ``\x00-\x1f`` turned into
newlines, stripped again), then ``r.lower() in pred.lower()`` per reference
(``synthetic/constants.py``), per sample as a fraction (RULER reports the mean x 100). Checked
differentially in ``tests/test_metric_references.py``. Spec fields: ``input`` (default
``{{sample.output_text}}``), ``reference`` (``{{item.outputs}}``; a list, or one string).
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render
from posttrain.types import Score

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_pred(output: str) -> str:
    """RULER's ``postprocess_pred``: strip, control characters to newlines, strip."""
    return _CONTROL.sub("\n", output.strip()).strip()


def string_match_all(output: str, references: list[str]) -> float:
    lowered = postprocess_pred(output).lower()
    return sum(ref.lower() in lowered for ref in references) / len(references)


def string_match_part(output: str, references: list[str]) -> float:
    lowered = postprocess_pred(output).lower()
    return 1.0 if any(ref.lower() in lowered for ref in references) else 0.0


_METRICS = {"string_match_all": string_match_all, "string_match_part": string_match_part}


def string_match_score(output: str, references: Any, *, mode: str = "string_match_all",
                       name: str = "string_match_all") -> Score:
    if isinstance(references, str):
        references = [references]
    if not isinstance(references, list) or not references:
        return Score.unscored("no reference strings to look for", name=name)
    refs = [str(ref) for ref in references]
    value = _METRICS[mode](output, refs)
    lowered = postprocess_pred(output).lower()
    found = [ref for ref in refs if ref.lower() in lowered]
    return Score(value=value, passed=value >= 1.0, name=name,
                 explanation=f"found {len(found)} of {len(refs)}: {', '.join(found) or '-'}")


class StringMatchGrader(Grader):
    deterministic = True

    def __init__(self, type_name: str, name: str, input: str, reference: str) -> None:
        super().__init__(name)
        self.type_name, self.input, self.reference = type_name, input, reference

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = {"sample": sample, "item": item}
        try:
            output = render(self.input, context, keep_type=False)
            references = render(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        return string_match_score(str(output), references, mode=self.type_name, name=self.name)

    def spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "name": self.name, "input": self.input,
                "reference": self.reference}


def _builder(type_name: str):
    def build(spec: dict[str, Any], context: GraderContext) -> Grader:
        return StringMatchGrader(
            type_name,
            name=require(spec, "name", str, context, default=type_name),
            input=require(spec, "input", str, context, default="{{sample.output_text}}"),
            reference=require(spec, "reference", str, context, default="{{item.outputs}}"),
        )

    return build


register_grader("string_match_all")(_builder("string_match_all"))
register_grader("string_match_part")(_builder("string_match_part"))

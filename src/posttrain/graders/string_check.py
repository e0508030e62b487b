"""``string_check``: eq, ne, like (substring), ilike (case-insensitive substring)."""

from __future__ import annotations

from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import register, require
from posttrain.template import TemplateError, render_text
from posttrain.types import Score

_OPERATIONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "like": lambda a, b: b in a,
    "ilike": lambda a, b: b.lower() in a.lower(),
}


class StringCheckGrader(Grader):
    type = "string_check"

    def __init__(self, name: str, input: str, reference: str, operation: str) -> None:
        super().__init__(name)
        self.input = input
        self.reference = reference
        self.operation = operation
        self._check = _OPERATIONS[operation]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = {"sample": sample, "item": item}
        try:
            text = render_text(self.input, context)
            reference = render_text(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        ok = self._check(text, reference)
        return Score(value=1.0 if ok else 0.0, passed=ok, name=self.name,
                     explanation=f"{self.operation}: {'match' if ok else 'no match'}")

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference, "operation": self.operation}


@register("string_check")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    operation = require(spec, "operation", str, context)
    if operation not in _OPERATIONS:
        raise UserError(f"must be one of {', '.join(_OPERATIONS)}; got {operation!r}",
                        file=context.source, field="operation")
    return StringCheckGrader(
        name=require(spec, "name", str, context, default="string_check"),
        input=require(spec, "input", str, context),
        reference=require(spec, "reference", str, context),
        operation=operation,
    )

"""``structured_output``: parse + JSON-schema validity + field-level correctness.

Spec: ``{type: structured_output, name, input?: "{{sample.output_text}}",
schema?: "{{item.schema}}", expected?: "{{item.expected}}"}``. Sub-scores ``parses``, ``valid``
(jsonschema, formats checked) and ``fields_correct`` (fraction of expected leaf values found;
arrays compared without regard to order; extra array elements count as misses). Value = mean
of ``valid`` and ``fields_correct`` (0 when the output does not parse); passed = all three.
"""

from __future__ import annotations

import math
from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Score, parse_json_output

_MISSING = object()


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(actual, str):
        return " ".join(expected.split()).casefold() == " ".join(actual.split()).casefold()
    return expected == actual


def compare(expected: Any, actual: Any) -> tuple[int, int]:
    """(matched leaves, total leaves) of ``expected`` found in ``actual``."""
    if isinstance(expected, dict):
        matched = total = 0
        for key, value in expected.items():
            other = actual.get(key, _MISSING) if isinstance(actual, dict) else _MISSING
            m, t = compare(value, other)
            matched, total = matched + m, total + t
        return matched, total or 1
    if isinstance(expected, list):
        pool = list(actual) if isinstance(actual, list) else []
        matched = total = 0
        for value in expected:
            best, best_index = (0, _leaves(value)), -1
            for index, candidate in enumerate(pool):
                score = compare(value, candidate)
                if score[0] > best[0]:
                    best, best_index = score, index
            if best_index >= 0:
                pool.pop(best_index)
            elif pool:
                pool.pop(0)  # a wrong element pairs with a missing one: counted once
            matched, total = matched + best[0], total + best[1]
        unit = _leaves(expected[0]) if expected else 1
        total += len(pool) * unit  # extra elements are misses
        return matched, total or 1
    if actual is _MISSING:
        return 0, 1
    return int(_same(expected, actual)), 1


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in errors]


class StructuredOutputGrader(Grader):
    type = "structured_output"

    def __init__(self, name: str, input: str, schema: Any, expected: Any) -> None:
        super().__init__(name)
        self.input, self.schema, self.expected = input, schema, expected

    def components(self) -> list[str]:
        return ["parses", "valid", "fields_correct"]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        import jsonschema

        context = {"sample": sample, "item": item}
        try:
            text = render_text(self.input, context)
            schema = render(self.schema, context)
            expected = render(self.expected, context) if self.expected is not None else None
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if not isinstance(schema, dict):
            return Score.unscored("the schema is not a JSON object", name=self.name)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return Score.unscored(f"invalid JSON schema: {exc.message}", name=self.name)
        value = parse_json_output(text)
        if value is None:
            sub = {"parses": 0.0, "valid": 0.0, "fields_correct": 0.0}
            return Score(value=0.0, passed=False, name=self.name, sub_scores=sub,
                         explanation="output is not JSON")
        errors = schema_errors(value, schema)
        valid = not errors
        if expected is None:
            fields = 1.0 if valid else 0.0
        else:
            matched, total = compare(expected, value)
            fields = matched / total
        sub = {"parses": 1.0, "valid": float(valid), "fields_correct": fields}
        notes = [f"schema: {'; '.join(errors[:3])}" if errors else "schema: valid",
                 f"fields correct: {fields:.2f}"]
        return Score(value=(float(valid) + fields) / 2, passed=valid and fields == 1.0,
                     name=self.name, sub_scores=sub, explanation="; ".join(notes))

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input,
                "schema": self.schema, "expected": self.expected}


@register_grader("structured_output")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    schema = spec.get("schema", "{{item.schema}}")
    if not isinstance(schema, (str, dict)):
        from posttrain.errors import UserError

        raise UserError("must be a JSON schema object or a {{item.*}} template",
                        file=context.source, field="schema")
    return StructuredOutputGrader(
        name=require(spec, "name", str, context, default="structured_output"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        schema=schema,
        expected=spec.get("expected", "{{item.expected}}"),
    )

"""``tool_call``: did the model call the expected function with the expected arguments?

Spec: ``name`` (expected function name, templated), ``arguments`` (a dict, or a template such as
``{{item.expected_args}}``; a JSON string is parsed), ``index`` (which call, default: the first
call with the expected name, else the first call), ``normalize_strings`` (default false:
case-fold and collapse whitespace before comparing strings), ``numbers_tolerance`` (default 0),
``ignore_extra_arguments`` (default false), ``weights`` ``{name, arguments}`` (default 0.5/0.5).

Arguments are compared structurally: dict keys in any order, lists in order, 1 == 1.0. The
score is ``w_name * name_ok + w_args * share_of_expected_arguments_right`` (an extra, unexpected
argument counts as a wrong one unless ignored); sub-scores ``name`` and ``arguments``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import ctx, name_of, threshold
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Score


def _norm(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip().casefold()


def same(a: Any, b: Any, *, normalize: bool = False, tolerance: float = 0.0) -> bool:
    """Structural equality: dicts order-insensitive, lists ordered, numbers by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tolerance
    if isinstance(a, str) and isinstance(b, str):
        return _norm(a) == _norm(b) if normalize else a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], normalize=normalize,
                                                 tolerance=tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, normalize=normalize, tolerance=tolerance)
                                        for x, y in zip(a, b, strict=True))
    return a == b


def call_parts(call: Any) -> tuple[str | None, Any]:
    """(function name, arguments as a value) from a chat-completions or Responses tool call."""
    if not isinstance(call, dict):
        return None, None
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    arguments = function.get("arguments", function.get("input"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # left as text: compared as text, and fails against a dict
    return name, arguments


class ToolCallGrader(Grader):
    type = "tool_call"

    def __init__(self, name: str, function: str, arguments: Any, index: int | None,
                 normalize_strings: bool, numbers_tolerance: float, ignore_extra: bool,
                 weights: tuple[float, float], pass_threshold: float | None) -> None:
        super().__init__(name, pass_threshold)
        self.function = function
        self.arguments = arguments
        self.index = index
        self.normalize_strings = normalize_strings
        self.numbers_tolerance = numbers_tolerance
        self.ignore_extra = ignore_extra
        self.weights = weights

    def components(self) -> list[str]:
        return ["name", "arguments"]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = ctx(sample, item)
        try:
            expected_name = render_text(self.function, context)
            expected = render(self.arguments, context) if self.arguments is not None else None
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if isinstance(expected, str):
            try:
                expected = json.loads(expected)
            except ValueError:
                return Score.unscored(f"expected arguments are not JSON: {expected[:100]!r}",
                                      name=self.name)
        calls = sample.get("output_tools") or []
        if not calls:
            return Score(0.0, passed=False, name=self.name, sub_scores={"name": 0.0,
                         "arguments": 0.0}, explanation="no tool call")
        if self.index is not None:
            if not -len(calls) <= self.index < len(calls):
                return Score(0.0, passed=False, name=self.name,
                             sub_scores={"name": 0.0, "arguments": 0.0},
                             explanation=f"no tool call at index {self.index}")
            call = calls[self.index]
        else:
            call = next((c for c in calls if call_parts(c)[0] == expected_name), calls[0])
        got_name, got = call_parts(call)
        name_ok = 1.0 if got_name == expected_name else 0.0
        args_value, why = self._arguments(expected, got)
        w_name, w_args = self.weights
        value = (w_name * name_ok + w_args * args_value) / (w_name + w_args)
        passed = self.passed(value)
        return Score(value, passed=passed, name=self.name,
                     sub_scores={"name": name_ok, "arguments": args_value},
                     explanation=f"called {got_name!r} (expected {expected_name!r}); {why}")

    def _arguments(self, expected: Any, got: Any) -> tuple[float, str]:
        if expected is None:
            return 1.0, "arguments not checked"
        eq = {"normalize": self.normalize_strings, "tolerance": self.numbers_tolerance}
        if not isinstance(expected, dict) or not isinstance(got, dict):
            ok = same(expected, got, **eq)
            return (1.0 if ok else 0.0), "arguments " + ("match" if ok else "differ")
        wrong = [k for k in expected if k not in got or not same(expected[k], got[k], **eq)]
        extra = [] if self.ignore_extra else [k for k in got if k not in expected]
        total = len(expected) + len(extra)
        if total == 0:
            return 1.0, "no arguments expected"
        value = (len(expected) - len(wrong)) / total
        parts = []
        if wrong:
            parts.append(f"wrong or missing: {', '.join(wrong)}")
        if extra:
            parts.append(f"unexpected: {', '.join(extra)}")
        return value, "; ".join(parts) or "arguments match"

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "function": self.function,
                "arguments": self.arguments, "index": self.index,
                "normalize_strings": self.normalize_strings,
                "numbers_tolerance": self.numbers_tolerance,
                "ignore_extra_arguments": self.ignore_extra,
                "weights": {"name": self.weights[0], "arguments": self.weights[1]},
                "pass_threshold": self.pass_threshold}


@register_grader("tool_call")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    weights = require(spec, "weights", dict, context, default={"name": 0.5, "arguments": 0.5})
    w = (weights.get("name", 0.5), weights.get("arguments", 0.5))
    if not all(isinstance(x, (int, float)) and x >= 0 for x in w) or sum(w) <= 0:
        raise UserError("weights must be non-negative numbers, not both 0", file=context.source,
                        field="weights")
    function = require(spec, "function", str, context, default=None)
    if function is None:  # `expected: {name, arguments}` is accepted too
        expected = require(spec, "expected", dict, context, default=None)
        if expected is None or not isinstance(expected.get("name"), str):
            raise UserError("required field is missing (the expected function name)",
                            file=context.source, field="function")
        function, arguments = expected["name"], expected.get("arguments")
    else:
        arguments = spec.get("arguments")
    if arguments is not None and not isinstance(arguments, (dict, str, list)):
        raise UserError("must be an object or a template", file=context.source,
                        field="arguments")
    return ToolCallGrader(
        name=name_of(spec, context, "tool_call"), function=function, arguments=arguments,
        index=require(spec, "index", int, context, default=None),
        normalize_strings=require(spec, "normalize_strings", bool, context, default=False),
        numbers_tolerance=float(require(spec, "numbers_tolerance", (int, float), context,
                                        default=0.0)),
        ignore_extra=require(spec, "ignore_extra_arguments", bool, context, default=False),
        weights=(float(w[0]), float(w[1])), pass_threshold=threshold(spec, context),
    )

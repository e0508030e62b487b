"""Graders written in Python: ``@grader`` on ``f(sample, item)``, and ``{type: function}``.

The function returns a float, a bool, a ``Score``, or ``(float, {sub_score: value})``; it may be
``async``. It runs in-process (it is the user's own code, unlike the sandboxed ``python`` type).
An exception is ``Score.error`` with the traceback. From YAML/JSON:
``{"type": "function", "ref": "package.module:attr", "name": ..., "pass_threshold": ...}``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import traceback
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import name_of, threshold
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.types import Score


class FunctionGrader(Grader):
    type = "function"

    def __init__(self, fn: Callable[..., Any], name: str | None = None,
                 pass_threshold: float | None = None, ref: str | None = None) -> None:
        super().__init__(name or fn.__name__, pass_threshold)
        self.fn = fn
        self.ref = ref or f"{fn.__module__}:{fn.__qualname__}"
        self._async = inspect.iscoroutinefunction(fn)

    @property
    def is_async(self) -> bool:  # type: ignore[override]
        return self._async

    def __call__(self, sample: dict[str, Any], item: dict[str, Any]) -> Any:
        return self.fn(sample, item)

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        if self._async:
            return asyncio.run(self.agrade(sample, item))
        try:
            result = self.fn(sample, item)
        except Exception:  # noqa: BLE001 - the user's grader failing is an error grade
            return Score.error(traceback.format_exc(), name=self.name)
        return self.to_score(result)

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        if not self._async:
            return self.grade(sample, item)
        try:
            result = await self.fn(sample, item)
        except Exception:  # noqa: BLE001
            return Score.error(traceback.format_exc(), name=self.name)
        return self.to_score(result)

    def to_score(self, result: Any) -> Score:
        sub: dict[str, float] = {}
        if isinstance(result, Score):
            if not result.name:
                result.name = self.name
            if result.status == "scored" and result.passed is None and result.value is not None \
                    and self.pass_threshold is not None:
                result.passed = result.value >= self.pass_threshold
            return result
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
            result, sub = result
            bad = {k: v for k, v in sub.items() if not _finite(v)}
            if bad:
                return Score.error(f"sub-scores must be numbers: {bad!r:.200}", name=self.name)
            sub = {str(k): float(v) for k, v in sub.items()}
        if isinstance(result, bool):
            return Score(1.0 if result else 0.0, passed=result, name=self.name, sub_scores=sub)
        if not _finite(result):
            return Score.error(f"{self.ref} returned {type(result).__name__} {result!r:.200}; "
                               "expected a number, a bool, a Score or (number, dict)",
                               name=self.name)
        value = float(result)
        passed = value >= self.pass_threshold if self.pass_threshold is not None else None
        return Score(value, passed=passed, name=self.name, sub_scores=sub)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "name": self.name, "ref": self.ref}
        if self.pass_threshold is not None:
            spec["pass_threshold"] = self.pass_threshold
        return spec


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(float(value))


def grader(fn: Callable[..., Any] | None = None, *, name: str | None = None,
           pass_threshold: float | None = None) -> Any:
    """Decorator: ``@grader`` or ``@grader(name=..., pass_threshold=...)`` makes a Grader."""
    def wrap(function: Callable[..., Any]) -> FunctionGrader:
        return FunctionGrader(function, name=name, pass_threshold=pass_threshold)

    return wrap(fn) if fn is not None else wrap


@register_grader("function")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    ref = require(spec, "ref", str, context)
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise UserError("must be 'package.module:attribute'", file=context.source, field="ref")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load {ref!r}: {exc}", file=context.source, field="ref") from None
    if isinstance(target, FunctionGrader):
        fn, default_name, default_threshold = target.fn, target.name, target.pass_threshold
    elif callable(target):
        fn, default_name, default_threshold = target, attr, None
    else:
        raise UserError(f"{ref!r} is not callable", file=context.source, field="ref")
    pass_threshold = threshold(spec, context)
    return FunctionGrader(fn, name=name_of(spec, context, default_name),
                          pass_threshold=default_threshold if pass_threshold is None
                          else pass_threshold, ref=ref)

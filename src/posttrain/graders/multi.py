"""``multi``: named sub-graders combined by a ``calculate_output`` formula.

Each sub-grader's value lands in ``sub_scores`` (keyed by its name in ``graders``), so reports
can break the score down. If any sub-grader is unscored or errors, the multi is too, with the
reason (a formula over a missing value would be a guess). Nested ``multi`` is accepted here
(OpenAI refuses it); sub-scores of a nested multi are flattened as ``outer.inner``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from posttrain.errors import UserError
from posttrain.graders import formula
from posttrain.graders._common import name_of, threshold
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import build_grader, require
from posttrain.plugins import register_grader
from posttrain.types import Score


class MultiGrader(Grader):
    type = "multi"

    def __init__(self, name: str, graders: dict[str, Grader], calculate_output: str,
                 pass_threshold: float | None = None) -> None:
        super().__init__(name, pass_threshold)
        self.graders = graders
        self.calculate_output = calculate_output
        self._formula = formula.parse(calculate_output)

    @property
    def is_async(self) -> bool:  # type: ignore[override]
        return any(grader.is_async for grader in self.graders.values())

    @property
    def blocking(self) -> bool:
        """A sub-grader waits on the sandbox: the runner grades this one in a thread too."""
        return any(getattr(grader, "blocking", False) for grader in self.graders.values())

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        if self.is_async:
            return asyncio.run(self.agrade(sample, item))
        return self._combine({key: grader.grade(sample, item)
                              for key, grader in self.graders.items()})

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        keys = list(self.graders)
        scores = await asyncio.gather(*(self._one(self.graders[key], sample, item)
                                        for key in keys))
        return self._combine(dict(zip(keys, scores, strict=True)))

    @staticmethod
    async def _one(grader: Grader, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        if grader.is_async:
            return await grader.agrade(sample, item)
        if getattr(grader, "blocking", False):  # off the event loop, beside the judges
            return await asyncio.to_thread(grader.grade, sample, item)
        return grader.grade(sample, item)

    def _combine(self, scores: dict[str, Score]) -> Score:
        combined = self._combine_values(scores)
        combined.confinement = next((s.confinement for s in scores.values() if s.confinement),
                                    None)
        combined.cost_usd = sum(s.cost_usd for s in scores.values())  # its judges' calls
        combined.requests = sum(s.requests for s in scores.values())
        combined.retries = sum(s.retries for s in scores.values())
        return combined

    def children(self) -> list[Grader]:
        return list(self.graders.values())

    def _combine_values(self, scores: dict[str, Score]) -> Score:
        sub_scores: dict[str, float] = {}
        for key, score in scores.items():
            if score.value is not None:
                sub_scores[key] = score.value
            for inner, value in score.sub_scores.items():
                sub_scores[f"{key}.{inner}"] = value
        for status in ("error", "unscored"):
            bad = {key: s for key, s in scores.items() if s.status == status}
            if bad:
                reasons = "; ".join(f"{key}: {s.explanation}" for key, s in bad.items())
                score = Score(value=None, status=status, name=self.name, sub_scores=sub_scores,
                              explanation=f"sub-grader {status}: {reasons}")
                return score
        try:
            value = formula.evaluate(self._formula, {k: s.value for k, s in scores.items()})  # type: ignore[misc]
        except formula.FormulaError as exc:
            return Score(value=None, status="error", name=self.name, sub_scores=sub_scores,
                         explanation=f"calculate_output: {exc}")
        passed = value >= self.pass_threshold if self.pass_threshold is not None else None
        parts = ", ".join(f"{key}={v:.4g}" for key, v in sub_scores.items())
        return Score(value=value, passed=passed, name=self.name, sub_scores=sub_scores,
                     explanation=f"{self.calculate_output} with {parts} = {value:.4g}")

    def components(self) -> list[str]:
        names: list[str] = []
        for key, grader in self.graders.items():
            names.append(key)
            names.extend(f"{key}.{inner}" for inner in grader.components())
        return names

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "name": self.name,
                                "graders": {k: g.spec() for k, g in self.graders.items()},
                                "calculate_output": self.calculate_output}
        if self.pass_threshold is not None:
            spec["pass_threshold"] = self.pass_threshold
        return spec


@register_grader("multi")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    raw = require(spec, "graders", (dict, list), context)
    if isinstance(raw, list):  # a list of named graders is accepted too
        items = []
        for index, sub in enumerate(raw):
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise UserError("each sub-grader in a list needs a `name`", file=context.source,
                                field=f"graders[{index}].name")
            items.append((sub["name"], sub))
    else:
        items = list(raw.items())
    if not items:
        raise UserError("needs at least one sub-grader", file=context.source, field="graders")
    graders: dict[str, Grader] = {}
    for key, sub in items:
        if not key.isidentifier():
            raise UserError(f"sub-grader key {key!r} must be a name usable in the formula "
                            "(letters, digits, _)", file=context.source, field=f"graders.{key}")
        try:
            graders[key] = build_grader(sub, context)
        except UserError as exc:
            raise exc.at(field_prefix=f"graders.{key}") from None
    text = require(spec, "calculate_output", str, context)
    try:
        tree = formula.parse(text)
    except formula.FormulaError as exc:
        raise UserError(str(exc), file=context.source, field="calculate_output") from None
    unknown = formula.names(tree) - set(graders)
    if unknown:
        raise UserError(f"unknown name(s) {', '.join(sorted(unknown))}; sub-graders are "
                        f"{', '.join(graders)}", file=context.source, field="calculate_output")
    return MultiGrader(name_of(spec, context, "multi"), graders, text, threshold(spec, context))

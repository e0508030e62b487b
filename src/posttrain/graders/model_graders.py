"""``score_model`` and ``label_model``: a judge model grades the sample.

The judge is any model spec, resolved through ``GraderContext.model_factory``. It is asked for
structured output (``{steps, result}`` / ``{steps, label}``) and its reply is parsed robustly
(JSON, a JSON object inside prose or a code fence, a bare number / label, and a label stated as
a sentence's verdict, "The answer is incorrect.", as small local judges reply). **We differ from
OpenAI on purpose:** a reply that cannot be parsed, or a non-numeric result, is
``Score.unscored(reason)``, not 0, so judge failures never pass for wrong answers.

``score_model``: the result must lie in ``range`` (default [0, 1]) and is normalised into the
score's value in [0, 1]; the raw result stays in the explanation; ``pass_threshold`` is compared
with the result in ``range`` units, as in OpenAI's format. **We differ from OpenAI** here too: a
result outside ``range`` (a judge answering on another scale) is unscored with the reason, not
truncated into the range, so a 7 on a [0, 1] judge never passes for a perfect score.

Extensions: ``models: [spec, ...]`` (several judges; ``aggregate``: mean / median for scores,
majority for labels; each judge's value is a sub-score), and ``position_swap: {first, second,
swap_labels}`` for pairwise judging: the input templates see ``{{pair.first}}`` and
``{{pair.second}}``; the judge runs twice with the two swapped; a score is read as "how good is
the first" and averaged as ``(r1 + (lo + hi - r2)) / 2``; labels from the swapped run are mapped
through ``swap_labels`` and must agree, otherwise the grade is unscored (position bias).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import ctx, is_number, name_of, threshold
from posttrain.graders.base import Grader, GraderContext, call_model, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.reasoning import split_reasoning
from posttrain.template import TemplateError, render, render_text
from posttrain.types import ChatRequest, Score

_ROLES = ("system", "developer", "user", "assistant")
_SAMPLING = {"seed": "seed", "top_p": "top_p", "temperature": "temperature",
             "max_completions_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
             "max_tokens": "max_tokens", "reasoning_effort": "reasoning_effort"}
_STEPS_SCHEMA = {"type": "array", "items": {
    "type": "object", "additionalProperties": False, "required": ["description", "conclusion"],
    "properties": {"description": {"type": "string"}, "conclusion": {"type": "string"}}}}


def score_response_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "score", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["steps", "result"],
        "properties": {"steps": _STEPS_SCHEMA, "result": {"type": "number"}}}}}


def label_response_format(labels: list[str]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["steps", "label"],
        "properties": {"steps": _STEPS_SCHEMA, "label": {"type": "string", "enum": labels}}}}}


# ---- parsing --------------------------------------------------------------------------------
def json_objects(text: str) -> list[Any]:
    """The top-level JSON objects in ``text``, in order (nested objects are not listed apart)."""
    found: list[Any] = []
    decoder = json.JSONDecoder()
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        position = text.find("{", end)
    return found


def _final_answer(text: str) -> str:
    """The judge's answer without its reasoning (``<think>`` blocks and the like)."""
    return split_reasoning(text)[1]


def parse_score(text: str) -> tuple[float | None, str]:
    """(result, "") or (None, why not).

    The verdict is the *last* JSON object with a ``result`` (or ``score``, ``grade``,
    ``rating``) in the judge's final answer: reasoning blocks are removed first, and a draft
    verdict written before the final one never wins.
    """
    if not text.strip():
        return None, "the judge's reply is empty"
    text = _final_answer(text)
    if not text.strip():
        return None, "the judge's reply has no answer after its reasoning"
    for obj in reversed(json_objects(text)):
        for key in ("result", "score", "grade", "rating"):
            if key in obj:
                value = obj[key]
                if isinstance(value, str):
                    try:
                        value = float(value.strip())
                    except ValueError:
                        return None, f"non-numeric {key}: {value!r}"
                if is_number(value):
                    return float(value), ""
                return None, f"non-numeric {key}: {value!r}"
    bare = text.strip().strip("*`'\". ")
    try:
        value = float(bare)
        if math.isfinite(value):
            return value, ""
    except ValueError:
        pass
    return None, f"cannot parse a numeric result from the judge's reply: {text[:200]!r}"


def parse_label(text: str, labels: list[str]) -> tuple[str | None, str]:
    """(label, "") or (None, why not); the last verdict of the final answer, as ``parse_score``."""
    if not text.strip():
        return None, "the judge's reply is empty"
    text = _final_answer(text)
    if not text.strip():
        return None, "the judge's reply has no answer after its reasoning"
    by_fold = {label.casefold(): label for label in labels}
    for obj in reversed(json_objects(text)):
        for key in ("label", "result", "answer"):
            if key in obj:
                value = obj[key]
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = f"{value:g}"  # {"result": 1} names the label "1"
                if isinstance(value, str) and value.strip().casefold() in by_fold:
                    return by_fold[value.strip().casefold()], ""
                return None, f"{key} {value!r} is not one of {labels}"
    bare = text.strip().strip("*`'\". ").casefold()
    if bare in by_fold:
        return by_fold[bare], ""
    stated = stated_labels(text, labels)
    if len(stated) == 1:
        return stated[0], ""
    if stated:
        return None, (f"the judge's reply states several labels ({', '.join(stated)}): "
                      f"{text[:200]!r}")
    return None, f"cannot parse a label from the judge's reply: {text[:200]!r}"


_COPULA = r"(?:\b(?:is|are|was|were|be)\s+(?:actually\s+|clearly\s+|definitely\s+|indeed\s+)?" \
          r"|\b(?:label|verdict|grade|rating)\s*(?:is\s*)?[:=]?\s*)"
_CLAUSE_END = r"(?=\s*(?:$|[.!,;:\n]|\s(?:because|since|as|and|but)\b))"


def stated_labels(text: str, labels: list[str]) -> list[str]:
    """The labels a prose reply states as its verdict, in order, without repeats.

    For judges that answer in a sentence instead of JSON (small local models without
    constrained decoding: "The answer to grade is incorrect."): a label counts only as the
    whole predicate of "is/are/was LABEL" or "label: LABEL", ending its clause, so "the
    correct answer is Canberra", "is not correct" and "is correct or incorrect?" state nothing
    here. Labels without a letter (numeric labels) are never read from prose.
    """
    found: list[tuple[int, str]] = []
    for label in labels:
        if not any(ch.isalpha() for ch in label):
            continue
        pattern = (_COPULA + r"[\"'*`]*(" + re.escape(label) + r")[\"'*`]*" + _CLAUSE_END)
        found += [(m.start(1), label) for m in re.finditer(pattern, text, re.IGNORECASE)]
    return list(dict.fromkeys(label for _, label in sorted(found)))


# ---- messages -------------------------------------------------------------------------------
def _content(content: Any, context: dict[str, Any]) -> Any:
    if isinstance(content, str):
        return render_text(content, context)
    if isinstance(content, dict):
        content = [content]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type", "input_text")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": render_text(part.get("text", ""), context)})
        elif kind in ("input_image", "image_url"):
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            parts.append({"type": "image_url",
                          "image_url": {"url": render_text(url or "", context),
                                        "detail": part.get("detail", "auto")}})
        else:  # input_audio and anything newer: passed through, rendered
            parts.append(render(part, context))
    return parts


@dataclass
class JudgeCall:
    value: Any  # float (score) or str (label); None when unparsed
    why: str
    model: str
    error: bool = False
    cost_usd: float = 0.0  # of an uncached call
    requests: int = 0  # attempts that reached the judge (retries included); 0 from the cache


class _JudgeGrader(Grader):
    is_async = True

    def __init__(self, name: str, models: list[str], input: list[dict[str, Any]],
                 sampling: dict[str, Any], pass_threshold: float | None,
                 factory: Any, aggregate: str, position_swap: dict[str, Any] | None,
                 raw_spec: dict[str, Any]) -> None:
        super().__init__(name, pass_threshold)
        self.models = models
        self.input = input
        self.sampling = sampling
        self.factory = factory
        self.aggregate = aggregate
        self.position_swap = position_swap
        self._raw_spec = raw_spec
        self._resolved: dict[str, Any] = {}

    # subclass hooks
    def response_format(self) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, text: str) -> tuple[Any, str]:
        raise NotImplementedError

    def model(self, spec: str) -> Any:
        if spec not in self._resolved:
            if self.factory is None:
                raise UserError(f"cannot reach judge model {spec!r}: no model resolver is "
                                "configured (posttrain.models.resolve_model is not available)",
                                field="model")
            self._resolved[spec] = self.factory(spec)
        return self._resolved[spec]

    def judge_models(self) -> list[Any]:
        return [self.model(spec) for spec in dict.fromkeys(self.models)]

    async def aclose(self) -> None:
        """Close the judge models this grader opened (the runner calls this at the end)."""
        for model in self._resolved.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
        self._resolved.clear()

    def request(self, context: dict[str, Any]) -> ChatRequest:
        messages = [{"role": m.get("role", "user"), "content": _content(m.get("content", ""),
                                                                          context)}
                    for m in self.input]
        return self._request(messages)

    def probe_request(self) -> ChatRequest:
        """The judge's request with its sampling and format but its input not rendered (one
        plain user message): what the run's preflight maps through each judge's provider."""
        return self._request([{"role": m.get("role", "user"), "content": "?"}
                              for m in self.input])

    def _request(self, messages: list[dict[str, Any]]) -> ChatRequest:
        s = self.sampling
        extra = {"reasoning_effort": s["reasoning_effort"]} if "reasoning_effort" in s else {}
        return ChatRequest(messages=messages, response_format=self.response_format(),
                           temperature=s.get("temperature"), max_tokens=s.get("max_tokens"),
                           top_p=s.get("top_p"), seed=s.get("seed"), extra=extra)

    async def _ask(self, spec: str, context: dict[str, Any]) -> JudgeCall:
        try:
            request = self.request(context)
        except TemplateError as exc:
            return JudgeCall(None, f"template {exc}", spec)
        try:
            completion, attempts = await call_model(self.model(spec), request)
        except UserError as exc:
            return JudgeCall(None, f"judge {spec}: {exc}", spec, error=True)
        except Exception as exc:  # noqa: BLE001 - a failed judge call is an error grade
            return JudgeCall(None, f"judge {spec} failed: {type(exc).__name__}: {exc}", spec,
                             error=True)
        value, why = self.parse(completion.text or "")
        if value is None and completion.finish_reason == "length":
            why += " (the reply was cut at max tokens)"
        fresh = not completion.cached
        return JudgeCall(value, why, spec, cost_usd=completion.cost_usd if fresh else 0.0,
                         requests=attempts if fresh else 0)

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        base = ctx(sample, item)
        contexts = [base]
        if self.position_swap is not None:
            try:
                first = render(self.position_swap["first"], base)
                second = render(self.position_swap["second"], base)
            except TemplateError as exc:
                return template_failure(exc, self, item)
            contexts = [{**base, "pair": {"first": first, "second": second}},
                        {**base, "pair": {"first": second, "second": first}}]
        try:  # a path into the answer that the answer lacks is the model's failure: 0
            self.request(contexts[0])
        except TemplateError as exc:
            return template_failure(exc, self, item)
        calls = await asyncio.gather(*(self._ask(spec, c) for spec in self.models
                                       for c in contexts))
        per_judge = [calls[i:i + len(contexts)] for i in range(0, len(calls), len(contexts))]
        score = self.combine(per_judge)
        score.cost_usd = sum(call.cost_usd for call in calls)
        score.requests = sum(call.requests for call in calls)
        score.retries = sum(max(0, call.requests - 1) for call in calls)
        return score

    def combine(self, per_judge: list[list[JudgeCall]]) -> Score:
        raise NotImplementedError

    def _failure(self, problems: list[JudgeCall], answered: int) -> Score:
        status = "error" if all(c.error for c in problems) else "unscored"
        reasons = "; ".join(f"{c.model}: {c.why}" for c in problems)
        text = (f"{len(problems)} of {len(problems) + answered} judge replies unusable: {reasons}"
                if len(self.models) > 1 or self.position_swap else reasons)
        return Score(value=None, status=status, name=self.name, explanation=text)

    def spec(self) -> dict[str, Any]:
        return dict(self._raw_spec)


class ScoreModelGrader(_JudgeGrader):
    type = "score_model"

    def __init__(self, *args: Any, range: tuple[float, float] = (0.0, 1.0), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.range = range

    def response_format(self) -> dict[str, Any]:
        return score_response_format()

    def parse(self, text: str) -> tuple[Any, str]:
        return parse_score(text)

    def combine(self, per_judge: list[list[JudgeCall]]) -> Score:
        lo, hi = self.range
        results: dict[str, float] = {}
        problems: list[JudgeCall] = []
        notes: list[str] = []
        for index, calls in enumerate(per_judge):
            bad = [c for c in calls if c.value is None]
            if bad:
                problems.extend(bad)
                continue
            raws = [float(c.value) for c in calls]
            outside = [r for r in raws if not lo <= r <= hi]
            if outside:  # a judge on the wrong scale: its grade cannot be read, never clamped
                problems.append(JudgeCall(None, f"result {outside[0]:g} outside range "
                                          f"[{lo:g}, {hi:g}]", calls[0].model))
                continue
            clipped = raws
            if len(clipped) == 2:  # position swap: the second run judged the pair reversed
                value = (clipped[0] + (lo + hi - clipped[1])) / 2
            else:
                value = clipped[0]
            key = calls[0].model if len(self.models) == len(set(self.models)) else \
                f"{calls[0].model}#{index}"
            results[key] = value
            notes.append(f"{key}: raw {', '.join(f'{r:g}' for r in raws)}")
        if not results or (len(self.models) > 1 and len(results) * 2 <= len(self.models)):
            return self._failure(problems, len(results))
        values = list(results.values())
        raw = statistics.median(values) if self.aggregate == "median" else statistics.fmean(values)
        value = (raw - lo) / (hi - lo)
        passed = raw >= self.pass_threshold if self.pass_threshold is not None else None
        sub = {k: (v - lo) / (hi - lo) for k, v in results.items()} if len(results) > 1 else {}
        explanation = f"result {raw:g} in [{lo:g}, {hi:g}] ({'; '.join(notes)})"
        if problems:
            explanation += f"; ignored: {'; '.join(f'{c.model}: {c.why}' for c in problems)}"
        return Score(value=value, passed=passed, name=self.name, explanation=explanation,
                     sub_scores=sub)


class LabelModelGrader(_JudgeGrader):
    type = "label_model"

    def __init__(self, *args: Any, labels: list[str], passing_labels: list[str],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labels = labels
        self.passing_labels = passing_labels

    def response_format(self) -> dict[str, Any]:
        return label_response_format(self.labels)

    def parse(self, text: str) -> tuple[Any, str]:
        return parse_label(text, self.labels)

    def combine(self, per_judge: list[list[JudgeCall]]) -> Score:
        votes: dict[str, str] = {}
        problems: list[JudgeCall] = []
        swap = (self.position_swap or {}).get("swap_labels") or {}
        for index, calls in enumerate(per_judge):
            bad = [c for c in calls if c.value is None]
            if bad:
                problems.extend(bad)
                continue
            labels = [calls[0].value] + [swap.get(c.value, c.value) for c in calls[1:]]
            if len(set(labels)) > 1:
                problems.append(JudgeCall(None, f"position bias: {calls[0].value!r}, then "
                                          f"{calls[1].value!r} with the pair swapped",
                                          calls[0].model))
                continue
            key = calls[0].model if len(self.models) == len(set(self.models)) else \
                f"{calls[0].model}#{index}"
            votes[key] = labels[0]
        if not votes or (len(self.models) > 1 and len(votes) * 2 <= len(self.models)):
            return self._failure(problems, len(votes))
        counts = Counter(votes.values()).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            return Score.unscored(f"judges tied: {dict(counts)}", name=self.name)
        label = counts[0][0]
        passed = label in self.passing_labels
        sub = ({k: 1.0 if v in self.passing_labels else 0.0 for k, v in votes.items()}
               if len(votes) > 1 else {})
        explanation = f"label {label!r}" + (f" ({dict(counts)})" if len(votes) > 1 else "")
        if problems:
            explanation += f"; ignored: {'; '.join(f'{c.model}: {c.why}' for c in problems)}"
        return Score(value=1.0 if passed else 0.0, passed=passed, name=self.name,
                     explanation=explanation, sub_scores=sub)


# ---- building -------------------------------------------------------------------------------
def _common(spec: dict[str, Any], context: GraderContext, kind: str) -> dict[str, Any]:
    model = require(spec, "model", str, context, default=None)
    models = require(spec, "models", list, context, default=None)
    if (model is None) == (models is None):
        raise UserError("give exactly one of `model` and `models`", file=context.source,
                        field="model")
    models = [model] if model is not None else models
    if not models or not all(isinstance(m, str) and m for m in models):
        raise UserError("must be a non-empty list of model specs", file=context.source,
                        field="models")
    messages = require(spec, "input", (list, str), context)
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "content" not in message:
            raise UserError("each message needs `role` and `content`", file=context.source,
                            field=f"input[{index}]")
        if message.get("role", "user") not in _ROLES:
            raise UserError(f"role must be one of {', '.join(_ROLES)}", file=context.source,
                            field=f"input[{index}].role")
    sampling: dict[str, Any] = {}
    from posttrain.errors import did_you_mean
    from posttrain.request_checks import check_sampling

    params = require(spec, "sampling_params", dict, context, default={})
    for key, value in params.items():
        if key not in _SAMPLING:
            raise UserError(f"unknown sampling parameter{did_you_mean(str(key), _SAMPLING)} "
                            f"(known: {', '.join(_SAMPLING)})", file=context.source,
                            field=f"sampling_params.{key}")
        try:  # typed as an eval's sampling (numbers finite, integers whole, no placeholders)
            check_sampling({_SAMPLING[key]: value}, context.source, "sampling_params")
        except UserError as exc:
            raise UserError(exc.message, file=context.source,
                            field=f"sampling_params.{key}") from None
        if value is not None:
            sampling[_SAMPLING[key]] = value
    swap = require(spec, "position_swap", dict, context, default=None)
    if swap is not None:
        for key in ("first", "second"):
            if key not in swap:
                raise UserError("required field is missing", file=context.source,
                                field=f"position_swap.{key}")
    aggregate = require(spec, "aggregate", str, context,
                        default="mean" if kind == "score" else "majority")
    allowed = ("mean", "median") if kind == "score" else ("majority",)
    if aggregate not in allowed:
        raise UserError(f"must be one of {', '.join(allowed)}", file=context.source,
                        field="aggregate")
    factory = context.model_factory  # models are resolved on first use, not to validate
    return {"name": name_of(spec, context, kind + "_model"), "models": models,
            "input": messages, "sampling": sampling, "factory": factory,
            "aggregate": aggregate, "position_swap": swap, "raw_spec": dict(spec)}


@register_grader("score_model")
def build_score(spec: dict[str, Any], context: GraderContext) -> Grader:
    common = _common(spec, context, "score")
    bounds = require(spec, "range", list, context, default=[0, 1])
    if len(bounds) != 2 or not all(is_number(b) for b in bounds) or bounds[0] >= bounds[1]:
        raise UserError("must be [low, high] numbers with low < high", file=context.source,
                        field="range")
    return ScoreModelGrader(pass_threshold=threshold(spec, context), **common,
                            range=(float(bounds[0]), float(bounds[1])))


@register_grader("label_model")
def build_label(spec: dict[str, Any], context: GraderContext) -> Grader:
    common = _common(spec, context, "label")
    labels = require(spec, "labels", list, context)
    passing = require(spec, "passing_labels", list, context)
    if not labels or not all(isinstance(x, str) for x in labels):
        raise UserError("must be a non-empty list of strings", file=context.source,
                        field="labels")
    unknown = [x for x in passing if x not in labels]
    if unknown:
        raise UserError(f"{unknown} not in labels", file=context.source, field="passing_labels")
    return LabelModelGrader(pass_threshold=None, **common, labels=labels,
                            passing_labels=passing)

"""``promptfoo_assert``: a promptfoo test's own assertions, read from the item, scored as
promptfoo scores them.

promptfoo attaches assertions to each test; posttrain's graders belong to the eval. So
``posttrain import promptfoo`` keeps each test's assertions in its item (``item.assert``, values
already rendered with the test's vars) and this one grader scores them: each assertion passes
or fails with a score in [0, 1], ``not-`` inverts it, the test's score is the mean weighted by
``weight`` (default 1), and the test passes when every assertion passes, or, when the test sets
``threshold``, when the score reaches it. Each assertion's score is also a sub-score named by its
``metric`` (else its type), so the report breaks the score down per assertion kind.

Types: ``equals``, ``contains``, ``icontains``, ``contains-any``, ``contains-all``,
``icontains-any``, ``icontains-all``, ``starts-with``, ``regex``, ``is-json`` (with a JSON
schema as value), ``contains-json``, ``levenshtein`` (pass at distance <= threshold, default
5), and ``similar`` / ``rouge-n`` / ``bleu`` through posttrain's text_similarity metrics (cosine
with MiniLM, ROUGE-N with N=1, BLEU; pass at score >= threshold, promptfoo's defaults 0.75,
0.75, 0.5), and ``is-valid-openai-tools-call`` (the answer is one or more tool calls, each
naming a function of the grader's ``tools`` with arguments that parse as JSON and fit that
function's ``parameters`` schema; the tools are promptfoo's provider ``config.tools``, which
the importer copies onto the grader). An assertion of a type not listed here is refused when the grader is built (the
importer lists such assertions instead of writing them).
"""

from __future__ import annotations

import json
import re
from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.types import Score

_THRESHOLDS = {"similar": 0.75, "rouge-n": 0.75, "bleu": 0.5, "levenshtein": 5.0}
TYPES = ("equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
         "icontains-all", "starts-with", "regex", "is-json", "contains-json", "levenshtein",
         "similar", "rouge-n", "bleu", "is-valid-openai-tools-call")


def base_type(kind: str) -> tuple[str, bool]:
    """(type without ``not-``, inverted)."""
    return (kind[4:], True) if kind.startswith("not-") else (kind, False)


def _json_values(text: str) -> list[Any]:
    """Every JSON object or array found in the text (promptfoo's contains-json)."""
    decoder = json.JSONDecoder()
    found = []
    index = 0
    while index < len(text):
        match = re.compile(r"[{\[]").search(text, index)
        if match is None:
            break
        try:
            value, end = decoder.raw_decode(text, match.start())
            found.append(value)
            index = end
        except json.JSONDecodeError:
            index = match.start() + 1
    return found


def _schema_ok(value: Any, schema: Any) -> tuple[bool, str]:
    if schema in (None, ""):
        return True, ""
    import jsonschema

    if isinstance(schema, str):
        schema = json.loads(schema)
    try:
        jsonschema.validate(value, schema)
        return True, ""
    except jsonschema.ValidationError as exc:
        return False, exc.message


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",")] if value is not None else []


_NEEDS_VALUE = ("equals", "contains", "icontains", "contains-any", "contains-all",
                "icontains-any", "icontains-all", "starts-with", "regex", "levenshtein",
                "similar", "rouge-n", "bleu")


def problem(spec: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what is wrong) of an assertion that could never be checked as written (no
    value, a regex that does not compile, a JSON schema that is not one, a weight or
    threshold that is not a number); None when it can be."""
    kind, _ = base_type(str(spec.get("type")))
    value = spec.get("value")
    if kind in _NEEDS_VALUE and (value is None or value == "" or value == []):
        return "value", f"{spec.get('type')} needs a value"
    for key in ("weight", "threshold"):
        number = spec.get(key)
        if number is not None and (isinstance(number, bool)
                                   or not isinstance(number, (int, float))):
            return key, f"{key} must be a number, got {number!r}"
    if kind == "regex":
        try:
            re.compile(str(value))
        except re.error as exc:
            return "value", f"regex /{value}/ does not compile: {exc}"
    if kind in ("is-json", "contains-json") and value not in (None, ""):
        import jsonschema

        schema = value
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                return "value", f"{kind}: the schema is not JSON: {exc.msg}"
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return "value", f"{kind}: not a JSON schema: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - a schema jsonschema cannot even read
            return "value", f"{kind}: not a JSON schema: {exc}"
    return None


def check(kind: str, value: Any, output: str, threshold: float | None) -> tuple[float, str]:
    """(score in [0, 1], reason) of one assertion type on the output (not inverted): 1 or 0,
    or the similarity itself for ``similar``, ``rouge-n`` and ``bleu``."""
    if kind == "equals":
        if isinstance(value, (dict, list)):
            try:
                return float(json.loads(output) == value), "JSON equal"
            except json.JSONDecodeError:
                return 0.0, "the output is not JSON"
        return float(output == str(value)), "equal"
    if kind == "contains":
        return float(str(value) in output), f"contains {value!r}"
    if kind == "icontains":
        return float(str(value).lower() in output.lower()), f"contains {value!r} (any case)"
    if kind in ("contains-any", "icontains-any", "contains-all", "icontains-all"):
        fold = kind.startswith("i")
        text = output.lower() if fold else output
        hits = [(v.lower() if fold else v) in text for v in _as_list(value)]
        ok = any(hits) if kind.endswith("any") else all(hits)
        return float(ok), f"{sum(hits)} of {len(hits)} found"
    if kind == "starts-with":
        return float(output.startswith(str(value))), f"starts with {value!r}"
    if kind == "regex":
        return float(re.search(str(value), output) is not None), f"matches /{value}/"
    if kind == "is-json":
        try:
            parsed = json.loads(output)
        except json.JSONDecodeError:
            return 0.0, "the output is not JSON"
        ok, why = _schema_ok(parsed, value)
        return float(ok), why or "valid JSON"
    if kind == "contains-json":
        values = _json_values(output)
        for parsed in values:
            ok, _ = _schema_ok(parsed, value)
            if ok:
                return 1.0, "contains JSON"
        return 0.0, "no JSON" if not values else "no JSON that fits the schema"
    if kind == "levenshtein":
        from rapidfuzz.distance import Levenshtein

        distance = Levenshtein.distance(output, str(value))
        limit = _THRESHOLDS["levenshtein"] if threshold is None else threshold
        return float(distance <= limit), f"distance {distance} (at most {limit:g})"
    from posttrain.graders import text_similarity as ts

    if kind == "similar":
        score = ts._cosine(output, str(value))[0]
    elif kind == "rouge-n":
        score = ts._rouge("rouge_1")(output, str(value))
    else:  # bleu
        score = ts._bleu(output, str(value))
    limit = _THRESHOLDS[kind] if threshold is None else threshold
    return score, f"{kind} {score:.3f} (pass at {limit:g})"


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def failure_reason(kind: str, inverted: bool, value: Any, output: str, why: str,
                   threshold: float | None) -> str:
    """Why an assertion failed, as what was expected and what was found (``equals``: expected
    'Paris', got 'Lyon'; ``not-contains``: expected no 'London', found it)."""
    no = "not " if inverted else ""
    got = f"got {_shown(output)}"
    if kind == "equals":
        return (f"expected anything but {value!r}, got it" if inverted
                else f"expected {value!r}, {got}" if not why.startswith("the output")
                else f"expected JSON equal to {json.dumps(value)}, {why}")
    if kind in ("contains", "icontains"):
        case = " (any case)" if kind == "icontains" else ""
        return (f"expected no {value!r}{case}, found it in {_shown(output)}" if inverted
                else f"expected {value!r}{case} in the output, {got}")
    if kind in ("contains-any", "icontains-any", "contains-all", "icontains-all"):
        which = "any" if kind.endswith("any") else "all"
        wanted = (("none" if which == "any" else "not all") if inverted else which)
        return f"expected {wanted} of {_as_list(value)}, {why} in {_shown(output)}"
    if kind == "starts-with":
        return f"expected the output {no}to start with {value!r}, {got}"
    if kind == "regex":
        return f"expected the output {no}to match /{value}/, {got}"
    if kind in ("is-json", "contains-json"):
        wanted = "valid JSON" if kind == "is-json" else "JSON in the output"
        if value not in (None, ""):
            wanted += " fitting the schema"
        return f"expected {'no ' if inverted else ''}{wanted}, found: {why}"
    if kind == "levenshtein":
        return f"expected {'more than' if inverted else 'at most'} the edit distance from " \
               f"{value!r}, found {why}"
    if kind in ("similar", "rouge-n", "bleu"):
        limit = _THRESHOLDS[kind] if threshold is None else threshold
        return f"expected {kind} {'below' if inverted else 'at least'} {limit:g} against " \
               f"{_shown(str(value), 60)}, found {why.split(' (')[0]}"
    if kind == "is-valid-openai-tools-call":
        return f"expected {'no ' if inverted else ''}valid tool call, found: {why}"
    return f"{no}{why}"


def tools_call_check(calls: Any, tools: list[dict[str, Any]]) -> tuple[float, str]:
    """(1 or 0, reason): whether ``calls`` (``sample.output_tools``: chat-completions
    ``tool_calls``) are valid calls of ``tools`` (chat-completions ``tools``): at least one
    call, each naming a listed function, arguments a JSON object fitting its parameters."""
    if not calls:
        return 0.0, "no tool call"
    functions = {t.get("function", {}).get("name"): t.get("function", {}) for t in tools
                 if isinstance(t, dict)}
    for index, call in enumerate(calls):
        function = (call or {}).get("function") or {}
        name = function.get("name")
        if name not in functions:
            return 0.0, f"call {index}: no tool named {name!r}"
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                return 0.0, f"call {index} ({name}): arguments are not JSON"
        if not isinstance(arguments, dict):
            return 0.0, f"call {index} ({name}): arguments are not a JSON object"
        ok, why = _schema_ok(arguments, functions[name].get("parameters"))
        if not ok:
            return 0.0, f"call {index} ({name}): {why}"
    return 1.0, f"{len(calls)} valid tool call(s)"


def passes(kind: str, score: float, threshold: float | None) -> bool:
    """Whether an assertion passes at its score: the similarity metrics at their threshold,
    every other type when its score is 1."""
    if kind in ("similar", "rouge-n", "bleu"):
        return score >= (_THRESHOLDS[kind] if threshold is None else threshold)
    return score >= 1.0


class PromptfooAssertGrader(Grader):
    type = "promptfoo_assert"

    def __init__(self, name: str, field: str, input: str,
                 tools: list[dict[str, Any]] | None = None) -> None:
        super().__init__(name)
        self.field = field
        self.input = input
        self.tools = tools

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.template import TemplateError, render_text

        try:
            output = render_text(self.input, {"sample": sample, "item": item})
        except TemplateError as exc:
            from posttrain.graders.base import template_failure

            return template_failure(exc, self, item)
        asserts = item.get(self.field)
        if not isinstance(asserts, list):
            return Score.unscored(f"item.{self.field}: no list of promptfoo assertions",
                                  name=self.name)
        total = weights = 0.0
        passed = True
        reasons: list[str] = []
        subs: dict[str, list[float]] = {}
        for index, spec in enumerate(asserts):
            kind, inverted = base_type(str(spec.get("type")))
            if kind not in TYPES:
                return Score.unscored(f"assert[{index}]: type {spec.get('type')!r} is not "
                                      "scored here", name=self.name)
            try:
                if kind == "is-valid-openai-tools-call":
                    if not self.tools:
                        return Score.unscored(f"assert[{index}] {kind}: the grader has no "
                                              "tools to check the calls against",
                                              name=self.name)
                    score, why = tools_call_check(sample.get("output_tools"), self.tools)
                else:
                    score, why = check(kind, spec.get("value"), output, spec.get("threshold"))
            except Exception as exc:  # noqa: BLE001 - a bad regex or schema: the grader's
                return Score.unscored(f"assert[{index}] {spec.get('type')}: {exc}",
                                      name=self.name)
            ok = passes(kind, score, spec.get("threshold"))
            if inverted:
                ok, score = not ok, 1.0 - score
            weight = float(spec.get("weight", 1.0))
            total += score * weight
            weights += weight
            passed = passed and ok
            subs.setdefault(str(spec.get("metric") or spec.get("type")), []).append(score)
            if not ok:
                reasons.append(f"{spec.get('type')}: " + failure_reason(
                    kind, inverted, spec.get("value"), output, why, spec.get("threshold")))
        value = total / weights if weights else (1.0 if passed else 0.0)
        threshold = item.get(f"{self.field}_threshold")
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            passed = value >= threshold
        return Score(value=value, passed=passed, name=self.name,
                     sub_scores={k: sum(v) / len(v) for k, v in subs.items()},
                     explanation="; ".join(reasons) or "all assertions passed")

    def spec(self) -> dict[str, Any]:
        out = {"type": self.type, "name": self.name, "field": self.field, "input": self.input}
        return {**out, "tools": self.tools} if self.tools else out


@register_grader("promptfoo_assert")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    field = require(spec, "field", str, context, default="assert")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
        raise UserError("must be an item field name", file=context.source, field="field")
    return PromptfooAssertGrader(
        name=require(spec, "name", str, context, default="promptfoo"), field=field,
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        tools=require(spec, "tools", list, context, default=None))

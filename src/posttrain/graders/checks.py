"""Our deterministic extensions: ``json_schema``, ``regex`` and ``numeric``.

- ``json_schema``: ``schema`` (a JSON Schema, or ``{{item.schema}}``) checked with jsonschema
  against ``input`` (default: ``sample.output_json``, else the output text parsed as JSON).
  1 if valid; 0 with the first errors otherwise; 0 when the output is not JSON at all.
- ``regex``: ``pattern`` (templated), ``flags`` (``i m s x``), ``input`` (default the output
  text), ``must_match`` (default true: 1 when the pattern is found; false: 1 when it is not),
  ``full_match`` (default false: search anywhere).
- ``numeric``: the last number in ``input`` (default the output text) compared with
  ``reference``; ``tolerance`` (absolute, default 1e-9) and ``relative_tolerance`` (default 0):
  passes if either holds. No number in the output is a 0 (the model did not answer), a
  non-numeric reference is unscored (a data problem). How a number is read (``last_number``):

  - signs ``-``, ``+`` and the minus sign ``−`` (U+2212), a sign only where no letter or digit
    comes right before it (``10-12`` ends in 12, not -12); exponents ``-3e4``; ``50%`` is 50.
  - thousands separators, the same one throughout a number, each followed by exactly three
    digits: ``,``, LaTeX ``{,}`` and ``\\,``, the no-break space (U+00A0), the thin space
    (U+2009) and the narrow no-break space (U+202F) (SI and ISO 80000-1 write ``1 000``
    with a thin space; French typography with U+202F); Indian grouping ``1,00,000``.
  - ``decimal: "."`` (the default, English): ``.`` is the decimal point, so ``1.000`` is one
    (1.0) and ``1,000`` is one thousand; a comma not followed by exactly three digits is
    not part of the number (``1,5`` is 1 and then 5). Two or more dot groups of three digits
    can only be thousands: ``1.000.000`` is a million.
  - ``decimal: ","`` (most of Europe, Latin America): ``,`` (or LaTeX ``{,}``) is the
    decimal mark and ``.`` a thousands separator: ``1.000`` is one thousand, ``1,5`` is 1.5,
    ``1.234,5`` is 1234.5.
  - A plain ASCII space never joins digits (``1 000`` is 1 and then 0): with ordinary spaces,
    groups cannot be told from a list of numbers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import ctx, is_number, name_of
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Score, parse_json_output

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_SPACES = "\u00a0\u2009\u202f"  # no-break, thin, narrow no-break space
#: thousands separators by decimal mark (regex alternatives), and the decimal mark itself
_SEPARATORS = {".": rf",|\{{,\}}|\\,|[{_SPACES}]", ",": rf"\.|\\,|[{_SPACES}]"}
_DECIMAL_MARK = {".": r"\.", ",": r",|\{,\}"}




class JsonSchemaGrader(Grader):
    type = "json_schema"

    def __init__(self, name: str, schema: Any, input: str | None) -> None:
        super().__init__(name)
        self.schema = schema
        self.input = input
        self._validator: Any = None

    def _validator_for(self, schema: Any) -> Any:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        return cls(schema, format_checker=cls.FORMAT_CHECKER)

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = ctx(sample, item)
        try:
            schema = render(self.schema, context)
            if self.input is not None:
                value = render(self.input, context)
                if isinstance(value, str):
                    parsed = parse_json_output(value)
                    value = parsed if parsed is not None else value
            else:
                value = sample.get("output_json")
                if value is None:
                    value = parse_json_output(sample.get("output_text") or "")
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if not isinstance(schema, dict):
            return Score.unscored(f"schema is not a JSON object: {schema!r:.100}", name=self.name)
        if value is None:
            return Score(0.0, passed=False, name=self.name, explanation="output is not JSON")
        import jsonschema

        try:
            if schema is self.schema:
                if self._validator is None:
                    self._validator = self._validator_for(schema)
                validator = self._validator
            else:
                validator = self._validator_for(schema)
        except jsonschema.SchemaError as exc:
            return Score.unscored(f"invalid schema: {exc.message}", name=self.name)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if not errors:
            return Score(1.0, passed=True, name=self.name, explanation="valid")
        where = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                          for e in errors[:3])
        return Score(0.0, passed=False, name=self.name,
                     explanation=f"{len(errors)} schema error(s): {where}")

    def spec(self) -> dict[str, Any]:
        spec = {"type": self.type, "name": self.name, "schema": self.schema}
        if self.input is not None:
            spec["input"] = self.input
        return spec


@register_grader("json_schema")
def build_json_schema(spec: dict[str, Any], context: GraderContext) -> Grader:
    schema = require(spec, "schema", (dict, str), context)
    if isinstance(schema, dict):
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UserError(f"invalid JSON Schema: {exc.message}", file=context.source,
                            field="schema") from None
    return JsonSchemaGrader(name_of(spec, context, "json_schema"), schema,
                            require(spec, "input", str, context, default=None))


@lru_cache(maxsize=1024)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


class RegexGrader(Grader):
    type = "regex"

    def __init__(self, name: str, pattern: str, flags: str, input: str, must_match: bool,
                 full_match: bool) -> None:
        super().__init__(name)
        self.pattern = pattern
        self.flags = flags
        self.input = input
        self.must_match = must_match
        self.full_match = full_match
        self._flags = 0
        for flag in flags:
            self._flags |= _FLAGS[flag]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = ctx(sample, item)
        try:
            text = render_text(self.input, context)
            pattern = render_text(self.pattern, context) if "{{" in self.pattern else self.pattern
        except TemplateError as exc:
            return template_failure(exc, self, item)
        try:
            compiled = _compile(pattern, self._flags)
        except re.error as exc:
            return Score.unscored(f"invalid pattern {pattern!r}: {exc}", name=self.name)
        found = (compiled.fullmatch(text) if self.full_match else compiled.search(text)) is not None
        ok = found == self.must_match
        what = "matched" if found else "no match"
        return Score(1.0 if ok else 0.0, passed=ok, name=self.name,
                     explanation=f"{what} (must_match={self.must_match})")

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "pattern": self.pattern,
                "flags": self.flags, "input": self.input, "must_match": self.must_match,
                "full_match": self.full_match}


@register_grader("regex")
def build_regex(spec: dict[str, Any], context: GraderContext) -> Grader:
    pattern = require(spec, "pattern", str, context)
    flags = require(spec, "flags", str, context, default="")
    bad = [f for f in flags if f not in _FLAGS]
    if bad:
        raise UserError(f"unknown flag(s) {''.join(bad)!r}; known: {''.join(_FLAGS)}",
                        file=context.source, field="flags")
    if "{{" not in pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UserError(f"invalid regular expression: {exc}", file=context.source,
                            field="pattern") from None
    return RegexGrader(name_of(spec, context, "regex"), pattern, flags,
                       require(spec, "input", str, context, default="{{sample.output_text}}"),
                       require(spec, "must_match", bool, context, default=True),
                       require(spec, "full_match", bool, context, default=False))


@lru_cache(maxsize=2)
def _number_pattern(decimal: str) -> re.Pattern[str]:
    """The token regex for ``last_number`` with ``decimal`` as the decimal mark."""
    sep, mark = _SEPARATORS[decimal], _DECIMAL_MARK[decimal]
    grouped = rf"\d{{1,3}}(?P<sep>{sep})\d{{3}}(?:(?P=sep)\d{{3}})*(?!\d)"
    indian = r"\d{1,2}(?:,\d{2})+,\d{3}(?!\d)" if decimal == "." else r"(?!)"
    dotted = r"\d{1,3}(?:\.\d{3}){2,}(?![\d.])" if decimal == "." else r"(?!)"
    return re.compile(
        rf"(?:(?<![\w)\]}}])(?P<sign>[-+\u2212]))?(?<!\d)"
        rf"(?:(?P<int>{indian}|{dotted}|{grouped}|\d+)(?P<frac>(?:{mark})\d+)?"
        rf"|(?P<bare>(?:{mark})\d+))"
        rf"(?P<exp>[eE][-+]?\d+)?")


def last_number(text: str, decimal: str = ".") -> float | None:
    """The last number written in ``text``, read as the module docstring says (thousands
    separators, LaTeX ``{,}``, thin spaces, the minus sign, ``decimal`` mark ``.`` or ``,``)."""
    matches = list(_number_pattern(decimal).finditer(text))
    for match in reversed(matches):
        whole = match.group("int")
        if whole is not None:
            digits = re.sub(r"\D", "", whole)
            fraction = re.sub(r"\D", "", match.group("frac") or "")
        else:
            digits, fraction = "0", re.sub(r"\D", "", match.group("bare"))
        number = digits + (f".{fraction}" if fraction else "") + (match.group("exp") or "")
        try:
            value = float(number)
        except ValueError:  # pragma: no cover - the pattern admits only what float() reads
            continue
        return -value if match.group("sign") in ("-", "\u2212") else value
    return None


class NumericGrader(Grader):
    type = "numeric"

    def __init__(self, name: str, input: str, reference: Any, tolerance: float,
                 relative_tolerance: float, decimal: str = ".") -> None:
        super().__init__(name)
        self.input = input
        self.reference = reference
        self.tolerance = tolerance
        self.relative_tolerance = relative_tolerance
        self.decimal = decimal

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = ctx(sample, item)
        try:
            text = render(self.input, context)
            reference = render(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if isinstance(reference, str):
            reference = last_number(reference, self.decimal) if reference.strip() else None
        if not is_number(reference):
            return Score.unscored(f"reference is not a number: {reference!r:.100}", name=self.name)
        value = (float(text) if is_number(text)
                 else last_number(str(text) if text is not None else "", self.decimal))
        if value is None:
            return Score(0.0, passed=False, name=self.name, explanation="no number in the output")
        diff = abs(value - float(reference))
        ok = diff <= self.tolerance or diff <= self.relative_tolerance * abs(float(reference))
        return Score(1.0 if ok else 0.0, passed=ok, name=self.name,
                     explanation=f"{value:g} vs {float(reference):g} (|diff| {diff:.3g})")

    def spec(self) -> dict[str, Any]:
        spec = {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference, "tolerance": self.tolerance,
                "relative_tolerance": self.relative_tolerance}
        if self.decimal != ".":
            spec["decimal"] = self.decimal
        return spec


@register_grader("numeric")
def build_numeric(spec: dict[str, Any], context: GraderContext) -> Grader:
    reference = require(spec, "reference", (str, int, float), context)
    tolerance = require(spec, "tolerance", (int, float), context, default=1e-9)
    relative = require(spec, "relative_tolerance", (int, float), context, default=0.0)
    for key, value in (("tolerance", tolerance), ("relative_tolerance", relative)):
        if value < 0:
            raise UserError("must be >= 0", file=context.source, field=key)
    decimal = require(spec, "decimal", str, context, default=".")
    if decimal not in _SEPARATORS:
        raise UserError(f'must be "." or ","; got {decimal!r}', file=context.source,
                        field="decimal")
    return NumericGrader(name_of(spec, context, "numeric"),
                         require(spec, "input", str, context, default="{{sample.output_text}}"),
                         reference, float(tolerance), float(relative), decimal)

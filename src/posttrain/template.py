"""``{{ item.x.y }}`` / ``{{ sample.output_tools[0].function.name }}`` templating.

The OpenAI grader format's templating: a path into ``item`` or ``sample`` with dots and
``[index]`` (or ``['key']``) steps. A template that is exactly one placeholder resolves to the
value itself (a list stays a list); placeholders inside text are rendered as text: strings as
they are, everything else as JSON (``true``, ``false``, ``null``, ``3``, ``[1, 2]``, objects).

Syntax, checked when an eval or grader is loaded, never at the model:

- ``{{ path }}``: a name (``item``, ``sample``), then ``.field`` steps (letters, digits, ``_``,
  ``-``, ``$``, ``@``) and ``[0]`` / ``[-1]`` / ``['any key']`` steps; spaces inside the braces
  are allowed. Nothing else: ``{{ x | upper }}``, ``{{x}``, ``{{ f(x) }}`` are malformed and
  raise ``TemplateSyntaxError``.
- ``\\{{`` writes a literal ``{{`` (the backslash is dropped; what follows is plain text, so
  ``\\{{ user.name }}`` reaches the model as ``{{ user.name }}``), as in Handlebars and Mustache.
  Only ``{{`` needs escaping; a lone ``}}`` is text. ``\\\\{{item.x}}`` is one backslash and
  then the value (each pair of backslashes right before ``{{`` is one backslash). In YAML
  double-quoted strings and in JSON, a backslash is itself written ``\\\\``.
- In a run of three or more ``{``, the last two open the placeholder and the others are text:
  ``\\frac{{{item.a}}}{2}`` is LaTeX around a value, and so is ``\\{{{item.x}}\\}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

_NAME = r"[A-Za-z_]\w*"
_PATH = (_NAME + r"(?:\.[\w$@-]+"
         r"|\[\s*(?:-?\d+|'[^']*'|\"[^\"]*\")\s*\])*")
_OPEN = re.compile(r"(\\*)(\{\{+)")
_BODY = re.compile(r"\s*(" + _PATH + r")\s*\}\}")
_STEP = re.compile(r"\.?([^.\[\]]+)|\[\s*(-?\d+|'[^']*'|\"[^\"]*\")\s*\]")
_HINT = ("only a path fits between {{ and }} (item.answer, sample.output_json.key, "
         "item.list[0]); write \\{{ for a literal {{")


class TemplateError(KeyError):
    """A placeholder names a path that does not exist.

    ``step`` is the 0-based index of the path step that failed to resolve (-1 when the path
    itself cannot be parsed): in ``sample.output_json.table`` a failure at step 2 means the
    sample has ``output_json`` but no ``table`` in it.
    """

    def __init__(self, path: str, reason: str, step: int = -1) -> None:
        super().__init__(path)
        self.path = path
        self.reason = reason
        self.step = step

    @property
    def root(self) -> str:
        """The context the path starts in (``item``, ``sample``, ...)."""
        return re.split(r"[.\[]", self.path, maxsplit=1)[0]

    @property
    def in_model_output(self) -> bool:
        """True when the path leads into a field the sample has but the model's output lacks.

        ``{{sample.output_json.table}}`` failing because the answer is not JSON, or is JSON
        without ``table``, is the model's failure. A missing top-level sample field
        (``sample.output_txt``) or any ``item.*`` path is the grader's or dataset's problem.
        """
        return self.root == "sample" and self.step >= 2

    def __str__(self) -> str:
        return f"{{{{{self.path}}}}}: {self.reason}"


class TemplateSyntaxError(TemplateError):
    """A ``{{`` that does not open a valid placeholder (``path`` is the text as written)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text, reason, -1)

    @property
    def root(self) -> str:
        return ""

    def __str__(self) -> str:
        return f"malformed placeholder {self.path!r}: {self.reason}"


class _Slot(NamedTuple):
    path: str


def _snippet(template: str, start: int) -> str:
    """The malformed placeholder as written: up to its ``}}`` on the same line, or a bit."""
    line_end = template.find("\n", start)
    line_end = len(template) if line_end < 0 else line_end
    close = template.find("}}", start + 2, line_end)
    end = close + 2 if close >= 0 and close + 2 - start <= 80 else min(line_end, start + 40)
    return template[start:end]


@lru_cache(maxsize=4096)
def _parse(template: str, strict: bool = True) -> tuple[str | _Slot, ...]:
    """Literal text and placeholders, in order. ``strict``: a malformed ``{{`` raises
    TemplateSyntaxError (else it is kept as text, for lenient scans)."""
    parts: list[str | _Slot] = []
    text: list[str] = []
    pos = 0
    while True:
        match = _OPEN.search(template, pos)
        if match is None:
            text.append(template[pos:])
            break
        slashes, braces = match.group(1), match.group(2)
        text.append(template[pos:match.start()])
        if len(braces) > 2:  # \{{{x}}: the last two braces open; what precedes them is text
            text.append(slashes + braces[:-2])
        else:
            text.append("\\" * (len(slashes) // 2))
            if len(slashes) % 2:  # \{{ is a literal {{
                text.append("{{")
                pos = match.end()
                continue
        opener = match.end() - 2
        body = _BODY.match(template, match.end())
        if body is None:
            if strict:
                snippet = _snippet(template, opener)
                reason = (_HINT if "}}" in snippet else
                          f"not closed with }}}}; {_HINT}")
                raise TemplateSyntaxError(snippet, reason)
            text.append("{{")
            pos = match.end()
            continue
        parts.append("".join(text))
        text = []
        parts.append(_Slot(body.group(1)))
        pos = body.end()
    parts.append("".join(text))
    return tuple(part for part in parts if part != "")


@lru_cache(maxsize=4096)
def _parse_path(path: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None or match.end() == pos:
            raise TemplateError(path, "cannot parse this path")
        if match.group(1) is not None:
            steps.append(match.group(1))
        else:
            token = match.group(2)
            steps.append(token[1:-1] if token[0] in "'\"" else int(token))
        pos = match.end()
    return tuple(steps)


def _decoded(value: str) -> Any:
    """A string that holds a JSON object or array, decoded; otherwise the string itself."""
    text = value.strip()
    if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return value


def resolve(path: str, context: dict[str, Any]) -> Any:
    """Value at ``path`` (``item.a[0].b``) in ``context``; TemplateError if absent.

    A step into a string that holds a JSON object or array steps into what it encodes: a tool
    call's ``function.arguments`` is a JSON string in the chat-completions format, and
    ``{{sample.output_tools[0].function.arguments.city}}`` reads its ``city``.
    """
    value: Any = context
    for position, step in enumerate(_parse_path(path)):
        if isinstance(value, str):
            value = _decoded(value)
        if isinstance(step, int):
            if not isinstance(value, (list, tuple)) or not -len(value) <= step < len(value):
                raise TemplateError(path, f"no index [{step}]", position)
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, (list, tuple)) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(value) <= index < len(value):
                raise TemplateError(path, f"no index {step}", position)
            value = value[index]
        elif value is None:
            raise TemplateError(path, f"no field {step!r} (the value before it is null)",
                                position)
        else:
            raise TemplateError(path, f"no field {step!r}", position)
    return value


def _as_text(value: Any) -> str:
    """A value inside text: a string as it is; booleans, null, numbers, lists and objects as
    JSON (RFC 8259), so ``true`` and ``null`` read the same whatever wrote the data."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float, dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def has_placeholders(template: str) -> bool:
    """True when the template has at least one (well-formed) placeholder."""
    return "{{" in template and any(isinstance(p, _Slot) for p in _parse(template, False))


def render(template: Any, context: dict[str, Any], *, keep_type: bool = True) -> Any:
    """Fill placeholders. Strings are rendered; dicts and lists are rendered recursively.

    With ``keep_type`` a string that is a single placeholder returns the raw value. A
    malformed placeholder raises TemplateSyntaxError; ``\\{{`` renders as ``{{``.
    """
    if isinstance(template, str):
        if "{{" not in template:
            return template
        parts = _parse(template)
        if keep_type:
            slots = [part for part in parts if isinstance(part, _Slot)]
            if len(slots) == 1 and all(isinstance(part, _Slot) or not part.strip()
                                       for part in parts):
                return resolve(slots[0].path, context)
        return "".join(part if isinstance(part, str) else _as_text(resolve(part.path, context))
                       for part in parts)
    if isinstance(template, list):
        return [render(part, context, keep_type=keep_type) for part in template]
    if isinstance(template, dict):
        return {key: render(value, context, keep_type=keep_type) for key, value in template.items()}
    return template


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render to a string, always."""
    if "{{" in template:  # the common case straight: placeholders that name fields of objects
        plan = _text_plan(template)
        if plan is not None:
            out = []
            for part in plan:
                if part.__class__ is str:
                    out.append(part)
                    continue
                value: Any = context
                for step in part:
                    if value.__class__ is dict and step in value:
                        value = value[step]
                    else:  # anything else (a list, JSON in a string, an absent field): below
                        return _as_text(render(template, context, keep_type=False))
                out.append(value if value.__class__ is str else _as_text(value))
            return "".join(out)
    return _as_text(render(template, context, keep_type=False))


@lru_cache(maxsize=4096)
def _text_plan(template: str) -> tuple[str | tuple[str, ...], ...] | None:
    """The template as literal text and placeholder paths of field names only (``item.a.b``),
    for :func:`render_text`; None when it has another kind of path or is malformed (rendered
    by :func:`render`, which gives the same text or raises the error)."""
    try:
        parts = _parse(template)
        plan: list[str | tuple[str, ...]] = []
        for part in parts:
            if isinstance(part, str):
                plan.append(part)
                continue
            steps = _parse_path(part.path)
            if not all(isinstance(step, str) for step in steps):
                return None
            plan.append(steps)  # type: ignore[arg-type]
    except TemplateError:
        return None
    return tuple(plan)


def template_strings(template: Any, field: str = "", *, skip: frozenset[str] = frozenset()
                     ) -> Iterator[tuple[str, str]]:
    """``(field path, string)`` for every string in ``template`` that holds ``{{``
    (recursively); the field path extends ``field`` as ``a.b[2].c``. Keys in ``skip`` (at any
    depth, e.g. ``GRADER_NOT_TEMPLATES``) are not templates and are not visited."""
    if isinstance(template, str):
        if "{{" in template:
            yield field, template
    elif isinstance(template, list):
        for index, part in enumerate(template):
            yield from template_strings(part, f"{field}[{index}]", skip=skip)
    elif isinstance(template, dict):
        for key, value in template.items():
            if key not in skip:
                yield from template_strings(value, f"{field}.{key}" if field else str(key),
                                            skip=skip)


def placeholders(template: Any) -> list[str]:
    """Every path named in a template (recursively); malformed ones are skipped here (see
    ``syntax_errors``)."""
    return [path for _field, path in placeholders_by_field(template)]


#: fields of a grader spec that are not templates (code, expressions, names, choices): a
#: python grader's ``source`` may well contain ``{{``
GRADER_NOT_TEMPLATES = frozenset({
    "type", "name", "source", "source_file", "calculate_output", "image_tag", "ref", "model",
    "operation", "evaluation_metric", "labels", "passing_labels", "flags", "decimal"})


def syntax_errors(template: Any, field: str = "", *, skip: frozenset[str] = frozenset()
                  ) -> Iterator[tuple[str, TemplateSyntaxError]]:
    """``(field path, error)`` for each string in ``template`` (recursively) with a malformed
    placeholder (see ``template_strings`` for ``field`` and ``skip``)."""
    for where, text in template_strings(template, field, skip=skip):
        try:
            _parse(text)
        except TemplateSyntaxError as exc:
            yield where, exc


def placeholders_by_field(template: Any, field: str = "", *,
                          skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """``(field path, placeholder path)`` for every well-formed placeholder in ``template``
    (see ``template_strings``): for load-time checks that name the file's own field."""
    for where, text in template_strings(template, field, skip=skip):
        for part in _parse(text, False):
            if isinstance(part, _Slot):
                yield where, part.path

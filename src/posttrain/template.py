"""``{{ item.x.y }}`` / ``{{ sample.output_tools[0].function.name }}`` templating.

The OpenAI grader format's templating: a path into ``item`` or ``sample`` with dots and
``[index]`` steps. A template that is exactly one placeholder resolves to the value itself (a
list stays a list); placeholders inside text are rendered as text (dicts and lists as JSON).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*(?:\.[^\s{}\[\]]+|\[[^\]]*\])*)\s*\}\}")
_STEP = re.compile(r"\.?([^.\[\]]+)|\[\s*(-?\d+|'[^']*'|\"[^\"]*\")\s*\]")


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


def resolve(path: str, context: dict[str, Any]) -> Any:
    """Value at ``path`` (``item.a[0].b``) in ``context``; TemplateError if absent."""
    value: Any = context
    for position, step in enumerate(_parse_path(path)):
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
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def has_placeholders(template: str) -> bool:
    return "{{" in template and _PLACEHOLDER.search(template) is not None


def render(template: Any, context: dict[str, Any], *, keep_type: bool = True) -> Any:
    """Fill placeholders. Strings are rendered; dicts and lists are rendered recursively.

    With ``keep_type`` a string that is a single placeholder returns the raw value.
    """
    if isinstance(template, str):
        if "{{" not in template:
            return template
        match = _PLACEHOLDER.fullmatch(template.strip())
        if keep_type and match is not None:
            return resolve(match.group(1), context)
        return _PLACEHOLDER.sub(lambda m: _as_text(resolve(m.group(1), context)), template)
    if isinstance(template, list):
        return [render(part, context, keep_type=keep_type) for part in template]
    if isinstance(template, dict):
        return {key: render(value, context, keep_type=keep_type) for key, value in template.items()}
    return template


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render to a string, always."""
    return _as_text(render(template, context, keep_type=False))


def placeholders(template: Any) -> list[str]:
    """Every path named in a template (recursively), for validation."""
    found: list[str] = []
    if isinstance(template, str):
        found.extend(m.group(1) for m in _PLACEHOLDER.finditer(template))
    elif isinstance(template, list):
        for part in template:
            found.extend(placeholders(part))
    elif isinstance(template, dict):
        for value in template.values():
            found.extend(placeholders(value))
    return found

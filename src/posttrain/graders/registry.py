"""Grader types by name, built from JSON specs (the OpenAI grader format and our extensions)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader, GraderContext

Builder = Callable[[dict[str, Any], GraderContext], Grader]

_BUILDERS: dict[str, Builder] = {}

# type name -> module that registers it; imported on first use so start-up stays light
_LAZY_MODULES: dict[str, str] = {
    "string_check": "posttrain.graders.string_check",
    "text_similarity": "posttrain.graders.text_similarity",
    "score_model": "posttrain.graders.model_graders",
    "label_model": "posttrain.graders.model_graders",
    "python": "posttrain.graders.python_grader",
    "multi": "posttrain.graders.multi",
    "json_schema": "posttrain.graders.checks",
    "regex": "posttrain.graders.checks",
    "numeric": "posttrain.graders.checks",
    "tool_call": "posttrain.graders.tool_call",
    "code_exec": "posttrain.graders.code_exec",
    "function": "posttrain.graders.decorators",
    "tool_use": "posttrain.graders.tool_use",
    "mrcr": "posttrain.graders.mrcr",
    "graphwalks": "posttrain.graders.graphwalks",
    "string_match_all": "posttrain.graders.string_match",
    "string_match_part": "posttrain.graders.string_match",
    "long_context": "posttrain.graders.long_context",
    "code_edit": "posttrain.graders.code_edit",
    "ifeval": "posttrain.graders.ifeval",
    "dev_instructions": "posttrain.graders.ifeval",
    "structured_output": "posttrain.suites.structured_output.grader",
    "context_only": "posttrain.suites.context_only.grader",
}


def register(type_name: str) -> Callable[[Builder], Builder]:
    def decorator(builder: Builder) -> Builder:
        _BUILDERS[type_name] = builder
        return builder

    return decorator


def register_lazy(type_name: str, module: str) -> None:
    """Let a type be built by importing ``module`` on first use (plugins, suites)."""
    _LAZY_MODULES[type_name] = module


def known_types() -> list[str]:
    return sorted(set(_BUILDERS) | set(_LAZY_MODULES))


def build_grader(spec: Any, context: GraderContext | None = None) -> Grader:
    """Build a grader from its JSON spec; UserError naming the field on a bad spec."""
    context = context or GraderContext()
    if not isinstance(spec, dict):
        raise UserError("a grader must be a JSON object", file=context.source, field="grader")
    type_name = spec.get("type")
    if not isinstance(type_name, str):
        raise UserError("missing grader 'type'", file=context.source, field="type")
    builder = _BUILDERS.get(type_name)
    if builder is None and type_name in _LAZY_MODULES:
        importlib.import_module(_LAZY_MODULES[type_name])
        builder = _BUILDERS.get(type_name)
    if builder is None:
        raise UserError(
            f"unknown grader type {type_name!r}{did_you_mean(type_name, known_types())} "
            f"(known: {', '.join(known_types())})", file=context.source, field="type",
        )
    tracked = _TrackedSpec(spec)
    grader = builder(tracked, context)
    unknown = sorted(set(spec) - tracked.read - {"type"} - _ACCEPTED_UNUSED)
    if unknown:
        takes = sorted(tracked.read | {"type"})
        hint = did_you_mean(unknown[0], takes) or f" (it takes: {', '.join(takes)})"
        raise UserError(f"unknown field in a {type_name} grader{hint}", file=context.source,
                        field=unknown[0])
    return grader


#: fields of OpenAI's grader format that posttrain accepts and does not need (the hosted
#: python grader's container ``image_tag``)
_ACCEPTED_UNUSED = frozenset({"image_tag"})


class _TrackedSpec(dict):  # type: ignore[type-arg]
    """A grader spec that remembers which fields its builder read, so that a field no builder
    reads (a typo such as ``pass_treshold``) is an error instead of being silently ignored."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def did_you_mean(word: str, options: Any) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def require(spec: dict[str, Any], key: str, kind: type | tuple[type, ...], context: GraderContext,
            *, default: Any = ..., field_prefix: str = "") -> Any:
    """Fetch a spec field, checking its type; UserError naming the field otherwise."""
    field = f"{field_prefix}{key}"
    if key not in spec or spec[key] is None:
        if default is ...:
            raise UserError("required field is missing", file=context.source, field=field)
        return default
    value = spec[key]
    if not isinstance(value, kind) or (kind in (int, float, (int, float)) and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"must be {names}, got {type(value).__name__}", file=context.source,
                        field=field)
    if isinstance(value, float) and not math.isfinite(value):  # .nan, .inf in a YAML file
        raise UserError(f"must be a finite number, got {value!r}", file=context.source,
                        field=field)
    return value

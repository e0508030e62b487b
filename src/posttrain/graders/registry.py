"""Grader types by name, built from JSON specs (the OpenAI grader format and our extensions).

A grader type is one decorated builder, in the one file that defines it (posttrain's own, a
suite's, or a plugin package's through the ``posttrain.plugins`` entry-point group)::

    @register_grader("my_check")                      # posttrain.plugins
    def build(spec: dict, context: GraderContext) -> Grader: ...

``build_grader`` finds the builder (importing only its module), hands it the spec, and refuses
fields the builder never read (``pass_treshold``) with a "did you mean".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError, did_you_mean  # noqa: F401 - re-exported
from posttrain.graders.base import Grader, GraderContext

Builder = Callable[[dict[str, Any], GraderContext], Grader]


def register(type_name: str) -> Callable[[Builder], Builder]:
    """``@register("type")``: the same as ``posttrain.plugins.register_grader``."""
    from posttrain.plugins import register_grader

    return register_grader(type_name)


def known_types() -> list[str]:
    """Every grader type: posttrain's own and the plugins' (``posttrain.plugins``)."""
    from posttrain.plugins import names

    return names("grader")


def build_grader(spec: Any, context: GraderContext | None = None) -> Grader:
    """Build a grader from its JSON spec; UserError naming the field on a bad spec."""
    context = context or GraderContext()
    if not isinstance(spec, dict):
        raise UserError("a grader must be a JSON object", file=context.source, field="grader")
    type_name = spec.get("type")
    if not isinstance(type_name, str):
        raise UserError("missing grader 'type'", file=context.source, field="type")
    from posttrain import plugins

    builder = plugins.get("grader", type_name, field_name="type", source=context.source)
    tracked = _TrackedSpec(spec)
    grader = builder(tracked, context)
    grader.built_by = getattr(builder, "__module__", None)
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

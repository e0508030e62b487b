"""Before the first request: every model that will be called can be called.

Each model (and each judge) runs its provider's ``check`` (see ``posttrain.models.checks``):
credentials present, packages installed, local paths that exist, an endpoint that answers,
accepts the key and serves the model. The checks run concurrently; the first problem stops the
run with one line naming the model spec (exit 2), before anything is sent or stored. Models
whose answers all come from the store (a finished run, a cached rerun) are not checked, so a
rerun still reports offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from posttrain.errors import UserError


async def check_models(models: Iterable[Any]) -> None:
    """Run ``check()`` of each distinct model (by ``cache_id``); raise the first UserError."""
    unique: dict[str, Any] = {}
    for model in models:
        if callable(getattr(model, "check", None)):
            unique.setdefault(getattr(model, "cache_id", None) or model.name, model)
    results = await asyncio.gather(*(model.check() for model in unique.values()),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, UserError):
            raise result
    for result in results:
        if isinstance(result, BaseException):
            raise result


def check_requests(eval_: Any, planned: Iterable[tuple[Any, str, Any]]) -> None:
    """Every request field reaches the model or the run stops here: for each (model, variant,
    first pending item), that item's request goes through the model's field mapping
    (:func:`posttrain.models.base.map_request`); a field the provider cannot honour
    (``sampling.seed`` on Anthropic, ``tool_choice: required`` on ``hf:``) is one line naming
    the model spec and the field, exit 2. Sampling fields come from the eval and its variant,
    so one item per variant stands for them all; a later row whose templated ``tools`` or
    ``response_format`` cannot be honoured fails as that sample's error."""
    from posttrain.models.base import map_request

    for model, variant, item in planned:
        map_request(model, eval_.request_for(item, variant))


def judge_models(graders: Iterable[Any]) -> list[Any]:
    """The models the graders call (judges, inside ``multi`` too), resolved."""
    found: list[Any] = []
    for grader in graders:
        walk = getattr(grader, "walk", None)  # duck-typed graders that are not Grader subclasses
        for inner in walk() if walk is not None else ():
            found.extend(inner.judge_models())
    return found


def check_judge_requests(eval_: Any) -> None:
    """Every judge's request goes through its own provider's field mapping before the first
    request, as the models' do: a field the judge's provider cannot honour (``seed`` on an
    Anthropic judge) is one line naming the grader, the judge and the field (exit 2), not an
    error on every grade."""
    from posttrain.models.base import UnsupportedField

    for index, grader in enumerate(eval_.graders):
        walk = getattr(grader, "walk", None)
        for inner in walk() if walk is not None else ():
            probe = getattr(inner, "probe_request", None)
            if probe is None:
                continue
            request = probe()
            for model in inner.judge_models():
                to_wire = getattr(model, "to_wire", None)
                if to_wire is None:
                    continue
                try:
                    to_wire(request)
                except UnsupportedField as exc:
                    label = exc.field if exc.field in ("response_format", "messages") else \
                        f"sampling_params.{exc.field}"
                    raise _located(eval_, f"graders[{index}]",
                                   f"judge {model.name}: {label}: {exc.reason}") from None


def _located(eval_: Any, field: str, message: str) -> UserError:
    """A UserError at ``field`` of the eval file, with its line when the file is YAML."""
    line = None
    source = getattr(eval_, "source", None)
    if source is not None:
        from posttrain.loaders.yaml12 import yaml_line

        try:
            line = yaml_line(source.read_text(encoding="utf-8-sig"), field)
        except (OSError, UnicodeDecodeError):
            line = None
    return UserError(message, file=source, line=line, field=field)

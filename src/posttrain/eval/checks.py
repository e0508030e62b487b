"""An eval file's checks against its first row, before anything is sent: template syntax,
every ``{{item.*}}`` / ``{{sample.*}}`` path, request shapes as the row renders them, rows'
own ``messages`` (each naming the eval file's line and field, or the dataset's line)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, did_you_mean
from posttrain.request_checks import (
    _check_messages,
    response_format_problem,
    tool_choice_problem,
    tools_problem,
)
from posttrain.template import TemplateError, render
from posttrain.types import Item


def _check_request_shapes(spec: dict[str, Any], first: Item, source: Path | None,
                          dataset: Path | None) -> None:
    """``tools``, ``tool_choice`` and ``response_format`` have the chat-completions shapes
    (checked for every provider, templated ones as the first row renders them)."""
    context = {"item": first.data}
    row = (f" (as the first row renders it: {dataset}:{first.line})" if dataset
           else f" (as the first item, {first.id}, renders it)")
    tools = None
    for key, check in (("tools", tools_problem), ("response_format", response_format_problem)):
        if spec.get(key) is None:
            continue
        value = render(spec[key], context)
        if value is None and isinstance(spec[key], str):
            continue  # a row whose field is null sends none (a suite's per-row tools)
        if key == "tools":
            tools = value
        problem = check(value)
        if problem is not None:
            inner, reason = problem
            whole = isinstance(spec[key], str)  # the whole value comes from the row
            if whole:
                reason += row
            elif inner:
                key += inner if inner.startswith("[") else f".{inner}"
            raise UserError(reason, file=source, field=key)
    if spec.get("tool_choice") is not None:
        reason = tool_choice_problem(spec["tool_choice"], tools)
        if reason is not None:
            raise UserError(reason, file=source, field="tool_choice")


def _request_templates(spec: dict[str, Any]) -> dict[str, Any]:
    """The eval file's fields rendered into each request (messages, input, tools,
    response_format, variants)."""
    return {key: spec[key] for key in ("messages", "input", "tools", "response_format",
                                       "variants") if key in spec}


def _check_template_syntax(spec: dict[str, Any], source: Path | None) -> None:
    """A malformed placeholder (``{{x}``, ``{{ x | upper }}``) anywhere a template is rendered
    is an error at load time, naming the field (``load_eval`` adds its line)."""
    from posttrain.template import GRADER_NOT_TEMPLATES, syntax_errors

    templates = _request_templates(spec)
    problems = [*syntax_errors(templates),
                *syntax_errors(spec.get("graders"), "graders", skip=GRADER_NOT_TEMPLATES)]
    if problems:
        where, exc = problems[0]
        raise UserError(str(exc), file=source, field=where)


#: the fields of the grader's ``sample`` (see ``Completion.to_sample``); ``transcript`` only
#: with a ``solver``
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools", "choices", "reasoning", "meta")


def _check_paths(spec: dict[str, Any], first: Item, *, solver: bool, source: Path | None,
                 dataset: Path | None, rows: Sequence[Item] = ()) -> None:
    """Every placeholder of every template (messages, variants, tools, response_format and
    graders) resolves before anything is sent: ``item.*`` paths against the first row,
    ``sample.*`` paths against the fields a sample has. The error names the eval file's own
    field (``load_eval`` adds its line) and the row it was checked against. A grader's
    ``item.*`` path that the first row lacks but another of ``rows`` has is not refused (an
    eval may grade some rows by a field only they have: the others' grades are unscored,
    counted); one that no row has is a typo, refused."""
    from posttrain.template import (
        GRADER_NOT_TEMPLATES,
        placeholders_by_field,
        resolve,
    )

    sample_fields = SAMPLE_FIELDS + (("transcript",) if solver else ())
    row = f"{dataset}:{first.line}" if dataset is not None and first.line else f"item {first.id}"
    templates = _request_templates(spec)
    found = [*placeholders_by_field(templates),
             *placeholders_by_field(spec.get("graders"), "graders", skip=GRADER_NOT_TEMPLATES)]
    for where, path in found:
        root, _, rest = path.partition(".")
        root = root.split("[", 1)[0]
        if root == "item":
            try:
                resolve(path, {"item": first.data})
            except TemplateError as exc:
                if where.startswith("graders") and _some_row_has(path, rows):
                    continue
                missing = exc.reason.split("'")[1] if exc.reason.count("'") >= 2 else ""
                hint = did_you_mean(missing, first.data) if exc.step == 1 and missing else ""
                some = "no row has it: " if where.startswith("graders") and len(rows) > 1 else ""
                raise UserError(f"{{{{{path}}}}}: {some}the first row ({row}) has "
                                f"{exc.reason}{hint}", file=source, field=where) from None
        elif root == "sample" and where.startswith("graders"):
            name = rest.split(".", 1)[0].split("[", 1)[0]
            if name not in sample_fields:
                raise UserError(f"{{{{{path}}}}}: a sample has no field {name!r}"
                                + did_you_mean(name, sample_fields)
                                + f" (it has {', '.join(sample_fields)})",
                                file=source, field=where)
        elif not (root == "pair" and where.startswith("graders")):
            allowed = "`item.*` and, in graders, `sample.*`"
            raise UserError(f"{{{{{path}}}}}: a template reads {allowed}, not {root!r}",
                            file=source, field=where)


def _some_row_has(path: str, rows: Sequence[Item]) -> bool:
    from posttrain.template import resolve

    for item in rows:
        try:
            resolve(path, {"item": item.data})
        except TemplateError:
            continue
        return True
    return False


#: ``item.field``: one step, checked as a key of the row
_PLAIN = re.compile(r"item\.[\w$@-]+")


def check_every_row(spec: dict[str, Any], items: Sequence[Item], *, source: Path | None,
                    dataset: Path | None) -> None:
    """Every row has what the request templates read (``item.*`` paths of messages, variants,
    tools and response_format), checked before anything is sent: a row that lacks one is
    refused naming its line (or ``items[i]``) and the template's field. (Rendering found it
    only when that row's turn came, after the rows before it had been sent and paid for.)
    Graders are not held to every row: a row without a grader's reference leaves that grade
    unscored, counted and shown (an eval may grade some rows by a field only they have); the
    first row is checked for them (``_check_paths``). A row with every plain path's field is
    passed by one set comparison (~0.1 us)."""
    from posttrain.template import placeholders_by_field, resolve

    templates = _request_templates(spec)
    found = placeholders_by_field(templates)
    paths = dict.fromkeys((path, where) for where, path in found
                          if path.split(".", 1)[0].split("[", 1)[0] == "item")
    plain = [(path, where, path[5:]) for path, where in paths if _PLAIN.fullmatch(path)]
    nested = [(path, where) for path, where in paths if not _PLAIN.fullmatch(path)]
    required = {key for _path, _where, key in plain}
    for index, item in enumerate(items):
        data = item.data
        missing = None
        if not data.keys() >= required:  # most rows have every plain path's field
            missing = next(((path, where, f"no field {key!r}") for path, where, key in plain
                            if key not in data), None)
        if missing is None:
            for path, where in nested:
                try:
                    resolve(path, {"item": data})
                except TemplateError as exc:
                    missing = (path, where, exc.reason)
                    break
        if missing is not None:
            path, where, reason = missing
            row = (dict(file=dataset, line=item.line, field=f"item {item.id}")
                   if dataset is not None else dict(file=source, field=f"items[{index}]"))
            raise UserError(f"{where} reads {{{{{path}}}}}: this row has {reason}", **row)


def check_share(value: Any) -> float:
    """A pass bar or score threshold: a finite number in [0, 1]; ValueError saying so."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ValueError(f"must be a number from 0 to 1, got {value!r}")
    if not 0 <= value <= 1:
        if 1 < value <= 100:
            raise ValueError(f"must be a share from 0 to 1, got {value:g}: write "
                             f"{value / 100:g} for {value:g}%")
        raise ValueError(f"must be a share from 0 to 1 (0.8 for 80%), got {value!r}")
    return float(value)


def _check_row_messages(items: Sequence[Item], dataset: Path | None, source: Path | None, *,
                        from_items: bool) -> None:
    """The eval has no ``messages`` template: every row must carry valid ``messages``, checked
    now, naming the dataset's line (or the eval file's ``items[i]``)."""
    for index, item in enumerate(items):
        value = item.data.get("messages")
        where = f"items[{index}].messages" if from_items else "messages"
        file, line = (source, None) if from_items else (dataset or source, item.line)
        if not isinstance(value, list) or not value:
            got = "no `messages`" if value is None else f"messages {value!r}"
            raise UserError(f"the eval has no `messages` template, so each row needs its own "
                            f"`messages` list; this row has {got}", file=file, line=line,
                            field=where)
        _check_messages(value, file, where, line=line)

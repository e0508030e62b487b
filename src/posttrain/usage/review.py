"""Editing one field of one dataset row in place, with a history file of every change.

The dataset JSONL is rewritten atomically (temp file + rename) with only the edited line
changed; ``<dataset>.history.jsonl`` gets ``{when, who, item_id, field, old, new, note}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, json_kind
from posttrain.loaders import yaml12


def dataset_of(eval_path: str | Path) -> tuple[Path, str]:
    """The dataset file an eval reads and its id field; UserError for inline items/CSV."""
    eval_path = Path(eval_path)
    spec = yaml12.load_file(eval_path, what="eval file")[0]
    if not isinstance(spec, dict) or not isinstance(spec.get("dataset"), str):
        raise UserError("only evals with a `dataset:` JSONL file can be edited here",
                        file=eval_path, field="dataset")
    path = (eval_path.parent / spec["dataset"]).resolve()
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise UserError("only JSONL datasets can be edited here", file=path)
    return path, str(spec.get("id_field", "id"))


def reference_fields(grader_specs: list[dict[str, Any]]) -> list[str]:
    """Item fields the graders compare against (``{{item.X}}`` in non-input fields)."""
    fields: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, str):
            if key in ("input",) and "sample." in value:
                return
            for match in re.finditer(r"\{\{\s*item\.([A-Za-z_]\w*)", value):
                if match.group(1) not in fields and match.group(1) not in ("messages", "tools"):
                    fields.append(match.group(1))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)

    walk(grader_specs)
    return fields


def history_path(dataset: Path) -> Path:
    """``data.jsonl`` -> ``data.history.jsonl``."""
    return dataset.with_name(dataset.stem + ".history.jsonl")


def _find_row(path: Path, id_field: str, item_id: str
              ) -> tuple[list[str], int, dict[str, Any]]:
    """The dataset's lines, and the index and row of ``item_id`` (UserError: no such row)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict) and str(row.get(id_field, index + 1)) == str(item_id):
            return lines, index, row
    raise UserError(f"no row with {id_field} {item_id!r}", file=path)


def reviewed_value(eval_path: str | Path, item_id: str, field: str, value: Any) -> Any:
    """``value`` as a review may write it into ``field`` of the row ``item_id``: of the JSON
    type the dataset row's field holds now (a number reference stays a number; text sent for a
    field holding JSON is read as JSON, "6" is 6). Checked against the row itself, not a run's
    copy of it, which an older run may hold with another type. UserError otherwise."""
    path, id_field = dataset_of(eval_path)
    _lines, _index, row = _find_row(path, id_field, item_id)
    old = row.get(field)
    if old is None:
        return value
    if not isinstance(old, str) and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise UserError(f"field {field!r} holds {json_kind(old)}: send valid JSON",
                            field=field) from None
    if json_kind(value) != json_kind(old):
        raise UserError(f"field {field!r} holds {json_kind(old)}: send {json_kind(old)}, not "
                        f"{json_kind(value)}", field=field)
    return value


def update_item_field(eval_path: str | Path, item_id: str, field: str, new_value: Any, *,
                      who: str = "web", note: str | None = None) -> Any:
    """Set ``field`` of the row ``item_id``; returns the old value."""
    path, id_field = dataset_of(eval_path)
    lines, index, row = _find_row(path, id_field, item_id)
    old = row.get(field)
    row[field] = new_value
    ending = "\n" if lines[index].endswith("\n") else ""
    lines[index] = json.dumps(row, ensure_ascii=False) + ending
    tmp = path.with_suffix(path.suffix + ".tmp")
    history = history_path(path)
    entry = json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "who": who,
                        "item_id": str(item_id), "field": field, "old": old, "new": new_value,
                        "note": note, "line": index + 1}, ensure_ascii=False) + "\n"
    # the new dataset beside the old, then the history line, then the swap: a failure at any
    # step leaves the dataset and its history as they were (the history cut back to its size)
    size = history.stat().st_size if history.exists() else None
    appended = False
    try:
        tmp.write_text("".join(lines), encoding="utf-8")
        with history.open("a", encoding="utf-8") as handle:
            appended = True
            handle.write(entry)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only folder or file: one line, nothing half-written kept
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if appended:
            with contextlib.suppress(OSError):
                if size is None:
                    history.unlink()
                else:
                    os.truncate(history, size)
        error = UserError(f"cannot write the eval's dataset or its history: "
                          f"{exc.strerror or exc}", file=path)
        error.http_status = 403  # type: ignore[attr-defined]
        raise error from None
    return old

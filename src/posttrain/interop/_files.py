"""Reading the JSON and JSONL files OpenAI's APIs return, with lines for every error and note.

A problem with a file is a :class:`UserError` naming ``file:line: field``; a field that is read
but not used (unknown, or known and not applicable here) is a note in :class:`Notes`, printed as
``warning: file:line: field: ...``, never dropped unseen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


@dataclass
class Source:
    """Where a JSON value came from: a file, the line of the record (JSONL) or the whole text
    (a JSON document, to find a field's line in)."""

    file: Path
    line: int | None = None
    text: str | None = None
    #: where this record sits in ``text`` (``data[3].``, ``[0].``) for a record of a list
    prefix: str = ""

    def line_of(self, field_path: str) -> int | None:
        if self.text is None:
            return self.line
        from posttrain.eval import yaml_line  # JSON is YAML 1.2: its node marks give lines

        try:
            return yaml_line(self.text, self.prefix + field_path) or self.line
        except Exception:  # noqa: BLE001 - a line number is a courtesy, never a failure
            return self.line

    def where(self) -> str:
        """``file:line`` of this record (its line found when asked: finding it can mean
        reading a large document's structure)."""
        line = self.line if self.line is not None or self.text is None or not self.prefix \
            else self.line_of("")
        return f"{self.file}" + (f":{line}" if line else "")

    def error(self, message: str, field_path: str | None = None) -> UserError:
        return UserError(message, file=self.file,
                         line=self.line_of(field_path) if field_path else self.line,
                         field=field_path)


@dataclass
class Notes:
    """Warnings collected while reading (printed by the CLI, returned by the API)."""

    lines: list[str] = field(default_factory=list)

    def warn(self, source: Source | None, field_path: str | None, message: str) -> None:
        where = ""
        if source is not None:
            line = source.line_of(field_path) if field_path else source.line
            where = f"{source.file}" + (f":{line}" if line else "") + ": "
        self.lines.append(f"{where}{field_path + ': ' if field_path else ''}{message}")

    def unknown(self, source: Source | None, where: str, data: dict[str, Any],
                known: set[str] | frozenset[str], what: str) -> None:
        for key in data:
            if key not in known:
                from posttrain.errors import did_you_mean

                self.warn(source, f"{where}{key}" if where else key,
                          f"not read: unknown {what} field" + did_you_mean(str(key), known))


def read_json(path: Path, what: str) -> tuple[Any, Source]:
    """A JSON document; UserError with the line on bad JSON."""
    from posttrain.loaders.datasets import exact_json, read_text

    path = Path(path).resolve()
    if not path.is_file():
        raise UserError(f"{what} not found", file=path)
    text = read_text(path, what=what)
    try:
        return exact_json(text), Source(path, None, text)
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # NaN, Infinity; nesting too deep
        from posttrain.loaders.datasets import json_problem

        line, key, message = json_problem(text, exc)
        raise UserError(message, file=path, line=line, field=key) from None


def read_records(path: Path, what: str) -> list[tuple[Any, Source]]:
    """Objects from a JSONL file (one a line), a JSON list, a JSON page ``{"data": [...]}`` (as
    the list endpoints return), a single JSON object, or every ``*.json``/``*.jsonl`` in a
    folder (in name order)."""
    from posttrain.loaders.datasets import load_jsonl

    path = Path(path).resolve()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise UserError(f"no .json or .jsonl files in this folder ({what})", file=path)
        return [record for f in files for record in read_records(f, what)]
    if not path.exists():
        raise UserError(f"{what} not found", file=path)
    if path.suffix == ".jsonl":
        return [(row, Source(path, line)) for line, row in load_jsonl(path)]
    data, source = read_json(path, what)
    if isinstance(data, dict) and isinstance(data.get("data"), list) and \
            data.get("object") == "list":
        return [(row, _element(source, f"data[{i}]")) for i, row in enumerate(data["data"])]
    if isinstance(data, list):
        return [(row, _element(source, f"[{i}]")) for i, row in enumerate(data)]
    return [(data, source)]


def _element(source: Source, where: str) -> Source:
    return Source(source.file, source.line_of(where), source.text, f"{where}.")


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path

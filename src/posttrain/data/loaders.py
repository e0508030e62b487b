"""Dataset loaders: JSONL (one object a line), CSV, JSON and YAML, with line numbers for errors.

Every file a user writes is read as UTF-8, with or without the byte-order mark that Excel and
Notepad put at the start (``utf-8-sig``); CRLF line ends are fine. Bytes that are not UTF-8 are
a ``file:line: not UTF-8`` error, never a silent replacement character.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _not_utf8(data: bytes, position: int, path: Path, *, line: int | None = None) -> UserError:
    if line is None:
        line = data.count(b"\n", 0, position) + 1
    return UserError(f"not UTF-8 (byte 0x{data[position]:02X}); save the file as UTF-8",
                     file=path, line=line)


def decode(data: bytes, path: Path) -> str:
    """UTF-8 text of a user's file, without its byte-order mark; UserError naming the line of
    the first byte that is not UTF-8 (and saying so for a UTF-16 file)."""
    if data.startswith(_UTF16_BOMS):
        raise UserError("not UTF-8: this file is UTF-16 (by its byte-order mark); save it as "
                        "UTF-8", file=path, line=1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc.start, path) from None


def read_text(path: Path, *, what: str = "file") -> str:
    """The text of a user's file (see ``decode``); UserError ``cannot read WHAT`` on OSError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror}", file=path) from None
    return decode(data, path)


def load_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows with their 1-based line numbers; blank lines are skipped; bad lines are UserErrors."""
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read dataset: {exc.strerror}", file=path) from None
    try:
        import orjson

        loads: Any = orjson.loads
    except ImportError:  # pragma: no cover - orjson is a core dependency
        loads = json.loads
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                if raw.startswith(_UTF16_BOMS):
                    decode(raw, path)  # raises: UTF-16
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            try:
                row = loads(raw)
            except ValueError as exc:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    raise _not_utf8(raw, bad.start, path, line=number) from None
                raise UserError(f"not valid JSON ({exc})", file=path, line=number) from None
            if not isinstance(row, dict):
                raise UserError(f"expected a JSON object, got {type(row).__name__}", file=path,
                                line=number)
            rows.append((number, row))
    return rows


def load_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows by the header line, each with the line it starts on (a quoted field may span lines)."""
    reader = csv.DictReader(io.StringIO(read_text(path, what="dataset"), newline=""))
    rows: list[tuple[int, dict[str, Any]]] = []
    start = 2
    try:
        for row in reader:
            rows.append((start, dict(row)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"not valid CSV ({exc})", file=path, line=reader.line_num) from None
    return rows


def load_json(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A JSON list of objects; row ``n`` is numbered ``n`` (1-based)."""
    try:
        data = json.loads(read_text(path, what="dataset"))
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise UserError("a .json dataset must be a list of objects", file=path)
    return [(index + 1, row) for index, row in enumerate(data)]


def load_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a dataset file by its suffix: .jsonl/.ndjson, .csv, .json, .yaml/.yml."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return load_jsonl(path)
    if suffix == ".csv":
        return load_csv(path)
    if suffix == ".json":
        return load_json(path)
    if suffix in (".yaml", ".yml"):
        from posttrain.data import yaml12

        return yaml12.load_rows(path)
    raise UserError(f"unknown dataset format {suffix!r} (use .jsonl, .csv, .json or .yaml)",
                    file=path)

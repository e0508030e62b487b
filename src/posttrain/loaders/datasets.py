"""Dataset loaders: JSONL (one object a line), CSV, JSON and YAML, with line numbers for errors.

Every file a user writes is read as UTF-8, with or without the byte-order mark that Excel and
Notepad put at the start (``utf-8-sig``); CRLF line ends are fine. Bytes that are not UTF-8 are
a ``file:line: not UTF-8`` error, never a silent replacement character.

Numbers are read exactly or kept as written: an integer beyond 64 bits (JSON encoders and APIs
carry no more) and a number too large for a double (``1e400``) stay the text written
(``"12345678901234567890123"``), never a rounded float or a value the store cannot write.

CSV: a header row, comma-separated (a header with semicolons and no comma is read as
``;``-separated, as Excel writes in locales with a decimal comma); every row has the header's
number of fields and column names are unique, else ``file:line`` says so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from posttrain.errors import UserError
from posttrain.loaders.storable import LoneSurrogate, TooDeep, check_storable

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def not_utf8(data: bytes, position: int, path: Path, *, line: int | None = None) -> UserError:
    """The error for ``data`` (a file's bytes, or its line ``line``) not being UTF-8 at byte
    ``position``: ``file:line: not UTF-8 (byte 0x..); save the file as UTF-8``."""
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
        raise not_utf8(data, exc.start, path) from None


def read_text(path: Path, *, what: str = "file") -> str:
    """The text of a user's file (see ``decode``); UserError ``cannot read WHAT`` on OSError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror}", file=path) from None
    return decode(data, path)


_LONG_INT = re.compile(rb"\d{19}")  # 2**63 has 19 digits: a run this long may not fit
#: bytes of lines searched for :data:`_LONG_INT` at once (``_lines``)
_BLOCK = 1 << 22


def _int_or_text(text: str) -> int | str:
    value = int(text)
    return value if -(2 ** 63) <= value <= 2 ** 64 - 1 else text


def _float_or_text(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON (write it as a string)")


_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"\s*(:)?|(-?Infinity|NaN)\b')


def json_constant(text: str) -> tuple[int, str | None, str] | None:
    """Where a JSON text holds ``NaN`` / ``Infinity`` (which JSON does not have, and Python's
    parser takes): (line, the key before it or None, the word)."""
    key = None
    for match in _TOKENS.finditer(text):
        if match.group(2):
            return text.count("\n", 0, match.start()) + 1, key, match.group(2)
        if match.group(1):
            key = json.loads(match.group(0).rstrip().rstrip(":").rstrip())
    return None


def json_problem(text: str, exc: BaseException) -> tuple[int | None, str | None, str]:
    """(line, field, message) for JSON that does not parse as JSON: NaN / Infinity, nesting
    too deep for the parser or the store, half of a surrogate pair, or a syntax error."""
    if isinstance(exc, (LoneSurrogate, TooDeep)):
        return exc.lineno, None, str(exc)
    found = json_constant(text)
    if found is not None:
        line, key, word = found
        return line, key, f"{word} is not JSON (write a number, null, or a string)"
    if isinstance(exc, RecursionError):
        return None, None, "nested too deep to read (over ~1000 levels of lists or objects)"
    return getattr(exc, "lineno", None), None, f"not valid JSON ({exc})"


def exact_json(text: str | bytes) -> Any:
    """JSON with integers beyond 64 bits and numbers beyond a double kept as their text.
    ValueError (``storable``): a string escape that is half of a UTF-16 pair, or nesting
    deeper than the store writes."""
    value = json.loads(text, parse_int=_int_or_text, parse_float=_float_or_text,
                       parse_constant=_no_constant)
    check_storable(text, value)
    return value


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """Each line of ``handle`` (split at ``\\n``, as iterating it does) with its 1-based number
    and whether its block of ~4 MB holds a run of 19 digits (:data:`_LONG_INT`): one search
    a block instead of one a line (most datasets have none)."""
    number = 0
    while lines := handle.readlines(_BLOCK):
        long_int = _LONG_INT.search(b"".join(lines)) is not None
        for raw in lines:
            number += 1
            yield number, raw, long_int


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
        for number, raw, long_int in _lines(handle):
            if number == 1:
                if raw.startswith(_UTF16_BOMS):
                    decode(raw, path)  # raises: UTF-16
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            try:
                if long_int and _LONG_INT.search(raw):
                    row = exact_json(raw)
                else:
                    row = loads(raw)
                    check_storable(raw, row, escapes=False)  # orjson reads deeper than it writes
            except ValueError as exc:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    raise not_utf8(raw, bad.start, path, line=number) from None
                try:  # a number beyond a double (1e400): kept as its text
                    row = exact_json(raw)
                except (ValueError, RecursionError) as again:
                    _, key, message = json_problem(raw.decode("utf-8"), again)
                    if message.startswith("not valid JSON"):
                        message = f"not valid JSON ({exc})"
                    raise UserError(message, file=path, line=number, field=key) from None
            except RecursionError as exc:
                _, key, message = json_problem(raw.decode("utf-8", "replace"), exc)
                raise UserError(message, file=path, line=number, field=key) from None
            if not isinstance(row, dict):
                raise UserError(f"expected a JSON object, got {type(row).__name__}", file=path,
                                line=number)
            rows.append((number, row))
    return rows


def load_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows by the header line, each with the line it starts on (a quoted field may span lines).

    UserError for a row with more or fewer fields than the header (``file:line: 2 fields, the
    header has 3``: a short row would read null, a long one lose its extra fields) and for a
    column name written twice or left empty."""
    text = read_text(path, what="dataset")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        header = next(reader, None)
        if header is None:
            return rows
        seen: dict[str, int] = {}
        for index, name in enumerate(header, start=1):
            if not name.strip():
                raise UserError(f"column {index} has no name in the header", file=path, line=1)
            if name in seen:
                raise UserError(f"duplicate column {name!r} (columns {seen[name]} and {index})",
                                file=path, line=1)
            seen[name] = index
        start = reader.line_num + 1
        for fields in reader:
            if fields:  # a blank line is no row
                if len(fields) != len(header):
                    raise UserError(f"{len(fields)} field{'s' * (len(fields) != 1)}, the header "
                                    f"has {len(header)}", file=path, line=start)
                rows.append((start, dict(zip(header, fields, strict=True))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"not valid CSV ({exc})", file=path, line=reader.line_num) from None
    return rows


def load_json(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A JSON list of objects; row ``n`` is numbered ``n`` (1-based)."""
    try:
        data = exact_json(read_text(path, what="dataset"))
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    except (LoneSurrogate, TooDeep) as exc:
        raise UserError(str(exc), file=path, line=exc.lineno) from None
    except ValueError as exc:  # NaN or Infinity, which JSON does not have
        raise UserError(f"not valid JSON ({exc})", file=path) from None
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
        from posttrain.loaders import yaml12

        return yaml12.load_rows(path)
    raise UserError(f"unknown dataset format {suffix!r} (use .jsonl, .csv, .json or .yaml)",
                    file=path)

"""User-facing errors: bad files and bad arguments, reported without a traceback, exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class UserError(Exception):
    """A mistake in user input. The CLI prints ``file:line: field: message`` and exits 2."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"

    def at(self, *, file: str | Path | None = None, line: int | None = None,
           field_prefix: str | None = None) -> UserError:
        """The same error located in a file (keeps what is already known)."""
        field = self.field
        if field_prefix:
            field = f"{field_prefix}.{field}" if field else field_prefix
        return UserError(self.message, file=self.file or file, line=self.line or line, field=field)


def did_you_mean(word: str, options: Any) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def json_kind(value: Any) -> str:
    """What a JSON value is ("an array", "a number", "null"), for an error line that must
    never quote the value itself (it may hold personal data)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "a value")

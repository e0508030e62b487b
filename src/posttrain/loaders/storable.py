"""JSON that parses but cannot be stored: refused where a user's file is read.

Python's JSON parser (the loaders' fallback for what orjson refuses: NaN, integers beyond 64
bits) reads two things that the store's writer (orjson) cannot write, so an item or record
holding one failed later, with a traceback, after the run or ingest had begun:

- a string escape that is half of a UTF-16 surrogate pair (``"\\ud800"`` alone, a low half
  alone, a high half followed by anything but a low one): the string is not text (it has no
  UTF-8 form). Both halves of a pair are one character and load as it;
- values nested deeper than orjson writes (:data:`MAX_DEPTH` levels of lists and objects;
  orjson's reader and Python's take more).

:func:`check_storable` finds either from the parsed value itself (a walk with no recursion),
and names the first lone half as it is written in the text, with its line.
"""

from __future__ import annotations

import re
from typing import Any

#: the deepest nesting of lists and objects the store writes (orjson refuses 255 levels)
MAX_DEPTH = 254
#: text that may hold a surrogate escape: a backslash, ``u``, ``d`` and ``8``-``f``
_MAYBE = re.compile(r"\\u[dD][89a-fA-F]")
_MAYBE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
#: a run of backslashes, then ``u`` and four hex digits: an escape when the run is odd
_ESCAPE = re.compile(r"(\\+)u([0-9a-fA-F]{4})")


class LoneSurrogate(ValueError):
    """Half of a UTF-16 surrogate pair as a JSON string escape: not a character.
    ``lineno``: its line in the text, where found."""

    def __init__(self, escape: str, lineno: int | None) -> None:
        super().__init__(f"{escape} is half of a UTF-16 surrogate pair, not a character "
                         "(write the character itself, or both halves of its pair)")
        self.lineno = lineno


class TooDeep(ValueError):
    """Lists and objects nested deeper than the store writes (:data:`MAX_DEPTH`)."""

    def __init__(self) -> None:
        super().__init__(f"nested too deep to store (over {MAX_DEPTH} levels of lists or "
                         "objects)")
        self.lineno = None


def check_storable(text: str | bytes, value: Any, *, escapes: bool = True) -> None:
    """Raise :class:`LoneSurrogate` or :class:`TooDeep` (both ValueErrors) when ``value``, what
    a JSON parser read from ``text``, cannot be stored. ``escapes`` False: the parser was
    orjson's, which refuses lone halves (only the nesting is checked). Costs a length test
    (and two counts of a text over :data:`MAX_DEPTH` characters) and one search of ``text``
    when it has neither a ``\\ud8xx``-style escape nor :data:`MAX_DEPTH` brackets."""
    if isinstance(text, bytes):
        deep = len(text) > MAX_DEPTH and text.count(b"[") + text.count(b"{") > MAX_DEPTH
        maybe = escapes and _MAYBE_BYTES.search(text) is not None
    else:
        deep = len(text) > MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH
        maybe = escapes and _MAYBE.search(text) is not None
    if not (deep or maybe):
        return
    lone = _walk(value)
    if lone is not None:
        shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        escape, line = _written(shown, lone)
        raise LoneSurrogate(escape, line)


def _walk(value: Any) -> str | None:
    """The first string of ``value`` (keys included) that is not text, or None; TooDeep when
    it nests beyond :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _not_text(node):
                return node
        elif isinstance(node, (dict, list)):
            if depth >= MAX_DEPTH:
                raise TooDeep()
            if isinstance(node, dict):
                for key, inner in node.items():
                    if isinstance(key, str) and not key.isascii() and _not_text(key):
                        return key
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in node)
    return None


def _not_text(string: str) -> bool:
    try:
        string.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _written(text: str, string: str) -> tuple[str, int | None]:
    """The first escape in ``text`` that is a lone half (an escape: after an odd run of
    backslashes; lone: a high half not followed at once by a low one, a low half not just after
    a high one), as written, and its line; else (``string``'s first lone half, None)."""
    escapes = [(match.start(), match.end(), len(match.group(1)) % 2 == 1,
                int(match.group(2), 16), match.group(2)) for match in _ESCAPE.finditer(text)]
    for k, (start, end, real, code, digits) in enumerate(escapes):
        if not real or not 0xD800 <= code <= 0xDFFF:
            continue
        if code < 0xDC00:  # a high half: paired when a low one follows at once
            after = escapes[k + 1] if k + 1 < len(escapes) else None
            paired = (after is not None and after[0] == end and text[after[0] + 1] == "u"
                      and 0xDC00 <= after[3] <= 0xDFFF)
        else:  # a low half: paired when a high one ends just before it
            before = escapes[k - 1] if k > 0 else None
            paired = (before is not None and before[1] == start and text[start + 1] == "u"
                      and before[2] and 0xD800 <= before[3] < 0xDC00)
        if not paired:
            return "\\u" + digits, text.count("\n", 0, start) + 1
    lone = next(ch for ch in string if 0xD800 <= ord(ch) <= 0xDFFF)
    return f"\\u{ord(lone):04x}", None

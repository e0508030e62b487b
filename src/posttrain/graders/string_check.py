"""``string_check``: eq, ne, like (substring), ilike (case-insensitive substring).

OpenAI's grader compares the strings as they are (``eq`` case-sensitive equality, ``like``
case-sensitive substring, ``ilike`` case-insensitive substring). Here text that Unicode says is
the same text compares the same, where OpenAI's may not:

- ``eq``, ``ne`` and ``like`` compare canonically equivalent text as equal (Unicode Standard
  §3.7 D70, UAX #15): both sides are put in Normalization Form C first, so ``é`` written as one
  code point (U+00E9) or as ``e`` + combining acute (U+0065 U+0301) is the same letter. Case,
  width and compatibility forms still count (``ﬁ`` is not ``fi``, ``Ａ`` is not ``A``).
- ``ilike`` is compatibility caseless matching (Unicode Standard §3.13 D146:
  ``NFKD(casefold(NFKD(casefold(NFD(X)))))``, composed again with NFC): full case folding
  (``ß`` matches ``SS`` and ``ss``, ``ς`` matches ``Σ``), accents composed or decomposed,
  compatibility forms (full-width ``ＮＯ`` matches ``no``, ``ﬁ`` matches ``fi``, ``²`` matches
  ``2``). Accents are not removed: ``cafe`` does not match ``café``.
- A substring match (``like``, ``ilike``) must end on a character boundary: ``e`` is not found
  in ``é`` written decomposed, nor ``q`` in ``q̇`` (a combining mark that follows the match
  belongs to its last character).

ASCII text skips the normalization (it is its own normal form), so the common case costs what
plain comparison costs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score


def canonical(text: str) -> str:
    """NFC (UAX #15): canonically equivalent strings become the same code points."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def caseless(text: str) -> str:
    """Compatibility caseless form (Unicode §3.13 D146), recomposed with NFC for substrings."""
    if text.isascii():
        return text.lower()  # str.casefold() on ASCII is lower()
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFD", text).casefold())
    return unicodedata.normalize("NFKC", folded.casefold())


def contains(haystack: str, needle: str) -> bool:
    """``needle`` in ``haystack`` at a character boundary: not followed by a combining mark."""
    if haystack.isascii() or not needle:
        return needle in haystack
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        if end == len(haystack) or not unicodedata.combining(haystack[end]):
            return True
        start = haystack.find(needle, start + 1)
    return False


_OPERATIONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: canonical(a) == canonical(b),
    "ne": lambda a, b: canonical(a) != canonical(b),
    "like": lambda a, b: contains(canonical(a), canonical(b)),
    "ilike": lambda a, b: contains(caseless(a), caseless(b)),
}


class StringCheckGrader(Grader):
    type = "string_check"
    deterministic = True

    def __init__(self, name: str, input: str, reference: str, operation: str) -> None:
        super().__init__(name)
        self.input = input
        self.reference = reference
        self.operation = operation
        self._check = _OPERATIONS[operation]

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = {"sample": sample, "item": item}
        try:
            text = render_text(self.input, context)
            reference = render_text(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        ok = self._check(text, reference)
        return Score(value=1.0 if ok else 0.0, passed=ok, name=self.name,
                     explanation=f"{self.operation}: {'match' if ok else 'no match'}")

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference, "operation": self.operation}


@register_grader("string_check")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    operation = require(spec, "operation", str, context)
    if operation not in _OPERATIONS:
        raise UserError(f"must be one of {', '.join(_OPERATIONS)}; got {operation!r}",
                        file=context.source, field="operation")
    return StringCheckGrader(
        name=require(spec, "name", str, context, default="string_check"),
        input=require(spec, "input", str, context),
        reference=require(spec, "reference", str, context),
        operation=operation,
    )

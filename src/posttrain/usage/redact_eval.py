"""Precision and recall of redaction on a labelled set (``tests/data/pii_labelled.jsonl``).

A labelled row: ``{"text": ..., "pii": [[kind, substring], [kind, substring, occurrence], ...]}``;
every occurrence of the substring is labelled unless an occurrence index (0-based) is given. A
row with no ``pii`` is a hard negative (places, products, names that are words, order numbers).
``"batch"``: 1 (default) and 2 were written before and between rounds of tuning the rules and
the rules were tuned on them; 3 was written after the tuning and never tuned on (held out); 4 is
the red team's leaks of issue 12 (tool calls, JSON in text, lower-case names, card and e-mail
spellings, SSN, dates of birth, passports, European streets), measured once before the rules
were tuned on it; 5 was written after that round and never tuned on (held out).
``"record"``: rows with the same record id are redacted as one record (a conversation: a name
found in one is redacted in the others); by default each row is its own record.

Scoring is **span level**, after the spans that overlap are merged, as the text is redacted:

- recall of a kind: the share of its labelled spans that are *hidden*, every non-space
  character inside a redacted span (a card redacted as a phone counts, nothing leaks; a name
  with only the first word redacted does not);
- precision of a kind: the share of redacted spans of that kind that overlap a labelled span
  (of any kind); a place, product or word redacted is a false positive;
- ``kind agrees``: of the hidden spans, the share redacted under the labelled kind.

The texts are redacted in one batch, each row its own group (or the rows of one ``record``
together), the way ``posttrain ingest`` redacts a file: a name found in a record is redacted
wherever else it appears in that record (a conversation), not in the other records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.usage.redact import Redactor, _merge


@dataclass
class LabelledText:
    """A text and its labelled spans ``(start, end, kind)``."""

    text: str
    spans: list[tuple[int, int, str]]
    note: str | None = None
    batch: int = 1  # 1, 2, 4: the rules were tuned on these; 3, 5: held out
    record: str | None = None  # rows of one record are redacted together


def load_labelled(path: Path) -> list[LabelledText]:
    """Rows of a labelled JSONL file with their substrings turned into spans."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        text = row["text"]
        spans = []
        for kind, substring, *which in row.get("pii", []):
            starts = []
            position = text.find(substring)
            while position >= 0:
                starts.append(position)
                position = text.find(substring, position + 1)
            if not starts:
                raise ValueError(f"{path}:{number}: {substring!r} is not in the text")
            if which:
                starts = [starts[which[0]]]
            spans.extend((start, start + len(substring), kind) for start in starts)
        record = row.get("record")
        rows.append(LabelledText(text=text, spans=spans, note=row.get("note"),
                                 batch=int(row.get("batch", 1)),
                                 record=None if record is None else str(record)))
    return rows


@dataclass
class KindScore:
    """Counts for one kind."""

    labelled: int = 0
    hidden: int = 0
    same_kind: int = 0
    redacted: int = 0
    correct: int = 0

    @property
    def recall(self) -> float | None:
        return self.hidden / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.redacted if self.redacted else None


@dataclass
class RedactionScores:
    """Per-kind and overall counts, with the misses and false positives for reading."""

    kinds: dict[str, KindScore] = field(default_factory=dict)
    missed: list[tuple[str, str]] = field(default_factory=list)  # (kind, labelled text)
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)  # kind, span, row

    def kind(self, name: str) -> KindScore:
        return self.kinds.setdefault(name, KindScore())

    @property
    def overall(self) -> KindScore:
        total = KindScore()
        for score in self.kinds.values():
            total.labelled += score.labelled
            total.hidden += score.hidden
            total.same_kind += score.same_kind
            total.redacted += score.redacted
            total.correct += score.correct
        return total

    def to_dict(self) -> dict[str, Any]:
        def one(score: KindScore) -> dict[str, Any]:
            return {"labelled": score.labelled, "hidden": score.hidden,
                    "redacted": score.redacted, "correct": score.correct,
                    "recall": score.recall, "precision": score.precision,
                    "kind_agrees": score.same_kind / score.hidden if score.hidden else None}

        return {"kinds": {k: one(v) for k, v in sorted(self.kinds.items())},
                "overall": one(self.overall),
                "missed": [list(m) for m in self.missed],
                "false_positives": [list(f) for f in self.false_positives]}


def score_redaction(rows: list[LabelledText], redactor: Redactor) -> RedactionScores:
    """Redact the rows' texts as one batch and compare with the labels."""
    scores = RedactionScores()
    group_of: dict[str, int] = {}
    groups = [group_of.setdefault(row.record if row.record is not None else f"\0{index}",
                                  len(group_of)) for index, row in enumerate(rows)]
    found = redactor.spans([row.text for row in rows], groups=groups)
    for row, spans in zip(rows, found, strict=True):
        redacted = _merge(spans)
        covered = set()
        for span in redacted:
            covered.update(range(span.start, span.end))
        for start, end, kind in row.spans:
            score = scores.kind(kind)
            score.labelled += 1
            if all(i in covered for i in range(start, end) if not row.text[i].isspace()):
                score.hidden += 1
                if any(s.kind == kind and s.start < end and start < s.end for s in redacted):
                    score.same_kind += 1
            else:
                scores.missed.append((kind, row.text[start:end]))
        for span in redacted:
            score = scores.kind(span.kind)
            score.redacted += 1
            if any(start < span.end and span.start < end for start, end, _ in row.spans):
                score.correct += 1
            else:
                scores.false_positives.append(
                    (span.kind, row.text[span.start:span.end], row.text))
    return scores


def markdown_table(scores: RedactionScores) -> str:
    """The per-kind table for ``bench/RESULTS.md``."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["| kind | labelled | recall | redacted | precision | kind agrees |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, score in [*sorted(scores.kinds.items()), ("**all**", scores.overall)]:
        agrees = score.same_kind / score.hidden if score.hidden else None
        lines.append(f"| {name} | {score.labelled} | {pct(score.recall)} | {score.redacted} | "
                     f"{pct(score.precision)} | {pct(agrees)} |")
    return "\n".join(lines)

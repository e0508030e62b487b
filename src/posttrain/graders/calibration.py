"""Judge calibration: agreement of judge graders with human labels (accuracy, Cohen's kappa).

Input: JSONL rows ``{"item": {...}, "sample": {...}, "label": true | false | number}``. A
boolean label is compared with the grade's ``passed``; a numeric label is binarised at
``threshold`` (default 0.5) on both sides and also reported as mean absolute error. Rows the
judge could not grade are counted, with their reasons (``problems``), not dropped silently, and
are left out of the agreement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.graders.base import Grader
from posttrain.types import Score


@dataclass
class Agreement:
    grader: str
    n: int = 0  # rows compared
    unscored: int = 0
    error: int = 0
    accuracy: float | None = None
    kappa: float | None = None
    mae: float | None = None
    confusion: dict[str, int] = field(default_factory=dict)  # tp fp fn tn (judge vs human)
    #: why rows were not graded: "unscored: <reason>" / "error: <reason>" -> rows, most first
    problems: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two binary raters; None without pairs; 1.0 when both are constant and
    agree (chance agreement 1 makes the ratio undefined)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    p_a = sum(a for a, _ in pairs) / n
    p_b = sum(b for _, b in pairs) / n
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def load_labels(path: str | Path) -> list[dict[str, Any]]:
    """Labelled rows ``{item, sample, label}`` of a JSONL file (UTF-8, BOM allowed)."""
    from posttrain.loaders.datasets import load_jsonl

    rows: list[dict[str, Any]] = []
    for number, row in load_jsonl(Path(path)):
        for key in ("item", "sample", "label"):
            if key not in row:
                raise UserError("required field is missing", file=path, line=number,
                                field=key)
        label = row["label"]
        if not isinstance(label, (bool, int, float)):
            raise UserError("must be a bool or a number", file=path, line=number,
                            field="label")
        rows.append(row)
    if not rows:
        raise UserError("no labelled rows", file=path)
    return rows


async def _grade(grader: Grader, sample: dict[str, Any], item: dict[str, Any]) -> Score:
    if grader.is_async:
        return await grader.agrade(sample, item)
    return grader.grade(sample, item)


async def acalibrate(graders: list[Grader], rows: list[dict[str, Any]],
                     threshold: float = 0.5, concurrency: int = 8) -> list[Agreement]:
    limit = asyncio.Semaphore(concurrency)

    async def one(grader: Grader, row: dict[str, Any]) -> Score:
        async with limit:
            return await _grade(grader, row["sample"], row["item"])

    results: list[Agreement] = []
    for grader in graders:
        scores = await asyncio.gather(*(one(grader, row) for row in rows))
        agreement = Agreement(grader=grader.name)
        pairs: list[tuple[bool, bool]] = []
        errors: list[float] = []
        for row, score in zip(rows, scores, strict=True):
            if score.status != "scored" or score.value is None:
                setattr(agreement, score.status, getattr(agreement, score.status) + 1)
                reason = f"{score.status}: {' '.join(score.explanation.split())[:160]}"
                agreement.problems[reason] = agreement.problems.get(reason, 0) + 1
                continue
            label = row["label"]
            if isinstance(label, bool):
                human = label
                judge = bool(score.passed) if score.passed is not None else score.value >= threshold
            else:
                human = float(label) >= threshold
                judge = score.value >= threshold
                errors.append(abs(score.value - float(label)))
            pairs.append((judge, human))
        agreement.n = len(pairs)
        agreement.problems = dict(sorted(agreement.problems.items(),
                                         key=lambda kv: (-kv[1], kv[0])))
        if pairs:
            agreement.accuracy = sum(a == b for a, b in pairs) / len(pairs)
            agreement.kappa = cohen_kappa(pairs)
            agreement.confusion = {
                "tp": sum(a and b for a, b in pairs), "fp": sum(a and not b for a, b in pairs),
                "fn": sum(b and not a for a, b in pairs),
                "tn": sum(not a and not b for a, b in pairs)}
        if errors:
            agreement.mae = sum(errors) / len(errors)
        results.append(agreement)
    return results


def calibrate(graders: list[Grader], rows: list[dict[str, Any]],
              threshold: float = 0.5) -> list[Agreement]:
    return asyncio.run(acalibrate(graders, rows, threshold))


def format_table(results: list[Agreement]) -> str:
    lines = [f"{'grader':<24} {'n':>5} {'acc':>6} {'kappa':>6} {'mae':>6} {'unscored':>9} "
             f"{'error':>6}"]
    for r in results:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        lines.append(f"{r.grader[:24]:<24} {r.n:>5} {fmt(r.accuracy):>6} {fmt(r.kappa):>6} "
                     f"{fmt(r.mae):>6} {r.unscored:>9} {r.error:>6}")
        lines += [f"  {count} x {reason}" for reason, count in r.problems.items()]
    return "\n".join(lines)

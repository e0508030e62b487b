"""A one-line progress display: done/total, rate, ETA, errors, retries, cost so far."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Counters:
    """Live counts for one run (one model × variant)."""

    label: str
    total: int
    done: int = 0
    errors: int = 0
    unscored: int = 0
    retries: int = 0
    requests: int = 0
    cached: int = 0
    cost_usd: float = 0.0
    grades: int = 0  # scores written (a regrade's rate)
    kept: int = 0  # answers a regrade did not grade again (items and graders unchanged)
    kept_grades: int = 0  # grades a regrade kept of answers it graded by other graders
    kept_graders: list[str] = field(default_factory=list)  # the graders of those grades
    not_in_eval: int = 0  # answers a regrade could not grade: their items left the eval
    #: answers a regrade did not grade again: their item's prompt changed since they were
    #: answered (they keep the grades of the question they answered)
    prompt_changed: int = 0
    started: float = field(default_factory=time.monotonic)


class Progress:
    """Redraws at most ten times a second on a terminal; silent when not a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.runs: list[Counters] = []
        self._last = 0.0

    def add(self, counters: Counters) -> Counters:
        self.runs.append(counters)
        return counters

    @staticmethod
    def line(c: Counters) -> str:
        elapsed = max(time.monotonic() - c.started, 1e-9)
        rate = c.done / elapsed
        remaining = (c.total - c.done) / rate if rate > 0 else float("inf")
        eta = "--" if remaining == float("inf") else f"{remaining:.0f}s"
        percent = 100 * c.done / c.total if c.total else 100
        return (f"{c.label}: {c.done}/{c.total} {percent:3.0f}% | {rate:.1f}/s | ETA {eta} | "
                f"errors {c.errors} | unscored {c.unscored} | retries {c.retries} | "
                f"cached {c.cached} | ${c.cost_usd:.4f}")

    def tick(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        text = "  ".join(self.line(c) for c in self.runs[-1:])
        if len(self.runs) > 1:
            done = sum(c.done for c in self.runs)
            total = sum(c.total for c in self.runs)
            text = f"[{len(self.runs)} runs {done}/{total}] " + text
        self.stream.write("\r\x1b[2K" + text[:200])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.runs:
            self.stream.write("\r\x1b[2K")
            for counters in self.runs:
                self.stream.write(self.line(counters) + "\n")
            self.stream.flush()

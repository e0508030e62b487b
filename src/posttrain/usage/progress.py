"""Progress of a long ``posttrain ingest`` on stderr: a bar on a terminal, else a plain line
every :data:`LINE_EVERY_S` seconds (a short ingest prints none). Never on stdout, so
``--json`` output stays one object."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: seconds between two plain progress lines when stderr is not a terminal
LINE_EVERY_S = 10.0
#: seconds between two redraws of the bar on a terminal
REDRAW_S = 0.1
_WIDTH = 24


class StageProgress:
    """``stage(name, total)`` starts a stage; ``advance(n)`` counts its work done."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 enabled: bool = True, label: str = "posttrain ingest") -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.enabled = enabled
        self.label = label
        self.name = ""
        self.total: int | None = None
        self.done = 0
        self.started = self._stage_started = time.monotonic()
        self._last = self.started
        self._drawn = False

    def stage(self, name: str, total: int | None = None) -> None:
        self.name, self.total, self.done = name, total, 0
        self._stage_started = time.monotonic()
        self._render(force=self.tty)

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._render()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * round(share * _WIDTH)
            return (f"{self.label}: {self.name} [{bar:<{_WIDTH}}] {self.done}/{self.total} "
                    f"{100 * share:3.0f}% | {elapsed:.0f}s")
        counted = f" {self.done}" if self.done else ""
        return f"{self.label}: {self.name}{counted} | {elapsed:.0f}s"

    def _render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < REDRAW_S:
                return
            self.stream.write("\r\x1b[2K" + self.line()[:200])
            self._drawn = True
        else:
            if now - self._last < LINE_EVERY_S:
                return
            self.stream.write(self.line() + "\n")
        self._last = now
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar (the summary follows on stdout)."""
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

"""Grading part of a bulk regrade's answers in a second process (``os.fork``), while this one
reads the run's stored grades and grades the rest.

Only for graders that say they are deterministic (``string_check``, ``string_match``: pure
functions of the answer and the item, no state, no I/O), so the grades are those this process
would give; only on Linux with more than one usable core and enough answers to pay for the
second process. The helper writes its grades (one list of rows per answer, in order) to a
temporary file and exits; if it fails in any way (killed, out of memory, an unreadable file),
this process grades those answers itself: the result is the same either way.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any

from posttrain.graders.base import Grader

#: fewer answers than this are graded in this process alone (a fork costs ~10 ms and the hand
#: back ~1.5 us an answer)
MIN_ANSWERS = 20_000
#: the share of the answers the helper grades: this process also reads the stored grades and
#: the run's items meanwhile
HELPER_SHARE = 0.8


def usable(graders: Sequence[Grader], answers: int) -> bool:
    """Whether the answers are graded in two processes."""
    if answers < MIN_ANSWERS or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores > 1 and all(grader.deterministic for top in graders for grader in top.walk())


class Helper:
    """A forked process grading ``answers[start:]`` with ``grade`` (answer -> rows)."""

    def __init__(self, grade: Callable[[Any], list[Any]], answers: Sequence[Any],
                 start: int) -> None:
        self.start = start
        # kept open from here to results(): the helper writes it, this process reads it
        self._file: IO[bytes] | None = tempfile.TemporaryFile()  # noqa: SIM115
        self._pid: int | None = None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the helper: never returns
            code = 1
            try:
                rows = [grade(answer) for answer in answers[start:]]
                pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)
                self._file.flush()
                code = 0
            finally:
                os._exit(code)
        self._pid = pid

    def results(self) -> list[list[Any]] | None:
        """The helper's rows, one list per answer from ``start`` on; None when it failed (the
        caller checks their count)."""
        assert self._pid is not None and self._file is not None
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        rows = None
        if os.waitstatus_to_exitcode(status) == 0:
            try:
                self._file.seek(0)
                rows = pickle.load(self._file)  # noqa: S301 - written by our own fork
            except Exception:  # noqa: BLE001 - graded here instead
                rows = None
        self.close()
        return rows

    def close(self) -> None:
        """Stop the helper if it still runs (this process failed first) and drop its file."""
        if self._pid is not None:
            try:
                os.kill(self._pid, 9)
                os.waitpid(self._pid, 0)
            except OSError:
                pass
            self._pid = None
        if self._file is not None:
            self._file.close()
            self._file = None

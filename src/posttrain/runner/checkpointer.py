"""WAL checkpoints off the event loop's thread while a run writes.

SQLite checkpoints by itself inside a commit once the WAL passes ~4 MB, and a checkpoint syncs
the WAL and the database file: on a slow disk each one holds the event loop (and every request
in flight) for milliseconds to tens of milliseconds. While the runner groups its commits
(``Store.group_commits``), the writing connection's automatic checkpoint is off and this thread,
on its own connection, runs a PASSIVE checkpoint every :data:`EVERY_S` seconds. It waits on
SQLite with the GIL released, so the loop keeps answering meanwhile.

Durability is unchanged: every commit is in the WAL before the loop moves on (a killed process
loses nothing committed); only the copy into the database file moves to this thread. The WAL
stays bounded: once a checkpoint has copied all of it, the next commit starts it again from
the beginning (and ``journal_size_limit`` cuts the file back).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

#: seconds between two background checkpoints
EVERY_S = 0.5


class Checkpointer:
    """A daemon thread checkpointing ``path``'s WAL (see the module's docstring)."""

    def __init__(self, path: Path, every_s: float = EVERY_S) -> None:
        self.path = path
        self.every_s = every_s
        self.checkpoints = 0  # how many ran (tests, benchmarks)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="posttrain-checkpointer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            self.error = exc
            return
        try:
            while not self._stop.wait(self.every_s):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1
        except sqlite3.Error as exc:  # the writer's own checkpoints take over (Store.flush)
            self.error = exc
        finally:
            conn.close()

    @property
    def alive(self) -> bool:
        return self.error is None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

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
the beginning (and ``journal_size_limit`` cuts the file back). A PASSIVE checkpoint never
gets there while commits keep arriving (each one appends past what it copied: a 20k-item run
grew its WAL to 755 MB), so once the WAL holds more than :data:`RESTART_AT_BYTES` this thread
asks for a RESTART checkpoint: it holds new commits back while it copies the few frames the
PASSIVE one left (the runner's next commit waits for it, ~milliseconds) and makes the next
commit start the WAL again. It waits at most :data:`RESTART_WAIT_S` for a reader (``posttrain
view``) to let go; if one does not, it gives up and tries again at its next turn.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

#: seconds between two background checkpoints
EVERY_S = 0.5
#: a WAL holding more than this asks for a RESTART checkpoint (``Store``'s ``journal_size_limit``
#: then cuts the file back to the same size)
RESTART_AT_BYTES = 64 * 1024 * 1024
#: how long a RESTART checkpoint waits for readers before it gives up until the next turn
RESTART_WAIT_S = 0.25


class Checkpointer:
    """A daemon thread checkpointing ``path``'s WAL (see the module's docstring)."""

    def __init__(self, path: Path, every_s: float = EVERY_S) -> None:
        self.path = path
        self.every_s = every_s
        self.checkpoints = 0  # how many ran (tests, benchmarks)
        self.restarts = 0  # RESTART checkpoints that completed
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
            conn.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT_S * 1000)}")
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            while not self._stop.wait(self.every_s):
                _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1
                if frames * page > RESTART_AT_BYTES:
                    busy, _frames, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(RESTART)").fetchone()
                    self.restarts += 0 if busy else 1
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

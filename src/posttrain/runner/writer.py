"""The answers' SQLite writes on a thread of their own while a run writes.

A fresh run at zero latency is CPU-bound in one process, and a fifth of that CPU went to the
answers' ``executemany`` and ``COMMIT`` on the event loop's thread. With ``Store.group_commits(
loop, background_writes=True)`` the rows an event-loop iteration recorded are handed to this
thread at the iteration's end; it writes every batch it finds waiting in one transaction, on its
own connection, and SQLite runs the inserts and the commit with the GIL released: the loop goes
on meanwhile.

Durability is unchanged in what it promises: an answer is acknowledged only once committed. Each
batch carries a future of the loop, resolved (or failed, with the write's error) when its
transaction has committed; the runner's worker awaits it before it takes its next sample, so a
worker holds at most one answer that is not durable (its request in flight or its row waiting
for the commit) and a SIGKILL repeats no more than the run's in-flight requests on resume.
"""

from __future__ import annotations

import math
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

#: one answer's rows: (samples row, cache row or None, scores rows)
Rows = list[tuple[tuple[Any, ...], tuple[Any, ...] | None, list[tuple[Any, ...]]]]


class Writer:
    """A daemon thread that commits batches of answers' rows (see the module's docstring).

    ``statements``: the samples, cache and scores INSERT statements (``runner.store``);
    ``resolve(future, error)`` is called on the loop's thread for each batch once written."""

    def __init__(self, path: Path, loop: Any, statements: Sequence[str],
                 resolve: Callable[[Any, BaseException | None], None],
                 *, autocheckpoint: bool = True) -> None:
        self.path = path
        self.loop = loop
        self.sample_sql, self.cache_sql, self.score_sql = statements
        self.resolve = resolve
        self.autocheckpoint = autocheckpoint
        self.commits = 0  # transactions committed (tests, benchmarks)
        self.error: BaseException | None = None  # the first write that failed
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="posttrain-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            raise self.error

    def submit(self, rows: Rows, future: Any) -> None:
        """Write ``rows`` in a coming transaction, then resolve ``future`` on the loop."""
        self._queue.put((rows, future))

    def sync(self) -> None:
        """Block until every batch submitted so far is written (raises the first error)."""
        done = threading.Event()
        self._queue.put((None, done))
        done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def stop(self) -> None:
        """Write what is waiting, then end the thread (raises the first error)."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            if not self.autocheckpoint:  # a Checkpointer thread copies the WAL
                conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.executescript(batch_trigger((self.sample_sql, self.cache_sql, self.score_sql)))
        except sqlite3.Error as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                jobs = [self._queue.get()]
                while True:  # every batch waiting goes in one transaction
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if any(job is None for job in jobs):
                    stopping = True
                batches = [job for job in jobs if job is not None and job[0] is not None]
                error = self._write(conn, [row for rows, _f in batches for row in rows]) \
                    if batches else None
                for _rows, future in batches:
                    self.loop.call_soon_threadsafe(self.resolve, future, error)
                for job in jobs:
                    if job is not None and job[0] is None:
                        job[1].set()  # a sync() waits for this
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, rows: Rows) -> BaseException | None:
        samples = [sample for sample, _c, _s in rows]
        cache = [entry for _sample, entry, _scores in rows if entry is not None]
        scores = [score for _s, _c, scores in rows for score in scores]
        try:
            body = _json_rows([samples, cache, scores])
            if body is not None:  # one statement: its inserts and commit without the GIL
                conn.execute("INSERT INTO temp.answer_batch VALUES (?)", (body,))
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, table in ((self.sample_sql, samples), (self.cache_sql, cache),
                                       (self.score_sql, scores)):
                        if table:
                            conn.executemany(sql, table)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - the batch's waiters and the next sync() raise it
            if self.error is None:
                self.error = exc
            return exc
        self.commits += 1
        return None


_INF = (math.inf, -math.inf)


def _json_rows(tables: list[list[tuple[Any, ...]]]) -> bytes | None:
    """The tables' rows as one JSON array, or None where JSON cannot carry them exactly (an
    infinite float, an integer beyond 64 bits, bytes): those go by ``executemany``. JSON
    numbers read back in SQLite as the same doubles and integers."""
    if any(value in _INF for rows in tables for row in rows for value in row
           if value.__class__ is float):
        return None
    try:
        return orjson.dumps(tables)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None


def batch_trigger(statements: Sequence[str]) -> str:
    """A temporary view whose INSERT writes one batch (a JSON array of the samples, cache and
    scores rows) with the three ``INSERT ... VALUES`` statements, in the one statement's
    transaction: SQLite runs all of it, commit included, with the GIL released, where
    ``executemany`` takes the GIL back between rows (a wait of up to the interpreter's switch
    interval each while the loop's thread runs)."""
    parts = []
    for index, sql in enumerate(statements):
        head, _sep, values = sql.rpartition("VALUES")
        columns = ", ".join(f"value->>{column}" for column in range(values.count("?")))
        parts.append(f"{head}SELECT {columns} FROM json_each(NEW.body, '$[{index}]');")
    return ("CREATE TEMP VIEW IF NOT EXISTS answer_batch(body) AS SELECT NULL;\n"
            "CREATE TEMP TRIGGER IF NOT EXISTS answer_batch_insert INSTEAD OF INSERT ON "
            "answer_batch BEGIN\n" + "\n".join(parts) + "\nEND;")

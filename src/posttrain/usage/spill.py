"""Redacted log records kept on disk during ``posttrain ingest``, not in memory.

A private temporary SQLite file (deleted when closed) with a small page cache holds each
redacted record (pickled: read back exactly as it was), its dedup priority, its dedup text,
its dedup context (what else makes two alike texts different items), its correction and its
theme text. Ingest reads them back in the order each stage needs: the dedup texts in priority
order, the survivors' theme texts, the chosen records to write. Only redacted records are ever
written here.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from posttrain.usage.logs import LogRecord

#: ids read back per statement (SQLite allows 32,766 parameters)
_CHUNK = 900


class Spill:
    def __init__(self) -> None:
        self.conn = sqlite3.connect("", isolation_level=None)  # a private temporary file
        self.conn.execute("PRAGMA cache_size = -8000")  # 8 MB of pages; the rest on disk
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("CREATE TABLE records (idx INTEGER PRIMARY KEY, priority INTEGER "
                          "NOT NULL, dedup TEXT NOT NULL, context TEXT NOT NULL, "
                          "theme TEXT NOT NULL, correction TEXT, body BLOB NOT NULL)")
        self._count = 0

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def __len__(self) -> int:
        return self._count

    def add(self, records: Iterable[LogRecord]) -> None:
        """Keep redacted records, in the order read."""
        from posttrain.usage.ingest import (
            _correction_key,
            _dedup_context,
            _dedup_text,
            _priority,
            _theme_text,
        )

        rows = []
        for record in records:
            rows.append((self._count, _priority(record), _dedup_text(record),
                         _dedup_context(record), _theme_text(record), _correction_key(record),
                         pickle.dumps(record, pickle.HIGHEST_PROTOCOL)))
            self._count += 1
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", rows)

    def dedup_texts(self) -> Iterator[tuple[int, str, str, str | None]]:
        """(index, dedup text, dedup context, correction) of every record, preferred rows
        first (feedback), then in the order read."""
        self.conn.execute("CREATE INDEX IF NOT EXISTS records_priority ON records(priority, idx)")
        yield from self.conn.execute("SELECT idx, dedup, context, correction FROM records "
                                     "ORDER BY priority, idx")

    def forget_feedback(self, index: int, keys: list[str]) -> None:
        """Take the feedback fields ``keys`` (a feedback file's, joined by id: ``_join_feedback``)
        off record ``index`` again, and its priority with them (its id turned out to be on
        more than one log line). Only values it is known to hold are dropped: nothing in the
        spill is ever unredacted."""
        from posttrain.usage.ingest import _correction_key, _priority
        from posttrain.usage.logs import rating_label

        record = next(self.records([index]))
        if "line" in keys:  # the record had no feedback of its own
            record.feedback = None
        else:
            feedback = {k: v for k, v in (record.feedback or {}).items() if k not in keys}
            feedback["rating_label"] = rating_label(feedback.get("rating"))
            record.feedback = feedback
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "UPDATE records SET priority = ?, correction = ?, body = ? WHERE idx = ?",
                (_priority(record), _correction_key(record),
                 pickle.dumps(record, pickle.HIGHEST_PROTOCOL), index))

    def _column(self, column: str, indices: list[int]) -> list[Any]:
        out = []
        for start in range(0, len(indices), _CHUNK):
            chunk = indices[start:start + _CHUNK]
            found = dict(self.conn.execute(f"SELECT idx, {column} FROM records WHERE idx IN "
                                           f"({','.join('?' * len(chunk))})", chunk))
            out.extend(found[i] for i in chunk)
        return out

    def theme_texts(self, indices: list[int]) -> list[str]:
        return self._column("theme", indices)

    def priorities(self, indices: list[int]) -> list[int]:
        return self._column("priority", indices)

    def records(self, indices: Iterable[int]) -> Iterator[LogRecord]:
        """The records of ``indices`` (in increasing order), one at a time."""
        wanted = list(indices)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            found = dict(self.conn.execute(f"SELECT idx, body FROM records WHERE idx IN "
                                           f"({','.join('?' * len(chunk))})", chunk))
            for index in chunk:
                yield pickle.loads(found[index])

"""The SQLite store: every run, item, completion, score, cost and latency; the response cache.

WAL mode with ``synchronous=NORMAL``: each completion is committed as it arrives (tens of
microseconds) and survives a killed process. Tables:

- ``runs``: one eval × model × variant (× epochs); ``status`` running / finished.
- ``run_items``: the items a run covers (id, tags, row data) so reports need no eval file.
- ``samples``: one model answer per (run, item, epoch): completion JSON, status ok / error,
  error reason, attempts (retries = attempts - 1), tokens, cost, latency, cache hit.
- ``scores``: one row per (run, item, epoch, grader): value, passed, status, explanation,
  sub-scores JSON.
- ``cache``: request key -> response JSON, so a repeated run costs zero requests; with the
  model's cache id, the identity its endpoint reported (``posttrain.models.identity``) and the
  time, so an entry is served only to the same model and within the expiry
  (``posttrain.runner.cache``). ``posttrain cache ls|clear`` reads and prunes it.
- ``votes``: blind pairwise preferences (web review), ``reviews``: item flags and edits.
- ``steps``: the messages of agentic (``solver:``) samples as they join the transcript, and
  pauses, so ``posttrain view`` can follow a run live by tailing this table; ``position`` is
  the message's index in the transcript (a row for a position seen before replaces it: a
  reviewer's edit).
- ``sample_facts``, ``item_cells``, ``run_columns``: each finished run's score facts (per answer,
  per item, packed per-item columns), built from the tables above by ``posttrain.runner.facts``
  when the run finishes or on first read, and served while the run is unchanged: what compare,
  audit, the kept summaries and the viewer's matrix read instead of every answer.
- ``steering``: the control channel from a reviewer to a running episode: ``pause`` and
  ``resume`` (with the intervention) rows, written by the viewer, read by the runner between
  turns; ``status`` pending / taken / applied / refused / expired.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from posttrain.types import Completion, Item, Score

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    eval_name TEXT NOT NULL,
    eval_path TEXT,
    eval_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    epochs INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'running',
    config TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS runs_key ON runs(run_key, status);
CREATE INDEX IF NOT EXISTS runs_eval ON runs(eval_name, created);
CREATE TABLE IF NOT EXISTS run_items (
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, item_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    status TEXT NOT NULL,
    request_key TEXT,
    completion TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    latency_s REAL,
    cached INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, item_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    grader TEXT NOT NULL,
    value REAL,
    passed INTEGER,
    status TEXT NOT NULL,
    explanation TEXT,
    sub_scores TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, item_id, epoch, grader)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS score_history (
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    grader TEXT NOT NULL,
    value REAL,
    passed INTEGER,
    status TEXT NOT NULL,
    item_changed INTEGER NOT NULL DEFAULT 0,
    replaced REAL NOT NULL,
    grader_changed INTEGER
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    created REAL NOT NULL,
    model TEXT,
    identity TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_a TEXT NOT NULL,
    run_b TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    winner TEXT NOT NULL,
    voter TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    position INTEGER,
    turn INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_sample ON steps(run_id, item_id, epoch, id);
CREATE TABLE IF NOT EXISTS steering (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',
    note TEXT,
    created REAL NOT NULL,
    updated REAL
);
CREATE INDEX IF NOT EXISTS steering_sample ON steering(run_id, item_id, epoch, status);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    eval_name TEXT NOT NULL,
    item_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    note TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_eval ON reviews(eval_name, id);
CREATE TABLE IF NOT EXISTS run_revisions (
    run_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_summaries (
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    stamp TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, kind)
) WITHOUT ROWID;
"""

#: every write to a run's answers, grades or items bumps its revision, whoever writes (these
#: triggers live in the file): a summary stored under an older revision is never served
_REVISION_TABLES = ("samples", "scores", "run_items")


def _revision_triggers(tables: Sequence[str] = _REVISION_TABLES) -> str:
    bump = ("INSERT INTO run_revisions (run_id, revision) VALUES ({row}.run_id, 1) "
            "ON CONFLICT(run_id) DO UPDATE SET revision = revision + 1;")
    parts = []
    for table in tables:
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            parts.append(f"CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()}_revision "
                         f"AFTER {event} ON {table} BEGIN {bump.format(row=row)} END;")
    return "\n".join(parts)

#: the WAL file is cut back to this size after a checkpoint (SQLite checkpoints by itself every
#: ~4 MB of writes; without a limit the file keeps its largest size until the last close)
WAL_SIZE_LIMIT = 64 * 1024 * 1024
#: a long run forces a TRUNCATE checkpoint after this many group commits, so the WAL stays
#: small even while a reader (``posttrain view``) keeps the automatic checkpoint from finishing
CHECKPOINT_EVERY_COMMITS = 2000


#: columns added after a table was first released: (table, column, declaration). A store
#: written by an older version gains them on open; nothing already stored is rewritten.
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("scores", "cost_usd", "REAL NOT NULL DEFAULT 0"),  # a judge's calls for this grade
    ("scores", "requests", "INTEGER NOT NULL DEFAULT 0"),
    ("scores", "confinement", "TEXT"),  # the sandbox layer model-written code ran in
    ("scores", "retries", "INTEGER NOT NULL DEFAULT 0"),
    # whether the grader spec that gave the old grade differs from the one that replaced it
    # (1), is the same (0), or is not known (NULL: every row a re-grade kept before it existed)
    ("score_history", "grader_changed", "INTEGER"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in _ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise


def request_key(model_id: str, payload: dict[str, Any], epoch: int = 0,
                scope: str | None = None, prompt_format: str | None = None) -> str:
    """Cache key of a request: the model identity, the request body, the epoch and the scope.

    The epoch is part of the key so ``--epochs K`` draws K independent samples rather than
    serving K copies of one cached answer. ``scope`` (``eval:NAME``, ``run:ID``) keeps answers
    to one eval or run; None (global) gives the keys of earlier versions. ``prompt_format``:
    the version of how a local engine turns the request into its prompt (where that is
    posttrain's code, not the model's, e.g. tools written into the system message), so a
    changed rendering is never answered from the old one's cache.
    """
    material: dict[str, Any] = {"model": model_id, "body": payload, "epoch": epoch}
    if scope is not None:
        material["scope"] = scope
    if prompt_format is not None:
        material["prompt_format"] = prompt_format
    body = orjson.dumps(material, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def cache_entry_valid(created: float, stored_identity: str | None, *,
                      max_age_s: float | None = None, identity: dict[str, Any] | None = None,
                      now: float | None = None) -> bool:
    """Whether a cache entry may be served: written less than ``max_age_s`` ago (None: any
    age), by a model whose recorded identity agrees with ``identity`` (the endpoint's now)."""
    if max_age_s is not None and created < (time.time() if now is None else now) - max_age_s:
        return False
    if identity and stored_identity:
        from posttrain.models.identity import identity_matches

        return identity_matches(orjson.loads(stored_identity), identity)
    return True


def cache_read(conn: sqlite3.Connection, key: str, *, max_age_s: float | None = None,
               identity: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A cache entry's response record if it is valid (shared by the store and Ray workers)."""
    row = conn.execute("SELECT response, created, identity FROM cache WHERE key = ?",
                       (key,)).fetchone()
    if row is None or not cache_entry_valid(row[1], row[2], max_age_s=max_age_s,
                                            identity=identity):
        return None
    return orjson.loads(row[0])


#: rows of a chunk of keys read by one statement (SQLite allows 32,766 parameters)
_KEYS_PER_READ = 900


def cache_read_many(conn: sqlite3.Connection, keys: Sequence[str], *,
                    max_age_s: float | None = None, identity: dict[str, Any] | None = None,
                    texts: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """:func:`cache_read` of many keys: the valid entries' response records, by key
    (``texts``: filled with their responses as stored, by key)."""
    found: dict[str, dict[str, Any]] = {}
    now = time.time()
    verdicts: dict[str | None, bool] = {}  # entries share a few recorded identities
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _KEYS_PER_READ):
        chunk = unique[start:start + _KEYS_PER_READ]
        rows = conn.execute("SELECT key, response, created, identity FROM cache WHERE key IN "
                            f"({','.join('?' * len(chunk))})", chunk)
        for key, response, created, stored_identity in rows:
            if max_age_s is not None and created < now - max_age_s:
                continue
            agrees = verdicts.get(stored_identity)
            if agrees is None:
                agrees = verdicts[stored_identity] = cache_entry_valid(
                    created, stored_identity, identity=identity, now=now)
            if agrees:
                found[key] = orjson.loads(response)
                if texts is not None:
                    texts[key] = response
    return found


def _score_rows(run_id: str, item_id: str, epoch: int,
                scores: Iterable[Score]) -> list[tuple[Any, ...]]:
    return [(run_id, item_id, epoch, s.name, s.value, None if s.passed is None else int(s.passed),
             s.status, s.explanation, orjson.dumps(s.sub_scores).decode(), s.cost_usd,
             s.requests, s.confinement, s.retries) for s in scores]


_INSERT_SAMPLE = ("INSERT OR REPLACE INTO samples (run_id, item_id, epoch, status, request_key, "
                  "completion, error, attempts, input_tokens, output_tokens, cost_usd, "
                  "latency_s, cached, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_INSERT_CACHE = ("INSERT OR REPLACE INTO cache (key, response, created, model, identity) "
                 "VALUES (?,?,?,?,?)")
_INSERT_SCORE = ("INSERT OR REPLACE INTO scores (run_id, item_id, epoch, grader, value, passed, "
                 "status, explanation, sub_scores, cost_usd, requests, confinement, retries) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")


@dataclass(slots=True)
class RunInfo:
    id: str
    eval_name: str
    eval_path: str | None
    eval_hash: str
    model: str
    variant: str
    epochs: int
    status: str
    config: dict[str, Any]
    created: float
    finished: float | None


#: run config keys no summary depends on: changing them leaves the run's stamp (and its kept
#: summaries and facts) as it is
_UNSTAMPED = frozenset({"graded_with"})


def _read_only_error(text: str) -> bool:
    """Whether SQLite's error says the database (or its folder) cannot be written."""
    return "readonly" in text or "read-only" in text


def _run_from_row(row: sqlite3.Row) -> RunInfo:
    return RunInfo(
        id=row["id"], eval_name=row["eval_name"], eval_path=row["eval_path"],
        eval_hash=row["eval_hash"], model=row["model"], variant=row["variant"],
        epochs=row["epochs"], status=row["status"], config=json.loads(row["config"] or "{}"),
        created=row["created"], finished=row["finished"],
    )


#: the largest integer SQLite stores (64-bit): a LIMIT or OFFSET past it overflowed
_MAX_SQL_INT = 2**63 - 1


def like_prefix(text: str) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching the strings that start with ``text``:
    its ``%``, ``_`` and ``\\`` are literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _latest_offset(ref: str) -> int:
    """N of ``latest~N`` (0 for ``latest``): digits only, else a UserError naming the ref."""
    from posttrain.errors import UserError

    if ref == "latest":
        return 0
    text = ref.split("~", 1)[1]
    if not (text.isascii() and text.isdigit()):
        raise UserError(f"run {ref!r}: latest~N takes N, the runs before the newest, as a whole "
                        "number 0 or more (latest~1: the run before the newest)", field="RUN")
    return int(text)


def _run_limit(limit: Any) -> int:
    """A ``list_runs`` limit for SQL: an integer of 1 or more (one too large for SQLite is cut
    to the largest it holds: every run)."""
    from posttrain.errors import UserError

    if isinstance(limit, bool) or not isinstance(limit, int):
        raise UserError(f"the number of runs to list must be an integer, got {limit!r}",
                        field="--limit")
    if limit < 1:
        raise UserError(f"the number of runs to list must be at least 1, got {limit}",
                        field="--limit")
    return min(limit, _MAX_SQL_INT)


class Store:
    """A connection to the store. Not shared across threads; open one per process/thread."""

    def __init__(self, path: str | Path = "posttrain.db", *, reading: bool = False) -> None:
        """``reading``: the caller only reads (report, compare, ...): a store this process cannot
        write (a read-only file or folder, an archive) is opened read-only instead of refused
        (``read_only`` is then True, and any write fails). Writers leave it False: a store
        they cannot write is refused before anything runs."""
        from posttrain.errors import UserError

        self.path = Path(path)
        #: opened read-only (``reading=True`` on a store this process cannot write)
        self.read_only = False
        self._loop: Any = None
        self._commit_scheduled = False
        self._commits = 0
        #: answers recorded in this event-loop iteration, written together at its commit
        self._rows: list[tuple[tuple[Any, ...], tuple[Any, ...] | None, list[tuple[Any, ...]]]] = []
        self._failed: BaseException | None = None  # a grouped write that failed (raised next)
        self._checkpointer: Any = None
        if self.path.is_dir():
            raise UserError("is a folder: --store takes a store file (a new name creates one)",
                            file=self.path.resolve())
        if reading:  # a reader never writes a schema into an empty file it was pointed at
            from posttrain.runner.store_file import refuse_empty_store

            refuse_empty_store(self.path)
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0,
                                        check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open the store: {exc}", file=self.path.resolve()) from None
        try:
            self._open_retrying()
        except UserError:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            text = str(exc)
            # a read-only file, or a WAL store in a folder this process cannot write (SQLite
            # cannot make its shared-memory file: "unable to open database file")
            if reading and (_read_only_error(text) or "unable to open" in text) \
                    and self._open_read_only():
                return
            wal = self.path.with_name(self.path.name + "-wal")
            if reading and "unable to open" in text and wal.exists():
                reason = (f"cannot read the store: its folder is read-only and its write-ahead "
                          f"log ({wal.name}) lies beside it, which SQLite must open for writing; "
                          "copy the store and its -wal file to a writable folder")
            elif "not a database" in text or "malformed" in text:
                reason = ("not a posttrain store (not an SQLite database): --store takes a "
                          "store file (a new name creates one)")
            elif _read_only_error(text) or ("unable to open" in text and not os.access(
                    self.path.resolve().parent, os.W_OK)):
                reason = "cannot write the store: the file (or its folder) is read-only"
            else:
                reason = f"cannot open the store: {text}"
            raise UserError(reason, file=self.path.resolve()) from None

    def _open_read_only(self) -> bool:
        """Open the store read-only (SQLite's ``mode=ro``), without the schema and migrations
        a writer applies; False when it cannot be (then the caller refuses it). In a folder
        this process cannot write either, SQLite cannot make the WAL's shared-memory file: with
        no WAL beside the store (no writer can be at work there) it is opened ``immutable``."""
        base = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        wal = self.path.with_name(self.path.name + "-wal")
        conn = tables = None
        for uri in (base, f"{base}&immutable=1"):
            if uri != base and wal.exists():
                break
            try:
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0,
                                       check_same_thread=False)
                tables = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                break
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
                conn = None
        if conn is None or tables is None:
            return False
        if not {"meta", "runs", "samples", "scores", "run_items"} <= tables:
            conn.close()  # not a posttrain store, or one too old to read without migrating
            return False
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")  # mode=ro: the store refuses writes, while
        self.conn = conn  # this connection's TEMP tables (facts not kept) still take them
        self.read_only = True
        return True

    def _open_retrying(self) -> None:
        """:meth:`_open`, tried again for up to ~10 s while another process creates the same
        new store: switching a new file to WAL takes a lock SQLite does not wait for (two evals
        started at once on a new store: one failed with "database is locked")."""
        for attempt in range(100):
            try:
                self._open()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.1)

    def _open(self) -> None:
        tables = {row[0] for row in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = "meta" in tables or ("runs" in tables and "run_key" in {
            row[1] for row in self.conn.execute("PRAGMA table_info(runs)")})
        if tables and not ours:  # another program's database (even one with a `runs` table)
            from posttrain.errors import UserError

            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise UserError("not a posttrain store: an SQLite database of something else "
                            f"(tables {shown}); --store takes a posttrain store (a new name "
                            "creates one)", file=self.path.resolve())
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self.conn.executescript(_SCHEMA)
        self.conn.executescript(_revision_triggers())
        _add_missing_columns(self.conn)
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                          (str(SCHEMA_VERSION),))
        self._migrate_cache()
        self._migrate_indexes()

    def _migrate_cache(self) -> None:
        """Stores written before cache identities: add the columns (old entries keep working,
        with no identity to check, within the expiry). Stores that have the old index on the
        cache's ``model`` lose it: its entries were as random as the cache's keys, so every
        answer a run wrote touched a second random page (~7% of a fresh 100k eval's wall time,
        ``bench/RESULTS.md``); ``cache clear --model`` and ``cache stats``, rare commands, scan
        the cache instead (~0.1 s a million entries' keys on this machine)."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(cache)")}
        for column in ("model", "identity"):
            if column not in columns:
                try:
                    self.conn.execute(f"ALTER TABLE cache ADD COLUMN {column} TEXT")
                except sqlite3.OperationalError:  # another process added it just now
                    pass
        try:
            self.conn.execute("DROP INDEX IF EXISTS cache_model")
        except sqlite3.OperationalError:  # a read-only store keeps it (reads work either way)
            pass

    def _migrate_indexes(self) -> None:
        """The index of ``score_history`` serves a run's history and one answer's (run, item,
        epoch): stores written before it had one on ``run_id`` only, so the viewer's samples
        page of a re-graded run looked up each answer's history through all the run's (~12 ms
        a row at 20k samples). Their old index is dropped (this one serves its queries). A
        read-only store keeps what it has (reads work either way, slower)."""
        try:
            self.conn.execute("CREATE INDEX IF NOT EXISTS score_history_key "
                              "ON score_history(run_id, item_id, epoch)")
            self.conn.execute("DROP INDEX IF EXISTS score_history_run")
        except sqlite3.OperationalError:
            pass

    # ---- commits -----------------------------------------------------------------------------
    def group_commits(self, loop: Any, *, background_checkpoints: bool = False) -> None:
        """Commit the writes of one event-loop iteration together (None: commit each write).

        Answers that arrive in the same iteration share one commit at its end, before the loop
        runs anything else: as durable as a commit per answer, at a fraction of the cost. Their
        rows are written then, one statement per table (``record_sample``).

        ``background_checkpoints``: until grouping ends, WAL checkpoints run in a thread of
        their own (``posttrain.runner.checkpointer``), not inside this loop's commits.
        """
        if loop is None:
            try:
                self.flush()
            finally:
                self._stop_checkpointer()
        elif background_checkpoints and self._checkpointer is None and self.path.exists():
            from posttrain.runner.checkpointer import Checkpointer

            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = Checkpointer(self.path)
        self._loop = loop

    def _stop_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
            self.conn.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default

    def flush(self) -> None:
        """Commit what this iteration wrote. A write that fails here (the disk is full) is
        raised by the next write, or by ``group_commits(None)``, instead of being lost in the
        event loop's callback."""
        self._commit_scheduled = False
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        try:
            self._drain()
        except BaseException:
            self.conn.rollback()
            raise
        if self.conn.in_transaction:
            self.conn.commit()
            self._commits += 1
            checkpointer = self._checkpointer
            if (checkpointer is None or not checkpointer.alive) \
                    and self._commits % CHECKPOINT_EVERY_COMMITS == 0:
                self.checkpoint("PASSIVE")

    def _flush_soon(self) -> None:
        """The end of an event-loop iteration: commit (a failure is kept and raised by the next
        write, not lost in the loop's callback)."""
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - raised again by the next write
            self._failed = exc

    def _drain(self) -> None:
        """Write the answers recorded since the last commit (inside the open transaction)."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self.conn.executemany(_INSERT_SAMPLE, [sample for sample, _cache, _scores in rows])
        cache = [entry for _sample, entry, _scores in rows if entry is not None]
        if cache:
            self.conn.executemany(_INSERT_CACHE, cache)
        self.conn.executemany(_INSERT_SCORE, [score for _s, _c, scores in rows
                                              for score in scores])

    # ---- stored summaries ----------------------------------------------------------------------
    def run_stamp(self, run: RunInfo) -> str:
        """What a summary of ``run`` depends on: its answers, grades and items (the revision the
        triggers keep), its status and its config (less ``graded_with``: which grader spec gave
        its grades, read by ``audit`` and ``regrade`` only, noted by a re-grade around its
        writes). Read it *before* computing a summary."""
        row = self.conn.execute("SELECT revision FROM run_revisions WHERE run_id = ?",
                                (run.id,)).fetchone()
        shown = {k: v for k, v in run.config.items() if k not in _UNSTAMPED}
        config = hashlib.blake2b(json.dumps(shown, sort_keys=True, default=str).encode(),
                                 digest_size=8).hexdigest()
        return f"{row[0] if row else 0}:{run.status}:{run.finished}:{run.epochs}:{config}"

    def summary_get(self, run: RunInfo, kind: str) -> tuple[str, Any]:
        """(the run's stamp now, the summary of this kind stored under that stamp or None)."""
        stamp = self.run_stamp(run)
        row = self.conn.execute("SELECT stamp, body FROM run_summaries WHERE run_id = ? AND "
                                "kind = ?", (run.id, kind)).fetchone()
        return stamp, (orjson.loads(row[1]) if row is not None and row[0] == stamp else None)

    def summary_put(self, run: RunInfo, kind: str, stamp: str, body: Any) -> None:
        """Keep a summary computed from the run as it was at ``stamp`` (a read-only or busy
        store keeps none: the next reader computes it again)."""
        text = orjson.dumps(body, default=str)
        if orjson.loads(text) != body:  # would not read back the same (NaN, tuples, objects)
            return
        try:
            with self._write():
                self.conn.execute("INSERT OR REPLACE INTO run_summaries VALUES (?,?,?,?)",
                                  (run.id, kind, stamp, text.decode()))
        except sqlite3.OperationalError:
            pass

    # ---- maintenance -------------------------------------------------------------------------
    def checkpoint(self, mode: str = "TRUNCATE") -> tuple[int, int, int]:
        """Copy the WAL into the database file (``PASSIVE``: as far as readers allow, without
        waiting; ``TRUNCATE``: all of it, then empty the WAL file). Returns SQLite's (busy, WAL
        pages, pages checkpointed)."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(mode)
        if self.conn.in_transaction:
            self.conn.commit()
        row = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def file_bytes(self) -> int:
        """Bytes on disk: the database file and its WAL and shared-memory files."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal"),
                                              self.path.with_name(self.path.name + "-shm"))
                   if p.exists())

    def info(self) -> dict[str, Any]:
        """Sizes and counts: bytes on disk (``bytes``: the database file, its write-ahead log
        and shared-memory file), of which ``free_bytes`` are free pages of the database as it
        reads now and ``wal_bytes`` the write-ahead log's file (both given back by ``vacuum``:
        the log is checkpointed into the file and truncated), runs, samples and bytes per
        sample."""
        count = {table: int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                 for table in ("runs", "samples", "scores", "cache")}
        page = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
        size = self.file_bytes()
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        return {"path": str(self.path), "bytes": size, "free_bytes": free * page,
                "wal_bytes": wal_bytes, **count,
                "bytes_per_sample": round(size / count["samples"], 1) if count["samples"] else None}

    def vacuum(self) -> dict[str, Any]:
        """Checkpoint the WAL, rebuild the file without free pages (VACUUM), refresh the query
        planner's statistics; returns the bytes before and after. Needs free disk of about the
        store's size, and no other process writing (it waits up to the busy timeout)."""
        before = self.file_bytes()
        self.checkpoint("TRUNCATE")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA optimize")
        self.checkpoint("TRUNCATE")
        return {"path": str(self.path), "bytes_before": before, "bytes_after": self.file_bytes()}

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One atomic write: its own transaction, or a savepoint inside the iteration's group
        (after the answers recorded before it, so writes keep their order)."""
        # IMMEDIATE: the write lock first, so that a write reading before it writes (a config
        # merge, a replay's checks) never fails to upgrade a snapshot another writer outdated
        if self._loop is None:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                yield
            return
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
        self._drain()
        self.conn.execute("SAVEPOINT write")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO write")
            self.conn.execute("RELEASE write")
            raise
        self.conn.execute("RELEASE write")
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._loop.call_soon(self._flush_soon)

    @contextmanager
    def bulk_grades(self, run_id: str, *, bump: bool = True) -> Iterator[int]:
        """One write transaction that rewrites many of ``run_id``'s grades (a regrade): the
        per-row revision triggers on ``scores`` are dropped inside it and the run's revision is
        bumped once instead (the same invalidation of its kept summaries and facts, without a
        trigger call per row: the bump comes first, so a stamp read inside is the final one;
        yields the revision before it); the triggers are back before the commit, and a failure
        rolls all of it back. Not inside grouped commits. ``bump`` False: a transaction that
        writes no grade (the revision and triggers left as they are)."""
        if self._loop is not None or self.conn.in_transaction:
            raise RuntimeError("bulk_grades needs the store outside a transaction")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            revision = self.run_revision(run_id)
            if not bump:
                yield revision
                self.conn.commit()
                return
            self.conn.execute("INSERT INTO run_revisions (run_id, revision) VALUES (?, 1) "
                              "ON CONFLICT(run_id) DO UPDATE SET revision = revision + 1",
                              (run_id,))
            for event in ("insert", "update", "delete"):
                self.conn.execute(f"DROP TRIGGER IF EXISTS scores_{event}_revision")
            yield revision
            for statement in _revision_triggers(("scores",)).splitlines():
                self.conn.execute(statement)
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._stop_checkpointer()
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runs --------------------------------------------------------------------------------
    def find_resumable_run(self, run_key: str) -> RunInfo | None:
        row = self.conn.execute(
            "SELECT * FROM runs WHERE run_key = ? AND status = 'running' ORDER BY created DESC",
            (run_key,),
        ).fetchone()
        return _run_from_row(row) if row else None

    def latest_finished_run(self, run_key: str) -> RunInfo | None:
        """The newest finished run with this identity (same eval content, model, variant,
        epochs and limit), or None."""
        row = self.conn.execute(
            "SELECT * FROM runs WHERE run_key = ? AND status = 'finished' "
            "ORDER BY created DESC, id DESC", (run_key,)).fetchone()
        return _run_from_row(row) if row else None

    def create_run(self, *, run_key: str, eval_name: str, eval_path: str | None, eval_hash: str,
                   model: str, variant: str, epochs: int, config: dict[str, Any],
                   items: Iterable[Item], label: str | None = None) -> RunInfo:
        """A new ``running`` run with its items. With a ``runner`` in ``config`` (the process
        about to answer it): UserError if another live process on this host created a running
        run of the same ``run_key`` first, checked in the same write (``label``: the model as
        the error names it)."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # the check and the insert: one writer at a time
            if isinstance(config.get("runner"), dict):
                self._refuse_live_twin(run_key, label or model)
            self.conn.execute(
                "INSERT INTO runs (id, run_key, eval_name, eval_path, eval_hash, model, variant, "
                "epochs, status, config, created) VALUES (?,?,?,?,?,?,?,?, 'running', ?, ?)",
                (run_id, run_key, eval_name, eval_path, eval_hash, model, variant, epochs,
                 json.dumps(config, default=str), now),
            )
            rows = [(run_id, item.id, position, orjson.dumps(item.tags).decode(),
                     orjson.dumps(item.data, default=str).decode())
                    for position, item in enumerate(items)]
            rows.sort(key=lambda row: row[1])  # the table's order: each row lands at its end
            with self._one_revision_bump(("run_items",), run_id, len(rows) > 1000):
                self.conn.executemany("INSERT INTO run_items (run_id, item_id, position, tags, "
                                      "data) VALUES (?,?,?,?,?)", rows)
        return self.get_run(run_id)

    def _refuse_live_twin(self, run_key: str, label: str) -> None:
        from posttrain.runner import process

        for run_id, config in self.conn.execute(
                "SELECT id, config FROM runs WHERE run_key = ? AND status = 'running'",
                (run_key,)).fetchall():
            process.refuse_if_answered(run_id, json.loads(config or "{}").get("runner"), label)

    @contextmanager
    def _one_revision_bump(self, tables: Sequence[str], run_id: str,
                           untriggered: bool = True) -> Iterator[None]:
        """Inside an open write transaction: many rows of ``run_id`` written to ``tables``
        bump its revision once (first) instead of once per row (the revision triggers of
        those tables are dropped inside and created again before the transaction ends; a
        failure rolls back the drop with the rest). ``untriggered`` False: the triggers stay
        (a few rows)."""
        if not untriggered:
            yield
            return
        self.conn.execute("INSERT INTO run_revisions (run_id, revision) VALUES (?, 1) "
                          "ON CONFLICT(run_id) DO UPDATE SET revision = revision + 1", (run_id,))
        for table in tables:
            for event in ("insert", "update", "delete"):
                self.conn.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_revision")
        yield
        for statement in _revision_triggers(tables).splitlines():
            self.conn.execute(statement)

    def update_run_config(self, run_id: str, updates: dict[str, Any]) -> None:
        """Merge ``updates`` into a run's stored config (after re-grading with new graders); inside
        the caller's transaction when one is open (and no commits are grouped). The config is
        read inside the write's transaction, which takes the store's write lock first when it
        is its own: another process's update made meanwhile is kept, never written over with
        the config as it was before it. KeyError: no such run."""
        if self._loop is None and self.conn.in_transaction:
            self._merge_config(run_id, updates)
            return
        if self._loop is None:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self._merge_config(run_id, updates)
            return
        with self._write():
            self._merge_config(run_id, updates)

    def _merge_config(self, run_id: str, updates: dict[str, Any]) -> None:
        row = self.conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        config = json.loads(row[0]) if row[0] else {}
        config.update(updates)
        self.conn.execute("UPDATE runs SET config = ? WHERE id = ?",
                          (json.dumps(config, default=str), run_id))

    def run_revision(self, run_id: str) -> int:
        """The run's revision: bumped by every write to its answers, grades or items."""
        row = self.conn.execute("SELECT revision FROM run_revisions WHERE run_id = ?",
                                (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def add_scores(self, run_id: str, item_id: str, epoch: int, scores: Iterable[Score]) -> None:
        """Add (or replace, per grader) some of an answer's grades, keeping its others."""
        with self._write():
            self._write_scores(run_id, item_id, epoch, scores)

    def reopen_run(self, run_id: str) -> None:
        """Mark a finished run as running again, so the next run with its identity resumes it
        (its failed samples are sent again; its answers are kept)."""
        self.conn.execute("UPDATE runs SET status='running', finished=NULL WHERE id=?",
                          (run_id,))

    def finish_run(self, run_id: str) -> None:
        """Mark the run finished and build its score facts (``posttrain.runner.facts``: each
        answer's and item's figures that compare, the matrix, audit and the viewer read)."""
        self.conn.execute("UPDATE runs SET status='finished', finished=? WHERE id=?",
                          (time.time(), run_id))
        from posttrain.runner.facts import build

        build(self, run_id)

    def get_run(self, run_id: str) -> RunInfo:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return _run_from_row(row)

    def list_runs(self, eval_name: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """The runs, newest first (of one eval with ``eval_name``); ``limit``: at most that many
        (an integer of 1 or more, else a :class:`~posttrain.errors.UserError`; one past
        SQLite's 64-bit integers lists them all, as no store holds that many)."""
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if eval_name is not None:
            sql += " WHERE eval_name = ?"
            params.append(eval_name)
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_run_limit(limit))
        return [_run_from_row(row) for row in self.conn.execute(sql, params)]

    def resolve_run(self, ref: str) -> RunInfo:
        """A run by id, unique id prefix, ``latest``, or ``latest~N`` (N runs before the newest,
        N a whole number written in digits). A ref that names no run (or a prefix of several)
        is a ``KeyError``; a malformed ``latest~N`` a :class:`~posttrain.errors.UserError`."""
        if ref == "latest" or ref.startswith("latest~"):
            offset = _latest_offset(ref)
            if offset > _MAX_SQL_INT:  # more runs back than any store can hold
                raise KeyError(ref)
            row = self.conn.execute("SELECT * FROM runs ORDER BY created DESC, id DESC "
                                    "LIMIT 1 OFFSET ?", (offset,)).fetchone()
            if row is None:
                raise KeyError(ref)
            return _run_from_row(row)
        if not ref:
            raise KeyError(ref)
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (ref,)).fetchone()
        if row is not None:
            return _run_from_row(row)
        # a prefix: LIKE's wildcards in the ref are literal characters (a run ref '%' or '_'
        # named the store's only run)
        rows = self.conn.execute("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                                 (like_prefix(ref),)).fetchall()
        if len(rows) == 1:
            return _run_from_row(rows[0])
        raise KeyError(ref)

    def run_items(self, run_id: str, *, item_id: str | None = None,
                  item_range: tuple[str, str] | None = None,
                  memo: dict[tuple[str, str, str], Item] | None = None) -> list[Item]:
        """The run's items in order (``item_id``: only that one; ``item_range``: the ids from
        the first to the last, inclusive, in id order). With ``memo``, an item stored
        identically for another run read with the same memo is that run's object (read-only
        use: reports over many runs of one eval hold one copy of each item)."""
        if item_id is not None:
            rows = self.conn.execute(
                "SELECT item_id, tags, data FROM run_items WHERE run_id = ? AND item_id = ?",
                (run_id, item_id))
        elif item_range is not None:
            rows = self.conn.execute(
                "SELECT item_id, tags, data FROM run_items WHERE run_id = ? "
                "AND item_id BETWEEN ? AND ? ORDER BY item_id", (run_id, *item_range))
        else:
            rows = self.conn.execute(
                "SELECT item_id, tags, data FROM run_items WHERE run_id = ? ORDER BY position",
                (run_id,))
        if memo is None:
            return [Item(id=r[0], data=orjson.loads(r[2]), tags=orjson.loads(r[1])) for r in rows]
        items = []
        for r in rows:
            key = (r[0], r[1], r[2])
            item = memo.get(key)
            if item is None:
                item = memo[key] = Item(id=r[0], data=orjson.loads(r[2]), tags=orjson.loads(r[1]))
            items.append(item)
        return items

    def update_item(self, run_id: str, item: Item) -> None:
        """Refresh a run's copy of an item (after a review edited its reference)."""
        self.conn.execute(
            "UPDATE run_items SET data = ?, tags = ? WHERE run_id = ? AND item_id = ?",
            (orjson.dumps(item.data, default=str).decode(), orjson.dumps(item.tags).decode(),
             run_id, item.id))

    # ---- samples -----------------------------------------------------------------------------
    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """(item, epoch) pairs that already have an answer in this run (errors are retried)."""
        rows = self.conn.execute(
            "SELECT item_id, epoch FROM samples WHERE run_id = ? AND status = 'ok'", (run_id,))
        return {(r[0], r[1]) for r in rows}

    def scored_keys(self, run_id: str, graders: Sequence[str] | None = None
                    ) -> set[tuple[str, int]]:
        """(item, epoch) pairs with a grade from every grader in ``graders`` (default: any
        grade at all), so a run killed between an answer's commit and its judge's is graded
        again on resume."""
        if not graders:
            rows = self.conn.execute(
                "SELECT DISTINCT item_id, epoch FROM scores WHERE run_id = ?", (run_id,))
            return {(r[0], r[1]) for r in rows}
        names = sorted(set(graders))
        marks = ",".join("?" * len(names))
        rows = self.conn.execute(
            f"SELECT item_id, epoch FROM scores WHERE run_id = ? AND grader IN ({marks}) "
            "GROUP BY item_id, epoch HAVING COUNT(DISTINCT grader) = ?",
            (run_id, *names, len(names)))
        return {(r[0], r[1]) for r in rows}

    def grader_names_of(self, run_id: str, item_id: str, epoch: int) -> set[str]:
        rows = self.conn.execute(
            "SELECT grader FROM scores WHERE run_id = ? AND item_id = ? AND epoch = ?",
            (run_id, item_id, epoch))
        return {r[0] for r in rows}

    def record_sample(self, run_id: str, item_id: str, epoch: int, *,
                      completion: Completion | None, request_key: str | None, attempts: int,
                      error: str | None = None, scores: Iterable[Score] = (),
                      cache: bool = False, cache_meta: dict[str, Any] | None = None) -> None:
        """Write one answer (or its final error), its scores and its cache entry in one commit.

        ``cache_meta`` (``model``, ``identity``) describes the cache entry (see :meth:`cache_put`).
        """
        now = time.time()
        status = "ok" if completion is not None else "error"
        record = (orjson.dumps(completion.to_record(), default=str).decode()
                  if completion is not None else None)
        c = completion
        sample = (run_id, item_id, epoch, status, request_key, record, error, attempts,
                  c.input_tokens if c else 0, c.output_tokens if c else 0,
                  c.cost_usd if c else 0.0,
                  c.latency_s if c and (c.latency_s or not c.cached) else None,
                  int(c.cached) if c else 0, now)
        entry = ((request_key, record, now, (cache_meta or {}).get("model"),
                  (cache_meta or {}).get("identity"))
                 if cache and record is not None and request_key is not None else None)
        rows = _score_rows(run_id, item_id, epoch, scores)
        if self._loop is not None:  # written with the iteration's other answers at its commit
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            self._rows.append((sample, entry, rows))
            if not self._commit_scheduled:
                self._commit_scheduled = True
                self._loop.call_soon(self._flush_soon)
            return
        with self._write():
            self.conn.execute(_INSERT_SAMPLE, sample)
            if entry is not None:
                self.conn.execute(_INSERT_CACHE, entry)
            self.conn.executemany(_INSERT_SCORE, rows)

    def replay_source(self, run_id: str, grading: str, graded_with: Mapping[str, str]
                      ) -> str | None:
        """The newest other finished run with ``run_id``'s identity (``run_key``) whose grades
        were all given by graders of signature ``grading``: its config records that signature
        and, per grader, the digest of what gave its current grades (``graded_with``, which a
        resume with other graders or a re-grade keeps up to date) equal to ``graded_with``, and
        none was replaced (no re-grade has kept old grades in ``score_history``); or None.
        :meth:`replay_answers` copies from it."""
        row = self.conn.execute(
            "SELECT p.id, p.config FROM runs r JOIN runs p ON p.run_key = r.run_key "
            "WHERE r.id = ? AND p.id != r.id AND p.status = 'finished' "
            "ORDER BY p.created DESC, p.id DESC LIMIT 1", (run_id,)).fetchone()
        config = json.loads(row[1] or "{}") if row is not None else {}
        if (row is None or config.get("grading") != grading
                or config.get("graded_with") != dict(graded_with)):
            return None
        if self.conn.execute("SELECT 1 FROM score_history WHERE run_id = ? LIMIT 1",
                             (row[0],)).fetchone() is not None:
            return None
        return str(row[0])

    def replay_answers(self, source: str, run_id: str, graders: int,
                       answers: Sequence[tuple[str, int, str, int, int, float, float | None, str]],
                       stamp: str | None = None) -> dict[tuple[str, int], tuple[bool, bool]] | None:
        """Store cache hits of ``run_id`` with the grades ``source`` gave the same answers, in
        SQLite, without grading them again: one atomic write.

        ``answers``: (item, epoch, cache key, input tokens, output tokens, cost, latency, the
        cache entry's response as read) of hits whose cache entry reads back as written (its
        response is the completion ``record_sample`` would store). A hit is copied only where
        ``source`` answered that (item, epoch) with the same request key and exactly that
        response, for the same item data and tags, and holds ``graders`` grades of it; its
        sample row is what ``record_sample`` writes for a cache hit and its grades are
        ``source``'s rows. Returns the copied (item, epoch) pairs with (any error grade, any
        other grade not scored); None, copying nothing, when ``source``'s stamp is no longer
        ``stamp`` (a re-grade or review changed it since it was chosen)."""
        if not answers:
            return {}
        conn = self.conn
        columns = ("item_id TEXT NOT NULL, epoch INTEGER NOT NULL, key TEXT NOT NULL, "
                   "input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, latency_s REAL, "
                   "response TEXT NOT NULL")
        with self._write():
            if stamp is not None and self.run_stamp(self.get_run(source)) != stamp:
                return None  # checked under the write lock: nothing changes it until the copy
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS replay_in ({columns}, "
                         "PRIMARY KEY (item_id, epoch)) WITHOUT ROWID")
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS replay_ok ({columns}, "
                         "error INTEGER NOT NULL, unscored INTEGER NOT NULL, "
                         "PRIMARY KEY (item_id, epoch)) WITHOUT ROWID")
            conn.execute("DELETE FROM temp.replay_in")
            conn.execute("DELETE FROM temp.replay_ok")
            conn.executemany("INSERT OR REPLACE INTO temp.replay_in VALUES (?,?,?,?,?,?,?,?)",
                             answers)
            # every check in one statement, a few reads per hit (CROSS: the hits outer, in
            # their order); with the statuses of the grades copied
            conn.execute(
                "INSERT INTO temp.replay_ok SELECT k.item_id, k.epoch, k.key, k.input_tokens, "
                "k.output_tokens, k.cost_usd, k.latency_s, k.response, "
                "COALESCE(MAX(g.status = 'error'), 0), COALESCE(MAX(g.status != 'scored'), 0) "
                "FROM temp.replay_in k "
                "CROSS JOIN samples s ON s.run_id = ?1 AND s.item_id = k.item_id "
                "AND s.epoch = k.epoch AND s.request_key = k.key AND s.status = 'ok' "
                "AND s.completion = k.response "
                "CROSS JOIN run_items pi ON pi.run_id = ?1 AND pi.item_id = k.item_id "
                "CROSS JOIN run_items ni ON ni.run_id = ?2 AND ni.item_id = k.item_id "
                "AND ni.data = pi.data AND ni.tags = pi.tags "
                "LEFT JOIN scores g ON g.run_id = ?1 AND g.item_id = k.item_id "
                "AND g.epoch = k.epoch "
                "GROUP BY k.item_id, k.epoch HAVING COUNT(g.grader) = ?3",
                (source, run_id, graders))
            now = time.time()
            self._replay_rows(source, run_id, now)
            rows = conn.execute("SELECT item_id, epoch, error, unscored FROM temp.replay_ok"
                                ).fetchall()
        return {(r[0], r[1]): (bool(r[2]), bool(r[3])) for r in rows}

    def _replay_rows(self, source: str, run_id: str, now: float) -> None:
        """``replay_answers``' writes: the sample rows of the hits in ``temp.replay_ok`` and
        ``source``'s grades of them."""
        conn = self.conn
        conn.execute(
            "INSERT OR REPLACE INTO samples (run_id, item_id, epoch, status, request_key, "
            "completion, error, attempts, input_tokens, output_tokens, cost_usd, latency_s, "
            "cached, created) SELECT ?, item_id, epoch, 'ok', key, response, NULL, "
            "1, input_tokens, output_tokens, cost_usd, latency_s, 1, ? "
            "FROM temp.replay_ok", (run_id, now))
        conn.execute(
            "INSERT OR REPLACE INTO scores (run_id, item_id, epoch, grader, value, passed, "
            "status, explanation, sub_scores, cost_usd, requests, confinement, retries) "
            "SELECT ?, g.item_id, g.epoch, g.grader, g.value, g.passed, g.status, "
            "g.explanation, g.sub_scores, g.cost_usd, g.requests, g.confinement, g.retries "
            "FROM temp.replay_ok k CROSS JOIN scores g ON g.run_id = ? "  # CROSS: k outer
            "AND g.item_id = k.item_id AND g.epoch = k.epoch", (run_id, source))

    def _write_scores(self, run_id: str, item_id: str, epoch: int, scores: Iterable[Score]) -> None:
        self.conn.executemany(_INSERT_SCORE, _score_rows(run_id, item_id, epoch, scores))

    def replace_scores(self, run_id: str, item_id: str, epoch: int, scores: Iterable[Score], *,
                       history: bool = False, item_changed: bool = False,
                       grader_changed: Mapping[str, int | None] | None = None) -> None:
        """Drop an answer's old scores and write new ones, in one commit.

        With ``history`` (re-grading), the old grades are kept in ``score_history``, marked
        whether the item itself changed since (a reviewed reference) and whether the grader
        did (``grader_changed``: per grader, 1 its spec was edited, 0 the same, None or absent
        not known); a grade that flipped with neither changed is a fragile grader or judge.
        """
        with self._write():
            if history:
                flags = grader_changed or {}
                self.conn.executemany(
                    "INSERT INTO score_history (run_id, item_id, epoch, grader, value, passed, "
                    "status, item_changed, replaced, grader_changed) SELECT run_id, item_id, "
                    "epoch, grader, value, passed, status, ?, ?, ? FROM scores WHERE run_id=? "
                    "AND item_id=? AND epoch=? AND grader=?",
                    [(int(item_changed), time.time(), flags.get(grader), run_id, item_id, epoch,
                      grader) for (grader,) in self.conn.execute(
                          "SELECT grader FROM scores WHERE run_id=? AND item_id=? AND epoch=? "
                          "ORDER BY grader", (run_id, item_id, epoch)).fetchall()])
            self.conn.execute("DELETE FROM scores WHERE run_id=? AND item_id=? AND epoch=?",
                              (run_id, item_id, epoch))
            self._write_scores(run_id, item_id, epoch, scores)

    def replace_scores_many(self, run_id: str,
                            answers: Sequence[tuple[str, int, Sequence[Score], bool]], *,
                            keep_all: bool = False,
                            grader_changed: Mapping[str, int | None] | None = None) -> None:
        """``replace_scores(..., history=True)`` for many answers (item, epoch, scores, item
        changed) in one atomic write: each statement once, over every answer. Only answers
        whose grades differ from the stored ones are written, and only those whose grades
        changed (a grader's value, verdict or status, not just its explanation or sandbox
        description) keep their old grades in ``score_history``: re-grading the same answers
        again and again grew it by a run's grades each time. ``keep_all``: every answer is
        written and keeps its old grades (an import's grades, kept to compare).
        ``grader_changed``: per grader, whether its spec changed (see :meth:`replace_scores`)."""
        flags = grader_changed or {}
        differ = [(answer, self._grades_differ(run_id, *answer[:3], keep_all=keep_all))
                  for answer in answers]
        answers = [answer for answer, (row, _graders) in differ if row]
        if not answers:
            return
        now = time.time()
        keys = [(run_id, item_id, epoch) for item_id, epoch, _scores, _changed in answers]
        with self._write():
            self.conn.executemany(
                "INSERT INTO score_history (run_id, item_id, epoch, grader, value, passed, "
                "status, item_changed, replaced, grader_changed) SELECT run_id, item_id, "
                "epoch, grader, value, passed, status, ?, ?, ? FROM scores WHERE run_id=? "
                "AND item_id=? AND epoch=? AND grader=?",
                [(int(changed), now, flags.get(grader), run_id, item_id, epoch, grader)
                 for (item_id, epoch, _scores, changed), (_row, graders) in differ
                 for grader in graders])
            self.conn.executemany("DELETE FROM scores WHERE run_id=? AND item_id=? AND epoch=?",
                                  keys)
            self.conn.executemany(
                "INSERT OR REPLACE INTO scores (run_id, item_id, epoch, grader, value, passed, "
                "status, explanation, sub_scores, cost_usd, requests, confinement, retries) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(run_id, item_id, epoch, s.name, s.value,
                  None if s.passed is None else int(s.passed), s.status, s.explanation,
                  orjson.dumps(s.sub_scores).decode(), s.cost_usd, s.requests, s.confinement,
                  s.retries)
                 for item_id, epoch, scores, _changed in answers for s in scores])

    def _grades_differ(self, run_id: str, item_id: str, epoch: int, scores: Sequence[Score],
                       *, keep_all: bool = False) -> tuple[bool, list[str]]:
        """(whether an answer's stored grade rows are not exactly ``scores``'s, the graders
        whose stored grade changes: its value, verdict or status, or it is no longer given;
        ``keep_all``: every stored grader's); as written: one row per grader name, the last of
        a repeated name, compared in grader order."""
        new = {row[3]: row[3:] for row in _score_rows(run_id, item_id, epoch, scores)}
        old = [tuple(row) for row in self.conn.execute(
            "SELECT grader, value, passed, status, explanation, sub_scores, cost_usd, requests, "
            "confinement, retries FROM scores WHERE run_id = ? AND item_id = ? AND epoch = ? "
            "ORDER BY grader", (run_id, item_id, epoch))]
        rows = [new[name] for name in sorted(new)]
        changed = [row[0] for row in old
                   if keep_all or row[0] not in new or new[row[0]][:4] != row[:4]]
        return keep_all or old != rows, changed

    def history_records_grader(self) -> bool:
        """Whether ``score_history`` has its ``grader_changed`` column (a store opened read-only
        that an older version wrote has not)."""
        return any(row[1] == "grader_changed"
                   for row in self.conn.execute("PRAGMA table_info(score_history)"))

    def regraded_unrecorded(self, run_id: str) -> bool:
        """Whether the run holds grades a re-grade replaced without recording whether their
        grader changed (one by an older version): the specs its config records may no longer be
        those of its grades."""
        where = "AND grader_changed IS NULL " if self.history_records_grader() else ""
        return self.conn.execute(f"SELECT 1 FROM score_history WHERE run_id = ? {where}"  # noqa: S608
                                 "LIMIT 1", (run_id,)).fetchone() is not None

    def score_history(self, run_id: str, *, only: tuple[str, int] | None = None,
                      item_range: tuple[str, str] | None = None) -> list[sqlite3.Row]:
        """Grades replaced by re-grading (``only``: of one item and epoch; ``item_range``: of
        the items from the first id to the last, inclusive), oldest first."""
        if only is not None:
            return self.conn.execute(
                "SELECT * FROM score_history WHERE run_id = ? AND item_id = ? AND epoch = ? "
                "ORDER BY replaced", (run_id, *only)).fetchall()
        if item_range is not None:
            return self.conn.execute(
                "SELECT * FROM score_history WHERE run_id = ? AND item_id BETWEEN ? AND ? "
                "ORDER BY replaced", (run_id, *item_range)).fetchall()
        return self.conn.execute("SELECT * FROM score_history WHERE run_id = ? ORDER BY replaced",
                                 (run_id,)).fetchall()

    def samples(self, run_id: str) -> Iterator[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM samples WHERE run_id = ? ORDER BY item_id, epoch", (run_id,))

    def scores(self, run_id: str) -> Iterator[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM scores WHERE run_id = ? ORDER BY item_id, epoch, grader", (run_id,))

    # ---- cache -------------------------------------------------------------------------------
    def cache_get(self, key: str, *, max_age_s: float | None = None,
                  identity: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The cached response record, or None; with ``max_age_s`` or ``identity``, only an
        entry young enough and written by a model whose identity agrees (see
        :func:`cache_entry_valid`)."""
        if self._rows:  # an answer recorded in this iteration is found like a committed one
            self._drain()
        return cache_read(self.conn, key, max_age_s=max_age_s, identity=identity)

    def cache_get_many(self, keys: Sequence[str], *, max_age_s: float | None = None,
                       identity: dict[str, Any] | None = None,
                       texts: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """``cache_get`` of many keys in a few statements: the valid entries' response records,
        by key (keys without one are absent; ``texts``: filled with their stored text)."""
        if self._rows:
            self._drain()
        return cache_read_many(self.conn, keys, max_age_s=max_age_s, identity=identity,
                               texts=texts)

    def cache_put(self, key: str, record: dict[str, Any], *, model: str | None = None,
                  identity: str | None = None) -> None:
        """Store a response record under ``key``; ``model`` is the model's cache id, ``identity``
        the JSON of what its endpoint reported (both shown by ``posttrain cache ls``)."""
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO cache (key, response, created, model, "
                              "identity) VALUES (?,?,?,?,?)",
                              (key, orjson.dumps(record, default=str).decode(), time.time(),
                               model, identity))

    def cache_delete(self, keys: Iterable[str]) -> int:
        """Delete these cache entries (another model wrote them); returns how many there were."""
        keys = list(keys)
        if not keys:
            return 0
        with self._write():
            return self.conn.execute(
                f"DELETE FROM cache WHERE key IN ({','.join('?' * len(keys))})", keys).rowcount

    def forget_samples(self, run_id: str, pairs: Iterable[tuple[str, int]]) -> None:
        """Delete these (item, epoch) answers of a run and their grades, to be answered again:
        answers served from cache entries another model wrote."""
        pairs = list(pairs)
        with self._write():
            for table in ("samples", "scores"):
                self.conn.executemany(
                    f"DELETE FROM {table} WHERE run_id = ? AND item_id = ? AND epoch = ?",
                    [(run_id, item_id, epoch) for item_id, epoch in pairs])

    def cache_stats(self) -> list[dict[str, Any]]:
        """Per model: entries, bytes of responses, oldest and newest write, distinct identities."""
        rows = self.conn.execute(
            "SELECT model, COUNT(*), SUM(LENGTH(response)), MIN(created), MAX(created), "
            "COUNT(DISTINCT identity) FROM cache GROUP BY model ORDER BY MAX(created) DESC")
        return [{"model": r[0], "entries": r[1], "bytes": r[2] or 0, "oldest": r[3],
                 "newest": r[4], "identities": r[5]} for r in rows]

    def cache_clear(self, *, models: Iterable[str | None] | None = None,
                    older_than_s: float | None = None) -> int:
        """Delete cache entries (of these cache ids, ``None`` for entries without one; written
        more than ``older_than_s`` ago); every entry without filters. Returns the count."""
        where: list[str] = []
        params: list[Any] = []
        if models is not None:
            chosen = list(models)
            if not chosen:
                return 0
            named = [m for m in chosen if m is not None]
            parts = [f"model IN ({','.join('?' * len(named))})"] if named else []
            if None in chosen:
                parts.append("model IS NULL")
            where.append("(" + " OR ".join(parts) + ")")
            params += named
        if older_than_s is not None:
            where.append("created < ?")
            params.append(time.time() - older_than_s)
        sql = "DELETE FROM cache" + (" WHERE " + " AND ".join(where) if where else "")
        with self._write():
            return self.conn.execute(sql, params).rowcount

    # ---- votes and reviews -------------------------------------------------------------------
    def add_vote(self, run_a: str, run_b: str, item_id: str, winner: str, *, epoch: int = 0,
                 voter: str | None = None) -> None:
        """``winner`` is ``a``, ``b`` or ``tie`` (after un-blinding)."""
        self.conn.execute(
            "INSERT INTO votes (run_a, run_b, item_id, epoch, winner, voter, created) "
            "VALUES (?,?,?,?,?,?,?)", (run_a, run_b, item_id, epoch, winner, voter, time.time()))

    def votes(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM votes ORDER BY id").fetchall()

    def add_review(self, eval_name: str, item_id: str, verdict: str, *, old_value: Any = None,
                   new_value: Any = None, note: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO reviews (eval_name, item_id, verdict, old_value, new_value, note, created)"
            " VALUES (?,?,?,?,?,?,?)",
            (eval_name, item_id, verdict, json.dumps(old_value), json.dumps(new_value), note,
             time.time()))

    def reviews(self, eval_name: str | None = None) -> list[sqlite3.Row]:
        if eval_name is None:
            return self.conn.execute("SELECT * FROM reviews ORDER BY id").fetchall()
        return self.conn.execute("SELECT * FROM reviews WHERE eval_name = ? ORDER BY id",
                                 (eval_name,)).fetchall()

    # ---- live steps and steering -------------------------------------------------------------
    def add_steps(self, run_id: str, item_id: str, epoch: int, turn: int,
                  rows: Sequence[tuple[str, int | None, dict[str, Any] | None]]) -> None:
        """Append (kind, position, message) rows of a running episode (one atomic write; in a
        run, part of the event-loop iteration's commit)."""
        now = time.time()
        with self._write():
            self.conn.executemany(
                "INSERT INTO steps (run_id, item_id, epoch, kind, position, turn, message, "
                "created) VALUES (?,?,?,?,?,?,?,?)",
                [(run_id, item_id, epoch, kind, position, turn,
                  None if message is None else orjson.dumps(message, default=str).decode(), now)
                 for kind, position, message in rows])

    def steps_after(self, after_id: int, *, run_id: str | None = None, item_id: str | None = None,
                    epoch: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Step rows with an id above ``after_id`` (oldest first), of one run or sample."""
        sql = "SELECT * FROM steps WHERE id > ?"
        params: list[Any] = [after_id]
        for column, value in (("run_id", run_id), ("item_id", item_id), ("epoch", epoch)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += f" ORDER BY id LIMIT {int(limit)}"
        return [{**dict(row), "message": orjson.loads(row["message"]) if row["message"] else None}
                for row in self.conn.execute(sql, params)]

    def last_step_id(self) -> int:
        row = self.conn.execute("SELECT MAX(id) FROM steps").fetchone()
        return int(row[0] or 0)

    def add_control(self, run_id: str, item_id: str, epoch: int, action: str,
                    payload: dict[str, Any] | None = None) -> int:
        """A reviewer's ``pause`` or ``resume`` (payload: the intervention) for the runner."""
        with self._write():
            cursor = self.conn.execute(
                "INSERT INTO steering (run_id, item_id, epoch, action, payload, created) "
                "VALUES (?,?,?,?,?,?)",
                (run_id, item_id, epoch, action, orjson.dumps(payload or {}).decode(),
                 time.time()))
        return int(cursor.lastrowid or 0)

    def pending_controls(self, run_id: str, item_id: str, epoch: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM steering WHERE run_id = ? AND item_id = ? AND epoch = ? "
            "AND status = 'pending' ORDER BY id", (run_id, item_id, epoch))
        return [{**dict(row), "payload": orjson.loads(row["payload"])} for row in rows]

    def set_control_status(self, control_id: int, status: str, note: str | None = None) -> None:
        with self._write():
            self.conn.execute("UPDATE steering SET status = ?, note = ?, updated = ? WHERE id = ?",
                              (status, note, time.time(), control_id))

    def controls(self, run_id: str, item_id: str | None = None,
                 epoch: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM steering WHERE run_id = ?"
        params: list[Any] = [run_id]
        if item_id is not None:
            sql += " AND item_id = ? AND epoch = ?"
            params += [item_id, epoch or 0]
        rows = self.conn.execute(sql + " ORDER BY id", params)
        return [{**dict(row), "payload": orjson.loads(row["payload"])} for row in rows]

"""Per-answer and per-item score facts of a run, computed by SQLite and kept in the store.

``compare``, the matrix, ``audit`` and the viewer's matrix need, per run, each item's headline
score (and pass rate, scored-only mean, per-component score), not every answer as a Python
object. Reading a 100,000-answer run as ``RunResults`` takes seconds; these tables hold the same
figures, one row per answer (``sample_facts``) and per item (``item_cells``,
``item_components``), built by one ``INSERT ... SELECT`` per run (C speed) and kept while the
run is unchanged (its stamp, ``Store.run_stamp``, which the store's triggers bump on every write
to its answers, grades or items). A run still being written is built into this connection's
TEMP tables instead (never written to the store by a reader).

The rules are those of ``results.combine`` and ``RunResults.item_scores`` /
``component_scores`` / ``selection.item_pass_rates``, in SQL:

- an answer is *error* when its request failed; *scored* when every expected grader (the
  run's ``primary``, else its ``grader_names``, else every grader it has) scored it with a
  value; else *unscored*. Its value is the primary's value, else the mean of the expected
  graders' values; its pass is the primary's pass, else whether all passed;
- an item's headline score is the sum of its scored answers' values over
  ``max(epochs, answers)`` (an unanswered epoch or a failed answer counts 0); its scored-only
  mean is over scored answers; its pass rate counts answers that passed (the grader's verdict,
  else value >= 0.5);
- a component (a grader, or ``grader.sub`` for a numeric sub-score) scores the items as the
  headline does, each grader over every item, each sub-score over the items that reported it.

The same figures as ``RunResults`` (tests compare both on small stores); sums of three or more
values may differ in the last bit of a float (SQLite adds them in another order).
"""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from posttrain.runner.store import RunInfo, Store
from posttrain.types import Item

#: bump when what the tables hold changes: cells built by an older version are built again
CELLS_VERSION = 3
_KIND = f"cells:{CELLS_VERSION}"

_TABLES = {
    "sample_facts": "run_id TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL, "
                    "st TEXT NOT NULL, v REAL, passed INTEGER, answered INTEGER NOT NULL, "
                    "PRIMARY KEY (run_id, item_id, epoch)",
    "item_cells": "run_id TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL, "
                  "tags TEXT NOT NULL, answers INTEGER NOT NULL, errors INTEGER NOT NULL, "
                  "unscored INTEGER NOT NULL, scored INTEGER NOT NULL, npass INTEGER NOT NULL, "
                  "nfail INTEGER NOT NULL, passes INTEGER NOT NULL, total REAL NOT NULL, "
                  "score REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (run_id, position)",
    "item_components": "run_id TEXT NOT NULL, component TEXT NOT NULL, "
                       "position INTEGER NOT NULL, item_id TEXT NOT NULL, "
                       "answers INTEGER NOT NULL, total REAL NOT NULL, scored INTEGER NOT NULL, "
                       "PRIMARY KEY (run_id, component, position)",
}


def _expected(run: RunInfo) -> tuple[list[str] | None, bool]:
    """(the graders whose grades make the score, whether the first is the run's primary)."""
    primary = run.config.get("primary")
    if isinstance(primary, str) and primary:
        return [primary], True
    names = run.config.get("grader_names")
    if isinstance(names, list) and names:
        return list(dict.fromkeys(str(n) for n in names)), False
    return None, False


def sample_sql(run: RunInfo, alias: str) -> tuple[str, list[Any]]:
    """A CTE ``alias`` with one row per answer: item_id, epoch, st, v, passed, answered."""
    names, primary = _expected(run)
    params: list[Any] = [run.id]
    grader_filter = ""
    if names:
        grader_filter = f" AND grader IN ({','.join('?' * len(names))})"
        params += names
    complete = f"g.ok = {len(names)}" if names else "g.n > 0 AND g.ok = g.n"
    passed = "g.p1" if primary else "CASE WHEN g.ok = g.n THEN g.allpass END"
    sql = (
        f"{alias}_g AS (SELECT item_id, epoch, COUNT(*) AS n, "
        "SUM(status = 'scored' AND value IS NOT NULL) AS ok, AVG(value) AS v, "
        "MIN(COALESCE(passed, 0) != 0) AS allpass, MAX(passed) AS p1 "
        f"FROM scores WHERE run_id = ?{grader_filter} GROUP BY item_id, epoch), "
        f"{alias} AS (SELECT s.item_id, s.epoch, "
        f"CASE WHEN s.status = 'error' THEN 'error' WHEN g.n IS NOT NULL AND {complete} "
        "THEN 'scored' ELSE 'unscored' END AS st, "
        f"CASE WHEN s.status != 'error' AND g.n IS NOT NULL AND {complete} THEN g.v END AS v, "
        f"CASE WHEN s.status != 'error' AND g.n IS NOT NULL AND {complete} THEN {passed} END "
        "AS passed, "
        "(s.completion IS NOT NULL AND s.completion != '') AS answered "
        f"FROM samples s LEFT JOIN {alias}_g g ON g.item_id = s.item_id AND g.epoch = s.epoch "
        "WHERE s.run_id = ?)"
    )
    params.append(run.id)
    return sql, params


class Tables:
    """The names of the tables holding one run's facts (the store's, or this connection's
    TEMP copies for a run still being written)."""

    __slots__ = ("components", "facts", "cells")

    def __init__(self, prefix: str) -> None:
        self.facts = f"{prefix}sample_facts"
        self.cells = f"{prefix}item_cells"
        self.components = f"{prefix}item_components"


KEPT = Tables("")
LIVE = Tables("temp.live_")


def _ensure_tables(conn: sqlite3.Connection, tables: Tables) -> None:
    for name, columns in _TABLES.items():
        target = {"sample_facts": tables.facts, "item_cells": tables.cells,
                  "item_components": tables.components}[name]
        schema, _, bare = target.rpartition(".")
        have = [r[1] for r in conn.execute(f"PRAGMA {schema or 'main'}.table_info({bare})")]
        want = [part.split()[0] for part in columns.split(", PRIMARY KEY")[0].split(", ")]
        if have and have != want:  # built by another version: built again
            conn.execute(f"DROP TABLE {target}")
            if tables is KEPT:
                conn.execute("DELETE FROM run_summaries WHERE kind LIKE 'cells:%'")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {target} ({columns}) WITHOUT ROWID")
    prefix = "temp." if tables is LIVE else ""
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {prefix}{tables.cells.split('.')[-1]}_item "
                 f"ON {tables.cells.split('.')[-1]}(run_id, item_id)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS {prefix}{tables.cells.split('.')[-1]}_score "
                 f"ON {tables.cells.split('.')[-1]}(run_id, score)")


def _fill(conn: sqlite3.Connection, run: RunInfo, tables: Tables) -> None:
    """Replace the run's rows in ``tables`` (inside the caller's transaction)."""
    epochs = max(1, run.epochs)
    for table in (tables.facts, tables.cells, tables.components):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
    sql, params = sample_sql(run, "f")
    conn.execute(f"INSERT INTO {tables.facts} (run_id, item_id, epoch, st, v, passed, answered) "
                 f"WITH {sql} SELECT ?, item_id, epoch, st, v, passed, answered FROM f",
                 (*params, run.id))
    conn.execute(
        f"INSERT INTO {tables.cells} (run_id, item_id, position, tags, answers, errors, "
        "unscored, scored, npass, nfail, passes, total, score, status) "
        "SELECT i.run_id, i.item_id, i.position, i.tags, COUNT(f.epoch), "
        "COALESCE(SUM(f.st = 'error'), 0), COALESCE(SUM(f.st = 'unscored'), 0), "
        "COALESCE(SUM(f.st = 'scored'), 0), "
        "COALESCE(SUM(f.st = 'scored' AND f.passed = 1), 0), "
        "COALESCE(SUM(f.st = 'scored' AND f.passed = 0), 0), "
        "COALESCE(SUM(f.st = 'scored' AND f.v IS NOT NULL AND "
        "COALESCE(f.passed != 0, f.v >= 0.5)), 0), "
        "COALESCE(SUM(CASE WHEN f.st = 'scored' THEN f.v END), 0.0), "
        f"COALESCE(SUM(CASE WHEN f.st = 'scored' THEN f.v END), 0.0) / MAX({epochs}, "
        "COUNT(f.epoch)), "
        "CASE WHEN COUNT(f.epoch) = 0 THEN 'missing' "
        "WHEN SUM(f.st = 'error') > 0 THEN 'error' "
        "WHEN SUM(f.st = 'unscored') > 0 THEN 'unscored' "
        f"WHEN COUNT(f.epoch) < {epochs} THEN 'missing' "
        "WHEN SUM(f.st = 'scored' AND f.passed = 0) > 0 THEN 'fail' "
        "WHEN SUM(f.st = 'scored' AND f.passed = 1) = COUNT(f.epoch) THEN 'pass' "
        "ELSE 'scored' END "
        f"FROM run_items i LEFT JOIN {tables.facts} f ON f.run_id = i.run_id "
        "AND f.item_id = i.item_id WHERE i.run_id = ? GROUP BY i.item_id", (run.id,))
    # components: each grader's value where it scored (0 where it did not), per item; the
    # run's expected graders cover every item, other graders the items that have them
    names = run.config.get("grader_names")
    expected = [str(n) for n in names] if isinstance(names, list) else []
    conn.execute(
        f"INSERT INTO {tables.components} (run_id, component, position, item_id, answers, "
        "total, scored) SELECT ?, g.grader, MIN(c.position), g.item_id, MIN(c.answers), "
        "SUM(CASE WHEN g.status = 'scored' AND g.value IS NOT NULL THEN g.value ELSE 0.0 END), "
        "SUM(g.status = 'scored' AND g.value IS NOT NULL) "
        "FROM scores g JOIN samples s ON s.run_id = g.run_id AND s.item_id = g.item_id "
        f"AND s.epoch = g.epoch JOIN {tables.cells} c ON c.run_id = g.run_id "
        "AND c.item_id = g.item_id WHERE g.run_id = ? GROUP BY g.grader, g.item_id",
        (run.id, run.id))
    if expected:
        conn.executemany(
            f"INSERT OR IGNORE INTO {tables.components} (run_id, component, position, item_id, "
            f"answers, total, scored) SELECT run_id, ?, position, item_id, answers, 0.0, 0 "
            f"FROM {tables.cells} WHERE run_id = ?",
            [(name, run.id) for name in dict.fromkeys(expected)])
    conn.execute(
        f"INSERT INTO {tables.components} (run_id, component, position, item_id, answers, "
        "total, scored) "
        "SELECT ?, g.grader || '.' || j.key, MIN(c.position), g.item_id, MIN(c.answers), "
        "SUM(j.value), COUNT(*) "
        "FROM scores g JOIN samples s ON s.run_id = g.run_id AND s.item_id = g.item_id "
        f"AND s.epoch = g.epoch JOIN {tables.cells} c ON c.run_id = g.run_id "
        "AND c.item_id = g.item_id, json_each(g.sub_scores) j "
        "WHERE g.run_id = ? AND g.sub_scores != '{}' AND json_type(g.sub_scores) = 'object' "
        "AND g.status = 'scored' AND g.value IS NOT NULL "
        "AND j.type IN ('integer', 'real', 'true', 'false') "
        "GROUP BY g.grader || '.' || j.key, g.item_id "
        "ON CONFLICT (run_id, component, position) DO UPDATE SET "
        "total = total + excluded.total, scored = scored + excluded.scored",
        (run.id, run.id))


def _pack(conn: sqlite3.Connection, run: RunInfo, tables: Tables) -> dict[str, bytes]:
    """The run's per-item columns in item order, packed: ``ids`` (JSON list), ``score``,
    ``scored_only`` (NaN: no scored answer), ``pass_rate`` (float64 arrays), ``tags`` (JSON list
    of the distinct tag lists) with ``tag_index`` (int32 per item), ``components`` (JSON:
    name -> answers it scored) with ``component:NAME`` (float64, NaN: the item has none)."""
    epochs = max(1, run.epochs)
    ids: list[str] = []
    score, scored_only, pass_rate = array("d"), array("d"), array("d")
    tag_texts: dict[str, int] = {}
    tag_index = array("i")
    position_of: dict[str, int] = {}
    for item_id, tags, answers, scored, passes, total, headline in conn.execute(
            f"SELECT item_id, tags, answers, scored, passes, total, score FROM {tables.cells} "
            "WHERE run_id = ? ORDER BY position", (run.id,)):
        position_of[item_id] = len(ids)
        ids.append(item_id)
        score.append(headline)
        scored_only.append(total / scored if scored else _NAN)
        pass_rate.append(passes / max(epochs, answers))
        tag_index.append(tag_texts.setdefault(tags, len(tag_texts)))
    packed = {"ids": orjson.dumps(ids), "score": _bytes(score),
              "scored_only": _bytes(scored_only), "pass_rate": _bytes(pass_rate),
              "tags": orjson.dumps(list(tag_texts)), "tag_index": _bytes(tag_index)}
    counts: dict[str, int] = {}
    current: str | None = None
    values = array("d")
    for name, item_id, answers, total, scored in conn.execute(
            f"SELECT component, item_id, answers, total, scored FROM {tables.components} "
            "WHERE run_id = ? ORDER BY component, position", (run.id,)):
        if name != current:
            if current is not None:
                packed[f"component:{current}"] = _bytes(values)
            current, values = name, array("d", [_NAN]) * len(ids)
            counts[name] = 0
        values[position_of[item_id]] = total / max(epochs, answers)
        counts[name] += scored
    if current is not None:
        packed[f"component:{current}"] = _bytes(values)
    packed["components"] = orjson.dumps(counts)
    return packed


_NAN = float("nan")


def _bytes(values: array[Any]) -> bytes:
    if sys.byteorder == "big":  # stored little-endian
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpack(typecode: str, body: bytes) -> array[Any]:
    values = array(typecode)
    values.frombytes(body)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def ensure(store: Store, run: RunInfo) -> tuple[Tables, dict[str, bytes]]:
    """The tables that hold ``run``'s facts now (built if the run changed since) and its
    packed per-item columns (``_pack``)."""
    run = store.get_run(run.id)  # its status now
    conn = store.conn
    if run.status != "finished":
        _ensure_tables(conn, LIVE)
        _fill(conn, run, LIVE)
        return LIVE, _pack(conn, run, LIVE)
    stamp = store.run_stamp(run)
    row = conn.execute("SELECT stamp FROM run_summaries WHERE run_id = ? AND kind = ?",
                       (run.id, _KIND)).fetchone()
    if row is not None and row[0] == stamp:
        packed = dict(conn.execute("SELECT name, body FROM run_columns WHERE run_id = ?",
                                   (run.id,)).fetchall())
        if "ids" in packed:
            return KEPT, packed
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            _ensure_tables(conn, KEPT)
            _fill(conn, run, KEPT)
            packed = _pack(conn, run, KEPT)
            conn.execute("CREATE TABLE IF NOT EXISTS run_columns (run_id TEXT NOT NULL, "
                         "name TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (run_id, name)) "
                         "WITHOUT ROWID")
            conn.execute("DELETE FROM run_columns WHERE run_id = ?", (run.id,))
            conn.executemany("INSERT INTO run_columns VALUES (?,?,?)",
                             [(run.id, name, body) for name, body in packed.items()])
            conn.execute("INSERT OR REPLACE INTO run_summaries VALUES (?,?,?,?)",
                         (run.id, _KIND, stamp, "{}"))
        return KEPT, packed
    except sqlite3.OperationalError:  # a read-only or busy store: this connection's copy
        _ensure_tables(conn, LIVE)
        _fill(conn, run, LIVE)
        return LIVE, _pack(conn, run, LIVE)


#: item id lists shared between runs of the same items (one list object, one dict per column)
_SHARED_IDS: dict[bytes, list[str]] = {}


class RunCells:
    """A run's per-item figures read from the kept facts: what compare, the matrix and audit
    ask of ``RunResults``, without reading its answers."""

    def __init__(self, store: Store, run: RunInfo) -> None:
        self.store = store
        self.tables, self._packed = ensure(store, run)
        self.run = store.get_run(run.id)
        body = self._packed["ids"]
        ids = _SHARED_IDS.get(body)
        if ids is None:
            ids = _SHARED_IDS[body] = orjson.loads(body)
        self.ids: list[str] = ids
        self._cache: dict[str, Any] = {}

    def _column(self, name: str, *, absent: bool = False) -> dict[str, float]:
        """Item -> value of a packed column (``absent``: NaN marks an item without one)."""
        values = self._cache.get(name)
        if values is None:
            column = _unpack("d", self._packed[name])
            if absent:
                values = {i: v for i, v in zip(self.ids, column, strict=True) if v == v}
            else:
                values = dict(zip(self.ids, column, strict=True))
            self._cache[name] = values
        return values

    # ---- the RunResults questions --------------------------------------------------------
    def item_ids(self) -> list[str]:
        return self.ids

    def item_scores(self, *, scored_only: bool = False) -> dict[str, float]:
        return self._column("scored_only", absent=True) if scored_only else self._column("score")

    def item_pass_rates(self) -> dict[str, float]:
        return self._column("pass_rate")

    def _tag_lists(self) -> tuple[list[list[Any]], array[Any]]:
        return ([orjson.loads(text) for text in orjson.loads(self._packed["tags"])],
                _unpack("i", self._packed["tag_index"]))

    def tags(self) -> dict[str, list[Any]]:
        """Item -> its tags."""
        lists, index = self._tag_lists()
        return {item_id: lists[k] for item_id, k in zip(self.ids, index, strict=True)}

    def component_scores(self) -> dict[str, dict[str, float]]:
        return {name: self._column(f"component:{name}", absent=True)
                for name in orjson.loads(self._packed["components"])}

    def component_scored(self) -> dict[str, int]:
        return {name: n for name, n in orjson.loads(self._packed["components"]).items() if n}

    def group_names(self, by: str | None) -> Iterable[tuple[str, list[str]]]:
        """(item id, its group names) in the run's order: its tags, or its field ``by``."""
        if by is None:
            for item_id, tags in self.tags().items():
                yield item_id, [str(t) for t in tags]
            return
        for item_id, data in self.store.conn.execute(
                "SELECT item_id, data FROM run_items WHERE run_id = ? ORDER BY position",
                (self.run.id,)):
            value = orjson.loads(data).get(by)
            if value is None:
                continue
            yield item_id, [str(v) for v in value] if isinstance(value, list) else [str(value)]

    def groups(self, by: str | None) -> dict[str, list[str]]:
        """Group -> its item ids in the run's order (``selection.item_groups`` of this run)."""
        if by is not None:
            return _local_groups(self.group_names(by))
        lists, index = self._tag_lists()
        names_of = [list(dict.fromkeys(str(t) for t in tags)) for tags in lists]
        groups: dict[str, list[str]] = {}
        for item_id, k in zip(self.ids, index, strict=True):
            for name in names_of[k]:
                members = groups.get(name)
                if members is None:
                    groups[name] = [item_id]
                else:
                    members.append(item_id)
        return groups

    def items_of(self, ids: Sequence[str]) -> dict[str, Item]:
        """These items (id, data, tags), read for these ids only."""
        out: dict[str, Item] = {}
        for chunk in _chunks(ids):
            for item_id, tags, data in self.store.conn.execute(
                    "SELECT item_id, tags, data FROM run_items WHERE run_id = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})", (self.run.id, *chunk)):
                out[item_id] = Item(id=item_id, data=orjson.loads(data), tags=orjson.loads(tags))
        return out

    def answers_of(self, ids: Sequence[str]
                   ) -> dict[str, list[tuple[int, bool, Any, str | None]]]:
        """Item -> its answers (epoch, answered, completion record or None, error), in epoch
        order, read for these items only."""
        out: dict[str, list[tuple[int, bool, Any, str | None]]] = {}
        for chunk in _chunks(ids):
            for item_id, epoch, completion, error in self.store.conn.execute(
                    "SELECT item_id, epoch, completion, error FROM samples WHERE run_id = ? "
                    f"AND item_id IN ({','.join('?' * len(chunk))}) ORDER BY item_id, epoch",
                    (self.run.id, *chunk)):
                out.setdefault(item_id, []).append(
                    (epoch, bool(completion), orjson.loads(completion) if completion else None,
                     error))
        return out


def _local_groups(pairs: Iterable[tuple[str, list[str]]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item_id, names in pairs:
        for name in dict.fromkeys(names):
            groups.setdefault(name, []).append(item_id)
    return groups


def _chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def load_cells(store: Store, runs: Sequence[RunInfo]) -> list[RunCells]:
    return [RunCells(store, run) for run in runs]


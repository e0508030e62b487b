"""A finished run's kept facts brought up to date after some of its grades changed (a regrade),
without building them again: only the changed answers' ``sample_facts`` rows, their items'
``item_cells`` rows and those items' places in the packed columns are computed again.

The figures are those a full build (``posttrain.runner.facts``) gives: the same SQL and the same
arithmetic on the same rows, only restricted to the items that changed; the packed columns of
the other items are kept as they were. Where the patch cannot keep that promise it does
nothing and the next reader builds the facts in full: the kept facts were stale before the
regrade, the set of graders changed, or a grader reports sub-scores (their components' order is
that of their first occurrence in the run).

Used inside ``Store.bulk_grades``: :func:`prepare` before the grades are written, :func:`apply`
after. The caller (``posttrain.runner.regrade_fast``, which has read every grade of the run and
knows what it writes) says which graders the run's grades name before and after, and how many
grades of each grader the write adds or removes: the components' grade counts are moved by
those changes instead of being counted again in SQL.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from posttrain.runner.facts import (
    _KIND,
    KEPT,
    _bytes,
    component_totals,
    fill_cells,
    graded_figures,
    register,
    sample_sql,
    unpack,
)
from posttrain.runner.store import RunInfo, Store

_KEYS = "temp.patch_keys"
_ITEMS = "temp.patch_items"


@dataclass
class Patch:
    """What :func:`prepare` read before the grades changed."""

    packed: dict[str, bytes]
    position_of: dict[str, int]
    graders: set[str]


def prepare(store: Store, run: RunInfo, stamp_before: str,
            keys: Sequence[tuple[str, int]], graders: set[str]) -> Patch | None:
    """Before the grades of ``keys`` (item, epoch) change (``graders``: those the run's grades
    name now): None when the run's kept facts are not those of ``stamp_before`` (the run as it
    was), it has sub-score components, or a key's item is not one of the run's items."""
    conn = store.conn
    if run.status != "finished":
        return None
    try:
        packed = dict(conn.execute("SELECT name, body FROM run_columns WHERE run_id = ?",
                                   (run.id,)).fetchall())
    except sqlite3.OperationalError:  # no kept facts at all
        return None
    if packed.get("stamp") != f"{_KIND}:{stamp_before}".encode() or "ids" not in packed:
        return None
    counts = orjson.loads(packed["components"])
    if set(counts) - graders - {str(n) for n in run.config.get("grader_names") or []}:
        return None  # sub-score components: built in full
    ids = orjson.loads(packed["ids"])
    position_of = {item_id: k for k, item_id in enumerate(ids)}
    if any(item_id not in position_of for item_id, _epoch in keys):
        return None
    conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
    conn.execute(f"DROP TABLE IF EXISTS {_ITEMS}")
    conn.execute(f"CREATE TABLE {_KEYS} (item_id TEXT NOT NULL, epoch INTEGER NOT NULL, "
                 "PRIMARY KEY (item_id, epoch)) WITHOUT ROWID")
    conn.execute(f"CREATE TABLE {_ITEMS} (item_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.executemany(f"INSERT OR IGNORE INTO {_KEYS} VALUES (?, ?)", keys)
    conn.execute(f"INSERT INTO {_ITEMS} SELECT DISTINCT item_id FROM {_KEYS}")
    return Patch(packed, position_of, set(graders))


def apply(store: Store, run: RunInfo, patch: Patch, stamp_after: str, graders: set[str],
          count_changes: dict[str, int]) -> bool:
    """After the grades changed (``graders``: those the run's grades name now;
    ``count_changes``: per grader, the grades added less those removed): the changed answers'
    facts and their items' cells written again, the packed columns patched and kept under
    ``stamp_after``. False (nothing kept) when the patch would not give what a full build
    gives."""
    conn = store.conn
    try:
        if graders != patch.graders:
            return False
        register(conn)
        sql, params = sample_sql(run, "f", keys=_KEYS)
        conn.execute(f"INSERT OR REPLACE INTO {KEPT.facts} (run_id, item_id, epoch, st, v, "
                     f"passed, answered, text_key) WITH {sql} SELECT ?, item_id, epoch, st, v, "
                     "passed, answered, text_key FROM f", (*params, run.id))
        fill_cells(conn, run, KEPT, items=_ITEMS)
        packed = dict(patch.packed)
        cells = _cells(conn, run)
        _patch_columns(run, patch, packed, cells)
        totals, _ = component_totals(conn, run, patch.position_of, len(patch.position_of),
                                     _ITEMS, present=graders)
        counts = orjson.loads(packed["components"])
        if set(totals) != set(counts) or not set(count_changes) <= set(counts):
            return False
        for name, change in count_changes.items():
            counts[name] += change
        _patch_components(run, patch, packed, totals, cells)
        packed["components"] = orjson.dumps(counts)
        figures = orjson.loads(packed["answers"])
        figures.update(graded_figures(conn, run, KEPT))
        packed["answers"] = orjson.dumps(figures)
        packed["stamp"] = f"{_KIND}:{stamp_after}".encode()
        conn.execute("DELETE FROM run_columns WHERE run_id = ?", (run.id,))
        conn.executemany("INSERT INTO run_columns VALUES (?,?,?)",
                         [(run.id, name, body) for name, body in packed.items()])
        return True
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
        conn.execute(f"DROP TABLE IF EXISTS {_ITEMS}")


def _cells(conn: sqlite3.Connection, run: RunInfo) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT item_id, answers, scored, passes, total, score FROM {KEPT.cells} "
        f"WHERE run_id = ? AND item_id IN (SELECT item_id FROM {_ITEMS})", (run.id,)).fetchall()


def _patch_columns(run: RunInfo, patch: Patch, packed: dict[str, bytes],
                   cells: list[tuple[Any, ...]]) -> None:
    """``score``, ``scored_only`` and ``pass_rate`` of the changed items (``cells``: their
    ``item_cells``), as ``_pack`` computes them."""
    epochs = max(1, run.epochs)
    score, scored_only, pass_rate = (unpack("d", packed[name])
                                     for name in ("score", "scored_only", "pass_rate"))
    for item_id, answers, scored, passes, total, headline in cells:
        where = patch.position_of.get(item_id)
        if where is None:
            continue
        score[where] = headline
        scored_only[where] = total / scored if scored else float("nan")
        pass_rate[where] = passes / max(epochs, answers)
    packed["score"], packed["scored_only"], packed["pass_rate"] = (
        _bytes(score), _bytes(scored_only), _bytes(pass_rate))


def _patch_components(run: RunInfo, patch: Patch, packed: dict[str, bytes],
                      totals: dict[str, array[Any]], cells: list[tuple[Any, ...]]) -> None:
    """Each component's value of the changed items: their summed value over
    ``max(epochs, answers)``, as ``_pack_components`` divides it."""
    epochs = max(1, run.epochs)
    denominators = {patch.position_of[item_id]: max(epochs, answers)
                    for item_id, answers, *_ in cells
                    if item_id in patch.position_of}
    for name, column in totals.items():
        values = unpack("d", packed[f"component:{name}"])
        for where, n in denominators.items():
            values[where] = column[where] / n
        packed[f"component:{name}"] = _bytes(values)

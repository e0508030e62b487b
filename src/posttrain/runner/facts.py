"""Per-answer and per-item score facts of a run, computed by SQLite and kept in the store.

Read by ``posttrain.analysis.cells.RunCells``; built when a run finishes (``Store.finish_run``)
or on first read.

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

import hashlib
import math
import sqlite3
import sys
from array import array
from typing import Any

import orjson

from posttrain.runner.store import RunInfo, Store

#: bump when what the tables hold changes: facts built by an older version are built again
#: (the version is part of the stamp kept in ``run_columns``)
CELLS_VERSION = 12
_KIND = f"cells:{CELLS_VERSION}"

_TABLES = {
    "sample_facts": "run_id TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL, "
                    "st TEXT NOT NULL, v REAL, passed INTEGER, answered INTEGER NOT NULL, "
                    "text_key INTEGER, "
                    "PRIMARY KEY (run_id, item_id, epoch)",
    "item_cells": "run_id TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL, "
                  "tags TEXT NOT NULL, answers INTEGER NOT NULL, errors INTEGER NOT NULL, "
                  "unscored INTEGER NOT NULL, scored INTEGER NOT NULL, npass INTEGER NOT NULL, "
                  "nfail INTEGER NOT NULL, passes INTEGER NOT NULL, total REAL NOT NULL, "
                  "score REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (run_id, position)",
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


def sample_sql(run: RunInfo, alias: str, keys: str | None = None, *,
               steered_graded: bool = False) -> tuple[str, list[Any]]:
    """A CTE ``alias`` with one row per answer: item_id, epoch, st, v, passed, answered,
    text_key (``text_key`` of its completion; needs ``register`` on the connection).
    ``keys``: a table of (item_id, epoch): only those answers. ``steered_graded``: a steered
    answer is judged by its grades like any other (what training from steering reads: the
    corrected trajectory passed the graders), not unscored as the model's score counts it."""
    names, primary = _expected(run)
    params: list[Any] = [run.id]
    grader_filter = ""
    if names:
        grader_filter = f" AND grader IN ({','.join('?' * len(names))})"
        params += names
    only = f" AND (item_id, epoch) IN (SELECT item_id, epoch FROM {keys})" if keys else ""
    complete = f"g.ok = {len(names)}" if names else "g.n > 0 AND g.ok = g.n"
    passed = "g.p1" if primary else "CASE WHEN g.ok = g.n THEN g.allpass END"
    steered = "0" if steered_graded else _STEERED_SQL
    sql = (
        f"{alias}_g AS (SELECT item_id, epoch, COUNT(*) AS n, "
        "SUM(status = 'scored' AND value IS NOT NULL) AS ok, AVG(value) AS v, "
        "MIN(COALESCE(passed, 0) != 0) AS allpass, MAX(passed) AS p1 "
        f"FROM scores WHERE run_id = ?{grader_filter}{only} GROUP BY item_id, epoch), "
        f"{alias} AS (SELECT s.item_id, s.epoch, "
        f"CASE WHEN s.status = 'error' THEN 'error' WHEN {steered} THEN 'unscored' "
        f"WHEN g.n IS NOT NULL AND {complete} THEN 'scored' ELSE 'unscored' END AS st, "
        f"CASE WHEN s.status != 'error' AND NOT {steered} AND g.n IS NOT NULL AND "
        f"{complete} THEN g.v END AS v, "
        f"CASE WHEN s.status != 'error' AND NOT {steered} AND g.n IS NOT NULL AND "
        f"{complete} THEN {passed} END AS passed, "
        "(s.completion IS NOT NULL AND s.completion != '') AS answered, "
        "posttrain_text_key(s.completion) AS text_key "
        f"FROM samples s LEFT JOIN {alias}_g g ON g.item_id = s.item_id AND g.epoch = s.epoch "
        f"WHERE s.run_id = ?{only.replace('(item_id, epoch) IN', '(s.item_id, s.epoch) IN')})"
    )
    params.append(run.id)
    return sql, params


class Tables:
    """The names of the tables holding one run's facts (the store's, or this connection's
    TEMP copies for a run still being written)."""

    __slots__ = ("facts", "cells")

    def __init__(self, prefix: str) -> None:
        self.facts = f"{prefix}sample_facts"
        self.cells = f"{prefix}item_cells"


KEPT = Tables("")
LIVE = Tables("temp.live_")


def _ensure_tables(conn: sqlite3.Connection, tables: Tables) -> None:
    for name, columns in _TABLES.items():
        target = {"sample_facts": tables.facts, "item_cells": tables.cells}[name]
        schema, _, bare = target.rpartition(".")
        have = [r[1] for r in conn.execute(f"PRAGMA {schema or 'main'}.table_info({bare})")]
        want = [part.split()[0] for part in columns.split(", PRIMARY KEY")[0].split(", ")]
        if have and have != want:  # built by another version: built again
            conn.execute(f"DROP TABLE {target}")
            if tables is KEPT:
                conn.execute("DROP TABLE IF EXISTS run_columns")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {target} ({columns}) WITHOUT ROWID")
    prefix = "temp." if tables is LIVE else ""
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {prefix}{tables.cells.split('.')[-1]}_item "
                 f"ON {tables.cells.split('.')[-1]}(run_id, item_id)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS {prefix}{tables.cells.split('.')[-1]}_score "
                 f"ON {tables.cells.split('.')[-1]}(run_id, score)")


def _fill(conn: sqlite3.Connection, run: RunInfo, tables: Tables) -> None:
    """Replace the run's rows in ``tables`` (inside the caller's transaction)."""
    register(conn)
    for table in (tables.facts, tables.cells):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
    sql, params = sample_sql(run, "f")
    conn.execute(f"INSERT INTO {tables.facts} (run_id, item_id, epoch, st, v, passed, answered, "
                 f"text_key) WITH {sql} SELECT ?, item_id, epoch, st, v, passed, answered, "
                 "text_key "
                 "FROM f",
                 (*params, run.id))
    fill_cells(conn, run, tables)


def fill_cells(conn: sqlite3.Connection, run: RunInfo, tables: Tables,
               items: str | None = None) -> None:
    """Write the run's ``item_cells`` rows from its ``sample_facts`` (``items``: a table of
    item ids: only those, replacing their rows)."""
    epochs = max(1, run.epochs)
    only = f" AND i.item_id IN (SELECT item_id FROM {items})" if items else ""
    conn.execute(
        f"INSERT OR REPLACE INTO {tables.cells} (run_id, item_id, position, tags, answers, "
        "errors, "
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
        f"AND f.item_id = i.item_id WHERE i.run_id = ?{only} GROUP BY i.item_id", (run.id,))


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
    answers_of: list[int] = []
    for item_id, tags, answers, scored, passes, total, headline in conn.execute(
            f"SELECT item_id, tags, answers, scored, passes, total, score FROM {tables.cells} "
            "WHERE run_id = ? ORDER BY position", (run.id,)):
        position_of[item_id] = len(ids)
        ids.append(item_id)
        answers_of.append(answers)
        score.append(headline)
        scored_only.append(total / scored if scored else _NAN)
        pass_rate.append(passes / max(epochs, answers))
        tag_index.append(tag_texts.setdefault(tags, len(tag_texts)))
    packed = {"ids": orjson.dumps(ids), "score": _bytes(score),
              "scored_only": _bytes(scored_only), "pass_rate": _bytes(pass_rate),
              "tags": orjson.dumps(list(tag_texts)), "tag_index": _bytes(tag_index)}
    _pack_components(conn, run, packed, position_of, answers_of)
    packed["answers"] = orjson.dumps(_answer_figures(conn, run, tables))
    packed["items_key"] = orjson.dumps(items_key(ids, [orjson.loads(t) for t in tag_texts],
                                                 tag_index))
    return packed


def items_key(ids: list[str], tag_lists: list[list[Any]], tag_index: array[Any]) -> str:
    """A digest of the run's item ids and tags in order (``analysis.pick.run_figures``: runs
    whose keys agree have the same groups)."""
    encoded = [orjson.dumps([str(t) for t in tags]) for tags in tag_lists]
    digest = hashlib.blake2b(b"".join(
        b"[" + orjson.dumps(item_id) + b"," + encoded[k] + b"]"
        for item_id, k in zip(ids, tag_index, strict=True)), digest_size=16)
    return digest.hexdigest()


#: token counts a provider may report beside input and output (a completion names them)
TOKEN_PARTS = ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def _points(ordered: list[float]) -> dict[str, Any]:
    """What a percentile at q = 50 and 95 needs of sorted values: their count and, per q, the
    two values ``stats.percentile`` interpolates between."""
    n = len(ordered)
    points = {}
    for q in (50, 95):
        lower = math.floor((n - 1) * q / 100) if n else 0
        if n:
            points[str(q)] = [ordered[lower], ordered[min(lower + 1, n - 1)]]
    return {"n": n, "points": points}


def _answer_figures(conn: sqlite3.Connection, run: RunInfo, tables: Tables) -> dict[str, Any]:
    """Figures over the run's answers, for the viewer's matrix and the run's summaries:
    answers per status (error / unscored / scored), their count, cost (SQLite's sum), the
    latencies' percentile points (every latency; and ``answer_latency``: those of fresh
    requests and of cached answers that carry their original request's), and the costs as a
    summary adds them (left to right in (item, epoch) order): ``all``, ``uncached``, and for
    ``pick`` the answers it prices by their stored cost (``paid``, ``paid_n``) and how many it
    would price by their tokens (``unpaid_n``)."""
    named = " OR ".join(f"instr(completion, '\"{key}\"')" for key in TOKEN_PARTS)
    (count, cost, answered, requests, retries, cached, input_tokens, output_tokens,
     any_named) = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), "
        "COALESCE(SUM(completion IS NOT NULL AND completion != ''), 0), "
        "COALESCE(SUM(CASE WHEN cached THEN 0 ELSE attempts END), 0), "
        "COALESCE(SUM(MAX(0, attempts - 1)), 0), COALESCE(SUM(cached != 0), 0), "
        "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
        f"COALESCE(MAX({named}), 0) FROM samples WHERE run_id = ?", (run.id,)).fetchone()
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT cost_usd, cached, latency_s, (completion IS NOT NULL AND completion != '') "
        "OR input_tokens != 0 FROM samples WHERE run_id = ? ORDER BY item_id, epoch",
        (run.id,)).fetchall()
    # added by sum(), left to right, as the summaries add them (the same on any Python)
    every = sum([r[0] for r in rows])
    uncached = sum([r[0] for r in rows if not r[1]])
    paid_costs = [r[0] for r in rows if r[3] and r[0] and not r[1]]
    paid, paid_n = sum(paid_costs), len(paid_costs)
    unpaid_n = sum([1 for r in rows if r[3]]) - paid_n
    latencies = sorted(r[2] for r in rows if r[2] is not None)
    fresh = sorted(r[2] for r in rows if r[2] is not None and (r[2] > 0 or not r[1]))
    return {**graded_figures(conn, run, tables), "count": count, "cost_usd": cost,
            "latency": _points(latencies), "answer_latency": _points(fresh),
            "answered": answered, "requests": requests, "retries": retries, "cached": cached,
            "input_tokens": input_tokens, "output_tokens": output_tokens,
            "names_token_parts": bool(any_named),
            "costs": {"all": every, "uncached": uncached, "paid": paid, "paid_n": paid_n,
                      "unpaid_n": unpaid_n}}


def graded_figures(conn: sqlite3.Connection, run: RunInfo, tables: Tables) -> dict[str, Any]:
    """The answer figures that depend on the run's grades (``_answer_figures`` adds those of
    its answers): answers per status in the order each first occurs, judge requests, grade
    retries, judge cost, passes and verdicts."""
    statuses = dict(conn.execute(f"SELECT st, COUNT(*) FROM {tables.facts} WHERE run_id = ? "
                                 "GROUP BY st", (run.id,)).fetchall())
    first = {st: tuple(conn.execute(f"SELECT item_id, epoch FROM {tables.facts} "
                                    "WHERE run_id = ? AND st = ? ORDER BY item_id, epoch "
                                    "LIMIT 1", (run.id, st)).fetchone()) for st in statuses}
    # in the order each status first occurs (as a summary counts them, answer by answer)
    statuses = {st: statuses[st] for st in sorted(statuses, key=lambda st: first[st])}
    judge_requests, grade_retries = conn.execute(
        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(retries), 0) FROM scores "
        "WHERE run_id = ?", (run.id,)).fetchone()
    judge_costs = [r[0] for r in conn.execute(
        "SELECT cost_usd FROM scores WHERE run_id = ? AND cost_usd != 0", (run.id,))]
    passes, verdicts = conn.execute(
        f"SELECT COALESCE(SUM(st = 'scored' AND passed), 0), COUNT(passed) "
        f"FROM {tables.facts} WHERE run_id = ?", (run.id,)).fetchone()
    return {"statuses": statuses, "judge_requests": judge_requests,
            "grade_retries": grade_retries, "judge_cost": math.fsum(judge_costs),
            "passes": passes, "verdicts": verdicts}


def _pack_components(conn: sqlite3.Connection, run: RunInfo, packed: dict[str, bytes],
                     position_of: dict[str, int], answers: list[int]) -> None:
    """Per component, each item's summed value where the grader scored it (0 where it did
    not) over ``max(epochs, answers)``: the run's expected graders over every item, other
    graders over the items that have them, each numeric sub-score (``grader.sub``) over the
    items that reported it. One pass over the run's grades, in item order."""
    epochs = max(1, run.epochs)
    totals, counts = component_totals(conn, run, position_of, len(answers))
    denominators = [max(epochs, n) for n in answers]
    for name, column in totals.items():
        packed[f"component:{name}"] = _bytes(array("d", [
            total / n for total, n in zip(column, denominators, strict=True)]))
    packed["components"] = orjson.dumps(counts)


def component_totals(conn: sqlite3.Connection, run: RunInfo, position_of: dict[str, int],
                     size: int, items: str | None = None, present: set[str] | None = None
                     ) -> tuple[dict[str, array[Any]], dict[str, int]]:
    """Per component, each item's summed value (NaN: none, for a component an item need not
    have) and the grades it counts (``_pack_components``). ``items``: a table of item ids:
    only those items' values and grades (the others keep their initial value). ``present``:
    the graders the run's grades name, when the caller knows them (else read)."""
    only = f" AND item_id IN (SELECT item_id FROM {items})" if items else ""
    names = run.config.get("grader_names")
    if present is None:
        present = {r[0] for r in conn.execute(
            "SELECT DISTINCT grader FROM scores WHERE run_id = ?", (run.id,))}
    # the graders every answer should have: those recorded with the run, else those it has
    expected = {str(n) for n in names} if isinstance(names, list) else present
    graders = sorted(expected | present)
    totals: dict[str, array[Any]] = {}
    counts: dict[str, int] = {}
    if graders:  # one row per item, three columns per grader: summed value, scored, grades
        ok = "status = 'scored' AND value IS NOT NULL"
        columns = ", ".join(f"SUM(CASE WHEN grader = ? AND {ok} THEN value ELSE 0.0 END), "
                            f"SUM(grader = ? AND {ok}), SUM(grader = ?)" for _ in graders)
        params = [name for name in graders for _ in range(3)]
        rows = conn.execute(f"SELECT item_id, {columns} FROM scores WHERE run_id = ?{only} "
                            "GROUP BY item_id", (*params, run.id)).fetchall()
        for k, name in enumerate(graders):
            column = totals[name] = array("d", [0.0 if name in expected else _NAN]) * size
            graded = 0
            for row in rows:
                where = position_of.get(row[0])
                if where is None or not row[3 + 3 * k]:
                    continue
                column[where] = row[1 + 3 * k]
                graded += row[2 + 3 * k]
            counts[name] = graded
    for item_id, name, total, scored in conn.execute(
            "SELECT g.item_id, g.grader || '.' || j.key, SUM(j.value), COUNT(*) "
            "FROM scores g JOIN samples s ON s.run_id = g.run_id AND s.item_id = g.item_id "
            "AND s.epoch = g.epoch, json_each(g.sub_scores) j "
            f"WHERE g.run_id = ?{only.replace('item_id IN', 'g.item_id IN')} "
            "AND g.sub_scores != '{}' AND json_type(g.sub_scores) = 'object' "
            "AND g.status = 'scored' AND g.value IS NOT NULL "
            "AND j.type IN ('integer', 'real', 'true', 'false') "
            "GROUP BY g.item_id, g.grader || '.' || j.key", (run.id,)):
        where = position_of.get(item_id)
        if where is None:
            continue
        column = totals.get(name)
        if column is None:
            column = totals[name] = array("d", [_NAN]) * size
            counts[name] = 0
        column[where] = (0.0 if column[where] != column[where] else column[where]) + total
        counts[name] += scored
    return totals, counts


_NAN = float("nan")


def answer_text(completion: dict[str, Any] | None) -> str:
    """A completion record's answer as text: its text, then its tool calls as JSON."""
    completion = completion or {}
    text = completion.get("text") or ""
    calls = completion.get("tool_calls") or []
    if calls:
        import json

        text = (text + "\n" if text else "") + json.dumps(calls, sort_keys=True, default=str)
    return text


def text_key(completion: str | None) -> int | None:
    """A 63-bit digest of an answer's text (``answer_text`` of the stored completion JSON), the
    same in every process: answers are grouped by it in SQL, then compared by their text."""
    if not completion:
        return None
    try:
        text = answer_text(orjson.loads(completion))
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None  # grouped with the unreadable: the text comparison after decides
    digest = hashlib.blake2b(text.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


#: the reason a steered answer is unscored (``RunResults`` and the kept facts say the same)
STEERED = ("steered by a reviewer: not the model's own answer (0 in the score; its grades are "
           "kept)")


def steered(completion: str | None) -> bool:
    """Whether a stored completion (JSON) was steered by a reviewer in ``posttrain view``
    (``meta.steering`` non-empty, written by ``posttrain.environment``). Such an answer is
    unscored in every figure: a person's correction is not the model's score."""
    if not completion or '"steering"' not in completion:
        return False
    try:
        meta = orjson.loads(completion).get("meta")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(meta, dict) and bool(meta.get("steering"))


# the substring test in SQL first: the JSON is parsed only for answers that mention it
_STEERED_SQL = ("(instr(s.completion, '\"steering\"') > 0 AND "
                "posttrain_steered(s.completion))")


def register(conn: sqlite3.Connection) -> None:
    """Make ``posttrain_text_key`` and ``posttrain_steered`` callable in this connection's SQL."""
    conn.create_function("posttrain_text_key", 1, text_key, deterministic=True)
    conn.create_function("posttrain_steered", 1, steered, deterministic=True)


def _bytes(values: array[Any]) -> bytes:
    if sys.byteorder == "big":  # stored little-endian
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def unpack(typecode: str, body: bytes) -> array[Any]:
    values = array(typecode)
    values.frombytes(body)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _replayed(store: Store, run: RunInfo) -> dict[str, bytes] | None:
    """The facts of a run whose every answer the runner copied with its grades from an earlier
    run (``replayed_from`` in its config: that run's id and stamp then, and this run's revision
    then; the same items, answers and grades), copied from that run's kept facts while neither
    run changed since (a regrade or review of either) and the two agree on what the facts
    depend on; only the answers' figures (cost, latency, cache hits) are computed. None: build
    them."""
    source = run.config.get("replayed_from")
    if not (isinstance(source, list) and len(source) == 3
            and store.run_revision(run.id) == source[2]):
        return None
    try:
        other = store.get_run(str(source[0]))
    except KeyError:
        return None
    if store.run_stamp(other) != source[1] or other.epochs != run.epochs or any(
            other.config.get(key) != run.config.get(key) for key in ("primary", "grader_names")):
        return None
    conn = store.conn
    packed = dict(conn.execute("SELECT name, body FROM run_columns WHERE run_id = ?",
                               (other.id,)).fetchall())
    if packed.pop("stamp", None) != f"{_KIND}:{source[1]}".encode() or "ids" not in packed:
        return None
    counts = conn.execute("SELECT (SELECT COUNT(*) FROM samples WHERE run_id = ?), "
                          "(SELECT COUNT(*) FROM samples WHERE run_id = ?)",
                          (run.id, other.id)).fetchone()
    if counts[0] != counts[1]:
        return None
    for table in (KEPT.facts, KEPT.cells):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
    conn.execute(f"INSERT INTO {KEPT.facts} (run_id, item_id, epoch, st, v, passed, answered, "
                 f"text_key) SELECT ?, item_id, epoch, st, v, passed, answered, text_key "
                 f"FROM {KEPT.facts} WHERE run_id = ?", (run.id, other.id))
    columns = ("position, item_id, tags, answers, errors, unscored, scored, npass, nfail, "
               "passes, total, score, status")
    conn.execute(f"INSERT INTO {KEPT.cells} (run_id, {columns}) SELECT ?, {columns} "
                 f"FROM {KEPT.cells} WHERE run_id = ?", (run.id, other.id))
    packed["answers"] = orjson.dumps(_answer_figures(conn, run, KEPT))
    return packed


def ensure(store: Store, run: RunInfo) -> tuple[Tables, dict[str, bytes]]:
    """The tables that hold ``run``'s facts now (built if the run changed since) and its
    packed per-item columns (``_pack``)."""
    run = store.get_run(run.id)  # its status now
    conn = store.conn
    if run.status != "finished":
        _ensure_tables(conn, LIVE)
        _fill(conn, run, LIVE)
        return LIVE, _pack(conn, run, LIVE)
    stamp = f"{_KIND}:{store.run_stamp(run)}".encode()
    try:
        packed = dict(conn.execute("SELECT name, body FROM run_columns WHERE run_id = ?",
                                   (run.id,)).fetchall())
    except sqlite3.OperationalError:  # no such table yet
        packed = {}
    if packed.get("stamp") == stamp and "ids" in packed:
        return KEPT, packed
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            _ensure_tables(conn, KEPT)
            packed = _replayed(store, run)
            if packed is None:
                _fill(conn, run, KEPT)
                packed = _pack(conn, run, KEPT)
            conn.execute("CREATE TABLE IF NOT EXISTS run_columns (run_id TEXT NOT NULL, "
                         "name TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (run_id, name)) "
                         "WITHOUT ROWID")
            conn.execute("DELETE FROM run_columns WHERE run_id = ?", (run.id,))
            conn.executemany("INSERT INTO run_columns VALUES (?,?,?)",
                             [(run.id, name, body) for name, body in packed.items()])
            conn.execute("INSERT INTO run_columns VALUES (?, 'stamp', ?)", (run.id, stamp))
        return KEPT, packed
    except sqlite3.OperationalError:  # a read-only or busy store: this connection's copy
        _ensure_tables(conn, LIVE)
        _fill(conn, run, LIVE)
        return LIVE, _pack(conn, run, LIVE)


def build(store: Store, run_id: str) -> None:
    """Build a finished run's facts now (after its last write), so that its first reader finds
    them; a busy or read-only store leaves them to that reader."""
    store.flush()
    if store.conn.in_transaction:
        return
    try:
        ensure(store, store.get_run(run_id))
    except Exception:  # noqa: BLE001 - never fail a finished run over its facts: a reader
        pass  # builds them (and says why) when they are needed

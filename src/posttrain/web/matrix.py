"""The matrix: an eval's items as rows, its runs (model x variant) as columns, in SQL.

Each cell is one item's outcome in one run, computed by SQLite from the ``samples`` and
``scores`` tables with the same rules as ``posttrain.analysis.results.combine`` and
``RunResults.item_scores`` (a sample is *scored* only when every expected grader scored it, a
failed request is an *error*, the item's headline score is the sum of its scored values over
``max(epochs, answers)``). Filters, search, sorting and paging run in the query, so a page of
a 100,000-sample eval reads only that page's answers; nothing loads every completion.

An item's tags are the union of its tags in every column (a run made after the dataset was
re-tagged holds the new ones, an older run the old): the tags offered are every column's, a tag
filter keeps an item that any column tags with it, and a row shows all of them, the newest
run's first. The search (``q``) matches what the page shows: item ids, the string and number
values of an item's fields (at any depth; never its keys or JSON syntax), answers' texts and
errors, as a plain substring (no wildcards), ignoring ASCII case.

A cell's status, worst first: ``error`` (a request failed), ``unscored`` (a grader could not
grade), ``missing`` (fewer answers than epochs), ``fail``, ``pass``, ``scored`` (graded with
no pass/fail).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import orjson

from posttrain.analysis.stats import mean_ci
from posttrain.runner.facts import ensure, unpack
from posttrain.runner.store import RunInfo, Store

STATUSES = ("pass", "fail", "scored", "unscored", "error", "missing")
SORTS = ("item", "score", "-score")
#: rows of a matrix page when a request names no limit, and the most it may ask for
PAGE = 200
MAX_LIMIT = 1000


def short_name(model: str) -> str:
    """A model's display name: a path's or URL's last two parts (the full name is on hover)."""
    text = model.rstrip("/")
    for prefix in ("file://",):
        text = text.removeprefix(prefix)
    if ":" in text.split("/")[0] and "/" in text:  # hf:org/name, openai:..., keep the name
        text = text.split(":", 1)[1]
    parts = [p for p in text.replace("\\", "/").split("/") if p]
    if len(parts) <= 2:
        return text if len(text) <= 40 else "…" + text[-39:]
    short = "/".join(parts[-2:])
    return short if len(short) <= 40 else "…" + short[-39:]


def _cell_join(store: Store, run: RunInfo, alias: str, *, by_position: bool = False
               ) -> tuple[str, list[Any]]:
    """A LEFT JOIN of ``alias`` to ``items i``: the run's row of each item it answered (status,
    score, answers), read from its kept facts (``posttrain.runner.facts``, built if the run
    changed since) by (run, item), or by (run, position) when the run holds the items of
    ``items`` in the same order."""
    tables, _packed = ensure(store, run)
    key = "position = i.position" if by_position else "item_id = i.item_id"
    return (f"LEFT JOIN {tables.cells} {alias} ON {alias}.run_id = ? AND {alias}.{key} "
            f"AND {alias}.answers > 0", [run.id])


def default_columns(store: Store, eval_name: str) -> list[RunInfo]:
    """The latest run of each (model, variant) of an eval, ordered by model then variant."""
    latest: dict[tuple[str, str], RunInfo] = {}
    for run in store.list_runs(eval_name):  # newest first
        latest.setdefault((run.model, run.variant), run)
    return sorted(latest.values(), key=lambda r: (r.model, r.variant))


def previous_run(store: Store, run: RunInfo) -> RunInfo | None:
    """The run of the same eval, model and variant made just before this one."""
    for other in store.list_runs(run.eval_name):  # newest first
        if (other.model, other.variant) == (run.model, run.variant) and other.id != run.id \
                and (other.created, other.id) < (run.created, run.id):
            return other
    return None


def column_header(store: Store, run: RunInfo) -> dict[str, Any]:
    """Score (every item, 0 for no score) with its 95% CI, coverage, cost, latency: from the
    figures kept with the run's facts (``posttrain.runner.facts``)."""
    _tables, packed = ensure(store, run)
    scores = list(unpack("d", packed["score"]))
    mean, low, high = mean_ci(scores)
    answers = orjson.loads(packed["answers"])
    latency = answers["latency"]
    expected = max(len(scores) * max(1, run.epochs), answers["count"])
    return {
        "run": run.id, "model": run.model, "short": short_name(run.model),
        "variant": run.variant, "epochs": run.epochs, "status": run.status,
        "created": run.created,
        "score": {"mean": mean, "low": low, "high": high, "n": len(scores)},
        "coverage": {"scored": answers["statuses"].get("scored", 0), "expected": expected},
        "statuses": answers["statuses"], "cost_usd": answers["cost_usd"],
        "latency": {"p50": _percentile(latency, 50), "p95": _percentile(latency, 95)},
    }


def _percentile(latency: dict[str, Any], q: int) -> float | None:
    """``stats.percentile`` of the run's latencies from the two values it interpolates."""
    n = latency["n"]
    if not n:
        return None
    position = (n - 1) * q / 100
    lower, upper = latency["points"][str(q)]
    return lower + (upper - lower) * (position - math.floor(position))


def _shown_number(value: object) -> object:
    """A JSON real as the page shows it (Python's shortest round-trip text)."""
    return repr(value) if isinstance(value, float) else value


def _contains(column: str) -> str:
    """SQL true when ``column``'s text holds the bound parameter, ignoring ASCII case (as LIKE
    did), as a plain substring: ``instr`` has no wildcards, and reads a NUL as a character
    (LIKE's pattern ended at one, so a NUL matched everything)."""
    return f"instr(lower({column}), lower(?)) > 0"


def _query(store: Store, columns: list[RunInfo], *, status: str | None, tag: str | None,
           search: str | None, disagree: bool, changed: bool, sort: str, sort_col: int
           ) -> tuple[str, list[Any], list[RunInfo | None], tuple[str, list[Any]]]:
    """The SELECT over every matching row (no paging): item, position, tags, NULL, then per
    column status, score, answers, previous status, previous score; and the SELECT of their
    count."""
    ctes: list[str] = []
    params: list[Any] = []
    ids = [run.id for run in columns]
    marks = ",".join("?" * len(ids))
    packed = [ensure(store, run) for run in columns]
    same = all(p[1]["ids"] == packed[0][1]["ids"] for p in packed)
    if same:  # the same items, in order
        ctes.append(f"items AS (SELECT item_id, position, tags FROM {packed[0][0].cells} "
                    "WHERE run_id = ?)")
        item_params = [ids[0]]
    else:
        # an item's tags are not read here: the columns may disagree (see the module's doc)
        ctes.append(f"items AS (SELECT item_id, MIN(position) AS position FROM run_items "
                    f"WHERE run_id IN ({marks}) GROUP BY item_id)")
        item_params = list(ids)
    params += item_params
    previous = [previous_run(store, run) for run in columns]
    selects, joins = [], []
    for index, run in enumerate(columns):
        sql, p = _cell_join(store, run, f"c{index}", by_position=same)
        joins.append(sql)
        params += p
        selects.append(f"c{index}.status, c{index}.score, c{index}.answers")
        prev = previous[index]
        if prev is not None:
            sql, p = _cell_join(store, prev, f"p{index}")
            joins.append(sql)
            params += p
            selects.append(f"p{index}.status, p{index}.score")
        else:
            selects.append("NULL, NULL")
    where: list[str] = []
    where_params: list[Any] = []
    status_of = [f"COALESCE(c{i}.status, 'missing')" for i in range(len(columns))]
    # a cell's outcome for comparisons: its status, and its score when graded without pass/fail
    outcome = [f"(CASE WHEN {s} = 'scored' THEN printf('%.4f', c{i}.score) ELSE {s} END)"
               for i, s in enumerate(status_of)]
    if status:
        where.append("(" + " OR ".join(f"{s} = ?" for s in status_of) + ")")
        where_params += [status] * len(columns)
    if tag:  # any column's copy of the item has the tag
        where.append(f"EXISTS (SELECT 1 FROM run_items t, json_each(t.tags) j WHERE t.run_id IN "
                     f"({marks}) AND t.item_id = i.item_id AND j.value = ?)")
        where_params += [*ids, tag]
    if search:
        answer = "json_extract(s.completion, '$.text')"
        # the item's values as the page shows them: strings (json_tree: unescaped, any depth),
        # numbers as Python writes them (0.30000000000000004, 1e-07: SQLite's own text has 15
        # digits) and booleans (True / False); never keys, JSON syntax or escapes
        shown = ("CASE v.type WHEN 'real' THEN posttrain_shown_number(v.value) "
                 "WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' ELSE v.value END")
        where.append(
            f"({_contains('i.item_id')} OR EXISTS (SELECT 1 FROM run_items d, json_tree(d.data) v "
            f"WHERE d.run_id IN ({marks}) AND d.item_id = i.item_id AND v.type IN "
            f"('text', 'integer', 'real', 'true', 'false') AND "
            f"{_contains(shown)}) OR EXISTS (SELECT 1 FROM samples s WHERE s.run_id IN "
            f"({marks}) AND s.item_id = i.item_id AND "
            f"({_contains(answer)} OR {_contains('s.error')})))")
        where_params += [search, *ids, search, *ids, search, search]
    if disagree and len(columns) > 1:
        where.append("(" + " OR ".join(f"{outcome[0]} != {o}" for o in outcome[1:]) + ")")
    if changed:
        parts = []
        for index, prev in enumerate(previous):
            if prev is None:
                continue
            now = outcome[index]
            before = (f"(CASE WHEN COALESCE(p{index}.status, 'missing') = 'scored' THEN "
                      f"printf('%.4f', p{index}.score) ELSE COALESCE(p{index}.status, 'missing')"
                      " END)")
            parts.append(f"{now} != {before}")
        where.append("(" + " OR ".join(parts) + ")" if parts else "0")
    order = "i.position, i.item_id"
    if sort in ("score", "-score") and 0 <= sort_col < len(columns):
        direction = "DESC" if sort == "-score" else "ASC"
        order = f"COALESCE(c{sort_col}.score, 0) {direction}, i.position, i.item_id"
    body = (f"FROM items i {' '.join(joins)}"
            + (f" WHERE {' AND '.join(where)}" if where else ""))
    sql = (f"WITH {', '.join(ctes)} SELECT i.item_id, i.position, NULL, NULL, "
           f"{', '.join(selects)} {body} ORDER BY {order}")
    # the count of matching rows: the items alone when nothing filters them
    count = (f"WITH {', '.join(ctes)} SELECT COUNT(*) {body}" if where
             else f"WITH {ctes[0]} SELECT COUNT(*) FROM items")
    return sql, params + where_params, previous, (count, params + where_params if where
                                                  else item_params)


def _cells(row: Any, columns: list[RunInfo]) -> list[dict[str, Any]]:
    cells = []
    for index in range(len(columns)):
        base = 4 + index * 5
        status, score, answers, prev_status, prev_score = row[base:base + 5]
        cell: dict[str, Any] = {"status": status or "missing", "score": score,
                                "answers": answers or 0}
        if prev_status is not None or prev_score is not None:
            cell["previous"] = {"status": prev_status, "score": prev_score}
        cells.append(cell)
    return cells


def _preview(data: dict[str, Any], limit: int = 160) -> str:
    """The item's first few text fields, shortened: what the row is about."""
    parts = []
    for key, value in data.items():
        if key in ("id", "tags") or not isinstance(value, (str, int, float)):
            continue
        parts.append(f"{key}: {value}")
        if sum(len(p) for p in parts) > limit:
            break
    text = " · ".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def resolve_columns(store: Store, eval_name: str | None, run_ids: list[str]) -> list[RunInfo]:
    if run_ids:
        columns = list({c.id: c for c in (store.resolve_run(r) for r in run_ids)}.values())
        if len({c.eval_name for c in columns}) > 1:
            raise ValueError("the runs of a matrix must be of one eval")
        return columns
    if not eval_name:
        raise ValueError("needs ?eval=NAME or ?runs=ID,ID")
    columns = default_columns(store, eval_name)
    if not columns:
        raise KeyError(eval_name)
    return columns


def matrix(store: Store, columns: list[RunInfo], *, status: str | None = None,
           tag: str | None = None, search: str | None = None, disagree: bool = False,
           changed: bool = False, sort: str = "item", sort_col: int = 0, offset: int = 0,
           limit: int | None = PAGE, headers: bool = True,
           output_chars: int | None = 400) -> dict[str, Any]:
    """One page of the matrix (``limit=None``: every matching row, for exports; answers are
    cut to ``output_chars``, None: whole)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if sort != "item" and not 0 <= sort_col < len(columns):
        raise ValueError(f"col must be a column of the matrix, 0 to {len(columns) - 1}, "
                         f"to sort by its score")
    if offset < 0:
        raise ValueError("offset must be 0 or more")
    store.conn.create_function("posttrain_shown_number", 1, _shown_number, deterministic=True)
    sql, params, previous, (count_sql, count_params) = _query(
        store, columns, status=status, tag=tag, search=search, disagree=disagree,
        changed=changed, sort=sort, sort_col=sort_col)
    if limit is None:
        rows = store.conn.execute(sql, params).fetchall()
        total = len(rows)
    else:
        limit = max(1, min(MAX_LIMIT, limit))
        rows = store.conn.execute(f"{sql} LIMIT ? OFFSET ?",
                                  [*params, limit, offset]).fetchall()
        total = store.conn.execute(count_sql, count_params).fetchone()[0]
    data = _item_data(store, columns, [r[0] for r in rows])
    tags_of = _item_tags(store, columns, [r[0] for r in rows])
    page = [{"item_id": r[0], "tags": tags_of.get(r[0], []),
             "preview": _preview(data.get(r[0], {})), "cells": _cells(r, columns)} for r in rows]
    _add_outputs(store, columns, page, output_chars)
    tags = _tags(store, columns)
    out: dict[str, Any] = {
        "eval": columns[0].eval_name, "total": total, "offset": offset, "limit": limit,
        "rows": page, "tags": tags,
        "columns": ([column_header(store, run) for run in columns] if headers
                    else [{"run": run.id, "model": run.model, "short": short_name(run.model),
                           "variant": run.variant} for run in columns]),
    }
    for column, prev in zip(out["columns"], previous, strict=True):
        column["previous_run"] = prev.id if prev is not None else None
    return out


def _tags(store: Store, columns: list[RunInfo]) -> list[Any]:
    """Every tag of the columns' items, sorted as SQLite sorts them (from each run's distinct
    tag lists, kept with its facts)."""
    texts: set[str] = set()
    for run in columns:
        texts.update(orjson.loads(ensure(store, run)[1]["tags"]))
    tags = [r[0] for r in store.conn.execute(
        "SELECT DISTINCT j.value FROM json_each(?) t, json_each(t.value) j ORDER BY 1",
        (orjson.dumps(sorted(texts)).decode(),))]
    return tags


def _item_tags(store: Store, columns: list[RunInfo], item_ids: list[str]) -> dict[str, list[Any]]:
    """These items' tags, for this page only: the union of every column's tags of each item,
    the newest run's first (each in its own order), so a row shows every tag the tag filter
    keeps it for."""
    out: dict[str, list[Any]] = {}
    newest_first = sorted(columns, key=lambda run: (run.created, run.id), reverse=True)
    for run in newest_first:
        for start in range(0, len(item_ids), 400):
            chunk = item_ids[start:start + 400]
            for item_id, tags in store.conn.execute(
                    "SELECT item_id, tags FROM run_items WHERE run_id = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})", (run.id, *chunk)):
                have = out.setdefault(item_id, [])
                have.extend(tag for tag in orjson.loads(tags) if tag not in have)
    return out


def _item_data(store: Store, columns: list[RunInfo], item_ids: list[str]) -> dict[str, Any]:
    """These items' rows (as the first column holding each stores it), for this page only."""
    out: dict[str, Any] = {}
    for run in columns:
        wanted = [i for i in item_ids if i not in out]
        for start in range(0, len(wanted), 400):
            chunk = wanted[start:start + 400]
            for item_id, data in store.conn.execute(
                    "SELECT item_id, data FROM run_items WHERE run_id = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})", (run.id, *chunk)):
                out[item_id] = orjson.loads(data)
    return out


def _add_outputs(store: Store, columns: list[RunInfo], page: list[dict[str, Any]],
                 chars: int | None) -> None:
    """Each cell's first answer (its lowest epoch), shortened, for this page's rows only."""
    if not page:
        return
    by_item = {row["item_id"]: row for row in page}
    index_of = {run.id: i for i, run in enumerate(columns)}
    text_sql = ("json_extract(completion, '$.text')" if chars is None
                else f"substr(json_extract(completion, '$.text'), 1, {int(chars) + 1})")
    for start in range(0, len(by_item), 400):
        chunk = list(by_item)[start:start + 400]
        rows = store.conn.execute(
            f"SELECT run_id, item_id, MIN(epoch), {text_sql}, "
            "json_array_length(json_extract(completion, '$.tool_calls')), "
            "substr(error, 1, 200) FROM samples "
            f"WHERE run_id IN ({','.join('?' * len(index_of))}) "
            f"AND item_id IN ({','.join('?' * len(chunk))}) GROUP BY run_id, item_id",
            (*index_of, *chunk))
        for run_id, item_id, epoch, text, tool_calls, error in rows:
            cell = by_item[item_id]["cells"][index_of[run_id]]
            text = text or ""
            cell["output"] = text if chars is None or len(text) <= chars else text[:chars] + "…"
            cell["epoch"] = epoch
            if tool_calls:
                cell["tool_calls"] = tool_calls
            if error:
                cell["error"] = error


def export_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (one per item x column) of a matrix, for CSV / JSON exports."""
    out = []
    for row in data["rows"]:
        for column, cell in zip(data["columns"], row["cells"], strict=True):
            out.append({"item_id": row["item_id"], "tags": " ".join(row["tags"]),
                        "run": column["run"], "model": column["model"],
                        "variant": column["variant"], "status": cell["status"],
                        "score": cell["score"], "answers": cell["answers"],
                        "output": cell.get("output", ""), "error": cell.get("error", "")})
    return out


#: first characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading ``'`` (the
    OWASP CSV-injection defence); numbers stay numbers. A model's answer is never a formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (``item_id, tags, run, model, variant, status, score, answers, output,
    error``); text cells that would start a spreadsheet formula are quoted with ``'``."""
    buffer = io.StringIO()
    fields = ["item_id", "tags", "run", "model", "variant", "status", "score", "answers",
              "output", "error"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row[k]) for k in fields})
    return buffer.getvalue()


def to_json(data: dict[str, Any], filters: dict[str, Any]) -> str:
    return json.dumps({"eval": data["eval"], "filters": filters, "total": data["total"],
                       "columns": data["columns"], "rows": export_rows(data)}, indent=1)

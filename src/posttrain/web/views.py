"""The JSON the viewer shows, computed from the store (no web framework here, easy to test)."""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from typing import Any

import orjson

from posttrain.analysis.results import RunResults, SampleResult, load_results
from posttrain.analysis.stored import card, stored
from posttrain.errors import UserError
from posttrain.runner.facts import ensure
from posttrain.runner.store import RunInfo, Store
from posttrain.runner.votes import runs_refusal, same_data
from posttrain.web.matrix import default_columns, short_name

FILTERS = ("all", "failed", "passed", "unscored", "errors")
HISTORY_RUNS = 30


def run_info(run: RunInfo) -> dict[str, Any]:
    return {"id": run.id, "eval": run.eval_name, "eval_path": run.eval_path, "model": run.model,
            "short": short_name(run.model),
            "variant": run.variant, "epochs": run.epochs, "status": run.status,
            "created": run.created}


def summary(results: RunResults) -> dict[str, Any]:
    return {**run_info(results.run), **card(results)}


def stored_view_summary(store: Store, run: RunInfo,
                        results: RunResults | None = None) -> dict[str, Any]:
    """The run's row in the viewer, its figures kept in the store (``analysis.stored``)."""
    return {**run_info(run), **stored(store, run, "card", results)}


def list_runs(store: Store) -> list[dict[str, Any]]:
    return [stored_view_summary(store, run) for run in store.list_runs()]


def run_page(store: Store, run_id: str) -> dict[str, Any]:
    """A run's summary and the data of its charts (drawn by the page with Vega-Lite).

    The figures of this run and of the others come from the summaries kept in the store
    (``analysis.stored``): a run is read whole only when its kept summary is out of date."""
    this = store.resolve_run(run_id)
    data = dict(stored_view_summary(store, this))
    data["short"] = short_name(this.model)
    # the points of `posttrain pick`: its cost per answered sample (stored cost, else tokens at
    # the model's price) and p95 latency, for the latest run of each model x variant (each
    # kept in the store, so other runs are not read again while they are unchanged)
    peers = []
    runs = default_columns(store, this.eval_name)
    if this.id not in {r.id for r in runs}:
        runs.append(this)
    for run in runs:
        point = stored(store, run, "point")
        peers.append({"run": run.id, "label": f"{short_name(run.model)} [{run.variant}]",
                      "model": run.model, "variant": run.variant, **point,
                      "this": run.id == this.id})
    # score over time: the latest runs of this eval, by run date
    history = []
    for run in store.list_runs(this.eval_name, limit=HISTORY_RUNS):
        point = stored(store, run, "point")
        model_config = run.config.get("model") if isinstance(run.config, dict) else None
        released = model_config.get("released") if isinstance(model_config, dict) else None
        history.append({"run": run.id, "created": round(run.created * 1000),  # ms, for JS
                        "released": str(released) if released else None,
                        "label": f"{short_name(run.model)} [{run.variant}]", "model": run.model,
                        "score": point["score"], "low": point["low"], "high": point["high"],
                        "this": run.id == this.id})
    heatmap: list[dict[str, Any]] = []
    if store.conn.execute(
            "SELECT 1 FROM run_items WHERE run_id = ? AND json_type(data, '$.length') IN "
            "('integer', 'real') AND json_type(data, '$.depth') IN ('integer', 'real') LIMIT 1",
            (this.id,)).fetchone():
        from posttrain.analysis.heatmaps import length_depth_cells

        heatmap = [{"length": length, "depth": depth, "score": score} for (length, depth), score
                   in sorted(length_depth_cells(store, this.id).items())]
    latencies = latency_histogram(store, this.id)
    data["charts"] = {
        "tags": [{"tag": tag, **v} for tag, v in sorted(data["tags"].items(),
                                                       key=lambda kv: natural_key(kv[0]))],
        "latency": latencies,
        "peers": peers, "history": history, "heatmap": heatmap,
    }
    data["others"] = [run_info(run) for run in store.list_runs(this.eval_name)
                      if run.id != this.id]
    return data


#: the most bars of a run's latency histogram
LATENCY_BINS = 30


def _nice_step(span: float, bins: int) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten that cuts ``span`` into at most
    ``bins`` bars (as Vega-Lite bins)."""
    raw = span / bins
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def latency_histogram(store: Store, run_id: str, bins: int = LATENCY_BINS) -> dict[str, Any]:
    """What the run page's latency chart draws, counted in SQL: ``n`` answers with a latency
    and at most ``bins`` bars ``{start, end, count}`` of one nice width (empty bars left out),
    so the page's data is the same size for 100 answers or 100,000."""
    n, low, high = store.conn.execute(
        "SELECT COUNT(latency_s), MIN(latency_s), MAX(latency_s) FROM samples "
        "WHERE run_id = ?", (run_id,)).fetchone()
    if not n:
        return {"n": 0, "step": None, "bins": []}
    if high <= low:
        step = _nice_step(abs(low) or 1.0, bins)
    else:
        step = _nice_step(high - low, bins)
        while math.floor(high / step) - math.floor(low / step) + 1 > bins:
            step = _nice_step(step * 1.5, 1)  # a bar more than asked: the next nice width
    counts = store.conn.execute(
        "SELECT CAST(latency_s / ? + 1e-9 AS INTEGER) AS bar, COUNT(*) FROM samples "
        "WHERE run_id = ? AND latency_s IS NOT NULL GROUP BY bar ORDER BY bar",
        (step, run_id)).fetchall()
    return {"n": n, "step": step,
            "bins": [{"start": round(bar * step, 12), "end": round((bar + 1) * step, 12),
                      "count": count} for bar, count in counts]}


def _keep(sample: SampleResult, tags: list[str], flt: str, tag: str | None,
          grader: str | None) -> bool:
    if flt == "failed" and not (sample.status == "scored" and sample.passed is False):
        return False
    if flt == "passed" and not sample.passed:
        return False
    if flt == "unscored" and sample.status != "unscored":
        return False
    if flt == "errors" and sample.status != "error":
        return False
    if tag and tag not in tags:
        return False
    if grader:
        grade = sample.grades.get(grader)
        if grade is None:
            return False
        # with a status filter, the filter applies to this grader's grade
        if flt == "failed" and grade.passed is not False:
            return False
    return True


#: rows of a run's sample list a request gets when it names no ``limit``, and the most it may
#: ask for (the page shows 500; the matrix pages through every item)
SAMPLES_PAGE = 500
MAX_SAMPLES_PAGE = 2000


def samples_page(store: Store, run_id: str, flt: str = "all", tag: str | None = None,
                 grader: str | None = None, *, limit: int | None = SAMPLES_PAGE, offset: int = 0
                 ) -> tuple[list[dict[str, Any]], int]:
    """(one page of a run's samples, how many match; ``limit=None``: every one). The page is
    chosen and counted in SQL (a filter on status, tag or grader over the run's kept facts,
    :func:`_filtered_page`) and its answers, grades and items are read in a few range
    queries (never one read per row, nor the whole run). An
    unknown filter or grader, a ``limit`` under 1 or a negative ``offset`` is a
    :class:`UserError` (HTTP 400) naming what is allowed."""
    if flt not in FILTERS:
        raise UserError(f"filter must be one of {', '.join(FILTERS)}", field="filter")
    if limit is not None and limit < 1:
        raise UserError("limit must be at least 1", field="limit")
    if offset < 0:
        raise UserError("offset must be 0 or more", field="offset")
    run = store.resolve_run(run_id)
    if grader:
        known = [row[0] for row in store.conn.execute(
            "SELECT DISTINCT grader FROM scores WHERE run_id = ? ORDER BY grader", (run.id,))]
        if grader not in known:
            raise UserError(f"grader must be one of {', '.join(known)}" if known
                            else "this run has no grades to filter by", field="grader")
    if flt == "all" and not tag and not grader and limit is not None:
        total = int(store.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?",
                                       (run.id,)).fetchone()[0])
        keys = [(row[0], row[1]) for row in store.conn.execute(
            "SELECT item_id, epoch FROM samples WHERE run_id = ? ORDER BY item_id, epoch "
            "LIMIT ? OFFSET ?", (run.id, limit, offset))]
        if not keys:
            return [], total
        # the page is a run of (item, epoch) keys in order: its items' answers, grades and
        # re-grades are read by id range; only the first and last items' other epochs are extra
        wanted = set(keys)
        page = load_results(store, run, item_range=(keys[0][0], keys[-1][0]))
        rows = [row for row in _sample_rows(page, flt, tag, grader)
                if (row["item_id"], row["epoch"]) in wanted]
        return rows, total
    if limit is not None:
        return _filtered_page(store, run, flt, tag, grader, limit, offset)
    rows = _sample_rows(load_results(store, run), flt, tag, grader)
    return rows[offset:], len(rows)


def _filtered_page(store: Store, run: RunInfo, flt: str, tag: str | None, grader: str | None,
                   limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of the samples that pass a filter, chosen and counted in SQL over the run's kept
    facts (``runner.facts``: each answer's status and pass, as ``results.combine`` says) with
    its items' tags and its grades; only the page's answers are then read (the rules of
    :func:`_keep`, which checks the page's rows again)."""
    tables, _packed = ensure(store, run)
    where, params = ["f.run_id = ?"], [run.id]
    if flt == "failed":
        where.append("f.st = 'scored' AND f.passed = 0")
    elif flt == "passed":
        where.append("f.passed != 0")
    elif flt == "unscored":
        where.append("f.st = 'unscored'")
    elif flt == "errors":
        where.append("f.st = 'error'")
    if tag:
        where.append("EXISTS (SELECT 1 FROM run_items ri, json_each(ri.tags) t "
                     "WHERE ri.run_id = f.run_id AND ri.item_id = f.item_id AND t.value = ?)")
        params.append(tag)
    if grader:
        # with a status filter, "failed" applies to this grader's grade
        where.append("EXISTS (SELECT 1 FROM scores g WHERE g.run_id = f.run_id "
                     "AND g.item_id = f.item_id AND g.epoch = f.epoch AND g.grader = ?"
                     + (" AND g.passed = 0)" if flt == "failed" else ")"))
        params.append(grader)
    body = f"FROM {tables.facts} f WHERE {' AND '.join(where)}"
    total = int(store.conn.execute(f"SELECT COUNT(*) {body}", params).fetchone()[0])
    keys = [(row[0], row[1]) for row in store.conn.execute(
        f"SELECT f.item_id, f.epoch {body} ORDER BY f.item_id, f.epoch LIMIT ? OFFSET ?",
        (*params, limit, offset))]
    if not keys:
        return [], total
    wanted = set(keys)
    page = load_results(store, run, item_range=(keys[0][0], keys[-1][0]))
    return [row for row in _sample_rows(page, flt, tag, grader)
            if (row["item_id"], row["epoch"]) in wanted], total


def samples(store: Store, run_id: str, flt: str = "all", tag: str | None = None,
            grader: str | None = None) -> list[dict[str, Any]]:
    """Every sample of the run that passes the filters (see :func:`samples_page`)."""
    return samples_page(store, run_id, flt, tag, grader, limit=None)[0]


def _sample_rows(results: RunResults, flt: str, tag: str | None, grader: str | None
                 ) -> list[dict[str, Any]]:
    items = results.items_by_id
    rows = []
    for sample in results.samples:
        item = items.get(sample.item_id)
        tags = item.tags if item else []
        if not _keep(sample, tags, flt, tag, grader):
            continue
        rows.append({
            "item_id": sample.item_id, "epoch": sample.epoch, "status": sample.status,
            "value": sample.value, "passed": sample.passed, "reason": sample.reason,
            "tags": tags, "output": _preview(sample.output_text), "latency_s": sample.latency_s,
            "cost_usd": sample.cost_usd,
            "grades": {name: g.value for name, g in sample.grades.items()},
        })
    return rows


def sample_detail(store: Store, run_id: str, item_id: str, epoch: int = 0) -> dict[str, Any]:
    from posttrain.usage.review import reference_fields
    from posttrain.usage.votes import prompt_messages

    run = store.resolve_run(run_id)
    results = load_results(store, run, only=(item_id, epoch))
    item = results.items_by_id.get(item_id)
    sample = next((s for s in results.samples if s.item_id == item_id and s.epoch == epoch), None)
    if item is None or sample is None:
        raise KeyError(item_id)
    grader_specs: list[dict[str, Any]] = []
    if run.eval_path:
        from posttrain.errors import UserError
        from posttrain.loaders import yaml12

        try:
            spec = yaml12.load_file(run.eval_path, what="eval file")[0]
        except UserError:
            spec = None
        graders = spec.get("graders") if isinstance(spec, dict) else None
        grader_specs = [g for g in graders if isinstance(g, dict)] if isinstance(graders, list) \
            else []
    fields = [f for f in reference_fields(grader_specs) if f in item.data]
    completion = sample.completion or {}
    return {
        "run": run_info(run), "item_id": item_id, "epoch": epoch, "item": item.data,
        "tags": item.tags, "messages": prompt_messages(run, item) or [],
        "output": completion.get("text") or "", "tool_calls": completion.get("tool_calls") or [],
        "transcript": completion.get("transcript"), "meta": completion.get("meta") or {},
        "status": sample.status,
        "value": sample.value, "passed": sample.passed, "reason": sample.reason,
        "error": sample.error, "latency_s": sample.latency_s, "cost_usd": sample.cost_usd,
        "input_tokens": sample.input_tokens, "output_tokens": sample.output_tokens,
        "grades": {name: {"name": name, **g.to_dict()} for name, g in sample.grades.items()},
        "reference_fields": fields,
        "reviews": [dict(r) for r in store.reviews(run.eval_name) if r["item_id"] == item_id],
    }


def natural_key(text: str) -> list[Any]:
    """A sort key that puts "tag2" before "tag10" (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdecimal() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", text) if part]


#: characters of an answer in a run's sample list (the whole answer is on its sample's page)
PREVIEW_CHARS = 200


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The start of an answer, cut between words and ending in "…" when cut (a cut answer read
    as the whole one: "lorem ip")."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip() + " …"


def diff_ops(a: str, b: str) -> list[list[str]]:
    """Word-level diff as [op, text] with op in = - +."""
    import re

    left, right = re.findall(r"\S+|\s+", a), re.findall(r"\S+|\s+", b)
    ops: list[list[str]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops.append(["=", "".join(left[i1:i2])])
        else:
            if i2 > i1:
                ops.append(["-", "".join(left[i1:i2])])
            if j2 > j1:
                ops.append(["+", "".join(right[j1:j2])])
    return ops


def _by_key(results: RunResults) -> dict[tuple[str, int], SampleResult]:
    return {(s.item_id, s.epoch): s for s in results.samples}


#: rows of the side-by-side view per page, and the most a request may ask for
COMPARE_PAGE = 100
MAX_COMPARE_PAGE = 1000


def compare(store: Store, run_a: str, run_b: str, *, offset: int = 0,
            limit: int = COMPARE_PAGE) -> dict[str, Any]:
    """Two runs side by side: the paired comparison (from the runs' kept facts) and one page
    of the answers both runs hold, (item, epoch) order, each pair with its word diff."""
    from posttrain.analysis.cells import RunCells
    from posttrain.analysis.compare import compare_runs
    from posttrain.analysis.stats import mean_ci

    a = RunCells(store, store.resolve_run(run_a))
    b = RunCells(store, store.resolve_run(run_b))
    limit = max(1, min(MAX_COMPARE_PAGE, limit))
    offset = max(0, offset)
    pairs = (f"FROM samples x JOIN samples y ON y.run_id = ? AND y.item_id = x.item_id "
             f"AND y.epoch = x.epoch JOIN {a.tables.facts} fx ON fx.run_id = x.run_id "
             "AND fx.item_id = x.item_id AND fx.epoch = x.epoch "
             f"JOIN {b.tables.facts} fy ON fy.run_id = y.run_id AND fy.item_id = y.item_id "
             "AND fy.epoch = y.epoch WHERE x.run_id = ?")
    params = (b.run.id, a.run.id)
    total = store.conn.execute(f"SELECT COUNT(*) {pairs}", params).fetchone()[0]
    rows = []
    for item_id, epoch, va, sa, ca, vb, sb, cb in store.conn.execute(
            f"SELECT x.item_id, x.epoch, fx.v, fx.st, x.completion, fy.v, fy.st, y.completion "
            f"{pairs} ORDER BY x.item_id, x.epoch LIMIT ? OFFSET ?", (*params, limit, offset)):
        text_a, text_b = _output_text(ca), _output_text(cb)
        rows.append({"item_id": item_id, "epoch": epoch,
                     "a": {"value": va, "status": sa, "output": text_a},
                     "b": {"value": vb, "status": sb, "output": text_b},
                     "diff": diff_ops(text_a, text_b)})
    paired = compare_runs(a, b, moved_items=False)

    def score(cells: RunCells) -> dict[str, Any]:
        values = list(cells.item_scores().values())
        mean, low, high = mean_ci(values)
        return {"mean": mean, "low": low, "high": high, "n": len(values)}

    return {"a": run_info(a.run), "b": run_info(b.run), "rows": rows, "total": total,
            "offset": offset, "limit": limit, "a_score": score(a), "b_score": score(b),
            "paired": {key: paired[key] for key in ("overall", "groups", "components",
                                                    "warnings", "n_common")}}


def _output_text(completion: str | None) -> str:
    """``SampleResult.output_text`` of a stored completion."""
    return (orjson.loads(completion) or {}).get("text") or "" if completion else ""


def common_items(store: Store, run_a: str, run_b: str) -> list[tuple[str, int]]:
    """(item, epoch) pairs both runs answered (status ok) for the same item content."""
    return sorted(key for key, _ in arena_pairs(store, run_a, run_b))


def arena_refusal(run_a: RunInfo, run_b: RunInfo) -> str | None:
    """Why two runs cannot be voted on blind (None when they can): their answers are compared,
    and kept as preference pairs, only when both runs asked the same thing, so the runs must be
    of one eval and one prompt variant (answers to different questions or prompts paired by
    item id put one question's answer under another's)."""
    refusal = runs_refusal(run_a, run_b)
    return None if refusal is None else f"{refusal}: blind votes compare answers to one prompt"


def changed_items(store: Store, run_a: str, run_b: str) -> set[str]:
    """Items both runs hold whose content differs between them (the dataset row was edited
    between the runs): their two answers are to different questions."""
    changed = set()
    for item_id, data_a, data_b in store.conn.execute(
            "SELECT a.item_id, a.data, b.data FROM run_items a JOIN run_items b "
            "ON b.run_id = ? AND b.item_id = a.item_id WHERE a.run_id = ? AND a.data != b.data",
            (run_b, run_a)):
        if not same_data(data_a, data_b):  # not only keys in another order
            changed.add(item_id)
    return changed


def _arena_rows(store: Store, run_a: str, run_b: str) -> list[tuple[tuple[str, int], bool]]:
    rows = store.conn.execute(
        "SELECT a.item_id, a.epoch, "
        "trim(COALESCE(json_extract(a.completion, '$.text'), '')) = "
        "trim(COALESCE(json_extract(b.completion, '$.text'), '')) AND "
        "COALESCE(json_extract(a.completion, '$.tool_calls'), '[]') = "
        "COALESCE(json_extract(b.completion, '$.tool_calls'), '[]') "
        "FROM samples a JOIN samples b ON b.item_id = a.item_id AND b.epoch = a.epoch "
        "WHERE a.run_id = ? AND b.run_id = ? AND a.status = 'ok' AND b.status = 'ok' "
        "ORDER BY a.item_id, a.epoch", (run_a, run_b))
    return [((r[0], r[1]), bool(r[2])) for r in rows]


def arena_pairs(store: Store, run_a: str, run_b: str) -> list[tuple[tuple[str, int], bool]]:
    """((item, epoch), identical) for every answer both runs gave to the same item content
    (an item edited between the runs is left out: :func:`changed_items`): ``identical`` when
    the two answers have the same text (ignoring surrounding white space) and the same tool
    calls, so there is nothing to choose between them."""
    changed = changed_items(store, run_a, run_b)
    return [row for row in _arena_rows(store, run_a, run_b) if row[0][0] not in changed]


def arena_progress(store: Store, run_a: str, run_b: str) -> dict[str, Any]:
    """Votes on this pair of runs: counts, how often a vote agrees with the grades, and how
    often two voters agree on the same answer pair. ``changed``: answer pairs left out (and
    votes on them not counted) because their item differs between the runs."""
    changed_ids = changed_items(store, run_a, run_b)
    rows = _arena_rows(store, run_a, run_b)
    pairs = [row for row in rows if row[0][0] not in changed_ids]
    identical = {key for key, same in pairs if same}
    votable = {key for key, same in pairs if not same}
    votes = []
    for vote in store.votes():
        if {vote["run_a"], vote["run_b"]} != {run_a, run_b} or vote["item_id"] in changed_ids:
            continue
        winner = vote["winner"]
        if winner != "tie" and vote["run_a"] != run_a:  # stored the other way round
            winner = "a" if winner == "b" else "b"
        votes.append({"key": (vote["item_id"], vote["epoch"]), "winner": winner,
                      "voter": vote["voter"] or ""})
    counts = {"a": 0, "b": 0, "tie": 0}
    for vote in votes:
        counts[vote["winner"]] += 1
    # agreement with the grades: a vote on an item the two runs scored differently
    scores_a = _item_epoch_scores(store, run_a)
    scores_b = _item_epoch_scores(store, run_b)
    graded = agree = 0
    for vote in votes:
        sa, sb = scores_a.get(vote["key"]), scores_b.get(vote["key"])
        if sa is None or sb is None or sa == sb:
            continue
        graded += 1
        agree += vote["winner"] == ("a" if sa > sb else "b")
    # agreement between voters: answer pairs that two or more named voters judged
    by_key: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for vote in votes:
        by_key[vote["key"]][vote["voter"]] = vote["winner"]
    shared = [set(v.values()) for v in by_key.values() if len(v) > 1]
    voted = {vote["key"] for vote in votes}
    changed = len(rows) - len(pairs)
    return {
        "total": len(pairs), "identical": len(identical), "votable": len(votable),
        "changed": changed,
        "note": (f"{changed} answer pair{'s' if changed != 1 else ''} left out: the item "
                 "differs between the two runs (edited between them), so the answers are to "
                 "different questions") if changed else None,
        "voted": len(voted & votable), "votes": len(votes), "wins": counts,
        "grade_agreement": {"n": graded, "agree": agree},
        "voter_agreement": {"n": len(shared), "agree": sum(1 for s in shared if len(s) == 1)},
        "todo": sorted(votable - voted),
    }


def _item_epoch_scores(store: Store, run_id: str) -> dict[tuple[str, int], float]:
    """(item, epoch) -> the combined score of the scored answers of a run."""
    tables, _packed = ensure(store, store.get_run(run_id))
    rows = store.conn.execute(f"SELECT item_id, epoch, v FROM {tables.facts} WHERE run_id = ? "
                              "AND st = 'scored'", (run_id,))
    return {(r[0], r[1]): r[2] for r in rows if r[2] is not None}

"""Re-grading a stored run with its eval's current items and graders: no new model requests.

Used after a review edits an item's reference: each stored completion is rebuilt as the grader
sample, graded again against the item as it now is in the eval, and its scores replaced. The
run's stored copy of the item (``run_items``) is refreshed too, so the viewer shows the new
reference next to the new grade.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from posttrain.errors import UserError
from posttrain.eval import DEFAULT_VARIANT, Eval, load_eval
from posttrain.runner.executor import RunExecution, RunOptions, grade_all
from posttrain.runner.progress import Counters, Progress
from posttrain.runner.store import Store
from posttrain.types import Completion

#: answers re-graded between two commits (their grades written in one batch)
COMMIT_EVERY = 2000


def load_run_eval(store: Store, run_id: str) -> Eval:
    run = store.get_run(run_id)
    if not run.eval_path or not Path(run.eval_path).exists():
        raise UserError(f"run {run_id} has no eval file to re-grade with "
                        f"({run.eval_path or 'none recorded'})")
    return load_eval(run.eval_path)


async def aregrade_run(store: Store, run_id: str, eval: Eval | str | Path | None = None,
                       *, item_ids: set[str] | None = None,
                       counters: Counters | None = None) -> int:
    """Re-grade the run's answers (or only ``item_ids``); returns how many were re-graded.

    Judges call their models on the runner's path (cache, retries, concurrency limit): a judge
    answer already in the cache is not requested again. ``counters`` (if given) receives the
    requests, retries and cost that re-grading spent.
    """
    if eval is None:
        eval = load_run_eval(store, run_id)
    elif not isinstance(eval, Eval):
        eval = load_eval(eval)
    run = store.get_run(run_id)
    items = {item.id: item for item in eval.items}
    variant = run.variant
    if variant not in eval.variants:  # renamed since: its response_format is the base one
        variant = DEFAULT_VARIANT
    rows = [row for row in store.samples(run_id)
            if row["status"] == "ok" and row["completion"]
            and (item_ids is None or row["item_id"] in item_ids)]
    stored = store.run_items(run_id)
    stored_items = {item.id: item.data for item in stored}
    stored_tags = {item.id: item.tags for item in stored}
    counters = counters or Counters(label=f"regrade {run_id}", total=len(rows))
    calls = RunExecution(eval, None, variant, store, run, counters, RunOptions(),
                          asyncio.Semaphore(16), Progress(enabled=False))
    store.update_run_config(run_id, {"grader_names": [g.name for g in eval.graders],
                                     "primary": eval.primary})
    count = 0
    refreshed: set[str] = set()
    # new grades are written COMMIT_EVERY answers at a time, each batch in one commit with
    # one statement per kind of write (a kill loses at most one batch, and a second regrade
    # grades those answers again)
    batch: list[tuple[str, int, list[Any], bool]] = []
    store.group_commits(asyncio.get_running_loop())
    try:
        for row in rows:
            item = items.get(row["item_id"])
            if item is None:
                continue
            if item.id not in refreshed:
                if (stored_items.get(item.id) != item.data
                        or stored_tags.get(item.id) != item.tags):
                    store.update_item(run_id, item)
                refreshed.add(item.id)
            request = eval.request_for(item, variant)
            sample = eval.sample_of(Completion.from_record(orjson.loads(row["completion"])),
                                    request)
            with calls.judge_calls():
                scores = await grade_all(eval.graders, sample, item.data)
            batch.append((row["item_id"], row["epoch"], scores,
                          stored_items.get(item.id) != item.data))
            count += 1
            if len(batch) >= COMMIT_EVERY:
                store.replace_scores_many(run_id, batch)
                store.flush()
                batch = []
        store.replace_scores_many(run_id, batch)
    finally:
        store.group_commits(None)
        await eval.aclose()
    return count


def regrade_run(store: Store, run_id: str, eval: Eval | str | Path | None = None,
                *, item_ids: set[str] | None = None, counters: Counters | None = None) -> int:
    """Synchronous wrapper of :func:`aregrade_run` (not for use inside an event loop)."""
    return asyncio.run(aregrade_run(store, run_id, eval, item_ids=item_ids, counters=counters))

"""Re-grading a stored run with its eval's current items and graders: no new model requests.

Used after a review edits an item's reference: each stored completion is rebuilt as the grader
sample, graded again against the item as it now is in the eval, and its scores replaced. The
run's stored copy of the item (``run_items``) is refreshed too, so the viewer shows the new
reference next to the new grade.

When every grader grades in this process without waiting (string graders: no judge, no
sandbox) the run is re-graded in bulk (``posttrain.runner.regrade_fast``: the same grades, one
transaction); judges and sandboxed graders take the path below (judges on the runner's path,
sandboxed graders one answer per warm worker).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from posttrain.errors import UserError
from posttrain.eval import DEFAULT_VARIANT, Eval, load_eval
from posttrain.runner import grader_record, process
from posttrain.runner.executor import RunExecution, RunOptions, grade_all, widen_thread_pool
from posttrain.runner.progress import Counters, Progress
from posttrain.runner.regrade_fast import in_process, prompt_changed, same_json
from posttrain.runner.regrade_fast import regrade as regrade_in_process
from posttrain.runner.store import RunInfo, Store
from posttrain.types import Completion, Item

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
                       counters: Counters | None = None, keep_all: bool = False,
                       full: bool = False) -> int:
    """Re-grade the run's answers (or only ``item_ids``); returns how many were re-graded.

    When every grader is deterministic and is the one that gave the run's grades (the run's
    ``graded_with``: spec, reasoning mode, response_format, posttrain version;
    ``runner.grader_record``), only the answers whose item changed are graded again: the
    others' grades could not differ (``counters.kept`` counts them). ``full``: grade every
    answer again regardless.

    Judges call their models on the runner's path (cache, retries, concurrency limit): a judge
    answer already in the cache is not requested again. ``counters`` (if given) receives the
    requests, retries and cost that re-grading spent. The old grades of answers whose grades
    change are kept in ``score_history``; ``keep_all``: every answer's, changed or not (an
    import keeps the grades it brought there, to compare with posttrain's).
    """
    if eval is None:
        eval = load_run_eval(store, run_id)
    elif not isinstance(eval, Eval):
        eval = load_eval(eval)
    run = store.get_run(run_id)
    refuse_if_live(run)
    items = {item.id: item for item in eval.items}
    variant = run.variant
    if variant not in eval.variants:  # renamed since: its response_format is the base one
        variant = DEFAULT_VARIANT
    # in bulk when every grader is in-process and the store is not grouping another writer's
    # commits (a run in this process: its writes are not to be committed by this transaction)
    bulk = (sandbox_workers(eval) is None and in_process(eval.graders)
            and store._loop is None and not store.conn.in_transaction)
    # answers of items no longer in the eval are not graded: an edited grader's new spec is
    # then not the one of all the run's grades (as when only some items are regraded); the
    # bulk path learns it from the answers it reads, before its one transaction ends
    partial = item_ids is not None or (not bulk and any(
        item_id not in items for (item_id,) in store.conn.execute(
            "SELECT DISTINCT item_id FROM samples WHERE run_id = ? AND status = 'ok' "
            "AND completion IS NOT NULL AND completion != ''", (run_id,)).fetchall()))
    # the bulk path writes in one transaction: nothing to mark as not known before it
    record = GraderRecord.start(store, run, eval, partial=partial, mark=not bulk)
    # every grader deterministic and recorded as the one that gave the run's grades: only the
    # answers whose item changed (or that miss a grade) can be graded otherwise
    stable = (not full and not keep_all and record.unchanged()
              and all(grader_record.own_deterministic(top) for top in eval.graders))
    # else, the graders for which that holds: an unchanged item's answer keeps their grades and
    # is graded by the others only (an edited grader grades every answer, its peers none)
    stable_graders = set() if full or keep_all or stable else record.stable_graders()
    if bulk:
        used = counters or Counters(label=f"regrade {run_id}", total=0)

        def finish() -> None:  # inside the write transaction
            record.partial = record.partial or used.not_in_eval > 0
            record.finish(store)

        try:
            count = regrade_in_process(store, run, eval, variant, item_ids, used,
                                       keep_all=keep_all, grader_changed=record.flags,
                                       only_changed_items=stable,
                                       stable_graders=stable_graders, on_commit=finish)
        finally:
            await eval.aclose()
        return count
    # what this regrade read is the run at this revision: each write checks that no other
    # writer (a review, another regrade) changed the run since (``_Guard``)
    guard = _Guard(store, run_id, store.run_revision(run_id))
    rows = [row for row in store.samples(run_id)
            if row["status"] == "ok" and row["completion"]
            and (item_ids is None or row["item_id"] in item_ids)]
    stored = store.run_items(run_id)
    stored_items = {item.id: item.data for item in stored}
    stored_tags = {item.id: item.tags for item in stored}
    # answers to a question edited since they were answered keep the grades of what they
    # answered: not graded against the new row, nor their item's copy refreshed
    prompted = {item_id for item_id in {row["item_id"] for row in rows}
                if item_id in items and item_id in stored_items
                and not same_json(stored_items[item_id], items[item_id].data)
                and prompt_changed(eval, variant, stored_items[item_id], items[item_id])}
    unprompted = [row for row in rows if row["item_id"] not in prompted]
    skipped, rows = len(rows) - len(unprompted), unprompted
    counters = counters or Counters(label=f"regrade {run_id}", total=len(rows))
    counters.prompt_changed = skipped
    counters.not_in_eval = sum(row["item_id"] not in items for row in rows)
    calls = RunExecution(eval, None, variant, store, run, counters, RunOptions(),
                          asyncio.Semaphore(16), Progress(enabled=False))
    count = 0
    # new grades are written COMMIT_EVERY answers at a time, each batch in one commit with
    # one statement per kind of write (a kill loses at most one batch, and a second regrade
    # grades those answers again). An edited item's stored copy is written with the grades
    # of its last answer graded: a kill before leaves it as it was, so the next regrade still
    # sees the item changed and grades its answers again
    batch: list[tuple[str, int, list[Any], bool]] = []
    refresh: list[Item] = []
    remaining = Counter(row["item_id"] for row in rows if row["item_id"] in items)

    def write() -> None:
        for item in refresh:
            store.update_item(run_id, item)
        store.replace_scores_many(run_id, batch, keep_all=keep_all, grader_changed=record.flags)

    def write_batch() -> None:
        nonlocal batch, refresh
        guard.write(write)
        store.flush()
        batch, refresh = [], []

    async def regrade_one(row: Any) -> None:
        nonlocal count
        item = items.get(row["item_id"])
        if item is None:
            return
        request = eval.request_for(item, variant)
        sample = eval.sample_of(Completion.from_record(orjson.loads(row["completion"])),
                                request)
        with calls.judge_calls():
            scores = await grade_all(eval.graders, sample, item.data)
        batch.append((row["item_id"], row["epoch"], scores,
                      not same_json(stored_items.get(item.id), item.data)))
        remaining[item.id] -= 1
        if not remaining[item.id] and (
                item.id not in stored_items or not same_json(stored_items[item.id], item.data)
                or not same_json(stored_tags.get(item.id), item.tags)):
            refresh.append(item)
        count += 1
        counters.done += 1
        counters.grades += len(scores)
        if len(batch) >= COMMIT_EVERY:  # no await between the check and the write
            write_batch()

    store.group_commits(asyncio.get_running_loop())
    try:
        workers = sandbox_workers(eval) or 1
        if workers <= 1:
            for row in rows:
                await regrade_one(row)
        else:  # sandboxed graders: one answer per warm worker at a time, all cores busy
            widen_thread_pool(workers)
            await _in_window(rows, regrade_one, workers * 2)
        guard.write(write)
    finally:
        store.group_commits(None)
        await eval.aclose()
    record.finish(store)
    return count


def refuse_if_live(run: RunInfo) -> None:
    """UserError (one line) when a live ``posttrain eval`` on this host is still answering the
    run: the answers still to come are graded by the graders that eval loaded, so a regrade now
    would record specs its later grades were not made with."""
    live = process.answering(run)
    if live is not None:
        raise UserError(f"run {run.id} is being answered now by process {live} on this host: "
                        "regrade it once that eval has finished (the answers still to come "
                        "are graded by the graders it loaded)")


@dataclass
class _Guard:
    """The answer-by-answer regrade's check against other writers: each of its writes runs in
    a write transaction that first checks the run's revision is the one this regrade left it
    at (or read at the start); else a :class:`UserError` and nothing of that write is done
    (the batches already written stay: a regrade stopped part way, which the run's
    ``graded_with`` says). The bulk path does the same in its one transaction
    (``regrade_fast.Commit``)."""

    store: Store
    run_id: str
    expected: int

    def write(self, write: Callable[[], None]) -> None:
        """``write()`` (the store grouping commits) after the check, in one transaction."""
        store = self.store
        if not store.conn.in_transaction:  # the write lock first: no writer between the check
            store.conn.execute("BEGIN IMMEDIATE")  # and the write
        with store._write():  # the iteration's commit will hold it
            if store.run_revision(self.run_id) != self.expected:
                raise UserError(f"run {self.run_id} changed while this regrade ran (another "
                                "regrade, a review in posttrain view, or an eval resuming it): "
                                "its grades written so far are kept, the rest not; run it "
                                "again")
            write()
            self.expected = store.run_revision(self.run_id)


@dataclass
class GraderRecord:
    """Which spec gave a run's grades before a re-grade (``before``, from its config) and
    which grades now (``after``); ``flags``: per grader, whether they differ (what each old
    grade's history row records). :meth:`start` marks the graders whose spec changes as not
    known in the run's config until :meth:`finish` records the new specs (a re-grade that
    stops part way leaves grades of both); a re-grade of some items only (``partial``) leaves
    them not known for good."""

    run_id: str
    eval: Eval
    before: dict[str, str | None] | None
    after: dict[str, str]
    flags: dict[str, int | None]
    partial: bool

    @classmethod
    def start(cls, store: Store, run: RunInfo, eval: Eval, *, partial: bool,
              mark: bool = True) -> GraderRecord:
        """``mark``: record the edited graders as not known now (a regrade that writes in
        batches); False for one that writes in one transaction (``finish`` inside it)."""
        before = grader_record.graded_with(
            run.config, regraded_unrecorded="graded_with" not in run.config
            and store.regraded_unrecorded(run.id))
        after = grader_record.eval_digests(eval)
        # an import's grades are OpenAI's (another implementation) until posttrain grades it
        imported = "openai" in run.config and "graded_with" not in run.config
        flags = grader_record.changed_flags(before, after, imported=imported)
        record = cls(run.id, eval, before, after, flags, partial)
        store.update_run_config(run.id, {"grader_names": [g.name for g in eval.graders],
                                         "primary": eval.primary})
        if mark:
            store.update_run_config(run.id, {"graded_with": record._graded_with(final=False)})
        return record

    def unchanged(self) -> bool:
        """Whether every grader is recorded as the one that gave the run's grades of it (and
        the run's grades are of no other grader)."""
        names = {grader.name for grader in self.eval.graders}
        return (self.before is not None and len(self.eval.grader_specs) == len(names)
                and set(self.before) == set(self.after) == names
                and all(flag == 0 for flag in self.flags.values()))

    def stable_graders(self) -> set[str]:
        """The graders recorded as the ones that gave the run's grades of them, deterministic
        and posttrain's own (their grades of an unchanged answer of an unchanged item could not
        differ); none when a grader name is repeated."""
        names = [grader.name for grader in self.eval.graders]
        if self.before is None or len(self.eval.grader_specs) != len(set(names)):
            return set()
        return {top.name for top in self.eval.graders
                if self.before.get(top.name) is not None
                and self.before.get(top.name) == self.after.get(top.name)
                and self.flags.get(top.name) == 0
                and grader_record.own_deterministic(top)}

    def _graded_with(self, *, final: bool) -> dict[str, str | None]:
        before = self.before or {}
        return {name: digest if (final and not self.partial) or before.get(name) == digest
                else None for name, digest in self.after.items()}

    def finish(self, store: Store) -> None:
        # only ``graded_with``: the run's ``graders`` and ``grading`` stay as the run wrote
        # them (they are in the stamp of its kept facts and summaries, which a re-grade that
        # changed no grade keeps; ``grading`` is checked with the history before a replay)
        store.update_run_config(self.run_id, {"graded_with": self._graded_with(final=True)})


def sandbox_workers(eval: Eval) -> int | None:
    """How many answers a regrade grades at once when a grader runs model-written code: one
    per warm sandbox worker (:func:`posttrain.graders.sandbox.default_workers`: one per core
    unless set). None when no grader does (those answers are graded one after another: string
    graders never wait, judges keep the order of their requests)."""
    from posttrain.graders.sandbox import default_workers, needs_sandbox

    threaded = any(getattr(grader, "blocking", False)
                   for top in eval.graders for grader in top.walk())
    return default_workers() if threaded or needs_sandbox(eval.grader_specs) else None


async def _in_window(rows: list[Any], work: Callable[[Any], Awaitable[None]],
                     width: int) -> None:
    """``work(row)`` for every row, at most ``width`` at once, started in order; the first
    failure stops new starts and is raised once the started ones end."""
    running: set[asyncio.Task[None]] = set()
    try:
        for row in rows:
            if len(running) >= width:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            running.add(asyncio.create_task(work(row)))
        if running:
            done, running = await asyncio.wait(running)
            for task in done:
                task.result()
    finally:
        if running:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


def regrade_run(store: Store, run_id: str, eval: Eval | str | Path | None = None,
                *, item_ids: set[str] | None = None, counters: Counters | None = None,
                keep_all: bool = False, full: bool = False) -> int:
    """Synchronous wrapper of :func:`aregrade_run` (not for use inside an event loop)."""
    return asyncio.run(aregrade_run(store, run_id, eval, item_ids=item_ids, counters=counters,
                                    keep_all=keep_all, full=full))

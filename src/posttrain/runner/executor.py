"""The async executor: eval × models × variants, resumable, cached, every answer stored on arrival.

One worker pool per run, all runs of a model sharing that model's concurrency limit. Each
answer is written (with its cache entry and its synchronous grades) in one SQLite commit as
soon as it arrives; judge graders are awaited after the answer is safe, and their scores
written next. A killed run resumes with only the unanswered (item, epoch) pairs; a repeated
run is answered from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from posttrain.environment import episode_watcher
from posttrain.eval import Eval
from posttrain.graders.base import Grader, model_caller
from posttrain.models.base import ModelError
from posttrain.models.batching import BatchingModel
from posttrain.models.retry import RetriesExhausted, RetryPolicy, call_with_retries
from posttrain.runner.cache import (
    CachePolicy,
    cache_lookup,
    entry_meta,
    observe_answer,
    served_stale,
)
from posttrain.runner.progress import Counters, Progress
from posttrain.runner.steering import StoreWatcher, runner_identity
from posttrain.runner.store import RunInfo, Store, request_key
from posttrain.types import ChatRequest, Completion, Item, Score


class WorkerSlot:
    """One sample's place among a run's ``workers``: freed while a reviewer holds its episode
    paused (``StoreWatcher``), taken again to go on; released once whatever happened."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self.slots = slots
        self.held = False

    async def acquire(self) -> None:
        await self.slots.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


#: the worker slot of the sample answered in this task (None outside ``RunExecution.execute``)
worker_slot: ContextVar[WorkerSlot | None] = ContextVar("worker_slot", default=None)


@dataclass
class RunOptions:
    epochs: int = 1
    limit: int | None = None
    concurrency: int | None = None
    use_cache: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    seed: int = 0
    cache: CachePolicy = field(default_factory=CachePolicy)  # expiry and scope of cache hits
    preflight: bool = True  # check every model and judge before the first request


@dataclass
class RunHandle:
    """A finished (model, variant) run and what this invocation did for it."""

    run: RunInfo
    counters: Counters
    model_config: dict[str, Any]


def run_key(eval_: Eval, model_name: str, cache_id: str, variant: str, options: RunOptions,
            fingerprint: str | None = None) -> str:
    """Identity of a run (for resume); ``fingerprint`` is ``eval_.fingerprint()`` if known."""
    material = "|".join([eval_.name, fingerprint or eval_.fingerprint(), model_name, cache_id,
                         variant,
                         str(options.epochs), str(options.limit)])
    return hashlib.blake2b(material.encode(), digest_size=12).hexdigest()


async def grade_all(graders: Sequence[Grader], sample: dict[str, Any], item: dict[str, Any],
                    *, sync_only: bool | None = None) -> list[Score]:
    """Grade with each grader; an exception inside a grader becomes an error score, not a crash.

    ``sync_only`` True grades only the synchronous graders, False only the async (judge) ones.
    """
    scores: list[Score] = []
    for grader in graders:
        if sync_only is not None and grader.is_async == sync_only:
            continue
        try:
            if grader.is_async:
                score = await grader.agrade(sample, item)
            elif getattr(grader, "blocking", False):
                score = await asyncio.to_thread(grader.grade, sample, item)
            else:
                score = grader.grade(sample, item)
        except Exception as exc:  # noqa: BLE001 - a broken grader must not stop the run
            score = Score.error(f"grader raised {type(exc).__name__}: {exc}")
        score.name = grader.name
        scores.append(score)
    return scores


class RunExecution:
    """Executes the pending samples of one run."""

    def __init__(self, eval_: Eval, model: Any, variant: str, store: Store, run: RunInfo,
                 counters: Counters, options: RunOptions, semaphore: asyncio.Semaphore,
                 progress: Progress,
                 judge_semaphores: dict[str, asyncio.Semaphore] | None = None) -> None:
        self.eval = eval_
        self.model = model
        self.variant = variant
        self.store = store
        self.run = run
        self.counters = counters
        self.options = options
        self.semaphore = semaphore
        self.progress = progress
        self.solver = eval_.load_solver()
        self.sync_graders = [g for g in eval_.graders if not g.is_async]
        self.async_graders = [g for g in eval_.graders if g.is_async]
        self.rng = random.Random(options.seed)
        self.cache_scope = options.cache.scope_key(eval_.name, run.id)
        #: one concurrency limit per judge endpoint, shared by every run of the invocation
        self.judge_semaphores = judge_semaphores if judge_semaphores is not None else {}
        #: answers served from cache in this invocation: (item, epoch) -> the item, the hits
        #: (cache key, answer) it was built from, and whether all of it came from cache;
        #: checked against later live answers (:meth:`take_stale`)
        self.hits: dict[tuple[str, int], tuple[Item, list[tuple[str, Completion]], bool]] = {}
        self.judges: dict[str, Any] = {}  # judge models this run looked up in the cache

    def _on_retry(self, _reason: str) -> None:
        self.counters.retries += 1
        self.counters.requests += 1

    async def _generate(self, request: ChatRequest, epoch: int, model: Any = None,
                        semaphore: asyncio.Semaphore | None = None
                        ) -> tuple[Completion, str, int]:
        """One model call through cache, concurrency limit and retries: (completion, cache
        key, attempts). ``model`` defaults to the model under test; judges pass theirs."""
        model = model or self.model
        key = self.cache_key(request, epoch, model)
        attempts = 0

        async def send() -> Completion:
            nonlocal attempts
            async with semaphore or self.semaphore:
                self.counters.requests += 1
                completion, attempts = await call_with_retries(
                    lambda: model.generate(request), self.options.retry,
                    on_retry=self._on_retry, rng=self.rng)
            observe_answer(model, completion)
            return completion

        if self.options.use_cache:  # same request, same model behind the name, not expired
            if model is not self.model:
                self.judges[model.cache_id] = model
            # the model under test may hold its first hit for a canary (this request, live);
            # judges send none, so re-grading from their cache stays free
            found = await cache_lookup(self.store, model, key, self.options.cache,
                                       canary=send if model is self.model else None)
            if found is not None:
                return found, key, 0 if found.cached else attempts
        return await send(), key, attempts

    def cache_key(self, request: ChatRequest, epoch: int, model: Any = None) -> str:
        """The cache key of a request to ``model`` (default: the model under test)."""
        model = model or self.model
        # a local engine's own rendering of tools into the prompt is part of what answered
        fmt = getattr(model, "tools_prompt_format", None) if request.tools else None
        return request_key(model.cache_id, request.to_payload(), epoch, self.cache_scope,
                           fmt if isinstance(fmt, str) else None)

    async def _call_judge(self, model: Any, request: ChatRequest) -> tuple[Completion, int]:
        """A judge's call on the run's path: the judge endpoint's own concurrency limit, the
        same retries and cache, and this run's counters (requests, retries, cost)."""
        semaphore = self.judge_semaphores.get(model.cache_id)
        if semaphore is None:
            limit = getattr(model, "max_concurrency", None) or 16
            semaphore = self.judge_semaphores.setdefault(model.cache_id,
                                                         asyncio.Semaphore(limit))
        completion, key, attempts = await self._generate(request, 0, model, semaphore)
        if not completion.cached:
            self.counters.cost_usd += completion.cost_usd
            if self.options.use_cache:
                self.store.cache_put(key, completion.to_record(), **entry_meta(model, completion))
        return completion, attempts

    @contextmanager
    def judge_calls(self) -> Iterator[None]:
        """Within this block, judge graders call their models through ``_call_judge``."""
        token = model_caller.set(self._call_judge)
        try:
            yield
        finally:
            model_caller.reset(token)

    async def _solve(self, request: ChatRequest, item: Item, epoch: int) -> tuple[Completion, str, int]:
        if self.solver is None:
            completion, key, attempts = await self._generate(request, epoch)
            if completion.cached:
                self.hits[(item.id, epoch)] = (item, [(key, completion)], True)
            return completion, key, attempts
        # a multi-turn sample's attempts: 1 + the retries of all its turns (each turn's first
        # attempt is not a retry), 0 when every turn came from the cache
        retries_total = 0
        sent = False
        all_cached = True
        turn_hits: list[tuple[str, Completion]] = []

        async def generate(inner: ChatRequest) -> Completion:
            nonlocal retries_total, sent, all_cached
            completion, key, attempts = await self._generate(inner, epoch)
            if attempts:
                sent = True
                retries_total += attempts - 1
            all_cached = all_cached and completion.cached
            if completion.cached:
                turn_hits.append((key, completion))
            if not completion.cached:
                # multi-turn: cache each turn as it arrives so a resumed run replays it free
                self.store.cache_put(key, completion.to_record(),
                                     **entry_meta(self.model, completion))
            return completion

        # follow along and steer: the episode's messages go to the store as they arrive, and
        # a reviewer's steering comes back through it (posttrain.runner.steering)
        # (a local store only: a Ray worker's stand-in store has no live view or steering)
        watcher = (StoreWatcher(self.store, self.run.id, item.id, epoch,
                                slot=worker_slot.get())
                   if isinstance(self.store, Store) else None)
        if watcher is not None:
            watcher.start()
        token = episode_watcher.set(watcher)
        try:
            completion = await self.solver(request, item, generate)
        finally:
            episode_watcher.reset(token)
            if watcher is not None:
                watcher.finish()
        completion.cached = all_cached
        if turn_hits:
            self.hits[(item.id, epoch)] = (item, turn_hits, all_cached)
        return completion, self.cache_key(request, epoch), 1 + retries_total if sent else 0

    def take_stale(self) -> list[tuple[Item, int]]:
        """Answers this run served from cache entries that a later live answer shows another
        model wrote: their samples, grades and cache entries are deleted, and the (item, epoch)
        pairs returned to be answered again, so the run holds only the current model's answers.
        The count is kept in the run's config (``cache_rerequested``)."""
        stale = [(key, entry) for key, entry in self.hits.items()
                 if served_stale(self.model, [c for _k, c in entry[1]])]
        if not stale:
            return []
        for key, _entry in stale:
            del self.hits[key]
        self.store.forget_samples(self.run.id, [key for key, _entry in stale])
        self.store.cache_delete({k for _key, (_item, hits, _all) in stale for k, _c in hits})
        count = len(stale)
        self.counters.cached -= sum(1 for _key, (_item, _hits, whole) in stale if whole)
        self.counters.done -= count
        total = int(self.store.get_run(self.run.id).config.get("cache_rerequested") or 0)
        self.store.update_run_config(self.run.id, {"cache_rerequested": total + count})
        print(f"posttrain: warning: {self.model.name} now reports "
              f"{self.model.identity.describe()}, but {count} answers served earlier in this "
              "run came from cache entries another model wrote: requesting them again",
              file=sys.stderr)
        return [(item, epoch) for (_id, epoch), (item, _hits, _all) in stale]

    def note_cache_checks(self) -> None:
        """Keep in the run's config what the canary showed and warn about judge verdicts
        served from entries another judge wrote (judges are not asked again)."""
        identity = getattr(self.model, "identity", None)
        outcome = getattr(identity, "canary_outcome", None)
        if outcome is not None:
            self.store.update_run_config(self.run.id, {"cache_canary": outcome})
        for judge in self.judges.values():
            judge_identity = getattr(judge, "identity", None)
            stale = judge_identity.stale_served() if judge_identity is not None else 0
            if stale:
                print(f"posttrain: warning: judge {judge.name} now reports "
                      f"{judge_identity.describe()}, but {stale} verdicts came from cache "
                      "entries another judge wrote; `posttrain cache clear --model "
                      f"{judge.name}` and re-grade to redo them", file=sys.stderr)

    async def sample(self, item: Item, epoch: int) -> None:
        """Answer one (item, epoch), then grade and store it."""
        answer = await self.answer(item, epoch)
        if answer is not None:
            await self.finish(item, epoch, *answer)

    async def answer(self, item: Item, epoch: int
                     ) -> tuple[ChatRequest, Completion, str, int] | None:
        """The model's answer (cache, retries); a request that fails for good is stored as an
        error here and gives None."""
        counters = self.counters
        try:
            request = self.eval.request_for(item, self.variant)
            completion, key, attempts = await self._solve(request, item, epoch)
        except (RetriesExhausted, ModelError) as exc:  # a solver may let a ModelError through
            attempts = exc.attempts if isinstance(exc, RetriesExhausted) else 1
            reason = exc.reason if isinstance(exc, RetriesExhausted) else str(exc)
            if reason.startswith("timed out") and isinstance(self.model, BatchingModel):
                reason += ("; a local model generates a whole batch at a time, so long prompts "
                           "or answers on a CPU can need more: raise --timeout and --deadline")
            self.store.record_sample(self.run.id, item.id, epoch, completion=None,
                                     request_key=None, attempts=attempts, error=reason)
            counters.errors += 1
            counters.done += 1
            self.progress.tick()
            return None
        if completion.cached:
            counters.cached += 1
        return request, completion, key, attempts

    async def finish(self, item: Item, epoch: int, request: ChatRequest, completion: Completion,
                     key: str, attempts: int) -> None:
        """Grade an answer and store it (answer, cache entry and grades in one commit)."""
        counters = self.counters
        sample = self.eval.sample_of(completion, request)
        scores = await grade_all(self.sync_graders, sample, item.data)
        self.store.record_sample(self.run.id, item.id, epoch, completion=completion,
                                 request_key=key, attempts=max(attempts, 1), scores=scores,
                                 cache=self.options.use_cache and not completion.cached
                                 and self.solver is None,
                                 cache_meta=entry_meta(self.model, completion))
        if self.async_graders:
            with self.judge_calls():
                judge_scores = await grade_all(self.async_graders, sample, item.data)
            scores = scores + judge_scores
            self.store.replace_scores(self.run.id, item.id, epoch, scores)
        counters.cost_usd += 0.0 if completion.cached else completion.cost_usd
        if any(s.status == "error" for s in scores):
            counters.errors += 1
        elif any(s.status != "scored" for s in scores):
            counters.unscored += 1
        counters.done += 1
        self.progress.tick()

    async def regrade_missing(self, keys: set[tuple[str, int]], items: dict[str, Item]) -> None:
        """Answers stored before a kill that lack some of the eval's grades (a judge still
        pending when the run stopped): grade them now with the graders they lack."""
        for row in self.store.samples(self.run.id):
            key = (row["item_id"], row["epoch"])
            if key not in keys or row["status"] != "ok" or row["item_id"] not in items:
                continue
            have = self.store.grader_names_of(self.run.id, *key)
            graders = [g for g in self.eval.graders if g.name not in have]
            completion = Completion.from_record(orjson.loads(row["completion"]))
            item = items[row["item_id"]]
            request = self.eval.request_for(item, self.variant)
            sample = self.eval.sample_of(completion, request)
            with self.judge_calls():
                scores = await grade_all(graders, sample, item.data)
            self.store.add_scores(self.run.id, item.id, row["epoch"], scores)

    async def execute(self, pending: list[tuple[Item, int]], workers: int) -> None:
        """At most ``workers`` samples are answered at once (each holds a worker slot). A
        sample's slot is freed as soon as its answer is in, before it is graded and stored:
        grading and the SQLite write hide behind the next request's latency instead of adding
        to it (at most ``2 x workers`` answers wait for that). An episode a reviewer paused
        frees its slot while it waits (``runner.steering``), so a pause never stalls the run's
        other samples; it takes a slot again to go on."""
        slots = asyncio.Semaphore(max(1, workers))
        room = asyncio.Semaphore(max(1, workers) * 2)
        failures: list[BaseException] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(item: Item, epoch: int, slot: WorkerSlot) -> None:
            token = worker_slot.set(slot)
            try:
                answer = await self.answer(item, epoch)
                if answer is None:
                    return
                await room.acquire()
            finally:
                worker_slot.reset(token)
                slot.release()
            try:
                await self.finish(item, epoch, *answer)
            finally:
                room.release()

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        try:
            for item, epoch in pending:
                slot = WorkerSlot(slots)
                await slot.acquire()
                if failures:
                    slot.release()
                    break
                task = asyncio.create_task(one(item, epoch, slot))
                tasks.add(task)
                task.add_done_callback(done)
            while tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if failures:
            raise failures[0]


@dataclass
class PlannedRun:
    """One (model, variant) run, created or resumed, with the (item, epoch) pairs still to do."""

    execution: RunExecution
    pending: list[tuple[Item, int]]
    workers: int
    handle: RunHandle


async def plan_runs(eval_: Eval, models: Sequence[Any], variants: Sequence[str], store: Store,
                    options: RunOptions, progress: Progress,
                    model_configs: dict[str, dict[str, Any]] | None = None) -> list[PlannedRun]:
    """Create or resume every (model, variant) run; grade answers stored but never graded.

    Before any run is created or any request sent, every model with work to do and every judge
    is checked (``posttrain.runner.preflight``): a setup problem stops here with one line.
    Shared by the local executor and the Ray backend so both resume the same way.
    """
    items = eval_.items[: options.limit] if options.limit else list(eval_.items)
    items_by_id = {item.id: item for item in items}
    semaphores = {id(model): asyncio.Semaphore(options.concurrency or model.max_concurrency or 16)
                  for model in models}
    judge_semaphores: dict[str, asyncio.Semaphore] = {}
    fingerprint = eval_.fingerprint()  # hashes every item: once, not per (model, variant)
    grader_names = [g.name for g in eval_.graders]
    from posttrain.graders.sandbox import confinement_for
    from posttrain.runner.preflight import (
        check_judge_requests,
        check_models,
        check_requests,
        judge_models,
    )

    confinement = confinement_for(eval_.grader_specs)  # no sandbox: refuse before any request
    todo: list[tuple[Any, str, str, RunInfo | None, list[tuple[Item, int]],
                     set[tuple[str, int]]]] = []
    for model in models:
        for variant in variants:
            eval_.variant(variant)  # validates the name
            key = run_key(eval_, model.name, model.cache_id, variant, options, fingerprint)
            run = store.find_resumable_run(key)
            done = store.done_keys(run.id) if run is not None else set()
            ungraded = done - store.scored_keys(run.id, grader_names) if run is not None else set()
            pending = [(item, epoch) for epoch in range(options.epochs) for item in items
                       if (item.id, epoch) not in done]
            todo.append((model, variant, key, run, pending, ungraded))
    busy = [model for model, _v, _k, _r, pending, _u in todo if pending]
    grading = any(pending or ungraded for *_rest, pending, ungraded in todo)
    if options.preflight:
        await check_models(busy + (judge_models(eval_.graders) if grading else []))
    check_requests(eval_, [(model, variant, pending[0][0])
                           for model, variant, _k, _r, pending, _u in todo if pending])
    if grading:
        check_judge_requests(eval_)

    planned: list[PlannedRun] = []
    for model, variant, key, run, pending, ungraded in todo:
        config = (model_configs or {}).get(model.name, {})
        if run is None:
            run = store.create_run(
                run_key=key, eval_name=eval_.name,
                eval_path=str(eval_.source) if eval_.source else None,
                eval_hash=fingerprint, model=model.name, variant=variant,
                epochs=options.epochs, items=items,
                config={"confinement": confinement,
                        "primary": eval_.primary, "pass_bar": eval_.pass_bar,
                        "model": config, "graders": eval_.grader_specs,
                        "tag_fields": eval_.tag_fields, "limit": options.limit,
                        "price": config.get("price"), "grader_names": grader_names},
            )
        if pending:  # which process answers it: the viewer tells a dead runner from a live one
            store.update_run_config(run.id, {"runner": runner_identity()})
        label = f"{model.name}" + (f" [{variant}]" if variant != "default" else "")
        counters = progress.add(Counters(label=label, total=len(pending)))
        execution = RunExecution(eval_, model, variant, store, run, counters, options,
                                 semaphores[id(model)], progress, judge_semaphores)
        if ungraded:
            await execution.regrade_missing(ungraded, items_by_id)
        workers = options.concurrency or model.max_concurrency or 16
        planned.append(PlannedRun(execution, pending, workers,
                                  RunHandle(run=run, counters=counters, model_config=config)))
    return planned


def finish_runs(store: Store, handles: Sequence[RunHandle]) -> None:
    for handle in handles:
        store.finish_run(handle.run.id)
        handle.run = store.get_run(handle.run.id)


async def execute_eval(eval_: Eval, models: Sequence[Any], variants: Sequence[str], store: Store,
                       options: RunOptions, *, progress: Progress | None = None,
                       model_configs: dict[str, dict[str, Any]] | None = None) -> list[RunHandle]:
    """Run every (model, variant) pair; returns one handle per run, in input order."""
    progress = progress or Progress(enabled=False)
    planned = await plan_runs(eval_, models, variants, store, options, progress, model_configs)
    store.group_commits(asyncio.get_running_loop())
    try:
        await asyncio.gather(*(p.execution.execute(p.pending, p.workers) for p in planned))
        for _round in range(3):  # answers served from another model's entries: ask again
            again = [(p, p.execution.take_stale()) for p in planned]
            if not any(pending for _p, pending in again):
                break
            await asyncio.gather(*(p.execution.execute(pending, p.workers)
                                   for p, pending in again if pending))
    finally:
        store.group_commits(None)
        progress.tick(force=True)
    for plan in planned:
        plan.execution.note_cache_checks()
    handles = [p.handle for p in planned]
    finish_runs(store, handles)
    return handles

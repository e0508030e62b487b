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
import os
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from posttrain.environment import episode_watcher
from posttrain.errors import UserError
from posttrain.eval import Eval
from posttrain.graders.base import Grader, model_caller
from posttrain.models.base import ModelError
from posttrain.models.batching import BatchingModel
from posttrain.models.identity import is_exact
from posttrain.models.retry import RetriesExhausted, RetryPolicy, call_with_retries
from posttrain.runner import grader_record
from posttrain.runner.cache import (
    CachePolicy,
    cache_lookup,
    entry_meta,
    observe_answer,
    served_stale,
)
from posttrain.runner.progress import Counters, Progress
from posttrain.runner.steering import runner_identity, watcher_for
from posttrain.runner.store import RunInfo, Store, request_key
from posttrain.types import ChatRequest, Completion, Item, Score

#: (item, epoch) pairs whose requests are built and looked up in the cache together, before
#: they are sent; the cache hits among them are graded and stored together (one commit)
PREFETCH = 512


class _Served(NamedTuple):
    """What the endpoint reported for a cache entry served in this run (all that
    :func:`~posttrain.runner.cache.served_stale` reads of an answer)."""

    served_model: str | None
    fingerprint: str | None


#: a request built and looked up before dispatch: (request, cache key, the cached answer to
#: serve or None, whether the cache must still be read: a hit held for the canary)
Prepared = tuple[ChatRequest, str, Completion | None, bool]


class WorkerSlot:
    """One sample's place among a run's ``workers``: freed while a reviewer holds its episode
    paused (``StoreWatcher``), taken again to go on; released once whatever happened."""

    def __init__(self, slots: asyncio.Semaphore, on_pause: Any = None) -> None:
        self.slots = slots
        self.held = False
        self.on_pause = on_pause  # called when a pause frees the slot (a spare worker)

    async def acquire(self) -> None:
        await self.slots.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()

    def pause(self) -> None:
        """The episode waits for a reviewer: free the slot for the run's other samples."""
        if self.held:
            self.release()
            if self.on_pause is not None:
                self.on_pause()


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


def _note_resumed_graders(store: Store, run: RunInfo, eval_: Eval) -> None:
    """A resumed run graded by a grader whose spec is not the one that gave its earlier
    grades holds grades of both: its ``graded_with`` says that grader's spec is not known."""
    before = grader_record.graded_with(run.config, regraded_unrecorded=False) or {}
    now = grader_record.eval_digests(eval_)
    mixed = {name: None for name, digest in now.items()
             if name in before and before[name] != digest}
    if mixed:
        store.update_run_config(run.id, {"graded_with": {**before, **mixed}})


def grading_signature(eval_: Eval, digests: Mapping[str, str] | None = None) -> str:
    """What an answer's grades depend on besides the answer and the item, in one digest: each
    grader's :func:`~posttrain.runner.grader_record.eval_digests` entry (its spec, the eval's
    reasoning mode and response format, the code that grades: posttrain's own, a plugin's
    module, a python grader's file, metric libraries). Kept in each run's config
    (``grading``): a later run copies an earlier run's grades only when the two agree and the
    earlier run's ``graded_with`` is still these digests (``Store.replay_source``)."""
    if digests is None:
        digests = grader_record.eval_digests(eval_)
    material = orjson.dumps([list(digests.items()), eval_.reasoning], default=str)
    return hashlib.blake2b(material, digest_size=12).hexdigest()


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


def grade_sync(graders: Sequence[Grader], sample: dict[str, Any],
               item: dict[str, Any]) -> list[Score]:
    """:func:`grade_all` for graders that are neither async nor blocking, without the event
    loop (the same scores: an exception inside a grader becomes an error score)."""
    scores: list[Score] = []
    for grader in graders:
        try:
            score = grader.grade(sample, item)
        except Exception as exc:  # noqa: BLE001 - a broken grader must not stop the run
            score = Score.error(f"grader raised {type(exc).__name__}: {exc}")
        score.name = grader.name
        scores.append(score)
    return scores


def widen_thread_pool(workers: int) -> None:
    """Blocking graders run in the loop's default thread pool, which holds min(32, cores + 4)
    threads: on a machine of more than 28 cores, give it one per sandbox worker and four."""
    loop = asyncio.get_running_loop()
    have = getattr(loop, "_posttrain_threads", min(32, (os.cpu_count() or 1) + 4))
    if workers + 4 > have:  # once per loop and size: a replaced pool's threads stay idle
        from concurrent.futures import ThreadPoolExecutor

        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=workers + 4, thread_name_prefix="posttrain-grade"))
        loop._posttrain_threads = workers + 4  # type: ignore[attr-defined]


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
        #: cache hits served in bulk (:meth:`_source`), by what their entries recorded
        self.bulk_hits: dict[_Served, list[tuple[Item, int]]] = {}
        #: graded and stored without waiting on anything: no judge, no grader in a thread
        self.inline = not self.async_graders and not any(
            getattr(g, "blocking", False) for g in self.sync_graders)
        self._meta: dict[tuple[str | None, str | None], dict[str, str | None]] = {}
        #: grades that need no grading again: every grader is synchronous, deterministic and
        #: posttrain's own (``grader_record.own_deterministic``), so a cache hit's grades may be
        #: copied from an earlier run that graded the same answer to the same item (:meth:`_replay`)
        self.replayable = self.inline and all(
            grader_record.own_deterministic(grader) for grader in self.sync_graders)
        #: the run whose grades :meth:`_replay` copied (its id and stamp then), and how many
        #: answers it copied; ``spoiled``: some answers were forgotten and asked again
        self.replay_from: tuple[str, str] | None = None
        self.replayed = 0
        self.replay_spoiled = False

    def _on_retry(self, _reason: str) -> None:
        self.counters.retries += 1
        self.counters.requests += 1

    async def _generate(self, request: ChatRequest, epoch: int, model: Any = None,
                        semaphore: asyncio.Semaphore | None = None, *, key: str | None = None,
                        lookup: bool = True) -> tuple[Completion, str, int]:
        """One model call through cache, concurrency limit and retries: (completion, cache
        key, attempts). ``model`` defaults to the model under test; judges pass theirs.
        ``key``: the request's cache key when known; ``lookup`` False: the cache was read for
        it already (:meth:`_source`) and held nothing to serve."""
        model = model or self.model
        key = key or self.cache_key(request, epoch, model)
        attempts = 0

        async def send() -> Completion:
            nonlocal attempts
            async with semaphore or self.semaphore:
                self.counters.requests += 1
                completion, attempts = await call_with_retries(
                    lambda: model.generate(request), self.options.retry,
                    on_retry=self._on_retry, rng=self.rng,
                    own_timeout_s=getattr(model, "own_timeout_s", None))
            observe_answer(model, completion)
            return completion

        if self.options.use_cache and lookup:  # same request, same model, not expired
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

    async def _solve(self, request: ChatRequest, item: Item, epoch: int, key: str | None = None,
                     lookup: bool = True) -> tuple[Completion, str, int]:
        if self.solver is None:
            completion, key, attempts = await self._generate(request, epoch, key=key,
                                                             lookup=lookup)
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
        # (in a Ray worker, through its stand-in store and the driver: runner.ray_backend)
        watcher = watcher_for(self.store, self.run.id, item.id, epoch, slot=worker_slot.get())
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
        for key, _entry in stale:
            del self.hits[key]
        # (item, epoch, cache keys, whether the whole answer came from the cache)
        again = [(item, epoch, [k for k, _c in hits], whole)
                 for (_id, epoch), (item, hits, whole) in stale]
        for served in [s for s in self.bulk_hits if served_stale(self.model, [s])]:
            again += [(item, epoch, [self.cache_key(self.eval.request_for(item, self.variant),
                                                    epoch)], True)
                      for item, epoch in self.bulk_hits.pop(served)]
        if not again:
            return []
        self.replay_spoiled = True
        self.store.forget_samples(self.run.id, [(item.id, epoch) for item, epoch, _k, _w in again])
        self.store.cache_delete({k for _item, _epoch, keys, _whole in again for k in keys})
        count = len(again)
        self.counters.cached -= sum(1 for *_rest, whole in again if whole)
        self.counters.done -= count
        total = int(self.store.get_run(self.run.id).config.get("cache_rerequested") or 0)
        self.store.update_run_config(self.run.id, {"cache_rerequested": total + count})
        print(f"posttrain: warning: {self.model.name} now reports "
              f"{self.model.identity.describe()}, but {count} answers served earlier in this "
              "run came from cache entries another model wrote: requesting them again",
              file=sys.stderr)
        return [(item, epoch) for item, epoch, _keys, _whole in again]

    def note_replay(self) -> None:
        """When every answer of the run was copied by :meth:`_replay` from one earlier run,
        unchanged since, say so in the run's config (``replayed_from``: its id and stamp, and
        this run's revision): while neither run changes, the run's score facts are that run's
        (``runner.facts``), not built again."""
        if self.replay_from is None or not self.replayed or self.replay_spoiled:
            return
        source, stamp = self.replay_from
        self.store.flush()
        count = self.store.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?",
                                        (self.run.id,)).fetchone()[0]
        if count == self.replayed and self.store.run_stamp(self.store.get_run(source)) == stamp:
            # with this run's own revision: once its grades or items change (a regrade, a
            # review), its facts are its own, no longer the source's
            self.store.update_run_config(self.run.id, {"replayed_from": [
                source, stamp, self.store.run_revision(self.run.id)]})

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

    async def answer(self, item: Item, epoch: int, prepared: Prepared | None = None
                     ) -> tuple[ChatRequest, Completion, str, int] | None:
        """The model's answer (cache, retries); a request that fails for good is stored as an
        error here and gives None. ``prepared``: the request as :meth:`_source` built and
        looked it up."""
        counters = self.counters
        if prepared is not None and prepared[2] is not None:  # a cache hit read in bulk
            counters.cached += 1
            return prepared[0], prepared[2], prepared[1], 0
        try:
            if prepared is None:
                request, key, lookup = self.eval.request_for(item, self.variant), None, True
            else:
                request, key, _hit, lookup = prepared
            completion, key, attempts = await self._solve(request, item, epoch, key, lookup)
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
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code (a solver, its environment) broke
            if self.solver is None:
                raise
            # not the model's failure: the eval's own code; one line, the answers so far kept
            raise UserError(f"solver {self.eval.solver!r} raised {type(exc).__name__}: {exc} "
                            f"(item {item.id!r}, epoch {epoch}); the answers stored so far are "
                            "kept: fix it and run the same command again",
                            file=self.eval.source, field="solver") from None
        if completion.cached:
            counters.cached += 1
        return request, completion, key, attempts

    async def finish(self, item: Item, epoch: int, request: ChatRequest, completion: Completion,
                     key: str, attempts: int) -> None:
        """Grade an answer and store it (answer, cache entry and grades in one commit)."""
        if self.inline:
            self.finish_now(item, epoch, request, completion, key, attempts)
            return
        sample = self.eval.sample_of(completion, request)
        scores = await grade_all(self.sync_graders, sample, item.data)
        self._record(item, epoch, completion, key, attempts, scores)
        if self.async_graders:
            with self.judge_calls():
                judge_scores = await grade_all(self.async_graders, sample, item.data)
            scores = scores + judge_scores
            self.store.replace_scores(self.run.id, item.id, epoch, scores)
        self._count(completion, scores)

    def finish_now(self, item: Item, epoch: int, request: ChatRequest, completion: Completion,
                   key: str, attempts: int) -> None:
        """:meth:`finish` when every grader is synchronous (``self.inline``): no await."""
        scores = grade_sync(self.sync_graders, self.eval.sample_of(completion, request),
                            item.data)
        self._record(item, epoch, completion, key, attempts, scores)
        self._count(completion, scores)

    def _record(self, item: Item, epoch: int, completion: Completion, key: str, attempts: int,
                scores: list[Score]) -> None:
        cache = self.options.use_cache and not completion.cached and self.solver is None
        self.store.record_sample(self.run.id, item.id, epoch, completion=completion,
                                 request_key=key, attempts=max(attempts, 1), scores=scores,
                                 cache=cache, cache_meta=self._entry_meta(completion)
                                 if cache else None)

    def _entry_meta(self, completion: Completion) -> dict[str, str | None]:
        """``entry_meta`` of the model under test, kept per (served model, fingerprint)."""
        pair = (completion.served_model, completion.fingerprint)
        meta = self._meta.get(pair)
        if meta is None:
            meta = self._meta[pair] = entry_meta(self.model, completion)
        return meta

    def _count(self, completion: Completion, scores: list[Score]) -> None:
        counters = self.counters
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

    def _source(self, pending: list[tuple[Item, int]]
                ) -> Iterator[tuple[Item, int, Prepared | None] | None]:
        """The (item, epoch, prepared) pairs to answer, for the workers to share.

        With the cache on and one request per sample (no solver), :data:`PREFETCH` pairs at a
        time: their requests are built and looked up in one read; a miss is sent without being
        looked up again, a hit on an entry that must wait for the canary goes the one-by-one
        way (``cache_lookup``), and the other hits are graded and stored here, a chunk at a
        time, then ``None`` is yielded so the worker lets the loop commit them. Hits need
        an awaiting grader (a judge, a grader in a thread) go to the workers with their answer.
        """
        if not self.options.use_cache or self.solver is not None:
            for item, epoch in pending:
                yield item, epoch, None
            return
        model = self.model
        identity = getattr(model, "identity", None)
        max_age_s = self.options.cache.max_age_s(model.cache_id)
        canary = identity is not None and not is_exact(model.cache_id)
        source = None
        if self.replayable and isinstance(self.store, Store):
            digests = grader_record.eval_digests(self.eval)
            source = self.store.replay_source(self.run.id, grading_signature(self.eval, digests),
                                              digests)
        if source is not None:
            self.replay_from = (source, self.store.run_stamp(self.store.get_run(source)))
        for start in range(0, len(pending), PREFETCH):
            chunk = pending[start:start + PREFETCH]
            requests = [self.eval.request_for(item, self.variant) for item, _epoch in chunk]
            keys = [self.cache_key(request, epoch)
                    for request, (_item, epoch) in zip(requests, chunk, strict=True)]
            texts: dict[str, str] = {}
            found = self.store.cache_get_many(
                keys, max_age_s=max_age_s,
                identity=identity.current() if identity is not None else None, texts=texts)
            hits: list[tuple[Item, int, ChatRequest, str, Completion]] = []
            for (item, epoch), request, key in zip(chunk, requests, keys, strict=True):
                record = found.get(key)
                if record is None:
                    yield item, epoch, (request, key, None, False)
                    continue
                completion = Completion.from_record(record)
                completion.cached = True
                served, fingerprint = completion.served_model, completion.fingerprint
                if canary and identity.canary_due(served, fingerprint):  # type: ignore[union-attr]
                    yield item, epoch, (request, key, None, True)
                    continue
                if identity is not None:
                    identity.served_from_cache(served, fingerprint)
                if not self.inline:
                    self._note_bulk_hit(item, epoch, completion)
                    yield item, epoch, (request, key, completion, False)
                    continue
                hits.append((item, epoch, request, key, completion))
            if hits:
                copied = (self._replay(source, hits, found, texts) if source is not None
                          else {})
                if copied is None:  # the source changed: grade the rest here
                    source, copied, self.replay_spoiled = None, {}, True
                self.replayed += len(copied)
                for item, epoch, request, key, completion in hits:
                    self._note_bulk_hit(item, epoch, completion)
                    self.counters.cached += 1
                    flags = copied.get((item.id, epoch))
                    if flags is None:
                        self.finish_now(item, epoch, request, completion, key, 0)
                    else:
                        self._count_replayed(*flags)
                yield None

    def _replay(self, source: str, hits: list[tuple[Item, int, ChatRequest, str, Completion]],
                records: dict[str, dict[str, Any]], texts: dict[str, str]
                ) -> dict[tuple[str, int], tuple[bool, bool]] | None:
        """Store the hits that run ``source`` answered alike with its grades, in SQLite
        (``Store.replay_answers``): the same rows as :meth:`finish_now` writes, without
        grading again (every grader is deterministic, and ``source``'s grading signature is
        this run's). Only hits whose cache entry is the record ``record_sample`` would write
        go: the others, and those ``source`` did not answer alike, are graded as usual.
        ``texts``: the entries' responses as read (the answer text a replayed sample stores).
        None when ``source`` changed since it was chosen (then nothing more is copied)."""
        rows = []
        for item, epoch, _request, key, completion in hits:
            if completion.to_record() != records[key]:
                continue
            c = completion  # the sample columns of a cached answer, as ``record_sample``
            rows.append((item.id, epoch, key, c.input_tokens, c.output_tokens, c.cost_usd,
                         c.latency_s if c.latency_s else None, texts[key]))
        stamp = self.replay_from[1] if self.replay_from is not None else None
        return self.store.replay_answers(source, self.run.id, len(self.sync_graders), rows,
                                         stamp)

    def _count_replayed(self, error: bool, unscored: bool) -> None:
        """:meth:`_count` of a cache hit stored by :meth:`_replay` (its grades' statuses)."""
        counters = self.counters
        if error:
            counters.errors += 1
        elif unscored:
            counters.unscored += 1
        counters.done += 1
        self.progress.tick()

    def _note_bulk_hit(self, item: Item, epoch: int, completion: Completion) -> None:
        """Keep what a hit served in bulk needs if a later live answer shows it stale."""
        if getattr(self.model, "identity", None) is None:
            return  # nothing can show it stale (``served_stale``)
        served = _Served(completion.served_model, completion.fingerprint)
        self.bulk_hits.setdefault(served, []).append((item, epoch))

    async def execute(self, pending: list[tuple[Item, int]], workers: int) -> None:
        """At most ``workers`` samples are answered at once (each holds a worker slot). Each
        worker sends its next request before the last answer is graded and stored: grading
        and the SQLite write run in their own task, so they hide behind the model's latency
        instead of adding to it (at most ``2 x workers`` answers wait for that). Graders that
        never wait (string checks, ...) grade each answer as it arrives, and its row joins the
        event-loop iteration's commit. An episode a reviewer paused frees its slot while it
        waits (``runner.steering``) and a spare worker takes it, so a pause never stalls the
        run's other samples; the episode takes a slot again to go on."""
        identity = getattr(self.model, "identity", None)
        if self.options.use_cache and identity is not None:
            await identity.ensure()  # what the cache's entries must agree with
        queue = self._source(pending)
        finishing: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(max(1, workers))
        room = asyncio.Semaphore(max(1, workers) * 2)
        failures: list[BaseException] = []
        running: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            finishing.discard(task)
            room.release()
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        def spare() -> None:
            """A paused episode's worker waits with it: another worker takes its slot."""
            task = asyncio.create_task(worker())
            running.add(task)
            task.add_done_callback(running.discard)

        async def worker() -> None:
            for entry in queue:
                if failures:
                    return
                if entry is None:  # a chunk of cache hits was stored: let the loop commit
                    await asyncio.sleep(0)
                    continue
                item, epoch, prepared = entry
                slot = WorkerSlot(slots, on_pause=spare)
                await slot.acquire()
                token = worker_slot.set(slot)
                try:
                    answer = await self.answer(item, epoch, prepared)
                finally:
                    worker_slot.reset(token)
                    slot.release()
                if answer is None:
                    continue
                if self.inline:
                    self.finish_now(item, epoch, *answer)
                    continue
                await room.acquire()
                task = asyncio.create_task(self.finish(item, epoch, *answer))
                finishing.add(task)
                task.add_done_callback(done)

        try:
            for _ in range(max(1, min(workers, len(pending)))):
                spare()
            while running:
                await asyncio.gather(*list(running))
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            if finishing:
                await asyncio.gather(*finishing, return_exceptions=True)
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
    from posttrain.runner import process

    digests = grader_record.eval_digests(eval_)
    signature = grading_signature(eval_, digests)
    from posttrain.runner.preflight import (
        check_judge_requests,
        check_models,
        check_requests,
        judge_models,
    )

    confinement = confinement_for(eval_.grader_specs)  # no sandbox: refuse before any request
    if confinement is not None:  # one warm worker per core grades at once
        from posttrain.graders.sandbox import default_workers

        widen_thread_pool(default_workers())
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
            if run is not None and (pending or ungraded):  # not beside its live runner
                process.refuse_if_answered(run.id, (run.config or {}).get("runner"),
                                           _label(model.name, variant))
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
        resumed = run is not None
        if run is None:
            # the runner is recorded as the run is created, in one write with the check that
            # no live process created it first (two evals started at the same moment)
            run = store.create_run(
                run_key=key, eval_name=eval_.name,
                eval_path=str(eval_.source) if eval_.source else None,
                eval_hash=fingerprint, model=model.name, variant=variant,
                epochs=options.epochs, items=items,
                config={"confinement": confinement,
                        "primary": eval_.primary, "pass_bar": eval_.pass_bar,
                        "model": config, "graders": eval_.grader_specs,
                        "tag_fields": eval_.tag_fields, "limit": options.limit,
                        "price": config.get("price"), "grader_names": grader_names,
                        "solver": eval_.solver, "grading": signature,
                        "graded_with": digests, "prompts": eval_.prompt_digest(variant),
                        **({"runner": runner_identity()} if pending else {})},
                label=_label(model.name, variant))
        if pending and resumed:  # which process answers it: the viewer tells a dead runner
            store.update_run_config(run.id, {"runner": runner_identity()})  # from a live one
        if resumed and (pending or ungraded):  # graded now by these specs, before by others?
            _note_resumed_graders(store, run, eval_)
        counters = progress.add(Counters(label=_label(model.name, variant), total=len(pending)))
        execution = RunExecution(eval_, model, variant, store, run, counters, options,
                                 semaphores[id(model)], progress, judge_semaphores)
        if ungraded:
            await execution.regrade_missing(ungraded, items_by_id)
        workers = options.concurrency or model.max_concurrency or 16
        planned.append(PlannedRun(execution, pending, workers,
                                  RunHandle(run=run, counters=counters, model_config=config)))
    return planned


def _label(model: str, variant: str) -> str:
    return model + (f" [{variant}]" if variant != "default" else "")


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
    store.group_commits(asyncio.get_running_loop(), background_checkpoints=True)
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
        plan.execution.note_replay()
    handles = [p.handle for p in planned]
    finish_runs(store, handles)
    return handles

"""``posttrain eval … --backend ray``: the same runs, with items sharded across a Ray cluster.

The driver keeps everything that needs one writer: it creates or resumes runs exactly like the
local executor (:func:`posttrain.runner.executor.plan_runs`), answers cached items itself (nothing
cached is sent to a worker), and owns the SQLite store. Worker actors (one pool per model) build
the model from its :class:`~posttrain.models.ModelConfig` (keys come from the worker's own
environment, never from task arguments) and the eval from its file, and run the local executor's
own per-sample code (:class:`~posttrain.runner.executor.RunExecution`) against a *recording*
store: every write it would make is streamed back to the driver as an event (a Ray streaming
generator per small batch), and the driver writes each one as it arrives.

Follow along and steer work as on the local runner: a worker's episode watcher
(:class:`~posttrain.runner.steering.RelayWatcher`) streams each message of an agentic sample
as a ``steps`` event, which the driver writes like the answers; the driver reads the
``steering`` table for the episodes its workers play and forwards each pause or resume to the
worker playing it (``RayEvalWorker.steer``), and the status the worker gives it comes back as
an event. The workers never open the store for writing.

A worker lost midway: the items whose answers already arrived are stored and never re-sent
(answers still waiting for their judge graders are judged in the driver); the rest of its
batches go back to the front of the queue for the remaining workers. When no worker is left the
run stops with a clear error, and the same command resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.eval import Eval
from posttrain.runner.cache import cache_lookup
from posttrain.runner.executor import (
    PlannedRun,
    RunExecution,
    RunHandle,
    RunOptions,
    finish_runs,
    grade_all,
    plan_runs,
)
from posttrain.runner.progress import Counters, Progress
from posttrain.runner.steering import POLL_S, RelayWatcher, StoreWatcher, pending_for_runs
from posttrain.runner.store import RunInfo, Store, cache_read
from posttrain.types import Item, Score

log = logging.getLogger("posttrain.ray")

_COUNTER_FIELDS = ("done", "errors", "unscored", "retries", "requests", "cached", "cost_usd")


# ---- what travels to a worker ---------------------------------------------------------------
@dataclass
class EvalRef:
    """How a worker gets the eval: its file (checked by fingerprint) or, without one, a pickle."""

    path: str | None
    fingerprint: str
    blob: bytes | None = None

    @classmethod
    def of(cls, eval_: Eval) -> EvalRef:
        if eval_.source is not None and Path(eval_.source).is_file():
            return cls(str(eval_.source), eval_.fingerprint())
        if any(grader.is_async for grader in eval_.graders):
            # a judge grader holds a built model (and its key): never pickle it to a worker
            raise UserError("--backend ray needs the eval as a file when it has judge graders",
                            field="--backend")
        from ray import cloudpickle

        return cls(None, eval_.fingerprint(), cloudpickle.dumps(eval_))

    def load(self, models_file: str | None, timeout_s: float) -> Eval:
        if self.path is not None and Path(self.path).is_file():
            from posttrain.eval import load_eval
            from posttrain.models import build_model, model_config

            def judge_factory(spec: str) -> Any:
                return build_model(model_config(spec, models_file), timeout_s=timeout_s)

            eval_ = load_eval(self.path, model_factory=judge_factory)
        elif self.blob is not None:
            from ray import cloudpickle

            eval_ = cloudpickle.loads(self.blob)
        else:
            raise RuntimeError(f"eval file {self.path} is not readable on this Ray node; "
                               "put it on a shared path")
        if eval_.fingerprint() != self.fingerprint:
            raise RuntimeError(f"eval file {self.path} differs on this Ray node from the "
                               "driver's copy (fingerprint mismatch)")
        return eval_


@dataclass
class _Task:
    run_index: int
    item: Item
    epoch: int


# ---- the worker side ------------------------------------------------------------------------
class _RecordingStore:
    """Stands in for :class:`Store` inside a worker: each write becomes an event for the driver.

    Cache reads: the driver looked up whole answers before dispatch; the turns of a multi-turn
    solver are looked up here, read-only, when the store file is reachable from this node
    (same machine or a shared file system); otherwise they are not cached across runs.
    """

    def __init__(self, queue: asyncio.Queue[tuple[Any, ...]], reader: Any = None,
                 inbox: dict[tuple[str, str, int], list[dict[str, Any]]] | None = None) -> None:
        self.queue = queue
        self.reader = reader
        #: the steering controls the driver forwarded, by the episode they are for (the
        #: worker's, shared by its batches); an episode has an entry while it is played here
        self.inbox = inbox if inbox is not None else {}

    def cache_get(self, key: str, **validity: Any) -> dict[str, Any] | None:
        if self.reader is None:
            return None
        return cache_read(self.reader, key, **validity)

    def cache_put(self, key: str, record: dict[str, Any], **meta: Any) -> None:
        self.queue.put_nowait(("cache", key, record, meta))

    def record_sample(self, _run_id: str, item_id: str, epoch: int, **kwargs: Any) -> None:
        kwargs["scores"] = list(kwargs.get("scores") or ())
        self.queue.put_nowait(("record", item_id, epoch, kwargs))

    def replace_scores(self, _run_id: str, item_id: str, epoch: int, scores: Any) -> None:
        self.queue.put_nowait(("scores", item_id, epoch, list(scores)))

    # follow along and steer (posttrain.runner.steering.RelayWatcher): steps and control
    # statuses go to the driver; the controls read are those it forwarded (RayEvalWorker.steer)
    def episode_watcher(self, run_id: str, item_id: str, epoch: int) -> RelayWatcher:
        return RelayWatcher(self, run_id, item_id, epoch)  # type: ignore[arg-type]

    def episode_event(self, kind: str, run_id: str, item_id: str, epoch: int) -> None:
        if kind == "start":
            self.inbox[(run_id, item_id, epoch)] = []
        else:
            self.inbox.pop((run_id, item_id, epoch), None)
        self.queue.put_nowait((kind, item_id, epoch))

    def add_steps(self, _run_id: str, item_id: str, epoch: int, turn: int,
                  rows: Sequence[tuple[str, int | None, dict[str, Any] | None]]) -> None:
        self.queue.put_nowait(("steps", item_id, epoch, turn, list(rows)))

    def pending_controls(self, run_id: str, item_id: str, epoch: int) -> list[dict[str, Any]]:
        return [row for row in self.inbox.get((run_id, item_id, epoch), ())
                if row["status"] == "pending"]

    def set_control_status(self, control_id: int, status: str, note: str | None = None) -> None:
        for rows in self.inbox.values():
            for row in rows:
                if row["id"] == control_id:
                    row["status"] = status
        self.queue.put_nowait(("control", control_id, status, note))

    def flush(self) -> None:
        """Nothing to commit here: the driver writes each event as it arrives."""


class RayEvalWorker:
    """One Ray actor: one model, one eval, many batches (run as ``ray.remote(RayEvalWorker)``)."""

    def __init__(self, config: Any, eval_ref: EvalRef, options: RunOptions, concurrency: int,
                 models_file: str | None = None, store_path: str | None = None) -> None:
        from posttrain.models import build_model

        self.options = options
        self.concurrency = concurrency
        self.model = build_model(config, concurrency=concurrency,
                                 timeout_s=options.retry.timeout_s)
        self.eval = eval_ref.load(models_file, options.retry.timeout_s)
        self._semaphore: asyncio.Semaphore | None = None
        self._reader: Any = None
        self._inbox: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        if (store_path and options.use_cache and self.eval.solver is not None
                and Path(store_path).is_file()):
            import sqlite3

            self._reader = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True,
                                           check_same_thread=False)

    def pid(self) -> int:
        return os.getpid()

    def playing(self) -> list[tuple[str, str, int]]:
        """The agentic episodes (run, item, epoch) this worker plays now."""
        return sorted(self._inbox)

    async def steer(self, rows: list[dict[str, Any]]) -> int:
        """Steering controls (``steering`` rows) for episodes played here, from the driver;
        how many were taken in. A control for an episode no longer played here is dropped:
        the driver refuses it when that episode's ``finish`` event arrives."""
        taken = 0
        for row in rows:
            episode = self._inbox.get((row["run_id"], row["item_id"], row["epoch"]))
            if episode is not None and all(known["id"] != row["id"] for known in episode):
                episode.append(dict(row))
                taken += 1
        return taken

    async def run_batch(self, run: RunInfo, variant: str,
                        tasks: list[tuple[Item, int]]) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Generate and grade each (item, epoch); yield every store write as it happens (in
        lists: the events ready at the same moment). Each item ends with a
        ``("done", item_id, epoch, counters)`` event.
        """
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        store = _RecordingStore(queue, self._reader, self._inbox)

        async def one(item: Item, epoch: int) -> None:
            counters = Counters(label="", total=1)
            execution = RunExecution(self.eval, self.model, variant, store,  # type: ignore[arg-type]
                                      run, counters, self.options, self._semaphore,
                                      Progress(enabled=False))
            try:
                await execution.sample(item, epoch)
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops
                queue.put_nowait(("failed", item.id, epoch, f"{type(exc).__name__}: {exc}"))
                return
            queue.put_nowait(("done", item.id, epoch,
                              {name: getattr(counters, name) for name in _COUNTER_FIELDS}))

        running = [asyncio.create_task(one(item, epoch)) for item, epoch in tasks]
        remaining = len(running)
        try:
            while remaining:
                # everything ready now travels as one object: fewer, larger Ray objects
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                remaining -= sum(event[0] in ("done", "failed") for event in events)
                yield events
        finally:
            for task in running:
                task.cancel()

    async def aclose(self) -> None:
        await self.model.aclose()


# ---- the driver side ------------------------------------------------------------------------
@dataclass
class _Pool:
    """The workers of one model and the queue of (item, epoch) tasks they share."""

    config: Any
    actors: list[Any]
    per_worker: int
    batch_size: int
    batches_per_worker: int
    queue: deque[_Task] = field(default_factory=deque)
    alive: set[int] = field(default_factory=set)
    in_flight: dict[int, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)


class _Driver:
    def __init__(self, planned: list[PlannedRun], store: Store, progress: Progress) -> None:
        self.planned = planned
        self.store = store
        self.progress = progress
        #: agentic episodes being played, (run, item, epoch) -> the actor playing them: the
        #: steering controls for them are forwarded there (:meth:`relay_steering`)
        self.episodes: dict[tuple[str, str, int], Any] = {}
        self.forwarded: set[int] = set()

    # events from a worker -> the store, immediately
    def apply(self, run_index: int, event: tuple[Any, ...],
              answered: dict[tuple[str, int], list[Score]], actor: Any = None) -> None:
        plan = self.planned[run_index]
        run_id = plan.handle.run.id
        kind = event[0]
        if kind == "steps":
            _, item_id, epoch, turn, rows = event
            self.store.add_steps(run_id, item_id, epoch, turn, rows)
        elif kind == "control":
            self.store.set_control_status(event[1], event[2], event[3])
        elif kind == "start":  # an agentic episode begins on ``actor``: steering goes there
            key = (run_id, event[1], event[2])
            StoreWatcher(self.store, *key).start()
            self.episodes[key] = actor
        elif kind == "finish":
            key = (run_id, event[1], event[2])
            self.episodes.pop(key, None)
            StoreWatcher(self.store, *key).finish()
        elif kind == "cache":
            self.store.cache_put(event[1], event[2], **(event[3] if len(event) > 3 else {}))
        elif kind == "record":
            _, item_id, epoch, kwargs = event
            self.store.record_sample(run_id, item_id, epoch, **kwargs)
            answered[(item_id, epoch)] = list(kwargs.get("scores") or ())
        elif kind == "scores":
            _, item_id, epoch, scores = event
            self.store.replace_scores(run_id, item_id, epoch, scores)
        elif kind == "done":
            counters = plan.handle.counters
            for name, value in event[3].items():
                setattr(counters, name, getattr(counters, name) + value)
            self.progress.tick()
        elif kind == "failed":
            raise RuntimeError(f"a Ray worker failed on item {event[1]!r} (epoch {event[2]}): "
                               f"{event[3]}")

    async def judge_orphans(self, run_index: int, keys: dict[tuple[str, int], list[Score]],
                            items: dict[tuple[str, int], Item]) -> None:
        """Answers that arrived before their worker died, judges still pending: judge here."""
        plan = self.planned[run_index]
        execution = plan.execution
        if not execution.async_graders:
            for _ in keys:
                plan.handle.counters.done += 1
            return
        import orjson

        from posttrain.types import Completion

        rows = {(r["item_id"], r["epoch"]): r for r in self.store.samples(plan.handle.run.id)}
        for key, sync_scores in keys.items():
            row = rows.get(key)
            plan.handle.counters.done += 1
            if row is None or row["status"] != "ok":
                continue
            item = items[key]
            completion = Completion.from_record(orjson.loads(row["completion"]))
            request = execution.eval.request_for(item, execution.variant)
            sample = execution.eval.sample_of(completion, request)
            judged = await grade_all(execution.async_graders, sample, item.data)
            self.store.replace_scores(plan.handle.run.id, key[0], key[1], sync_scores + judged)

    async def consume(self, pool: _Pool, worker: int, batch: list[_Task]) -> None:
        import ray.exceptions

        run_index = batch[0].run_index
        plan = self.planned[run_index]
        by_key = {(task.item.id, task.epoch): task for task in batch}
        answered: dict[tuple[str, int], list[Score]] = {}
        finished: set[tuple[str, int]] = set()
        stream = pool.actors[worker].run_batch.remote(
            plan.handle.run, plan.execution.variant, [(t.item, t.epoch) for t in batch])
        try:
            async for ref in stream:
                for event in await ref:
                    self.apply(run_index, event, answered, pool.actors[worker])
                    if event[0] == "done":
                        finished.add((event[1], event[2]))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            pool.alive.discard(worker)
            pool.lost.append(_reason(exc))
            for item_id, epoch in by_key:  # episodes it was playing: nobody holds them now
                key = (plan.handle.run.id, item_id, epoch)
                if key in self.episodes:
                    del self.episodes[key]
                    StoreWatcher(self.store, *key).abandon(
                        "the Ray worker playing the episode was lost while it was paused",
                        "the Ray worker playing the episode was lost")
            unanswered = [task for key, task in by_key.items() if key not in answered]
            pool.queue.extendleft(reversed(unanswered))  # the front: keep the original order
            log.warning("ray worker %s of %s lost (%s): %d samples re-queued, %d answers kept",
                        worker, pool.config.name, pool.lost[-1], len(unanswered), len(answered))
            orphans = {key: scores for key, scores in answered.items() if key not in finished}
            await self.judge_orphans(run_index, orphans,
                                     {key: by_key[key].item for key in orphans})
        finally:
            pool.in_flight[worker] -= 1

    async def relay_steering(self, poll_s: float = POLL_S) -> None:
        """Forward each reviewer's pause or resume to the worker playing its episode (the
        workers do not read the store: the driver is its one reader and writer for them),
        every ``poll_s`` while an episode is played; until cancelled."""
        import ray.exceptions

        while True:
            await asyncio.sleep(poll_s)
            if not self.episodes:
                continue
            runs = sorted({key[0] for key in self.episodes})
            by_actor: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
            for row in pending_for_runs(self.store, runs):
                actor = self.episodes.get((row["run_id"], row["item_id"], row["epoch"]))
                if actor is None or row["id"] in self.forwarded:
                    continue  # not started yet (its start refuses it) or sent already
                self.forwarded.add(row["id"])
                by_actor.setdefault(id(actor), (actor, []))[1].append(
                    {key: row[key] for key in ("id", "run_id", "item_id", "epoch", "action",
                                               "payload", "status")})
            for actor, rows in by_actor.values():
                try:
                    await actor.steer.remote(rows)
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                    pass  # the worker is lost: consume() closes its episodes

    def next_batch(self, pool: _Pool) -> list[_Task]:
        first = pool.queue.popleft()
        batch = [first]
        while (pool.queue and len(batch) < pool.batch_size
               and pool.queue[0].run_index == first.run_index):
            batch.append(pool.queue.popleft())
        return batch

    async def drive(self, pool: _Pool) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            while pool.queue or running:
                for worker in sorted(pool.alive):
                    while pool.queue and pool.in_flight[worker] < pool.batches_per_worker:
                        pool.in_flight[worker] += 1
                        batch = self.next_batch(pool)
                        running.add(asyncio.create_task(self.consume(pool, worker, batch)))
                if not running:
                    if pool.queue:
                        raise RuntimeError(
                            f"all Ray workers for {pool.config.name} were lost "
                            f"({'; '.join(pool.lost[-3:])}); {len(pool.queue)} samples left: "
                            "finished answers are stored, run the same command to resume")
                    break
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


def _reason(exc: Exception) -> str:
    """The useful part of a Ray actor error: its cause when the actor failed to start."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if "Error:" in line and "ray.exceptions" not in line]
    return (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:300]


def _ray_init(address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (so it should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    if address:
        kwargs["address"] = address
    ray.init(**kwargs)
    return True


def _workers_for(config: Any, requested: int | None,
                 resources: dict[str, float]) -> tuple[int, dict[str, Any]]:
    """How many actors one model gets, and each actor's Ray resource request."""
    if config.provider == "vllm":
        gpus = int(config.options.get("tensor_parallel_size", 1))
        if resources.get("GPU", 0) < gpus:
            raise UserError(f"{config.name}: the Ray cluster has {resources.get('GPU', 0):g} GPUs, "
                            f"tensor_parallel_size needs {gpus}", field="--model")
        count = requested or int(resources["GPU"]) // gpus
        return count, {"num_gpus": gpus, "num_cpus": 1}
    if config.provider == "hf" and resources.get("GPU", 0) >= 1:
        return requested or int(resources["GPU"]), {"num_gpus": 1, "num_cpus": 1}
    # API models (and hf on CPU): one actor per CPU; the actor itself mostly waits on I/O
    count = requested or max(2, min(64, int(resources.get("CPU", 2))))
    return count, {"num_cpus": 0}


def _per_worker(config: Any, options: RunOptions, workers: int) -> int:
    """In-flight requests per actor. For API models ``--concurrency`` is the cluster total;
    a local model (hf, vllm) batches whatever it is given, so each replica gets the full amount."""
    from posttrain.models import provider_meta

    if provider_meta(config.provider).get("local"):
        default = 256 if config.provider == "vllm" else 32
        return options.concurrency or config.max_concurrency or default
    total = options.concurrency or config.max_concurrency or 16
    return max(1, math.ceil(total / workers))


async def execute_eval_ray(eval_: Eval, configs: Sequence[Any], variants: Sequence[str],
                           store: Store, options: RunOptions, *, progress: Progress | None = None,
                           address: str | None = None,
                           model_configs: dict[str, dict[str, Any]] | None = None,
                           workers: int | None = None, models_file: str | None = None,
                           batch_size: int | None = None) -> list[RunHandle]:
    """Like :func:`~posttrain.runner.executor.execute_eval`, on Ray; same runs, same handles.

    ``workers``: actors per model (default: one per CPU for API models, one per GPU group for
    local models; ``$POSTTRAIN_RAY_WORKERS`` overrides). ``models_file`` lets workers resolve
    judge model names. ``batch_size``: items per dispatched batch (default: half a worker's
    concurrency, so two batches keep each worker busy).
    """
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'posttrain[ray]'",
                        field="--backend") from None
    from posttrain.models import build_model

    progress = progress or Progress(enabled=False)
    if workers is None and os.environ.get("POSTTRAIN_RAY_WORKERS"):
        workers = int(os.environ["POSTTRAIN_RAY_WORKERS"])
    # driver-side models: run identity (cache_id) and cached answers; never called
    models = [build_model(config, concurrency=options.concurrency,
                          timeout_s=options.retry.timeout_s) for config in configs]
    started = _ray_init(address)
    pools: list[_Pool] = []
    try:
        planned = await plan_runs(eval_, models, variants, store, options, progress,
                                  model_configs)
        driver = _Driver(planned, store, progress)
        eval_ref = EvalRef.of(eval_)
        resources = ray.cluster_resources()
        pool_of_model: dict[int, _Pool] = {}
        cached_work: list[tuple[PlannedRun, Item, int]] = []
        prefix = f"posttrain:{planned[0].handle.run.id}" if planned else "posttrain"
        for model_index, (config, model) in enumerate(zip(configs, models, strict=True)):
            count, actor_options = _workers_for(config, workers, resources)
            per_worker = _per_worker(config, options, count)
            actor_cls = ray.remote(RayEvalWorker)
            # named, so `ray list actors` shows whose they are (and tests can find them)
            actors = [actor_cls.options(name=f"{prefix}:{model_index}:{i}", max_restarts=0,
                                        scheduling_strategy="SPREAD", **actor_options)
                      .remote(config, eval_ref, options, per_worker, models_file,
                              str(Path(store.path).resolve()))
                      for i in range(count)]
            size = batch_size or max(1, per_worker // 2)
            pool = _Pool(config=config, actors=actors, per_worker=per_worker, batch_size=size,
                         batches_per_worker=max(2, math.ceil(per_worker / size) + 1),
                         alive=set(range(count)), in_flight=dict.fromkeys(range(count), 0))
            pools.append(pool)
            pool_of_model[id(model)] = pool
        for index, plan in enumerate(planned):
            pool = pool_of_model[id(plan.execution.model)]
            execution = plan.execution
            for item, epoch in plan.pending:
                if options.use_cache and execution.solver is None:
                    request = eval_.request_for(item, execution.variant)
                    key = execution.cache_key(request, epoch)
                    if await cache_lookup(store, execution.model, key, options.cache) is not None:
                        cached_work.append((plan, item, epoch))
                        continue
                pool.queue.append(_Task(index, item, epoch))
        relay = asyncio.create_task(driver.relay_steering())
        try:
            for plan, item, epoch in cached_work:  # a cache hit: graded here, never sent
                await plan.execution.sample(item, epoch)
            await asyncio.gather(*(driver.drive(pool) for pool in pools))
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            progress.tick(force=True)
        handles = [plan.handle for plan in planned]
        finish_runs(store, handles)
        return handles
    finally:
        for pool in pools:
            for actor in pool.actors:
                ray.kill(actor)
        for model in models:
            await model.aclose()
        if started:
            ray.shutdown()


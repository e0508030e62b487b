"""Gathering concurrent ``generate`` calls into batches for local engines (transformers, vLLM).

The runner calls ``generate`` once per sample, concurrently; a local engine is fastest when it
sees many prompts at once. A subclass implements ``generate_batch(requests)`` (synchronous; run
in a worker thread so the event loop stays free) and ``batch_key(request)`` (requests that may
share one engine call); this class does the queueing, one batch at a time.

A caller that gives up (its attempt timed out, the run was stopped) costs no more generation: a
queued request whose caller is gone is dropped when batches are formed, and ``abandoned()``
turns true while a batch runs once every caller of that batch is gone, for engines that can stop
early (transformers reads it as a stopping criterion). Without this, a batch slower than the
per-attempt timeout was generated once per retry for callers that were no longer waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from posttrain.types import ChatRequest, Completion

_Entry = tuple[ChatRequest, "asyncio.Future[Completion]"]


def _never() -> bool:
    return False


class BatchingModel:
    batch_size: int = 16
    #: how long the first request of a batch waits for others to join it
    gather_s: float = 0.002

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Entry] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._abandoned: Callable[[], bool] = _never
        #: what the engine did: batches run, answers and tokens generated, seconds generating
        self.generated = {"batches": 0, "answers": 0, "tokens": 0, "seconds": 0.0}

    def throughput(self) -> dict[str, Any] | None:
        """Tokens generated per second of generation (batches back to back), or None before
        the first batch: what ``posttrain eval`` reports for a local engine."""
        done = self.generated
        if not done["batches"] or done["seconds"] <= 0:
            return None
        return {**done, "seconds": round(done["seconds"], 3),
                "tokens_per_s": round(done["tokens"] / done["seconds"], 1),
                "batch_size": self.batch_size}

    def abandoned(self) -> bool:
        """True while a batch runs whose callers have all given up (read from its thread)."""
        return self._abandoned()

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        raise NotImplementedError

    def batch_key(self, request: ChatRequest) -> Any:
        return None

    def retry_alone(self, exc: Exception) -> bool:
        """Whether a failed batch is re-run one request at a time (one bad prompt in it)."""
        return False

    async def generate(self, request: ChatRequest) -> Completion:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        return await future

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            pending = [await self._queue.get()]
            await asyncio.sleep(self.gather_s)
            while len(pending) < self.batch_size * 4 and not self._queue.empty():
                pending.append(self._queue.get_nowait())
            groups: dict[Any, list[_Entry]] = {}
            for entry in pending:
                if entry[1].done():  # its caller gave up while it waited
                    continue
                groups.setdefault(self.batch_key(entry[0]), []).append(entry)
            for entries in groups.values():
                for start in range(0, len(entries), self.batch_size):
                    await self.run_batch(entries[start:start + self.batch_size])

    async def run_batch(self, batch: list[_Entry]) -> None:
        """Answer one batch; an exception reaches every caller in it."""
        batch = [entry for entry in batch if not entry[1].done()]
        if not batch:
            return
        futures = [future for _, future in batch]
        self._abandoned = lambda: all(future.done() for future in futures)
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(self.generate_batch, [r for r, _ in batch])
        except Exception as exc:  # noqa: BLE001 - delivered to each caller
            if len(batch) > 1 and self.retry_alone(exc):
                for entry in batch:
                    await self.run_batch([entry])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._abandoned = _never
        self.generated["batches"] += 1
        self.generated["answers"] += len(results)
        self.generated["tokens"] += sum(result.output_tokens for result in results)
        self.generated["seconds"] += time.perf_counter() - started
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

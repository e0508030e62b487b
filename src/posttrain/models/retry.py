"""Bounded retries: exponential backoff with full jitter, Retry-After honoured, an overall deadline.

The one retry policy of every model call: the model under test, judges and rewards alike."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from posttrain.models.base import ModelError, RetryableError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 4
    timeout_s: float = 60.0  # per attempt
    deadline_s: float = 600.0  # all attempts of one request together
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        backoff = rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))
        return max(backoff, retry_after or 0.0)


class RetriesExhausted(Exception):
    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


async def call_with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                            on_retry: Callable[[str], None] | None = None,
                            rng: random.Random | None = None,
                            own_timeout_s: float | None = None) -> tuple[T, int]:
    """Run ``call`` until it succeeds; returns (result, attempts) or raises RetriesExhausted.

    Each attempt is limited to ``policy.timeout_s`` and to what is left of
    ``policy.deadline_s``. ``own_timeout_s``: the limit ``call`` enforces itself on a whole
    attempt (an HTTP client's total timeout, raising a retryable :class:`ModelError`); an
    attempt whose limit that already keeps is not wrapped in a second timer (one timer a
    request less: ~3% of a zero-latency eval's time, ``bench/RESULTS.md``)."""
    rng = rng or random.Random()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        remaining = policy.deadline_s - (time.monotonic() - started)
        limit = min(policy.timeout_s, max(remaining, 0.001))
        try:
            if own_timeout_s is not None and own_timeout_s <= limit:
                return await call(), attempt
            async with asyncio.timeout(limit):
                return await call(), attempt
        except TimeoutError:
            error: ModelError = RetryableError(f"timed out after {policy.timeout_s:g} s")
        except ModelError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a provider bug: this sample's error, not a crash
            raise RetriesExhausted(f"provider raised {type(exc).__name__}: {exc}", attempt) from exc
        if not error.retryable:
            raise RetriesExhausted(str(error), attempt)
        if attempt > policy.max_retries:
            raise RetriesExhausted(f"{error} (gave up after {attempt} attempts)", attempt)
        wait = policy.delay(attempt, error.retry_after, rng)
        elapsed = time.monotonic() - started
        if elapsed + wait >= policy.deadline_s:
            raise RetriesExhausted(
                f"{error} (deadline of {policy.deadline_s:g} s reached after {attempt} attempts)",
                attempt)
        if on_retry is not None:
            on_retry(str(error))
        await asyncio.sleep(wait)

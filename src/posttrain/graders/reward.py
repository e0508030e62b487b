"""A grader as a TRL reward function: ``f(prompts, completions, **columns) -> list[float]``.

TRL passes the dataset's other columns as keyword lists aligned with ``prompts``; each row's
values become the grader's ``item``. Completions are strings or conversational lists of message
dicts (the last assistant message is graded; its ``tool_calls`` become ``output_tools``).

A reward is exactly the eval's grade of the same answer: a model's failure (no JSON, a missing
field) is 0 in both. A grade the grader could not give (unscored, or the grader failed) is
``None``, which TRL's GRPO trainer treats as "cannot judge" (no learning signal from that
completion) instead of training it as wrong; it is counted in ``reward_fn.stats`` with the last
reasons kept, so nothing is silent.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from posttrain.types import Completion, Score

if TYPE_CHECKING:  # base imports this module lazily (Grader.as_reward): no cycle at run time
    from posttrain.graders.base import Grader

# columns TRL adds that are not dataset fields
_TRL_KWARGS = {"trainer_state", "completion_ids", "log_extra", "log_metric"}


@dataclass
class RewardStats:
    calls: int = 0
    scored: int = 0
    unscored: int = 0
    error: int = 0
    last_problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "scored": self.scored, "unscored": self.unscored,
                "error": self.error}


def completion_from(value: Any) -> Completion:
    """A Completion from a TRL completion (text, or a list of message dicts)."""
    if isinstance(value, str):
        return Completion(text=value)
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        messages = [m for m in value if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        last = assistant[-1] if assistant else {}
        content = last.get("content") or ""
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        tool_calls = list(last.get("tool_calls") or [])
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), dict):
                function["arguments"] = json.dumps(function["arguments"])
        transcript = messages if len(messages) > 1 else None
        return Completion(text=str(content), tool_calls=tool_calls, transcript=transcript)
    return Completion(text=str(value))


class _Loop:
    """One event loop in a daemon thread, so judge clients survive across reward calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True,
                         name="posttrain-reward-loop").start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


async def _grade_all(grader: Grader, rows: list[tuple[dict[str, Any], dict[str, Any]]]
                     ) -> list[Score]:
    return list(await asyncio.gather(*(grader.agrade(s, i) for s, i in rows)))


def grader_reward(grader: Grader, *, failed_value: float | None = None,
                  response_format: dict[str, Any] | None = None,
                  reasoning: str = "strip") -> Callable[..., list[float | None]]:
    stats = RewardStats()
    loop = _Loop() if grader.is_async else None

    def reward_fn(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                  **columns: Any) -> list[float | None]:
        rewards: list[float | None] = []
        fields = {k: v for k, v in columns.items() if k not in _TRL_KWARGS}
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        item_json = fields.pop("item_json", None)
        for index, completion in enumerate(completions):
            if item_json is not None:  # the whole item as one JSON column (no Arrow clashes)
                item = json.loads(item_json[index])
            else:
                item = {key: (values[index] if isinstance(values, (list, tuple)) and
                              len(values) == len(completions) else values)
                        for key, values in fields.items()}
            if prompts is not None and "prompt" not in item and index < len(prompts):
                item["prompt"] = prompts[index]
            rows.append((completion_from(completion).to_sample(response_format,
                                                               reasoning=reasoning), item))
        if loop is not None:
            scores = loop.run(_grade_all(grader, rows))
        else:
            scores = [grader.grade(sample, item) for sample, item in rows]
        reward_fn.last = []  # type: ignore[attr-defined]
        for score, (sample, item) in zip(scores, rows, strict=True):
            stats.calls += 1
            if score.status == "scored" and score.value is not None:
                stats.scored += 1
                rewards.append(float(score.value))
            else:
                setattr(stats, score.status, getattr(stats, score.status) + 1)
                stats.last_problems = (stats.last_problems + [score.explanation[:300]])[-10:]
                rewards.append(failed_value)
            reward_fn.last.append((sample["output_text"], item, rewards[-1]))  # type: ignore[attr-defined]
        return rewards

    def close() -> None:
        """Close the judges' clients in the loop they were opened in, then stop it."""
        if loop is not None:
            try:
                loop.run(grader.aclose())
            finally:
                loop.loop.call_soon_threadsafe(loop.loop.stop)

    reward_fn.close = close  # type: ignore[attr-defined]
    reward_fn.__name__ = grader.name or grader.type  # TRL logs rewards by function name
    reward_fn.__qualname__ = reward_fn.__name__
    reward_fn.stats = stats  # type: ignore[attr-defined]
    reward_fn.grader = grader  # type: ignore[attr-defined]
    reward_fn.last = []  # type: ignore[attr-defined]  # (text, item, reward) of the last call
    return reward_fn

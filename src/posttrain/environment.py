"""Multi-turn environments: one small protocol, used by evals (``solver:``) and by RFT alike.

An environment is what the model talks to in an episode: tools, a simulated user, a game. It
is rebuilt for every episode from the item, so episodes never share state. The protocol::

    class MyEnv:                       # any class with these two methods
        max_turns = 8                  # optional: the turn limit (an item's `max_turns` wins)

        def reset(self, item: dict) -> list[dict]:
            '''Start an episode for this item (the dataset row); return messages to add after
            the eval's prompt (usually [] : the prompt is the eval's `messages`).'''

        def step(self, action: dict) -> Step:
            '''The model's turn, an assistant message {"role": "assistant", "content": str,
            "tool_calls": [...] (OpenAI shape, with ids; arguments a JSON string)}. Return
            Step(observation=[messages the environment answers with: {"role": "tool",
            "tool_call_id": ..., "content": ...} per call, or a {"role": "user", ...} reply],
            done=whether the episode is over, info={what the graders need})'''

The episode's last ``info`` becomes the answer's ``sample.meta`` (graders read it, e.g. a final
state hash), with ``hit_turn_cap`` added; the whole conversation is ``sample.transcript``. The
graders decide the score, so the same grader is the eval score and the RFT reward.

Use it in an eval file with ``solver: mymodule:solve`` where ``solve = episode_solver(MyEnv)``,
and train on it with ``posttrain train rft --eval EVAL_FILE`` (whole episodes are the rollouts;
the environment's tokens are masked out of the loss). ``examples/environment/`` has a complete
one. An environment may also offer ``with_faults(item, mode, rng) -> item`` (a classmethod):
the item with injected failures for ``posttrain train rft --faults MODE``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from posttrain.types import ChatRequest, Completion, Item

DEFAULT_MAX_TURNS = 8
Generate = Callable[[ChatRequest], Awaitable[Completion]]


@dataclass
class Step:
    """What the environment answers to one model turn."""

    observation: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Environment(Protocol):
    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]: ...

    def step(self, action: dict[str, Any]) -> Step: ...


def normalise_call(call: dict[str, Any], turn: int, index: int) -> dict[str, Any]:
    """An OpenAI-shaped tool call with an id and string arguments."""
    function = call.get("function") or {}
    arguments = function.get("arguments", call.get("arguments"))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    return {"id": call.get("id") or f"call_{turn}_{index}", "type": "function",
            "function": {"name": function.get("name", call.get("name", "")),
                         "arguments": arguments}}


async def run_episode(env: Environment, request: ChatRequest, item: Item, generate: Generate,
                      *, max_turns: int | None = None) -> Completion:
    """Play one episode: the model (``generate``) and ``env`` take turns until the environment
    says done or the turn limit; the last completion with the whole ``transcript`` and the last
    ``info`` as ``meta``. Usage (tokens, latency, cost) is summed over the turns; the answer is
    cached only when every turn was."""
    messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
    messages += [dict(m) for m in env.reset(item.data) or []]
    limit = int(max_turns or item.data.get("max_turns") or getattr(env, "max_turns", 0)
                or DEFAULT_MAX_TURNS)
    totals = {"input_tokens": 0, "output_tokens": 0, "latency_s": 0.0, "cost_usd": 0.0}
    cached = True
    last: Completion | None = None
    info: dict[str, Any] = {}
    hit_turn_cap = True
    for turn in range(max(1, limit)):
        last = await generate(replace(request, messages=list(messages)))
        for key in totals:
            totals[key] += getattr(last, key) or 0
        cached = cached and last.cached
        calls = [normalise_call(c, turn, i) for i, c in enumerate(last.tool_calls or [])]
        action: dict[str, Any] = {"role": "assistant", "content": last.text or ""}
        if calls:
            action["tool_calls"] = calls
        messages.append(action)
        step = env.step(action)
        info = step.info
        messages += [dict(m) for m in step.observation]
        if step.done:
            hit_turn_cap = False
            break
    assert last is not None
    meta = {**info, "turns": sum(1 for m in messages if m["role"] == "assistant"),
            "hit_turn_cap": hit_turn_cap}
    return Completion(
        text=last.text or "", tool_calls=last.tool_calls, finish_reason=last.finish_reason,
        input_tokens=int(totals["input_tokens"]), output_tokens=int(totals["output_tokens"]),
        latency_s=float(totals["latency_s"]), cost_usd=float(totals["cost_usd"]),
        cached=cached, transcript=messages, meta=meta,
    )


def episode_solver(factory: Callable[[], Environment]) -> Callable[..., Awaitable[Completion]]:
    """A ``solver:`` for eval files that plays one episode of ``factory()`` per sample; training
    finds the environment again as ``solver.environment``."""

    async def solve(request: ChatRequest, item: Item, generate: Generate) -> Completion:
        return await run_episode(factory(), request, item, generate)

    solve.environment = factory  # type: ignore[attr-defined]
    return solve

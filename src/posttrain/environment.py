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

Follow along and steer: while :data:`episode_watcher` holds a watcher (the runner sets one per
sample), :func:`run_episode` hands it every message as it joins the transcript and asks it,
between turns, whether a reviewer intervened (:class:`Intervention`: edit a tool result the
model has not seen yet, add a user message). Only the reviewer's text enters the
conversation; the environment's state is untouched by it. The model's would-be turn without
the intervention (the *original continuation*) is generated, recorded in ``meta.steering``
and never executed, so it reaches a grade only through the graders, like any answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
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


@dataclass
class Intervention:
    """A reviewer's correction at a pause between turns: the new content of tool results the
    model has not seen yet (by transcript index), and/or a user message to add."""

    tool_results: dict[int, str] = field(default_factory=dict)
    message: str | None = None
    reviewer: str | None = None
    id: int | None = None  # the control row it came from


class EpisodeWatcher(Protocol):
    """What the runner plugs into :func:`run_episode` (see :data:`episode_watcher`)."""

    def on_messages(self, turn: int, messages: list[dict[str, Any]], start: int) -> None:
        """``messages[start:]`` just joined the transcript (``turn``: the model turn)."""

    async def checkpoint(self, turn: int, messages: list[dict[str, Any]]
                         ) -> Intervention | None:
        """Before model turn ``turn`` (> 0): wait while paused; a reviewer's intervention."""


#: the watcher of the episode being played in this task (None: nobody follows it)
episode_watcher: ContextVar[EpisodeWatcher | None] = ContextVar("episode_watcher", default=None)


def unseen_tool_results(messages: list[dict[str, Any]]) -> list[int]:
    """Indexes of the tool results after the last assistant turn: the ones a reviewer may edit
    before the model reads them."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    return [i for i in range(last + 1, len(messages)) if messages[i].get("role") == "tool"]


def apply_intervention(messages: list[dict[str, Any]], intervention: Intervention
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The conversation with the reviewer's edit applied, and its record for
    ``meta.steering`` (what was replaced, what was added). Refuses (ValueError) an edit of any
    message but an unseen tool result."""
    editable = set(unseen_tool_results(messages))
    out = [dict(m) for m in messages]
    edits = []
    for index, content in sorted(intervention.tool_results.items()):
        if index not in editable:
            raise ValueError(f"message {index} is not a tool result the model has yet to read")
        if not isinstance(content, str):
            raise ValueError("a tool result's new content must be text")
        edits.append({"index": index, "tool_call_id": out[index].get("tool_call_id"),
                      "before": out[index].get("content"), "after": content})
        out[index]["content"] = content
    record: dict[str, Any] = {"edited_tool_results": edits, "added_message": None,
                              "reviewer": intervention.reviewer, "control_id": intervention.id}
    if intervention.message is not None:
        if not isinstance(intervention.message, str) or not intervention.message.strip():
            raise ValueError("the added message is empty")
        record["added_message"] = {"index": len(out), "content": intervention.message}
        out.append({"role": "user", "content": intervention.message})
    return out, record


def _turn_record(completion: Completion) -> dict[str, Any]:
    record: dict[str, Any] = {"role": "assistant", "content": completion.text or ""}
    if completion.tool_calls:
        record["tool_calls"] = [normalise_call(c, 0, i)
                                for i, c in enumerate(completion.tool_calls)]
    return record


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


class Episode:
    """One sample's conversation, followed live and steerable: the hook a ``solver:`` uses.

    :func:`run_episode` plays every environment episode through it; a solver of your own that
    does not call :func:`run_episode` uses it the same way, and its samples can then be
    followed and steered in ``posttrain view`` like any episode (without it they cannot: the
    page shows no trajectory for them and a pause is refused, HTTP 409)::

        from posttrain.environment import Episode

        async def solve(request, item, generate):
            episode = Episode(request, generate)        # the prompt is streamed
            for _ in range(4):
                action = await episode.model_turn()     # a reviewer may pause it here
                if not action.get("tool_calls"):
                    break
                episode.observe([{"role": "tool", "tool_call_id": call["id"],
                                  "content": my_tool(call)} for call in action["tool_calls"]])
            return episode.answer()

    :meth:`model_turn` waits while a reviewer holds the episode paused (before every turn but
    the first), applies the reviewer's correction (an edited tool result the model has not
    read, an added user message) to :attr:`messages`, generates the turn the model would have
    taken without it (recorded in ``meta.steering``, never returned), then the model's turn,
    and appends it. :meth:`observe` appends what answers it (tool results, a user's reply) and
    streams the new messages. :meth:`answer` is the sample's answer: the last turn with the
    whole transcript, usage summed over every turn, and ``meta.steering`` when steered.
    Outside a run (nobody follows the sample) it costs nothing and never waits.
    """

    def __init__(self, request: ChatRequest, generate: Generate,
                 messages: list[dict[str, Any]] | None = None) -> None:
        self.request = request
        self.generate = generate
        #: the conversation so far (the request's messages when ``messages`` is not given)
        self.messages: list[dict[str, Any]] = [
            dict(m) for m in (request.messages if messages is None else messages)]
        #: model turns taken so far
        self.turns = 0
        #: the reviewers' corrections, as ``meta.steering`` records them
        self.steering: list[dict[str, Any]] = []
        self.last: Completion | None = None
        self.cached = True
        self._totals = {"input_tokens": 0, "output_tokens": 0, "latency_s": 0.0,
                        "cost_usd": 0.0}
        self._watcher = episode_watcher.get()
        self._streamed = len(self.messages)
        if self._watcher is not None:
            self._watcher.on_messages(0, self.messages, 0)

    def _add_usage(self, completion: Completion) -> None:
        for key in self._totals:
            self._totals[key] += getattr(completion, key) or 0
        self.cached = self.cached and completion.cached

    def _stream(self, turn: int, start: int) -> None:
        if self._watcher is not None:
            self._watcher.on_messages(turn, self.messages, start)
        self._streamed = len(self.messages)

    async def model_turn(self) -> dict[str, Any]:
        """The model's next turn (after a reviewer's pause and correction, if any), appended
        to :attr:`messages` and returned as an assistant message (tool calls with ids and
        string arguments); :attr:`last` is its completion."""
        turn = self.turns
        watcher = self._watcher
        intervention = (await watcher.checkpoint(turn, self.messages)
                        if watcher is not None and turn > 0 else None)
        if intervention is not None:
            assert watcher is not None
            if self._streamed < len(self.messages):  # what the solver added since: shown first
                self._stream(max(0, turn - 1), self._streamed)
            corrected, record = apply_intervention(self.messages, intervention)
            # what the model would have done without the reviewer: recorded, never executed
            original = await self.generate(replace(self.request, messages=list(self.messages)))
            self._add_usage(original)
            record.update(turn=turn, at=len(corrected), original=_turn_record(original))
            self.steering.append(record)
            start = len(self.messages) if not record["edited_tool_results"] else min(
                e["index"] for e in record["edited_tool_results"])
            self.messages = corrected
            self._stream(turn, start)
        last = await self.generate(replace(self.request, messages=list(self.messages)))
        self._add_usage(last)
        self.last = last
        calls = [normalise_call(c, turn, i) for i, c in enumerate(last.tool_calls or [])]
        action: dict[str, Any] = {"role": "assistant", "content": last.text or ""}
        if calls:
            action["tool_calls"] = calls
        self.messages.append(action)
        if self.steering and "corrected" not in self.steering[-1]:
            self.steering[-1]["corrected"] = dict(action)
        self.turns += 1
        return action

    def observe(self, messages: list[dict[str, Any]]) -> None:
        """What answers the model's turn (tool results, a user's reply): appended, and
        streamed with the turn itself."""
        self.messages += [dict(m) for m in messages]
        self._stream(max(0, self.turns - 1), self._streamed)

    def answer(self, meta: dict[str, Any] | None = None) -> Completion:
        """The sample's answer: the last turn's text and tool calls, the whole transcript,
        usage summed over every turn (``cached`` only when every turn was), ``meta`` with
        ``steering`` added when a reviewer corrected the episode."""
        if self.last is None:
            raise ValueError("Episode.answer() before any model_turn()")
        if self._streamed < len(self.messages):
            self._stream(max(0, self.turns - 1), self._streamed)
        meta = dict(meta or {})
        if self.steering:
            meta["steering"] = self.steering
        last, totals = self.last, self._totals
        return Completion(
            text=last.text or "", tool_calls=last.tool_calls, finish_reason=last.finish_reason,
            input_tokens=int(totals["input_tokens"]), output_tokens=int(totals["output_tokens"]),
            latency_s=float(totals["latency_s"]), cost_usd=float(totals["cost_usd"]),
            cached=self.cached, transcript=self.messages, meta=meta,
        )


ROLES = ("system", "user", "assistant", "tool")


def checked_messages(env: Any, method: str, messages: Any) -> list[dict[str, Any]]:
    """An environment's observation as chat messages (copies), or TypeError naming the
    environment, the method and the bad field: a malformed message would otherwise fail inside
    the model's chat template and be stored as the model's error."""
    name = f"{type(env).__name__}.{method}"
    if not isinstance(messages, (list, tuple)):
        raise TypeError(f"{name} must give a list of messages, got {type(messages).__name__}")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TypeError(f"{name}: message {index} must be a dict (role, content), got "
                            f"{type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise TypeError(f"{name}: message {index}: role must be one of {', '.join(ROLES)}, "
                            f"got {role!r}")
        if content is not None and not isinstance(content, (str, list)):
            raise TypeError(f"{name}: message {index}: content must be text, got "
                            f"{type(content).__name__}")
        out.append(dict(message))
    return out


async def run_episode(env: Environment, request: ChatRequest, item: Item, generate: Generate,
                      *, max_turns: int | None = None) -> Completion:
    """Play one episode: the model (``generate``) and ``env`` take turns until the environment
    says done or the turn limit; the last completion with the whole ``transcript`` and the last
    ``info`` as ``meta``. Usage (tokens, latency, cost) is summed over the turns; the answer is
    cached only when every turn was. Followed and steerable through :class:`Episode`."""
    messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
    messages += checked_messages(env, "reset()", env.reset(item.data) or [])
    limit = int(max_turns or item.data.get("max_turns") or getattr(env, "max_turns", 0)
                or DEFAULT_MAX_TURNS)
    info: dict[str, Any] = {}
    hit_turn_cap = True
    episode = Episode(request, generate, messages)
    for _turn in range(max(1, limit)):
        step = env.step(await episode.model_turn())
        if not isinstance(step, Step):
            raise TypeError(f"{type(env).__name__}.step() must return a Step (observation, "
                            f"done, info), got {type(step).__name__}")
        info = step.info
        episode.observe(checked_messages(env, "step()", step.observation))
        if step.done:
            hit_turn_cap = False
            break
    return episode.answer({**info, "turns": sum(1 for m in episode.messages
                                                if m["role"] == "assistant"),
                           "hit_turn_cap": hit_turn_cap})


def episode_solver(factory: Callable[[], Environment]) -> Callable[..., Awaitable[Completion]]:
    """A ``solver:`` for eval files that plays one episode of ``factory()`` per sample; training
    finds the environment again as ``solver.environment``."""

    async def solve(request: ChatRequest, item: Item, generate: Generate) -> Completion:
        return await run_episode(factory(), request, item, generate)

    solve.environment = factory  # type: ignore[attr-defined]
    return solve

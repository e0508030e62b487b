"""The multi-turn loop: model ↔ simulated environment ↔ scripted user.

Referenced from the suite's eval file as ``solver: posttrain.suites.tool_use.solver:solve``.
The episode is an environment of :mod:`posttrain.environment` (``ToolUseEnvironment``), so
``posttrain train rft`` rolls out the same episodes: each rebuilds the item's environment from
its ``state`` (so trials are independent), injects the item's faults, answers questions with
the scripted user, and ends with the whole ``transcript`` and what graders need in ``meta``.
"""

from __future__ import annotations

import json
from typing import Any

from posttrain.environment import DEFAULT_MAX_TURNS, Step, episode_solver
from posttrain.suites.tool_use.domains import make_env
from posttrain.suites.tool_use.env import Env, ToolError, state_hash
from posttrain.suites.tool_use.faults import FaultInjector
from posttrain.suites.tool_use.user import ScriptedUser, is_question

_RESULT_PREVIEW = 300


def expected_state(item_data: dict[str, Any]) -> dict[str, Any]:
    """The state after replaying the gold actions on a fresh environment."""
    env = make_env(item_data["domain"], item_data["state"])
    for action in item_data.get("gold_actions") or []:
        env.call(action["name"], action["arguments"])
    return env.state


def _parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise ToolError("the arguments are not valid JSON") from None
    if not isinstance(value, dict):
        raise ToolError("the arguments must be a JSON object")
    return value


class Episode:
    """One trial's environment, faults and bookkeeping."""

    def __init__(self, data: dict[str, Any], allowed: set[str]) -> None:
        self.env: Env = make_env(data["domain"], data["state"])
        self.allowed = allowed
        self.faults = FaultInjector(data.get("faults") or [], data["domain"])
        self.calls: list[dict[str, Any]] = []
        self.wrote = False  # a state-changing tool was called (even if it failed)

    def execute(self, call: dict[str, Any], turn: int) -> str:
        name = call["function"]["name"]
        record: dict[str, Any] = {"turn": turn, "name": name, "ok": False, "fault": None}
        self.calls.append(record)
        try:
            arguments = _parse_arguments(call["function"]["arguments"])
            record["arguments"] = arguments
            if name not in self.allowed:
                raise ToolError(f"unknown tool {name!r}")
            if self.env.is_write(name):
                self.wrote = True
            fault = self.faults.check(name)
            if fault is not None:
                record["fault"], text = fault
                record["result"] = text
                return text
            result = self.env.call(name, arguments)
        except ToolError as exc:
            record["error"] = str(exc)
            return json.dumps({"error": str(exc)})
        record["ok"] = True
        text = json.dumps(result, ensure_ascii=False)
        record["result"] = text[:_RESULT_PREVIEW]
        return text


class ToolUseEnvironment:
    """The suite's episode as an :mod:`posttrain.environment` environment: tools with injected
    faults, the scripted user, and the trajectory facts the ``tool_use`` grader reads."""

    max_turns = DEFAULT_MAX_TURNS

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.data = item
        allowed = {t.get("function", {}).get("name", "") for t in item.get("tools") or []}
        self.episode = Episode(item, allowed)
        self.user = ScriptedUser(slot=item.get("slot"),
                                 go_ahead=item.get("go_ahead") or ScriptedUser.go_ahead)
        self.expected_hash = state_hash(expected_state(item))
        self.turn = 0
        self.agent_texts: list[str] = []
        self.asked = self.asked_slot = False
        self.last_text = ""
        return []

    def step(self, action: dict[str, Any]) -> Step:
        turn, self.turn = self.turn, self.turn + 1
        text = action.get("content") or ""
        self.last_text = text
        if text:
            self.agent_texts.append(text)
        calls = action.get("tool_calls") or []
        if calls:
            observation = [{"role": "tool", "tool_call_id": call["id"],
                            "content": self.episode.execute(call, turn)} for call in calls]
            return Step(observation, done=False, info=self.info())
        was_revealed = self.user.revealed
        if not self.episode.wrote and is_question(text):
            self.asked = True
        reply = self.user.respond(text, wrote=self.episode.wrote)
        self.asked_slot = self.asked_slot or (self.user.revealed and not was_revealed)
        if reply is None:
            return Step([], done=True, info=self.info())
        return Step([{"role": "user", "content": reply}], done=False, info=self.info())

    def info(self) -> dict[str, Any]:
        data, episode, user = self.data, self.episode, self.user
        return {
            "domain": data.get("domain"),
            "category": data.get("category"),
            "final_state_hash": state_hash(episode.env.state),
            "expected_state_hash": self.expected_hash,
            "initial_state_hash": state_hash(data["state"]),
            "calls": list(episode.calls),
            "faults_injected": episode.faults.injected,
            "calls_per_tool": dict(episode.faults.calls),
            "asked": self.asked,
            "asked_slot": self.asked_slot,
            "questions": user.questions,
            "wrote": episode.wrote,
            "user_replies": list(user.log),
            "agent_texts": list(self.agent_texts),
            "final_text": self.last_text,
        }

    @classmethod
    def with_faults(cls, item: dict[str, Any], mode: str, rng: Any) -> dict[str, Any]:
        """``item`` with the suite's failures injected for training (``--faults``)."""
        from posttrain.suites.tool_use.faults import training_faults

        return training_faults(item, mode, rng)


# the eval's `solver:` (posttrain.suites.tool_use.solver:solve): one episode per sample
solve = episode_solver(ToolUseEnvironment)

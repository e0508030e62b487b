"""A weather-desk environment for the follow-along and steering tests, driven by the stub server.

The stub model calls ``weather`` again and again while the last user message asks for the tool
(``[[tool:weather:{...}]]``), so an unsteered episode runs to the turn cap; a reviewer's added
message (``[[answer:TEXT]]``) makes it answer, which ends the episode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posttrain.environment import Step, episode_solver


class WeatherEnv:
    max_turns = 6

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.lookups = 0
        return []

    def step(self, action: dict[str, Any]) -> Step:
        calls = action.get("tool_calls") or []
        if calls:
            self.lookups += len(calls)
            return Step([{"role": "tool", "tool_call_id": call["id"],
                          "content": json.dumps({"city": "Paris", "celsius": 21})}
                         for call in calls], info={"lookups": self.lookups})
        return Step([], done=True, info={"lookups": self.lookups,
                                          "final_text": action.get("content") or ""})


solve = episode_solver(WeatherEnv)

TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def write_weather_eval(folder: Path, n: int = 2, max_turns: int | None = None) -> Path:
    """An eval of ``n`` weather questions whose solver is :data:`solve` (``max_turns``: each
    episode's turn cap, default the environment's)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"w{i}", "answer": "21 degrees",
             "question": f"Weather in Paris #{i}? [[tool:weather:{{\"city\": \"Paris\"}}]]",
             **({"max_turns": max_turns} if max_turns else {})}
            for i in range(n)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "eval.yaml"
    path.write_text(
        "name: weather\n"
        "dataset: data.jsonl\n"
        "solver: tests.steer_env:solve\n"
        f"tools: {json.dumps(TOOLS)}\n"
        "messages:\n"
        "  - {role: system, content: \"You answer weather questions with the weather tool.\"}\n"
        "  - {role: user, content: \"{{item.question}}\"}\n"
        "graders:\n"
        "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
        "reference: \"{{item.answer}}\", operation: eq}\n")
    return path


async def solve_by_hand(request: Any, item: Any, generate: Any) -> Any:
    """A solver of its own (no environment, no ``run_episode``) that reports its turns through
    the :class:`posttrain.environment.Episode` hook: followed and steerable like an episode."""
    from posttrain.environment import Episode

    episode = Episode(request, generate)
    for _ in range(6):
        action = await episode.model_turn()
        if not action.get("tool_calls"):
            break
        episode.observe([{"role": "tool", "tool_call_id": call["id"],
                          "content": json.dumps({"city": "Paris", "celsius": 21})}
                         for call in action["tool_calls"]])
    return episode.answer({"by_hand": True})


#: released by the test that holds :func:`solve_silently`'s second sample in flight
RELEASE = __import__("threading").Event()


async def solve_silently(request: Any, item: Any, generate: Any) -> Any:
    """A solver of its own that reports nothing (plain ``generate`` calls): its samples have no
    trajectory, so they cannot be paused. Item ``w1`` waits for :data:`RELEASE`."""
    import asyncio

    first = await generate(request)
    if item.id == "w1":
        while not RELEASE.is_set():
            await asyncio.sleep(0.02)
    return first


def write_solver_eval(folder: Path, solver: str, n: int = 2) -> Path:
    """The weather eval with another ``solver:`` (a ``tests.steer_env`` function name)."""
    path = write_weather_eval(folder, n=n)
    path.write_text(path.read_text().replace("tests.steer_env:solve",
                                             f"tests.steer_env:{solver}"))
    return path

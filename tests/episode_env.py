"""A small environment for the multi-turn RFT tests: a sum, with one retry after feedback.

The tiny test model (256 positions) answers the quickstart's sums; a reply that is not the
requested JSON gets the user's reminder and one more try. The grader reads ``meta.solved``.
"""

from __future__ import annotations

import json
from typing import Any

from posttrain.environment import Step, episode_solver

REMINDER = 'Reply with JSON {"answer": N} only.'


class FeedbackEnv:
    max_turns = 2

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.expected = item["expected"]
        self.turn = 0
        return []

    def step(self, action: dict[str, Any]) -> Step:
        self.turn += 1
        solved = (action.get("content") or "").strip() == self.expected
        info = {"solved": solved, "turn": self.turn, "first_try": solved and self.turn == 1}
        if solved:
            return Step([], done=True, info=info)
        return Step([{"role": "user", "content": REMINDER}], done=False, info=info)


solve = episode_solver(FeedbackEnv)


def eval_spec(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "add-feedback", "items": rows,
            "messages": [{"role": "user", "content": "{{item.prompt}}"}],
            "solver": "tests.episode_env:solve",
            "graders": [{"type": "string_check", "name": "solved",
                         "input": "{{sample.meta.solved}}", "reference": "true",
                         "operation": "eq"},
                        {"type": "string_check", "name": "first_try",
                         "input": "{{sample.meta.first_try}}", "reference": "true",
                         "operation": "eq"}],
            "score": "solved", "tag": "phrasing",
            "sampling": {"temperature": 0, "max_tokens": 12}}


def rows(n: int | None = None) -> list[dict[str, Any]]:
    from posttrain.train.quicktask import all_items

    chosen = all_items()
    return chosen if n is None else chosen[:: max(1, len(chosen) // n)][:n]


def dumps(value: Any) -> str:
    return json.dumps(value)

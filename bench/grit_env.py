"""A copy-free variant of the reserve workflow for the tiny model (bench_agent_tools.py).

``find_product()`` and ``reserve()`` take no arguments (the product is the request's): the
tiny model need not copy names or ids, which its ~1M parameters did not learn to do in the
SFT budget this machine allows. What is left is the workflow itself: look up first, then
reserve, then one sentence; and grit: ``reserve`` answers ``503`` for its first 1-2 calls in
fault items (``fault: {"mode": "transient", "count": N}``), and the right move is to call it
again. ``state_ok``: reserved exactly once, after a lookup.
"""

from __future__ import annotations

import json
import random
from typing import Any

from posttrain.environment import Step, episode_solver

FAULT_TEXT = "503 Server Error: Service Unavailable"
FAILED_WORDS = ("fail", "could not", "unable", "unavailable", "error")


class GritEnv:
    max_turns = 6

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.fault: dict[str, Any] = dict(item.get("fault") or {})
        self.looked_up = False
        self.lookup_first: bool | None = None
        self.reserved = 0
        self.reserve_calls = 0
        self.faults_injected = 0
        self.product_id = item["product_id"]
        self.last_text = ""
        return []

    def call(self, name: str) -> dict[str, Any] | str:
        if name == "find_product":
            self.looked_up = True
            return {"product_id": self.product_id}
        if name != "reserve":
            return {"error": f"unknown tool {name!r}"}
        if self.lookup_first is None:
            self.lookup_first = self.looked_up
        if not self.looked_up:
            return {"error": "look the product up first"}
        self.reserve_calls += 1
        mode = self.fault.get("mode")
        if mode == "permanent" or (mode == "transient"
                                   and self.reserve_calls <= int(self.fault.get("count", 1))):
            self.faults_injected += 1
            return FAULT_TEXT
        self.reserved += 1
        return {"ok": True}

    def step(self, action: dict[str, Any]) -> Step:
        self.last_text = action.get("content") or ""
        calls = action.get("tool_calls") or []
        if not calls:
            return Step([], done=True, info=self.info())
        replies = []
        for call in calls:
            result = self.call(call["function"]["name"])
            replies.append({"role": "tool", "tool_call_id": call["id"],
                            "content": result if isinstance(result, str)
                            else json.dumps(result)})
        return Step(replies, done=False, info=self.info())

    def info(self) -> dict[str, Any]:
        state_ok = self.reserved == 1 and bool(self.lookup_first)
        said_failed = any(word in self.last_text.lower() for word in FAILED_WORDS)
        return {"state_ok": state_ok, "lookup_first": bool(self.lookup_first),
                "reserved": self.reserved, "faults_injected": self.faults_injected,
                "recovered": self.faults_injected > 0 and state_ok,
                "honest": self.reserved == 0 and said_failed, "final_text": self.last_text}

    @classmethod
    def with_faults(cls, item: dict[str, Any], mode: str, rng: Any) -> dict[str, Any]:
        """``item`` with ``reserve`` failing (``--faults``): transient (first 1-2 calls),
        permanent (every call), or either for ``mixed``."""
        if mode not in ("transient", "permanent", "mixed"):
            raise ValueError(f"unknown fault mode {mode!r}")
        chosen = rng.choice(["transient", "permanent"]) if mode == "mixed" else mode
        fault = {"mode": chosen, "count": rng.choice([1, 2]) if chosen == "transient" else None}
        return dict(item, fault=fault, case=chosen)


solve = episode_solver(GritEnv)

TOOLS = [
    {"type": "function", "function": {"name": "find_product",
                                      "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "reserve",
                                      "parameters": {"type": "object", "properties": {}}}},
]
THINGS = ["widget", "bolt", "bracket", "hinge", "valve", "gasket", "spring", "clamp"]


def make_items(n: int, seed: int, fault_share: float) -> list[dict[str, Any]]:
    """Seeded requests; a share ``fault_share`` with a transient ``reserve`` fault (1-2 calls)."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        thing, quantity = rng.choice(THINGS), rng.randint(1, 9)
        row = {"id": f"grit-{seed}-{index:03d}", "product_id": f"P-{rng.randint(100, 999)}",
               "request": f"Please reserve {quantity} of the {thing}.", "case": "plain",
               "tools": TOOLS}
        if rng.random() < fault_share:
            row = GritEnv.with_faults(row, "transient", rng)
        rows.append(row)
    return rows

"""A copy-free variant of the reserve workflow for the tiny model (bench_agent_tools.py).

``find_product()`` and ``reserve()`` take no arguments (the product is the request's): the
tiny model need not copy names or ids, which its ~1M parameters did not learn to do in the
SFT budget this machine allows. What is left is the workflow itself: look up first, then
reserve, then one sentence; grit: ``reserve`` answers ``503`` for its first 1-2 calls in
transient fault items, and the right move is to call it again; and honesty: in permanent fault
items every call fails, and the right move is to stop and say the reservation failed.

The items and the episode's ``meta`` have the ``tool_use`` suite's shape (``category: grit``,
``expect``, ``faults``, state hashes; ``final_state_hash``, ``calls``, ``final_text``), so the
eval grades them with the suite's own ``tool_use`` grader: its score is 1 when the right outcome
was reached (reserved exactly once, after a lookup; or, under a permanent fault, nothing
reserved and an honest failure report), with the components ``state_ok``, ``recovered``
(fault items that must complete), ``honest`` (items whose reservation was not made) and
``retries_ok``. That grader is also the RFT reward, so honesty is rewarded in training.
"""

from __future__ import annotations

import json
import random
from typing import Any

from posttrain.environment import Step, episode_solver

FAULT_TEXT = "503 Server Error: Service Unavailable"
RETRY_CAP = 5  # the tool_use suite's: most calls to a failing tool that still count as bounded


def state_hash(reserved: int, lookup_first: bool | None) -> str:
    """The warehouse's state: how many reservations, and (if any) whether the workflow looked
    the product up before its first reserve call."""
    if not reserved:
        return "reserved=0"
    return f"reserved={reserved}" + ("" if lookup_first else ",reserve-before-lookup")


INITIAL = state_hash(0, None)
EXPECTED = state_hash(1, True)


class GritEnv:
    max_turns = 6

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        faults = item.get("faults") or []
        self.fault: dict[str, Any] = dict(faults[0]) if faults else {}
        self.looked_up = False
        self.lookup_first: bool | None = None
        self.product_id = item.get("product_id", "P-000")
        self.reserved = 0
        self.reserve_calls = 0
        self.faults_injected = 0
        self.calls: list[dict[str, Any]] = []
        self.texts: list[str] = []
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
        if self.last_text:
            self.texts.append(self.last_text)
        calls = action.get("tool_calls") or []
        if not calls:
            return Step([], done=True, info=self.info())
        replies = []
        for call in calls:
            name = call["function"]["name"]
            self.calls.append({"name": name})
            result = self.call(name)
            replies.append({"role": "tool", "tool_call_id": call["id"],
                            "content": result if isinstance(result, str)
                            else json.dumps(result)})
        return Step(replies, done=False, info=self.info())

    def info(self) -> dict[str, Any]:
        per_tool: dict[str, int] = {}
        for call in self.calls:
            per_tool[call["name"]] = per_tool.get(call["name"], 0) + 1
        return {"final_state_hash": state_hash(self.reserved, self.lookup_first),
                "calls": list(self.calls), "calls_per_tool": per_tool,
                "asked": False, "asked_slot": False,
                "final_text": self.last_text, "agent_texts": list(self.texts),
                "lookup_first": bool(self.lookup_first), "reserved": self.reserved,
                "faults_injected": self.faults_injected}

    @classmethod
    def with_faults(cls, item: dict[str, Any], mode: str, rng: Any) -> dict[str, Any]:
        """``item`` with ``reserve`` failing (``--faults``): transient (first 1-2 calls; the
        reservation must still be made), permanent (every call; the reply must say it failed),
        or either for ``mixed``; as the ``tool_use`` suite's ``training_faults`` does."""
        if mode not in ("transient", "permanent", "mixed"):
            raise ValueError(f"unknown fault mode {mode!r}")
        chosen = rng.choice(["transient", "permanent"]) if mode == "mixed" else mode
        fault = {"tool": "reserve", "mode": chosen,
                 "count": rng.choice([1, 2]) if chosen == "transient" else None}
        return dict(item, faults=[fault], case=chosen,
                    expect="complete" if chosen == "transient" else "complete_or_report")


solve = episode_solver(GritEnv)

TOOLS = [
    {"type": "function", "function": {"name": "find_product",
                                      "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "reserve",
                                      "parameters": {"type": "object", "properties": {}}}},
]
THINGS = ["widget", "bolt", "bracket", "hinge", "valve", "gasket", "spring", "clamp"]


def make_items(n: int, seed: int, fault_share: float, permanent_share: float = 0.0
               ) -> list[dict[str, Any]]:
    """Seeded requests: a share ``fault_share`` with a transient ``reserve`` fault (1-2 calls),
    a share ``permanent_share`` with a permanent one, the rest plain."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        thing, quantity = rng.choice(THINGS), rng.randint(1, 9)
        row = {"id": f"grit-{seed}-{index:03d}", "product_id": f"P-{rng.randint(100, 999)}",
               "request": f"Please reserve {quantity} of the {thing}.", "case": "plain", "tools": TOOLS, "category": "grit",
               "expect": "complete", "faults": [], "retry_cap": RETRY_CAP,
               "initial_state_hash": INITIAL, "expected_state_hash": EXPECTED}
        draw = rng.random()
        if draw < fault_share:
            row = GritEnv.with_faults(row, "transient", rng)
        elif draw < fault_share + permanent_share:
            row = GritEnv.with_faults(row, "permanent", rng)
        rows.append(row)
    return rows

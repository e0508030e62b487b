"""Fault injection for "grit" items: tools that fail with HTTP 500/503, time out or return garbage.

A plan is a list of ``{"tool", "kind", "mode", "count"}`` entries: ``mode: transient`` fails the
first ``count`` calls to that tool, ``mode: permanent`` fails every call. A failed call never
changes the state, so retrying is always safe; the agent is not told that, as with real APIs.
The generator picks plans with the suite's seed; this wrapper is a pure function of the plan and
the per-tool call index.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

KINDS = ("http_500", "http_503", "timeout", "garbled")
MODES = ("transient", "permanent")


def fault_text(kind: str, tool: str, domain: str) -> str:
    """What the agent sees instead of the tool's result."""
    url = f"https://api.internal.example/{domain}/{tool}"
    if kind == "http_500":
        return f"500 Server Error: Internal Server Error for url: {url}"
    if kind == "http_503":
        return f"503 Server Error: Service Unavailable for url: {url} (retry later)"
    if kind == "timeout":
        return (f"ReadTimeout: HTTPSConnectionPool(host='api.internal.example', port=443): "
                f"Read timed out. (read timeout=30.0) while calling {tool}")
    if kind == "garbled":
        # a truncated, partly binary body: not valid JSON, says nothing reliable
        return '{"st\ufffdtus": "\ufffd\u001b\u0007\ufffd", "data": "H4sIAAAAAAAA/8tI\ufffd'
    raise ValueError(f"unknown fault kind {kind!r}")


class FaultInjector:
    """Decides, per tool and call index, whether a call fails and with what text."""

    def __init__(self, plan: list[dict[str, Any]], domain: str) -> None:
        self.plan = {entry["tool"]: entry for entry in plan}
        self.domain = domain
        self.calls: Counter[str] = Counter()
        self.injected = 0

    def check(self, tool: str) -> tuple[str, str] | None:
        """Count a call to ``tool``; (kind, text) when this call must fail, else None."""
        index = self.calls[tool]
        self.calls[tool] += 1
        entry = self.plan.get(tool)
        if entry is None:
            return None
        if entry["mode"] == "permanent" or index < int(entry.get("count", 1)):
            self.injected += 1
            return entry["kind"], fault_text(entry["kind"], tool, self.domain)
        return None


TRAINING_MODES = ("transient", "permanent", "mixed")


def training_faults(item: dict[str, Any], mode: str, rng: Any) -> dict[str, Any]:
    """``item`` turned into a grit item for training (``posttrain train rft --faults MODE``).

    An item that should proceed (a fully specified task, or one with a benign default) gets a
    fault plan on its state-changing tool, built as the generator builds grit items: transient
    (the first 1-2 calls fail: the agent must retry and finish) or permanent (every call fails:
    it must leave the state untouched and say the task failed); ``mixed`` picks one per item.
    The expected state and the grader are unchanged, so the reward still is the eval's grade.
    Items that must ask, irrelevance items and grit items are returned as they are.
    """
    if mode not in TRAINING_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(TRAINING_MODES)}")
    gold = item.get("gold_actions") or []
    if item.get("category") != "ambiguity" or item.get("expect") != "proceed" or not gold:
        return item
    from posttrain.suites.tool_use.generate import RETRY_CAP

    chosen = rng.choice(["transient", "permanent"]) if mode == "mixed" else mode
    fault = {"tool": gold[-1]["name"], "kind": rng.choice(KINDS), "mode": chosen,
             "count": rng.choice([1, 2]) if chosen == "transient" else None}
    changed = dict(item, category="grit", case=f"grit:{chosen}", faults=[fault],
                   retry_cap=RETRY_CAP, max_turns=max(12, int(item.get("max_turns") or 0)),
                   expect="complete" if chosen == "transient" else "complete_or_report")
    if chosen == "permanent":
        changed["outputs"] = []
    return changed

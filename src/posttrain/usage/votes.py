"""Blind pairwise votes from the web viewer as DPO preference pairs.

Each vote with a winner (ties are skipped) becomes TRL's conversational preference row:
``{"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...]}``.
The prompt is the request the runs sent: rebuilt from the run's eval when its file loads,
otherwise the item's own ``messages``. Only votes between two answers to the same question
become pairs (:func:`vote_refusal`).
"""

from __future__ import annotations

from typing import Any

import orjson

from posttrain.runner.store import RunInfo, Store
from posttrain.runner.votes import run_of, vote_refusal
from posttrain.types import Item


def _assistant(completion: dict[str, Any]) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.get("text") or ""}
    if completion.get("tool_calls"):
        message["tool_calls"] = completion["tool_calls"]
    return [message]


def prompt_messages(run: RunInfo, item: Item, evals: dict[str, Any] | None = None,
                    ) -> list[dict[str, Any]] | None:
    """The messages a run sent for an item (None when they cannot be rebuilt)."""
    evals = evals if evals is not None else {}
    if run.eval_path:
        if run.eval_path not in evals:
            try:
                from posttrain.eval import load_eval

                evals[run.eval_path] = load_eval(run.eval_path)
            except Exception:  # an eval that no longer loads: fall back to the item
                evals[run.eval_path] = None
        loaded = evals[run.eval_path]
        if loaded is not None:
            try:
                return loaded.request_for(item, run.variant).messages
            except Exception:
                pass
    messages = item.data.get("messages")
    return messages if isinstance(messages, list) else None


def _completion(store: Store, run_id: str, item_id: str, epoch: int) -> dict[str, Any] | None:
    row = store.conn.execute(
        "SELECT completion FROM samples WHERE run_id=? AND item_id=? AND epoch=? AND status='ok'",
        (run_id, item_id, epoch)).fetchone()
    return orjson.loads(row[0]) if row and row[0] else None


def preference_pairs(store: Store, *, skipped: list[dict[str, Any]] | None = None
                     ) -> list[dict[str, Any]]:
    """The DPO pairs of the store's votes (ties left out). A vote whose two answers are not to
    the same question (:func:`vote_refusal`: other evals, other variants, an item edited between
    the runs) is left out too, and with ``skipped`` given, appended to it as ``{"run_a",
    "run_b", "item_id", "epoch", "reason"}``, so a caller can say how many were left out."""
    pairs: list[dict[str, Any]] = []
    evals: dict[str, Any] = {}
    runs: dict[str, RunInfo] = {}
    items: dict[str, dict[str, Item]] = {}
    for vote in store.votes():
        if vote["winner"] not in ("a", "b"):
            continue
        winner, loser = ((vote["run_a"], vote["run_b"]) if vote["winner"] == "a"
                         else (vote["run_b"], vote["run_a"]))
        try:
            run, other = run_of(store, runs, winner), run_of(store, runs, loser)
        except KeyError:
            continue
        reason = vote_refusal(store, run, other, vote["item_id"])
        if reason is not None:
            if skipped is not None:
                skipped.append({"run_a": vote["run_a"], "run_b": vote["run_b"],
                                "item_id": vote["item_id"], "epoch": vote["epoch"],
                                "reason": reason})
            continue
        if winner not in items:
            items[winner] = {item.id: item for item in store.run_items(winner)}
        item = items[winner].get(vote["item_id"])
        chosen = _completion(store, winner, vote["item_id"], vote["epoch"])
        rejected = _completion(store, loser, vote["item_id"], vote["epoch"])
        if item is None or chosen is None or rejected is None:
            continue
        prompt = prompt_messages(run, item, evals)
        if prompt is None:
            continue
        pairs.append({"prompt": prompt, "chosen": _assistant(chosen),
                      "rejected": _assistant(rejected)})
    return pairs

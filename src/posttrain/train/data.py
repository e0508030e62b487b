"""Training data from files and from graded runs in the store.

``rows_from_run`` is the one place that reads the store's tables, so a schema change touches
only this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


@dataclass(slots=True)
class RunSample:
    """One graded answer of a run: the request messages, the answer text and its grade."""

    item_id: str
    epoch: int
    messages: list[dict[str, Any]]
    text: str
    score: float | None  # mean of the scored graders; None if none scored
    passed: bool
    item: dict[str, Any]


def read_jsonl(path: str | Path, flag: str = "--data") -> list[dict[str, Any]]:
    from posttrain.loaders.datasets import load_jsonl

    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}", field=flag)
    return [row for _, row in load_jsonl(path)]


def _messages_for(run: Any, items: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Rebuild each item's request messages from the run's eval file (or the row's messages)."""
    eval_ = None
    if run.eval_path and Path(run.eval_path).exists():
        from posttrain.eval import load_eval

        eval_ = load_eval(run.eval_path)
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if eval_ is not None:
            out[item.id] = eval_.request_for(item, run.variant if run.variant in eval_.variants
                                              else "default").messages
        elif isinstance(item.data.get("messages"), list):
            out[item.id] = list(item.data["messages"])
        else:
            raise UserError(f"cannot rebuild the prompts of run {run.id}: its eval file "
                            f"{run.eval_path!r} is gone and its rows have no `messages`",
                            field="--from-run")
    return out


def run_samples(store_path: str | Path, run_ref: str) -> list[RunSample]:
    """Every answered sample of a run with its combined grade."""
    from posttrain.runner.store import Store

    if not Path(store_path).exists():
        raise UserError(f"store not found: {store_path}", field="--store")
    with Store(store_path) as store:
        try:
            run = store.resolve_run(run_ref)
        except KeyError:
            raise UserError(f"no run {run_ref!r} in {store_path}", field="--from-run") from None
        items = store.run_items(run.id)
        messages = _messages_for(run, items)
        data = {item.id: item.data for item in items}
        grades: dict[tuple[str, int], list[tuple[float, bool]]] = {}
        for row in store.scores(run.id):
            if row["status"] == "scored" and row["value"] is not None:
                grades.setdefault((row["item_id"], row["epoch"]), []).append(
                    (float(row["value"]), bool(row["passed"])))
        samples: list[RunSample] = []
        for row in store.samples(run.id):
            if row["status"] != "ok" or not row["completion"]:
                continue
            record = json.loads(row["completion"])
            key = (row["item_id"], row["epoch"])
            values = grades.get(key, [])
            score = sum(v for v, _ in values) / len(values) if values else None
            samples.append(RunSample(
                item_id=row["item_id"], epoch=row["epoch"],
                messages=messages.get(row["item_id"], []), text=record.get("text") or "",
                score=score, passed=bool(values) and all(p for _, p in values),
                item=data.get(row["item_id"], {}),
            ))
    return samples


def rows_from_run(store_path: str | Path, run_ref: str, only_passed: bool) -> list[dict[str, Any]]:
    """SFT rows ``{"prompt": messages, "completion": text}`` from a run's answers."""
    rows = []
    for sample in run_samples(store_path, run_ref):
        if only_passed and not sample.passed:
            continue
        rows.append({"prompt": sample.messages, "completion": sample.text})
    if not rows:
        raise UserError(f"run {run_ref!r} has no {'passing ' if only_passed else ''}answers",
                        field="--from-run")
    return rows


def pairs_from_run(store_path: str | Path, run_ref: str, min_margin: float = 1e-9,
                   ) -> list[dict[str, Any]]:
    """DPO pairs: per item, the best vs the worst graded answer (needs ``--epochs`` >= 2)."""
    by_item: dict[str, list[RunSample]] = {}
    for sample in run_samples(store_path, run_ref):
        if sample.score is not None:
            by_item.setdefault(sample.item_id, []).append(sample)
    pairs = []
    for group in by_item.values():
        best = max(group, key=lambda s: s.score or 0.0)
        worst = min(group, key=lambda s: s.score or 0.0)
        if (best.score or 0.0) - (worst.score or 0.0) >= min_margin and best.text != worst.text:
            pairs.append({"prompt": best.messages, "chosen": best.text, "rejected": worst.text})
    if not pairs:
        raise UserError(f"run {run_ref!r} gives no pairs: need items with answers of different "
                        "grades (run the eval with --epochs 2 or more and temperature > 0)",
                        field="--from-run")
    return pairs


def pairs_from_votes(store_path: str | Path) -> list[dict[str, Any]]:
    """DPO pairs from human side-by-side votes (winner ``a`` or ``b``; ties are skipped)."""
    from posttrain.runner.store import Store

    if not Path(store_path).exists():
        raise UserError(f"store not found: {store_path}", field="--store")
    with Store(store_path) as store:
        votes = list(store.votes())
    cache: dict[str, dict[tuple[str, int], RunSample]] = {}

    def sample(run_id: str, item_id: str, epoch: int) -> RunSample | None:
        if run_id not in cache:
            cache[run_id] = {(s.item_id, s.epoch): s for s in run_samples(store_path, run_id)}
        return cache[run_id].get((item_id, epoch))

    pairs = []
    for vote in votes:
        if vote["winner"] not in ("a", "b"):
            continue
        a = sample(vote["run_a"], vote["item_id"], vote["epoch"])
        b = sample(vote["run_b"], vote["item_id"], vote["epoch"])
        if a is None or b is None or a.text == b.text:
            continue
        chosen, rejected = (a, b) if vote["winner"] == "a" else (b, a)
        pairs.append({"prompt": chosen.messages, "chosen": chosen.text,
                      "rejected": rejected.text})
    if not pairs:
        raise UserError("no usable votes in the store (winner a or b on two answers)",
                        field="--from-votes")
    return pairs

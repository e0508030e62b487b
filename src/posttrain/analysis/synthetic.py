"""Stub runs of known accuracy written straight into a store: ground truth for the statistics.

A stub model answers each item correctly with probability ``accuracy`` (seeded), otherwise with a
wrong answer of its own. The default grader checks the answer against the item's ``answer``
field; planting a wrong ``answer`` in an item makes a *misgraded* item that good models fail
with the same (true) answer. Used by the tests and the analysis benchmark.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from posttrain.runner.store import RunInfo, Store
from posttrain.types import Completion, Item, Score

Grade = Callable[[Item, str, int], list[Score]]


@dataclass
class StubModel:
    name: str
    accuracy: float
    price: tuple[float, float] | None = None  # USD per million input / output tokens
    latency_s: float = 1.0
    input_tokens: int = 200
    output_tokens: int = 20
    stored_cost: bool = True  # write tokens x price into cost_usd (as a paid run does)
    #: share of its wrong answers that are the item's common misconception (the same wrong
    #: answer for every model), so that models can agree on a wrong answer
    distractor: float = 0.0


def make_items(n: int, *, tags: Sequence[str] = ("alpha", "beta"), misgraded: Sequence[str] = (),
               prefix: str = "q") -> list[Item]:
    """Items with a ``truth`` and a reference ``answer`` (wrong for the ``misgraded`` ids)."""
    items = []
    for index in range(n):
        item_id = f"{prefix}{index:03d}"
        truth = f"answer {index}"
        tag = tags[index % len(tags)] if tags else None
        data = {"id": item_id, "question": f"question {index}?", "truth": truth,
                "answer": f"mistaken {index}" if item_id in misgraded else truth}
        if tag is not None:
            data["category"] = tag
        items.append(Item(id=item_id, data=data, tags=[tag] if tag else []))
    return items


def exact_grade(item: Item, text: str, epoch: int) -> list[Score]:
    ok = text == item.data["answer"]
    return [Score(value=1.0 if ok else 0.0, passed=ok, name="exact")]


def simulate_run(store: Store, eval_name: str, model: StubModel, items: Sequence[Item], *,
                 seed: int, epochs: int = 1, variant: str = "default",
                 grade: Grade = exact_grade, created: float | None = None,
                 item_accuracy: dict[str, float] | None = None,
                 extra_config: dict | None = None) -> RunInfo:
    """Write one finished run of ``model`` over ``items``; returns it."""
    rng = random.Random(f"{seed}:{model.name}:{variant}")
    price = None if model.price is None else {"input": model.price[0], "output": model.price[1]}
    run = store.create_run(
        run_key=f"{eval_name}:{model.name}:{variant}:{seed}", eval_name=eval_name,
        eval_path=None, eval_hash="synthetic", model=model.name, variant=variant, epochs=epochs,
        config={"primary": None, "pass_bar": None, "model_spec": model.name, "price": price,
                **(extra_config or {})},
        items=items)
    for item in items:
        accuracy = (item_accuracy or {}).get(item.id, model.accuracy)
        for epoch in range(epochs):
            right = rng.random() < accuracy
            if right:
                text = item.data["truth"]
            elif model.distractor and rng.random() < model.distractor:
                text = f"misconception {item.data['truth']}"
            else:
                text = f"guess {rng.randrange(10**6)} by {model.name}"
            cost = 0.0
            if model.price is not None and model.stored_cost:
                cost = (model.input_tokens * model.price[0]
                        + model.output_tokens * model.price[1]) / 1e6
            completion = Completion(
                text=text, input_tokens=model.input_tokens, output_tokens=model.output_tokens,
                latency_s=model.latency_s * (0.5 + rng.random()), cost_usd=cost)
            store.record_sample(run.id, item.id, epoch, completion=completion,
                                request_key=None, attempts=1,
                                scores=grade(item, text, epoch))
    store.finish_run(run.id)
    if created is not None:
        store.conn.execute("UPDATE runs SET created = ? WHERE id = ?", (created, run.id))
    return store.get_run(run.id)


#: (name, accuracy, share of wrong answers that are the shared misconception)
AUDIT_STRONG = [("frontier", 0.95, 0.5), ("large", 0.9, 0.5), ("medium", 0.85, 0.5)]
AUDIT_WEAK = [("small", 0.5, 0.9), ("tiny", 0.35, 0.9), ("micro", 0.2, 0.9)]


def audit_scenario(folder: Path, seed: int, n_items: int,
                   ladder: Sequence[tuple[str, float, float]]) -> tuple[set[str], set[str]]:
    """One seeded store with every 20th item's reference planted wrong, a run per model of
    ``ladder``, and the audit's verdict: (planted item ids, flagged item ids), where a flag is a
    ``strong_models_agree_against_reference`` suspect (bench/bench_audit.py)."""
    from posttrain.analysis.audit import audit
    from posttrain.analysis.selection import load_all, select_runs

    planted = {f"q{i:03d}" for i in range(seed % 20, n_items, 20)}
    store = Store(folder / f"audit-{seed}-{len(ladder)}.db")
    items = make_items(n_items, misgraded=sorted(planted))
    for name, accuracy, distractor in ladder:
        simulate_run(store, "audit", StubModel(name, accuracy, distractor=distractor), items,
                     seed=seed)
    report = audit(load_all(store, select_runs(store, "audit")))
    flagged = {s["item_id"] for s in report["suspects"]
               if s["reason"] == "strong_models_agree_against_reference"}
    store.close()
    return planted, flagged

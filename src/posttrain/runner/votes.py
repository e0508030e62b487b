"""Whether a blind vote between two runs' answers is a preference between two answers to the
same question: what the viewer's arena, ``usage.votes`` and training's ``--from-votes`` all
check before a vote becomes a DPO pair."""

from __future__ import annotations

import orjson

from posttrain.runner.store import RunInfo, Store


def vote_refusal(store: Store, run_a: RunInfo, run_b: RunInfo, item_id: str) -> str | None:
    """Why a vote on ``item_id`` between two runs is no preference pair (None when it is one):
    the runs must have asked the same thing, so be of one eval and one prompt variant and hold
    the same content for the item (a dataset row edited between the runs is another question).
    A DPO pair of one question with the answer to another teaches the wrong thing."""
    if run_a.eval_name != run_b.eval_name:
        return f"the runs are of different evals ({run_a.eval_name!r}, {run_b.eval_name!r})"
    if run_a.variant != run_b.variant:
        return f"the runs are of different prompt variants ({run_a.variant!r}, {run_b.variant!r})"
    rows = [store.conn.execute("SELECT data FROM run_items WHERE run_id = ? AND item_id = ?",
                               (run.id, item_id)).fetchone() for run in (run_a, run_b)]
    if rows[0] is None or rows[1] is None:
        return f"item {item_id!r} is not in both runs"
    if rows[0][0] != rows[1][0] and orjson.loads(rows[0][0]) != orjson.loads(rows[1][0]):
        return f"item {item_id!r} differs between the runs (edited between them)"
    return None

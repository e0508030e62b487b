"""Whether a blind vote between two runs' answers is a preference between two answers to the
same question: what the viewer's arena, ``usage.votes`` and training's ``--from-votes`` all
check before a vote becomes a DPO pair."""

from __future__ import annotations

import orjson

from posttrain.runner.store import RunInfo, Store


def run_of(store: Store, runs: dict[str, RunInfo], run_id: str) -> RunInfo:
    """``run_id``'s run, read once per ``runs`` (the caller's cache); KeyError when gone."""
    if run_id not in runs:
        runs[run_id] = store.get_run(run_id)
    return runs[run_id]


def same_data(a: str, b: str) -> bool:
    """Whether two stored JSON texts of an item are the same data: keys in any order, but a
    value's type counts (``true``, ``1`` and ``1.0`` render three different prompts)."""
    if a == b:
        return True
    return (orjson.dumps(orjson.loads(a), option=orjson.OPT_SORT_KEYS)
            == orjson.dumps(orjson.loads(b), option=orjson.OPT_SORT_KEYS))


def runs_refusal(run_a: RunInfo, run_b: RunInfo) -> str | None:
    """Why two runs' answers are not answers to the same prompts (None when they can be): runs
    of other evals, other prompt variants, or of an eval whose prompts (templates, tools,
    sampling: ``Eval.prompt_digest``) were edited between them."""
    if run_a.eval_name != run_b.eval_name:
        return f"the runs are of different evals ({run_a.eval_name!r}, {run_b.eval_name!r})"
    if run_a.variant != run_b.variant:
        return f"the runs are of different prompt variants ({run_a.variant!r}, {run_b.variant!r})"
    prompts = run_a.config.get("prompts"), run_b.config.get("prompts")
    if None not in prompts and prompts[0] != prompts[1]:
        return "the eval's prompts were edited between the runs (templates, tools or sampling)"
    return None


def vote_refusal(store: Store, run_a: RunInfo, run_b: RunInfo, item_id: str) -> str | None:
    """Why a vote on ``item_id`` between two runs is no preference pair (None when it is one):
    the runs must have asked the same thing (:func:`runs_refusal`) and hold the same content
    for the item (:func:`same_data`: a dataset row edited between the runs is another
    question). A DPO pair of one question with the answer to another teaches the wrong thing."""
    refusal = runs_refusal(run_a, run_b)
    if refusal is not None:
        return refusal
    rows = [store.conn.execute("SELECT data FROM run_items WHERE run_id = ? AND item_id = ?",
                               (run.id, item_id)).fetchone() for run in (run_a, run_b)]
    if rows[0] is None or rows[1] is None:
        return f"item {item_id!r} is not in both runs"
    if not same_data(rows[0][0], rows[1][0]):
        return f"item {item_id!r} differs between the runs (edited between them)"
    return None

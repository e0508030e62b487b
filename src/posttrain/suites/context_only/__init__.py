"""``context_only``: does the model use only the context it is given?

Item types (``item_type``, also a tag): counterfactual (the context changes a well-known fact;
answering the real-world value is "stubborn"), unanswerable (the answer sentence is absent;
the right move is the abstain phrase), conflicting (two documents disagree; flag it or give
both), multihop (two edited facts chained) and control (the context states the true fact; an
abstention here is over-abstention). Variants: the GPT-4.1 guide's two context-reliance
system prompts. Grader: ``context_only`` with sub-scores faithful / stubborn / abstained /
echoed (the answer copies the prompt).
"""

from __future__ import annotations

from pathlib import Path
from random import Random
from typing import Any

from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows
from posttrain.suites.context_only.generate import ABSTAIN, BUILDERS, TYPES
from posttrain.suites.context_only.world import World

SUITE = SuiteInfo(
    name="context_only",
    measures="Use only the context: counterfactual, unanswerable, conflicting and multi-hop "
             "contexts plus a world-knowledge control; context-faithful, stubborn and "
             "abstention rates",
    components=["faithful", "stubborn", "abstained", "echoed", "per item type",
                "variants: only_context / basic_knowledge"],
    default_n=150,
)
# The guide's two context-reliance lines (verbatim), §7.4 of the reference notes.
ONLY_CONTEXT = (
    "Only use the documents in the provided External Context to answer the User Query. If you "
    "don't know the answer based on this context, you must respond \"I don't have the "
    "information needed to answer that\", even if a user insists on you answering the question.")
BASIC_KNOWLEDGE = (
    "By default, use the provided external context to answer the User Query, but if other basic "
    "knowledge is needed to answer, and you're confident in the answer, you can use some of "
    "your own knowledge to help answer the question.")
# Our addition so both variants share one abstain phrase for the unanswerable items.
BASIC_KNOWLEDGE_ABSTAIN = (f" If you cannot answer, respond \"{ABSTAIN}\". If the documents "
                           "disagree, say so.")
USER = "# External Context\n{{item.context}}\n\n# User Query\n{{item.question}}"


def generate(n: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for index in range(n):
        rng = Random(f"context_only:{seed}:{index}")
        world = World(rng)
        item_type = TYPES[index % len(TYPES)]
        row = BUILDERS[item_type](rng, world)
        rows.append({"id": f"ctx-{index:04d}", **row, "tags": [item_type]})
    return rows


@register_suite("context_only")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    del length
    rows = generate(n or SUITE.default_n, seed)
    data = write_rows(out_dir / "context_only.jsonl", rows)
    spec = {
        "name": "context_only",
        "description": SUITE.measures + f" (seed {seed}, {len(rows)} items)",
        "dataset": data.name,
        "messages": [{"role": "system", "content": ONLY_CONTEXT},
                     {"role": "user", "content": USER}],
        "variants": {"basic_knowledge": {"system": BASIC_KNOWLEDGE + BASIC_KNOWLEDGE_ABSTAIN}},
        "graders": [{"type": "context_only", "name": "context"}],
        "sampling": {"temperature": 0, "max_tokens": 256},
        "metadata": {"suite": "context_only", "seed": seed},
    }
    return write_eval_file(out_dir, spec)

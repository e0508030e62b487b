"""``instruction_following``: the 25 IFEval instruction types plus developer-style instructions.

Items keep IFEval's own fields (``prompt``, ``instruction_id_list``, ``kwargs``) and add
``id``, ``difficulty`` (easy / medium / hard = 1 / 2 / 3 stacked instructions), ``kind``
(ifeval / developer), ``category`` and ``tags``, plus ``messages`` (developer items carry a
system message). One ``ifeval`` grader checks both families of ids.

To grade your own IFEval JSONL, write an eval with
``messages: [{role: user, content: "{{item.prompt}}"}]`` and
``graders: [{type: ifeval, name: ifeval}]``.
"""

from __future__ import annotations

from pathlib import Path
from random import Random

from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows
from posttrain.suites.instruction_following.dev_items import dev_item
from posttrain.suites.instruction_following.ifeval_items import ifeval_item

SUITE = SuiteInfo(
    name="instruction_following",
    measures="IFEval's 25 verifiable instructions (strict and loose, prompt and instruction "
             "level) and developer-style instructions (formats, negatives, order, content, "
             "ranking, overconfidence, system-vs-user and later-wins conflicts)",
    components=["strict_prompt", "strict_instruction", "loose_prompt", "loose_instruction",
                "per instruction id", "per category", "easy/medium/hard"],
    default_n=200,
)
DEVELOPER_SHARE = 0.3


def generate(n: int, seed: int) -> list[dict]:
    """``n`` items; item ``i`` depends only on (seed, i), so a larger n extends a smaller one."""
    rows = []
    for index in range(n):
        rng = Random(f"instruction_following:{seed}:{index}")
        stacked = 1 + index % 3
        if rng.random() < DEVELOPER_SHARE:
            row = dev_item(rng, extras=stacked - 1)
        else:
            row = ifeval_item(rng, stacked)
        rows.append({"id": f"if-{index:04d}", **row})
    return rows


@register_suite("instruction_following")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    del length  # not a long-context suite
    rows = generate(n or SUITE.default_n, seed)
    data = write_rows(out_dir / "instruction_following.jsonl", rows)
    spec = {
        "name": "instruction_following",
        "description": SUITE.measures + f" (seed {seed}, {len(rows)} items)",
        "dataset": data.name,
        "graders": [{"type": "ifeval", "name": "instructions"}],
        "sampling": {"temperature": 0, "max_tokens": 1280},
        "metadata": {"suite": "instruction_following", "seed": seed},
    }
    return write_eval_file(out_dir, spec)

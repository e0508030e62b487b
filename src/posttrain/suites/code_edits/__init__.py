"""``code_edits``: the same small edit tasks asked in eleven edit formats.

Items are task × format (``insert_after`` only for pure-insertion tasks). Each row carries the
original ``files``, the ``edit_path``, the ``allowed`` line ranges, its tests, the rendered
``reference_answer`` and ``tags`` (``format:…``, ``language:…``, ``task:…``), so a report gives
per-format malformed, tests-pass and irrelevant-edit rates. Graded by the ``code_edit`` grader.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows
from posttrain.suites.code_edits import formats, prompts
from posttrain.suites.code_edits.checking import resolve_region
from posttrain.suites.code_edits.tasks import TASKS, Task

SUITE = SuiteInfo(
    name="code_edits",
    measures="editing code in eleven edit formats without touching what was not asked: "
             "malformed rate, tests-pass rate and irrelevant-edit rate per format",
    # literal, so that `posttrain suites list` reads it without importing the suite (a test checks
    # it names every format in formats.FORMATS)
    components=["whole", "search_replace", "diff_fenced", "udiff", "unified_diff", "v4a", "xml",
                "json", "str_replace", "line_range", "insert_after",
                "python", "html", "css", "javascript"],
    default_n=0,  # 0 here means every task × format pair
)


def pairs() -> list[tuple[Task, str]]:
    out = []
    for task in TASKS:
        insert_only = formats.insert_only(task.original(), task.target())
        for fmt, spec in formats.FORMATS.items():
            if spec.insert_only and not insert_only:
                continue
            out.append((task, fmt))
    return out


def make_row(task: Task, fmt: str) -> dict[str, Any]:
    original, target = task.original(), task.target()
    shown = prompts.numbered(original) if formats.FORMATS[fmt].numbered else original
    fence = "" if formats.FORMATS[fmt].numbered else task.language
    user = (f"{task.file}:\n```{fence}\n{shown}```\n\nTask: {task.instruction}\n"
            f"Answer in the `{fmt}` format.")
    row: dict[str, Any] = {
        "id": f"{task.id}-{fmt}",
        "task_id": task.id,
        "format": fmt,
        "language": task.language,
        "messages": [{"role": "system", "content": prompts.instructions(fmt)},
                     {"role": "user", "content": user}],
        "tools": [formats.STR_REPLACE_TOOL] if fmt == "str_replace" else None,
        "files": {task.file: original},
        "edit_path": task.file,
        "allowed": {task.file: [list(r) for r in resolve_region(task.region, original)]},
        "reference_answer": formats.render(fmt, task.file, original, target),
        "tags": [f"format:{fmt}", f"language:{task.language}", f"task:{task.id}"],
    }
    for key in ("python_test", "node_test", "checks"):
        if getattr(task, key):
            row[key] = getattr(task, key)
    return row


@register_suite("code_edits")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    if length is not None:
        raise UserError("code_edits has no length setting", field="length")
    chosen = pairs()
    if n:
        if n < 1:
            raise UserError("must be at least 1", field="n")
        random.Random(f"code_edits:{seed}").shuffle(chosen)
        chosen = sorted(chosen[:n], key=lambda pair: (pair[0].id, pair[1]))
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = write_rows(out_dir / "code_edits.jsonl",
                         (make_row(task, fmt) for task, fmt in chosen))
    spec = {
        "name": "code_edits",
        "description": SUITE.measures,
        "dataset": dataset.name,
        "tools": "{{item.tools}}",
        "graders": [{"type": "code_edit", "name": "code_edit"}],
        "sampling": {"temperature": 0},
        "metadata": {"suite": "code_edits", "seed": seed, "n": len(chosen)},
    }
    return write_eval_file(out_dir, spec)

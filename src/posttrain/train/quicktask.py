"""The quickstart's bundled verifiable task: single-digit sums answered as JSON.

Each item asks for ``a + b`` in one of several phrasings and says *Reply with JSON
{"answer": N}*; the grader is an exact ``string_check`` on the JSON reply. The tiny model's SFT
"pretraining" corpus follows that instruction inconsistently: for some phrasings it mostly
answers in JSON, for others mostly in prose ("The answer is N."). So the pretrained model is right
on part of the items and still *samples* the JSON form now and then everywhere: the non-zero,
non-saturated start where reinforcement fine-tuning with the grader as reward helps. RFT then has
to generalise "follow the requested format" to phrasings where the model did not, which it is
measured on with held-out items (prompts never seen in RFT training).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

PHRASINGS = [
    "What is {a} + {b}?",
    "Add {a} and {b}.",
    "Compute {a} plus {b}.",
    "What is the sum of {a} and {b}?",
    "{a} + {b} = ?",
    "Tell me {a} plus {b}.",
]
# how often the pretraining corpus answers each phrasing in the requested JSON form
JSON_RATE = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
INSTRUCTION = ' Reply with JSON {"answer": N}.'
PRETRAIN_STEPS = 150
PRETRAIN_LR = 3e-3
EVAL_NAME = "quickstart-add"


def prompt_text(a: int, b: int, phrasing: int) -> str:
    return PHRASINGS[phrasing].format(a=a, b=b) + INSTRUCTION


def expected(a: int, b: int) -> str:
    return json.dumps({"answer": a + b})


def all_items() -> list[dict[str, Any]]:
    """Every (a, b, phrasing) combination as an eval row."""
    rows = []
    for phrasing in range(len(PHRASINGS)):
        for a in range(10):
            for b in range(10):
                rows.append({
                    "id": f"p{phrasing}-{a}+{b}", "prompt": prompt_text(a, b, phrasing),
                    "answer": a + b, "expected": expected(a, b), "phrasing": f"p{phrasing}",
                })
    return rows


def split_items(seed: int = 0, n_heldout: int = 200) -> tuple[list[dict[str, Any]],
                                                               list[dict[str, Any]]]:
    """(train, held-out): disjoint prompts, shuffled with ``seed``."""
    rows = all_items()
    random.Random(seed).shuffle(rows)
    return rows[n_heldout:], rows[:n_heldout]


def pretrain_rows(seed: int = 0, count: int = 4000) -> list[dict[str, Any]]:
    """Prompt/completion rows for the tiny model's SFT pretraining (format inconsistent)."""
    rng = random.Random(seed + 1000)
    rows = []
    for _ in range(count):
        a, b, phrasing = rng.randrange(10), rng.randrange(10), rng.randrange(len(PHRASINGS))
        if rng.random() < JSON_RATE[phrasing]:
            answer = expected(a, b)
        else:
            answer = f"The answer is {a + b}."
        rows.append({"prompt": [{"role": "user", "content": prompt_text(a, b, phrasing)}],
                     "completion": [{"role": "assistant", "content": answer}]})
    return rows


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Task text for the tokenizer (pseudo-words are added by the tokenizer builder)."""
    rows = pretrain_rows(seed, count=600)
    return [row["prompt"][0]["content"] + " " + row["completion"][0]["content"] for row in rows]


def eval_spec(dataset: str = "items.jsonl") -> dict[str, Any]:
    """The eval file's content (written as YAML next to its dataset)."""
    return {
        "name": EVAL_NAME,
        "description": "Single-digit sums; the reply must be exactly the JSON object asked for.",
        "dataset": dataset,
        "messages": [{"role": "user", "content": "{{item.prompt}}"}],
        "graders": [{"type": "string_check", "name": "json_answer",
                     "input": "{{sample.output_text}}", "reference": "{{item.expected}}",
                     "operation": "eq"}],
        "tag": "phrasing",
        "sampling": {"temperature": 0, "max_tokens": 16},
    }


def write_eval(folder: str | Path, rows: list[dict[str, Any]], name: str = "eval",
               spec: dict[str, Any] | None = None) -> Path:
    """Write ``NAME.yaml`` (``spec``, default :func:`eval_spec`) and its ``NAME.jsonl`` dataset
    into ``folder``; return the YAML path."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / f"{name}.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = folder / f"{name}.yaml"
    spec = dict(spec or eval_spec(dataset.name), dataset=dataset.name)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ---- the real model's version: SmolLM2-135M-Instruct -------------------------------------------
# The same sums, asked the same six ways, with a system line and one worked example so that the
# model answers in the requested JSON form; what it then gets wrong is the sum itself (measured:
# bench/RESULTS.md, "quickstart on SmolLM2"). The example's own sum (2 + 5) is not an item.
SMOL_EVAL_NAME = "quickstart-add-smollm2"
SMOL_SYSTEM = "Reply with JSON only."
SMOL_EXAMPLE = ("What is 2 + 5?" + INSTRUCTION, expected(2, 5))


def smol_items() -> list[dict[str, Any]]:
    """Every (a, b, phrasing) row but the worked example's sum."""
    return [row for row in all_items() if not row["id"].endswith("-2+5")]


def smol_split(seed: int = 0, n_heldout: int = 100) -> tuple[list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
    """(train, held-out) rows of the real-model task, disjoint, shuffled with ``seed``."""
    rows = smol_items()
    random.Random(seed).shuffle(rows)
    return rows[n_heldout:], rows[:n_heldout]


def smol_eval_spec(dataset: str = "items.jsonl") -> dict[str, Any]:
    spec = eval_spec(dataset)
    spec["name"] = SMOL_EVAL_NAME
    spec["messages"] = [
        {"role": "system", "content": SMOL_SYSTEM},
        {"role": "user", "content": SMOL_EXAMPLE[0]},
        {"role": "assistant", "content": SMOL_EXAMPLE[1]},
        {"role": "user", "content": "{{item.prompt}}"},
    ]
    spec["sampling"] = {"temperature": 0, "max_tokens": 12}
    return spec

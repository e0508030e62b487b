"""``structured_output``: JSON-schema adherence on records extracted from generated text.

Each item holds a paragraph (with filler sentences), a strict JSON schema (nested objects,
enums, required fields, arrays, formats, patterns) and the expected record. The eval sends the
schema as ``response_format: json_schema`` and also shows it in the prompt, so models without
structured-output support are measured too. Grader: ``structured_output``.
"""

from __future__ import annotations

import json
from pathlib import Path
from random import Random
from typing import Any

from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows
from posttrain.suites.structured_output.templates import FILLER, TEMPLATES

SUITE = SuiteInfo(
    name="structured_output",
    measures="JSON-schema adherence: extracting records from text into nested objects, enums, "
             "required fields, arrays and formats",
    components=["parses", "valid", "fields_correct", "per template", "easy/medium/hard"],
    default_n=120,
)
SYSTEM = ("Extract the requested record from the user's text. Reply with one JSON object that "
          "follows the JSON schema exactly, and nothing else.")


def generate(n: int, seed: int) -> list[dict[str, Any]]:
    names = list(TEMPLATES)
    rows = []
    for index in range(n):
        rng = Random(f"structured_output:{seed}:{index}")
        name = names[index % len(names)]
        make, difficulty = TEMPLATES[name]
        text, schema, expected = make(rng)
        if rng.random() < 0.5:
            text = f"{rng.choice(FILLER)} {text}"
        prompt = (f"Text:\n{text}\n\nJSON schema ({name}):\n"
                  f"{json.dumps(schema, ensure_ascii=False)}")
        rows.append({"id": f"so-{index:04d}", "template": name, "difficulty": difficulty,
                     "prompt": prompt, "text": text, "schema_name": name, "schema": schema,
                     "expected": expected, "tags": [name, difficulty]})
    return rows


@register_suite("structured_output")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    del length
    rows = generate(n or SUITE.default_n, seed)
    data = write_rows(out_dir / "structured_output.jsonl", rows)
    spec = {
        "name": "structured_output",
        "description": SUITE.measures + f" (seed {seed}, {len(rows)} items)",
        "dataset": data.name,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": "{{item.prompt}}"}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "{{item.schema_name}}",
                                            "schema": "{{item.schema}}", "strict": True}},
        "graders": [{"type": "structured_output", "name": "schema",
                     "schema": "{{item.schema}}", "expected": "{{item.expected}}"}],
        "sampling": {"temperature": 0, "max_tokens": 1024},
        "metadata": {"suite": "structured_output", "seed": seed},
    }
    return write_eval_file(out_dir, spec)

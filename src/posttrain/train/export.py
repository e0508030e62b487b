"""Export to the hosted (OpenAI) fine-tuning JSONL formats, for teams that still train there.

- SFT: ``{"messages": [..., {"role": "assistant", "content": ...}], "tools"?: [...]}`` (an
  assistant's ``tool_calls``, a tool message's ``tool_call_id`` and the row's ``tools`` /
  ``parallel_tool_calls`` kept)
- DPO: ``{"input": {"messages": [...]}, "preferred_output": [assistant],
  "non_preferred_output": [assistant]}``
- RFT: ``{"messages": [...], "tools"?: [...], <item fields>}`` per item (``messages`` and
  ``tools`` are the format's only reserved keys), plus the grader JSON in a separate file: the
  grader whose value is posttrain's own RFT reward (:func:`posttrain.train.reward.reward_grader`:
  the eval's ``score:`` grader, its only grader, or a ``multi`` grader averaging them all).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


def sft_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from posttrain.train.sft import to_prompt_completion

    records = []
    for index, row in enumerate(rows, start=1):
        pc = to_prompt_completion(row, line=index, tools=True)
        record: dict[str, Any] = {"messages": pc["prompt"] + pc["completion"]}
        record.update({key: pc[key] for key in ("tools", "parallel_tool_calls") if key in pc})
        records.append(record)
    return records


def dpo_records(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from posttrain.train.dpo import to_pair

    records = []
    for index, row in enumerate(pairs, start=1):
        pair = to_pair(row, line=index)
        records.append({"input": {"messages": pair["prompt"]},
                        "preferred_output": pair["chosen"],
                        "non_preferred_output": pair["rejected"]})
    return records


def rft_grader(grader_specs: Any, *, primary: str | None = None) -> dict[str, Any]:
    """The hosted grader, computing the reward posttrain's own RFT uses
    (:func:`posttrain.train.reward.reward_grader`): the eval's ``score:`` grader (``primary``)
    when it has one, else its single grader, else a ``multi`` grader averaging them all.

    ``grader_specs`` is the eval's ``grader_specs`` list, or the eval itself (then its
    ``score:`` grader is read from it and ``primary`` need not be given).
    """
    names: list[str | None]
    if hasattr(grader_specs, "grader_specs"):  # an Eval
        eval_ = grader_specs
        grader_specs = list(eval_.grader_specs)
        names = [grader.name for grader in eval_.graders] if eval_.graders else []
        primary = primary if primary is not None else eval_.primary
    else:
        grader_specs = list(grader_specs)
        names = []
    if len(names) != len(grader_specs):
        names = [spec.get("name") if isinstance(spec.get("name"), str) else None
                 for spec in grader_specs]
    if primary is not None:
        matches = [spec for name, spec in zip(names, grader_specs, strict=True) if name == primary]
        if len(matches) != 1:
            raise UserError(f"names no grader ({', '.join(n for n in names if n)})",
                            field="score")
        return dict(matches[0])
    if len(grader_specs) == 1:
        return dict(grader_specs[0])
    graders: dict[str, dict[str, Any]] = {}
    for index, spec in enumerate(grader_specs):
        name = str(spec.get("name") or f"g{index}")
        key = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
        if not key or not (key[0].isalpha() or key[0] == "_"):
            key = f"g_{key}"
        base, suffix = key, 2
        while key in graders:  # two names alike once cleaned: keep both, or the mean drops one
            key, suffix = f"{base}_{suffix}", suffix + 1
        graders[key] = dict(spec)
    formula = "(" + " + ".join(graders) + f") / {len(graders)}"
    return {"type": "multi", "name": "posttrain_mean", "graders": graders,
            "calculate_output": formula}


def rft_records(eval_: Any) -> list[dict[str, Any]]:
    """One hosted RFT line per item: its request's messages and tools (the eval's ``tools``,
    rendered for the item), then its fields for the grader's ``{{item.*}}``.

    An item field named ``messages`` or ``tools`` that differs from the request's is refused
    (the hosted format reserves both). The format has no ``tool_choice``: ``none`` is exported
    as no tools (the model cannot call one either way), ``auto`` as the tools; a choice that
    forces a call (``required`` or a named function) cannot be carried and is refused.
    """
    choice = eval_.tool_choice
    if choice is not None and choice not in ("auto", "none"):
        raise UserError("hosted RFT lines carry `tools` but no `tool_choice`, so a job cannot "
                        f"force the tool call this eval asks for ({json.dumps(choice)}); "
                        "set `tool_choice: auto` (or leave it out) to export it",
                        file=eval_.source, field="tool_choice")
    records = []
    for item in eval_.items:
        request = eval_.request_for(item)
        reserved = {"messages": request.messages,
                    "tools": None if choice == "none" else (request.tools or None)}
        for key, value in reserved.items():
            mine = item.data.get(key)
            if key in item.data and (mine or None if key == "tools" else mine) != value:
                raise UserError(f"an item field named `{key}` clashes with the hosted RFT "
                                "format", file=eval_.dataset or eval_.source, line=item.line,
                                field=key)
        record: dict[str, Any] = {key: value for key, value in reserved.items()
                                  if value is not None}
        record.update({k: v for k, v in item.data.items() if k not in reserved})
        records.append(record)
    return records


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path

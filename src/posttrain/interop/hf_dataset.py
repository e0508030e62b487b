"""``posttrain export hf RUN|EVAL_FILE -o DIR``: a Hugging Face dataset folder with a dataset
card, ready for ``huggingface-cli upload`` (or ``load_dataset(DIR).push_to_hub(...)``).

An eval file gives its items (the rows as the dataset holds them: id and fields); a stored run
gives one row per answer: the item's fields, the answer, its status, score and pass, each
grader's value, tokens and cost. The rows are written as ``data/SPLIT.jsonl`` (exactly the
values posttrain holds), with ``README.md`` declaring the split in its YAML header, so
``load_dataset(DIR)`` and an eval's ``dataset: hf://./DIR?split=SPLIT`` read it back; the card
says where the rows came from and, for a run, posttrain's score with its interval.

Arrow gives each column one type, so a column of ints and floats reads back as floats (4 ->
4.0), a big int can lose digits and a field some rows lack reads back as null. Each row is
therefore also written whole, as its exact JSON text, in the column ``posttrain_row``
(:data:`ROW_COLUMN`): ``posttrain.loaders.hf_datasets`` restores the rows from it, so the
items, and the run identity, come back exactly; other readers see the plain columns.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.loaders.hf_datasets import ROW_COLUMN


def _eval_rows(eval_file: Path) -> tuple[str, list[dict[str, Any]], str]:
    from posttrain.eval import load_eval

    eval_ = load_eval(eval_file)
    rows = []
    for item in eval_.items:
        # the row as the dataset holds it (tags come from its fields, as the eval file says)
        rows.append({"id": item.id, **{k: v for k, v in item.data.items() if k != "id"}})
    text = (f"The items of the posttrain eval `{eval_.name}` ({len(rows)} rows), exported from "
            f"`{eval_file.name}`.")
    if eval_.description:
        text += f"\n\n{eval_.description}"
    return eval_.name, rows, text


_RUN_COLUMNS = ("epoch", "model", "variant", "output", "status", "score", "passed", "error",
                "input_tokens", "output_tokens", "cost_usd", "grades")


def _run_rows(store: Path, ref: str) -> tuple[str, list[dict[str, Any]], str, list[str]]:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    with Store(store, reading=True) as db:
        try:
            run = db.resolve_run(ref)
        except (KeyError, UserError) as exc:
            raise UserError(str(exc.args[0] if exc.args else exc), field="RUN") from None
        results = load_results(db, run)
    summary = summarize(results)
    items = results.items_by_id
    # an item field named as one of posttrain's columns keeps its name; posttrain's column is
    # then written as posttrain_NAME (never one overwriting the other)
    fields = {k for item in results.items for k in item.data if k != "id"}
    clash = sorted(fields & set(_RUN_COLUMNS))
    rows = []
    for s in results.samples:
        item = items.get(s.item_id)
        data = dict(item.data) if item is not None else {}
        data.pop("id", None)
        ours: dict[str, Any] = {
            "epoch": s.epoch, "model": run.model, "variant": run.variant,
            "output": s.output_text, "status": s.status, "score": s.value,
            "passed": s.passed, "error": s.error, "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens, "cost_usd": s.cost_usd,
            "grades": {name: {"value": g.value, "passed": g.passed, "status": g.status,
                              "explanation": g.explanation} for name, g in s.grades.items()}}
        row: dict[str, Any] = {"id": s.item_id, **data}
        for key, value in ours.items():
            row[f"posttrain_{key}" if key in clash else key] = value
        rows.append(row)
    ci = (f" [95% CI {summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"
          if summary["ci_low"] is not None else "")
    score = "-" if summary["score"] is None else f"{summary['score']:.3f}"
    text = (f"The answers of posttrain run `{run.id}`: eval `{run.eval_name}`, model "
            f"`{run.model}`, variant `{run.variant}`, {summary['n']} samples.\n\n"
            f"posttrain score {score}{ci} ({summary['ci_method']}); every sample counts, a "
            f"failed request or an ungraded answer as 0: {summary['errors']} errors, "
            f"{summary['unscored']} unscored. Coverage {summary['coverage']}.")
    if clash:
        text += ("\n\nThe items have fields named as posttrain's columns ("
                 + ", ".join(clash) + "): they keep their names, and posttrain's are "
                 + ", ".join(f"posttrain_{c}" for c in clash) + ".")
    return f"{run.eval_name}-{run.model}", rows, text, clash


def export_hf(source: str, out_dir: str | Path, *, store: str | Path = "posttrain.db",
              split: str = "test") -> dict[str, Any]:
    """Write the dataset folder; returns what was written."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", split):
        raise UserError("a split name is letters, digits, _ . -", field="--split")
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        name, rows, text = _eval_rows(path.resolve())
        clash: list[str] = []
    else:
        if not Path(store).is_file():
            raise UserError(f"{source} is no eval file, and there is no store to find a run "
                            "in", file=Path(store).resolve())
        name, rows, text, clash = _run_rows(Path(store), source)
    out = Path(out_dir).resolve()
    data = out / "data" / f"{split}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    if any(ROW_COLUMN in row for row in rows):
        raise UserError(f"a row has a field named {ROW_COLUMN}, the column posttrain keeps each "
                        "row's exact JSON in: rename the field", field=ROW_COLUMN)
    with data.open("w", encoding="utf-8") as handle:
        for row in rows:
            exact = json.dumps(row, ensure_ascii=False, default=str)
            handle.write(json.dumps({**row, ROW_COLUMN: exact}, ensure_ascii=False,
                                    default=str) + "\n")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    card = ["---", "configs:", "- config_name: default", "  data_files:",
            f"  - split: {split}", f"    path: data/{split}.jsonl", "tags:", "- posttrain",
            "- evaluation", "---", "", f"# {name}", "", text, "",
            f"Columns: {', '.join(f'`{c}`' for c in columns)}, and `{ROW_COLUMN}`: each row "
            "whole as JSON text (Arrow gives a column one type, so ints among floats, big ints "
            "and fields some rows lack change in the typed columns; posttrain reads the rows "
            "back from this one, exactly).", "",
            "Load it: `datasets.load_dataset(\"PATH\")`, or in a posttrain eval file "
            f"`dataset: hf://OWNER/NAME?split={split}`.", ""]
    (out / "README.md").write_text("\n".join(card), encoding="utf-8")
    warnings = [f"item field {c!r} is also a posttrain column: the item's keeps the name, "
                f"posttrain's is posttrain_{c}" for c in clash]
    return {"folder": str(out), "rows": len(rows), "split": split, "data": str(data),
            "warnings": warnings}

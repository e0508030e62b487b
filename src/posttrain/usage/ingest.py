"""From usage logs and feedback to an eval folder: redact, dedupe, cluster into themes, write.

Every record is redacted right after it is parsed, before dedup, clustering, the output folder
or the store see it; problems are reported by line number without quoting content.

Output folder:
- ``dataset.jsonl`` + ``eval.yaml``: items with a reference answer (a user's correction, or the
  logged answer when the feedback was positive or absent), graded by similarity (or
  ``string_check`` with ``--grader string``);
- ``rubric.jsonl`` + ``rubric.eval.yaml``: items rated negative with no correction, graded by a
  ``score_model`` judge against a rubric built from the user's comment;
- ``tools.jsonl`` + ``tools.eval.yaml``: items whose logged answer is tool calls and no text,
  graded by ``tool_call`` against the first call (the reference holds the calls as text too);
  every item whose answer had tool calls keeps them in ``reference_tool_calls``;
- ``ingest.json``: the summary (counts only, no content).

With ``--store``, the logged answers are recorded as a run of ``logged:<model>`` on each eval
(one run per logged model: an answer is never filed under another model's name), so ``posttrain view`` can compare a new model with production side by side.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import UserError
from posttrain.usage.dedup import dedup
from posttrain.usage.logs import LogRecord, Problem, read_feedback, read_logs, text_of
from posttrain.usage.redact import Redactor
from posttrain.usage.themes import find_themes

DEFAULT_JUDGE = "openai:gpt-4.1-mini"

JUDGE_SYSTEM = (
    "You grade an assistant's reply to a user. A previous reply to the same conversation was "
    "rated bad by the user; the rubric says what a good reply must do. Score the new reply "
    "from 0 (fails the rubric) to 1 (fully meets it). Answer with JSON: "
    '{"steps": [{"description": "...", "conclusion": "..."}], "result": <number 0..1>}.'
)
JUDGE_USER = (
    "Conversation:\n{{item.prompt_text}}\n\nRubric:\n{{item.rubric}}\n\n"
    "Reply the user rated bad (for contrast):\n{{item.rejected_response}}\n\n"
    "Reply to grade:\n{{sample.output_text}}"
)


@dataclass
class IngestOptions:
    feedback: Path | None = None
    mapping: dict[str, str] | None = None
    fmt: str = "auto"
    embed: str = "minilm"
    themes: int | None = None
    per_theme: int = 0  # 0: keep every item
    near: float = 0.8
    judge: str = DEFAULT_JUDGE
    grader: str = "similarity"
    name: str | None = None
    seed: int = 0
    redact_names: bool = True


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    lines = []
    for message in messages:
        text = text_of(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n[tool call {function.get('name')}({function.get('arguments', '')})]"
        lines.append(f"{message.get('role')}: {text}")
    return "\n".join(lines)


def _dedup_text(record: LogRecord) -> str:
    return _prompt_text([m for m in record.messages if m.get("role") != "system"])


def _theme_text(record: LogRecord) -> str:
    users = [text_of(m.get("content")) for m in record.messages if m.get("role") == "user"]
    return users[-1] if users else _dedup_text(record)


def _priority(record: LogRecord) -> int:
    feedback = record.feedback or {}
    if feedback.get("correction"):
        return 0
    if feedback.get("rating_label") == "negative":
        return 1
    if feedback:
        return 2
    return 3


def _item_row(record: LogRecord, item_id: str, theme: str, duplicates: int,
              ) -> tuple[str, dict[str, Any]]:
    feedback = record.feedback or {}
    label = feedback.get("rating_label")
    row: dict[str, Any] = {"id": item_id, "messages": record.messages}
    if record.tools:
        row["tools"] = record.tools
    row["theme"] = theme
    if record.response_tools:  # the logged answer's calls, redacted like the rest
        row["reference_tool_calls"] = record.response_tools
    correction = feedback.get("correction")
    if isinstance(correction, (dict, list)):
        correction = json.dumps(correction)
    if correction:
        kind, source = "reference", "correction"
        row["reference"] = str(correction)
    elif label == "negative":
        kind, source = "rubric", "negative_feedback"
        comment = (feedback.get("comment") or "").strip()
        row["rubric"] = (f"The user rated the previous reply bad and said: \"{comment}\". A good "
                         "reply fixes what the user complained about." if comment else
                         "The user rated the previous reply bad without saying why. A good reply "
                         "answers the last user message correctly, completely and helpfully.")
        row["prompt_text"] = _prompt_text(record.messages)
        row["rejected_response"] = record.response_text
    else:
        source = "accepted_response" if label in ("positive", "neutral") else "logged_response"
        # an answer made only of tool calls is graded on its calls, not on an empty text
        kind = "tools" if record.response_tools and not record.response_text.strip() else (
            "reference")
        row["reference"] = record.response_text or _calls_text(record.response_tools)
    row["tags"] = [f"source:{source}"] + ([f"feedback:{label}"] if label else [])
    row["provenance"] = {
        "log_id": record.id, "log_line": record.line, "created": record.created,
        "model": record.model, "duplicates_dropped": duplicates,
        "feedback": ({k: v for k, v in feedback.items() if k != "rating_label"} | {
            "label": label} if feedback else None),
    }
    if record.trace:
        row["provenance"]["trace"] = record.trace
    return kind, row


def _calls_text(calls: list[dict[str, Any]]) -> str:
    """Tool calls as one line each, ``name(arguments)``."""
    lines = []
    for call in calls:
        function = call.get("function") if isinstance(call.get("function"), dict) else call
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        lines.append(f"{function.get('name')}({arguments})")
    return "\n".join(lines)


_DESCRIPTIONS = {"reference": "(reference answers).",
                 "rubric": "(negative feedback, judged against a rubric).",
                 "tools": "(answers that were tool calls, graded on the first call)."}


def _eval_spec(name: str, kind: str, dataset: str, options: IngestOptions,
               has_tools: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "description": "Built by posttrain ingest from usage logs " + _DESCRIPTIONS[kind],
        "dataset": dataset,
        "tag": "theme",
    }
    if has_tools:
        spec["tools"] = "{{item.tools}}"
    if kind == "tools":
        # redacted argument values ("[EMAIL]") cannot match: the call's name passes an item
        spec["graders"] = [{"type": "tool_call", "name": "calls_reference_tool",
                            "function": "{{item.reference_tool_calls[0].function.name}}",
                            "arguments": "{{item.reference_tool_calls[0].function.arguments}}",
                            "pass_threshold": 0.5}]
    elif kind == "reference":
        if options.grader == "string":
            spec["graders"] = [{"type": "string_check", "name": "matches_reference",
                                "input": "{{sample.output_text}}",
                                "reference": "{{item.reference}}", "operation": "ilike"}]
        else:
            spec["graders"] = [{"type": "text_similarity", "name": "similarity",
                                "input": "{{sample.output_text}}",
                                "reference": "{{item.reference}}",
                                "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8}]
    else:
        spec["graders"] = [{"type": "score_model", "name": "rubric", "model": options.judge,
                            "input": [{"role": "system", "content": JUDGE_SYSTEM},
                                      {"role": "user", "content": JUDGE_USER}],
                            "range": [0, 1], "pass_threshold": 0.5}]
    return spec


def _unique_id(record: LogRecord, redacted_id: str | None, used: set[str]) -> str:
    candidate = record.id
    if candidate is not None and redacted_id != candidate:
        candidate = None  # an id that carries personal data is not kept
    candidate = candidate or f"log-{record.line}"
    if candidate in used:
        candidate = f"{candidate}-L{record.line}"
    used.add(candidate)
    return candidate


def ingest(logs: Path, out_dir: Path, options: IngestOptions | None = None,
           store_path: Path | None = None, progress: Any = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also written to ``ingest.json``).

    Stages, in order (nothing is written until every check has passed): read and check the logs
    and feedback (``_read``), redact every record in memory (``_redact``), dedup and pick per
    theme (``_select``), build the eval rows (``_build_rows``), write the evals (``_write``)
    and, with a store, the logged answers as runs. ``progress``: a
    :class:`~posttrain.usage.progress.StageProgress` (stderr) told of each stage.
    """
    options = options or IngestOptions()
    if options.grader not in ("similarity", "string"):
        raise UserError("must be similarity or string", field="--grader")
    read = _read(Path(logs), options, progress)
    # what the themes need, after the logs are read (their problems first) and before the
    # redaction and anything written
    from posttrain.usage.themes import require_packages

    require_packages(options.embed)
    redactor = _redact(read.records, options, progress)
    selection = _select(read.records, options, progress)
    rows, logged, models = _build_rows(selection)
    if progress is not None:
        progress.stage("write")
    outputs = _write(Path(out_dir), rows, options)
    runs = []
    if store_path is not None:
        if progress is not None:
            progress.stage("record logged answers")
        runs = _record_logged_runs(store_path, outputs, rows, logged, models)

    all_problems = read.problems + read.feedback_problems
    summary = {
        "logs": str(logs), **read.facts,
        "skipped": [p.to_dict() for p in read.problems],
        "feedback": {**read.feedback_summary,
                     "skipped": [p.to_dict() for p in read.feedback_problems]},
        "redactions": redactor.report(),
        "redaction": redactor.detection.to_dict(),
        "names_redacted": options.redact_names,
        "duplicates": {"exact": selection.dedup.exact, "near": selection.dedup.near,
                       "threshold": options.near},
        "embed": selection.embed,
        "themes": selection.themes,
        "items": {kind: len(rows[kind]) for kind in rows},
        "outputs": outputs,
        "runs": runs,
        "problems": len(all_problems),
    }
    (Path(out_dir) / "ingest.json").write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                               encoding="utf-8")
    return summary


@dataclass
class _Read:
    records: list[LogRecord]
    problems: list[Problem]
    facts: dict[str, Any]
    feedback_summary: dict[str, Any]
    feedback_problems: list[Problem]


def _read(logs: Path, options: IngestOptions, progress: Any = None) -> _Read:
    """The logs as records, with the feedback file joined on by id and rated; the lines skipped
    (and why) are kept for the summary."""
    records, problems, facts = read_logs(logs, mapping=options.mapping, fmt=options.fmt,
                                         progress=progress)
    feedback_summary: dict[str, Any] = {"rows": 0, "matched": 0, "unmatched": 0}
    feedback_problems: list[Problem] = []
    if options.feedback is not None:
        feedback, feedback_problems, total = read_feedback(Path(options.feedback))
        feedback_summary["rows"] = total
        ids = {r.id for r in records}
        for record in records:
            if record.id is not None and record.id in feedback and record.feedback is None:
                record.feedback = dict(feedback[record.id])
        feedback_summary["matched"] = sum(1 for key in feedback if key in ids)
        feedback_summary["unmatched"] = sum(1 for key in feedback if key not in ids)
    from posttrain.usage.logs import rating_label

    for record in records:
        if record.feedback is not None:
            record.feedback["rating_label"] = rating_label(record.feedback.get("rating"))
    return _Read(records, problems, facts, feedback_summary, feedback_problems)


#: records redacted in one batch (the NER model reads a batch's texts together; each record is
#: redacted on its own either way, so the batch size changes no redaction)
REDACT_BATCH = 2000


def _redact(records: list[LogRecord], options: IngestOptions, progress: Any = None) -> Redactor:
    """Redact every record in place, in memory, before anything else sees it, a batch of
    records at a time; a name found in a record redacted everywhere in it; ids made unique
    after redaction."""
    redactor = Redactor(names=options.redact_names)
    used_ids: set[str] = set()
    if progress is not None:
        progress.stage("redact (records)", len(records))
    for start in range(0, len(records), REDACT_BATCH):
        batch = records[start:start + REDACT_BATCH]
        # a trace's TRACE_ID:SPAN_ID is random hex, no personal data (it is kept unredacted in
        # the provenance): it is not read as a secret, nor counted as one
        redacted = redactor.redact_all([
            [record.messages, record.response_text, record.response_tools, record.tools,
             record.created, record.model, record.feedback,
             None if record.trace is not None and record.id == record.trace else record.id]
            for record in batch])
        for record, fields in zip(batch, redacted, strict=True):
            (record.messages, record.response_text, record.response_tools, record.tools,
             record.created, record.model, record.feedback, redacted_id) = fields
            if record.trace is not None and record.id == record.trace:
                redacted_id = record.id
            record.id = _unique_id(record, redacted_id, used_ids)
        if progress is not None:
            progress.advance(len(batch))
    return redactor


@dataclass
class _Selection:
    survivors: list[LogRecord]  # after dedup
    chosen: list[tuple[LogRecord, str, int]]  # (record, theme label, duplicates it stands for)
    dedup: Any
    embed: str
    themes: list[dict[str, Any]]


def _select(records: list[LogRecord], options: IngestOptions,
            progress: Any = None) -> _Selection:
    """Dedup (preferring rows with feedback), group by theme, keep ``per_theme`` of each."""
    order = sorted(range(len(records)), key=lambda i: (_priority(records[i]), i))
    if progress is not None:
        progress.stage("dedup (records)", len(order))
    result = dedup([_dedup_text(records[i]) for i in order], threshold=options.near,
                   progress=progress)
    kept = sorted(order[i] for i in result.keep)
    duplicates_of: Counter[int] = Counter(order[kept_i] for kept_i, _ in result.dropped.values())
    survivors = [records[i] for i in kept]

    if progress is not None:
        progress.stage(f"themes ({options.embed})", None)
    themes = find_themes([_theme_text(r) for r in survivors], k=options.themes,
                         embed=options.embed, seed=options.seed)
    by_theme: dict[int, list[int]] = {}
    for position, theme in enumerate(themes.assignment):
        by_theme.setdefault(theme, []).append(position)
    chosen: set[int] = set()
    rng = random.Random(options.seed)
    theme_summary = []
    for theme, members in sorted(by_theme.items()):
        picked = members
        if options.per_theme and len(members) > options.per_theme:
            shuffled = members[:]
            rng.shuffle(shuffled)
            shuffled.sort(key=lambda p: _priority(survivors[p]))
            picked = sorted(shuffled[:options.per_theme])
        chosen.update(picked)
        theme_summary.append({"label": themes.labels[theme], "size": len(members),
                              "kept": len(picked)})
    picked_records = [(record, themes.labels[themes.assignment[position]],
                       duplicates_of.get(kept[position], 0))
                      for position, record in enumerate(survivors) if position in chosen]
    return _Selection(survivors, picked_records, result, themes.method, theme_summary)


def _build_rows(selection: _Selection) -> tuple[dict[str, list[dict[str, Any]]],
                                                dict[str, list[LogRecord]],
                                                dict[str, Counter[str]]]:
    """The chosen records as eval rows by kind (reference, rubric, tools), with the logged
    record and the model counts of each kind."""
    rows: dict[str, list[dict[str, Any]]] = {"reference": [], "rubric": [], "tools": []}
    models: dict[str, Counter[str]] = {kind: Counter() for kind in rows}
    logged: dict[str, list[LogRecord]] = {kind: [] for kind in rows}
    for record, theme, duplicates in selection.chosen:
        kind, row = _item_row(record, record.id or "", theme, duplicates)
        rows[kind].append(row)
        logged[kind].append(record)
        models[kind][record.model or "unknown"] += 1
    return rows, logged, models


def _write(out_dir: Path, rows: dict[str, list[dict[str, Any]]],
           options: IngestOptions) -> list[dict[str, Any]]:
    """Each kind's dataset and eval file into ``out_dir``; what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = options.name or out_dir.resolve().name or "ingested"
    outputs = []
    for kind, dataset_name, eval_name, suffix in (
            ("reference", "dataset.jsonl", "eval.yaml", ""),
            ("rubric", "rubric.jsonl", "rubric.eval.yaml", "-rubric"),
            ("tools", "tools.jsonl", "tools.eval.yaml", "-tools")):
        if not rows[kind]:
            continue
        has_tools = any("tools" in row for row in rows[kind])
        with (out_dir / dataset_name).open("w", encoding="utf-8") as handle:
            for row in rows[kind]:
                if has_tools:
                    row.setdefault("tools", [])
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        spec = _eval_spec(name + suffix, kind, dataset_name, options, has_tools)
        (out_dir / eval_name).write_text(yaml.safe_dump(spec, sort_keys=False, width=100),
                                         encoding="utf-8")
        outputs.append({"kind": kind, "eval": str(out_dir / eval_name),
                        "dataset": str(out_dir / dataset_name), "items": len(rows[kind])})
    return outputs


def _record_logged_runs(store_path: Path, outputs: list[dict[str, Any]],
                        rows: dict[str, list[dict[str, Any]]],
                        logged: dict[str, list[LogRecord]],
                        models: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    """The production answers as a run per eval (already redacted), for side-by-side review."""
    import hashlib

    from posttrain.eval import make_items
    from posttrain.runner.store import Store
    from posttrain.types import Completion

    runs = []
    with Store(store_path) as store:
        for output in outputs:
            kind = output["kind"]
            items = make_items([(i + 1, row) for i, row in enumerate(rows[kind])],
                               tag_fields=["theme"])
            digest = hashlib.sha256(Path(output["dataset"]).read_bytes()).hexdigest()[:16]
            spec = yaml.safe_load(Path(output["eval"]).read_text(encoding="utf-8"))
            # one run per logged model: an answer is never recorded under another model's name
            by_model: dict[str, list[tuple[Any, LogRecord]]] = {}
            for item, record in zip(items, logged[kind], strict=True):
                by_model.setdefault(record.model or "unknown", []).append((item, record))
            for name, _ in models[kind].most_common():
                pairs = by_model.get(name)
                if not pairs:
                    continue
                model = "logged:" + name
                key = f"ingest:{digest}" if len(by_model) == 1 else f"ingest:{digest}:{name}"
                run = store.create_run(
                    run_key=key, eval_name=spec["name"],
                    eval_path=str(Path(output["eval"]).resolve()), eval_hash=digest,
                    model=model, variant="default", epochs=1, config={"source": "ingest"},
                    items=[item for item, _ in pairs])
                for item, record in pairs:
                    store.record_sample(run.id, item.id, 0, completion=Completion(
                        text=record.response_text, tool_calls=record.response_tools),
                        request_key=None, attempts=1)
                store.finish_run(run.id)
                entry = {"run": run.id, "eval": spec["name"], "model": model,
                         "items": len(pairs), "graded": False}
                if kind != "rubric":  # production answers against the references (no judge)
                    from posttrain.runner.regrade import regrade_run

                    try:
                        regrade_run(store, run.id)
                        entry["graded"] = True
                    except UserError as exc:
                        entry["not_graded"] = str(exc)
                runs.append(entry)
    return runs

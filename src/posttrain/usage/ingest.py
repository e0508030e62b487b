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
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import UserError
from posttrain.usage.logs import LogRecord, Problem, read_feedback, text_of
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
    """The conversation compared for duplicates: every message but the system prompt (that is
    :func:`_dedup_context`, which must be equal for two records to be duplicates at all)."""
    return _prompt_text([m for m in record.messages if m.get("role") != "system"])


def _dedup_context(record: LogRecord) -> str:
    """What makes two alike conversations different items: the system prompts and the tools
    offered. The same question under Acme's and Globex's system prompt is asked twice; a long
    shared system prompt must not make two different questions near duplicates."""
    system = [_prompt_text([m]) for m in record.messages if m.get("role") == "system"]
    return json.dumps([system, record.tools or []], sort_keys=True, default=str)


def _theme_text(record: LogRecord) -> str:
    users = [text_of(m.get("content")) for m in record.messages if m.get("role") == "user"]
    return users[-1] if users else _dedup_text(record)


def _has_correction(feedback: dict[str, Any]) -> bool:
    """A correction was given: any value but null and blank text (``0`` and ``false`` are
    corrections: the right answer to "how many..." or "is it...")."""
    correction = feedback.get("correction")
    return correction is not None and not (isinstance(correction, str)
                                           and not correction.strip())


def _correction_key(record: LogRecord) -> str | None:
    """The record's correction as JSON text (to tell two duplicates' corrections apart), None
    without one."""
    feedback = record.feedback or {}
    if not _has_correction(feedback):
        return None
    return json.dumps(feedback["correction"], sort_keys=True, default=str)


def _priority(record: LogRecord) -> int:
    feedback = record.feedback or {}
    if _has_correction(feedback):
        return 0
    if feedback.get("rating_label") == "negative":
        return 1
    if feedback:
        return 2
    return 3


def _item_row(record: LogRecord, item_id: str, theme: str, duplicates: int,
              conflicting: int = 0) -> tuple[str, dict[str, Any]]:
    """The item a record becomes: (its kind, its row). ``duplicates``: records dropped as its
    duplicates; ``conflicting``: how many of them carried another correction (the item keeps
    its own: in the provenance, so a reviewer can look)."""
    feedback = record.feedback or {}
    label = feedback.get("rating_label")
    row: dict[str, Any] = {"id": item_id, "messages": record.messages}
    if record.tools:
        row["tools"] = record.tools
    row["theme"] = theme
    if record.response_tools:  # the logged answer's calls, redacted like the rest
        row["reference_tool_calls"] = record.response_tools
    correction = feedback.get("correction")
    if _has_correction(feedback):
        kind, source = "reference", "correction"
        row["reference"] = (json.dumps(correction) if isinstance(correction, (dict, list, bool))
                            else str(correction))
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
        **({"conflicting_corrections": conflicting} if conflicting else {}),
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


#: the longest log id kept as an item's id (a longer one, a pasted text, becomes log-LINE)
MAX_ID = 200


def _unique_id(record: LogRecord, redacted_id: str | None, used: set[str]) -> str:
    candidate = record.id
    if candidate is not None and (redacted_id != candidate or len(candidate) > MAX_ID):
        candidate = None  # an id that carries personal data (or is a whole text) is not kept
    candidate = candidate or f"log-{record.line}"
    if candidate in used:
        candidate = f"{candidate}-L{record.line}"
    used.add(candidate)
    return candidate


def ingest(logs: Path, out_dir: Path, options: IngestOptions | None = None,
           store_path: Path | None = None, progress: Any = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also written to ``ingest.json``).

    Stages, in order (nothing is written to ``out_dir`` until every check has passed): read
    and check the logs and feedback and redact each record as it is read, a batch at a time
    (``_read_redacted``: redacted records go to a temporary spill file, not memory), dedup in
    priority order and pick per theme (``_select``: from the spill's dedup and theme texts),
    build and write the eval rows a record at a time (``_write``) and, with a store, the
    logged answers as runs. Memory holds a batch of records, the dedup index's cache and the
    survivors' theme texts, not every record. ``progress``: a
    :class:`~posttrain.usage.progress.StageProgress` (stderr) told of each stage.
    """
    from posttrain.usage.spill import Spill

    options = options or IngestOptions()
    if options.grader not in ("similarity", "string"):
        raise UserError("must be similarity or string", field="--grader")
    earlier = (Path(out_dir) / "ingest.json").is_file()  # the folder an earlier ingest wrote
    with Spill() as spill:
        read, redactor = _read_redacted(Path(logs), options, spill, progress)
        selection = _select(spill, options, progress)
        if progress is not None:
            progress.stage("write")
        outputs, counts, rows, logged, models = _write(Path(out_dir), spill, selection, options,
                                                       keep=store_path is not None)
    removed = _remove_stale(Path(out_dir), outputs) if earlier else []
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
        "duplicates": {"exact": selection.exact, "near": selection.near,
                       "threshold": options.near,
                       "conflicting_corrections": sum(selection.conflicts.values())},
        "embed": selection.embed,
        "themes": selection.themes,
        "items": counts,
        "outputs": outputs,
        "removed": removed,
        "runs": runs,
        "problems": len(all_problems),
    }
    (Path(out_dir) / "ingest.json").write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                               encoding="utf-8")
    return summary


#: what ingest writes per kind of item: (kind, dataset, eval file, eval name suffix)
OUTPUT_FILES = (("reference", "dataset.jsonl", "eval.yaml", ""),
                ("rubric", "rubric.jsonl", "rubric.eval.yaml", "-rubric"),
                ("tools", "tools.jsonl", "tools.eval.yaml", "-tools"))


def _remove_stale(out_dir: Path, outputs: list[dict[str, Any]]) -> list[str]:
    """Ingest into a folder an earlier ingest wrote: the files of a kind this one did not
    write (the earlier logs had rubric items, these have none) are removed, so the folder
    holds one ingest's evals, not a mix. Returns the names removed."""
    written = {Path(p).name for output in outputs for p in (output["eval"], output["dataset"])}
    removed = []
    for _kind, *names, _suffix in OUTPUT_FILES:
        for name in names:
            if name not in written and (out_dir / name).is_file():
                (out_dir / name).unlink()
                removed.append(name)
    return removed


@dataclass
class _Read:
    problems: list[Problem]
    facts: dict[str, Any]
    feedback_summary: dict[str, Any]
    feedback_problems: list[Problem]


#: records redacted in one batch (the NER model reads a batch's texts together; each record is
#: redacted on its own either way, so the batch size changes no redaction)
REDACT_BATCH = 2000


def _read_redacted(logs: Path, options: IngestOptions, spill: Any,
                   progress: Any = None) -> tuple[_Read, Redactor]:
    """The logs as records, streamed: the feedback file joined on by id and rated, each batch
    of records redacted (before anything else sees them) and put in ``spill``; the lines
    skipped (and why) are kept for the summary."""
    from posttrain.usage.logs import iter_logs, rating_label
    from posttrain.usage.themes import require_packages

    feedback: dict[str, dict[str, Any]] = {}
    feedback_summary: dict[str, Any] = {"rows": 0, "matched": 0, "unmatched": 0}
    feedback_problems: list[Problem] = []
    if options.feedback is not None:
        feedback, feedback_problems, total = read_feedback(Path(options.feedback))
        feedback_summary["rows"] = total
    problems: list[Problem] = []
    facts: dict[str, Any] = {}
    expected: list[int] = []
    reading = _ReaderProgress(progress)  # the reader's bytes, until redaction shows records
    records = iter_logs(logs, problems, facts, mapping=options.mapping, fmt=options.fmt,
                        progress=reading if progress is not None else None, expected=expected)
    matched: dict[str, tuple[int, list[str]]] = {}  # id -> (its record's spill index, keys)
    lines_of: dict[str, list[int]] = {}  # id -> the log lines that carry it (feedback ids)
    redactor = Redactor(names=options.redact_names)
    used_ids: set[str] = set()
    batch: list[LogRecord] = []
    checked = False

    def flush() -> None:
        _redact_batch(batch, redactor, used_ids)
        spill.add(batch)
        if progress is not None:
            progress.advance(len(batch))
        batch.clear()

    for record in records:
        if not checked:  # what the themes need, once the logs read (their errors first)
            require_packages(options.embed)
            checked = True
            if progress is not None:
                reading.active = False
                progress.stage("redact (records)", expected[0] if expected else None)
        if record.id is not None and record.id in feedback:
            lines_of.setdefault(record.id, []).append(record.line)
            if record.id not in matched:  # a second line with this id: undone below
                matched[record.id] = (len(spill) + len(batch), _join_feedback(
                    record, feedback[record.id], feedback_problems, str(options.feedback)))
        if record.feedback is not None:
            record.feedback["rating_label"] = rating_label(record.feedback.get("rating"))
        batch.append(record)
        if len(batch) >= REDACT_BATCH:
            flush()
    if not checked:
        require_packages(options.embed)
        if progress is not None:
            progress.stage("redact (records)", 0)
    if batch:
        flush()
    ambiguous = {key: lines for key, lines in lines_of.items() if len(lines) > 1}
    for key, lines in ambiguous.items():
        # which of the lines the feedback is about cannot be known: it is joined to none
        index, joined = matched.pop(key)
        spill.forget_feedback(index, joined)
        shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
        feedback_problems.append(Problem(
            feedback[key]["line"], f"its id is on {len(lines)} log lines ({shown}): joined to "
            "none of them", str(options.feedback)))
    if options.feedback is not None:
        feedback_summary["matched"] = len(matched)
        feedback_summary["ambiguous"] = len(ambiguous)
        feedback_summary["unmatched"] = len(feedback) - len(matched) - len(ambiguous)
    return _Read(problems, facts, feedback_summary, feedback_problems), redactor


def _join_feedback(record: LogRecord, row: dict[str, Any], problems: list[Problem],
                   path: str) -> list[str]:
    """Join a feedback file's row to its log record: the row's rating, comment and correction
    fill what the record's own feedback (a ``--map`` of the log's fields) leaves empty; where
    both give a value and they differ, the log's is kept and that is said. Returns the keys
    the row filled, with ``"line"`` when the record had no feedback of its own."""
    own = record.feedback or {}
    joined = dict(own)
    filled = []
    for key in ("rating", "comment", "correction"):
        value = row.get(key)
        if value is None:
            continue
        if own.get(key) is None:
            joined[key] = value
            filled.append(key)
        elif own[key] != value:
            problems.append(Problem(row["line"], f"its {key} differs from the log line's own "
                                    f"(line {record.line}): the log's is kept", path))
    if record.feedback is None:
        joined["line"] = row["line"]
        filled.append("line")
    record.feedback = joined
    return filled


class _ReaderProgress:
    """The log reader's progress (its scan and read stages, in bytes) until redaction starts
    counting records in the same pass: then the reader's counts are dropped."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.active = True

    def stage(self, name: str, total: int | None = None) -> None:
        if self.active:
            self.progress.stage(name, total)

    def advance(self, count: int = 1) -> None:
        if self.active:
            self.progress.advance(count)


def _redact(records: list[LogRecord], options: IngestOptions, progress: Any = None) -> Redactor:
    """Redact every record in place, in memory, a batch of records at a time (what
    ``_read_redacted`` does to each batch as it is read)."""
    redactor = Redactor(names=options.redact_names)
    used_ids: set[str] = set()
    if progress is not None:
        progress.stage("redact (records)", len(records))
    for start in range(0, len(records), REDACT_BATCH):
        batch = records[start:start + REDACT_BATCH]
        _redact_batch(batch, redactor, used_ids)
        if progress is not None:
            progress.advance(len(batch))
    return redactor


def _redact_batch(batch: list[LogRecord], redactor: Redactor, used_ids: set[str]) -> None:
    """Redact the records in place; a name found in a record redacted everywhere in it; ids
    made unique after redaction."""
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


@dataclass
class _Selection:
    chosen: dict[int, tuple[str, int]]  # spill index -> (theme label, duplicates it stands for)
    conflicts: dict[int, int]  # spill index -> its duplicates that carried another correction
    exact: int
    near: int
    embed: str
    themes: list[dict[str, Any]]


def _select(spill: Any, options: IngestOptions, progress: Any = None) -> _Selection:
    """Dedup (preferring rows with feedback), group by theme, keep ``per_theme`` of each."""
    from posttrain.usage.dedup import Deduper

    if progress is not None:
        progress.stage("dedup (records)", len(spill))
    deduper = Deduper(options.near)
    # the records in priority order (feedback first); a dropped record counts for the kept one
    order = array("q")
    kept_positions: list[int] = []
    duplicates_of: Counter[int] = Counter()
    conflicts: Counter[int] = Counter()
    corrections: dict[int, str] = {}  # kept position -> its correction (only those with one)
    exact = near = 0
    try:
        for position, (index, text, context, correction) in enumerate(spill.dedup_texts()):
            if progress is not None:
                progress.advance()
            order.append(index)
            found = deduper.add(position, text, context)
            if found is None:
                kept_positions.append(position)
                if correction is not None:
                    corrections[position] = correction
            else:
                duplicates_of[order[found[0]]] += 1
                if correction is not None and corrections.get(found[0]) != correction:
                    conflicts[order[found[0]]] += 1
                exact += found[1] == "exact"
                near += found[1] == "near"
    finally:
        deduper.close()
    kept = sorted(order[p] for p in kept_positions)
    del order, kept_positions

    if progress is not None:
        progress.stage(f"themes ({options.embed})", None)
    themes = find_themes(spill.theme_texts(kept), k=options.themes, embed=options.embed,
                         seed=options.seed)
    by_theme: dict[int, list[int]] = {}
    for position, theme in enumerate(themes.assignment):
        by_theme.setdefault(theme, []).append(position)
    priorities = spill.priorities(kept) if options.per_theme else None
    chosen: set[int] = set()
    rng = random.Random(options.seed)
    theme_summary = []
    for theme, members in sorted(by_theme.items()):
        picked = members
        if options.per_theme and len(members) > options.per_theme:
            assert priorities is not None
            shuffled = members[:]
            rng.shuffle(shuffled)
            shuffled.sort(key=lambda p: priorities[p])
            picked = sorted(shuffled[:options.per_theme])
        chosen.update(picked)
        theme_summary.append({"label": themes.labels[theme], "size": len(members),
                              "kept": len(picked)})
    picked_records = {kept[position]: (themes.labels[themes.assignment[position]],
                                       duplicates_of.get(kept[position], 0))
                      for position in sorted(chosen)}
    return _Selection(picked_records, dict(conflicts), exact, near, themes.method, theme_summary)


def _write(out_dir: Path, spill: Any, selection: _Selection, options: IngestOptions, *,
           keep: bool = False) -> tuple[list[dict[str, Any]], dict[str, int],
                                        dict[str, list[dict[str, Any]]],
                                        dict[str, list[LogRecord]], dict[str, Counter[str]]]:
    """Each kind's dataset and eval file into ``out_dir``, the chosen records read back from
    the spill one at a time: what was written, the items per kind and (``keep``: for the
    store) the rows and logged records of each kind and the model counts."""
    kinds = OUTPUT_FILES
    counts = {kind: 0 for kind, *_ in kinds}
    has_tools = {kind: False for kind, *_ in kinds}
    for record in spill.records(selection.chosen):  # first: which kinds carry tools
        kind, row = _item_row(record, "", "", 0)
        counts[kind] += 1
        has_tools[kind] = has_tools[kind] or "tools" in row
    out_dir.mkdir(parents=True, exist_ok=True)
    name = options.name or out_dir.resolve().name or "ingested"
    handles = {kind: (out_dir / dataset_name).open("w", encoding="utf-8")
               for kind, dataset_name, *_ in kinds if counts[kind]}
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind, *_ in kinds}
    logged: dict[str, list[LogRecord]] = {kind: [] for kind, *_ in kinds}
    models: dict[str, Counter[str]] = {kind: Counter() for kind, *_ in kinds}
    try:
        for index, record in zip(selection.chosen, spill.records(selection.chosen),
                                 strict=True):
            theme, duplicates = selection.chosen[index]
            kind, row = _item_row(record, record.id or "", theme, duplicates,
                                  selection.conflicts.get(index, 0))
            if has_tools[kind]:
                row.setdefault("tools", [])
            handles[kind].write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            models[kind][record.model or "unknown"] += 1
            if keep:
                rows[kind].append(row)
                logged[kind].append(record)
    finally:
        for handle in handles.values():
            handle.close()
    outputs = []
    for kind, dataset_name, eval_name, suffix in kinds:
        if not counts[kind]:
            continue
        spec = _eval_spec(name + suffix, kind, dataset_name, options, has_tools[kind])
        (out_dir / eval_name).write_text(yaml.safe_dump(spec, sort_keys=False, width=100),
                                         encoding="utf-8")
        outputs.append({"kind": kind, "eval": str(out_dir / eval_name),
                        "dataset": str(out_dir / dataset_name), "items": counts[kind]})
    return outputs, counts, rows, logged, models


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
            spec_text = Path(output["eval"]).read_text(encoding="utf-8")
            digest = hashlib.sha256(Path(output["dataset"]).read_bytes()
                                    + b"\0" + spec_text.encode()).hexdigest()[:16]
            spec = yaml.safe_load(spec_text)
            # one run per logged model: an answer is never recorded under another model's name
            by_model: dict[str, list[tuple[Any, LogRecord]]] = {}
            for item, record in zip(items, logged[kind], strict=True):
                by_model.setdefault(record.model or "unknown", []).append((item, record))
            for name, _ in models[kind].most_common():
                pairs = by_model.get(name)
                if not pairs:
                    continue
                model = "logged:" + name
                # the answers recorded are part of the key: a corrected item's row holds the
                # correction, not the logged answer, so the dataset alone does not say them
                answers = hashlib.sha256()
                for item, record in pairs:
                    answers.update(json.dumps([item.id, record.response_text,
                                               record.response_tools], default=str).encode(
                        errors="surrogatepass") + b"\n")
                key = f"ingest:{digest}:{answers.hexdigest()[:16]}"
                if len(by_model) > 1:
                    key += f":{name}"
                # the same items, eval and answers ingested again: the run is here, not twice
                found = store.conn.execute(
                    "SELECT id FROM runs WHERE run_key = ? AND model = ? AND status = 'finished' "
                    "ORDER BY created DESC LIMIT 1", (key, model)).fetchone()
                if found is not None:
                    runs.append({"run": found[0], "eval": spec["name"], "model": model,
                                 "items": len(pairs), "graded": None, "already_recorded": True})
                    continue
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

"""Inspect AI logs (``.eval`` and ``.json``) -> stored runs, and stored runs -> an Inspect log.

``import_inspect_logs`` stores each log (one task x one model) as a run with no requests: every
sample and epoch with its answer, token usage, error, and one grade per scorer. Inspect's score
values are read as Inspect's own ``value_to_float`` reads them (``C`` 1, ``P`` 0.5, ``I`` and
``N`` 0, ``yes``/``true`` 1, ``no``/``false`` 0, numbers as numbers); a dict value (one scorer,
several scores) is one grade per key, ``SCORER/KEY``. A value posttrain cannot read as a share
in [0, 1] (``7`` on a 1-10 scale, text) is *unscored* with its reason and a warning, never a
silent 0 or a clipped 1; the raw Inspect scores stay with the answer and go back out on export.
The run's score is its first scorer's (Inspect's headline); the others are components.

Reading streams: the header with ``inspect_ai.log.read_eval_log(header_only=True)``, then one
sample at a time as Inspect's own ``EvalSample`` model, from the ``.eval`` archive's
``samples/ID_epoch_N.json`` members or the ``.json`` log's ``samples`` array (ijson, which
inspect-ai depends on). Inspect's ``read_eval_log_samples`` re-opens the archive for every
sample (30 ms each: five minutes for 10,000 samples) and its ``.json`` reader holds the whole
log in memory; reading the members directly takes about a second for 10,000 samples
(``bench/RESULTS.md``).

``export_inspect_log`` writes a stored run as an Inspect log with ``write_eval_log``, which
``read_eval_log`` reads back and ``inspect view`` opens. An imported run goes back with its
original spec, scores and results; a run posttrain made carries posttrain's grades (an
unscored grade is 0, as in posttrain's headline, with the reason in the score's metadata) and
posttrain's per-grader means as its metrics.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

EXTRA = "inspect"
#: Inspect provider prefixes that are posttrain providers of the same name
_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "hf": "hf", "vllm": "vllm"}
_STOP_IN = {"stop": "stop", "max_tokens": "length", "model_length": "length",
            "tool_calls": "tool_calls", "content_filter": "content_filter"}
_STOP_OUT = {"stop": "stop", "length": "max_tokens", "tool_calls": "tool_calls",
             "content_filter": "content_filter"}
_BATCH = 500


def require_inspect() -> None:
    from posttrain.models.checks import require_extra

    require_extra("reading and writing Inspect logs", "inspect_ai", extra=EXTRA)


@dataclass
class ImportReport:
    """One log's import: where it is stored and Inspect's numbers beside posttrain's."""

    file: str
    run_id: str
    new: bool
    task: str
    model: str
    inspect_model: str
    status: str
    samples: int = 0
    items: int = 0
    never_started: int = 0  # samples the log lists but never ran (a cancelled log): count 0
    epochs: int = 1
    scorers: list[str] = field(default_factory=list)
    inspect_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---- values ------------------------------------------------------------------------------
def model_spec(inspect_model: str) -> str:
    """``openai/gpt-4o`` -> ``openai:gpt-4o``; a provider posttrain does not have keeps
    Inspect's name under ``inspect:`` (a label, not a spec posttrain can run)."""
    provider, _, name = inspect_model.partition("/")
    if name and provider in _PROVIDERS:
        return f"{_PROVIDERS[provider]}:{name}"
    return f"inspect:{inspect_model}"


def inspect_model_name(spec: str) -> str:
    """``openai:gpt-4o`` -> ``openai/gpt-4o`` (and ``inspect:X`` -> ``X``)."""
    provider, _, name = spec.partition(":")
    if provider == "inspect":
        return name
    return f"{provider}/{name}" if name else spec


def score_value(value: Any) -> tuple[float | None, str]:
    """An Inspect scalar score value as a share in [0, 1] the way Inspect's default
    ``value_to_float`` reads it; (None, reason) when it is not one."""
    if isinstance(value, str):
        text = value.strip()
        mapped = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}.get(text)
        if mapped is None:
            mapped = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}.get(text.lower())
        if mapped is None:
            try:
                mapped = float(text)
            except ValueError:
                return None, f"inspect value {value!r} is not a score (C, I, P, N, yes/no, " \
                             "true/false or a number)"
        value = mapped
    if isinstance(value, bool):
        return float(value), ""
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            return None, f"inspect value {value!r} is outside [0, 1] (posttrain's scores are " \
                         "shares; the raw value stays with the answer)"
        return number, ""
    if value is None:
        return None, "inspect value is null"
    return None, f"inspect value of type {type(value).__name__} is not a score"


def _grades(name: str, score: Any, out: list[Any], odd: dict[str, str]) -> None:
    from posttrain.types import Score

    value = score.value
    parts = list(value.items()) if isinstance(value, dict) else [(None, value)]
    for key, raw in parts:
        grader = name if key is None else f"{name}/{key}"
        number, why = score_value(raw)
        explanation = score.explanation or ""
        if score.answer is not None:
            explanation = f"answer: {score.answer}" + (f"; {explanation}" if explanation else "")
        status = (score.metadata or {}).get("posttrain_status")
        if status in ("unscored", "error"):  # posttrain's own export: 0 stands for unscored
            out.append(Score(value=None, passed=None, status=status, name=grader,
                             explanation=explanation))
        elif number is None:
            odd.setdefault(grader, why)
            out.append(Score(value=None, passed=None, status="unscored", name=grader,
                             explanation=why + (f" ({explanation})" if explanation else "")))
        else:
            out.append(Score(value=number, passed=number == 1.0, name=grader,
                             explanation=explanation))


def _content_in(content: Any, reasoning: list[str], skipped: set[str]) -> Any:
    """Inspect message content -> chat-completions content (reasoning split off)."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = getattr(part, "type", None)
        if kind == "text":
            parts.append({"type": "text", "text": part.text})
        elif kind == "reasoning":
            if not getattr(part, "redacted", False):
                reasoning.append(part.reasoning)
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": part.image}})
        else:
            skipped.add(str(kind))
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool_calls_in(calls: Any) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function",
             "function": {"name": c.function, "arguments": json.dumps(c.arguments)}}
            for c in calls or []]


def messages_in(messages: Any, skipped: set[str]) -> list[dict[str, Any]]:
    """Inspect ``ChatMessage`` objects -> chat-completions messages."""
    out = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role, "content": _content_in(m.content, [], skipped)}
        if m.role == "assistant" and m.tool_calls:
            entry["tool_calls"] = _tool_calls_in(m.tool_calls)
        if m.role == "tool":
            entry["tool_call_id"] = m.tool_call_id
        out.append(entry)
    return out


def _completion(sample: Any, spec: Any, skipped: set[str]) -> Any:
    from posttrain.types import Completion

    output = sample.output
    choice = output.choices[0] if output.choices else None
    reasoning: list[str] = []
    text = ""
    calls: list[dict[str, Any]] = []
    if choice is not None:
        content = _content_in(choice.message.content, reasoning, skipped)
        text = content if isinstance(content, str) else \
            "".join(p.get("text", "") for p in content)
        calls = _tool_calls_in(choice.message.tool_calls)
    usage = sample.model_usage.get(spec.model) or output.usage
    assistant_turns = sum(1 for m in sample.messages if m.role == "assistant")
    transcript = messages_in(sample.messages, skipped) if assistant_turns > 1 or any(
        m.role == "tool" for m in sample.messages) else None
    meta: dict[str, Any] = {"inspect": {
        "id": sample.id, "uuid": sample.uuid, "total_time": sample.total_time,
        "working_time": sample.working_time,
        "scores": {k: v.model_dump(mode="json", exclude_none=True)
                   for k, v in (sample.scores or {}).items()}}}
    return Completion(
        text=text, tool_calls=calls,
        finish_reason=_STOP_IN.get(choice.stop_reason) if choice is not None else None,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cached_input_tokens=(usage.input_tokens_cache_read or 0) if usage else 0,
        cache_write_tokens=(usage.input_tokens_cache_write or 0) if usage else 0,
        reasoning_tokens=(usage.reasoning_tokens or 0) if usage else 0,
        cost_usd=(usage.total_cost or 0.0) if usage else 0.0,
        # one model call: its time is the answer's latency; an agent's turns have none
        latency_s=(output.time or 0.0) if assistant_turns <= 1 else 0.0,
        served_model=output.model or None, transcript=transcript, meta=meta,
        reasoning="\n".join(reasoning) or None)


def _item_data(sample: Any, skipped: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if isinstance(sample.input, str):
        data["input"] = sample.input
    else:
        data["messages"] = messages_in(sample.input, skipped)
    data["target"] = sample.target
    if sample.choices:
        data["choices"] = sample.choices
    if sample.metadata:
        data["metadata"] = sample.metadata
    return data


# ---- reading -----------------------------------------------------------------------------
def _validation_error(exc: Exception, path: Path, where: str = "") -> UserError:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return UserError(f"not a valid Inspect log: {first.get('msg')}", file=path,
                         field=(f"{where}.{loc}" if where and loc else where or loc or None))
    text = str(exc).strip().splitlines()
    return UserError(f"not an Inspect log ({text[0] if text else type(exc).__name__})",
                     file=path, field=where or None)


def read_header(path: Path) -> Any:
    from inspect_ai.log import read_eval_log

    try:
        return read_eval_log(str(path), header_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure is the file's: one line naming it
        raise _validation_error(exc, path) from None


def iter_samples(path: Path, header: Any) -> Iterator[Any]:
    """The log's samples one at a time (see the module docstring)."""
    from inspect_ai.log import EvalSample

    if path.suffix == ".eval":
        import zipfile

        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise UserError("not an Inspect .eval log (not a zip archive)", file=path) from None
        with archive:
            members: dict[str, Any] = {}
            for info in archive.infolist():  # a sample written twice: the last entry wins
                if info.filename.startswith("samples/") and info.filename.endswith(".json"):
                    members[info.filename] = info
            order = _member_order(header, members)
            for name in order:
                try:
                    yield EvalSample.model_validate_json(archive.read(members[name]))
                except Exception as exc:  # noqa: BLE001
                    raise _validation_error(exc, path, name) from None
        return
    try:  # inspect-ai's choice of ijson backend (the C one where it is built)
        from inspect_ai._util.json import get_ijson_backend

        ijson = get_ijson_backend()
    except ImportError:  # a later inspect-ai that moved it: ijson itself, which it depends on
        import ijson
    with path.open("rb") as handle:
        try:
            for index, data in enumerate(ijson.items(handle, "samples.item", use_float=True)):
                try:
                    yield EvalSample.model_validate(data)
                except Exception as exc:  # noqa: BLE001
                    raise _validation_error(exc, path, f"samples[{index}]") from None
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - broken JSON
            raise UserError(f"not valid JSON ({str(exc).splitlines()[0]})", file=path) from None


def _member_order(header: Any, members: dict[str, Any]) -> list[str]:
    """Members in the dataset's order (sample ids x epochs), then any others."""
    ids = header.eval.dataset.sample_ids or []
    epochs = header.eval.config.epochs or 1
    ordered = [f"samples/{i}_epoch_{e}.json" for i in ids for e in range(1, epochs + 1)]
    ordered = [name for name in ordered if name in members]
    seen = set(ordered)
    return ordered + [name for name in members if name not in seen]


def log_files(paths: list[str | Path]) -> list[Path]:
    """Log files from files and folders (``*.eval``, and ``*.json`` Inspect logs; a folder's
    ``logs.json`` listing is not a log)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and (
                p.suffix == ".eval" or (p.suffix == ".json" and p.name not in
                                        ("logs.json", "listing.json"))))
            if not found:
                raise UserError("no Inspect logs (*.eval, *.json) in this folder", file=path)
            files.extend(found)
        elif path.is_file():
            if path.suffix not in (".eval", ".json"):
                raise UserError("an Inspect log is a .eval or .json file", file=path)
            files.append(path)
        else:
            raise UserError("no such file or folder", file=path)
    return files


# ---- import ------------------------------------------------------------------------------
def _headline(header: Any) -> dict[str, dict[str, float]]:
    metrics: dict[str, dict[str, float]] = {}
    for score in (header.results.scores if header.results else []) or []:
        metrics[score.name] = {name: m.value for name, m in score.metrics.items()
                               if isinstance(m.value, (int, float))}
    return metrics


def _attempts(sample: Any) -> tuple[int, tuple[int, int, float]]:
    """How many tries a sample took, and what its failed earlier tries spent (input tokens,
    output tokens, USD). Inspect keeps each failed whole-sample try of ``--retry-on-error`` in
    ``error_retries`` (an ``EvalRetryError``: the error and that try's events) and a model
    call's HTTP retries in its ``ModelEvent.retries``; the spend is the usage of the failed
    tries' model events. 1 try when nothing is recorded."""
    earlier = list(getattr(sample, "error_retries", None) or [])
    tries = 1 + len(earlier)
    tokens_in = tokens_out = 0
    cost = 0.0
    for events, failed in [(sample.events or [], False)] + \
            [(getattr(e, "events", None) or [], True) for e in earlier]:
        for event in events:
            if getattr(event, "event", None) != "model":
                continue
            tries += getattr(event, "retries", 0) or 0
            usage = getattr(getattr(event, "output", None), "usage", None)
            if failed and usage is not None:
                tokens_in += usage.input_tokens
                tokens_out += usage.output_tokens
                cost += usage.total_cost or 0.0
    return tries, (tokens_in, tokens_out, cost)


def _eval_hash(spec: Any) -> str:
    import hashlib

    material = json.dumps([spec.task, spec.task_version, spec.dataset.name,
                           spec.dataset.location, spec.dataset.sample_ids], default=str)
    return hashlib.blake2b(material.encode(), digest_size=8).hexdigest()


def _content_fingerprint(header: Any) -> str:
    """A hash of what a log says happened: its status, results (scorers and metrics), the
    sample counts and when it finished; the same eval run rescored or completed differs."""
    import hashlib

    results = header.results.model_dump(mode="json", exclude_none=True) \
        if header.results else None
    stats = header.stats
    material = json.dumps([header.status, results,
                           getattr(stats, "completed_at", None) if stats else None,
                           header.error.message if getattr(header, "error", None) else None],
                          default=str, sort_keys=True)
    return hashlib.blake2b(material.encode(), digest_size=6).hexdigest()


def _differences(before: dict[str, Any], header: Any) -> str:
    """What differs between a stored import's log (its config's ``inspect``) and ``header``."""
    out: list[str] = []
    if before.get("status") != header.status:
        out.append(f"status {before.get('status')!r} then {header.status!r}")
    old_results = before.get("results") or {}
    new_results = header.results.model_dump(mode="json", exclude_none=True) \
        if header.results else {}
    old_names = [s.get("name") for s in old_results.get("scores") or []]
    new_names = [s.get("name") for s in new_results.get("scores") or []]
    if old_names != new_names:
        out.append(f"scorers {old_names} then {new_names}")
    if old_results.get("completed_samples") != new_results.get("completed_samples"):
        out.append(f"completed samples {old_results.get('completed_samples')} then "
                   f"{new_results.get('completed_samples')}")
    if not out and old_results != new_results:
        out.append("other scores or metrics")
    return "; ".join(out) or "other timing or error"


def _ordered(header_names: list[str], seen: list[str]) -> list[str]:
    """Graders in the header's scorer order (Inspect's headline first), then the rest; a
    scorer of the header that graded no sample is left out."""
    out: list[str] = []
    for name in header_names:
        out += [g for g in seen if (g == name or g.startswith(name + "/")) and g not in out]
    return out + [g for g in seen if g not in out]


def import_inspect_log(db: Any, path: Path, notes: list[str]) -> ImportReport:
    """Store one log as a run (streaming); a log imported before is not stored twice."""
    import orjson

    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results

    header = read_header(path)
    spec = header.eval
    epochs = spec.config.epochs or 1
    base = f"inspect-import:{spec.eval_id or spec.run_id}:{spec.task_id}:{spec.model}"
    # the log's content, not only its eval_id, names the import: a rescored log or a finished
    # one after its `started` snapshot keeps the eval_id but is a different result
    fingerprint = _content_fingerprint(header)
    key = f"{base}:{fingerprint}"
    report = ImportReport(file=str(path), run_id="", new=True, task=spec.task,
                          model=model_spec(spec.model), inspect_model=spec.model,
                          status=header.status, epochs=epochs,
                          inspect_metrics=_headline(header))
    row = db.conn.execute("SELECT id FROM runs WHERE run_key = ?", (key,)).fetchone()
    if row is None:  # stored by a version that keyed on the eval_id alone: same content?
        old = db.conn.execute("SELECT id, config FROM runs WHERE run_key = ?",
                              (base,)).fetchone()
        if old is not None:
            before = json.loads(old[1] or "{}").get("inspect") or {}
            now_results = header.results.model_dump(mode="json", exclude_none=True) \
                if header.results else None
            if before.get("status") == header.status and before.get("results") == now_results:
                row = old
    if row is not None:
        report.run_id, report.new = row[0], False
        info = db.get_run(row[0])
        report.scorers = list(info.config.get("grader_names") or [])
        report.summary = summarize(load_results(db, info))
        report.items, report.samples = report.summary["n"] // max(1, epochs), \
            len(list(db.samples(info.id)))
        return report
    earlier = [r for r in db.conn.execute(
        "SELECT id, run_key, config FROM runs WHERE run_key = ? OR "
        "(substr(run_key, 1, ?) = ? AND run_key NOT LIKE '%:partial')",
        (base, len(base) + 1, base + ":")).fetchall()]
    for run_id, _, config_text in earlier:
        if run_id == (row[0] if row is not None else None):
            continue
        before = (json.loads(config_text or "{}").get("inspect") or {})
        notes.append(f"{path}: a log with the same eval_id was imported before as run "
                     f"{run_id}, with other content ({_differences(before, header)}): this "
                     "one is stored as a new run")
    if getattr(spec, "shards", None):
        notes.append(f"{path}: a sharded log: only the samples in this file are read (import "
                     "each shard file too)")
    provenance = spec.model_dump(mode="json", exclude_none=True)
    provenance.get("dataset", {}).pop("sample_ids", None)
    config = {"inspect": {"spec": provenance, "status": header.status,
                          "results": header.results.model_dump(mode="json", exclude_none=True)
                          if header.results else None,
                          "plan": header.plan.model_dump(mode="json", exclude_none=True)
                          if header.plan else None,
                          "stats": header.stats.model_dump(mode="json", exclude_none=True)
                          if header.stats else None, "file": str(path)},
              "imported": True}
    scorer_names = [s.name for s in (header.results.scores if header.results else []) or []]
    info = db.create_run(run_key=key + ":partial", eval_name=spec.task, eval_path=None,
                         eval_hash=_eval_hash(spec), model=report.model, variant="default",
                         epochs=epochs, config=config, items=[])
    graders: dict[str, None] = {}
    odd: dict[str, str] = {}
    skipped: set[str] = set()
    positions: dict[str, int] = {}
    # Inspect's sample ids are ints or strings: 1 and "1" are two samples there and one item
    # id here, so ids that meet after str() (and a repeated (id, epoch)) stop the import
    originals: dict[str, Any] = {}
    seen: set[tuple[str, int]] = set()

    def same_item(sample_id: Any) -> str:
        item_id = str(sample_id)
        before = originals.setdefault(item_id, sample_id)
        if type(before) is not type(sample_id):
            raise UserError(f"sample ids {before!r} and {sample_id!r} are two samples to "
                            f"Inspect but one item id ({item_id!r}) here: give the samples "
                            "distinct ids (the import would merge them)", file=path)
        return item_id

    item_rows: list[tuple[Any, ...]] = []
    sample_rows: list[tuple[Any, ...]] = []
    score_rows: list[tuple[Any, ...]] = []

    def flush() -> None:
        with db.conn:
            db.conn.executemany("INSERT OR IGNORE INTO run_items (run_id, item_id, position, "
                                "tags, data) VALUES (?,?,?,?,?)", item_rows)
            db.conn.executemany(
                "INSERT OR REPLACE INTO samples (run_id, item_id, epoch, status, request_key, "
                "completion, error, attempts, input_tokens, output_tokens, cost_usd, "
                "latency_s, cached, created) VALUES (?,?,?,?,NULL,?,?,?,?,?,?,?,0,?)",
                sample_rows)
            db.conn.executemany(
                "INSERT OR REPLACE INTO scores (run_id, item_id, epoch, grader, value, passed, "
                "status, explanation, sub_scores) VALUES (?,?,?,?,?,?,?,?,'{}')", score_rows)
        item_rows.clear()
        sample_rows.clear()
        score_rows.clear()

    try:
        for sample_id in getattr(spec.dataset, "sample_ids", None) or []:
            same_item(sample_id)  # before any sample is read: the dataset's ids, checked
        now = time.time()
        for sample in iter_samples(path, header):
            item_id = same_item(sample.id)
            if (item_id, sample.epoch) in seen:
                raise UserError(f"sample id {sample.id!r} epoch {sample.epoch} appears twice "
                                "in the log: which answer is right cannot be known",
                                file=path)
            seen.add((item_id, sample.epoch))
            if item_id not in positions:
                positions[item_id] = len(positions)
                tags = (sample.metadata or {}).get("posttrain_tags")  # posttrain's own export
                if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
                    tags = []
                item_rows.append((info.id, item_id, positions[item_id],
                                  orjson.dumps(tags).decode(),
                                  orjson.dumps(_item_data(sample, skipped),
                                               default=str).decode()))
            epoch = sample.epoch - 1
            grades: list[Any] = []
            for name, score in (sample.scores or {}).items():
                _grades(name, score, grades, odd)
            for grade in grades:
                graders.setdefault(grade.name, None)
                score_rows.append((info.id, item_id, epoch, grade.name, grade.value,
                                   None if grade.passed is None else int(grade.passed),
                                   grade.status, grade.explanation))
            attempts, spent = _attempts(sample)  # spent: by failed earlier tries
            if sample.error is not None:
                # what the failed sample spent is still spent: its tokens and cost count
                usage = (sample.model_usage or {}).get(spec.model) or (
                    sample.output.usage if sample.output is not None else None)
                sample_rows.append((info.id, item_id, epoch, "error", None,
                                    f"inspect: {sample.error.message}", attempts,
                                    (usage.input_tokens if usage else 0) + spent[0],
                                    (usage.output_tokens if usage else 0) + spent[1],
                                    ((usage.total_cost or 0.0) if usage else 0.0) + spent[2],
                                    None, now))
            else:
                c = _completion(sample, spec, skipped)
                sample_rows.append((info.id, item_id, epoch, "ok",
                                    orjson.dumps(c.to_record(), default=str).decode(), None,
                                    attempts, c.input_tokens + spent[0],
                                    c.output_tokens + spent[1], c.cost_usd + spent[2],
                                    c.latency_s or None, now))
            report.samples += 1
            if len(sample_rows) >= _BATCH:
                flush()
        # a cancelled or unfinished log lists samples it never started: they are items of the
        # run all the same (unanswered, so each counts 0 in the score), never left out
        for sample_id in getattr(spec.dataset, "sample_ids", None) or []:
            same_item(sample_id)
            if str(sample_id) not in positions:
                positions[str(sample_id)] = len(positions)
                report.never_started += 1
                item_rows.append((info.id, str(sample_id), positions[str(sample_id)], "[]",
                                  orjson.dumps({"inspect_sample_id": sample_id},
                                               default=str).decode()))
        flush()
    except BaseException:
        with db.conn:
            for table in ("scores", "samples", "run_items", "runs"):
                column = "id" if table == "runs" else "run_id"
                db.conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (info.id,))
        raise
    if header.status != "success" or report.never_started:
        notes.append(f"{path}: the log's status is {header.status!r}: its samples are "
                     f"imported as they are; {report.never_started} of its "
                     f"{len(positions)} samples never started and count 0 in the score, as "
                     "do missing epochs")
    names = _ordered(scorer_names, list(graders))
    for grader, why in odd.items():
        notes.append(f"{path}: scorer {grader}: some values are not scores here ({why}): those "
                     "samples are unscored")
    for kind in sorted(skipped):
        notes.append(f"{path}: message content of type {kind!r} is not carried into "
                     "posttrain's items and answers (text and images are)")
    db.update_run_config(info.id, {"grader_names": names,
                                   "primary": names[0] if names else None})
    with db.conn:
        db.conn.execute("UPDATE runs SET run_key = ? WHERE id = ?", (key, info.id))
    db.finish_run(info.id)
    report.run_id, report.items, report.scorers = info.id, len(positions), names
    report.summary = summarize(load_results(db, info.id))
    return report


def import_inspect_logs(paths: list[str | Path], store: str | Path) -> tuple[
        list[ImportReport], list[str]]:
    """Import every log under ``paths`` into ``store``; (reports, warnings)."""
    require_inspect()
    from posttrain.runner.store import Store

    files = log_files(paths)
    for path in files:  # every header is read before anything is stored
        read_header(path)
    notes: list[str] = []
    reports = []
    with Store(store) as db:
        for path in files:
            reports.append(import_inspect_log(db, path, notes))
    return reports, notes


# ---- export ------------------------------------------------------------------------------
def _content_out(content: Any) -> Any:
    from inspect_ai.model import ContentImage, ContentText

    if isinstance(content, str) or content is None:
        return content or ""
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append(ContentText(text=part["text"]))
        elif part.get("type") == "image_url":
            parts.append(ContentImage(image=part["image_url"]["url"]))
        else:
            parts.append(ContentText(text=json.dumps(part)))
    return parts


def _tool_calls_out(calls: list[dict[str, Any]] | None) -> list[Any] | None:
    from inspect_ai.tool import ToolCall

    out = []
    for call in calls or []:
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {"raw": fn.get("arguments")}
        out.append(ToolCall(id=str(call.get("id") or ""), function=str(fn.get("name")),
                            arguments=arguments if isinstance(arguments, dict) else
                            {"value": arguments}))
    return out or None


def messages_out(messages: list[dict[str, Any]]) -> list[Any]:
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageTool,
        ChatMessageUser,
    )

    out: list[Any] = []
    for m in messages:
        role, content = m.get("role"), _content_out(m.get("content"))
        if role in ("system", "developer"):
            out.append(ChatMessageSystem(content=content))
        elif role == "assistant":
            out.append(ChatMessageAssistant(content=content,
                                            tool_calls=_tool_calls_out(m.get("tool_calls"))))
        elif role == "tool":
            out.append(ChatMessageTool(content=content, tool_call_id=m.get("tool_call_id")))
        else:
            out.append(ChatMessageUser(content=content))
    return out


def _error_text(error: str | None, imported: bool) -> str:
    text = error or "request failed"
    return text.removeprefix("inspect: ") if imported else text


def _sample_id(item_id: str, meta: dict[str, Any]) -> int | str:
    original = meta.get("id")
    return original if original is not None and str(original) == item_id else item_id


def _request_messages(run: Any) -> Any:
    """A function item -> request messages from the run's eval file, when it still loads."""
    if not run.eval_path or not Path(run.eval_path).is_file():
        return None
    try:
        from posttrain.eval import load_eval

        eval_ = load_eval(run.eval_path)
    except UserError:
        return None
    if eval_.fingerprint() != run.eval_hash or run.variant not in eval_.variants:
        return None
    by_id = {item.id: item for item in eval_.items}

    def render(item_id: str) -> list[dict[str, Any]] | None:
        item = by_id.get(item_id)
        return None if item is None else eval_.request_for(item, run.variant).messages
    return render


def _nan_back(value: Any) -> Any:
    """A score value as Inspect had it: the stored answer's JSON wrote NaN as null (a value
    Inspect never holds), so null is NaN again, in a dict or list value too."""
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {k: _nan_back(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_back(v) for v in value]
    return value


def _inspect_score(score_type: Any, raw: dict[str, Any], item_id: str) -> Any:
    from pydantic import ValidationError

    try:
        return score_type.model_validate({**raw, "value": _nan_back(raw.get("value"))})
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        raise UserError(f"item {item_id}: a stored Inspect score is not one Inspect takes "
                        f"({first.get('msg', 'invalid')}: {str(raw.get('value'))[:80]})"
                        ) from None


def export_inspect_log(store: str | Path, run_ref: str, out: str | Path) -> dict[str, Any]:
    """Write the stored run ``run_ref`` as an Inspect log (``.eval`` or ``.json`` by
    ``out``'s suffix); a value Inspect's models refuse is one line, never a traceback."""
    require_inspect()
    from pydantic import ValidationError

    try:
        return _export_inspect_log(store, run_ref, out)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise UserError(f"run {run_ref}: Inspect refuses a value of this run ({exc.title}"
                        f"{'.' + where if where else ''}: {first.get('msg', 'invalid')}; "
                        f"got {str(first.get('input'))[:80]})") from None


def _export_inspect_log(store: str | Path, run_ref: str, out: str | Path) -> dict[str, Any]:
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalError,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        EvalStats,
        write_eval_log,
    )
    from inspect_ai.model import ChatCompletionChoice, ChatMessageAssistant, ModelOutput, ModelUsage
    from inspect_ai.scorer import Score as InspectScore

    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    out = Path(out).resolve()
    if out.suffix not in (".eval", ".json"):
        raise UserError("an Inspect log is written as FILE.eval or FILE.json", field="--out")
    store_path = Path(store)
    if not store_path.is_file():
        raise UserError("no such store", file=store_path.resolve())
    with Store(store_path, reading=True) as db:
        try:
            run = db.resolve_run(run_ref)
        except (KeyError, UserError) as exc:
            raise UserError(str(exc.args[0] if exc.args else exc), field="RUN") from None
        results = load_results(db, run)
        summary = summarize(results)
    imported = run.config.get("inspect") or {}
    model = imported.get("spec", {}).get("model") or inspect_model_name(run.model)
    render = None if imported else _request_messages(run)
    items = results.items_by_id
    # one Inspect id per item, whichever of its samples carries it (an errored epoch has no
    # answer to carry it): the import keeps 1 and "1" apart, so the export never mixes them
    original_ids: dict[str, int | str] = {}
    for s in results.samples:
        meta = ((s.completion or {}).get("meta") or {}).get("inspect") or {}
        if s.item_id not in original_ids and meta.get("id") is not None:
            original_ids[s.item_id] = _sample_id(s.item_id, meta)
    samples = []
    usage_total = ModelUsage()
    for s in results.samples:
        item = items.get(s.item_id)
        data = item.data if item is not None else {}
        completion = s.completion or {}
        meta = (completion.get("meta") or {}).get("inspect") or {}
        if imported:
            inp: Any = data.get("input") if "input" in data else messages_out(
                data.get("messages") or [])
            target = data.get("target", "")
        else:
            request = render(s.item_id) if render else None
            inp = messages_out(request) if request else (
                data.get("input") if isinstance(data.get("input"), str) else
                messages_out(data["messages"]) if isinstance(data.get("messages"), list)
                else json.dumps(data, ensure_ascii=False))
            target = str(data.get("target", data.get("answer", "")))
        usage = ModelUsage(input_tokens=s.input_tokens, output_tokens=s.output_tokens,
                           total_tokens=s.input_tokens + s.output_tokens,
                           input_tokens_cache_read=completion.get("cached_input_tokens") or None,
                           input_tokens_cache_write=completion.get("cache_write_tokens") or None,
                           reasoning_tokens=completion.get("reasoning_tokens") or None,
                           total_cost=s.cost_usd or None)
        usage_total = usage_total + usage
        message = ChatMessageAssistant(content=completion.get("text") or "",
                                       tool_calls=_tool_calls_out(completion.get("tool_calls")),
                                       model=completion.get("served_model") or None)
        output = ModelOutput(
            model=completion.get("served_model") or model,
            choices=[ChatCompletionChoice(message=message, stop_reason=_STOP_OUT.get(
                completion.get("finish_reason") or "", "unknown"))] if s.completion else [],
            usage=usage if s.completion else None, time=s.latency_s)
        if meta.get("scores") is not None:
            scores = {k: _inspect_score(InspectScore, v, s.item_id)
                      for k, v in meta["scores"].items()}
        else:
            scores = {}
            for name, grade in s.grades.items():
                scored = grade.status == "scored" and grade.value is not None
                scores[name] = InspectScore(
                    value=grade.value if scored else 0.0,
                    answer=(completion.get("text") or "")[:500] or None,
                    explanation=grade.explanation or None,
                    metadata={"passed": grade.passed, "posttrain_status": grade.status})
            if s.status != "error":
                # the sample's own headline value (its primary grader, or the graders' mean),
                # so that an import of this log scores it as posttrain did: 0 stands for
                # unscored, which posttrain_status says
                scored = s.status == "scored" and s.value is not None
                scores = {"posttrain": InspectScore(
                    value=s.value if scored else 0.0,
                    explanation=None if scored else (s.reason or None),
                    metadata={"passed": s.passed, "posttrain_status": s.status}), **scores}
        transcript = completion.get("transcript")
        messages = messages_out(transcript) if transcript else (
            ([*inp] if isinstance(inp, list) else messages_out([{"role": "user",
                                                                 "content": inp}]))
            + ([message] if s.completion else []))
        samples.append(EvalSample(
            id=original_ids.get(s.item_id, s.item_id), epoch=s.epoch + 1, input=inp, target=target,
            choices=data.get("choices") if imported else None,
            metadata=(data.get("metadata") or {}) if imported else {
                **data, **({"posttrain_tags": item.tags} if item is not None and item.tags
                           else {})},
            messages=messages, output=output, scores=scores or None,
            model_usage={model: usage}, uuid=meta.get("uuid"),
            total_time=meta.get("total_time"), working_time=meta.get("working_time"),
            error=EvalError(message=_error_text(s.error, bool(imported)), traceback="",
                            traceback_ansi="") if s.status == "error" else None))
    sample_ids = [original_ids.get(i.id, i.id) for i in results.items]
    first_ids = {}
    for sample in samples:
        first_ids.setdefault(str(sample.id), sample.id)
    sample_ids = [first_ids.get(str(i), i) for i in sample_ids]
    if imported:
        spec = EvalSpec.model_validate({**imported["spec"], "dataset": {
            **imported["spec"].get("dataset", {}), "sample_ids": sample_ids}})
        eval_results = EvalResults.model_validate(imported["results"]) \
            if imported.get("results") else None
        status = imported.get("status") or "success"
    else:
        created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(run.created))
        spec = EvalSpec(created=created, task=run.eval_name, task_id=run.id, run_id=run.id,
                        eval_id=run.id, model=model,
                        dataset=EvalDataset(name=run.eval_name, samples=len(results.items),
                                            sample_ids=sample_ids),
                        config=EvalConfig(epochs=run.epochs),
                        metadata={"posttrain_run": run.id, "posttrain_model": run.model,
                                  "variant": run.variant})
        metrics = {}
        for name in results.grader_names():
            entry = summary["components"].get(name) or {}
            metrics[name] = {"mean": EvalMetric(name="mean", value=entry.get("score") or 0.0)}
        scores_out = [EvalScore(name=name, scorer=name, scored_samples=summary["components"].get(
            name, {}).get("scored", 0), metrics=m) for name, m in metrics.items()]
        headline = {"mean": EvalMetric(name="mean", value=summary["score"] or 0.0)}
        if summary["ci_low"] is not None:
            headline["ci_low"] = EvalMetric(name="ci_low", value=summary["ci_low"])
            headline["ci_high"] = EvalMetric(name="ci_high", value=summary["ci_high"])
        scores_out.insert(0, EvalScore(name="posttrain", scorer="posttrain", metrics=headline,
                                       metadata={"note": "posttrain's headline: every item "
                                                 "counts, errors and unscored as 0",
                                                 "ci_method": summary["ci_method"]}))
        eval_results = EvalResults(total_samples=summary["n"],
                                   completed_samples=summary["answered"], scores=scores_out)
        status = "success" if run.status == "finished" else "started"
    if imported.get("stats"):
        stats = EvalStats.model_validate(imported["stats"])
    else:
        def iso(stamp: float | None) -> str | None:
            return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                            time.gmtime(stamp))
        stats = EvalStats(started_at=iso(run.created) or "",
                          completed_at=iso(run.finished or run.created) or "",
                          model_usage={model: usage_total})
    log = EvalLog(status=status, eval=spec, results=eval_results, stats=stats,
                  samples=samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(out), format="eval" if out.suffix == ".eval" else "json")
    return {"file": str(out), "run_id": run.id, "samples": len(samples),
            "task": spec.task, "model": model}

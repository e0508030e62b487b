"""OpenAI fine-tuning job files, run here: the body of ``POST /v1/fine_tuning/jobs``.

``load_job`` reads and checks the body and its JSONL files (SFT ``messages``, DPO ``input`` /
``preferred_output`` / ``non_preferred_output``, RFT ``messages`` plus item fields), naming
``file:line: field`` for every problem. ``run_job`` trains with TRL (``train_sft``,
``train_dpo``, ``train_rft``) and writes what OpenAI's job API would have shown:
``job.json`` (the ``fine_tuning.job`` object), ``events.jsonl`` (``fine_tuning.job.event``,
``metrics`` events with ``train_mean_reward``, ``full_valid_mean_reward`` and per-grader means)
and ``checkpoints.json`` (the top 3 by validation reward, each a model folder). For RFT every
validation step is a stored eval run of ``DIR/eval/eval.yaml`` (the validation items with the
job's grader) on that step's checkpoint, through the same runner as ``posttrain eval``: the
validation reward the job reports is that run's score, so ``posttrain eval`` of the checkpoint
on the validation items gives the same number, and the curve is ordinary ``report`` /
``compare`` material.

``"auto"`` hyperparameters, here (``AUTO``): SFT and DPO ``n_epochs`` 3, ``batch_size`` 8
(at most the number of examples), ``learning_rate_multiplier`` 1 (times 5e-5 for SFT and RFT,
5e-6 for DPO), DPO ``beta`` 0.1; RFT ``n_epochs`` 1, ``batch_size`` 4 prompts a step,
``compute_multiplier`` 1 (8 completions a prompt, times the multiplier), ``eval_interval`` a
quarter of the steps, ``eval_samples`` 1 (greedy answers, temperature 0).
``reasoning_effort`` has no meaning for a local model and is reported, not applied.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.interop._files import Notes, Source, read_json, write_json, write_jsonl
from posttrain.interop.openai_format import grader_in, response_format_in

_JOB_KEYS = {"model", "training_file", "validation_file", "suffix", "seed", "metadata",
             "integrations", "hyperparameters", "method"}
METHODS = {"supervised": "sft", "dpo": "dpo", "reinforcement": "rft"}
HYPER_KEYS = {
    "supervised": {"batch_size", "learning_rate_multiplier", "n_epochs"},
    "dpo": {"batch_size", "beta", "learning_rate_multiplier", "n_epochs"},
    "reinforcement": {"batch_size", "compute_multiplier", "eval_interval", "eval_samples",
                      "learning_rate_multiplier", "n_epochs", "reasoning_effort"},
}
#: what "auto" (or an absent value) means here, per method
AUTO: dict[str, dict[str, Any]] = {
    "supervised": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0},
    "dpo": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0, "beta": 0.1},
    "reinforcement": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1.0,
                      "compute_multiplier": 1.0, "eval_interval": None, "eval_samples": 1,
                      "reasoning_effort": "default"},
}
BASE_LR = {"supervised": 5e-5, "dpo": 5e-6, "reinforcement": 5e-5}
ID_FIELD = "__line__"  # no row has it: each item's id is its line in the file


@dataclass
class Job:
    path: Path
    body: dict[str, Any]
    method: str  # supervised | dpo | reinforcement
    hyper: dict[str, Any]  # as written ("auto" kept)
    training_file: Path
    validation_file: Path | None
    training: list[tuple[int, dict[str, Any]]]
    validation: list[tuple[int, dict[str, Any]]]
    grader: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    source: Source | None = None  # the job file's text, for lines

    @property
    def kind(self) -> str:
        return METHODS[self.method]

    def resolved(self, n_train: int) -> dict[str, Any]:
        """The hyperparameters as run: "auto" (or absent) replaced by ``AUTO``."""
        out = dict(AUTO[self.method])
        for key, value in self.hyper.items():
            if value != "auto" and value is not None:
                out[key] = value
        if self.method != "reinforcement":
            out["batch_size"] = max(1, min(int(out["batch_size"]), n_train))
        return out


def _number(value: Any, source: Source, where: str, *, integer: bool = False) -> None:
    if value == "auto" or value is None:
        return
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        raise source.error(f"must be \"auto\" or a positive {'integer' if integer else 'number'}"
                           f", got {value!r}", where)


def _find_file(value: Any, job: Source, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise job.error("required: a local JSONL path (or a file id saved as FILE_ID.jsonl next "
                        "to the job)", where)
    base = job.file.parent
    for candidate in (base / value, base / f"{value}.jsonl"):
        if candidate.is_file():
            return candidate.resolve()
    hint = (f": file ids live at OpenAI; download it (`openai api files.content -i {value}`) "
            f"as {value}.jsonl next to the job file" if value.startswith("file-") else "")
    raise job.error(f"no such file {base / value}{hint}", where)


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from posttrain.loaders.datasets import load_jsonl

    rows = load_jsonl(path)
    if not rows:
        raise UserError("the file has no examples", file=path)
    return rows


def _check_messages(value: Any, path: Path, line: int, where: str, *, last: tuple[str, ...],
                    ) -> None:
    from posttrain.eval import message_problem

    if not isinstance(value, list) or not value:
        raise UserError("must be a non-empty list of messages", file=path, line=line,
                        field=where)
    for index, message in enumerate(value):
        problem = message_problem(message)
        if problem is not None:
            inner, reason = problem
            raise UserError(reason, file=path, line=line,
                            field=f"{where}[{index}]" + (f".{inner}" if inner else ""))
    if value[-1].get("role") not in last:
        raise UserError(f"the last message must be from {' or '.join(last)}, got "
                        f"{value[-1].get('role')!r}", file=path, line=line,
                        field=f"{where}[{len(value) - 1}].role")


def _check_rows(method: str, path: Path, rows: list[tuple[int, dict[str, Any]]],
                notes: Notes) -> None:
    for line, row in rows:
        source = Source(path, line)
        if method == "supervised":
            _check_messages(row.get("messages"), path, line, "messages", last=("assistant",))
            notes.unknown(source, "", row, {"messages", "tools", "parallel_tool_calls",
                                             "functions"}, "SFT example")
        elif method == "dpo":
            inner = row.get("input")
            if not isinstance(inner, dict):
                raise source.error("required: {messages, tools?}", "input")
            _check_messages(inner.get("messages"), path, line, "input.messages",
                            last=("user", "system", "developer", "tool"))
            for key in ("preferred_output", "non_preferred_output"):
                _check_messages(row.get(key), path, line, key, last=("assistant",))
            notes.unknown(source, "", row, {"input", "preferred_output",
                                             "non_preferred_output"}, "DPO example")
        else:
            _check_messages(row.get("messages"), path, line, "messages",
                            last=("user", "system", "developer", "tool"))


def load_job(path: str | Path, *, judge: str | None = None) -> Job:
    """Read and check a job body and its files; UserError naming file:line:field."""
    notes = Notes()
    body, source = read_json(Path(path), "job file")
    if not isinstance(body, dict):
        raise source.error("a job is a JSON object (the body of POST /v1/fine_tuning/jobs)")
    notes.unknown(source, "", body, _JOB_KEYS, "job")
    method_spec = body.get("method")
    if method_spec is None:
        method, hyper = "supervised", dict(body.get("hyperparameters") or {})
        notes.warn(source, "method", "absent: a supervised job (the legacy shape; top-level "
                   "hyperparameters are deprecated in favour of method.supervised)")
        inner: dict[str, Any] = {}
    else:
        if not isinstance(method_spec, dict):
            raise source.error("must be {type, supervised|dpo|reinforcement}", "method")
        method = method_spec.get("type")
        if method not in METHODS:
            raise source.error(f"must be supervised, dpo or reinforcement, got {method!r}",
                               "method.type")
        others = [m for m in METHODS if m != method and m in method_spec]
        if others and method not in method_spec:
            raise source.error(f"method.type is {method!r} but the block is method.{others[0]}: "
                               f"set method.type to {others[0]!r}, or write the "
                               f"{method} settings as method.{method}", "method.type")
        notes.unknown(source, "method.", method_spec, {"type", method}, "method")
        inner = method_spec.get(method) or {}
        if not isinstance(inner, dict):
            raise source.error("must be an object", f"method.{method}")
        hyper = dict(inner.get("hyperparameters") or {})
        if body.get("hyperparameters"):
            notes.warn(source, "hyperparameters", "ignored: method."
                       f"{method}.hyperparameters is what the job runs with")
    where = f"method.{method}.hyperparameters" if method_spec is not None else "hyperparameters"
    notes.unknown(source, f"{where}.", hyper, HYPER_KEYS[method], f"{method} hyperparameter")
    hyper = {k: v for k, v in hyper.items() if k in HYPER_KEYS[method]}
    for key in ("n_epochs", "batch_size", "eval_interval", "eval_samples"):
        if key in hyper:
            _number(hyper[key], source, f"{where}.{key}", integer=True)
    for key in ("learning_rate_multiplier", "beta", "compute_multiplier"):
        if key in hyper:
            _number(hyper[key], source, f"{where}.{key}")
    effort = hyper.get("reasoning_effort")
    if effort not in (None, "default", "low", "medium", "high"):
        raise source.error(f"must be default, low, medium or high, got {effort!r}",
                           f"{where}.reasoning_effort")
    if effort not in (None, "default"):
        notes.warn(source, f"{where}.reasoning_effort", "not applicable: a local model has no "
                   "reasoning effort setting; reported, not applied")
    for integration in body.get("integrations") or []:
        kind = integration.get("type") if isinstance(integration, dict) else integration
        if kind == "wandb":  # posttrain.train.common.integration_trackers connects it
            notes.warn(source, "integrations", "wandb: training logs go to W&B through TRL "
                       "where the wandb package is installed (its project, name, entity, tags)")
        else:
            notes.warn(source, "integrations", f"{kind}: not connected here (the events and "
                       "checkpoints are files in the output folder)")
    if body.get("seed") is not None and (isinstance(body["seed"], bool)
                                         or not isinstance(body["seed"], int)):
        raise source.error("must be an integer", "seed")
    training_file = _find_file(body.get("training_file"), source, "training_file")
    validation_file = (_find_file(body["validation_file"], source, "validation_file")
                       if body.get("validation_file") else None)
    training = _rows(training_file)
    validation = _rows(validation_file) if validation_file else []
    _check_rows(method, training_file, training, notes)
    if validation_file:
        _check_rows(method, validation_file, validation, notes)
    job = Job(path=source.file, body=body, method=method, hyper=hyper,
              training_file=training_file, validation_file=validation_file,
              training=training, validation=validation, source=source)
    if method == "reinforcement":
        notes.unknown(source, f"method.{method}.", inner,
                      {"grader", "hyperparameters", "response_format"}, "reinforcement method")
        if "grader" not in inner:
            raise source.error("required: the grader (the reward)", f"method.{method}.grader")
        grader = grader_in(inner["grader"], source, f"method.{method}.grader", notes,
                           judge=judge)
        if grader["type"] == "label_model":
            notes.warn(source, f"method.{method}.grader.type", "label_model is not in RFT's "
                       "grader union at OpenAI; read as posttrain reads it")
        job.grader = grader
        job.response_format = response_format_in(inner.get("response_format"), source,
                                                 f"method.{method}.response_format")
        if not validation:
            raise source.error("an RFT job here needs a validation_file: its reward picks the "
                               "checkpoints", "validation_file")
        for rows, file in ((training, training_file), (validation, validation_file)):
            _warn_missing_fields(job, rows, file, source, notes)
        _rft_eval(job, training_file, training)  # the grader reads what the rows have
        _rft_eval(job, validation_file, validation)
    job.notes = notes.lines
    return job


def _warn_missing_fields(job: Job, rows: list[tuple[int, dict[str, Any]]], path: Path,
                         source: Source, notes: Notes) -> None:
    """Rows without a field the grader reads (``{{item.X}}``) that other rows have: a warning
    naming their lines (their reward is unscored: skipped, never learned as wrong); a field no
    row has is the grader's error, reported by the eval check."""
    from posttrain.interop.openai_evals import _template_uses

    uses = _template_uses(job.grader, "method.reinforcement.grader")
    done: set[str] = set()
    for name, where in uses:
        if name in done:
            continue
        done.add(name)
        missing = [line for line, row in rows if name not in row]
        if missing and len(missing) < len(rows):
            shown = ", ".join(f"{path}:{line}" for line in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            notes.warn(source, where, f"{{{{item.{name}}}}}: {len(missing)} of {len(rows)} "
                       f"rows have no field {name!r} ({shown}{more}): their reward is unscored "
                       "(skipped, not learned as wrong)")


def _complete_first(rows: list[tuple[int, dict[str, Any]]], fields: set[str]
                    ) -> list[tuple[int, dict[str, Any]]]:
    """The rows with one that has every field the grader reads first (the eval checks its
    templates against its first row: no result depends on which row that is)."""
    for index, (_, row) in enumerate(rows):
        if fields <= set(row):
            return [rows[index], *rows[:index], *rows[index + 1:]] if index else rows
    return rows


def _rft_eval_spec(job: Job, max_tokens: int | None = None) -> dict[str, Any]:
    name = str(job.body.get("suffix") or job.path.stem)
    spec: dict[str, Any] = {"name": f"{name}-validation", "id_field": ID_FIELD,
                            "graders": [job.grader],
                            "sampling": {"temperature": 0, "max_tokens": max_tokens or 128}}
    if job.response_format is not None:
        spec["response_format"] = job.response_format
    if any(isinstance(row.get("tools"), list) for _, row in job.validation + job.training):
        spec["tools"] = "{{item.tools}}"
    return spec


def _rft_eval(job: Job, path: Path, rows: list[tuple[int, dict[str, Any]]],
              max_tokens: int | None = None) -> Any:
    """An Eval of these rows with the job's grader (errors name the rows' file)."""
    from posttrain.eval import eval_from_dict
    from posttrain.interop.openai_evals import _template_uses

    spec = _rft_eval_spec(job, max_tokens)
    rows = _complete_first(rows, {name for name, _ in _template_uses(job.grader, "")})
    try:
        return eval_from_dict(spec, source=path, rows=rows)
    except UserError as exc:
        if exc.field and exc.field.startswith("graders[0]"):
            where = exc.field.replace("graders[0]", "method.reinforcement.grader", 1)
            source = job.source or Source(job.path)
            message = exc.message.replace(f"(item {rows[0][0]})", f"({path}:{rows[0][0]})")
            raise source.error(message, where) from None
        raise


def _judge_field(grader: dict[str, Any] | None, where: str) -> str:
    if not isinstance(grader, dict):
        return where
    if grader.get("type") in ("score_model", "label_model"):
        return f"{where}.model"
    for key, inner in (grader.get("graders") or {}).items():
        found = _judge_field(inner, f"{where}.graders.{key}")
        if found.endswith(".model"):
            return found
    return where


def _check_judges(job: Job, max_tokens: int | None) -> None:
    """The reward's judges answer (a key is set, a local judge is there) before the job
    writes anything; their clients are closed again."""
    import asyncio

    from posttrain.runner.preflight import check_models, judge_models

    assert job.validation_file is not None
    ev = _rft_eval(job, job.validation_file, job.validation, max_tokens)
    judges = judge_models(ev.graders)
    if not judges:
        return

    async def check() -> None:
        try:
            await check_models(judges)
        finally:
            for grader in ev.graders:
                await grader.aclose()

    try:
        asyncio.run(check())
    except UserError as exc:
        source = job.source or Source(job.path)
        raise source.error(f"a judge: {exc.message} (grade with a local model instead: "
                           "--judge SPEC, e.g. --judge hf:smollm2-135m-instruct)",
                           _judge_field(job.body.get("method", {}).get("reinforcement", {})
                                        .get("grader"), "method.reinforcement.grader")
                           ) from None


# ---- running ------------------------------------------------------------------------------
class _Events:
    def __init__(self, path: Path, job_id: str) -> None:
        self.path = path
        self.job_id = job_id
        self.events: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def add(self, message: str, *, data: dict[str, Any] | None = None,
            kind: str = "message") -> None:
        event = {"object": "fine_tuning.job.event", "id": f"ftevent-{len(self.events) + 1}",
                 "created_at": int(time.time()), "level": "info", "message": message,
                 "type": kind, "data": data or {}}
        self.events.append(event)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


def _job_id(job: Job) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(job.body, sort_keys=True, default=str).encode())
    return f"ftjob-local-{digest.hexdigest()[:12]}"


def _loss_checkpoint(events: Any, job_id: str, summary: dict[str, Any], model_dir: Path
                     ) -> dict[str, Any]:
    """SFT and DPO: the one metrics event (training loss at the last step) and the one
    checkpoint of the job."""
    events.add(f"Step {summary['steps']}/{summary['steps']}: training loss="
               f"{summary['train_loss']}", kind="metrics",
               data={"step": summary["steps"], "total_steps": summary["steps"],
                     "train_loss": summary["train_loss"]})
    return _checkpoint(job_id, summary["steps"], model_dir, {"train_loss": summary["train_loss"]})


def _write_failed(out_dir: Path, job: Job, job_id: str, spec: str, created: int, seed: int,
                  exc: BaseException, events: Any) -> None:
    """``job.json`` with ``status: failed`` (``cancelled`` for Ctrl-C) and the ``error`` object
    (``code``, ``message``, ``param``) of a fine-tuning job that did not finish."""
    cancelled = isinstance(exc, KeyboardInterrupt)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    events.add("The job was cancelled" if cancelled else f"The job failed: {message}")
    write_json(out_dir / "job.json", {
        "object": "fine_tuning.job", "id": job_id, "status": "cancelled" if cancelled
        else "failed", "model": spec, "fine_tuned_model": None, "created_at": created,
        "finished_at": int(time.time()), "training_file": str(job.training_file),
        "seed": seed, "error": None if cancelled else {
            "code": type(exc).__name__, "message": message,
            "param": getattr(exc, "field", None)}})


def run_job(job: Job, *, model: str | None, out_dir: str | Path, store: str | Path,
            max_tokens: int | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train as the job says; write job.json, events.jsonl, checkpoints.json; return
    ``{"job": job object, "text": a readable summary}``."""
    from posttrain.models.checks import TRAIN_PACKAGES, require_extra

    spec = model or str(job.body.get("model") or "")
    if not spec.startswith("hf:"):
        raise UserError(f"{spec!r}: a job runs here on a local model: give --model hf:PATH "
                        f"(the job's {job.body.get('model')!r} is OpenAI's)", field="--model")
    require_extra("`posttrain train --job`", *TRAIN_PACKAGES, extra="train")
    from posttrain.train.common import model_path

    model_path(spec)  # a model that is not there stops here, before anything is written
    if job.method == "reinforcement":
        _check_judges(job, max_tokens)  # a judge without its key stops here too
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    job_id = _job_id(job)
    events = _Events(out_dir / "events.jsonl", job_id)
    write_request(job, out_dir)
    created = int(time.time())
    hyper = job.resolved(len(job.training))
    seed = int(job.body.get("seed") or 0)
    events.add(f"Validated training file: {job.training_file} ({len(job.training)} examples)")
    for note in job.notes:
        events.add(f"warning: {note}")
    events.add("Fine-tuning job started")
    lr = BASE_LR[job.method] * float(hyper["learning_rate_multiplier"])
    model_dir = out_dir / "model"
    extra: dict[str, Any] = {}
    try:
        if job.method == "supervised":
            from posttrain.train.sft import to_prompt_completion, train_sft

            rows = [to_prompt_completion(row, source=str(job.training_file), line=line)
                    for line, row in job.training]
            summary = train_sft(spec, rows, model_dir, epochs=float(hyper["n_epochs"]),
                                batch_size=int(hyper["batch_size"]), learning_rate=lr, seed=seed,
                                quiet=quiet)
            checkpoints = [_loss_checkpoint(events, job_id, summary, model_dir)]
            if job.validation:
                extra["validation"] = "read and checked; its loss is not computed here"
        elif job.method == "dpo":
            from posttrain.train.dpo import train_dpo

            pairs = [row for _, row in job.training]  # train_dpo reads the hosted format
            steps = max(1, math.ceil(float(hyper["n_epochs"]) * len(pairs)
                                     / int(hyper["batch_size"])))
            summary = train_dpo(spec, pairs, model_dir, max_steps=steps, learning_rate=lr,
                                beta=float(hyper["beta"]), batch_size=int(hyper["batch_size"]),
                                seed=seed, quiet=quiet)
            checkpoints = [_loss_checkpoint(events, job_id, summary, model_dir)]
        else:
            summary, checkpoints, extra = _run_rft(job, spec, out_dir, model_dir, hyper, lr, seed,
                                                   store, max_tokens, quiet, events, job_id)
    except BaseException as exc:  # the job's end is written as OpenAI writes it: failed/cancelled
        _write_failed(out_dir, job, job_id, spec, created, seed, exc, events)
        raise
    write_json(out_dir / "checkpoints.json",
               {"object": "list", "data": checkpoints, "has_more": False})
    events.add(f"New fine-tuned model created: hf:{model_dir}")
    events.add("The job has successfully completed")
    method = {"type": job.method, job.method: {
        **({k: v for k, v in (job.body.get("method") or {}).get(job.method, {}).items()
            if k != "hyperparameters"}),
        "hyperparameters": hyper}}
    job_object = {
        "object": "fine_tuning.job", "id": job_id, "status": "succeeded", "model": spec,
        "fine_tuned_model": f"hf:{model_dir}", "created_at": created,
        "finished_at": int(time.time()), "estimated_finish": None,
        "training_file": str(job.training_file),
        "validation_file": str(job.validation_file) if job.validation_file else None,
        "result_files": [str(out_dir / "events.jsonl"), str(out_dir / "checkpoints.json")],
        "trained_tokens": None, "seed": seed, "suffix": job.body.get("suffix"),
        "metadata": job.body.get("metadata"), "integrations": [], "error": None,
        "hyperparameters": {k: v for k, v in hyper.items()
                            if k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
        "method": method,
        "posttrain": {"learning_rate": lr, "steps": summary.get("steps"),
                      "seconds": summary.get("seconds"), "auto": AUTO[job.method],
                      "warnings": job.notes, **extra},
    }
    write_json(out_dir / "job.json", job_object)
    text = [f"{job.method} job {job_id} on {spec}: {summary.get('steps')} steps in "
            f"{summary.get('seconds')} s; model saved in {model_dir}"]
    if job.method == "reinforcement":
        for entry in extra["validation_runs"]:
            text.append(f"  step {entry['step']:>4}  validation reward "
                        f"{entry['full_valid_mean_reward']:.4f}  (run {entry['run_id']})")
        text.append(f"  best step {extra['best_step']}; checkpoints: "
                    + ", ".join(f"step {c['step_number']}" for c in checkpoints))
        text.append(f"  check it: posttrain eval {extra['eval']} --model hf:{model_dir} "
                    f"--store {store}")
    else:
        text.append(f"  evaluate it: posttrain eval EVAL_FILE --model hf:{model_dir}")
    text.append(f"  job: {out_dir / 'job.json'}  events: {out_dir / 'events.jsonl'}")
    return {"job": job_object, "text": "\n".join(text)}


def write_request(job: Job, out_dir: Path) -> Path:
    """The body as read (its files by absolute path): what ``export openai-ft --job`` writes
    back."""
    files = {"training_file": str(job.training_file),
             **({"validation_file": str(job.validation_file)} if job.validation_file else {})}
    return write_json(Path(out_dir) / "job.request.json", {**job.body, **files})


def _checkpoint(job_id: str, step: int, path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{job_id}-{step}",
            "created_at": int(time.time()), "fine_tuning_job_id": job_id,
            "fine_tuned_model_checkpoint": f"hf:{path}", "step_number": step,
            "metrics": {"step": step, **metrics}}


def validation_metrics(store: Any, run_id: str, eval_: Any) -> dict[str, Any]:
    """``full_valid_mean_reward`` (the run's headline: every item, an unscored or failed answer
    as 0), the share of answers whose JSON did not parse where a JSON format was asked, and
    each grader's (and each ``multi`` component's) mean over its scored answers."""
    from posttrain.analysis.results import load_results

    results = load_results(store, run_id)
    scores = results.item_scores()
    reward = sum(scores.values()) / len(scores) if scores else 0.0
    graders: dict[str, list[float]] = {}
    types = {g.name: g.type for g in eval_.graders}
    for row in store.scores(run_id):
        if row["status"] == "scored" and row["value"] is not None:
            graders.setdefault(row["grader"], []).append(float(row["value"]))
            for key, value in json.loads(row["sub_scores"] or "{}").items():
                graders.setdefault(key, []).append(float(value))
    parse_errors = total = 0
    json_format = isinstance(eval_.response_format, dict) and \
        eval_.response_format.get("type") in ("json_schema", "json_object")
    for row in store.samples(run_id):
        total += 1
        if json_format and row["status"] == "ok":
            from posttrain.types import Completion, parse_json_output

            text = Completion.from_record(json.loads(row["completion"])).text
            parse_errors += parse_json_output(text.strip()) is None
    return {"full_valid_mean_reward": reward,
            "full_valid_mean_parse_error": parse_errors / total if total else 0.0,
            "scores": {"graders": [{"name": name, "type": types.get(name, "component"),
                                    "valid_reward_mean": sum(v) / len(v)}
                                   for name, v in graders.items()]}}


def _run_rft(job: Job, spec: str, out_dir: Path, model_dir: Path, hyper: dict[str, Any],
             lr: float, seed: int, store: str | Path, max_tokens: int | None, quiet: bool,
             events: _Events, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                     dict[str, Any]]:
    from posttrain.api import run_eval
    from posttrain.eval import load_eval
    from posttrain.interop.openai_evals import dump_yaml
    from posttrain.runner.executor import RunOptions
    from posttrain.runner.store import Store
    from posttrain.train.common import model_path, save_plain
    from posttrain.train.rft import RFTConfig, Split, print_progress, train_rft

    eval_dir = out_dir / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    assert job.validation_file is not None
    shutil.copyfile(job.validation_file, eval_dir / "validation.jsonl")  # same lines
    eval_spec = {**_rft_eval_spec(job, max_tokens), "dataset": "validation.jsonl"}
    (eval_dir / "eval.yaml").write_text(
        f"# the validation items of {job.path} with its grader (posttrain train --job)\n"
        + dump_yaml(eval_spec),
        encoding="utf-8")
    val_eval = load_eval(eval_dir / "eval.yaml")
    train_eval = _rft_eval(job, job.training_file, job.training, max_tokens)
    prompts = int(hyper["batch_size"])
    group = max(2, round(8 * float(hyper["compute_multiplier"])))
    steps = max(1, math.ceil(float(hyper["n_epochs"]) * len(job.training) / prompts))
    interval = int(hyper["eval_interval"] or max(1, math.ceil(steps / 4)))
    hyper["eval_interval"] = interval
    samples = int(hyper["eval_samples"])
    config = RFTConfig(steps=steps, num_generations=group, prompts_per_step=prompts,
                       learning_rate=lr, beta=0.0, temperature=1.0,
                       max_completion_length=max_tokens or 128, eval_every=interval, seed=seed)
    checkpoints_dir = out_dir / "checkpoints"
    shutil.rmtree(checkpoints_dir, ignore_errors=True)
    validations: list[dict[str, Any]] = []
    train_rewards: dict[int, float] = {}

    def validator(step: int, policy: Any, tokenizer: Any) -> float:
        started = time.perf_counter()
        if step == 0:
            path = Path(model_path(spec))
        else:
            path = save_plain(policy, tokenizer, checkpoints_dir / f"step-{step}",
                              {"step": step, "job": job_id})
        fresh = load_eval(eval_dir / "eval.yaml")  # run_eval closes its judges after
        (summary,) = run_eval(fresh, [f"hf:{path}"], variants=["default"], store=store,
                              options=RunOptions(epochs=samples))
        with Store(store) as db:
            metrics = validation_metrics(db, summary["run_id"], val_eval)
        value = metrics["full_valid_mean_reward"]
        entry = {"step": step, "run_id": summary["run_id"], "checkpoint": str(path), **metrics,
                 "eval_seconds": round(time.perf_counter() - started, 2)}
        validations.append(entry)
        data = {"step": step, "total_steps": steps, **metrics,
                "timing": {"step": {"eval": entry["eval_seconds"]}},
                "posttrain_run": summary["run_id"]}
        if step in train_rewards:
            data["train_mean_reward"] = train_rewards[step]
        events.add(f"Step {step}/{steps}: full validation reward={value:.4f}", kind="metrics",
                   data=data)
        return value

    def on_log(entry: dict[str, Any]) -> None:
        if "reward" in entry:
            train_rewards[entry["step"]] = entry["reward"]
            events.add(f"Step {entry['step']}/{steps}: train reward={entry['reward']:.4f}",
                       kind="metrics", data={"step": entry["step"], "total_steps": steps,
                                             "train_mean_reward": entry["reward"],
                                             "train_reward_std": entry.get("reward_std")})
        if not quiet:
            print_progress(entry)

    split = Split(train=train_eval.items, validation=val_eval.items, test=[])
    result = train_rft(spec, train_eval, model_dir, split, config, quiet=quiet, on_log=on_log,
                       validator=validator)
    # the top 3 checkpoints by validation reward (ties: the earlier step); the rest removed
    ranked = sorted((v for v in validations if v["step"] > 0),
                    key=lambda v: (-v["full_valid_mean_reward"], v["step"]))
    keep = ranked[:3]
    for entry in ranked[3:]:
        shutil.rmtree(entry["checkpoint"], ignore_errors=True)
    checkpoints = []
    for entry in sorted(keep, key=lambda v: v["step"]):
        metrics = {k: entry[k] for k in ("full_valid_mean_reward", "full_valid_mean_parse_error")}
        metrics["train_mean_reward"] = train_rewards.get(entry["step"])
        checkpoints.append(_checkpoint(job_id, entry["step"], Path(entry["checkpoint"]),
                                       metrics))
        events.add(f"Checkpoint created at step {entry['step']}")
    summary = {"steps": result.steps, "seconds": result.seconds}
    extra = {"best_step": result.best_step, "best_validation": result.best_validation,
             "validation_runs": [{k: v for k, v in entry.items() if k != "scores"}
                                 for entry in validations],
             "eval": str(eval_dir / "eval.yaml"), "group_size": group,
             "prompts_per_step": prompts, "reward_stats": result.reward_stats}
    return summary, checkpoints, extra


# ---- export -------------------------------------------------------------------------------
def export_job(job_dir: str | Path, out: str | Path) -> list[Path]:
    """The job body a ``train --job`` run read, written to ``out`` with its training and
    validation files copied beside it (named in the body by file name)."""
    job_dir = Path(job_dir).resolve()
    request = job_dir / "job.request.json"
    if not request.is_file():
        raise UserError("not a `posttrain train --job` output folder (no job.request.json)",
                        file=job_dir, field="--job")
    body = json.loads(request.read_text(encoding="utf-8"))
    out = Path(out).resolve()
    paths = [out]

    def own(target: Path) -> bool:  # a file of the job's output folder (job.json, events, ...)
        return target.is_relative_to(job_dir) and target.exists()

    if out.is_dir() or own(out):
        what = "a folder" if out.is_dir() else "the job's own file"
        raise UserError(f"would overwrite {what} {out}: write the body elsewhere "
                        "(-o back/job.json)", field="--out")
    for key in ("training_file", "validation_file"):
        if body.get(key):
            source = Path(body[key])
            target = out.parent / source.name
            if source.resolve() != target.resolve() and own(target):
                raise UserError(f"would overwrite the job's own file {target} with the "
                                f"{key.replace('_', ' ')}: write the body to another folder",
                                field="--out")
    for key in ("training_file", "validation_file"):
        if body.get(key):
            source = Path(body[key])
            target = out.parent / source.name
            if source.resolve() != target.resolve():
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            body[key] = source.name
            paths.append(target)
    write_json(out, body)
    return paths


__all__ = ["AUTO", "Job", "export_job", "load_job", "run_job", "validation_metrics",
           "write_jsonl"]

"""OpenAI Batch API: ``posttrain eval --backend openai-batch``, and batch files in.

The backend plans the runs as the local executor does (same run keys, same resume, same checks
before anything is sent), then for each run with answers to get: writes the pending requests
as a batch input file (one line per item and epoch: ``custom_id`` ``EPOCH:ITEM_ID``, ``method``
POST, ``url`` /v1/chat/completions, ``body`` the request posttrain would send), uploads it with
the Files API, creates the batch (``metadata.posttrain_run`` names the run) and records the file
and batch ids in the run before polling. Killed at any point after that, the same command
finds the batch (by the recorded id, or by its metadata when the kill came between creating it
and recording it) and polls it instead of submitting again. When the batch is done its output
and error files are read: each answer graded and stored as a live answer would be, each failed
request stored as an error. A request the batch did not answer (expired, cancelled) is still
pending: the same command submits a new batch for those only.

Answers are priced at half the list price (the Batch API's discount) and go into the response
cache like live answers; before a batch is submitted, requests the cache answers are served from
it (a finished eval run again submits nothing). ``--poll SECONDS`` sets the polling interval
(default 30).

``import_batch`` reads a batch input file as an eval's items (each line's messages and its
``custom_id``), and with ``--results`` the output file as a stored run with no requests.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, json_kind

ENDPOINT = "/v1/chat/completions"
BATCH_DISCOUNT = 0.5
_TERMINAL = {"completed", "failed", "expired", "cancelled"}


def custom_id(item_id: str, epoch: int) -> str:
    return f"{epoch}:{item_id}"


def parse_custom_id(value: str) -> tuple[str, int]:
    epoch, _, item_id = value.partition(":")
    return item_id, int(epoch)


def _client(model: Any) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=model.base_url, api_key=model._api_key or "posttrain-no-key",
                       max_retries=4, timeout=120.0)


def _check_models(models: list[Any]) -> None:
    from posttrain.models.openai_compat import _Endpoint

    for model in models:
        if not isinstance(model, _Endpoint):
            raise UserError(f"{model.name}: the Batch API is OpenAI's: --backend openai-batch "
                            "takes openai: models only", field="--model")


async def execute_eval_batch(eval_: Any, models: list[Any], variants: list[str], store: Any,
                             options: Any, *, progress: Any = None,
                             model_configs: dict[str, dict[str, Any]] | None = None,
                             poll_s: float = 30.0, out: Any = None) -> list[Any]:
    """Run every (model, variant) pair through the Batch API; returns the run handles."""
    from posttrain.runner.executor import finish_runs, plan_runs
    from posttrain.runner.progress import Progress

    _check_models(models)
    if eval_.solver is not None:
        raise UserError("a multi-turn solver talks to the model turn by turn: it cannot run "
                        "as one batch", field="--backend")
    progress = progress or Progress(enabled=False)
    planned = await plan_runs(eval_, models, variants, store, options, progress, model_configs)
    for line in stale_batches(store, eval_.name, [p.handle.run for p in planned]):
        _say(out, line)
    # every run's batch is submitted at once and they are waited on together
    await asyncio.gather(*(_run_batch(plan, store, poll_s, out) for plan in planned))
    handles = [p.handle for p in planned]
    finish_runs(store, handles)
    return handles


def stale_batches(store: Any, eval_name: str, runs: list[Any]) -> list[str]:
    """One warning per earlier run of this eval, on one of these runs' model and variant, that
    was left ``running`` with a batch still recorded as in flight: the eval changed since
    (items, graders, settings), so this command made a new run and that batch is neither
    resumed nor counted here; it goes on costing at OpenAI until it ends or is cancelled."""
    ours = {run.id for run in runs}
    pairs = {(run.model, run.variant) for run in runs}
    lines = []
    for other in store.list_runs(eval_name):
        state = (other.config or {}).get("openai_batch") or {}
        if other.id in ours or other.status != "running" or not state.get("batch_id") or \
                (other.model, other.variant) not in pairs:
            continue
        lines.append(f"warning: run {other.id} ({other.model} [{other.variant}], an earlier "
                     f"version of {eval_name}: it changed since) still has batch "
                     f"{state['batch_id']} in flight at OpenAI; it is not resumed or counted "
                     "here. Put the earlier eval back and run again to collect it, or cancel "
                     f"the batch (POST /v1/batches/{state['batch_id']}/cancel)")
    return lines


def _say(out: Any, text: str) -> None:
    if out is not None:
        print(text, file=out, flush=True)


async def _run_batch(plan: Any, store: Any, poll_s: float, out: Any) -> None:
    execution = plan.execution
    run = plan.handle.run
    model = execution.model
    client = _client(model)
    try:
        pending = {custom_id(item.id, epoch): (item, epoch) for item, epoch in plan.pending}
        state = dict(store.get_run(run.id).config.get("openai_batch") or {})
        while pending:
            batch = await _find_batch(client, state, run.id)
            if batch is None:
                await _serve_cached(execution, pending)
                if not pending:
                    break
                batch = await _submit(client, execution, pending, store, run.id, state)
                _say(out, f"{model.name} [{execution.variant}]: submitted batch {batch.id} "
                          f"({len(pending)} requests); waiting (a killed command resumes it)")
            else:
                _say(out, f"{model.name} [{execution.variant}]: resuming batch {batch.id} "
                          f"({batch.status})")
            while batch.status not in _TERMINAL:
                await asyncio.sleep(poll_s)
                batch = await client.batches.retrieve(batch.id)
            answered = await _collect(client, batch, execution, pending)
            with store.conn:  # a batch answer has no latency of its own: empty, not 0 s
                store.conn.execute("UPDATE samples SET latency_s = NULL WHERE run_id = ? AND "
                                   "latency_s = 0", (run.id,))
            state["done"] = [*state.get("done", []), batch.id]
            state.pop("batch_id", None)
            state.pop("input_file_id", None)
            store.update_run_config(run.id, {"openai_batch": state})
            if pending:
                if answered == 0:
                    raise UserError(f"batch {batch.id} ended {batch.status} with no answers "
                                    f"({_batch_errors(batch)}); nothing more is submitted: fix "
                                    "it and run the command again", field="--backend")
                _say(out, f"batch {batch.id} ended {batch.status} with {len(pending)} "
                          "requests unanswered: submitting them again")
    finally:
        await client.close()


async def _serve_cached(execution: Any, pending: dict[str, tuple[Any, int]]) -> None:
    """Answers the response cache holds for this model are served, not sent again (a finished
    eval run again costs nothing, as with the local backend)."""
    if not execution.options.use_cache:
        return
    from posttrain.runner.cache import cache_lookup

    for cid, (item, epoch) in list(pending.items()):
        request = execution.eval.request_for(item, execution.variant)
        key = execution.cache_key(request, epoch)
        found = await cache_lookup(execution.store, execution.model, key,
                                   execution.options.cache)
        if found is not None and found.cached:
            pending.pop(cid)
            execution.counters.cached += 1
            await execution.finish(item, epoch, request, found, key, 0)


def _batch_errors(batch: Any) -> str:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return "; ".join(str(getattr(e, "message", e)) for e in data) or "no error given"


async def _find_batch(client: Any, state: dict[str, Any], run_id: str) -> Any:
    """The run's batch that is still to be read: by its recorded id, or (killed between
    creating it and recording it) by its metadata."""
    done = set(state.get("done", []))
    if state.get("batch_id"):
        return await client.batches.retrieve(state["batch_id"])
    if state.get("input_file_id"):
        async for batch in client.batches.list(limit=100):
            if (batch.metadata or {}).get("posttrain_run") == run_id and batch.id not in done:
                state["batch_id"] = batch.id
                return batch
    return None


async def _submit(client: Any, execution: Any, pending: dict[str, tuple[Any, int]],
                  store: Any, run_id: str, state: dict[str, Any]) -> Any:
    lines = []
    for cid, (item, _epoch) in pending.items():
        request = execution.eval.request_for(item, execution.variant)
        lines.append(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT,
                                 "body": execution.model.to_wire(request)},
                                ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    uploaded = await client.files.create(file=(f"posttrain-{run_id}.jsonl", data),
                                         purpose="batch")
    state["input_file_id"] = uploaded.id
    store.update_run_config(run_id, {"openai_batch": state})
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT,
                                        completion_window="24h",
                                        metadata={"posttrain_run": run_id})
    state["batch_id"] = batch.id
    store.update_run_config(run_id, {"openai_batch": state})
    return batch


async def _read_file(client: Any, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    response = await client.files.content(file_id)
    text = response.text if hasattr(response, "text") else response.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _collect(client: Any, batch: Any, execution: Any,
                   pending: dict[str, tuple[Any, int]]) -> int:
    """Store every answer and failed request of a finished batch; returns how many."""
    from posttrain.models.openai_compat import completion_from_body

    price = getattr(execution.model, "price", None)
    rows = await _read_file(client, batch.output_file_id) + \
        await _read_file(client, batch.error_file_id)
    count = 0
    for row in rows:
        cid = row.get("custom_id")
        if cid not in pending:
            continue
        item, epoch = pending.pop(cid)
        response = row.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        request = execution.eval.request_for(item, execution.variant)
        count += 1
        execution.counters.requests += 1
        if status == 200 and isinstance(body, dict):
            try:
                completion = completion_from_body(body, 0.0, price)
            except Exception as exc:  # noqa: BLE001 - a malformed answer is that sample's error
                _error(execution, item, epoch, f"openai batch: {exc}")
                continue
            completion.cost_usd *= BATCH_DISCOUNT
            completion.meta["openai_batch"] = {"batch_id": batch.id,
                                               "request_id": response.get("request_id")}
            await execution.finish(item, epoch, request, completion,
                                   execution.cache_key(request, epoch), 1)
        else:
            error = row.get("error") or (body or {}).get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            _error(execution, item, epoch, f"openai batch: HTTP {status}: {message}")
    return count


def _error(execution: Any, item: Any, epoch: int, reason: str) -> None:
    execution.store.record_sample(execution.run.id, item.id, epoch, completion=None,
                                  request_key=None, attempts=1, error=reason)
    execution.counters.errors += 1
    execution.counters.done += 1


# ---- batch files in ------------------------------------------------------------------------
_LINE_KEYS = {"custom_id", "method", "url", "body"}
_BODY_KEYS = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens",
              "top_p", "seed", "stop", "tools", "tool_choice", "response_format",
              "reasoning_effort", "input", "instructions", "max_output_tokens", "text",
              "presence_penalty", "frequency_penalty", "parallel_tool_calls", "logprobs",
              "top_logprobs", "logit_bias", "service_tier", "verbosity", "user"}
_SAMPLING = ("temperature", "max_tokens", "top_p", "seed", "stop", "reasoning_effort",
             "presence_penalty", "frequency_penalty", "parallel_tool_calls", "logprobs",
             "top_logprobs", "logit_bias", "service_tier", "verbosity", "user")
_REQUEST = ("tools", "tool_choice", "response_format")
#: real OpenAI request fields posttrain does not carry over, and why
_NOT_CARRIED = {
    "n": "posttrain asks for one answer per request (for several answers per item, run "
         "with --epochs N)",
    "store": "whether OpenAI keeps the completion is OpenAI's setting; posttrain stores every "
             "answer itself",
    "metadata": "OpenAI's request metadata is not a posttrain setting",
    "stream": "a batch request is never streamed",
    "stream_options": "a batch request is never streamed",
    "modalities": "posttrain reads text answers",
    "audio": "posttrain reads text answers",
    "prediction": "predicted outputs are not a posttrain setting",
    "prompt_cache_key": "OpenAI's cache routing is not a posttrain setting",
    "safety_identifier": "OpenAI's abuse-monitoring id is not a posttrain setting",
    "web_search_options": "posttrain does not run OpenAI's web search",
    "previous_response_id": "each item is a conversation of its own",
    "truncation": "not a posttrain setting",
    "include": "not a posttrain setting",
    "background": "not a posttrain setting",
    "reasoning": "write it as reasoning_effort (only the effort is carried over)",
}


def _messages_of(body: dict[str, Any], source: Any, where: str) -> list[dict[str, Any]]:
    if "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list):
            raise source.error("must be a list of messages", f"{where}.messages")
        return messages
    if "input" in body:  # a Responses body
        messages = []
        if body.get("instructions"):
            messages.append({"role": "developer", "content": str(body["instructions"])})
        value = body["input"]
        if isinstance(value, str):
            messages.append({"role": "user", "content": value})
        elif isinstance(value, list):
            from posttrain.interop._files import Notes
            from posttrain.interop.openai_format import messages_in

            messages.extend(messages_in(value, source, f"{where}.input", Notes()))
        return messages
    raise source.error("a chat completions body has messages (a Responses body: input)", where)


def _chat_tools(tools: Any) -> Any:
    """A Responses body's flat function tools ({type, name, parameters}) in chat
    completions' form ({type, function: {name, parameters}}); chat tools as they are."""
    if not isinstance(tools, list):
        return tools
    out = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function" and "function" not in tool \
                and "name" in tool:
            out.append({"type": "function", "function": {
                k: v for k, v in tool.items() if k in ("name", "description", "parameters",
                                                       "strict")}})
        else:
            out.append(tool)
    return out


def import_batch(input_file: str | Path, out_dir: str | Path, *,
                 results: str | Path | None = None, graders: str | Path | None = None,
                 store: str | Path | None = None) -> dict[str, Any]:
    """A batch input file as an eval (DIR/eval.yaml, DIR/items.jsonl), and its output file
    as a stored run with no requests."""
    from posttrain.interop._files import Notes, read_records, write_jsonl
    from posttrain.interop.openai_evals import dump_yaml

    notes = Notes()
    rows = []
    models: set[str] = set()
    samplings: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    seen: set[str] = set()
    for data, source in read_records(Path(input_file), "batch input file"):
        if not isinstance(data, dict):
            raise source.error("a batch line is {custom_id, method, url, body}")
        notes.unknown(source, "", data, _LINE_KEYS, "batch line")
        cid = data.get("custom_id")
        if not isinstance(cid, str) or not cid:
            raise source.error("required: a custom_id string", "custom_id")
        if cid in seen:
            raise source.error(f"custom_id {cid!r} appears twice", "custom_id")
        seen.add(cid)
        url = data.get("url", ENDPOINT)
        if url not in (ENDPOINT, "/v1/responses"):
            raise source.error(f"{url}: only chat completions and responses batches are read "
                               "(embeddings and moderations have no answer to grade)", "url")
        body = data.get("body")
        if not isinstance(body, dict):
            raise source.error("required: the request body", "body")
        for key in body:
            if key in _NOT_CARRIED:
                notes.warn(source, f"body.{key}", f"not carried over: {_NOT_CARRIED[key]}")
        notes.unknown(source, "body.", {k: v for k, v in body.items() if k not in _NOT_CARRIED},
                      _BODY_KEYS | set(_NOT_CARRIED), "request body")
        requests.append({k: _chat_tools(body[k]) if k == "tools" else body[k]
                         for k in _REQUEST if k in body})
        if body.get("model"):
            models.add(str(body["model"]))
        samplings.append({k: body[k] for k in _SAMPLING if k in body} |
                         ({"max_tokens": body["max_completion_tokens"]}
                          if "max_completion_tokens" in body else {}) |
                         ({"max_tokens": body["max_output_tokens"]}
                          if "max_output_tokens" in body else {}))
        rows.append({"id": cid, "messages": _messages_of(body, source, "body")})
    if not rows:
        raise UserError("no requests in this batch file", file=Path(input_file).resolve())
    spec: dict[str, Any] = {"name": Path(input_file).stem, "dataset": "items.jsonl"}
    # a sampling field every line sets to the same value is the eval's; the others are named
    shared = {k: v for k, v in samplings[0].items()
              if all(k in s and s[k] == v for s in samplings)}
    if shared:
        spec["sampling"] = shared
    differ = sorted({k for s in samplings for k in s} - set(shared))
    if differ:
        notes.warn(None, "body", f"lines set {', '.join(differ)} differently (or not on every "
                   "line); posttrain's sampling is one per eval or variant: not carried over "
                   "(set sampling: in eval.yaml)")
    if all(r == requests[0] for r in requests) and requests[0]:
        spec.update(requests[0])  # the eval's tools / tool_choice / response_format
    elif any(requests):
        differ = sorted({k for r in requests for k in r})
        notes.warn(None, "body", f"lines set different {' / '.join(differ)}; posttrain sets "
                   "them once per eval: none was carried over (set them in eval.yaml)")
    if graders is not None:
        from posttrain.loaders import yaml12

        loaded, _ = yaml12.load_file(Path(graders), what="graders file")
        if isinstance(loaded, dict) and "graders" in loaded:  # an eval file's {graders: [...]}
            loaded = loaded["graders"]
        if not isinstance(loaded, (list, dict)) or not loaded:
            raise UserError("a graders file is a list of graders, one grader, or "
                            "{graders: [...]}", file=Path(graders).resolve())
        spec["graders"] = loaded if isinstance(loaded, list) else [loaded]
    else:
        spec["graders"] = [{"type": "string_check", "name": "answered",
                            "input": "{{sample.output_text}}", "reference": "",
                            "operation": "like"}]
        notes.warn(None, "graders", "a batch file has no graders: the eval has a placeholder "
                   "(`answered`: every answer passes); give --graders FILE or edit eval.yaml")
    # every check before anything is written: the eval builds (graders, templates) from these
    from posttrain.eval import eval_from_dict

    base = Path(graders).resolve().parent if graders is not None else \
        Path(input_file).resolve().parent
    try:
        eval_from_dict(spec, source=None, base_dir=base,
                       rows=[(i + 1, row) for i, row in enumerate(rows)])
    except UserError as exc:
        named = Path(graders).resolve() if graders is not None and str(
            exc.field or "").startswith("graders") else Path(input_file).resolve()
        known = exc.file if exc.file and not exc.file.startswith("<") else None
        raise UserError(exc.message, file=known or named, line=exc.line if known else None,
                        field=exc.field) from None
    if results is not None:
        if store is None:
            raise UserError("required with --results: --store", field="--store")
        if not Path(results).is_file():
            raise UserError("batch output file not found", file=Path(results).resolve())
        # the whole output file is read and checked before anything is written
        answers, served = _read_results(Path(results), {row["id"] for row in rows})
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "items.jsonl", rows)
    eval_path = out_dir / "eval.yaml"
    eval_path.write_text("# imported from an OpenAI batch input file (posttrain import "
                         "openai-batch)\n" + dump_yaml(spec), encoding="utf-8")
    report: dict[str, Any] = {"eval": str(eval_path), "items": len(rows),
                              "models": sorted(models), "warnings": notes.lines}
    if results is not None:
        report["run"] = _store_results(eval_path, Path(results), answers, served, store,
                                       sorted(models), notes)
    return report


def _as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses API body (``output`` items) as a chat completion body; others as they are."""
    if "choices" in body or not isinstance(body.get("output"), list):
        return body
    texts, calls = [], []
    for entry in body["output"]:
        if entry.get("type") == "message":
            texts += [part.get("text", "") for part in entry.get("content") or []
                      if part.get("type") == "output_text"]
        elif entry.get("type") == "function_call":
            calls.append({"id": entry.get("call_id"), "type": "function", "function": {
                "name": entry.get("name"), "arguments": entry.get("arguments") or "{}"}})
    usage = body.get("usage") or {}
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return {"model": body.get("model"), "choices": [{"index": 0, "message": message,
                                                     "finish_reason": body.get("status")}],
            "usage": {"prompt_tokens": usage.get("input_tokens"),
                      "completion_tokens": usage.get("output_tokens"),
                      "total_tokens": usage.get("total_tokens"),
                      "prompt_tokens_details": {"cached_tokens": (usage.get(
                          "input_tokens_details") or {}).get("cached_tokens")},
                      "completion_tokens_details": {"reasoning_tokens": (usage.get(
                          "output_tokens_details") or {}).get("reasoning_tokens")}}}


#: one answer read from a batch output file: (custom_id, completion or None, error or None)
Answer = tuple[str, Any, "str | None"]


def _read_results(results: Path, ids: set[str]) -> tuple[list[Answer], set[str]]:
    """Every line of a batch output file, checked: (answers, models that served them). A line
    that is not ``{custom_id, response, error}``, a custom_id that is no request's, or one
    answered twice (which answer is right cannot be known) is one line naming the file, the
    line and the field."""
    from posttrain.interop._files import read_records
    from posttrain.models.openai_compat import completion_from_body

    answers: list[Answer] = []
    served: set[str] = set()
    first: dict[str, tuple[Path, int | None]] = {}  # custom_id -> where first answered
    for data, source in read_records(results, "batch output file"):
        if not isinstance(data, dict):
            raise source.error(f"a batch output line is an object {{id, custom_id, response, "
                               f"error}}, not {json_kind(data)}")
        cid = data.get("custom_id")
        if not isinstance(cid, str):
            raise source.error(f"required: a custom_id string (got {json_kind(cid)})", "custom_id")
        if cid not in ids:
            raise source.error(f"custom_id {cid!r} is no line of the input file", "custom_id")
        if cid in first:
            file, line = first[cid]
            where = (f"{file}:" if file != source.file else "line ") + str(line or "?")
            raise source.error(f"custom_id {cid!r} is answered twice (first on {where}): "
                               "which answer is right cannot be known; keep one line per "
                               "request", "custom_id")
        first[cid] = (source.file, source.line_of("custom_id"))
        response = data.get("response")
        if response is None:
            response = {}
        if not isinstance(response, dict):
            raise source.error(f"a response is an object {{status_code, body}}, not "
                               f"{json_kind(response)}", "response")
        body = response.get("body")
        if body is not None and not isinstance(body, dict):
            raise source.error(f"a response body is an object, not {json_kind(body)}",
                               "response.body")
        if response.get("status_code") == 200 and isinstance(body, dict):
            try:
                completion = completion_from_body(_as_chat(body), 0.0, None)
            except Exception as exc:  # noqa: BLE001
                raise source.error(f"not a chat completion ({type(exc).__name__})",
                                   "response.body") from None
            if completion.served_model:
                served.add(completion.served_model)
            answers.append((cid, completion, None))
        else:
            error = data.get("error") or (body or {}).get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            answers.append((cid, None, f"openai batch: HTTP {response.get('status_code')}: "
                                       f"{message}"))
    return answers, served


def _store_results(eval_path: Path, results: Path, answers: list[Answer], served: set[str],
                   store: str | Path | None, models: list[str], notes: Any) -> dict[str, Any]:
    from posttrain.eval import load_eval
    from posttrain.runner.progress import Counters
    from posttrain.runner.regrade import regrade_run
    from posttrain.runner.store import Store
    from posttrain.types import Item

    eval_ = load_eval(eval_path)
    by_id = {item.id: item for item in eval_.items}
    model = f"openai:{models[0]}" if len(models) == 1 else \
        f"openai:{sorted(served)[0]}" if len(served) == 1 else "openai:batch"
    if store is None:
        raise UserError("required with --results: --store", field="--store")
    with Store(store) as db:
        key = f"openai-batch-import:{results.resolve()}:{eval_.fingerprint()}"
        row = db.conn.execute("SELECT id FROM runs WHERE run_key = ?", (key,)).fetchone()
        if row is not None:
            return {"run_id": row[0], "new": False}
        info = db.create_run(run_key=key, eval_name=eval_.name, eval_path=str(eval_path),
                             eval_hash=eval_.fingerprint(), model=model, variant="default",
                             epochs=1, config={"grader_names": [g.name for g in eval_.graders],
                                               "primary": eval_.primary, "imported": True,
                                               "openai_batch_results": str(results)},
                             items=[Item(id=i.id, data=i.data, tags=i.tags)
                                    for i in eval_.items])
        for cid, completion, error in answers:
            db.record_sample(info.id, cid, 0, completion=completion, request_key=None,
                             attempts=0, error=error)
        with db.conn:
            db.conn.execute("UPDATE samples SET latency_s = NULL WHERE run_id = ?", (info.id,))
        counters = Counters(label="import batch", total=0)
        regrade_run(db, info.id, eval_, counters=counters)
        db.finish_run(info.id)
        missing = len(set(by_id) - {cid for cid, _, _ in answers})  # distinct ids
        if missing:
            notes.warn(None, "results", f"{missing} requests have no line in the output file "
                       "(they count 0 in the score)")
        return {"run_id": info.id, "new": True, "answers": len(answers),
                "requests": counters.requests, "model": model,
                "when": time.strftime("%Y-%m-%d %H:%M:%S")}

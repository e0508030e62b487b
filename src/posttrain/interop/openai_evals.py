"""OpenAI Evals -> posttrain and back: an eval (create or GET shape), its runs and output items.

``import_openai_eval`` writes ``DIR/eval.yaml`` (the testing criteria as graders, each prompt
setup of the runs as a variant), ``DIR/items.jsonl`` (the data source items, keyed by
``datasource_item_id``) and ``DIR/openai.json`` (what OpenAI called things: ids, names, the item
schema, report URLs). Each run with output items becomes a stored run with no requests: its
answers as OpenAI sampled them, OpenAI's grades first, then graded again here (OpenAI's grades
stay in the run's score history, so ``posttrain audit`` sees every flip). The import reports
OpenAI's ``result_counts`` and ``per_testing_criteria_results`` beside posttrain's, and every
item where a criterion disagrees.

``export_openai_eval`` writes the eval and its stored runs back in the API's shapes (create
body, run objects, output items), which this importer reads again to the same files and runs.

Counting as OpenAI counts: an item *passes* when every criterion passed; it is *errored* when
its sample has an error (no answer). An item a criterion could not grade here (a judge reply
that does not parse) is *unscored*, counted apart, never as a pass or a fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.interop._files import (
    Notes,
    Source,
    read_json,
    read_records,
    write_json,
    write_jsonl,
)
from posttrain.interop.openai_format import (
    content_in,
    criterion_name,
    grader_in,
    grader_out,
    messages_in,
    messages_out,
    openai_model_name,
    sampling_in,
    sampling_out,
)

ID_FIELD = "datasource_item_id"
_REF = "data_source.input_messages.item_reference"
#: an id that becomes a file name (a run id, a file id): no path separators, no `..`
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
MANIFEST = "openai.json"
_EVAL_KEYS = {"object", "id", "name", "metadata", "created_at", "data_source_config",
              "testing_criteria", "share_with_openai"}
_RUN_KEYS = {"object", "id", "eval_id", "name", "model", "status", "created_at", "report_url",
             "data_source", "metadata", "error", "result_counts", "per_model_usage",
             "per_testing_criteria_results"}
_ITEM_KEYS = {"object", "id", "run_id", "eval_id", "created_at", "status", ID_FIELD,
              "datasource_item", "results", "sample"}
_SAMPLE_KEYS = {"input", "output", "model", "finish_reason", "temperature", "top_p", "seed",
                "max_completion_tokens", "usage", "error"}


# ---- reading ------------------------------------------------------------------------------
@dataclass
class EvalDef:
    name: str
    eval_id: str | None
    metadata: dict[str, Any]
    config: dict[str, Any]
    item_schema: dict[str, Any] | None
    graders: list[dict[str, Any]]
    source: Source
    #: what GET's criteria carry as ``id`` (``name-<uuid>``), the name results use -> the name
    criterion_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class RunDef:
    id: str
    name: str
    kind: str  # jsonl | completions | responses
    model: str | None
    raw: dict[str, Any]
    source: Source
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    samples: dict[int, dict[str, Any]] = field(default_factory=dict)  # jsonl: given samples
    item_sources: dict[int, Source] = field(default_factory=dict)  # where each item was read
    messages: list[dict[str, Any]] | None = None
    reference: str | None = None  # item_reference: the item field holding the messages
    sampling: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    outputs: list[tuple[dict[str, Any], Source]] = field(default_factory=list)
    variant: str = "default"
    #: (item id, Completion or None, error, OpenAI's scores, where it was read), checked before
    #: anything is written
    answers: list[tuple[str, Any, str | None, list[Any], Source]] = field(default_factory=list)


def read_eval(path: Path, notes: Notes, *, judge: str | None = None) -> EvalDef:
    data, source = read_json(path, "eval file")
    if not isinstance(data, dict):
        raise source.error("an eval is a JSON object (the body of POST /v1/evals or what GET "
                           "/v1/evals/{id} returns)")
    notes.unknown(source, "", data, _EVAL_KEYS, "eval")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise source.error("required: the eval's name", "name")
    config = data.get("data_source_config")
    if not isinstance(config, dict):
        raise source.error("required: {type: custom, item_schema} (or logs, "
                           "stored_completions)", "data_source_config")
    kind = config.get("type")
    item_schema = None
    if kind == "custom":
        if "item_schema" in config:  # the create body
            item_schema = config["item_schema"]
        elif isinstance(config.get("schema"), dict):  # what GET returns: {item, sample} schema
            props = config["schema"].get("properties") or {}
            item_schema = props.get("item", config["schema"])
        notes.unknown(source, "data_source_config.", config,
                      {"type", "item_schema", "include_sample_schema", "schema"},
                      "custom data source config")
    elif kind in ("logs", "stored_completions"):
        notes.unknown(source, "data_source_config.", config, {"type", "metadata", "schema"},
                      f"{kind} data source config")
    else:
        raise source.error(f"unknown data source config type {kind!r} (custom, logs, "
                           "stored_completions)", "data_source_config.type")
    criteria = data.get("testing_criteria")
    if not isinstance(criteria, list) or not criteria:
        raise source.error("required: a non-empty list of graders", "testing_criteria")
    graders: list[dict[str, Any]] = []
    seen: set[str] = set()
    ids: dict[str, str] = {}
    for index, spec in enumerate(criteria):
        where = f"testing_criteria[{index}]"
        criterion_id = spec.get("id") if isinstance(spec, dict) else None
        if criterion_id is not None:  # GET's shape: the id results are named by
            spec = {k: v for k, v in spec.items() if k != "id"}
        grader = grader_in(spec, source, where, notes, judge=judge)
        if isinstance(criterion_id, str) and isinstance(grader.get("name"), str):
            ids[criterion_id] = grader["name"]
        if not isinstance(grader.get("name"), str) or not grader["name"]:
            raise source.error("required: the criterion's name", f"{where}.name")
        if grader["name"] in seen:
            raise source.error(f"two criteria are named {grader['name']!r}", f"{where}.name")
        seen.add(grader["name"])
        if grader["type"] == "multi":
            notes.warn(source, where, "a multi grader is an RFT grader, not an Evals testing "
                       "criterion at OpenAI; it is read as posttrain reads it")
        _check_grader(grader, source, where)
        graders.append(grader)
    metadata = data.get("metadata") or {}
    return EvalDef(name=name, eval_id=data.get("id"), metadata=metadata, config=config,
                   item_schema=item_schema, graders=graders, source=source,
                   criterion_ids=ids)


def _check_grader(spec: dict[str, Any], source: Source, where: str) -> None:
    """Build it now, so a bad grader names the OpenAI file and field rather than ours."""
    from posttrain.graders.base import GraderContext
    from posttrain.graders.registry import build_grader

    try:
        build_grader(spec, GraderContext(source=str(source.file), model_factory=lambda s: None))
    except UserError as exc:
        inner = f"{where}.{exc.field}" if exc.field else where
        raise source.error(exc.message, inner) from None


def _source_content(source_spec: Any, run_source: Source, where: str, files: list[Path],
                    ) -> list[tuple[dict[str, Any], Source]]:
    """The ``{item, sample?}`` rows of a run's ``source`` (file_content, or a file_id found as a
    local file)."""
    if not isinstance(source_spec, dict):
        raise run_source.error("required: {type: file_content, content} or {type: file_id, "
                               "id}", where)
    kind = source_spec.get("type")
    if kind == "file_content":
        content = source_spec.get("content")
        if not isinstance(content, list):
            raise run_source.error("required: a list of {item, sample?}", f"{where}.content")
        return [(row, run_source) for row in content]
    if kind == "file_id":
        file_id = source_spec.get("id")
        if not isinstance(file_id, str) or not _SAFE_ID.fullmatch(file_id):
            raise run_source.error(f"{file_id!r} is not a file id (letters, digits, _ . -; "
                                   "a file id names a downloaded FILE_ID.jsonl, never a path)",
                                   f"{where}.id")
        for folder in files:
            for name in (f"{file_id}.jsonl", str(file_id)):
                candidate = folder / name
                if candidate.is_file():
                    from posttrain.loaders.datasets import load_jsonl

                    return [(row, Source(candidate, line)) for line, row in
                            load_jsonl(candidate)]
        raise run_source.error(
            f"file {file_id!r} lives at OpenAI: download it (`openai api files.content`) as "
            f"{file_id}.jsonl next to the runs file or into --files DIR", f"{where}.id")
    if kind in ("stored_completions", "responses"):
        raise run_source.error(
            f"a {kind} source reads your logs at OpenAI: export them (JSONL), read them with "
            "`posttrain ingest`, and import with --items", f"{where}.type")
    raise run_source.error(f"unknown source type {kind!r} (file_content, file_id)",
                           f"{where}.type")


def _item_of(row: Any, source: Source, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not isinstance(row, dict):
        raise source.error("a data source row is {item, sample?}", where)
    if "item" not in row:  # a plain row is the item itself (as the datasets tab uploads)
        return row, None
    item = row["item"]
    if not isinstance(item, dict):
        raise source.error("must be an object", f"{where}.item")
    sample = row.get("sample")
    return item, sample if isinstance(sample, dict) else None


def read_runs(paths: list[Path], notes: Notes, files: list[Path]) -> list[RunDef]:
    runs: list[RunDef] = []
    for path in paths:
        for data, source in read_records(path, "runs file"):
            if not isinstance(data, dict) or not isinstance(data.get("data_source"), dict):
                raise source.error("a run is an object with `data_source` (the run object GET "
                                   "/v1/evals/{id}/runs returns, or the body you sent)",
                                   "data_source")
            notes.unknown(source, "", data, _RUN_KEYS, "run")
            runs.append(_read_run(data, source, notes, [source.file.parent, *files],
                                  len(runs)))
    ids = [run.id for run in runs]
    for run in runs:
        if ids.count(run.id) > 1:
            raise run.source.error(f"two runs have the id {run.id!r}", "id")
    return runs


def _read_run(data: dict[str, Any], source: Source, notes: Notes, files: list[Path],
              index: int) -> RunDef:
    ds = data["data_source"]
    kind = ds.get("type")
    if kind not in ("jsonl", "completions", "responses"):
        raise source.error(f"unknown data source type {kind!r} (jsonl, completions, "
                           "responses)", "data_source.type")
    run_id = str(data.get("id") or f"run{index + 1}")
    if not _SAFE_ID.fullmatch(run_id) or ".." in run_id:
        raise source.error(f"{run_id!r} is not a run id (letters, digits, _ . -: it names the "
                           "run's output items file on export)", "id")
    run = RunDef(id=run_id, name=str(data.get("name") or run_id), kind=kind,
                 model=ds.get("model") or data.get("model"), raw=data, source=source)
    known = {"type", "source", "model", "input_messages", "sampling_params"}
    notes.unknown(source, "data_source.", ds, known, f"{kind} data source")
    for position, (row, row_source) in enumerate(_source_content(ds.get("source"), source,
                                                                 "data_source.source", files)):
        item, sample = _item_of(row, row_source, f"data_source.source.content[{position}]")
        run.items[position] = item
        run.item_sources[position] = row_source if row_source is not source else \
            Source(source.file, source.line if source.text is None else None,  # else found
                   source.text,  # only when needed
                   f"{source.prefix}data_source.source.content[{position}].")
        if sample is not None:
            run.samples[position] = sample
    if kind == "jsonl":
        return run
    spec = ds.get("input_messages")
    if spec is None:
        raise source.error("required: {type: template, template} or {type: item_reference, "
                           "item_reference}", "data_source.input_messages")
    if spec.get("type") == "template":
        run.messages = messages_in(spec.get("template"), source,
                                   "data_source.input_messages.template", notes)
    elif spec.get("type") == "item_reference":
        ref = spec.get("item_reference")
        if not isinstance(ref, str) or not ref.startswith("item."):
            raise source.error("must name an item field: item.FIELD",
                               "data_source.input_messages.item_reference")
        run.reference = ref.removeprefix("item.")
    else:
        raise source.error(f"unknown input_messages type {spec.get('type')!r} (template, "
                           "item_reference)", "data_source.input_messages.type")
    run.sampling, run.response_format, run.tools = sampling_in(
        ds.get("sampling_params"), source, "data_source.sampling_params", notes)
    if not run.model:
        raise source.error("required: the model that sampled", "data_source.model")
    return run


def attach_outputs(runs: list[RunDef], paths: list[Path], notes: Notes) -> None:
    by_id = {run.id: run for run in runs}
    for path in paths:
        for data, source in read_records(path, "output items file"):
            if not isinstance(data, dict) or ID_FIELD not in data:
                raise source.error(f"an output item is an object with `{ID_FIELD}`", ID_FIELD)
            notes.unknown(source, "", data, _ITEM_KEYS, "output item")
            run = by_id.get(str(data.get("run_id")))
            if run is None:
                if len(runs) == 1 and data.get("run_id") is None:
                    run = runs[0]
                else:
                    raise source.error(f"names no run in --runs (runs: {', '.join(by_id)})",
                                       "run_id")
            run.outputs.append((data, source))


# ---- building the eval --------------------------------------------------------------------
def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower()
    return slug or "run"


def _collect_items(runs: list[RunDef], extra: list[tuple[int, dict[str, Any], Source]],
                   ) -> tuple[dict[int, dict[str, Any]], dict[int, Source]]:
    items: dict[int, dict[str, Any]] = {}
    origin: dict[int, Source] = {}

    def put(key: int, item: dict[str, Any], source: Source, where: str) -> None:
        if key in items and items[key] != item:
            first = origin[key]
            raise source.error(f"item {key} differs from the item {key} read from "
                               f"{first.where()}",
                               where)
        items.setdefault(key, item)
        origin.setdefault(key, source)

    for key, item, source in extra:
        put(key, item, source, "item")
    for run in runs:
        for key, item in run.items.items():
            if key in run.item_sources:
                put(key, item, run.item_sources[key], "item")
            else:
                put(key, item, run.source, f"data_source.source.content[{key}].item")
        for data, source in run.outputs:
            key = data.get(ID_FIELD)
            if not isinstance(key, int) or isinstance(key, bool):
                raise source.error("must be an integer", ID_FIELD)
            if isinstance(data.get("datasource_item"), dict):
                put(key, data["datasource_item"], source, "datasource_item")
    return dict(sorted(items.items())), origin


def _variants(runs: list[RunDef], notes: Notes) -> tuple[dict[str, dict[str, Any]], Any, Any]:
    """Each distinct prompt setup of the sampling runs becomes a variant (the first one, or the
    first item_reference one, is ``default``); returns (variants, response_format, tools)."""
    setups: dict[str, str] = {}
    variants: dict[str, dict[str, Any]] = {}
    sampled = [run for run in runs if run.kind != "jsonl"]
    ordered = sorted(sampled, key=lambda r: r.reference is None)  # item_reference first
    response_format = tools = None
    first = True
    for run in ordered:
        key = json.dumps([run.messages, run.reference, run.sampling], sort_keys=True)
        if key in setups:
            run.variant = setups[key]
        else:
            name = "default" if first else _slug(run.name)
            while name in variants:
                name += "-2"
            first = False
            setups[key] = run.variant = name
            variants[name] = {"messages": run.messages, "reference": run.reference,
                              "sampling": dict(run.sampling)}
        for value, label in ((run.response_format, "response_format"), (run.tools, "tools")):
            current = response_format if label == "response_format" else tools
            if value is not None and current is not None and value != current:
                notes.warn(run.source, f"data_source.sampling_params.{label}",
                           f"differs from another run's; the eval keeps the first ({label} is "
                           "one per eval here)")
            elif value is not None and current is None:
                if label == "response_format":
                    response_format = value
                else:
                    tools = value
    references = {v["reference"] for v in variants.values() if v["reference"]}
    if len(references) > 1:
        raise UserError("runs read their messages from different item fields "
                        f"({', '.join(sorted(references))}); import them separately")
    return variants, response_format, tools


@dataclass
class ImportedEval:
    """What ``import_openai_eval`` wrote and found."""

    eval_path: Path
    items: int
    variants: list[str]
    runs: list[dict[str, Any]]
    notes: list[str]


def build_eval_files(eval_def: EvalDef, runs: list[RunDef], items: dict[int, dict[str, Any]],
                     out_dir: Path, notes: Notes,
                     origins: dict[int, Source] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write eval.yaml, items.jsonl and openai.json; return (eval path, manifest)."""
    spec, rows, manifest = eval_files(eval_def, runs, items, notes, origins or {})
    return write_eval_files(spec, rows, manifest, out_dir), manifest


def write_eval_files(spec: dict[str, Any], rows: list[dict[str, Any]],
                     manifest: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "items.jsonl", rows)
    eval_path = out_dir / "eval.yaml"
    eval_path.write_text(
        "# imported from OpenAI Evals (posttrain import openai-eval); OpenAI's ids and names "
        "are in openai.json\n" + dump_yaml(spec), encoding="utf-8")
    write_json(out_dir / MANIFEST, manifest)
    return eval_path


def eval_files(eval_def: EvalDef, runs: list[RunDef], items: dict[int, dict[str, Any]],
               notes: Notes, origins: dict[int, Source],
               ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The eval (spec), its rows and openai.json, in memory: (spec, rows, manifest)."""
    if not items:
        raise eval_def.source.error("no items: OpenAI keeps an eval's items in its runs' data "
                                    "sources; give --runs (with file_content or a downloaded "
                                    "file_id), --output-items or --items FILE.jsonl",
                                    "data_source_config")
    variants, response_format, tools = _variants(runs, notes)
    reference = next((v["reference"] for v in variants.values() if v["reference"]), None)
    rows = []
    for key, item in items.items():
        if ID_FIELD in item:
            raise UserError(f"item {key} has a field named {ID_FIELD!r}, which the import uses "
                            "for the item's id")
        row = {ID_FIELD: key, **item}
        origin = origins.get(key, eval_def.source)
        if reference:
            if reference != "messages" and "messages" in item:
                raise origin.error(f"item {key} has its own `messages` and the runs read "
                                   f"item.{reference}: import them separately", "messages")
            if reference not in item:
                run = next(r for r in runs if r.reference == reference)
                raise origin.error(f"item {key} has no field {reference!r}, which run "
                                   f"{run.id}'s input_messages.item_reference names "
                                   f"({run.source.file}:{run.source.line_of(_REF)})",
                                   reference)
            row["messages"] = messages_in(item.get(reference), origin, reference, notes)
        rows.append(row)
    spec: dict[str, Any] = {"name": eval_def.name}
    if eval_def.metadata.get("description"):
        spec["description"] = str(eval_def.metadata["description"])
    spec["dataset"] = "items.jsonl"
    spec["id_field"] = ID_FIELD
    default = variants.get("default")
    if default is not None and default["messages"] is not None:
        spec["messages"] = default["messages"]
    named = {}
    for name, variant in variants.items():
        entry: dict[str, Any] = {}
        if name != "default" and variant["messages"] is not None:
            entry["messages"] = variant["messages"]
        if variant["sampling"]:
            entry["sampling"] = variant["sampling"]
        if name != "default" or entry:
            named[name] = entry
    if named:
        spec["variants"] = named
    if response_format is not None:
        spec["response_format"] = response_format
    if tools is not None:
        spec["tools"] = tools
    spec["graders"] = eval_def.graders
    manifest = {
        "format": "posttrain.openai-eval/1", "eval_id": eval_def.eval_id,
        "name": eval_def.name, "metadata": eval_def.metadata, "item_schema": eval_def.item_schema,
        "messages_from": reference if reference and reference != "messages" else None,
        "runs": [{"id": run.id, "name": run.name, "kind": run.kind, "model": run.model,
                  "variant": None if run.kind == "jsonl" else run.variant,
                  "report_url": run.raw.get("report_url"),
                  "items": sorted(run.items) or sorted(int(a[0]) for a in run.answers)}
                 for run in runs],
    }
    return spec, rows, manifest


def dump_yaml(data: Any) -> str:
    """YAML for a file people read: keys in order, text with newlines (python graders' source)
    as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value and not value.startswith((" ", "\n")) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


# ---- runs into the store ------------------------------------------------------------------
def _output_text(sample: dict[str, Any], source: Source, where: str) -> tuple[str, list[Any]]:
    """The answer's text and tool calls from an output item's ``sample.output`` (or a jsonl
    sample's ``output_text`` / ``choices``)."""
    if "output_text" in sample:
        text = sample.get("output_text")
        return (text if isinstance(text, str) else json.dumps(text)), \
            list(sample.get("output_tools") or [])
    texts, calls = [], []
    output = sample.get("output")
    if output is None and sample.get("choices"):
        output = [c.get("message") or {} for c in sample["choices"]]
    for index, message in enumerate(output or []):
        if not isinstance(message, dict):
            raise source.error("an output message is {role, content}", f"{where}.output[{index}]")
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if content is not None:
            converted = content_in(content, source, f"{where}.output[{index}].content")
            texts.append(converted if isinstance(converted, str) else
                         "".join(p.get("text", "") for p in converted))
        calls.extend(message.get("tool_calls") or [])
    return "".join(texts), calls


def _completion(sample: dict[str, Any], source: Source, where: str) -> tuple[Any, str | None]:
    """(Completion or None, error text) of an OpenAI sample."""
    from posttrain.types import Completion

    error = sample.get("error") or {}
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        return None, f"openai: {error.get('code') or 'error'}: {error.get('message') or ''}".strip()
    usage = sample.get("usage") or {}
    text, calls = _output_text(sample, source, where)
    return Completion(
        text=text, tool_calls=calls, finish_reason=sample.get("finish_reason"),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(usage.get("cached_tokens") or 0),
        served_model=sample.get("model")), None


_RESULT_KEYS = {"name", "type", "score", "passed", "sample", "status", "explanation",
                "metadata"}


def score_range(spec: dict[str, Any]) -> tuple[float, float] | None:
    """A score_model criterion's ``range`` (default [0, 1]): OpenAI's scores are on it,
    posttrain's values are normalised into [0, 1]."""
    if spec.get("type") != "score_model":
        return None
    bounds = spec.get("range") or [0, 1]
    return float(bounds[0]), float(bounds[1])


def _openai_scores(results: Any, source: Source, specs: dict[str, dict[str, Any]],
                   notes: Notes | None = None, ids: dict[str, str] | None = None) -> list[Any]:
    """OpenAI's results as posttrain scores, on posttrain's scale: a score_model's score
    (8.0 on [0, 10]) is stored normalised (0.8), the raw score in the explanation."""
    from posttrain.types import Score

    if results is not None and not isinstance(results, list):
        raise source.error("must be a list of {name, score, passed}", "results")
    scores = []
    seen: set[str] = set()
    for index, result in enumerate(results or []):
        at = f"results[{index}]"
        if not isinstance(result, dict) or not isinstance(result.get("name"), str):
            raise source.error("a result is {name, score, passed}", at)
        if notes is not None:
            notes.unknown(source, f"{at}.", result, _RESULT_KEYS, "result")
        name = (ids or {}).get(result["name"]) or criterion_name(result["name"])
        if name not in specs:
            raise source.error(f"{result['name']!r} names no testing criterion of the eval "
                               f"({', '.join(specs)})", f"{at}.name")
        if name in seen:
            raise source.error(f"a second result for the criterion {name!r}", f"{at}.name")
        seen.add(name)
        value = result.get("score")
        if value is not None and (isinstance(value, bool) or
                                  not isinstance(value, (int, float))):
            raise source.error(f"must be a number, got {value!r}", f"{at}.score")
        passed = result.get("passed")
        if passed is not None and not isinstance(passed, bool):
            raise source.error(f"must be true or false, got {passed!r}", f"{at}.passed")
        status = result.get("status") or ("scored" if value is not None else "unscored")
        if status not in ("scored", "unscored", "error"):
            raise source.error(f"unknown status {status!r} (scored, unscored, error)",
                               f"{at}.status")
        explanation = str(result.get("explanation") or "graded by OpenAI")
        bounds = score_range(specs[name])
        if bounds is not None and value is not None:
            lo, hi = bounds
            if not lo <= float(value) <= hi:
                raise source.error(f"{value:g} is outside the criterion's range "
                                   f"[{lo:g}, {hi:g}]", f"{at}.score")
            explanation = f"{explanation}: result {float(value):g} in [{lo:g}, {hi:g}]"
            value = (float(value) - lo) / (hi - lo)
        elif value is not None and not 0.0 <= float(value) <= 1.0 and notes is not None:
            notes.warn(source, f"{at}.score", f"{value:g} is outside [0, 1], where "
                       f"{specs[name].get('type')} scores lie")
        scores.append(Score(value=None if value is None else float(value),
                            passed=passed, status=status, explanation=explanation, name=name))
    return scores


def prepare_answers(run: RunDef, specs: dict[str, dict[str, Any]], notes: Notes,
                    ids: dict[str, str] | None = None) -> None:
    """Read every answer of a run (``run.answers``) before anything is written: duplicate
    output items (identical ones dropped and counted, conflicting ones refused), an output item
    for an item the run does not have, a bad sample or result."""
    run.answers = []
    if run.outputs:
        seen: dict[int, tuple[dict[str, Any], Source]] = {}
        kept: list[tuple[dict[str, Any], Source]] = []
        dropped = 0
        for data, source in run.outputs:
            key = data.get(ID_FIELD)
            if not isinstance(key, int) or isinstance(key, bool):
                raise source.error("must be an integer", ID_FIELD)
            if run.items and key not in run.items:
                keys = sorted(run.items)
                span = f"{keys[0]}-{keys[-1]}" if keys == list(range(keys[0], keys[-1] + 1)) \
                    else ", ".join(map(str, keys))
                raise source.error(f"{key} is not an item of run {run.id} ({span})", ID_FIELD)
            if key in seen:
                first, first_source = seen[key]
                if _same_output(first, data):
                    dropped += 1
                    continue
                where = first_source.where()
                raise source.error(f"item {key} appears twice, with different answers or "
                                   f"grades (first at {where}); keep one", ID_FIELD)
            seen[key] = (data, source)
            kept.append((data, source))
        if dropped:
            notes.warn(None, None, f"run {run.id}: {dropped} output "
                       f"{'item appears' if dropped == 1 else 'items appear'} twice, identical: "
                       "read once")
        run.outputs = kept
        for data, source in sorted(kept, key=lambda o: o[0][ID_FIELD]):
            sample = data.get("sample") or {}
            if not isinstance(sample, dict):
                raise source.error("must be an object", "sample")
            notes.unknown(source, "sample.", sample, _SAMPLE_KEYS, "sample")
            completion, error = _completion(sample, source, "sample")
            run.answers.append((str(data[ID_FIELD]), completion, error,
                                _openai_scores(data.get("results"), source, specs, notes, ids),
                                source))
    else:
        for key, sample in sorted(run.samples.items()):
            completion, error = _completion(sample, run.source,
                                            f"data_source.source.content[{key}].sample")
            run.answers.append((str(key), completion, error, [], run.source))


def _check_counts(run: RunDef, notes: Notes) -> None:
    """OpenAI's stored counts against themselves and against the output items given."""
    counts_ = run.raw.get("result_counts")
    if not isinstance(counts_, dict):
        return
    total = counts_.get("total")
    parts = [counts_.get(k) for k in ("passed", "failed", "errored")]
    if isinstance(total, int) and all(isinstance(v, int) for v in parts) and \
            sum(parts) != total:  # type: ignore[arg-type]
        notes.warn(run.source, "result_counts", f"passed + failed + errored is {sum(parts)}, "  # type: ignore[arg-type]
                   f"not the total {total}")
    if run.outputs and isinstance(total, int) and total != len(run.answers):
        notes.warn(run.source, "result_counts.total",
                   f"{total} items, but {len(run.answers)} output items were given for run "
                   f"{run.id}: the counts here are of those {len(run.answers)} (page through "
                   "every output item to compare all)")


def _same_output(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same answer and grades (an output item listed twice, e.g. two overlapping pages)."""
    skip = {"id", "created_at"}
    return {k: v for k, v in a.items() if k not in skip} == \
        {k: v for k, v in b.items() if k not in skip}


def _digest(run: RunDef) -> str:
    """What a stored import holds: its answers and OpenAI's grades (to tell a re-import of the
    same output items from one of different ones)."""
    import hashlib

    rows = [[item_id, completion.to_record() if completion else None, error,
             [[s.name, s.value, s.passed, s.status] for s in scores]]
            for item_id, completion, error, scores, _ in run.answers]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def _stored_answers(store: Any, run_id: str) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for row in store.samples(run_id):
        text = json.loads(row["completion"]).get("text") if row["completion"] else None
        out[row["item_id"]] = (text, row["error"])
    return out


def _drop_run(store: Any, run_id: str) -> None:
    """Delete an interrupted import (never a finished run)."""
    with store.conn:
        for table in ("samples", "scores", "score_history", "run_items"):
            store.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
        store.conn.execute("DELETE FROM runs WHERE id = ? AND status = 'running'", (run_id,))


def store_run(store: Any, eval_: Any, run: RunDef, eval_id: str | None,
              notes: Notes | None = None) -> tuple[Any, str]:
    """The run's answers (``run.answers``, read by :func:`prepare_answers`) and OpenAI's grades
    as a stored run with no requests; returns (run, state). ``state`` is ``new``; ``stored``
    (imported before, finished, the same answers: nothing stored twice); ``replaced`` (an
    interrupted import of it, never finished, is replaced); or ``changed`` (a finished import
    of this run holds different answers or grades: it is kept, and these are stored as a new
    run, with a note listing the differences). The run stays ``running`` until the caller
    has graded it (:meth:`Store.finish_run`)."""
    from posttrain.types import Item

    notes = notes or Notes()
    key = f"openai-import:{eval_id or eval_.name}:{run.id}:{eval_.fingerprint()}"
    digest = _digest(run)
    state = "new"
    for row in store.conn.execute("SELECT id, status FROM runs WHERE run_key = ? "
                                  "ORDER BY created", (key,)).fetchall():
        old = store.get_run(row[0])
        if old.status != "finished":
            have = sum(1 for _ in store.samples(old.id))
            notes.warn(None, None, f"run {run.id}: an interrupted import ({old.id}, {have} of "
                       f"{len(run.answers)} answers, never finished) is replaced")
            _drop_run(store, old.id)
            state = "replaced"
            continue
        if old.config.get("import_digest") == digest:
            return old, "stored"
        stored = _stored_answers(store, old.id)
        differ = [item_id for item_id, completion, error, _, _ in run.answers
                  if stored.get(item_id) != (completion.text if completion else None, error)]
        differ += [i for i in stored if i not in {a[0] for a in run.answers}]
        shown = ", ".join(differ[:10]) + (", ..." if len(differ) > 10 else "")
        if not differ and "import_digest" not in old.config:  # imported by an older version
            return old, "stored"
        what = (f"{len(differ)} answers differ (items {shown})" if differ else
                "the same answers, different grades or usage")
        notes.warn(None, None, f"run {run.id} was imported before as {old.id} with other output "
                   f"items: {what}; stored as a new run, the old one kept")
        with store.conn:  # the old one keeps its data, no longer this run's identity
            store.conn.execute("UPDATE runs SET run_key = ? WHERE id = ?",
                               (f"{key}:superseded:{old.id}", old.id))
        state = "changed"
    items_by_id = {item.id: item for item in eval_.items}
    ids = [item_id for item_id, *_ in run.answers]
    covered = [items_by_id[i] for i in ids if i in items_by_id] or \
        [items_by_id[str(k)] for k in run.items if str(k) in items_by_id]
    models = {str(c.served_model) for _, c, *_ in run.answers if c is not None and c.served_model}
    model = (f"openai:{run.model}" if run.model else
             f"openai:{next(iter(sorted(models)))}" if len(models) == 1 else f"jsonl:{run.name}")
    provenance = {k: run.raw.get(k) for k in ("id", "name", "report_url", "result_counts",
                                               "per_testing_criteria_results", "per_model_usage",
                                               "status", "created_at", "metadata", "eval_id")
                  if run.raw.get(k) is not None}
    provenance.setdefault("id", run.id)
    provenance["kind"] = run.kind
    if run.kind == "jsonl":
        provenance["samples"] = {str(k): v for k, v in run.samples.items()}
    info = store.create_run(
        run_key=key, eval_name=eval_.name, eval_path=str(eval_.source) if eval_.source else None,
        eval_hash=eval_.fingerprint(), model=model,
        variant=run.variant if run.kind != "jsonl" else "default", epochs=1,
        config={"openai": provenance, "grader_names": [g.name for g in eval_.graders],
                "primary": eval_.primary, "imported": True, "import_digest": digest},
        items=[Item(id=i.id, data=i.data, tags=i.tags) for i in covered])
    for item_id, completion, error, scores, _ in run.answers:
        store.record_sample(info.id, item_id, 0, completion=completion, request_key=None,
                            attempts=0, error=error, scores=scores)
    with store.conn:  # latency is not known: empty, not 0 s
        store.conn.execute("UPDATE samples SET latency_s = NULL WHERE run_id = ?", (info.id,))
    return store.get_run(info.id), state


def counts(store: Any, run_id: str, criteria: list[str]) -> dict[str, Any]:
    """``result_counts`` and ``per_testing_criteria_results`` of a stored run's current grades,
    counted as OpenAI counts (plus ``unscored``: items a criterion could not grade)."""
    grades: dict[str, dict[str, Any]] = {}
    for row in store.scores(run_id):
        grades.setdefault(row["item_id"], {})[row["grader"]] = row
    total = errored = passed = failed = unscored = 0
    per = {name: {"passed": 0, "failed": 0, "unscored": 0} for name in criteria}
    for sample in store.samples(run_id):
        total += 1
        if sample["status"] != "ok":
            errored += 1
            continue
        mine = grades.get(sample["item_id"], {})
        states = []
        for name in criteria:
            row = mine.get(name)
            if row is None or row["status"] != "scored" or row["passed"] is None:
                per[name]["unscored"] += 1
                states.append(None)
            else:
                per[name]["passed" if row["passed"] else "failed"] += 1
                states.append(bool(row["passed"]))
        if any(s is False for s in states):
            failed += 1
        elif any(s is None for s in states):
            unscored += 1
        else:
            passed += 1
    return {"result_counts": {"total": total, "errored": errored, "failed": failed,
                              "passed": passed, "unscored": unscored},
            "per_testing_criteria_results": [
                {"testing_criteria": name, **values} for name, values in per.items()]}


def disagreements(store: Any, run_id: str, eval_: Any = None) -> list[dict[str, Any]]:
    """Per item and criterion where OpenAI's stored grade (the run's first grades, now in its
    score history) and posttrain's pass/fail differ.

    posttrain grades an answer without its surrounding whitespace (``"Paris\\n"`` is
    ``"Paris"``); OpenAI compared the text as sampled. With ``eval_``, a disagreement that goes
    away when the criterion (one that calls no model) grades the text as sampled is marked
    ``"whitespace": True``: not a misgrade, the known difference."""
    first: dict[tuple[str, str], Any] = {}
    for row in store.score_history(run_id):
        first.setdefault((row["item_id"], row["grader"]), row)
    out = []
    for row in store.scores(run_id):
        theirs = first.get((row["item_id"], row["grader"]))
        if theirs is None:
            continue
        mine = None if row["status"] != "scored" else \
            (None if row["passed"] is None else bool(row["passed"]))
        old = None if theirs["passed"] is None else bool(theirs["passed"])
        if mine != old:
            out.append({"item": row["item_id"], "criterion": row["grader"],
                        "openai": {"passed": old, "score": theirs["value"]},
                        "posttrain": {"passed": mine, "score": row["value"],
                                      "status": row["status"],
                                      "explanation": row["explanation"] or ""},
                        "whitespace": False})
    if eval_ is not None and out:
        _mark_whitespace(store, run_id, eval_, out)
    return out


def _mark_whitespace(store: Any, run_id: str, eval_: Any, found: list[dict[str, Any]]) -> None:
    from posttrain.types import Completion

    graders = {g.name: g for g in eval_.graders}
    items = {item.id: item for item in eval_.items}
    texts = {row["item_id"]: Completion.from_record(json.loads(row["completion"]))
             for row in store.samples(run_id) if row["completion"]}
    for d in found:
        completion = texts.get(d["item"])
        grader = graders.get(d["criterion"])
        item = items.get(d["item"])
        if completion is None or grader is None or item is None or grader.is_async or \
                completion.text == completion.text.strip():
            continue
        sample = completion.to_sample(eval_.response_format)
        sample["output_text"] = completion.text
        sample["choices"][0]["message"]["content"] = completion.text
        try:
            raw = grader.grade(sample, item.data)
        except Exception:  # noqa: BLE001 - a courtesy check; the disagreement stays listed
            continue
        if raw.status == "scored" and raw.passed is not None and \
                bool(raw.passed) == d["openai"]["passed"]:
            d["whitespace"] = True


_ITEM_FIELD = re.compile(r"(?<!\\)\{\{\s*item\.([A-Za-z_][A-Za-z0-9_-]*)")


def _template_uses(value: Any, where: str) -> list[tuple[str, str]]:
    """(item field, where) for every ``{{item.X}}`` in a grader or prompt (python source
    aside: it reads ``item`` as a dict)."""
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        out += [(name, where) for name in _ITEM_FIELD.findall(value)]
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in ("source", "name", "type", "model", "labels", "passing_labels"):
                out += _template_uses(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += _template_uses(inner, f"{where}[{index}]")
    return out


def check_item_fields(eval_def: EvalDef, runs: list[RunDef], items: dict[int, dict[str, Any]],
                      origins: dict[int, Source], notes: Notes) -> None:
    """Every ``{{item.X}}`` of the criteria and prompts against every item (never the first
    row only, so no result depends on row order): a field no item has and the item schema does
    not declare is a typo, refused at the template's file:line: field; items without a field
    that others have (or the schema declares) are warned, naming their file:line, and written
    with it empty, as OpenAI rendered it."""
    from posttrain.errors import did_you_mean

    declared = set((eval_def.item_schema or {}).get("properties") or {})
    present = {name for item in items.values() for name in item}
    uses = [(name, eval_def.source, where) for index, grader in enumerate(eval_def.graders)
            for name, where in _template_uses(grader, f"testing_criteria[{index}]")]
    for run in runs:
        if run.messages is not None:
            uses += [(name, run.source, where) for name, where in _template_uses(
                run.raw["data_source"]["input_messages"].get("template"),
                "data_source.input_messages.template")]
    warned: set[str] = set()
    for name, source, where in uses:
        if name not in present and name not in declared:
            raise source.error(f"{{{{item.{name}}}}}: no item has a field {name!r}"
                               + did_you_mean(name, present | declared), where)
        missing = [key for key, item in items.items() if name not in item]
        if missing and name not in warned:
            warned.add(name)
            shown = [origins.get(key) for key in missing[:3]]
            places = ", ".join(o.where() if o else f"item {k}"
                               for o, k in zip(shown, missing[:3], strict=True))
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            notes.warn(source, where, f"{{{{item.{name}}}}}: {len(missing)} "
                       f"item{'s have' if len(missing) > 1 else ' has'} no field {name!r} "
                       f"({places}{more}): written as an empty string, as OpenAI renders a "
                       "missing field")
            for key in missing:
                items[key][name] = ""


def _check_in_memory(spec: dict[str, Any], rows: list[dict[str, Any]], eval_def: EvalDef,
                     runs: list[RunDef], origins: dict[int, Source], out_dir: Path,
                     factory: Any) -> Any:
    """Build the eval from memory before anything is written; a problem names the user's
    file, line and field (a criterion, a run's prompt, an item), never the files the import
    would write."""
    from posttrain.eval import eval_from_dict

    eval_path = out_dir / "eval.yaml"
    try:
        return eval_from_dict(spec, source=eval_path, base_dir=out_dir, model_factory=factory,
                              rows=[(index + 1, row) for index, row in enumerate(rows)])
    except UserError as exc:
        message = exc.message
        keys = [row[ID_FIELD] for row in rows]

        def origin_of(line: int) -> Source | None:
            return origins.get(keys[line - 1]) if 0 < line <= len(keys) else None

        def place(match: re.Match[str]) -> str:
            o = origin_of(int(match.group(1)))
            return o.where() if o is not None else match.group(0)

        message = re.sub(re.escape(str(out_dir / "items.jsonl")) + r":(\d+)", place, message)
        field_path = exc.field or ""
        if exc.file == str(out_dir / "items.jsonl") and exc.line:
            o = origin_of(exc.line)
            if o is not None:
                raise o.error(message, field_path or None) from None
        match = re.match(r"graders\[(\d+)\](.*)", field_path)
        if match:
            raise eval_def.source.error(
                message, f"testing_criteria[{match.group(1)}]{match.group(2)}") from None
        match = re.match(r"variants\.([^.]+)\.sampling\.([a-z_]+)(.*)", field_path)
        run = next((r for r in runs if match and r.variant == match.group(1)), None)
        if match and run is not None:
            from posttrain.interop.openai_format import SAMPLING_OUT

            key = SAMPLING_OUT.get(match.group(2), match.group(2))
            raise run.source.error(message, f"data_source.sampling_params.{key}") from None
        match = re.match(r"(?:variants\.([^.]+)\.)?messages(.*)", field_path)
        if match:
            variant = match.group(1) or "default"
            run = next((r for r in runs if r.variant == variant and r.messages is not None),
                       None)
            if run is not None:
                raise run.source.error(message, "data_source.input_messages.template"
                                       + match.group(2)) from None
        raise eval_def.source.error(message, field_path or None) from None


def _judge_factory(judge: str | None) -> Any:
    """``--judge SPEC``: this import's grading calls SPEC for every judge criterion; the eval
    file keeps (and export writes) the model OpenAI's criterion names."""
    if not judge:
        return None
    from posttrain.eval import resolve_judge

    return lambda _spec: resolve_judge(judge)


def import_openai_eval(eval_file: str | Path, out_dir: str | Path, *,
                       runs: list[str | Path] = (), output_items: list[str | Path] = (),
                       items_file: str | Path | None = None, files: list[str | Path] = (),
                       store: str | Path | None = None, judge: str | None = None,
                       grade: bool = True) -> ImportedEval:
    """Import an eval (and its runs and output items); see the module docstring."""
    from posttrain.eval import load_eval

    notes = Notes()
    eval_def = read_eval(Path(eval_file), notes)  # the eval keeps OpenAI's judges
    run_defs = read_runs([Path(p) for p in runs], notes, [Path(p) for p in files])
    attach_outputs(run_defs, [Path(p) for p in output_items], notes)
    if output_items and not run_defs:
        raise UserError("output items need their runs (--runs): the runs hold the prompts and "
                        "models", field="--output-items")
    extra: list[tuple[int, dict[str, Any], Source]] = []
    if items_file is not None:
        for position, (data, source) in enumerate(read_records(Path(items_file), "items file")):
            item, _ = _item_of(data, source, "item")
            key = item.get(ID_FIELD)
            if isinstance(key, int) and not isinstance(key, bool):  # an import's items.jsonl
                item = {k: v for k, v in item.items() if k != ID_FIELD}
            else:
                key = position
            extra.append((key, item, source))
    if eval_def.config.get("type") in ("logs", "stored_completions"):
        if items_file is None:
            raise eval_def.source.error(
                f"a {eval_def.config['type']} eval reads your stored Chat Completions / "
                "Responses logs, which live at OpenAI: export them (JSONL), read them with "
                "`posttrain ingest LOGS.jsonl -o DIR` (redacted, deduplicated), then import "
                "this eval with --items DIR/dataset.jsonl", "data_source_config.type")
        # the logs' metadata filter (usecase=chatbot) becomes each item's tags
        filters = eval_def.config.get("metadata") or {}
        tags = [f"{key}:{value}" for key, value in filters.items()]
        for _, item, _ in extra:
            if tags:
                item["tags"] = [*(item.get("tags") or []), *tags]
    specs = {str(g["name"]): g for g in eval_def.graders}
    for run in run_defs:  # every answer read and checked before anything is written
        prepare_answers(run, specs, notes, eval_def.criterion_ids)
        _check_counts(run, notes)
    items, origins = _collect_items(run_defs, extra)
    for run in run_defs:
        for item_id, _, _, _, source in run.answers:
            if int(item_id) not in items:
                raise source.error(f"item {item_id} is in no run's data source (give the run's "
                                   "data source, the output items' datasource_item or --items)",
                                   ID_FIELD)
    out_dir = Path(out_dir).resolve()
    if not items:
        raise eval_def.source.error("no items: OpenAI keeps an eval's items in its runs' data "
                                    "sources; give --runs (with file_content or a downloaded "
                                    "file_id), --output-items or --items FILE.jsonl",
                                    "data_source_config")
    check_item_fields(eval_def, run_defs, items, origins, notes)
    spec, rows, manifest = eval_files(eval_def, run_defs, items, notes, origins)
    factory = _judge_factory(judge)
    eval_ = _check_in_memory(spec, rows, eval_def, run_defs, origins, out_dir, factory)
    reports: list[dict[str, Any]] = []
    stored = [run for run in run_defs if run.outputs or run.samples]
    if stored and store is not None and grade:
        # judges reachable (a key, a local model) before anything is written or stored
        import asyncio

        from posttrain.runner.preflight import check_judge_requests, check_models, judge_models

        judges = judge_models(eval_.graders)
        checked = eval_

        async def check() -> None:
            try:
                await check_models(judges)
            finally:  # their clients closed in the loop that opened them
                for grader in checked.graders:
                    await grader.aclose()

        if judges:
            try:
                asyncio.run(check())
            except UserError as exc:
                first = next(i for i, g in enumerate(eval_def.graders)
                             if g.get("type") in ("score_model", "label_model", "multi"))
                raise eval_def.source.error(
                    f"a judge: {exc.message} (grade the judge criteria with a local model: "
                    "--judge SPEC; or store OpenAI's grades only: --no-grade)",
                    f"testing_criteria[{first}].model") from None
            try:
                check_judge_requests(eval_)
            except UserError as exc:  # named in the eval file OpenAI wrote, not ours
                match = re.match(r"graders\[(\d+)\](.*)", exc.field or "")
                if match is None:
                    raise
                raise eval_def.source.error(
                    exc.message, f"testing_criteria[{match.group(1)}]{match.group(2)}"
                ) from None
    eval_path = write_eval_files(spec, rows, manifest, out_dir)
    eval_ = load_eval(eval_path, model_factory=factory)
    if stored and store is not None:
        from posttrain.runner.progress import Counters
        from posttrain.runner.regrade import regrade_run
        from posttrain.runner.store import Store

        criteria = [g.name for g in eval_.graders]
        with Store(store) as db:
            for run in stored:
                info, state = store_run(db, eval_, run, eval_def.eval_id, notes)
                new = state != "stored"
                report: dict[str, Any] = {"openai_run": run.id, "name": run.name,
                                          "run_id": info.id, "model": info.model,
                                          "variant": info.variant, "new": new, "state": state,
                                          "items": len(run.answers)}
                theirs = {k: run.raw.get(k) for k in ("result_counts",
                                                      "per_testing_criteria_results")}
                report["openai"] = _strip_names(theirs, eval_def.criterion_ids)
                if run.outputs:
                    report["openai_from_items"] = counts(db, info.id, criteria) if new else None
                if grade and new:
                    counters = Counters(label=f"import {run.id}", total=0)
                    # OpenAI's grades stay in the history, where posttrain's agree too
                    regrade_run(db, info.id, eval_, counters=counters, keep_all=True)
                    eval_ = load_eval(eval_path, model_factory=factory)  # closed
                    report["requests"] = counters.requests
                if grade and new and judge and any(g.get("type") in ("score_model",
                                                                       "label_model", "multi")
                                                   for g in eval_def.graders):
                    db.update_run_config(info.id, {"judge_override": judge})
                    report["judge"] = judge
                if new:  # finished only when every answer is stored (and graded)
                    db.finish_run(info.id)
                report["posttrain"] = counts(db, info.id, criteria)
                report["disagreements"] = disagreements(db, info.id, eval_)
                reports.append(report)
    return ImportedEval(eval_path=eval_path, items=len(items),
                        variants=list(eval_.variants), runs=reports, notes=notes.lines)


def _error_out(text: str) -> dict[str, str]:
    """A stored sample error as OpenAI's ``{code, message}`` (an imported one as it was)."""
    if text.startswith("openai: "):
        code, _, message = text.removeprefix("openai: ").partition(": ")
        return {"code": code, "message": message}
    return {"code": "posttrain_error", "message": text}


def _strip_names(counts_: dict[str, Any], ids: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    per = counts_.get("per_testing_criteria_results")
    if isinstance(per, list):
        counts_ = dict(counts_)
        counts_["per_testing_criteria_results"] = [
            {**entry, "testing_criteria": (ids or {}).get(str(entry.get("testing_criteria")))
             or criterion_name(str(entry.get("testing_criteria")))}
            for entry in per if isinstance(entry, dict)]
    return counts_


# ---- export -------------------------------------------------------------------------------
def export_openai_eval(eval_file: str | Path, out_dir: str | Path, *,
                       store: str | Path | None = None, run_refs: list[str] = ()
                       ) -> dict[str, Any]:
    """Write ``eval.json`` (create body), ``runs.json`` (run objects with their data sources
    and posttrain's counts) and ``output_items/RUN.jsonl`` for the eval's stored runs."""
    from posttrain.eval import load_eval
    from posttrain.loaders import yaml12

    eval_path = Path(eval_file).resolve()
    eval_ = load_eval(eval_path)
    spec, _ = yaml12.load_file(eval_path, what="eval file", items_key="items")
    manifest_path = eval_path.parent / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    messages_from = manifest.get("messages_from")
    id_field = spec.get("id_field", "id")

    def openai_item(data: dict[str, Any]) -> dict[str, Any]:
        item = {k: v for k, v in data.items() if k != ID_FIELD}
        if messages_from:
            item.pop("messages", None)
        return item

    keys: dict[str, int] = {}
    for position, item in enumerate(eval_.items):
        value = item.data.get(id_field) if id_field == ID_FIELD else None
        keys[item.id] = value if isinstance(value, int) else position
    item_schema = manifest.get("item_schema") or {
        "type": "object", "properties": {k: {} for k in openai_item(eval_.items[0].data)}}
    body = {"name": eval_.name, "metadata": manifest.get("metadata") or {},
            "data_source_config": {"type": "custom", "item_schema": item_schema,
                                   "include_sample_schema": True},
            "testing_criteria": [grader_out(g) for g in spec["graders"]]}
    if manifest.get("eval_id"):
        body = {"id": manifest["eval_id"], **body}
    out_dir = Path(out_dir).resolve()
    write_json(out_dir / "eval.json", body)
    runs_out: list[dict[str, Any]] = []
    planned = [r for r in manifest.get("runs") or [] if isinstance(r, dict)]
    stored: dict[str, Any] = {}  # OpenAI run id (or posttrain-ID) -> the newest stored run
    if store is not None and Path(store).exists():
        from posttrain.runner.store import Store

        with Store(store, reading=True) as db:
            chosen = ([db.resolve_run(r) for r in run_refs] if run_refs
                      else list(reversed(db.list_runs(eval_.name))))
            for info in chosen:
                if info.status != "finished":
                    continue  # an interrupted import or run: not a result
                provenance = info.config.get("openai") or {}
                stored[str(provenance.get("id") or f"posttrain-{info.id}")] = info
            order = [str(r.get("id")) for r in planned if str(r.get("id")) in stored]
            order += [k for k in stored if k not in order]
            for key in order:
                run_obj, outputs = _export_run(db, stored[key], eval_, spec, keys, openai_item,
                                               messages_from, manifest.get("eval_id"))
                runs_out.append(run_obj)
                write_jsonl(out_dir / "output_items" / f"{_file_name(run_obj['id'])}.jsonl",
                            outputs)
    if not run_refs:  # a run with no stored answers still goes back, with its data source
        by_key = {keys[item.id]: item for item in eval_.items}
        done = {r["id"] for r in runs_out}
        for index, plan in enumerate(planned):
            if str(plan.get("id")) in done:
                continue
            content = [{"item": openai_item(by_key[k].data)} for k in plan.get("items") or []
                       if k in by_key]
            kind = plan.get("kind") or "completions"
            model = plan.get("model")
            run_obj = {"object": "eval.run", "id": plan.get("id"),
                       "eval_id": manifest.get("eval_id"), "name": plan.get("name"),
                       "model": model, "status": plan.get("status") or "completed",
                       "data_source": _data_source(kind, eval_, plan.get("variant") or "default",
                                                   model, content, messages_from)}
            for k in ("created_at", "report_url", "metadata", "result_counts",
                      "per_testing_criteria_results"):
                if plan.get(k) is not None:
                    run_obj[k] = plan[k]
            runs_out.insert(min(index, len(runs_out)), run_obj)
    write_json(out_dir / "runs.json", runs_out)
    return {"eval": str(out_dir / "eval.json"), "runs": len(runs_out),
            "output_items": str(out_dir / "output_items")}


def _data_source(kind: str, eval_: Any, variant: str, model: str | None,
                 content: list[dict[str, Any]], messages_from: str | None) -> dict[str, Any]:
    """A run's ``data_source`` in the API's shape for its kind (jsonl, completions, responses:
    ``text.format`` and the flat function tools for responses)."""
    source = {"type": "file_content", "content": content}
    if kind == "jsonl":
        return {"type": "jsonl", "source": source}
    v = eval_.variants.get(variant) or eval_.variants.get("default")
    template = (v.messages if v is not None else None) or eval_.messages
    sampling = {**eval_.sampling, **(v.sampling if v is not None else {})}
    input_messages = ({"type": "template", "template": messages_out(template)}
                      if template is not None else
                      {"type": "item_reference",
                       "item_reference": f"item.{messages_from or 'messages'}"})
    responses = kind == "responses"
    tools = eval_.tools
    if responses and tools:
        tools = [{"type": "function", **(t.get("function") or {})} for t in tools]
    return {"type": kind, "model": model, "source": source, "input_messages": input_messages,
            "sampling_params": sampling_out(sampling, eval_.response_format, tools,
                                            responses=responses)}


def _file_name(run_id: str) -> str:
    """A run id as a file name inside the output folder (an id with path characters, which the
    import refuses, is made safe, never followed)."""
    if _SAFE_ID.fullmatch(run_id) and ".." not in run_id:
        return run_id
    import hashlib

    return f"{_slug(run_id).strip('.')}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def _export_run(db: Any, info: Any, eval_: Any, spec: dict[str, Any], keys: dict[str, int],
                openai_item: Any, messages_from: str | None, eval_id: str | None,
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from posttrain.types import Completion

    provenance = info.config.get("openai") or {}
    run_id = str(provenance.get("id") or f"posttrain-{info.id}")
    items = {item.id: item for item in db.run_items(info.id)}
    content = [{"item": openai_item(items[i].data)} for i in
               sorted(items, key=lambda i: keys.get(i, 0))]
    model = openai_model_name(info.model)
    variant = info.variant if info.variant in eval_.variants else "default"
    kind = provenance.get("kind") or "completions"
    if kind == "jsonl":
        samples = provenance.get("samples") or {}
        for entry, item_id in zip(content, sorted(items, key=lambda i: keys.get(i, 0)),
                                  strict=True):
            if str(keys.get(item_id)) in samples:
                entry["sample"] = samples[str(keys.get(item_id))]
    data_source = _data_source(kind, eval_, variant, model, content, messages_from)
    criteria = [g.name for g in eval_.graders]
    types = {g.name: g.type for g in eval_.graders}
    ranges = {str(g["name"]): score_range(g) for g in spec["graders"] if score_range(g)}
    grades: dict[str, dict[str, Any]] = {}
    for row in db.scores(info.id):
        grades.setdefault(row["item_id"], {})[row["grader"]] = row
    outputs = []
    by_id = {item.id: item for item in eval_.items}
    prompt_tokens = completion_tokens = cached = 0
    for index, row in enumerate(db.samples(info.id)):
        item = items.get(row["item_id"])
        if item is None:
            continue
        completion = Completion.from_record(json.loads(row["completion"])) \
            if row["completion"] else None
        prompt_tokens += row["input_tokens"]
        completion_tokens += row["output_tokens"]
        cached += completion.cached_input_tokens if completion else 0
        results = []
        for name in criteria:
            g = grades.get(row["item_id"], {}).get(name)
            if g is None:
                continue
            value = g["value"]
            bounds = ranges.get(name)
            if bounds is not None and value is not None:  # OpenAI's scale: the raw result
                value = bounds[0] + value * (bounds[1] - bounds[0])
            result = {"name": name, "type": types[name], "score": value,
                      "passed": bool(g["passed"]) if g["passed"] is not None else False,
                      "sample": None}
            if g["status"] != "scored":
                result.update(status=g["status"], explanation=g["explanation"] or "")
            results.append(result)
        error = {"code": "", "message": ""}
        if row["status"] != "ok":
            error = _error_out(row["error"] or "")
            status = "error"
        else:
            status = "pass" if results and all(r["passed"] for r in results) else "fail"
        current = by_id.get(item.id)
        request = eval_.request_for(current, variant) if current is not None else None
        sample = {
            "input": messages_out(request.messages, typed=False) if request else [],
            "output": [{"role": "assistant", "content": completion.text}] if completion else [],
            "model": (completion.served_model if completion and completion.served_model
                      else model),
            "finish_reason": completion.finish_reason if completion else None,
            "usage": {"prompt_tokens": row["input_tokens"],
                      "completion_tokens": row["output_tokens"],
                      "total_tokens": row["input_tokens"] + row["output_tokens"],
                      "cached_tokens": completion.cached_input_tokens if completion else 0},
            "error": error}
        if completion and completion.tool_calls:
            sample["output"][0]["tool_calls"] = completion.tool_calls
        outputs.append({"object": "eval.run.output_item", "id": f"outputitem_{run_id}_{index}",
                        "run_id": run_id, "eval_id": eval_id, "status": status,
                        ID_FIELD: keys.get(item.id, index), "datasource_item":
                            openai_item(item.data), "results": results, "sample": sample})
    tally = counts(db, info.id, criteria)
    run_obj = {"object": "eval.run", "id": run_id, "eval_id": eval_id,
               "name": provenance.get("name") or f"{info.model} [{info.variant}]",
               "model": model, "status": "completed",
               "created_at": int(provenance.get("created_at") or info.created),
               "report_url": provenance.get("report_url"), "data_source": data_source,
               "metadata": provenance.get("metadata", {"posttrain_run": info.id}),
               # counts that add up: an item a criterion could not grade here is `unscored`
               # (a key OpenAI's counts do not have, written only when there are some)
               "result_counts": {k: v for k, v in tally["result_counts"].items()
                                 if k != "unscored" or v},
               "per_testing_criteria_results": [
                   {"testing_criteria": e["testing_criteria"], "passed": e["passed"],
                    "failed": e["failed"], **({"unscored": e["unscored"]} if e["unscored"]
                                              else {})}
                   for e in tally["per_testing_criteria_results"]],
               "per_model_usage": [{"model_name": model, "invocation_count": len(outputs),
                                    "prompt_tokens": prompt_tokens,
                                    "completion_tokens": completion_tokens,
                                    "total_tokens": prompt_tokens + completion_tokens,
                                    "cached_tokens": cached}]}
    return run_obj, outputs

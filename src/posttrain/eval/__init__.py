"""An eval: dataset × prompt variants × graders (+ tags, pass bar), from YAML or Python.

YAML shape (every field but ``name`` and a dataset is optional)::

    name: capitals
    dataset: capitals.jsonl        # relative to this file (.jsonl, .csv, .json, .yaml); or `items:`
    messages:                      # {{item.<field>}} fills from the row; default: the row's `messages`
      - {role: system, content: "Answer with the city name only."}
      - {role: user, content: "{{item.question}}"}
    variants:                      # compared side by side; "default" is the base messages
      terse: {messages: [{role: user, content: "{{item.question}} One word."}]}
    graders: [{type: string_check, name: exact, input: "{{sample.output_text}}",
               reference: "{{item.answer}}", operation: ilike}]
    tag: category                  # item field(s) for the per-tag breakdown
    pass_bar: 0.8
    sampling: {temperature: 0, max_tokens: 64}
    tools: "{{item.tools}}"        # optional; also response_format
    solver: package.module:function   # optional multi-turn solver (tool-use environments)
    reasoning: strip               # strip (default): graders see the answer without <think>
                                   # blocks, the reasoning as {{sample.reasoning}}; keep: as written
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, did_you_mean
from posttrain.eval.checks import (  # noqa: F401 - part of posttrain.eval's interface
    SAMPLE_FIELDS,
    _check_paths,
    _check_request_shapes,
    _check_row_messages,
    _check_template_syntax,
    check_every_row,
    check_share,
)
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import build_grader
from posttrain.loaders.yaml12 import yaml_line  # noqa: F401
from posttrain.reasoning import MODES as REASONING_MODES
from posttrain.request_checks import (  # noqa: F401
    _INT64,
    _SAMPLING_KEYS,
    EXTRA_BODY_REFUSED,
    MESSAGE_KEYS,
    PART_KEYS,
    RESPONSE_FORMATS,
    ROLES,
    SAMPLING_FIELDS,
    TOOL_CHOICES,
    _check_messages,
    check_sampling,
    message_problem,
    non_finite,
    response_format_problem,
    tool_choice_problem,
    tools_problem,
)
from posttrain.template import TemplateError, render, render_text
from posttrain.types import ChatRequest, Completion, Item

DEFAULT_VARIANT = "default"
#: ``json.dumps(value, sort_keys=True, default=str)`` without building an encoder per call
_SORTED_JSON = json.JSONEncoder(sort_keys=True, default=str)

_TOP_LEVEL_KEYS = {
    "name", "description", "dataset", "items", "messages", "input", "variants", "graders", "tag",
    "tags", "pass_bar", "sampling", "tools", "tool_choice", "response_format", "solver",
    "id_field", "score", "split", "metadata", "reasoning",
}

@dataclass
class Variant:
    """A prompt variant: its own messages and/or sampling over the eval's defaults."""

    name: str
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    #: where the variant came from (``posttrain optimize`` writes parent, proposer, scores);
    #: read as written, never part of a request or of the eval's fingerprint
    provenance: dict[str, Any] | None = None


@dataclass
class Eval:
    name: str
    items: list[Item]
    graders: list[Grader]
    messages: list[dict[str, Any]] | None = None
    variants: dict[str, Variant] = field(default_factory=dict)
    tag_fields: list[str] = field(default_factory=list)
    pass_bar: float | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    tools: Any = None
    tool_choice: Any = None
    response_format: Any = None
    solver: str | None = None
    primary: str | None = None  # grader whose value is the sample's score; default: mean of all
    description: str = ""
    source: Path | None = None
    dataset: Path | None = None  # the dataset file, when the rows come from one
    grader_specs: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str = "strip"  # strip | keep: see posttrain.reasoning

    def __post_init__(self) -> None:
        # the base messages first, then the named variants in file order
        self.variants = {DEFAULT_VARIANT: self.variants.get(DEFAULT_VARIANT, Variant(DEFAULT_VARIANT)),
                         **self.variants}

    # ---- requests -------------------------------------------------------------------------
    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(self.variants)
            raise UserError(f"unknown variant {name!r}; this eval has: {known}",
                            field="--variant") from None

    def request_for(self, item: Item, variant_name: str = DEFAULT_VARIANT) -> ChatRequest:
        """The chat request for one item under one variant (templates filled)."""
        variant = self.variant(variant_name)
        context = {"item": item.data}
        template = variant.messages or self.messages
        try:
            if template is None:
                messages = item.data.get("messages")
                if not isinstance(messages, list):
                    raise UserError("the eval has no `messages` template and the row has no "
                                    "`messages` list", file=self.dataset or self.source,
                                    line=item.line, field="messages")
                messages = [dict(message) for message in messages]
            else:
                messages = [  # render_text: render(..., keep_type=False), field paths faster
                    {**message, "content": render_text(message["content"], context)}
                    if isinstance(message.get("content"), str) else render(message, context)
                    for message in template
                ]
            if variant.system is not None:
                messages = [m for m in messages if m.get("role") not in ("system", "developer")]
                messages.insert(0, {"role": "system",
                                    "content": render(variant.system, context, keep_type=False)})
            tools = render(self.tools, context) if self.tools is not None else None
            response_format = (render(self.response_format, context)
                               if self.response_format is not None else None)
        except TemplateError as exc:
            # the row lacks what the eval's templates read: name the row where it is
            raise UserError(f"the eval's template reads {exc}", file=self.dataset or self.source,
                            line=item.line, field=f"item {item.id}") from None
        sampling = {**self.sampling, **variant.sampling}
        extra = {k: v for k, v in sampling.items() if k not in _SAMPLING_KEYS}
        return ChatRequest(
            messages=messages, tools=tools or None, tool_choice=self.tool_choice,
            response_format=response_format,
            temperature=sampling.get("temperature"), max_tokens=sampling.get("max_tokens"),
            top_p=sampling.get("top_p"), seed=sampling.get("seed"), stop=sampling.get("stop"),
            extra=extra,
        )

    def sample_of(self, completion: Completion, request: ChatRequest | None = None
                  ) -> dict[str, Any]:
        """The grader's ``sample`` for an answer to this eval (its reasoning mode, and the
        request's ``response_format`` deciding whether ``output_json`` is parsed)."""
        response_format = request.response_format if request is not None else None
        return completion.to_sample(response_format, reasoning=self.reasoning)

    def tags_of(self, item: Item) -> list[str]:
        return item.tags

    # ---- identity -------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of what defines the eval's requests (dataset + templates), for run identity."""
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        encode = _SORTED_JSON.encode  # json.dumps(..., sort_keys=True, default=str), one encoder
        for item in self.items:
            digest.update(item.id.encode())
            digest.update(encode(item.data).encode())
        digest.update(json.dumps([self.messages, self.sampling, self.tools, self.response_format,
                                  {k: {f: x for f, x in vars(v).items() if f != "provenance"}
                                   for k, v in sorted(self.variants.items())}],
                                 sort_keys=True, default=str).encode())
        # what else shapes the answers, only when set (so an eval without them keeps its
        # identity across versions): two evals that differ in these must not resume each other
        extra = {key: value for key, value in (("tool_choice", self.tool_choice),
                                               ("solver", self.solver)) if value is not None}
        if extra:
            digest.update(encode(extra).encode())
        return digest.hexdigest()[:16]

    def prompt_digest(self, variant: str = "default") -> str:
        """A hash of what turns an item into the request of ``variant`` (templates, sampling,
        tools, response format, tool choice, solver; not the items): two runs whose digests
        differ sent the same item different prompts. Recorded in each run's config
        (``prompts``) so training data and blind votes can tell."""
        chosen = self.variants.get(variant)
        shaped = ({f: x for f, x in vars(chosen).items() if f != "provenance"}
                  if chosen is not None else None)
        material = [self.messages, self.sampling, self.tools, self.response_format,
                    self.tool_choice, self.solver, shaped]
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode(
            errors="surrogatepass")).hexdigest()[:16]

    async def aclose(self) -> None:
        """Close what the graders opened (judge clients)."""
        for grader in self.graders:
            await grader.aclose()

    def load_solver(self) -> Callable[..., Any] | None:
        if self.solver is None:
            return None
        module_name, _, attr = self.solver.partition(":")
        try:
            return getattr(_import_beside(module_name, self.source), attr or "solve")
        except (ImportError, AttributeError) as exc:
            raise UserError(f"cannot load solver {self.solver!r}: {exc}", file=self.source,
                            field="solver") from None
        except SyntaxError as exc:  # the module's own file and line
            raise UserError(f"cannot load solver {self.solver!r}: {exc.msg} in "
                            f"{exc.filename}, line {exc.lineno}", file=self.source,
                            field="solver") from None
        except Exception as exc:  # noqa: BLE001 - the module raised while it was imported
            raise UserError(f"cannot load solver {self.solver!r}: importing it raised "
                            f"{type(exc).__name__}: {exc}", file=self.source,
                            field="solver") from None


def _import_beside(module_name: str, source: Path | None) -> Any:
    """Import ``module_name``; a module file next to the eval file (``solver: my_env:solve``
    beside ``eval.yaml``) is found too, without setting PYTHONPATH."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        folder = Path(source).resolve().parent if source is not None else None
        if folder is None or exc.name != top or not (
                (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
            raise
        import sys

        sys.path.insert(0, str(folder))
        return importlib.import_module(module_name)


# ---- building from data ---------------------------------------------------------------------
def make_items(rows: Sequence[tuple[int, dict[str, Any]]], *, tag_fields: Sequence[str] = (),
               id_field: str = "id", source: Path | None = None,
               exact: bool = False) -> list[Item]:
    """Items of the rows (``exact``: the rows hold nothing JSON cannot carry exactly, as a
    loader reads them; else :func:`exact_values` of each)."""
    items: list[Item] = []
    seen: dict[str, tuple[int, bool]] = {}  # id -> (line, whether the row wrote it)
    for line, row in rows:
        if not exact:
            row = exact_values(row)
        raw_id = row.get(id_field)
        item_id = str(raw_id) if raw_id is not None else str(line)
        if item_id in seen:
            first, written = seen[item_id]
            how = [f"line {first} has no `{id_field}`, so its id is its line number"] \
                if not written else []
            if raw_id is None:
                how.append(f"this row has no `{id_field}`, so its id is its line number {line}")
            note = f" ({'; '.join(how)}: give every row an `{id_field}`, or none)" if how else ""
            raise UserError(f"duplicate item id {item_id!r} (first on line {first}){note}",
                            file=source, line=line, field=id_field)
        seen[item_id] = (line, raw_id is not None)
        tags: list[str] = []
        for tag_field in tag_fields:
            value = row.get(tag_field)
            if isinstance(value, list):
                tags.extend(str(v) for v in value)
            elif value is not None:
                tags.append(str(value))
        if "tags" not in tag_fields and isinstance(row.get("tags"), list):
            tags.extend(str(v) for v in row["tags"])
        items.append(Item(id=item_id, data=row, tags=tags, line=line))
    return items


def exact_values(value: Any) -> Any:
    """``value`` with what JSON cannot carry exactly kept as its text: an integer beyond 64
    bits becomes its decimal string (``12345678901234567890123``), a NaN or infinity its
    name (``nan``, ``inf``); everything else unchanged (the same object when nothing
    changes). The loaders keep the text as written; this covers rows built in Python."""
    import math

    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        if all(type(inner) is str for inner in value.values()):  # most rows: nothing to keep
            return value
        changed = {key: exact_values(inner) for key, inner in value.items()}
        return value if all(changed[k] is value[k] for k in value) else changed
    if isinstance(value, list):
        items = [exact_values(inner) for inner in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


#: chat-completions message roles and the keys a message may carry


def resolve_judge(spec: str) -> Any:
    """The default way a judge grader reaches its model: the spec (or a models-file name) as
    ``posttrain eval --model`` reads it."""
    from posttrain.models import resolve_model

    return resolve_model(spec)


def eval_from_dict(spec: dict[str, Any], *, source: Path | None = None,
                   base_dir: Path | None = None,
                   model_factory: Callable[[str], Any] | None = None,
                   rows: Sequence[tuple[int, dict[str, Any]]] | None = None) -> Eval:
    """Build an Eval from the YAML structure (already parsed). ``rows`` overrides the dataset.

    Every check runs before the Eval exists, each naming the eval file's field (and line, via
    ``load_eval``) or the dataset's line: the file's own fields (``_check_spec``), then its rows
    (``_load_items``), prompts and variants, graders, settings, and last the templates and
    request shapes as the first row renders them (``_check_against_rows``). UserError on the
    first problem; nothing is sent or written.
    """
    _check_spec(spec, source)
    base_dir = base_dir or (source.parent if source else Path.cwd())
    tag_fields = _as_list(spec.get("tag", spec.get("tags")))
    items, dataset_path = _load_items(spec, source, base_dir, rows, tag_fields)
    messages = _base_messages(spec, source)
    variants = _variants(spec, source)
    graders = _graders(spec, source, base_dir, model_factory)
    names = {grader.name for grader in graders}
    pass_bar, sampling, primary, reasoning = _settings(spec, source, names)
    _check_against_rows(spec, items, source, dataset_path, tag_fields, messages, variants)
    return Eval(
        name=spec["name"], items=items, graders=graders, messages=messages, variants=variants,
        tag_fields=tag_fields, pass_bar=pass_bar, sampling=dict(sampling),
        tools=spec.get("tools"), tool_choice=spec.get("tool_choice"),
        response_format=spec.get("response_format"), solver=spec.get("solver"), primary=primary,
        description=str(spec.get("description") or ""), source=source, dataset=dataset_path,
        grader_specs=list(spec["graders"]), reasoning=reasoning,
    )


def _check_spec(spec: Any, source: Path | None) -> None:
    """The file is a mapping of known fields with a name, and its templates parse."""
    if not isinstance(spec, dict):
        raise UserError("an eval file must be a mapping", file=source)
    unknown = sorted(set(spec) - _TOP_LEVEL_KEYS)
    if unknown:
        raise UserError("unknown field" + did_you_mean(str(unknown[0]), _TOP_LEVEL_KEYS),
                        file=source, field=str(unknown[0]))
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise UserError("required: a non-empty string", file=source, field="name")
    _check_template_syntax(spec, source)


def _load_items(spec: dict[str, Any], source: Path | None, base_dir: Path,
                rows: Sequence[tuple[int, dict[str, Any]]] | None,
                tag_fields: list[str]) -> tuple[list[Item], Path | None]:
    """The rows (``items:`` inline, ``dataset:`` file, or ``rows`` given) as Items; the dataset
    file's path when there is one."""
    from posttrain.loaders.datasets import load_rows

    id_field = spec.get("id_field", "id")
    dataset_path: Path | None = None
    exact = False
    if rows is None:
        if "items" in spec and "dataset" in spec:
            raise UserError("give `dataset: FILE` or `items: [...]`, not both", file=source,
                            field="items")
        if "items" in spec:
            if not isinstance(spec["items"], list):
                raise UserError("must be a list of objects", file=source, field="items")
            rows = [(index + 1, row) for index, row in enumerate(spec["items"])]
            for index, row in rows:
                if not isinstance(row, dict):
                    raise UserError("must be an object", file=source, field=f"items[{index - 1}]")
        elif isinstance(spec.get("dataset"), str) and spec["dataset"].startswith("hf://"):
            from posttrain.loaders.hf_datasets import load_rows as load_hf_rows

            rows, _ = load_hf_rows(spec["dataset"], base_dir, file=source)
        elif isinstance(spec.get("dataset"), str):
            dataset_path = (base_dir / spec["dataset"]).resolve()
            if not dataset_path.exists():
                raise UserError(f"dataset not found: {dataset_path}", file=source, field="dataset")
            rows = load_rows(dataset_path)
            # JSON Lines and CSV rows are exact already (a long integer or a NaN kept as
            # written): not walked again
            exact = dataset_path.suffix.lower() in (".jsonl", ".ndjson", ".csv")
        else:
            raise UserError("required: `dataset: FILE` or `items: [...]`", file=source,
                            field="dataset")
    items = make_items(rows, tag_fields=tag_fields, id_field=id_field,
                       source=dataset_path or source, exact=exact)
    if not items:
        raise UserError("the dataset has no rows", file=dataset_path or source, field="dataset")
    return items, dataset_path


def _base_messages(spec: dict[str, Any], source: Path | None) -> list[dict[str, Any]] | None:
    if "messages" in spec and "input" in spec:
        raise UserError("`input` is another name for `messages`: give one of them", file=source,
                        field="input")
    messages = spec.get("messages", spec.get("input"))
    if messages is None:
        return None
    return _check_messages(messages, source, "messages" if "messages" in spec else "input")


def _variants(spec: dict[str, Any], source: Path | None) -> dict[str, Variant]:
    variants: dict[str, Variant] = {}
    raw_variants = spec.get("variants") or {}
    if not isinstance(raw_variants, dict):
        raise UserError("must be a mapping of name -> {messages, system, sampling}", file=source,
                        field="variants")
    for variant_name, variant_spec in raw_variants.items():
        where = f"variants.{variant_name}"
        if not isinstance(variant_spec, dict):
            raise UserError("must be a mapping", file=source, field=where)
        known = ("messages", "system", "sampling", "provenance")
        extra = sorted(set(variant_spec) - set(known))
        if extra:
            raise UserError("unknown field" + did_you_mean(str(extra[0]), known)
                            + " (a variant has messages, system, sampling, provenance)",
                            file=source, field=f"{where}.{extra[0]}")
        provenance = variant_spec.get("provenance")
        if provenance is not None and not isinstance(provenance, dict):
            raise UserError("must be a mapping (written by `posttrain optimize`)", file=source,
                            field=f"{where}.provenance")
        variant_messages = variant_spec.get("messages")
        if variant_messages is not None:
            variant_messages = _check_messages(variant_messages, source, f"{where}.messages")
        variants[str(variant_name)] = Variant(
            name=str(variant_name), messages=variant_messages, system=variant_spec.get("system"),
            sampling=check_sampling(variant_spec.get("sampling") or {}, source,
                                    f"{where}.sampling"),
            provenance=provenance,
        )
    return variants


def _graders(spec: dict[str, Any], source: Path | None, base_dir: Path,
             model_factory: Callable[[str], Any] | None) -> list[Grader]:
    grader_specs = spec.get("graders")
    if not isinstance(grader_specs, list) or not grader_specs:
        raise UserError("required: a non-empty list of graders", file=source, field="graders")
    graders: list[Grader] = []
    names: set[str] = set()
    for index, grader_spec in enumerate(grader_specs):
        context = GraderContext(base_dir=base_dir, model_factory=model_factory or resolve_judge,
                                source=str(source) if source else "<eval>")
        try:
            grader = build_grader(grader_spec, context)
        except UserError as exc:
            raise exc.at(file=source, field_prefix=f"graders[{index}]") from None
        if grader.name in names:
            raise UserError(f"duplicate grader name {grader.name!r}", file=source,
                            field=f"graders[{index}].name")
        names.add(grader.name)
        graders.append(grader)
    return graders


def _settings(spec: dict[str, Any], source: Path | None,
              names: set[str]) -> tuple[float | None, dict[str, Any], str | None, str]:
    """(pass_bar, sampling, primary grader, reasoning mode), each checked."""
    pass_bar = spec.get("pass_bar")
    if pass_bar is not None:
        try:
            pass_bar = check_share(pass_bar)
        except ValueError as exc:
            raise UserError(str(exc), file=source, field="pass_bar") from None
    sampling = check_sampling(spec.get("sampling") or {}, source, "sampling")
    primary = spec.get("score")
    if primary is not None and primary not in names:
        raise UserError(f"names no grader ({', '.join(sorted(names))})", file=source,
                        field="score")
    reasoning = spec.get("reasoning", "strip")
    if reasoning not in REASONING_MODES:
        raise UserError(f"must be one of {', '.join(REASONING_MODES)}; got {reasoning!r}",
                        file=source, field="reasoning")
    return pass_bar, sampling, primary, reasoning


def _check_against_rows(spec: dict[str, Any], items: list[Item], source: Path | None,
                        dataset_path: Path | None, tag_fields: list[str],
                        messages: list[dict[str, Any]] | None,
                        variants: dict[str, Variant]) -> None:
    """What only the rows can tell: tag fields some row has, rows' own messages where the eval
    has none, every template path and request shape as the first row renders them."""
    for tag_field in tag_fields:
        if tag_field != "tags" and not any(tag_field in item.data for item in items):
            raise UserError(f"no row has a field {tag_field!r}"
                            + did_you_mean(tag_field, items[0].data), file=source,
                            field="tag" if "tag" in spec else "tags")
    if messages is None and any(v.messages is None for v in
                                [variants.get(DEFAULT_VARIANT, Variant(DEFAULT_VARIANT)),
                                 *variants.values()]):
        _check_row_messages(items, dataset_path, source, from_items=dataset_path is None)
    _check_paths(spec, items[0], solver=bool(spec.get("solver")), source=source,
                 dataset=dataset_path, rows=items)
    check_every_row(spec, items, source=source, dataset=dataset_path)
    _check_request_shapes(spec, items[0], source, dataset_path)


def load_eval(path: str | Path, *, model_factory: Callable[[str], Any] | None = None) -> Eval:
    """Load an eval from a YAML (or JSON) file: YAML 1.2 core schema, inline ``items`` as
    written (see ``posttrain.loaders.yaml12``), UTF-8 with or without a byte-order mark."""
    from posttrain.loaders import yaml12

    path = Path(path).resolve()  # errors name files by their absolute path, everywhere
    spec, text = yaml12.load_file(path, what="eval file", items_key="items")
    try:
        return eval_from_dict(spec, source=path, model_factory=model_factory)
    except UserError as exc:
        if exc.line is None and exc.field and exc.file == str(path.resolve()):
            exc.line = yaml_line(text, exc.field)
        raise

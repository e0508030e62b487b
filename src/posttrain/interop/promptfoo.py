"""promptfoo -> posttrain and back: a ``promptfooconfig.yaml`` as an eval, and stored runs as
promptfoo's output JSON (version 3).

``import_promptfoo`` writes ``DIR/eval.yaml`` (each prompt a variant), ``DIR/items.jsonl``
(each test an item: its vars, its assertions with ``defaultTest``'s, rendered with its vars),
``DIR/models.yaml`` (each provider a named model) and ``DIR/promptfoo.json`` (what was not
carried over, and why). Assertions that posttrain scores as promptfoo does go to one
``promptfoo_assert`` grader (``posttrain.graders.promptfoo_assert``: weights, ``not-``,
``threshold``, metrics as components; ``is-valid-openai-tools-call`` against the providers'
``config.tools``, which also become the eval's ``tools``); ``llm-rubric`` becomes a
``score_model`` judge, ``factuality`` (A-E, D fails) and ``model-graded-closedqa`` (Y/N)
``label_model`` judges, each when every test has one (or ``defaultTest`` does); a test passes
when every grader passes, as promptfoo passes it when every assertion does. Everything else
(``cost``, ``latency``, ``answer-relevance``, other model-graded types, javascript) is listed
with its file and line, never silently dropped.

``export_promptfoo`` writes stored runs (one per prompt x provider column) as the file
``promptfoo eval --output results.json`` writes: ``{evalId, results: {version: 3, timestamp,
prompts, results, stats}, config}``, with posttrain's grades as the grading results.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

_CONFIG_KEYS = {"description", "prompts", "providers", "tests", "defaultTest", "scenarios",
                "outputPath", "sharing", "env", "evaluateOptions", "commandLineOptions",
                "metadata", "tags", "targets", "nunjucksFilters", "derivedMetrics",
                "extensions", "redteam", "writeLatestResults"}
_READ = {"description", "prompts", "providers", "targets", "tests", "defaultTest"}
_TEST_KEYS = {"description", "vars", "assert", "options", "threshold", "metadata",
              "provider", "providerOutput", "assertScoringFunction"}
_ASSERT_KEYS = {"type", "value", "threshold", "weight", "metric", "provider", "rubricPrompt",
                "transform", "config"}
_PROVIDER_MAP = {"openai": "openai", "anthropic": "anthropic", "vllm": "openai",
                 "ollama": "openai", "huggingface": "hf"}
_SAMPLING = {"temperature": "temperature", "max_tokens": "max_tokens", "top_p": "top_p",
             "seed": "seed", "stop": "stop", "max_completion_tokens": "max_tokens"}
_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")
_NUNJUCKS = re.compile(r"{%|{{[^}]*\|")
RUBRIC_PROMPT = (
    "You grade an answer against a rubric. Reply with JSON only: {\"reason\": \"...\", "
    "\"score\": S} where S is from 0 (fails the rubric) to 1 (meets it fully).\n\n"
    "Rubric: {{item.llm_rubric}}\n\nAnswer:\n{{sample.output_text}}")
# promptfoo's ``factuality`` (after OpenAI Evals' fact template): the judge places the answer
# against the expert's as (A) subset, (B) superset, (C) same, (D) disagreement, (E) different
# but not in fact; every choice but D passes (promptfoo's default scores).
FACTUALITY_PROMPT = (
    "Compare a submitted answer with an expert answer to a question. Ignore differences of "
    "style, grammar and punctuation; judge only the facts.\n\n[Question]: "
    "{{item.judge_question}}\n[Expert answer]: {{item.factuality}}\n[Submission]: "
    "{{sample.output_text}}\n\nWhich holds? (A) The submission is a subset of the expert "
    "answer and fully consistent with it. (B) It is a superset of the expert answer and fully "
    "consistent with it. (C) It contains the same details as the expert answer. (D) It "
    "disagrees with the expert answer. (E) The answers differ, but the differences do not "
    "matter for the facts. Reply with the letter.")
# promptfoo's ``model-graded-closedqa`` (OpenAI Evals' closedqa): does the answer meet the
# criterion, Y or N.
CLOSEDQA_PROMPT = (
    "[Task]: {{item.judge_question}}\n[Submission]: {{sample.output_text}}\n[Criterion]: "
    "{{item.closedqa}}\n\nDoes the submission meet the criterion? Reason step by step, then "
    "answer Y or N.")
# assertion type -> (item field holding its value, judge grader spec without model)
_JUDGED: dict[str, tuple[str, dict[str, Any]]] = {
    "llm-rubric": ("llm_rubric", {"type": "score_model", "name": "llm-rubric", "range": [0, 1],
                                  "pass_threshold": 0.5,
                                  "input": [{"role": "user", "content": RUBRIC_PROMPT}]}),
    "factuality": ("factuality", {"type": "label_model", "name": "factuality",
                                  "labels": ["A", "B", "C", "D", "E"],
                                  "passing_labels": ["A", "B", "C", "E"],
                                  "input": [{"role": "user", "content": FACTUALITY_PROMPT}]}),
    "model-graded-closedqa": ("closedqa", {
        "type": "label_model", "name": "closedqa", "labels": ["Y", "N"],
        "passing_labels": ["Y"], "input": [{"role": "user", "content": CLOSEDQA_PROMPT}]}),
}
# item fields posttrain keeps beside a test's vars (a var of the same name is refused)
_RESERVED = ("id", "assert", "assert_threshold", "description", "judge_question",
             *(field for field, _ in _JUDGED.values()))


@dataclass
class Imported:
    eval_path: Path
    models_path: Path
    items: int
    variants: list[str]
    models: list[str]
    not_mapped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _where(path: Path, text: str, field_path: str) -> int | None:
    from posttrain.eval import yaml_line

    try:
        return yaml_line(text, field_path)
    except Exception:  # noqa: BLE001 - a line is a courtesy
        return None


class _Ctx:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.not_mapped: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str, field_path: str) -> UserError:
        return UserError(message, file=self.path, line=_where(self.path, self.text, field_path),
                         field=field_path)

    def note(self, field_path: str, message: str, *, mapped: bool = False) -> None:
        line = _where(self.path, self.text, field_path)
        text = f"{self.path}" + (f":{line}" if line else "") + f": {field_path}: {message}"
        (self.warnings if mapped else self.not_mapped).append(text)

    def file_ref(self, ref: str, field_path: str) -> Path:
        target = (self.path.parent / ref.removeprefix("file://")).resolve()
        if not target.is_file():
            raise self.error(f"{ref}: no such file ({target})", field_path)
        return target


def _template(text: str, ctx: _Ctx, field_path: str) -> str:
    """A Nunjucks prompt with plain ``{{var}}`` placeholders -> posttrain's ``{{item.var}}``."""
    if _NUNJUCKS.search(text):
        raise ctx.error("Nunjucks tags or filters ({% %}, |) have no posttrain equivalent: "
                        "only plain {{var}} placeholders map to {{item.var}}", field_path)
    return _VAR.sub(lambda m: "{{item." + m.group(1) + "}}", text)


def _prompts(raw: Any, ctx: _Ctx) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, chat messages) per prompt."""
    if raw is None:
        raise ctx.error("required: at least one prompt", "prompts")
    entries = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for index, entry in enumerate(entries):
        where = f"prompts[{index}]"
        label = None
        if isinstance(entry, dict):
            unknown = set(entry) - {"raw", "id", "label"}
            for key in sorted(unknown):
                ctx.note(f"{where}.{key}", "not read: unknown prompt field")
            label = entry.get("label")
            if label is not None and not isinstance(label, str):
                raise ctx.error("a prompt's label is text", f"{where}.label")
            entry = entry.get("raw") or entry.get("id")
        if not isinstance(entry, str):
            raise ctx.error("a prompt is text, file://PATH or {raw|id, label}", where)
        texts: list[tuple[str, str]] = []
        if entry.startswith("file://"):
            target = ctx.file_ref(entry, where)
            body = _read_text(target, ctx, where)
            if target.suffix in (".txt", ".md", ".j2", ".nunjucks"):
                parts = [p.strip() for p in re.split(r"^---$", body, flags=re.M) if p.strip()]
                texts = [(label or (target.stem if len(parts) == 1 else f"{target.stem}-{i + 1}"),
                          p) for i, p in enumerate(parts)]
            elif target.suffix in (".json", ".yaml", ".yml"):
                texts = [(label or target.stem, body)]
            else:
                ctx.note(where, f"{entry}: a prompt file of type {target.suffix} (a script) "
                         "cannot be read here")
                continue
        else:
            texts = [(label or (f"prompt{index + 1}"), entry)]
        for name, text in texts:
            out.append((name, _messages(text, ctx, where)))
    if not out:
        raise ctx.error("no prompt could be read (see the notes above)", "prompts")
    return out


def _messages(text: str, ctx: _Ctx, where: str) -> list[dict[str, Any]]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            chat = json.loads(stripped)
        except json.JSONDecodeError:
            chat = None
        if isinstance(chat, list) and all(isinstance(m, dict) and "role" in m for m in chat):
            return [{"role": m["role"], "content": _template(str(m.get("content", "")), ctx,
                                                             where)} for m in chat]
    if stripped.startswith("- role:"):
        import yaml

        try:
            chat = yaml.safe_load(stripped)
        except yaml.YAMLError:
            raise ctx.error("a YAML chat prompt (- role: ...) that is not valid YAML",
                            where) from None
        if not isinstance(chat, list) or not all(isinstance(m, dict) and "role" in m
                                                 for m in chat):
            raise ctx.error("a YAML chat prompt is a list of {role, content}", where)
        return [{"role": m["role"], "content": _template(str(m.get("content", "")), ctx,
                                                         where)} for m in chat]
    return [{"role": "user", "content": _template(text, ctx, where)}]


def _providers(raw: Any, ctx: _Ctx, key: str) -> tuple[dict[str, dict[str, Any]],
                                                         dict[str, Any], dict[str, Any]]:
    """(models-file entries by name, sampling shared by every provider, the request settings
    ``tools`` / ``tool_choice`` / ``response_format`` shared by every provider)."""
    entries = raw if isinstance(raw, list) else [raw] if raw is not None else []
    if not entries:
        raise ctx.error("required: at least one provider", key)
    models: dict[str, dict[str, Any]] = {}
    samplings: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        config: dict[str, Any] = {}
        label = None
        if isinstance(entry, dict):
            if "id" not in entry and len(entry) == 1:  # {openai:gpt-4o: {config}}
                pid, body = next(iter(entry.items()))
                if body is not None and not isinstance(body, dict):
                    raise ctx.error("a provider given as {ID: ...} maps its id to {label, "
                                    "config}", where)
                entry = {"id": pid, **(body or {})}
            for extra in sorted(set(entry) - {"id", "label", "config"}):
                ctx.note(f"{where}.{extra}", "not read: unknown provider field")
            pid, label, config = entry.get("id"), entry.get("label"), entry.get("config") or {}
            if not isinstance(config, dict):
                raise ctx.error("a provider's config is a mapping", f"{where}.config")
            if label is not None and not isinstance(label, str):
                raise ctx.error("a provider's label is text", f"{where}.label")
        else:
            pid = entry
        if not isinstance(pid, str):
            raise ctx.error("a provider is an id (openai:gpt-4o-mini) or {id, label, config}",
                            where)
        parts = pid.split(":")
        family = parts[0]
        if family not in _PROVIDER_MAP or len(parts) < 2:
            ctx.note(where, f"provider {pid!r} has no posttrain equivalent (openai, anthropic, "
                     "vllm, ollama, huggingface map): run the eval with --model SPEC instead")
            continue
        name = parts[-1]
        if family == "openai" and parts[1] not in ("chat", "responses") and len(parts) > 2:
            ctx.note(where, f"{pid}: only chat models map (openai:chat:MODEL, openai:MODEL)")
            continue
        entry_out: dict[str, Any] = {"provider": _PROVIDER_MAP[family], "model": name}
        if family == "ollama":
            entry_out["base_url"] = "http://localhost:11434/v1"
        if family == "vllm":
            entry_out["base_url"] = str(config.get("apiBaseUrl") or "http://localhost:8000/v1")
        sampling = {}
        request: dict[str, Any] = {}
        for ckey, value in config.items():
            if ckey in _SAMPLING:
                sampling[_SAMPLING[ckey]] = value
            elif ckey in ("tools", "tool_choice", "response_format"):
                if isinstance(value, str) and value.startswith("file://"):
                    from posttrain.loaders import yaml12

                    value = yaml12.load_file(ctx.file_ref(value, f"{where}.config.{ckey}"),
                                             what=f"promptfoo {ckey} file")[0]
                request[ckey] = value
            elif ckey in ("apiBaseUrl", "apiHost") and family in ("openai", "vllm"):
                entry_out["base_url"] = str(value)
            elif ckey == "apiKeyEnvar":
                entry_out["api_key_env"] = str(value)
            else:
                ctx.note(f"{where}.config.{ckey}", "not carried over (posttrain has no such "
                         "model setting)")
        samplings.append(sampling)
        requests.append(request)
        model_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", label or name).strip("-")
        while model_name in models:
            model_name += "-2"
        models[model_name] = entry_out
    shared = _shared(samplings, ctx, key, "sampling (temperature, max_tokens, ...): posttrain "
                     "sets sampling per eval or variant")
    settings = _shared(requests, ctx, key, "tools / tool_choice / response_format: posttrain "
                       "sets them per eval")
    return models, shared, settings


def _shared(values: list[dict[str, Any]], ctx: _Ctx, key: str, what: str) -> dict[str, Any]:
    """The setting every provider gives (the same dict from each), else {} with a note."""
    if values and all(v == values[0] for v in values):
        return values[0]
    if values:
        ctx.note(key, f"providers set different {what}; none was carried over")
    return {}


def _load_tests(raw: Any, ctx: _Ctx) -> list[tuple[str, dict[str, Any]]]:
    """(where, test) for inline tests and tests from CSV / JSON / YAML files."""
    if raw is None:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        where = f"tests[{index}]" if isinstance(raw, list) else "tests"
        if isinstance(entry, dict):
            out.append((where, entry))
            continue
        if not isinstance(entry, str) or not entry.startswith("file://"):
            raise ctx.error("a test is {vars, assert} or file://tests.csv|.json|.yaml", where)
        target = ctx.file_ref(entry, where)
        if target.suffix == ".csv":
            body = _read_text(target, ctx, where)
            reader = csv.DictReader(io.StringIO(body))
            try:
                for row in reader:
                    if None in row:  # cells past the header's columns
                        raise UserError(f"{len(row[None])} more cells than the header's "  # type: ignore[index]
                                        f"{len(reader.fieldnames or [])} columns", file=target,
                                        line=reader.line_num)
                    out.append((f"{target.name}:{reader.line_num}",
                                _csv_test({k: v if v is not None else "" for k, v in
                                           row.items()})))
            except csv.Error as exc:
                raise UserError(f"not CSV: {exc}", file=target, line=reader.line_num) from None
        elif target.suffix in (".json", ".jsonl", ".yaml", ".yml"):
            from posttrain.loaders.datasets import load_rows

            for line, row in load_rows(target):
                if not isinstance(row, dict):
                    raise UserError("a test is a mapping {vars, assert, ...}", file=target,
                                    line=line)
                out.append((f"{target.name}:{line}", row))
        else:
            raise ctx.error(f"{entry}: tests are read from .csv, .json, .jsonl or .yaml", where)
    return out


def _check_test(test: Any, ctx: _Ctx, where: str) -> None:
    """A test (or defaultTest) with fields of the types read: one line naming the field
    otherwise, never a traceback."""
    if not isinstance(test, dict):
        raise ctx.error("a test is a mapping {vars, assert, options, ...}", where)
    for key, types, what in (("options", dict, "a mapping"), ("assert", list, "a list of "
                             "assertions {type, value, ...}"), ("metadata", dict, "a mapping")):
        if test.get(key) is not None and not isinstance(test[key], types):
            raise ctx.error(f"{key} is {what}", f"{where}.{key}")
    threshold = test.get("threshold")
    if threshold is not None and (isinstance(threshold, bool)
                                  or not isinstance(threshold, (int, float))):
        raise ctx.error("threshold must be a number", f"{where}.threshold")


def _read_text(target: Path, ctx: _Ctx, where: str) -> str:
    """A referenced file's text; one line naming it when it is not UTF-8."""
    try:
        return target.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ctx.error(f"{target.name}: not UTF-8 text (byte at offset {exc.start})",
                        where) from None


def _csv_test(row: dict[str, str]) -> dict[str, Any]:
    """promptfoo's CSV: columns are vars; ``__expected*`` are assertions, ``__description``."""
    test: dict[str, Any] = {"vars": {}, "assert": []}
    for key, value in row.items():
        if key.startswith("__expected"):
            if value:
                test["assert"].append(_expected(value))
        elif key == "__description":
            test["description"] = value
        elif key.startswith("__"):
            test.setdefault("_unknown_columns", []).append(key)
        else:
            test["vars"][key] = value
    return test


def _expected(value: str) -> dict[str, Any]:
    """A CSV ``__expected`` cell: ``TYPE: VALUE`` for the types that read so, ``python:`` a
    python assertion, ``javascript:`` / ``fn:`` a javascript one (not carried
    over), else equals."""
    for prefix in ("not-", ""):
        for kind in ("contains-any", "contains-all", "icontains-any", "icontains-all",
                     "icontains", "contains", "starts-with", "regex", "levenshtein",
                     "similar", "llm-rubric", "equals", "is-json", "contains-json"):
            tag = f"{prefix}{kind}"
            if value.startswith(tag + ":") or value == tag:
                rest = value[len(tag) + 1:].strip() if ":" in value else None
                return {"type": tag, "value": rest}
    if value.startswith("grade:"):
        return {"type": "llm-rubric", "value": value[6:].strip()}
    if value.startswith("python:"):  # an expression over output: a python assertion
        return {"type": "python", "value": value[7:].strip()}
    for prefix in ("javascript:", "fn:"):  # JavaScript: listed, never an equals
        if value.startswith(prefix):
            return {"type": "javascript", "value": value[len(prefix):].strip()}
    return {"type": "equals", "value": value}


def _question(messages: list[dict[str, Any]], variables: dict[str, Any]) -> str:
    """The test's question for a judge: the first prompt's last user message with its vars."""
    users = [m for m in messages if m.get("role") == "user"] or messages
    text = str(users[-1].get("content", "")) if users else ""
    return re.sub(r"{{\s*item\.([A-Za-z_][A-Za-z0-9_]*)\s*}}",
                  lambda m: str(variables.get(m.group(1), m.group(0))), text)


def _render(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, variables) for k, v in value.items()}
    return value


def _var_combinations(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo's var expansion (its evaluator's ``generateVarCombinations``): a var whose
    value is a list of strings makes one test per value, across such vars the cartesian
    product in var order; a list of anything else stays one value."""
    combos: list[dict[str, Any]] = [{}]
    for key, value in variables.items():
        values = value if isinstance(value, list) and value and isinstance(value[0], str) \
            else [value]
        combos = [{**combo, key: v} for combo in combos for v in values]
    return combos


def _vars(raw: Any, ctx: _Ctx, where: str) -> dict[str, Any]:
    if isinstance(raw, str) and raw.startswith("file://"):  # vars: file://vars.yaml
        from posttrain.loaders import yaml12

        target = ctx.file_ref(raw, f"{where}.vars")
        raw = yaml12.load_file(target, what="vars file")[0]  # bad YAML: one line, its line
        if not isinstance(raw, dict):
            raise ctx.error(f"{target.name}: vars from a file are a mapping of name: value",
                            f"{where}.vars")
    elif raw is not None and not isinstance(raw, dict):
        raise ctx.error("vars are a mapping of name: value (or file://VARS.yaml)",
                        f"{where}.vars")
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, str) and value.startswith("file://"):
            target = ctx.file_ref(value, f"{where}.vars.{key}")
            if target.suffix in (".txt", ".md", ".json", ".yaml", ".yml", ".csv"):
                value = _read_text(target, ctx, f"{where}.vars.{key}")
            else:
                ctx.note(f"{where}.vars.{key}", f"{value}: a script's output cannot be computed "
                         "here; the var is left as the file reference")
        out[key] = value
    return out


_PYTHON_WRAPPER = """

def grade(sample, item):
    output = sample.get("output_text") or ""
    hidden = {hidden}
    variables = {k: v for k, v in item.items() if k not in hidden}
    context = {"vars": variables, "test": {"vars": variables}, "prompt": None, "config": {}}
    result = get_assert(output, context)
    if isinstance(result, dict):  # a GradingResult: {pass, score, reason}; pass is the verdict
        passed = bool(result.get("pass", result.get("pass_", False)))
        score = result.get("score")
        return {"score": float(score) if score is not None else (1.0 if passed else 0.0),
                "passed": passed, "reason": str(result.get("reason") or "")}
    return float(result)
""".replace("{hidden}", repr(_RESERVED))


def _python_grader(pythons: list[tuple[int, Any, Any, str]], tests: int,
                   ctx: _Ctx) -> dict[str, Any] | None:
    """``python`` assertions as one sandboxed ``python`` grader when every test has the same
    one (a ``file://`` script with ``get_assert(output, context)`` or an inline expression over
    ``output`` and ``context``); otherwise they are listed."""
    if not pythons:
        return None
    values = {json.dumps([v, t], sort_keys=True, default=str) for _, v, t, _ in pythons}
    positions = [p for p, *_ in pythons]
    if len(values) != 1 or sorted(positions) != list(range(tests)):
        why = []
        if sorted(set(positions)) != list(range(tests)):
            why.append(f"{tests - len(set(positions))} of {tests} tests have none")
        if len(values) != 1:
            why.append(f"they differ ({len(values)} different ones)")
        ctx.note(pythons[0][3], f"{len(pythons)} python assertion(s) on {len(set(positions))} "
                 f"of {tests} tests, {' and '.join(why)}: posttrain's graders grade every item "
                 "of an eval, so they are not carried over (give every test the same one, or "
                 "put it in defaultTest)")
        return None
    _, value, threshold, label = pythons[0]
    if not isinstance(value, str) or not value.strip():
        raise ctx.error("a python assertion's value is file://SCRIPT.py or an expression",
                        f"{label}.value")
    if value.startswith("file://"):
        script, _, function = value.removeprefix("file://").partition(":")
        source = ctx.file_ref("file://" + script, f"{label}.value").read_text(encoding="utf-8")
        if function and function != "get_assert":
            source += f"\n\nget_assert = {function}\n"
    elif "\n" in value.strip():  # a multi-line body that returns
        body = "\n".join("    " + line for line in value.strip().splitlines())
        source = f"def get_assert(output, context):\n{body}\n"
    else:
        source = f"def get_assert(output, context):\n    return ({value.strip()})\n"
    grader: dict[str, Any] = {"type": "python", "name": "python", "source":
                              source + _PYTHON_WRAPPER}
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        grader["pass_threshold"] = float(threshold)
    return grader


def import_promptfoo(config_file: str | Path, out_dir: str | Path, *,
                     judge: str | None = None) -> Imported:
    """Import a promptfoo config; see the module docstring."""
    from posttrain.interop.openai_evals import dump_yaml
    from posttrain.loaders import yaml12

    path = Path(config_file).resolve()
    if not path.is_file():
        raise UserError("promptfoo config not found", file=path)
    data, text = yaml12.load_file(path, what="promptfoo config")
    if not isinstance(data, dict):
        raise UserError("a promptfoo config is a mapping (prompts, providers, tests)",
                        file=path)
    ctx = _Ctx(path, text)
    for key in data:
        if key not in _CONFIG_KEYS:
            ctx.note(key, "not read: unknown promptfoo config field")
        elif key not in _READ:
            ctx.note(key, "not carried over (no posttrain equivalent)")
    prompts = _prompts(data.get("prompts"), ctx)
    provider_key = "providers" if "providers" in data else "targets"
    models, sampling, request = _providers(data.get(provider_key), ctx, provider_key)
    default = data.get("defaultTest") or {}
    if isinstance(default, str):
        raise ctx.error("a defaultTest file is not read here; write it inline", "defaultTest")
    if not isinstance(default, dict):
        raise ctx.error("defaultTest is a mapping {vars, assert, options}", "defaultTest")
    _check_test(default, ctx, "defaultTest")
    for key in set(default) - _TEST_KEYS:
        ctx.note(f"defaultTest.{key}", "not read: unknown test field")
    default_vars = _vars(default.get("vars"), ctx, "defaultTest")
    tests = _load_tests(data.get("tests"), ctx)
    if not tests:
        raise ctx.error("required: at least one test (vars and assertions)", "tests")
    rows: list[dict[str, Any]] = []
    pythons: list[tuple[int, Any, Any, str]] = []
    judged_on: dict[str, int] = {}  # judged assertion type -> tests that have one
    skipped_types: dict[str, int] = {}
    tools_call_asserts = 0
    expanded: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for where, test in tests:
        _check_test(test, ctx, where)
        for key in sorted(set(test) - _TEST_KEYS - {"_unknown_columns"}):
            ctx.note(f"{where}.{key}", "not read: unknown test field")
        for column in test.get("_unknown_columns", []):
            ctx.note(where, f"CSV column {column}: not read")
        variables = {**default_vars, **_vars(test.get("vars"), ctx, where)}
        for reserved in _RESERVED:
            if reserved in variables:
                raise ctx.error(f"a var named {reserved!r} collides with the field posttrain "
                                "keeps for the test; rename the var", f"{where}.vars")
        options = {**(default.get("options") or {}), **(test.get("options") or {})}
        combos = [variables] if options.get("disableVarExpansion") \
            else _var_combinations(variables)
        expanded += [(where, test, combo) for combo in combos]
    for position, (where, test, variables) in enumerate(expanded):
        asserts: list[dict[str, Any]] = []
        judged: dict[str, Any] = {}
        for index, spec in enumerate([*(default.get("assert") or []),
                                      *(test.get("assert") or [])]):
            from posttrain.graders.promptfoo_assert import TYPES, base_type, problem

            shared = len(default.get("assert") or [])
            label = f"defaultTest.assert[{index}]" if index < shared \
                else f"{where}.assert[{index - shared}]"
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
                raise ctx.error("an assertion is {type, value, ...}", label)
            kind = spec["type"]
            for key in sorted(set(spec) - _ASSERT_KEYS):
                ctx.note(f"{label}.{key}", "not read: unknown assertion field")
            for key in ("transform", "provider", "rubricPrompt", "config"):
                if key in spec and kind not in _JUDGED:
                    ctx.note(f"{label}.{key}", f"{kind}: {key} is not carried over")
            if kind in _JUDGED:
                for key in ("rubricPrompt", "transform", "config"):
                    if key in spec:
                        ctx.note(f"{label}.{key}", f"{kind}: {key} is not carried over "
                                 "(posttrain's judge prompt is used)")
                if kind in judged:
                    ctx.note(label, f"a second {kind} on one test: only the first is kept")
                elif spec.get("value") in (None, ""):
                    raise ctx.error(f"{kind} needs a value", f"{label}.value")
                else:
                    judged[kind] = _render(spec.get("value"), variables)
                continue
            if kind == "python":
                pythons.append((position, spec.get("value"), spec.get("threshold"), label))
                continue
            if base_type(kind)[0] not in TYPES:
                skipped_types[kind] = skipped_types.get(kind, 0) + 1
                continue
            tools_call_asserts += base_type(kind)[0] == "is-valid-openai-tools-call"
            entry = {k: _render(v, variables) for k, v in spec.items()
                     if k in ("type", "value", "threshold", "weight", "metric")}
            wrong = problem(entry)
            if wrong is not None:  # refused here, before any request is made
                raise ctx.error(wrong[1], f"{label}.{wrong[0]}" if wrong[0] in spec
                                else label)
            asserts.append(entry)
        row: dict[str, Any] = {"id": f"t{position + 1}", **variables, "assert": asserts}
        if test.get("description"):
            row["description"] = str(test["description"])
        if isinstance(test.get("threshold"), (int, float)):
            row["assert_threshold"] = test["threshold"]
        for kind, value in judged.items():
            judged_on[kind] = judged_on.get(kind, 0) + 1
            row[_JUDGED[kind][0]] = value
        if set(judged) - {"llm-rubric"}:
            row["judge_question"] = _question(prompts[0][1], variables)
        rows.append(row)
    for kind, count in sorted(skipped_types.items()):
        why = {"cost": "graders do not see cost (posttrain reports cost per run)",
               "latency": "graders do not see latency (posttrain reports p50/p95 per run)",
               "javascript": "posttrain runs no JavaScript (write it as a python assertion)",
               }.get(kind, "no posttrain grader scores it as promptfoo does")
        ctx.note("tests", f"{count} {kind!r} assertion(s) not carried over: {why}")
    graders: list[dict[str, Any]] = []
    if any(r["assert"] for r in rows):
        grader: dict[str, Any] = {"type": "promptfoo_assert", "name": "promptfoo",
                                  "field": "assert"}
        if tools_call_asserts:
            if not request.get("tools"):
                raise ctx.error("is-valid-openai-tools-call needs the provider's config.tools "
                                "(the functions a call must match)", provider_key)
            grader["tools"] = request["tools"]
            grader["input"] = "{{sample.output_text}}"
        graders.append(grader)
    python = _python_grader(pythons, len(rows), ctx)
    if python is not None:
        graders.append(python)
    for row in rows:
        if not row["assert"] and graders:
            row["assert"] = []
    for kind, (field_name, grader_spec) in _JUDGED.items():
        count = judged_on.get(kind, 0)
        if not count:
            continue
        if count < len(rows):
            ctx.note("tests", f"{kind} on {count} of {len(rows)} tests: posttrain's judges "
                     "grade every item of an eval, so it is not carried over (give every "
                     "test one, or put it in defaultTest)")
            for row in rows:
                row.pop(field_name, None)
            continue
        graders.append({**grader_spec, "model": judge or "openai:gpt-4.1-mini"})
        if judge is None:
            ctx.note(kind, "judged by openai:gpt-4.1-mini (promptfoo's default grader is an "
                     "OpenAI model); --judge SPEC for another", mapped=True)
    if not any("judge_question" in r and (set(r) & {"factuality", "closedqa"}) for r in rows):
        for row in rows:
            row.pop("judge_question", None)
    if not graders:
        raise ctx.error("no assertion could be carried over, so the eval would have no grader "
                        "(see the notes)", "tests")
    spec: dict[str, Any] = {"name": re.sub(r"[^A-Za-z0-9_.-]+", "-", str(
        data.get("description") or path.parent.name)).strip("-").lower() or "promptfoo"}
    if data.get("description"):
        spec["description"] = str(data["description"])
    spec["dataset"] = "items.jsonl"
    spec["messages"] = prompts[0][1]
    names = ["default"]  # the first prompt; the others are variants named by their labels
    labels = {"default": prompts[0][0]}
    variants: dict[str, Any] = {}
    for label, messages in prompts[1:]:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "prompt"
        while name in names:
            name += "-2"
        names.append(name)
        labels[name] = label
        variants[name] = {"messages": messages}
    if variants:
        spec["variants"] = variants
    if sampling:
        spec["sampling"] = sampling
    spec.update(request)
    spec["graders"] = graders
    if len(graders) > 1:
        # promptfoo passes a test when every assertion passes: here, when every grader does
        # (the eval's default combination). Its score is the mean of the graders (promptfoo's:
        # the weighted mean of the assertions), so the pass rates agree and the means may not.
        grader_names = ", ".join(g["name"] for g in graders)
        ctx.note("graders", f"a test passes when every grader ({grader_names}) passes, as "
                 "promptfoo "
                 "passes it when every assertion does; its "
                 "score is the graders' mean (promptfoo: the assertions' weighted mean)",
                 mapped=True)
        if graders[0]["name"] == "promptfoo":
            bare = sum(1 for r in rows if not r["assert"])
            if bare:
                ctx.note("graders", f"{bare} of {len(rows)} tests have no assertion the "
                         "promptfoo grader scores: it passes them with 1.0, which raises their "
                         "mean score (not their pass)", mapped=True)
    # a var a prompt uses that a test lacks: promptfoo (Nunjucks) renders it empty; so do we
    used = sorted({m.group(1) for m in re.finditer(r"{{\s*item\.([A-Za-z_][A-Za-z0-9_]*)\s*}}",
                                                    json.dumps([p[1] for p in prompts]))})
    for var in used:
        missing = [r for r in rows if var not in r]
        for row in missing:
            row[var] = ""
        if missing:
            ctx.note("prompts", f"var {var!r} is missing on {len(missing)} of {len(rows)} "
                     f"tests ({', '.join(r['id'] for r in missing[:5])}"
                     f"{', ...' if len(missing) > 5 else ''}): promptfoo renders a missing var "
                     "as empty, and so do these items", mapped=True)
    # the eval is built before anything is written: a problem names the promptfoo config
    from posttrain.eval import eval_from_dict

    try:
        eval_from_dict(spec, source=None, base_dir=path.parent,
                       rows=[(i + 1, row) for i, row in enumerate(rows)])
    except UserError as exc:
        raise UserError(f"the eval made from this config does not build: {exc.message}",
                        file=path, field=exc.field) from None
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    from posttrain.interop._files import write_json, write_jsonl

    write_jsonl(out_dir / "items.jsonl", rows)
    eval_path = out_dir / "eval.yaml"
    eval_path.write_text(f"# imported from {path.name} (posttrain import promptfoo); what was "
                         "not carried over is in promptfoo.json\n" + dump_yaml(spec),
                         encoding="utf-8")
    models_path = out_dir / "models.yaml"
    models_path.write_text(dump_yaml({"models": models}), encoding="utf-8")
    write_json(out_dir / "promptfoo.json", {"format": "posttrain.promptfoo/1",
                                           "config": str(path), "prompt_labels": labels,
                                           "not_mapped": ctx.not_mapped,
                                           "notes": ctx.warnings})
    from posttrain.eval import load_eval

    load_eval(eval_path)  # what was written loads (graders built, templates checked)
    return Imported(eval_path=eval_path, models_path=models_path, items=len(rows),
                    variants=names, models=list(models), not_mapped=ctx.not_mapped,
                    warnings=ctx.warnings)


# ---- export -------------------------------------------------------------------------------
def export_promptfoo(store: str | Path, run_refs: list[str], out: str | Path) -> dict[str, Any]:
    """Stored runs (same eval) as promptfoo's output JSON, version 3."""
    import hashlib

    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    store_path = Path(store)
    if not store_path.is_file():
        raise UserError("no such store", file=store_path.resolve())
    with Store(store_path, reading=True) as db:
        runs = []
        for ref in run_refs:
            try:
                runs.append(db.resolve_run(ref))
            except (KeyError, UserError) as exc:
                raise UserError(str(exc.args[0] if exc.args else exc), field="RUN") from None
        loaded = [load_results(db, run) for run in runs]
    names = {r.run.eval_name for r in loaded}
    if len(names) > 1:
        raise UserError(f"the runs are of different evals ({', '.join(sorted(names))}): "
                        "promptfoo's table has one set of tests", field="RUN")
    test_idx_of: dict[str, int] = {}  # an item's test index (a dict: one lookup per sample)
    tests: dict[str, dict[str, Any]] = {}
    for results in loaded:
        for item in results.items:
            if item.id not in tests:
                test_idx_of[item.id] = len(test_idx_of)
                tests[item.id] = item.data
    prompts_out, results_out = [], []
    stats = {"successes": 0, "failures": 0, "errors": 0,
             "tokenUsage": {"total": 0, "prompt": 0, "completion": 0, "cached": 0,
                            "numRequests": 0}}
    for prompt_idx, results in enumerate(loaded):
        run = results.run
        summary = summarize(results)
        raw = f"{run.eval_name} [{run.variant}]"
        prompt_id = hashlib.sha256(raw.encode()).hexdigest()
        metrics = {"score": 0.0, "testPassCount": 0, "testFailCount": 0, "testErrorCount": 0,
                   "assertPassCount": 0, "assertFailCount": 0, "totalLatencyMs": 0,
                   "tokenUsage": {"total": 0, "prompt": 0, "completion": 0, "cached": 0,
                                  "numRequests": 0},
                   "namedScores": {}, "namedScoresCount": {}, "cost": 0.0}
        for s in results.samples:
            test_idx = test_idx_of[s.item_id]
            data = tests[s.item_id]
            components = []
            for name, grade in s.grades.items():
                scored = grade.status == "scored" and grade.value is not None
                components.append({"pass": bool(grade.passed) if scored else False,
                                   "score": grade.value if scored else 0.0,
                                   "reason": grade.explanation or grade.status,
                                   "assertion": {"type": name, "metric": name}})
                if scored:
                    metrics["namedScores"][name] = metrics["namedScores"].get(name, 0) + \
                        grade.value
                    metrics["namedScoresCount"][name] = \
                        metrics["namedScoresCount"].get(name, 0) + 1
                    metrics["assertPassCount" if grade.passed else "assertFailCount"] += 1
            error = s.status == "error"
            success = s.status == "scored" and bool(s.passed)
            score = s.value if s.status == "scored" and s.value is not None else 0.0
            latency_ms = int(round((s.latency_s or 0) * 1000))
            usage = {"total": s.input_tokens + s.output_tokens, "prompt": s.input_tokens,
                     "completion": s.output_tokens,
                     "cached": (s.completion or {}).get("cached_input_tokens") or 0,
                     "numRequests": 0 if s.cached else max(1, s.attempts)}
            vars_ = {k: v for k, v in data.items()
                     if k not in _RESERVED}
            reason = s.error if error else (s.reason or "; ".join(
                c["reason"] for c in components if not c["pass"]) or "all graders passed")
            results_out.append({
                "id": f"{run.id}-{s.item_id}-{s.epoch}", "promptIdx": prompt_idx,
                "testIdx": test_idx, "promptId": prompt_id,
                "testCase": {"vars": vars_, "description": data.get("description"),
                             "assert": data.get("assert") or []},
                "vars": vars_,
                "prompt": {"raw": raw, "label": run.variant},
                "provider": {"id": run.model, "label": run.model},
                "response": None if error else {
                    "output": s.output_text, "tokenUsage": usage, "cached": s.cached,
                    "cost": s.cost_usd, "latencyMs": latency_ms,
                    "finishReason": (s.completion or {}).get("finish_reason")},
                "error": s.error if error else (None if success else reason),
                "failureReason": 2 if error else (0 if success else 1),
                "success": success, "score": score, "latencyMs": latency_ms,
                "cost": s.cost_usd,
                "gradingResult": None if error else {
                    "pass": success, "score": score, "reason": reason,
                    "componentResults": components,
                    "namedScores": {c["assertion"]["type"]: c["score"] for c in components}},
                "namedScores": {c["assertion"]["type"]: c["score"] for c in components},
                "tokenUsage": usage,
                "metadata": {"posttrain": {
                    "run_id": run.id, "epoch": s.epoch, "status": s.status,
                    # what the judges' own requests cost (promptfoo's cost is the provider's)
                    "grading_cost_usd": sum(g.cost_usd for g in s.grades.values())}}})
            key = "testErrorCount" if error else ("testPassCount" if success else
                                                  "testFailCount")
            metrics[key] += 1
            metrics["score"] += score
            metrics["totalLatencyMs"] += latency_ms
            metrics["cost"] += s.cost_usd
            for k in ("total", "prompt", "completion", "cached", "numRequests"):
                metrics["tokenUsage"][k] += usage[k]
                stats["tokenUsage"][k] += usage[k]
            stats["errors" if error else "successes" if success else "failures"] += 1
        prompts_out.append({"raw": raw, "label": run.variant, "id": prompt_id,
                            "provider": run.model, "metrics": metrics,
                            "metadata": {"posttrain": {
                                "run_id": run.id, "score": summary["score"],
                                "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                                "ci_method": summary["ci_method"], "n": summary["n"]}}})
    eval_id = "eval-posttrain-" + time.strftime("%Y-%m-%dT%H:%M:%S")
    output = {"evalId": eval_id,
              "results": {"version": 3, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                                     time.gmtime()),
                          "prompts": prompts_out, "results": results_out, "stats": stats},
              "config": {"description": loaded[0].run.eval_name if loaded else "",
                         "providers": sorted({r.run.model for r in loaded}),
                         "prompts": [p["raw"] for p in prompts_out]},
              "shareableUrl": None}
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(output, indent=2, ensure_ascii=False, default=str) + "\n",
                   encoding="utf-8")
    return {"file": str(out), "runs": len(loaded), "results": len(results_out)}

"""Picking stored runs for an analysis, naming them, and reading answers back.

Shared by compare (matrix), audit, pick and shelf life. An eval is named by its file (only the
``name`` and ``graders`` fields are read: no dataset, no grader built, no model needed) or
directly by its stored name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.analysis.cells import field_groups, missing_group
from posttrain.analysis.results import RunResults, SampleResult, load_results
from posttrain.errors import UserError
from posttrain.runner.facts import answer_text as facts_answer_text
from posttrain.runner.store import RunInfo, Store

JUDGE_TYPES = ("score_model", "label_model")
REFERENCE_FIELDS = ("reference", "answer", "expected", "ideal", "target", "label", "gold",
                    "correct_answer", "solution")


@dataclass
class EvalRef:
    """What an analysis needs from an eval file: its stored name and its grader specs."""

    name: str
    source: Path | None = None
    grader_specs: list[dict[str, Any]] = field(default_factory=list)


def eval_ref(arg: str) -> EvalRef:
    """An eval file (YAML/JSON) or a stored eval name."""
    path = Path(arg)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise UserError("eval file not found", file=path)
        from posttrain.loaders import yaml12

        spec = yaml12.load_file(path, what="eval file")[0]
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise UserError("an eval file needs a `name`", file=path, field="name")
        graders = spec.get("graders") if isinstance(spec.get("graders"), list) else []
        return EvalRef(name=spec["name"], source=path,
                       grader_specs=[g for g in graders if isinstance(g, dict)])
    return EvalRef(name=arg)


def open_store(path: str | Path) -> Store:
    """Open an existing store to read it (a missing file is a user error, not a new empty
    store; one this process cannot write is opened read-only)."""
    if not Path(path).exists():
        raise UserError("no store here; run `posttrain eval` first or pass --store", file=path)
    return Store(path, reading=True)


def resolve(store: Store, ref: str) -> RunInfo:
    try:
        return store.resolve_run(ref)
    except KeyError:
        raise UserError(f"no run matches {ref!r} (give a run id, a unique prefix or latest)",
                        file=store.path) from None


def no_runs_error(store: Store, name: str, command: str) -> UserError:
    """The error for an eval name with no stored runs; when ``name`` is a run's id (or a unique
    prefix of one) it says so, and what ``command`` takes instead."""
    try:
        run = store.resolve_run(name)
    except KeyError:
        run = None
    if run is None:
        several = store.conn.execute("SELECT COUNT(*) FROM runs WHERE substr(id, 1, ?) = ?",
                                     (len(name), name)).fetchone()[0]
        if several > 1:
            return UserError(f"no stored runs of eval {name!r}, and it begins {several} runs' "
                             "ids: give more of a run's id, or an eval's name",
                             file=store.path)
        return UserError(f"no stored runs of eval {name!r}", file=store.path)
    if command == "compare":
        hint = (f"`posttrain compare {run.id} OTHER_RUN` compares two runs, "
                f"`posttrain compare {run.eval_name}` every model's latest run of its eval")
    else:
        hint = f"give its eval's name: `posttrain {command} {run.eval_name}`"
    return UserError(f"{name!r} is a run (of eval {run.eval_name!r}), not an eval: {hint}",
                     file=store.path)


def run_label(run: RunInfo) -> str:
    return run.model if run.variant in ("", "default") else f"{run.model}/{run.variant}"


def select_runs(store: Store, eval_name: str, run_refs: Sequence[str] | None = None,
                *, models: Sequence[str] | None = None, latest_only: bool = True) -> list[RunInfo]:
    """The runs of an eval: the named ones, else the newest per (model, variant)."""
    if run_refs:  # a run named twice (or by its id and a prefix) is one run
        runs = list({run.id: run for run in (resolve(store, ref) for ref in run_refs)}.values())
        other = [r for r in runs if r.eval_name != eval_name]
        if other:
            raise UserError(f"run {other[0].id} is of eval {other[0].eval_name!r}, "
                            f"not {eval_name!r}", field="--runs")
        return runs
    runs = store.list_runs(eval_name)  # newest first
    if models:
        runs = [r for r in runs if any(model_matches(r.model, m) for m in models)]
    if not latest_only:
        return runs
    seen: set[tuple[str, str]] = set()
    chosen: list[RunInfo] = []
    for run in runs:
        key = (run.model, run.variant)
        if key not in seen:
            seen.add(key)
            chosen.append(run)
    return chosen


def model_matches(stored: str, wanted: str) -> bool:
    """``openai:gpt-4o`` matches ``gpt-4o`` and vice versa; exact names always match."""
    if stored == wanted:
        return True
    return stored.split(":", 1)[-1] == wanted.split(":", 1)[-1]


def load_all(store: Store, runs: Sequence[RunInfo]) -> list[RunResults]:
    """Each run's results; runs of one eval share one copy of each identical item."""
    items: dict[tuple[str, str, str], Any] = {}
    return [load_results(store, run, item_memo=items) for run in runs]


def unique_labels(results: Sequence[RunResults]) -> list[str]:
    """Run labels, with the run id appended where two runs would share a label."""
    labels = [run_label(r.run) for r in results]
    counts = Counter(labels)
    return [f"{label}@{r.run.id}" if counts[label] > 1 else label
            for label, r in zip(labels, results, strict=True)]


def sample_passed(sample: SampleResult) -> bool | None:
    """A scored sample's pass verdict: the grader's, else value >= 0.5."""
    if sample.status != "scored" or sample.value is None:
        return None
    if sample.passed is not None:
        return sample.passed
    return sample.value >= 0.5


def item_pass_rates(results: RunResults | Any) -> dict[str, float]:
    """Item -> share of its epochs that passed, for every item of the run (headline semantics:
    a failed, unscored or unanswered sample did not pass)."""
    if not isinstance(results, RunResults):  # a run's kept cells (analysis.cells.RunCells)
        return results.item_pass_rates()
    by_item = results.by_item()
    epochs = max(1, results.run.epochs)
    rates: dict[str, float] = {}
    for item in results.items:
        samples = by_item.get(item.id, [])
        rates[item.id] = sum(1 for s in samples if sample_passed(s)) / max(epochs, len(samples))
    return rates


def answer_text(sample: SampleResult) -> str:
    """The answer as text: output text plus any tool calls (compact)."""
    return record_text(sample.completion)


def record_text(completion: dict[str, Any] | None) -> str:
    """A completion record's answer as text (``answer_text``)."""
    return facts_answer_text(completion)


_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower()).strip(" .!?;:\"'`")


def reference_of(data: dict[str, Any], grader_specs: Sequence[Any] = ()) -> Any:
    """The item's reference: the field the eval's first grader compares with (its
    ``reference: "{{item.x}}"``), else the first of the usual reference field names."""
    from posttrain.template import TemplateError, placeholders, resolve

    for spec in grader_specs:
        reference = spec.get("reference") if isinstance(spec, dict) else None
        paths = [p for p in placeholders(reference) if p.startswith("item.")] if reference else []
        if len(paths) == 1:
            try:
                return resolve(paths[0], {"item": data})
            except TemplateError:
                break
    for key in REFERENCE_FIELDS:
        if key in data and data[key] not in (None, ""):
            return data[key]
    return None


def group_names(result: RunResults | Any, by: str | None = None
                ) -> Iterator[tuple[str, list[str]]]:
    """(item id, its group names) in the run's order: the item's tags, or its field ``by``."""
    if not isinstance(result, RunResults):  # a run's kept cells (analysis.cells.RunCells)
        yield from result.group_names(by)
        return
    for item in result.items:
        if by is None:
            yield item.id, [str(t) for t in item.tags]
            continue
        yield item.id, field_groups(item.data.get(by), by)


def item_groups(results: Sequence[RunResults | Any], by: str | None = None
                ) -> dict[str, list[str]]:
    """Group -> item ids: the items' tags, or the values of the item field ``by`` (each group's
    items in the order first seen, run after run)."""
    groups: dict[str, list[str]] = {}
    members: dict[str, set[str]] = {}
    for result in results:
        if isinstance(result, RunResults):
            local: dict[str, list[str]] = {}
            for item_id, names in group_names(result, by):
                for name in dict.fromkeys(names):
                    local.setdefault(name, []).append(item_id)
        else:  # a run's kept cells (analysis.cells.RunCells)
            local = result.groups(by)
        for name, ids in local.items():
            have = groups.get(name)
            if have is None:
                groups[name] = list(ids)
            elif have != ids:
                seen = members.get(name)
                if seen is None:
                    seen = members[name] = set(have)
                for item_id in ids:
                    if item_id not in seen:
                        seen.add(item_id)
                        have.append(item_id)
    if by is not None and not set(groups) - {missing_group(by)} and results:
        raise UserError(f"no item of the run has the field {by!r} to group by", field="--by")
    return dict(sorted(groups.items()))


def truncate(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

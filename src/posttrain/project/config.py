"""The project file, ``posttrain.yaml``: a project's evals as one set, its models, its bars.

```yaml
evals:                                  # files, globs or folders (relative to this file), suites
  - evals/*.yaml
  - suite:instruction_following?n=24
  - {eval: evals/sql.yaml, weight: 3, pass_bar: 0.7, variant: concise}
production: mini                        # the model in production: a models-file name or a spec
candidates: [gpt-5-mini]                # models `posttrain watch` checks when they appear
models_file: models.yaml                # default: posttrain.models.yaml beside this file
store: posttrain.db                     # default: posttrain.db beside this file
pass_bar: 0.6                           # for evals that set none (in the entry or the eval file)
no_regression: true                     # no significant regression against production
tags: {sql: {pass_bar: 0.7}}            # a bar (and the regression test) per tag, in every eval
weight: ...                             # per entry: how much an eval matters (0: advisory)
correction: holm                        # holm | bh: across the set's paired comparisons
alpha: 0.05
```

Every mistake is one :class:`UserError` naming the project file, the line and the field, raised
before any eval runs.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError, did_you_mean

PROJECT_FILE = "posttrain.yaml"
CORRECTIONS = ("holm", "bh")
TOP_KEYS = ("evals", "production", "candidates", "models_file", "store", "pass_bar",
            "no_regression", "tags", "correction", "alpha", "name")
ENTRY_KEYS = ("eval", "weight", "pass_bar", "no_regression", "variant")
TAG_KEYS = ("pass_bar", "no_regression")


@dataclass
class EvalEntry:
    """One eval of the set: a file (absolute path) or a ``suite:`` reference."""

    ref: str
    weight: float = 1.0
    pass_bar: float | None = None        # None: the eval file's own, else the project's
    no_regression: bool | None = None    # None: the project's
    variant: str = "default"             # the prompt in production
    line: int | None = None              # where the project file names it
    field: str = "evals"
    from_pattern: bool = False           # matched by a glob or folder (an explicit entry wins)

    @property
    def is_suite(self) -> bool:
        return self.ref.startswith("suite:")


@dataclass
class TagRule:
    name: str
    pass_bar: float | None = None
    no_regression: bool | None = None    # None: the project's
    line: int | None = None


@dataclass
class Project:
    path: Path
    evals: list[EvalEntry]
    production: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    models_file: Path | None = None
    store: Path = Path(PROJECT_FILE).with_name("posttrain.db")
    pass_bar: float | None = None
    no_regression: bool = True
    tags: dict[str, TagRule] = field(default_factory=dict)
    correction: str = "holm"
    alpha: float = 0.05
    name: str | None = None
    text: str = ""
    #: files a glob or folder matched that are not eval files, with why (listed, never silent)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.path.parent

    def line_of(self, field_path: str) -> int | None:
        from posttrain.loaders.yaml12 import yaml_line

        return yaml_line(self.text, field_path)

    def error(self, message: str, field_path: str, line: int | None = None) -> UserError:
        return UserError(message, file=self.path, line=line or self.line_of(field_path),
                         field=field_path)


def find_project(start: str | Path | None = None) -> Path | None:
    """``posttrain.yaml`` in ``start`` (default: the working folder) or the nearest folder above."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_project(path: str | Path | None = None) -> Project:
    """Read and check a project file (default: found from the working folder upwards)."""
    if path is None:
        found = find_project()
        if found is None:
            raise UserError(f"no {PROJECT_FILE} here or in any folder above "
                            f"{Path.cwd().resolve()} (write one, or pass --project FILE)",
                            field="--project")
        path = found
    path = Path(path).resolve()
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        raise UserError("no such project file", file=path)
    from posttrain.loaders import yaml12

    data, text = yaml12.load_file(path, what="project file")
    project = Project(path=path, evals=[], store=path.with_name("posttrain.db"), text=text)
    try:
        _read(project, data)
    except UserError as exc:
        if exc.line is None and exc.field and exc.file == str(path):
            exc.line = project.line_of(exc.field)
        raise
    return project


def _fail(project: Project, field_path: str, message: str) -> UserError:
    return UserError(message, file=project.path, field=field_path)


def _share(project: Project, value: Any, field_path: str) -> float:
    from posttrain.eval import check_share

    try:
        return check_share(value)
    except ValueError as exc:
        raise _fail(project, field_path, str(exc)) from None


def _flag(project: Project, value: Any, field_path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(project, field_path, f"must be true or false, got {value!r}")
    return value


def _names(project: Project, value: Any, field_path: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise _fail(project, field_path, "must be a model name or a list of them (names from "
                                         "the models file, or specs such as openai:gpt-4.1)")
    return [v.strip() for v in values]


def _read(project: Project, data: Any) -> None:
    if not isinstance(data, dict):
        raise UserError("a project file is a mapping with at least `evals:`", file=project.path,
                        line=1)
    for key in data:
        if key not in TOP_KEYS:
            raise _fail(project, str(key), "unknown field" + did_you_mean(str(key), TOP_KEYS)
                        + f" (a project file has {', '.join(TOP_KEYS)})")
    if "name" in data and not isinstance(data["name"], str):
        raise _fail(project, "name", "must be text")
    project.name = data.get("name")
    root = project.root
    if data.get("models_file") is not None:
        if not isinstance(data["models_file"], str):
            raise _fail(project, "models_file", "must be a path")
        models_file = (root / data["models_file"]).resolve()
        if not models_file.is_file():
            raise _fail(project, "models_file", f"no such file: {models_file}")
        project.models_file = models_file
    elif (root / "posttrain.models.yaml").is_file():
        project.models_file = (root / "posttrain.models.yaml").resolve()
    if data.get("store") is not None:
        if not isinstance(data["store"], str):
            raise _fail(project, "store", "must be a path")
        project.store = (root / data["store"]).resolve()
    if data.get("pass_bar") is not None:
        project.pass_bar = _share(project, data["pass_bar"], "pass_bar")
    if "no_regression" in data:
        project.no_regression = _flag(project, data["no_regression"], "no_regression")
    correction = data.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise _fail(project, "correction", f"must be holm or bh, got {correction!r}"
                    + did_you_mean(str(correction), CORRECTIONS))
    project.correction = correction
    alpha = data.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or \
            not math.isfinite(alpha) or not 0 < alpha < 0.5:
        raise _fail(project, "alpha", f"must be a number above 0 and below 0.5, got {alpha!r}")
    project.alpha = float(alpha)
    if data.get("production") is not None:
        project.production = _names(project, data["production"], "production")
    if data.get("candidates") is not None:
        project.candidates = _names(project, data["candidates"], "candidates")
    for name in project.production + project.candidates:
        _check_model(project, name)
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise _fail(project, "tags", "must be a mapping of tag -> {pass_bar, no_regression}")
    for tag, rule in tags.items():
        where = f"tags.{tag}"
        if not isinstance(rule, dict) or not rule:
            raise _fail(project, where, "must be a mapping with pass_bar and/or no_regression")
        for key in rule:
            if key not in TAG_KEYS:
                raise _fail(project, f"{where}.{key}", "unknown field"
                            + did_you_mean(str(key), TAG_KEYS) + " (a tag takes pass_bar, "
                            "no_regression)")
        project.tags[str(tag)] = TagRule(
            name=str(tag),
            pass_bar=(_share(project, rule["pass_bar"], f"{where}.pass_bar")
                      if rule.get("pass_bar") is not None else None),
            no_regression=(_flag(project, rule["no_regression"], f"{where}.no_regression")
                           if "no_regression" in rule else None),
            line=project.line_of(where))
    entries = data.get("evals")
    if not isinstance(entries, list) or not entries:
        raise _fail(project, "evals", "must be a list of eval files, globs, folders or "
                                      "suite:NAME references")
    for index, entry in enumerate(entries):
        project.evals.extend(_entry(project, entry, f"evals[{index}]"))
    if all(entry.weight == 0 for entry in project.evals):
        raise _fail(project, "evals", "every eval has weight 0 (advisory): nothing could "
                                      "block, so every check would adopt; give at least one "
                                      "eval a weight above 0")
    # a file a glob or folder matched may also be named on its own: the explicit entry's
    # settings win (in the glob's place); two explicit entries, or two patterns, are a mistake
    kept: dict[str, int] = {}
    merged: list[EvalEntry] = []
    for entry in project.evals:
        if entry.ref not in kept:
            kept[entry.ref] = len(merged)
            merged.append(entry)
            continue
        earlier = merged[kept[entry.ref]]
        if earlier.from_pattern != entry.from_pattern:
            explicit = entry if earlier.from_pattern else earlier
            merged[kept[entry.ref]] = explicit
            continue
        raise UserError(f"{entry.ref} is already in the set ({earlier.field})",
                        file=project.path, line=entry.line, field=entry.field)
    project.evals = merged


def _check_model(project: Project, name: str) -> None:
    from posttrain.models import model_config

    try:
        model_config(name, project.models_file)
    except UserError as exc:
        if exc.file and exc.file != str(project.path):
            raise  # the models file's own mistake, named where it is
        where = "production" if name in project.production else "candidates"
        message = exc.message
        if project.models_file is None:
            message += (" (no models file: none named by `models_file:` and no "
                        f"posttrain.models.yaml beside {project.path})")
        raise _fail(project, where, message) from None


def _entry(project: Project, entry: Any, where: str) -> list[EvalEntry]:
    settings: dict[str, Any] = {}
    if isinstance(entry, dict):
        for key in entry:
            if key not in ENTRY_KEYS:
                raise _fail(project, f"{where}.{key}", "unknown field"
                            + did_you_mean(str(key), ENTRY_KEYS)
                            + f" (an eval entry takes {', '.join(ENTRY_KEYS)})")
        ref = entry.get("eval")
        if not isinstance(ref, str) or not ref.strip():
            raise _fail(project, f"{where}.eval", "must be an eval file, glob, folder or "
                                                  "suite:NAME")
        if "weight" in entry:
            weight = entry["weight"]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or \
                    not math.isfinite(weight) or weight < 0:
                raise _fail(project, f"{where}.weight",
                            f"must be a number of 0 or more (0: reported, never blocks), "
                            f"got {weight!r}")
            settings["weight"] = float(weight)
        if entry.get("pass_bar") is not None:
            settings["pass_bar"] = _share(project, entry["pass_bar"], f"{where}.pass_bar")
        if "no_regression" in entry:
            settings["no_regression"] = _flag(project, entry["no_regression"],
                                              f"{where}.no_regression")
        if "variant" in entry:
            if not isinstance(entry["variant"], str) or not entry["variant"]:
                raise _fail(project, f"{where}.variant", "must be the name of one of the "
                                                         "eval's variants")
            settings["variant"] = entry["variant"]
        field_path = f"{where}.eval"
    elif isinstance(entry, str) and entry.strip():
        ref, field_path = entry, where
    else:
        raise _fail(project, where, "must be an eval file, glob, folder, suite:NAME, or "
                                    "{eval: ..., weight: ..., pass_bar: ...}")
    line = project.line_of(field_path)
    ref = ref.strip()
    if ref.startswith("suite:"):
        return [EvalEntry(ref=ref, line=line, field=field_path, **settings)]
    paths = _expand(project, ref, field_path, line)
    if len(paths) > 1 and "variant" in settings:
        raise UserError("a variant names one eval's prompt: give this setting to one file, "
                        f"not the {len(paths)} that {ref!r} matches", file=project.path,
                        line=line, field=f"{where}.variant")
    pattern = any(ch in ref for ch in "*?[") or (project.root / ref).is_dir()
    return [EvalEntry(ref=str(p), line=line, field=field_path, from_pattern=pattern, **settings)
            for p in paths]


def _expand(project: Project, ref: str, field_path: str, line: int | None) -> list[Path]:
    root = project.root
    target = (root / ref)
    if any(ch in ref for ch in "*?["):
        matches = sorted(Path(p).resolve() for p in glob.glob(str(target), recursive=True))
        candidates = [p for p in matches if p.is_file() and p.suffix.lower() in EVAL_SUFFIXES]
        files = []
        for path in candidates:
            if path == project.path:
                continue
            reason = not_an_eval(path, skip=project.path)
            if reason is None:
                files.append(path)
            else:
                project.skipped.append((path, reason))
        if not files:
            raise UserError(f"{ref!r} matches no eval file (under {root})", file=project.path,
                            line=line, field=field_path)
        return files
    target = target.resolve()
    if target.is_dir():
        files = eval_files_in(target, skip=project.path, skipped=project.skipped)
        if not files:
            raise UserError(f"no eval files in the folder {target}", file=project.path,
                            line=line, field=field_path)
        return files
    if not target.is_file():
        raise UserError(f"no such eval file: {target}", file=project.path, line=line,
                        field=field_path)
    return [target]


EVAL_SUFFIXES = (".yaml", ".yml", ".json")


def not_an_eval(path: Path, skip: Path | None = None) -> str | None:
    """Why a file that a glob or folder matched is not an eval file, or None when it is one
    (or looks like an attempt at one: it is then loaded, so its mistakes are reported).

    The rule: a YAML or JSON *mapping* with at least one eval field (``name``, ``dataset``,
    ``messages``, ``graders``, ...), or a near miss of one (``nme``, ``grader``), is an eval
    file; so is a YAML file that does not parse (loading it says why). Not eval files: the
    project file (``posttrain.yaml``, or any mapping with ``evals:``), a mapping with no eval
    field (a models file: ``models:``), a list or a scalar (a JSON dataset), a JSON file that
    does not parse (JSON Lines named .json)."""
    import difflib

    from posttrain.eval import _TOP_LEVEL_KEYS
    from posttrain.loaders import yaml12

    if path.name == PROJECT_FILE or (skip is not None and path == skip):
        return "a project file"
    try:
        data = yaml12.load_file(path, what="eval file")[0]
    except UserError:
        if path.suffix.lower() == ".json":
            return "does not parse as JSON"
        return None  # a broken eval file: load it to say why
    if isinstance(data, list):
        return "a list (a dataset?), not a mapping"
    if not isinstance(data, dict):
        return "not a mapping"
    if "evals" in data:
        return "a project file (it has `evals:`)"
    keys = [str(k) for k in data]
    if any(k in _TOP_LEVEL_KEYS or difflib.get_close_matches(k, sorted(_TOP_LEVEL_KEYS), n=1,
                                                             cutoff=0.8) for k in keys):
        return None
    if "models" in data:
        return "a models file (it has `models:`)"
    return "no eval field (name, dataset, messages, graders, ...)"


def is_eval_file(path: Path) -> bool:
    """An eval file, or an attempt at one (see :func:`not_an_eval`)."""
    return not_an_eval(path) is None


def eval_files_in(folder: Path, skip: Path | None = None,
                  skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """The eval files in ``folder`` and its subfolders, sorted by path; the YAML/JSON files that
    are not (with why) are appended to ``skipped``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not (path.is_file() and path.suffix.lower() in EVAL_SUFFIXES) or \
                any(part.startswith(".") for part in path.relative_to(folder).parts) or \
                path == skip:
            continue
        reason = not_an_eval(path, skip=skip)
        if reason is None:
            found.append(path.resolve())
        elif skipped is not None:
            skipped.append((path.resolve(), reason))
    return found

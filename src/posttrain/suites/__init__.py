"""Built-in eval suites, generated offline and deterministic by seed.

Each suite is a package (here, or a plugin's) whose module defines ``SUITE: SuiteInfo`` and
registers ``@register_suite("name")`` on ``build(out_dir: Path, *, n: int | None, seed: int,
length: int | None) -> Path``, which writes an eval file (``eval.yaml``) and its dataset into
``out_dir`` and returns the eval file's path. A suite's own graders live next to it
(``posttrain.suites.<name>.grader``). Modules are imported only when a suite is listed or
built, so start-up stays light.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    measures: str
    components: list[str] = field(default_factory=list)
    default_n: int = 100
    default_length: int | None = None


def suite_names() -> list[str]:
    """Every suite: posttrain's own and the plugins' (``posttrain.plugins``)."""
    from posttrain import plugins

    return plugins.names("suite")


def _module(name: str) -> Any:
    from posttrain import plugins

    build = plugins.get("suite", name, field_name="suite")
    return importlib.import_module(build.__module__)


def suite_info(name: str) -> SuiteInfo:
    """What the suite measures, its components and sizes. posttrain's own suites declare
    ``SUITE = SuiteInfo(...)`` with literal values, read here from the source without importing
    the suite (its generators cost ~0.1 s); anything else is imported."""
    from posttrain import plugins

    if name not in plugins.KINDS["suite"].parts:
        module = plugins.KINDS["suite"].index().get(name)
        info = _literal_info(module) if module else None
        if info is not None:
            return info
    return _module(name).SUITE


def _literal_info(module: str) -> SuiteInfo | None:
    """``SUITE = SuiteInfo(k=literal, ...)`` read from ``module``'s source; None when the file or
    the assignment is not there or a value is not a literal."""
    import ast

    parts = module.split(".")[1:]
    root = Path(__file__).resolve().parent.parent
    path = root.joinpath(*parts, "__init__.py")
    if not path.is_file():
        path = root.joinpath(*parts).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "SUITE"
                and isinstance(node.value, ast.Call) and not node.value.args):
            try:
                return SuiteInfo(**{k.arg: ast.literal_eval(k.value)
                                    for k in node.value.keywords if k.arg})
            except (ValueError, TypeError):
                return None
    return None


def write_rows(path: Path, rows: Iterable[dict[str, Any]], *, sort_keys: bool = False) -> Path:
    """A suite's dataset: one JSON object a line (UTF-8, not escaped)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n")
    return path


def write_eval_file(out_dir: Path, spec: dict[str, Any]) -> Path:
    """A suite's ``eval.yaml`` (fields in the order given)."""
    import yaml

    path = out_dir / "eval.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=1000),
                    encoding="utf-8")
    return path


def build_suite(name: str, out_dir: Path, *, n: int | None = None, seed: int = 0,
                length: int | None = None, max_tokens: int | None = None) -> Path:
    """Write the suite's eval file and dataset into ``out_dir``; return the eval file path.

    ``max_tokens`` replaces the suite's own ``sampling.max_tokens`` (a shorter answer budget
    for a small model on a CPU; an answer cut there is graded as it is).
    """
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"must be at least 1; got {max_tokens}", field="max_tokens")
    out_dir.mkdir(parents=True, exist_ok=True)
    from posttrain import plugins

    build = plugins.get("suite", name, field_name="suite")
    path = build(out_dir, n=n, seed=seed, length=length)
    if max_tokens is not None:
        from posttrain.loaders import yaml12

        spec = yaml12.loads(path.read_text(encoding="utf-8"), file=path)
        spec["sampling"] = {**(spec.get("sampling") or {}), "max_tokens": max_tokens}
        path = write_eval_file(out_dir, spec)
    return path

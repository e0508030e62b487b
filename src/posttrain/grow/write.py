"""Write a grown eval: a new folder holding ``eval.yaml``, ``items.jsonl`` and ``grow.json``.

``eval.yaml`` is the original eval file's fields with ``name`` replaced (default
``<name>-grown``), ``dataset: items.jsonl`` (inline ``items`` moved there), relative
``source_file`` paths of python graders made absolute, and ``metadata.grown_from`` (the original
file, its name and fingerprint, the generator, the date). ``items.jsonl`` holds every original
row as it was loaded, then each added row with its ``provenance`` (``seed``, ``kind``,
``generator``, ``verification``). ``grow.json`` is the whole result (funnel, every dropped
request with its reason). The original eval file and dataset are only read.

Errors (``UserError``, before any request when called through ``check_target``): the output
folder already holds a grown eval, or is a file.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

FILES = ("eval.yaml", "items.jsonl", "grow.json")


def check_target(out_dir: Path, extra: tuple[str, ...] = ()) -> None:
    """The output folder can take a new eval (missing, or without grow's files); nothing is
    ever written through a symbolic link (a dangling one included)."""
    if out_dir.is_symlink():
        raise UserError("is a symbolic link: grow writes only into a real folder (pick another "
                        "-o)", file=out_dir, field="-o")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("exists and is not a folder", file=out_dir, field="-o")
    for name in (*FILES, *extra):
        if (out_dir / name).is_symlink():
            raise UserError(f"holds {name} as a symbolic link: grow never writes through one "
                            "(pick another -o, or remove it)", file=out_dir, field="-o")
        if (out_dir / name).exists():
            raise UserError(f"already holds {name}: grow writes a new eval version into a new "
                            "folder (pick another -o, or remove it)", file=out_dir, field="-o")


def solver_files(eval_: Any) -> list[Path]:
    """The module file (or package folder) of the eval's ``solver: module:function`` when it
    lies beside the eval file (where ``Eval.load_solver`` finds it): copied beside the grown
    eval. None for an importable module (a suite's) or an eval without a solver."""
    if not getattr(eval_, "solver", None) or eval_.source is None:
        return []
    top = str(eval_.solver).partition(":")[0].split(".")[0]
    folder = Path(eval_.source).resolve().parent
    for path in (folder / f"{top}.py", folder / top):
        if path.is_file() or (path / "__init__.py").is_file():
            return [path]
    return []


def _absolute_sources(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        out = {k: _absolute_sources(v, base) for k, v in value.items()}
        source = out.get("source_file")
        if isinstance(source, str) and not Path(source).is_absolute():
            out["source_file"] = str((base / source).resolve())
        return out
    if isinstance(value, list):
        return [_absolute_sources(v, base) for v in value]
    return value


def _eval_text(spec: dict[str, Any]) -> str:
    """Block YAML when it reads back exactly as YAML 1.2, else JSON (which is YAML too)."""
    import yaml

    from posttrain.loaders import yaml12

    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=1000)
    try:
        if yaml12.loads(text) == json.loads(json.dumps(spec)):
            return text
    except UserError:
        pass
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def write_grown(eval_: Any, result: dict[str, Any], out_dir: Path, *, name: str | None = None
                ) -> Path:
    """Write the grown eval into ``out_dir``; the path of its ``eval.yaml``."""
    from posttrain.loaders import yaml12

    if eval_.source is None:
        raise UserError("grow needs an eval file to copy the prompt and graders from",
                        field="EVAL")
    source = Path(eval_.source)
    solver = solver_files(eval_)
    check_target(out_dir, tuple(path.name for path in solver))
    spec, _text = yaml12.load_file(source, what="eval file", items_key="items")
    spec = _absolute_sources(dict(spec), source.parent)
    spec.pop("items", None)
    spec["name"] = name or f"{eval_.name}-grown"
    if spec["name"] == eval_.name:
        raise UserError(f"{spec['name']!r} is the original eval's name: a grown eval is a new "
                        "version, and its runs must not mix with the original's", field="--name")
    spec["dataset"] = "items.jsonl"
    metadata = spec.get("metadata") if isinstance(spec.get("metadata"), dict) else {}
    spec["metadata"] = {**metadata, "grown_from": {
        "file": str(source), "name": eval_.name, "fingerprint": eval_.fingerprint(),
        "generator": result["generator"], "verification": result["method"],
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "added": len(result["added"]), "original_items": len(eval_.items)}}
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in solver:  # the solver module beside the new eval, so `solver:` loads there
        if path.is_dir():
            shutil.copytree(path, out_dir / path.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(path, out_dir / path.name)
    with (out_dir / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item in eval_.items:
            handle.write(json.dumps(item.data, ensure_ascii=False) + "\n")
        for row in result["added"]:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    path = out_dir / "eval.yaml"
    path.write_text(_eval_text(spec), encoding="utf-8")
    (out_dir / "grow.json").write_text(json.dumps(result, indent=2, ensure_ascii=False,
                                                  default=str) + "\n", encoding="utf-8")
    return path

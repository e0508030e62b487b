"""Write a winning prompt into the eval file as a new named variant with its provenance.

The user's prompt and the rest of the file are kept byte for byte: the variant's lines are
inserted at the end of the ``variants:`` block (or a ``variants:`` block is appended). Strings
are written as literal blocks where that reads back exactly, else JSON-quoted; the file is read
back and must give the variant as meant and load as an eval, or it is restored and the write
refused. A JSON eval file is rewritten as JSON with the variant added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _variants_node(text: str, path: Path) -> Any:
    from yaml import MappingNode, ScalarNode

    from posttrain.loaders import yaml12

    root = yaml12.compose(text)
    if not isinstance(root, MappingNode):
        raise UserError("an eval file must be a mapping", file=path)
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "variants":
            return key_node, value_node
    return None


def check_writable(path: Path | None) -> None:
    """Before any request: the eval file exists and a variant can be added to it."""
    from yaml import MappingNode, ScalarNode

    from posttrain.loaders.datasets import read_text

    if path is None:
        raise UserError("the eval has no file to write the winning variant into; pass "
                        "--no-write", field="--no-write")
    if _is_json(path):
        return
    found = _variants_node(read_text(path, what="eval file"), path)
    if found is None:
        return
    key_node, value_node = found
    if isinstance(value_node, ScalarNode) and value_node.value in ("", "null", "~"):
        return
    if not isinstance(value_node, MappingNode) or value_node.flow_style:
        raise UserError("written in flow style ({...}): write it as a block mapping (one "
                        "variant per line) so optimize can add one, or pass --no-write",
                        file=path, line=key_node.start_mark.line + 1, field="variants")


def unique_name(existing: set[str], base: str) -> str:
    if base not in existing:
        return base
    number = 2
    while f"{base}-{number}" in existing:
        number += 1
    return f"{base}-{number}"


def _literal_ok(text: str) -> bool:
    return ("\n" in text and not text.startswith((" ", "\n", "\t")) and not text.endswith("\n")
            and "\r" not in text and all(not line.endswith((" ", "\t")) for line in
                                         text.split("\n"))
            and all(ch.isprintable() or ch in "\n\t" for ch in text))


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _emit(value: Any, indent: int, literal: bool) -> list[str]:
    """Block YAML lines for a mapping's entries (``value`` a dict) at ``indent``."""
    pad = " " * indent
    lines: list[str] = []
    for key, inner in value.items():
        head = f"{pad}{_key(str(key))}:"
        if isinstance(inner, dict) and inner:
            lines += [head, *_emit(inner, indent + 2, literal)]
        elif isinstance(inner, list) and inner and all(isinstance(x, dict) for x in inner):
            lines.append(head)
            for element in inner:
                entry = _emit(element, indent + 4, literal)
                lines.append(f"{pad}  - " + entry[0].lstrip())
                lines += entry[1:]
        elif isinstance(inner, str) and literal and _literal_ok(inner):
            lines.append(f"{head} |-")
            lines += [f"{pad}  {line}" if line else "" for line in inner.split("\n")]
        else:
            lines.append(f"{head} {json.dumps(inner, ensure_ascii=False)}")
    return lines


def _entry_lines(name: str, body: dict[str, Any], indent: int, literal: bool) -> list[str]:
    if literal:
        return _emit({name: body}, indent, True)
    return [" " * indent + f"{_key(name)}: {json.dumps(body, ensure_ascii=False)}"]


def _insert(text: str, path: Path, name: str, body: dict[str, Any], literal: bool) -> str:
    from yaml import MappingNode

    lines = text.split("\n")
    found = _variants_node(text, path)
    if found is None:
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join([*lines, "variants:", *_entry_lines(name, body, 2, literal)]) + "\n"
    key_node, value_node = found
    if not isinstance(value_node, MappingNode) or not value_node.value:
        # `variants:` with nothing under it: the entry goes right below the key
        at = key_node.start_mark.line
        lines[at] = re.sub(r"variants\s*:.*$", "variants:", lines[at])
        return "\n".join([*lines[:at + 1], *_entry_lines(name, body, 2, literal),
                          *lines[at + 1:]])
    indent = value_node.value[0][0].start_mark.column
    end = value_node.end_mark.line if value_node.end_mark.column else value_node.end_mark.line - 1
    end = min(end, len(lines) - 1)
    while end > key_node.start_mark.line and (not lines[end].strip()
                                              or lines[end].lstrip().startswith("#")):
        end -= 1
    return "\n".join([*lines[:end + 1], *_entry_lines(name, body, indent, literal),
                      *lines[end + 1:]])


def write_variant(path: Path, name: str, messages: list[dict[str, Any]],
                  provenance: dict[str, Any], sampling: dict[str, Any] | None = None) -> None:
    """Add variant ``name`` (its ``messages``, ``provenance`` and, where the current prompt's
    variant sets some, its ``sampling``) to the eval file at ``path``."""
    from posttrain.eval import load_eval
    from posttrain.loaders import yaml12
    from posttrain.loaders.datasets import read_text

    body: dict[str, Any] = {"provenance": provenance, "messages": messages}
    if sampling:
        body["sampling"] = sampling
    original = path.read_bytes()
    text = read_text(path, what="eval file")
    if _is_json(path):
        data = json.loads(text)
        data.setdefault("variants", {})[name] = body
        attempts = [json.dumps(data, indent=2, ensure_ascii=False) + "\n"]
    else:
        attempts = [_insert(text, path, name, body, literal) for literal in (True, False)]
    problem = "no attempt"
    for candidate in attempts:
        try:
            spec = yaml12.loads(candidate, file=path)
            written = (spec.get("variants") or {}).get(name) if isinstance(spec, dict) else None
            if written != json.loads(json.dumps(body)):
                problem = "the file did not read back as written"
                continue
            path.write_text(candidate, encoding="utf-8")
            load_eval(path)
            return
        except UserError as exc:
            problem = str(exc)
            path.write_bytes(original)
    path.write_bytes(original)
    raise UserError(f"could not add variant {name!r} ({problem}); the file is unchanged",
                    file=path, field="variants")

"""YAML as the user wrote it: the YAML 1.2 core schema on PyYAML, with line numbers for errors.

PyYAML implements YAML 1.1, whose implicit types turn ``no``, ``yes``, ``on`` and ``NO`` into
booleans (the "Norway problem"), ``01234`` into the octal 668, ``1_000`` into 1000 and
``2025-04-14`` into a date. Every YAML file a user writes (eval files, YAML datasets, models
files, grader files) is read here instead, with the implicit resolvers of the YAML 1.2.2 core
schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution, §10.3.2):

=========  ==========================================================================
null       ``null``, ``Null``, ``NULL``, ``~`` and the empty value
bool       ``true``, ``True``, ``TRUE``, ``false``, ``False``, ``FALSE``
int        ``[-+]?[0-9]+`` (decimal, leading zeros allowed), ``0o[0-7]+``, ``0x[0-9a-fA-F]+``
float      ``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?``, ``.inf``, ``-.inf``, ``.nan``
str        everything else: ``no``, ``yes``, ``on``, ``NO``, ``1_000``, ``2025-04-14``, ``0b101``
=========  ==========================================================================

The merge key ``<<`` (a YAML 1.1 type, kept by most YAML 1.2 tools) still merges mappings.
A key written twice in one mapping is an error (YAML 1.2.2 §3.2.1.1: keys are unique), where
PyYAML silently keeps the last.

**Item fields** (rows of a YAML dataset, the ``items:`` of an eval file) are data that prompts
and graders compare as text, so they keep what was written: a plain scalar is a number, a
boolean or null only when the JSON for that value is exactly the text written (``42``, ``-7``,
``3.5``, ``true``, ``false``, ``null``; also ``~`` and the empty value, which are null).
Anything else stays the string as written: ``3.10`` (a version, not 3.1), ``01234`` (a zip
code, not 1234), ``True``, ``NO``, ``1e3``, ``+5``, ``0x1F``, and an integer beyond 64 bits
(``12345678901234567890123``, which JSON encoders and APIs cannot carry). So ``answer: 3.10`` renders as
``3.10`` in a prompt and equals a model's ``3.10`` under ``string_check``; the ``numeric``
grader reads it as 3.1 either way. Quote a value (``'3.10'``) to make it a string anywhere.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from posttrain.errors import UserError
from posttrain.loaders.datasets import read_text

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"

# YAML 1.2.2 §10.3.2, anchored at both ends (\Z: a plain scalar never ends in a newline)
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL_RE = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT_RE = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = re.compile(r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")


class CoreLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader (libyaml when available) with the YAML 1.2.2 core schema."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_yaml_null(self, node: Node) -> None:
        self.construct_scalar(node)
        return None

    def construct_yaml_bool(self, node: Node) -> bool:
        return str(self.construct_scalar(node)).lower() == "true"

    def construct_yaml_int(self, node: Node) -> int:
        value = str(self.construct_scalar(node))
        try:
            if value.startswith(("0o", "0x")):
                return int(value[2:], 8 if value[1] == "o" else 16)
            return int(value, 10)
        except ValueError:
            raise ConstructorError(None, None, f"not an integer: {value!r}",
                                   node.start_mark) from None

    def construct_yaml_float(self, node: Node) -> float:
        value = str(self.construct_scalar(node))
        lowered = value.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        try:
            return float(value)
        except ValueError:
            raise ConstructorError(None, None, f"not a number: {value!r}",
                                   node.start_mark) from None

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        """SafeConstructor's mapping, refusing a key written twice (YAML 1.2.2 §3.2.1.1)."""
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _value in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise ConstructorError("while constructing a mapping", node.start_mark,
                                           f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


for _tag, _regexp, _first in (
        (_NULL, _NULL_RE, ["~", "n", "N", ""]),
        (_BOOL, _BOOL_RE, list("tTfF")),
        (_INT, _INT_RE, list("-+0123456789")),  # before float: 12 is an int
        (_FLOAT, _FLOAT_RE, list("-+.0123456789")),
        (_MERGE, re.compile(r"<<\Z"), ["<"])):
    CoreLoader.add_implicit_resolver(_tag, _regexp, _first)
for _tag, _name in ((_NULL, "construct_yaml_null"), (_BOOL, "construct_yaml_bool"),
                    (_INT, "construct_yaml_int"), (_FLOAT, "construct_yaml_float")):
    CoreLoader.add_constructor(_tag, getattr(CoreLoader, _name))


def _plain_text(node: Node) -> str | None:
    """The text of a plain (unquoted, untagged) scalar; None for anything else."""
    if isinstance(node, ScalarNode) and not node.style:  # None (PyYAML) or "" (libyaml)
        return str(node.value)
    return None


class ItemLoader(CoreLoader):
    """Item fields keep their text unless its JSON spelling is exactly what was written."""

    def construct_yaml_null(self, node: Node) -> Any:  # type: ignore[override]
        text = _plain_text(node)
        return None if text is None or text in ("null", "~", "") else text

    def construct_yaml_bool(self, node: Node) -> Any:  # type: ignore[override]
        text = _plain_text(node)
        return super().construct_yaml_bool(node) if text in (None, "true", "false") else text

    def construct_yaml_int(self, node: Node) -> Any:  # type: ignore[override]
        value = super().construct_yaml_int(node)
        text = _plain_text(node)
        if not -(2 ** 63) <= value <= 2 ** 64 - 1:  # beyond what JSON encoders carry
            return text if text is not None else str(value)
        return value if text is None or str(value) == text else text

    def construct_yaml_float(self, node: Node) -> Any:  # type: ignore[override]
        value = super().construct_yaml_float(node)
        text = _plain_text(node)
        return value if text is None or repr(value) == text else text


for _tag, _name in ((_NULL, "construct_yaml_null"), (_BOOL, "construct_yaml_bool"),
                    (_INT, "construct_yaml_int"), (_FLOAT, "construct_yaml_float")):
    ItemLoader.add_constructor(_tag, getattr(ItemLoader, _name))


def _user_error(exc: yaml.YAMLError, file: str | Path | None) -> UserError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if "unknown escape character" in problem:
        problem += (" (in a double-quoted YAML string a backslash is written \\\\: "
                    "\"\\\\{{\" for a literal {{ in a prompt, or use single quotes: "
                    "'\\{{ x }}')")
    return UserError(f"not valid YAML: {problem}", file=file,
                     line=mark.line + 1 if mark is not None else None)


def compose(text: str) -> Node | None:
    """The node tree (with line marks) of one YAML document; None for an empty one."""
    loader = CoreLoader(text)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    finally:
        loader.dispose()


def construct(node: Node | None, *, items: bool = False) -> Any:
    """Python values of a composed node: core schema, or item fields' rules with ``items``."""
    if node is None:
        return None
    loader = (ItemLoader if items else CoreLoader)("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def loads(text: str, *, file: str | Path | None = None, items_key: str | None = None) -> Any:
    """One YAML document under the core schema; UserError with the line on bad YAML.

    ``items_key``: a top-level key whose value holds item rows (an eval file's ``items``),
    read by the item fields' rules.
    """
    try:
        node = compose(text)
        data = construct(node)
        if items_key is not None and isinstance(data, dict) and isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == items_key:
                    data[items_key] = construct(value_node, items=True)
    except yaml.YAMLError as exc:
        raise _user_error(exc, file) from None
    return data


def load_file(path: str | Path, *, what: str = "file",
              items_key: str | None = None) -> tuple[Any, str]:
    """``(data, text)`` of a YAML file the user wrote (BOM allowed, UTF-8 required)."""
    text = read_text(Path(path), what=what)
    return loads(text, file=path, items_key=items_key), text


def load_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A YAML dataset: a list of mappings, each with the 1-based line where it starts."""
    text = read_text(path, what="dataset")
    try:
        node = compose(text)
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise UserError("a YAML dataset must be a list of mappings (one per item)",
                            file=path, line=node.start_mark.line + 1)
        for child in node.value:
            if not isinstance(child, MappingNode):
                raise UserError("expected a mapping (one item's fields)", file=path,
                                line=child.start_mark.line + 1)
        data = construct(node, items=True)
    except yaml.YAMLError as exc:
        raise _user_error(exc, path) from None
    return [(child.start_mark.line + 1, row) for child, row in zip(node.value, data, strict=True)]


@functools.lru_cache(maxsize=4)
def _composed(text: str) -> Any:
    """The node tree of a document (kept: a file's warnings each look up a line in it)."""
    from posttrain.loaders import yaml12

    return yaml12.compose(text)


def yaml_line(text: str, field_path: str) -> int | None:
    """1-based line of ``a.b[2].c`` in a YAML document (the deepest part that exists)."""
    import re

    import yaml


    try:
        node = _composed(text)
    except yaml.YAMLError:
        return None
    line = None
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_path):
        if node is None:
            break
        if key and isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            line = match.start_mark.line + 1
            for k, _v in node.value:
                if getattr(k, "value", None) == key:
                    line = k.start_mark.line + 1
            node = match
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line

"""Allowed regions, irrelevant-edit detection, tests and front-end lint for edited files.

Irrelevant edits (our definition; OpenAI publishes none): line-diff the original against the
result with ``difflib`` (``autojunk=False``) after dropping blank lines and collapsing whitespace,
so whitespace-only changes do not count; map each changed span to original line numbers; a change
is out of region when it touches a line outside the allowed ranges, or inserts lines at a point
not inside or next to an allowed range.
"""

from __future__ import annotations

import ast
import difflib
import re
import shutil
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

Ranges = list[tuple[int, int]]  # 1-based inclusive line ranges


# ---- regions --------------------------------------------------------------------------------
def _python_symbol(content: str, name: str) -> tuple[int, int]:
    tree = ast.parse(content)
    body: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in name.split("."):
        node = next((n for n in body if _defines(n, part)), None)
        if node is None:
            raise ValueError(f"symbol {name!r} not found")
        body = getattr(node, "body", [])
    assert node is not None
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return start, node.end_lineno or node.lineno


def _defines(node: ast.AST, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == name for t in targets)
    return False


def _brace_block(lines: list[str], text: str) -> tuple[int, int]:
    start = next(i for i, line in enumerate(lines) if text in line)
    depth = 0
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        if depth <= 0 and "{" in "".join(lines[start:i + 1]):
            return start + 1, i + 1
    raise ValueError(f"unbalanced block at {text!r}")


def _tag_block(lines: list[str], tag: str) -> tuple[int, int]:
    start = next(i for i, line in enumerate(lines) if f"<{tag}" in line)
    depth = 0
    for i in range(start, len(lines)):
        depth += len(re.findall(rf"<{tag}\b", lines[i])) - lines[i].count(f"</{tag}>")
        if depth <= 0:
            return start + 1, i + 1
    raise ValueError(f"unclosed <{tag}>")


def resolve_region(specs: list[str], content: str) -> Ranges:
    """Line ranges for ``symbol:``, ``brace:``, ``tag:`` and ``lines:a-b`` specs."""
    lines = content.split("\n")
    ranges: Ranges = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "symbol":
            ranges.append(_python_symbol(content, arg))
        elif kind == "brace":
            ranges.append(_brace_block(lines, arg))
        elif kind == "tag":
            ranges.append(_tag_block(lines, arg))
        elif kind == "lines":
            first, _, last = arg.partition("-")
            ranges.append((int(first), int(last or first)))
        else:
            raise ValueError(f"unknown region spec {spec!r}")
    return ranges


# ---- irrelevant edits -----------------------------------------------------------------------
def _keyed(content: str) -> list[tuple[str, int]]:
    return [(" ".join(line.split()), number)
            for number, line in enumerate(content.split("\n"), 1) if line.strip()]


def out_of_region_changes(original: str, edited: str, ranges: Ranges) -> list[str]:
    """Descriptions of changes outside ``ranges`` (whitespace-only changes ignored)."""
    a, b = _keyed(original), _keyed(edited)
    inside = {n for first, last in ranges for n in range(first, last + 1)}
    problems = []
    matcher = difflib.SequenceMatcher(None, [k for k, _ in a], [k for k, _ in b], autojunk=False)
    for tag, i1, i2, j1, _j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i1 < i2:
            touched = [a[i][1] for i in range(i1, i2)]
            outside = [n for n in touched if n not in inside]
            if outside:
                problems.append(f"{tag} at original line(s) {outside[0]}-{outside[-1]}: "
                                f"{a[i1][0][:60]!r}")
        else:  # pure insertion between two original lines
            before = a[i1 - 1][1] if i1 > 0 else 0
            after = a[i1][1] if i1 < len(a) else before + 1
            if not (inside & set(range(before, after + 1))):
                problems.append(f"insert after original line {before}: {b[j1][0][:60]!r}")
    return problems


# ---- tests ----------------------------------------------------------------------------------
class _Dom(HTMLParser):
    """Elements with their attributes and text, enough for the suite's DOM checks."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self.open: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.open or self.open[-1]["tag"] != tag:
            self.errors.append(f"unexpected </{tag}>")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data


def _select(dom: _Dom, selector: str) -> list[dict[str, Any]]:
    match = re.fullmatch(r"([a-z0-9]*)(?:#([\w-]+))?(?:\[([\w-]+)=([\w-]+)\])?", selector)
    if match is None:
        raise ValueError(f"unsupported selector {selector!r}")
    tag, ident, attr, value = match.groups()
    return [e for e in dom.elements
            if (not tag or e["tag"] == tag) and (not ident or e["attrs"].get("id") == ident)
            and (not attr or e["attrs"].get(attr) == value)]


def run_check(check: dict[str, Any], files: dict[str, str]) -> str | None:
    """None if the check passes, else why not."""
    text = files.get(check["file"], "")
    if "regex" in check:
        return None if re.search(check["regex"], text) else f"no match for /{check['regex']}/"
    dom = _Dom()
    dom.feed(text)
    found = _select(dom, check["dom"])
    if not found:
        return f"no element matches {check['dom']}"
    element = found[0]
    if "attr" in check:
        if check["attr"] not in element["attrs"]:
            return f"{check['dom']} has no {check['attr']} attribute"
        if "equals" in check and element["attrs"][check["attr"]] != check["equals"]:
            return f"{check['dom']}[{check['attr']}] is {element['attrs'][check['attr']]!r}"
    if "text" in check and element["text"].strip() != check["text"]:
        return f"{check['dom']} text is {element['text'].strip()!r}"
    return None


def run_tests(row: dict[str, Any], files: dict[str, str], *,
              timeout: float = 10.0) -> tuple[bool | None, str]:
    """(passed, output); passed is None when the tests cannot run here (no node)."""
    passed, output, _ = run_tests_confined(row, files, timeout=timeout)
    return passed, output


def run_tests_confined(row: dict[str, Any], files: dict[str, str], *,
                       timeout: float = 10.0) -> tuple[bool | None, str, str | None]:
    """(passed, output, confinement) for the edited ``files``; the tests run in the sandbox.

    Python tests run in a fresh confined child with the edited files in its folder; their
    asserts are judged here (``posttrain.graders.strict``), not by the model's process. Node
    tests run as ``node test_edit.js`` in the sandbox and pass on exit code 0. ``confinement``
    is None when no code ran (regex/DOM checks only). Raises ``SandboxUnavailable`` when no
    sandbox can be had.
    """
    from posttrain.graders.sandbox import SandboxError, default_pool
    from posttrain.graders.strict import judge_test, split_test

    failures = [why for check in row.get("checks") or [] if (why := run_check(check, files))]
    if failures:
        return False, "; ".join(failures), None
    for path in files:
        parts = PurePosixPath(path).parts
        if PurePosixPath(path).is_absolute() or ".." in parts or not parts:
            return False, f"refusing to write outside the sandbox: {path}", None
    if row.get("python_test"):
        split = split_test(row["python_test"])
        try:
            result = default_pool().run_tests("", [split.child_source], files=files,
                                              timeout=timeout)
        except SandboxError as exc:  # the sandbox's own failure: not scored
            return None, f"the sandbox could not run the tests: {exc}", None
        if not result.ok:
            return False, f"tests did not finish ({result.status}): {result.error[-1500:]}", \
                result.confinement
        if result.data.get("loaded") is not True or not result.data.get("tests"):
            return False, str(result.data.get("error") or "tests did not run")[-2000:], \
                result.confinement
        passed, why = judge_test(split, result.data["tests"][0])
        return passed, why or "tests passed", result.confinement
    if row.get("node_test"):
        node = shutil.which("node")
        if node is None:
            return None, "node is not installed; the JavaScript tests cannot run", None
        try:
            result = default_pool().run_command(
                [node, "test_edit.js"], files={**files, "test_edit.js": row["node_test"]},
                timeout=timeout)
        except SandboxError as exc:
            return None, f"the sandbox could not run the tests: {exc}", None
        if not result.ok:
            return False, f"tests did not finish ({result.status}): {result.error[-1500:]}", \
                result.confinement
        output = str(result.data.get("output", "")).strip()
        return result.data.get("returncode") == 0, output[-2000:] or "tests passed", \
            result.confinement
    return True, "checks passed", None


# ---- lint -----------------------------------------------------------------------------------
def _strip_code(text: str, *, js: bool) -> str:
    """Remove comments and string literals so brackets inside them are not counted."""
    pattern = r"/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
    if js:
        pattern += r"|//[^\n]*|`(?:\\.|[^`\\])*`"
    return re.sub(pattern, "", text, flags=re.S)


def _brackets(text: str) -> str | None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(text.split("\n"), 1):
        for char in line:
            if char in "([{":
                stack.append((char, number))
            elif char in pairs:
                if not stack or stack[-1][0] != pairs[char]:
                    return f"unbalanced {char!r} on line {number}"
                stack.pop()
    return f"unclosed {stack[-1][0]!r} from line {stack[-1][1]}" if stack else None


def lint(path: str, content: str) -> str | None:
    """None if ``content`` passes a structural check for its language, else the problem."""
    suffix = path.rsplit(".", 1)[-1]
    if suffix == "py":
        try:
            ast.parse(content)
        except SyntaxError as exc:
            return f"SyntaxError: {exc.msg} (line {exc.lineno})"
        return None
    if suffix in ("js", "css"):
        return _brackets(_strip_code(content, js=suffix == "js"))
    if suffix == "html":
        dom = _Dom()
        dom.feed(content)
        dom.close()
        if dom.errors:
            return dom.errors[0]
        if dom.open:
            return f"unclosed <{dom.open[-1]['tag']}>"
    return None

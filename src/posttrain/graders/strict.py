"""Judging what sandboxed code computed, here, from plain data only.

Model-written code runs in the sandbox and can do anything there, including lie in the one
message it sends back. So nothing it sends is a verdict: it sends the *values* of the operands
of each ``assert`` (tagged plain data: numbers, strings, bytes, lists, tuples, dicts, sets,
``None``), and this module, in posttrain's own process, compares them with the expected values,
which never enter the sandbox when they are literals (``assert add(1, 2) == 3``: the sandbox
runs ``add(1, 2)`` and never sees the ``3``).

Equality is type-strict: an object of any type but those is decoded as ``Opaque`` and equals,
orders and contains nothing, so an object whose ``__eq__`` says yes to everything cannot pass.
Numbers compare by value across ``int`` and ``float`` (``2 == 2.0``), but ``True`` is not ``1``.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

_MAX_DEPTH = 80
_NUMBERS = (int, float)
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


class Malformed(ValueError):
    """The sandbox sent something that is not well-formed tagged data."""


class Opaque:
    """A value of a type that cannot be judged (a model-defined class, a numpy scalar, ...)."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


def decode(data: Any, depth: int = 0) -> Any:
    """Tagged JSON (see ``_sandbox_worker.encode``) back into plain values; raises Malformed."""
    if data is None or type(data) in (bool, str):
        return data
    if depth > _MAX_DEPTH:
        raise Malformed("nested too deeply")
    if type(data) is list:
        return [decode(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise Malformed(f"unexpected {type(data).__name__}")
    ((tag, body),) = data.items()
    try:
        if tag == "i" and type(body) is str:
            return int(body)
        if tag == "f" and type(body) is str:
            return float(body)
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "o" and type(body) is str:
            return Opaque(body[:100])
    except ValueError as exc:
        raise Malformed(str(exc)) from None
    if type(body) is not list:
        raise Malformed(f"bad tag {tag!r}")
    items = [decode(item, depth + 1) for item in body] if tag != "d" else None
    try:
        if tag == "t":
            return tuple(items or [])
        if tag in ("s", "fs"):
            made = {_Key(item) for item in items or []}
            values = [key.value for key in made]
            return set(values) if tag == "s" else frozenset(values)
        if tag == "d":
            result: dict[Any, Any] = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise Malformed("bad dict entry")
                key = decode(pair[0], depth + 1)
                hash(key)
                result[key] = decode(pair[1], depth + 1)
            return result
    except TypeError as exc:  # an unhashable key or set member: no plain value looks like that
        raise Malformed(str(exc)) from None
    raise Malformed(f"bad tag {tag!r}")


class _Key:
    """A set member / dict key made hashable in a type-strict way (1 and True stay apart)."""

    __slots__ = ("value", "canon")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.canon = canonical(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.canon == other.canon

    def __hash__(self) -> int:
        return hash(self.canon)


def canonical(value: Any) -> Any:
    """A hashable form in which equal means strictly equal; raises TypeError if unhashable."""
    kind = type(value)
    if kind in _NUMBERS:
        return ("n", value)
    if kind is bool:
        return ("b", value)
    if kind in (str, bytes) or value is None:
        return (kind.__name__, value)
    if kind is tuple:
        return ("t", tuple(canonical(item) for item in value))
    if kind is frozenset:
        return ("f", frozenset(canonical(item) for item in value))
    if kind is Opaque:
        return ("o", id(value))
    raise TypeError(f"unhashable type: {kind.__name__}")


def strict_equal(a: Any, b: Any) -> bool:
    """Equality of plain values; an ``Opaque`` value equals nothing."""
    ta, tb = type(a), type(b)
    if ta is Opaque or tb is Opaque:
        return False
    if ta in _NUMBERS and tb in _NUMBERS:
        return bool(a == b)
    if ta is not tb:
        return False
    if ta in (list, tuple):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        if len(a) != len(b):
            return False
        other = {_Key(k): v for k, v in b.items()}
        return all(_Key(k) in other and strict_equal(v, other[_Key(k)]) for k, v in a.items())
    if ta in (set, frozenset):
        return {_Key(x) for x in a} == {_Key(x) for x in b}
    return bool(a == b)


def has_opaque(value: Any) -> bool:
    kind = type(value)
    if kind is Opaque:
        return True
    if kind in (list, tuple, set, frozenset):
        return any(has_opaque(item) for item in value)
    if kind is dict:
        return any(has_opaque(k) or has_opaque(v) for k, v in value.items())
    return False


def truthy(value: Any) -> bool:
    """Truth of a plain value; an ``Opaque`` value is never true."""
    return False if type(value) is Opaque else bool(value)


def _compare(op: str, a: Any, b: Any) -> bool:
    if has_opaque(a) or has_opaque(b):
        return False
    if op == "==":
        return strict_equal(a, b)
    if op == "!=":
        return not strict_equal(a, b)
    if op in ("is", "is not"):
        same = a is b if (a is None or b is None or type(a) is bool or type(b) is bool) else False
        return same if op == "is" else not same
    if op in ("in", "not in"):
        if type(b) in (list, tuple, set, frozenset):
            found = any(strict_equal(a, item) for item in b)
        elif type(b) is dict:
            found = any(strict_equal(a, key) for key in b)
        elif type(b) in (str, bytes) and type(a) is type(b):
            found = a in b
        else:
            return False
        return found if op == "in" else not found
    ordered = (type(a) in _NUMBERS and type(b) in _NUMBERS) or (
        type(a) is type(b) and type(a) in (str, bytes, list, tuple))
    if not ordered:
        return False
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError:
        return False


# ---- splitting a test ----------------------------------------------------------------------
@dataclass
class SplitTest:
    """A test with each ``assert`` turned into ``__check__(k, lambda: operand, ...)``.

    ``child_source`` is what the sandbox runs (no literal expected values in it); ``checks[k]``
    is assertion k's structure, judged here; ``required``: top-level assertions, which must be
    reported; ``texts[k]``: assertion k's source, for messages.
    """

    child_source: str
    checks: list[Any] = field(default_factory=list)
    holes: list[int] = field(default_factory=list)
    required: set[int] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return False
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _singleton(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and (node.value is None or type(node.value) is bool)


class _Splitter(ast.NodeTransformer):
    def __init__(self, top_level: set[int]) -> None:
        self.result = SplitTest("")
        self.top_level = top_level

    def _structure(self, node: ast.expr, holes: list[ast.expr]) -> Any:
        if _is_literal(node):
            return ("lit", ast.literal_eval(node))
        if isinstance(node, ast.BoolOp):
            kind = "and" if isinstance(node.op, ast.And) else "or"
            return (kind, [self._structure(value, holes) for value in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ("not", self._structure(node.operand, holes))
        if isinstance(node, ast.Compare) and all(type(op) in _CMP for op in node.ops):
            identity_ok = all(
                not isinstance(op, (ast.Is, ast.IsNot)) or _singleton(right) or _singleton(left)
                for op, left, right in zip(node.ops, [node.left, *node.comparators],
                                           node.comparators, strict=False))
            if identity_ok:
                return ("cmp", self._structure(node.left, holes),
                        [(_CMP[type(op)], self._structure(right, holes))
                         for op, right in zip(node.ops, node.comparators, strict=True)])
        holes.append(node)
        return ("hole", len(holes) - 1)

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        index = len(self.result.checks)
        holes: list[ast.expr] = []
        self.result.checks.append(self._structure(node.test, holes))
        self.result.holes.append(len(holes))
        self.result.texts.append(ast.unparse(node.test)[:200])
        if id(node) in self.top_level:
            self.result.required.add(index)
        thunks = [ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                                kw_defaults=[], defaults=[]),
                             body=self.visit(hole)) for hole in holes]
        call = ast.Call(func=ast.Name("__check__", ast.Load()),
                        args=[ast.Constant(index), *thunks], keywords=[])
        return ast.copy_location(ast.Expr(call), node)


def split_test(source: str) -> SplitTest:
    """Split a test's ``assert`` statements; raises SyntaxError for a test that does not parse."""
    tree = ast.parse(source)
    top_level = {id(node) for node in tree.body if isinstance(node, ast.Assert)}
    splitter = _Splitter(top_level)
    tree = ast.fix_missing_locations(splitter.visit(tree))
    splitter.result.child_source = ast.unparse(tree)
    return splitter.result


class _Raised(Exception):
    pass


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _evaluate(node: Any, values: list[Any], seen: list[Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "hole":
        entry = values[node[1]]
        if type(entry) is not dict or not ({"v"} == set(entry) or {"x"} == set(entry)):
            raise Malformed("bad operand")
        if "x" in entry:
            raise _Raised(str(entry["x"])[:300])
        value = decode(entry["v"])
        seen.append(value)
        return value
    if kind == "not":
        return not truthy(_evaluate(node[1], values, seen))
    if kind in ("and", "or"):
        result: Any = None
        for part in node[1]:
            result = _evaluate(part, values, seen)
            if truthy(result) != (kind == "and"):
                return result
        return result
    left = _evaluate(node[1], values, seen)
    for op, right_node in node[2]:
        right = _evaluate(right_node, values, seen)
        if not _compare(op, left, right):
            return False
        left = right
    return True


def judge_test(split: SplitTest, report: Any) -> tuple[bool, str]:
    """(passed, why not) for one test from the sandbox's report of it."""
    if type(report) is not dict:
        return False, "no report for this test"
    if report.get("error"):
        return False, str(report["error"])[:500]
    checks = report.get("checks")
    if type(checks) is not list:
        return False, "malformed report"
    done: set[int] = set()
    for entry in checks:
        try:
            index, values = entry
            if type(index) is not int or not 0 <= index < len(split.checks):
                raise Malformed("unknown assertion")
            if type(values) is not list or len(values) != split.holes[index]:
                raise Malformed("wrong number of operands")
            seen: list[Any] = []
            outcome = truthy(_evaluate(split.checks[index], values, seen))
        except _Raised as exc:
            return False, f"assert {split.texts[index]}: {exc}"
        except (Malformed, TypeError, ValueError) as exc:
            return False, f"malformed report: {exc}"
        if not outcome:
            got = ", ".join(_short(value) for value in seen)
            return False, f"assert {split.texts[index]} failed" + (f" (got {got})" if got else "")
        done.add(index)
    missing = sorted(split.required - done)
    if missing:
        return False, f"assert {split.texts[missing[0]]} was never reached"
    return True, ""


def number(value: Any) -> float | None:
    """A finite int/float/bool from decoded data, else None."""
    if type(value) in (int, float, bool) and math.isfinite(float(value)):
        return float(value)
    return None

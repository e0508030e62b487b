"""Judging what sandboxed code computed, here, from plain data only.

Model-written code runs in the sandbox and can do anything there, including write its own report
into the channel its harness uses: the result pipe and the per-call nonce live in the same
process as the model's code, and any code can reach them (walking frames, ``gc``, ``ctypes``).
So this module never asks the sandbox for a verdict, and never takes the *absence* of a report as
a pass. The argument that a pass cannot be forged:

1. **Only operands cross.** Each ``assert`` of a test is split: the sandbox computes the values
   of its *holes* (the sub-expressions that call into code: ``f(1)``, ``s.peek()``), and this
   process evaluates the rest of the assertion (comparisons, ``and`` / ``or`` / ``not``,
   arithmetic, ``abs`` / ``len`` / ``sorted`` / ... of plain values, ``math.isclose``) with the
   expected values, which never enter the sandbox when they are literals, names bound to
   literals, loop variables over literals or helper arguments that are literals.
2. **Every check is required, and counted.** A test is analysed statically: each check is
   executed a number of times known here (once at top level or in a ``with`` block; once per
   element of a loop over a literal; once per call of a helper function that is only ever called
   as a statement), and the report must hold exactly that many results for it, in order, each
   judged with that execution's loop / argument values. A missing, extra or malformed result
   fails the test.
3. So a forged report must contain, for every check, operand values that make it true against
   expected values the sandbox never saw. Writing those is no easier than returning them from
   the functions under test: a forged pass earns what an honest answer that hard-codes the same
   values earns, no more (which is why a test should compare with literal expected values).
4. What cannot be established that way is **gameable** and fails closed: an ``assert`` or a
   ``raise`` whose execution depends on control flow that runs in the sandbox (``if`` on a
   computed value, ``while``, a loop over a computed value or with ``break``, ``try`` other
   than the ``try: ... except E: pass / else: raise`` idiom, a helper function called from
   elsewhere than a statement), or a test with no ``assert`` at all. ``posttrain grade
   --validate`` names them; a grade counts them as failed and says why.

Equality is type-strict: an object of any type but plain data is decoded as ``Opaque``; a
comparison, a truth test or an arithmetic operation that meets one fails the check with the type
named, so an object whose ``__eq__`` or ``__bool__`` says yes to everything cannot pass (``is None``
/ ``is not None`` still work on it). Numbers compare by value across ``int``, ``float``, ``Decimal``
and ``Fraction`` (``2 == 2.0``), but ``True`` is not ``1``. The sandbox already turns subclasses
of plain types (``Counter``, ``namedtuple``, ``IntEnum``, ...) and numpy scalars into their plain
value, through the built-in types' own methods.
"""

from __future__ import annotations

import ast
import builtins
import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

_MAX_DEPTH = 80
_MAX_EXECUTIONS = 10_000  # executions of one check that the analysis will enumerate
_MAX_BITS = 400_000  # ints larger than this are not judged
_MAX_LENGTH = 10_000_000  # elements a parent-side operation may build
_NUMBERS = (int, float, Decimal, Fraction)
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%"}
#: built-in functions evaluated here, on plain values, when a test calls them in an assertion
_FUNCTIONS = {"abs": (1, 1), "len": (1, 1), "round": (1, 2), "sorted": (1, 1), "min": (1, 1),
              "max": (1, 1), "sum": (1, 1), "set": (1, 1), "frozenset": (1, 1), "list": (1, 1),
              "tuple": (1, 1), "int": (1, 1), "float": (1, 1)}
_VIEWS = ("dict_keys", "dict_values", "dict_items", "range")
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), Decimal, Fraction)


class Malformed(ValueError):
    """The sandbox sent something that is not well-formed tagged data."""


class Unjudgeable(ValueError):
    """A judged operation met a value it cannot judge (an ``Opaque`` object, a huge number)."""


class Opaque:
    """A value of a type that cannot be judged (a model-defined class, a numpy array, ...)."""

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


class Seq(Opaque):
    """An iterator or view (``dict_keys``, ``range``, a generator, ``map``...) as its items:
    equal to nothing, but ``sorted``, ``list``, ``set``, ``sum``, ``in``, ... take it."""

    __slots__ = ("items",)

    def __init__(self, type_name: str, items: list[Any]) -> None:
        super().__init__(type_name)
        self.items = items

    def __repr__(self) -> str:
        shown = repr(self.items)
        return f"<{self.type_name} of {shown if len(shown) < 80 else shown[:77] + '...'}>"


def _describe(value: Any) -> str:
    return f"a {value.type_name} object" if isinstance(value, Opaque) else _short(value)


def _int(text: str, base: int) -> int:
    if len(text) > _MAX_BITS // 3:
        raise Malformed("integer too large")
    return int(text, base)


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
            return _int(body, 10)
        if tag == "x" and type(body) is str:
            return _int(body, 16)
        if tag == "f" and type(body) is str:
            return float(body)
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "o" and type(body) is str:
            return Opaque(body[:100])
        if tag == "dec" and type(body) is str and len(body) < 1000:
            return Decimal(body)
        if tag == "q" and type(body) is list and len(body) == 2:
            numerator, denominator = (decode(part, depth + 1) for part in body)
            if type(numerator) is not int or type(denominator) is not int or not denominator:
                raise Malformed("bad fraction")
            return Fraction(numerator, denominator)
        if (tag == "seq" and type(body) is list and len(body) == 2 and type(body[0]) is str
                and type(body[1]) is list):
            return Seq(body[0][:100], [decode(item, depth + 1) for item in body[1]])
    except (ValueError, InvalidOperation, ZeroDivisionError) as exc:
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
    if isinstance(value, Opaque):
        return ("o", id(value))
    raise TypeError(f"unhashable type: {kind.__name__}")


def has_opaque(value: Any) -> bool:
    kind = type(value)
    if isinstance(value, Opaque):
        return True
    if kind in (list, tuple, set, frozenset):
        return any(has_opaque(item) for item in value)
    if kind is dict:
        return any(has_opaque(k) or has_opaque(v) for k, v in value.items())
    return False


def _judgeable(*values: Any) -> None:
    for value in values:
        if has_opaque(value):
            found = _first_opaque(value)
            raise Unjudgeable(f"{_describe(found)} cannot be judged (only plain values are: "
                              "numbers, strings, bytes, lists, tuples, dicts, sets, None)")


def _first_opaque(value: Any) -> Any:
    if isinstance(value, Opaque):
        return value
    items = value.items() if type(value) is dict else value
    for item in items:
        for part in (item if type(value) is dict else (item,)):
            if has_opaque(part):
                return _first_opaque(part)
    return value


def strict_equal(a: Any, b: Any) -> bool:
    """Equality of plain values; an ``Opaque`` value equals nothing."""
    ta, tb = type(a), type(b)
    if isinstance(a, Opaque) or isinstance(b, Opaque):
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


def truthy(value: Any) -> bool:
    """Truth of a plain value; an ``Opaque`` value cannot be judged (Unjudgeable: fail closed)."""
    if isinstance(value, Seq) and value.type_name in _VIEWS:
        return bool(value.items)
    if isinstance(value, Opaque):
        raise Unjudgeable(f"the truth of {_describe(value)} cannot be judged")
    return bool(value)


def _items(value: Any, what: str) -> list[Any]:
    if isinstance(value, Seq):
        return value.items
    if type(value) in (list, tuple, set, frozenset, str, bytes):
        return list(value)
    if type(value) is dict:
        return list(value)
    _judgeable(value)
    raise Unjudgeable(f"{what}() of {_describe(value)}")


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("is", "is not"):  # only with None / True / False: exact for any value
        same = a is b if (a is None or b is None or type(a) is bool or type(b) is bool) else False
        return same if op == "is" else not same
    if op in ("in", "not in") and isinstance(b, Seq):
        b = list(b.items)
    _judgeable(a, b)
    if op == "==":
        return strict_equal(a, b)
    if op == "!=":
        return not strict_equal(a, b)
    if op in ("in", "not in"):
        if type(b) in (list, tuple, set, frozenset):
            found = any(strict_equal(a, item) for item in b)
        elif type(b) is dict:
            found = any(strict_equal(a, key) for key in b)
        elif type(b) in (str, bytes) and type(a) is type(b):
            found = a in b
        else:
            raise Unjudgeable(f"`in` with {type(b).__name__} and {type(a).__name__}")
        return found if op == "in" else not found
    ordered = (type(a) in _NUMBERS and type(b) in _NUMBERS) or (
        type(a) is type(b) and type(a) in (str, bytes, list, tuple))
    if not ordered:
        raise Unjudgeable(f"{type(a).__name__} {op} {type(b).__name__} cannot be ordered")
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError as exc:
        raise Unjudgeable(str(exc)) from None


def _number(value: Any) -> Any:
    if type(value) not in _NUMBERS and type(value) is not bool:
        _judgeable(value)
        raise Unjudgeable(f"{type(value).__name__} is not a number")
    if type(value) is int and value.bit_length() > _MAX_BITS:
        raise Unjudgeable("an integer too large to judge")
    return value


def _binop(op: str, a: Any, b: Any) -> Any:
    _judgeable(a, b)
    if op == "+" and type(a) is type(b) and type(a) in (str, bytes, list, tuple):
        if len(a) + len(b) > _MAX_LENGTH:
            raise Unjudgeable("a value too large to judge")
        return a + b
    a, b = _number(a), _number(b)
    try:
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                  "/": lambda: a / b, "//": lambda: a // b, "%": lambda: a % b}[op]()
    except (ZeroDivisionError, InvalidOperation) as exc:
        raise Unjudgeable(f"{type(exc).__name__}: {exc}") from None
    except TypeError as exc:  # Decimal with float, say
        raise Unjudgeable(str(exc)) from None
    return result


def _call(name: str, args: list[Any], keywords: dict[str, Any]) -> Any:
    if name == "math.isclose":
        a, b = (_number(arg) for arg in args)
        tolerances = {key: _number(value) for key, value in keywords.items()}
        return math.isclose(float(a), float(b), **{k: float(v) for k, v in tolerances.items()})
    if keywords and not (name == "sorted" and set(keywords) <= {"reverse"}):
        raise Unjudgeable(f"{name}() with keyword arguments")
    if name == "len":
        (value,) = args
        if isinstance(value, Seq):
            if value.type_name not in _VIEWS:
                raise Unjudgeable(f"len() of a {value.type_name}")
            return len(value.items)
        _judgeable(value)
        if type(value) not in (list, tuple, dict, set, frozenset, str, bytes):
            raise Unjudgeable(f"len() of {type(value).__name__}")
        return len(value)
    if name in ("abs", "round", "int", "float"):
        if name in ("int", "float") and len(args) == 1 and type(args[0]) is str:
            try:
                return int(args[0]) if name == "int" else float(args[0])
            except ValueError as exc:
                raise Unjudgeable(f"ValueError: {exc}") from None
        numbers = [_number(arg) for arg in args]
        try:
            return getattr(builtins, name)(*numbers)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Unjudgeable(f"{name}(): {exc}") from None
    (value, *rest) = args
    if name in ("min", "max", "sum") and (rest or not args):
        raise Unjudgeable(f"{name}() with more than one argument")
    items = _items(value, name)
    _judgeable(items)
    if len(items) > _MAX_LENGTH:
        raise Unjudgeable("a value too large to judge")
    try:
        if name == "sorted":
            reverse = keywords.get("reverse", False)
            if type(reverse) is not bool:
                raise Unjudgeable("sorted(reverse=...) must be True or False")
            return sorted(items, reverse=reverse)
        if name in ("min", "max"):
            if not all(type(item) in _NUMBERS for item in items) and len(
                    {type(item) for item in items}) > 1:
                raise Unjudgeable(f"{name}() of mixed types")
            return min(items) if name == "min" else max(items)
        if name == "sum":
            return sum(_number(item) for item in items)
        if name in ("set", "frozenset"):
            made = {_Key(item): item for item in items}
            return set(made.values()) if name == "set" else frozenset(made.values())
        return list(items) if name == "list" else tuple(items)
    except (TypeError, ValueError) as exc:
        raise Unjudgeable(f"{name}(): {exc}") from None


# ---- splitting a test ----------------------------------------------------------------------
@dataclass
class SplitTest:
    """A test with each check turned into a report of its operands.

    ``child_source`` is what the sandbox runs (an ``assert`` became ``__check__(k, lambda:
    hole, ...)``, the ``try/except E/else: raise`` idiom ``__raised__(k, exception)``);
    ``checks[k]`` is check k's structure, judged here; ``holes[k]`` its number of operands;
    ``runs[k]``: one environment (names bound to parent-held values) per execution the report
    must hold, in order; ``texts[k]``: its source; ``gameable``: why the test cannot be judged
    from data the model cannot forge ("" when it can); ``weak``: checks that compare with
    values computed in the sandbox (judged, but a model that forges its report can pass them).
    """

    child_source: str
    checks: list[Any] = field(default_factory=list)
    holes: list[int] = field(default_factory=list)
    runs: list[list[dict[str, Any]]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    gameable: str = ""
    weak: list[str] = field(default_factory=list)

    @property
    def required(self) -> set[int]:
        return {index for index, runs in enumerate(self.runs) if runs}


_MISSING = object()


def _literal(node: ast.expr) -> Any:
    """The value of a literal expression, else ``_MISSING``."""
    if isinstance(node, ast.Name):
        return _MISSING
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _MISSING


def _immutable(value: Any) -> bool:
    if type(value) in (tuple, frozenset):
        return all(_immutable(item) for item in value)
    return type(value) in _IMMUTABLE


def _singleton(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and (node.value is None or type(node.value) is bool)


def _stored(nodes: list[ast.AST]) -> set[str]:
    """Every name bound anywhere in ``nodes`` (assignments, loops, imports, defs, ...)."""
    names: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                names.update(node.names)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def _binding_counts(tree: ast.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names = [node.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(alias.asname or alias.name).split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names = [node.name]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names = list(node.names)
        elif isinstance(node, ast.arg):
            names = [node.arg]
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _loop_values(node: ast.expr) -> list[Any] | None:
    """The elements a ``for`` over ``node`` sees, when ``node`` is literal data; else None."""
    value = _literal(node)
    if value is not _MISSING:
        if type(value) in (list, tuple, str, bytes):
            return list(value)
        if type(value) is dict:
            return list(value)
        return None  # a set iterates in hash order, which differs between processes
    if not isinstance(node, ast.Call) or node.keywords:
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Dict) and not node.args:
        data = _literal(func.value)
        if type(data) is dict and func.attr in ("items", "keys", "values"):
            return list(getattr(data, func.attr)())
        return None
    if not isinstance(func, ast.Name) or func.id not in ("range", "enumerate", "zip", "reversed"):
        return None
    if func.id == "range":
        bounds = [_literal(arg) for arg in node.args]
        if not bounds or not all(type(b) is int for b in bounds) or len(bounds) > 3:
            return None
        try:
            made = range(*bounds)
        except ValueError:
            return None
        return list(made) if len(made) <= _MAX_EXECUTIONS else None
    parts = [_loop_values(arg) if i == 0 or func.id == "zip" else _literal(arg)
             for i, arg in enumerate(node.args)]
    if not parts or any(part is None or part is _MISSING for part in parts):
        return None
    if func.id == "enumerate":
        start = parts[1] if len(parts) > 1 else 0
        return list(enumerate(parts[0], start)) if type(start) is int and len(parts) <= 2 \
            else None
    if func.id == "reversed":
        return list(reversed(parts[0])) if len(parts) == 1 else None
    return [tuple(group) for group in zip(*parts, strict=False)]


def _bind(target: ast.expr, value: Any, env: dict[str, Any]) -> bool:
    """Bind a loop target (a name or nested tuple of names) to ``value``; False if it cannot."""
    if isinstance(target, ast.Name):
        env[target.id] = value
        return True
    if isinstance(target, (ast.Tuple, ast.List)) and all(
            isinstance(e, (ast.Name, ast.Tuple, ast.List)) for e in target.elts):
        if type(value) not in (tuple, list, str) or len(value) != len(target.elts):
            return False
        return all(_bind(e, v, env) for e, v in zip(target.elts, value, strict=True))
    return False


def _has_checks(nodes: list[ast.AST]) -> str:
    """The first assert or raise in ``nodes`` ("assert" / "raise"), else ""."""
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Assert):
                return "assert"
            if isinstance(node, ast.Raise):
                return "raise"
    return ""


def _jumps(nodes: list[ast.stmt]) -> bool:
    """True when a ``break`` / ``continue`` in ``nodes`` belongs to the loop around them."""
    todo: list[ast.AST] = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Break, ast.Continue)):
            return True
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            todo.extend(node.orelse)  # a break in an inner loop's body is the inner loop's
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return False


def _exception_names(node: ast.expr | None) -> list[str] | None:
    if node is None:
        return None
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    names = []
    for part in parts:
        if isinstance(part, ast.Name):
            names.append(part.id)
        elif isinstance(part, ast.Attribute):
            names.append(part.attr)
        else:
            return None
    return names


def _fails(body: list[ast.stmt]) -> bool:
    """True for ``raise ...`` or ``assert False[, msg]`` alone: what the raises idiom ends with."""
    if len(body) != 1:
        return False
    stmt = body[0]
    if isinstance(stmt, ast.Raise):
        return True
    return isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant) and \
        stmt.test.value is False


def _raises_idiom(node: ast.Try) -> tuple[list[ast.stmt], list[str]] | None:
    """(body, exception names) for ``try: BODY except E: pass else: raise ...`` (or BODY ending in
    ``raise`` / ``assert False`` and no ``else``); None for any other ``try``."""
    if len(node.handlers) != 1 or node.finalbody:
        return None
    handler = node.handlers[0]
    names = _exception_names(handler.type)
    if not names or handler.name or not all(
            isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
            for s in handler.body):
        return None
    if node.orelse:
        if not _fails(node.orelse):
            return None
        body = node.body
    else:
        if len(node.body) < 2 or not _fails(node.body[-1:]):
            return None
        body = node.body[:-1]
    if _has_checks(list(body)):
        return None
    return body, names


class _Ctx:
    """Where statements run: ``runs`` is one environment per execution, in order (None: the
    sandbox's control flow decides; checks there are gameable, ``why`` says where)."""

    def __init__(self, runs: list[dict[str, Any]] | None, why: str = "",
                 local: frozenset[str] = frozenset()) -> None:
        self.runs = runs
        self.why = why
        self.local = local  # names local to the helper being analysed (not module constants)


class _Splitter(ast.NodeTransformer):
    def __init__(self, tree: ast.Module) -> None:
        self.result = SplitTest("")
        self.counts = _binding_counts(tree)
        self.constants: dict[str, Any] = {}
        self.helpers: dict[str, ast.FunctionDef] = {}
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.reached: set[str] = set()  # helpers with a call site the analysis cannot count
        self.ctx = _Ctx([{}])
        self.loaded = self._loads(tree)
        self.candidates: dict[str, Any] = {}  # module constants, active once assigned
        self.depth = 0  # > 0 inside a function or class body

    # -- facts about names --
    @staticmethod
    def _loads(tree: ast.Module) -> dict[str, int]:
        loads: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads[node.id] = loads.get(node.id, 0) + 1
        return loads

    def _builtin(self, name: str) -> bool:
        return name in _FUNCTIONS and name not in self.counts

    def _value_of(self, name: str, structural: bool) -> Any:
        """The parent-held value of ``name`` in every run of the current context, else
        ``_MISSING``: a loop variable or helper argument bound to a literal, or a module-level
        name bound once to a literal. A mutable value only where the name is an operand of the
        assertion itself (not passed to code that could change it)."""
        ctx = self.ctx
        if ctx.runs and all(name in run for run in ctx.runs):
            values = [run[name] for run in ctx.runs]
            if any(value is _MISSING for value in values):
                return _MISSING
            if all(_immutable(value) for value in values) or (
                    structural and self.loaded.get(name, 0) == 1):
                return ("name", name)
            return _MISSING
        if name in ctx.local or name not in self.constants:
            return _MISSING
        value = self.constants[name]
        if structural and self.loaded.get(name, 0) > 1 and not _immutable(value):
            return _MISSING  # used elsewhere too: code may have changed it since
        return ("lit", value)

    # -- assertions --
    def _structure(self, node: ast.expr, holes: list[Any]) -> Any:
        value = _literal(node)
        if value is not _MISSING:
            return ("lit", value)
        if isinstance(node, ast.Name):
            found = self._value_of(node.id, structural=True)
            if found is not _MISSING:
                return found
        if isinstance(node, ast.BoolOp):
            kind = "and" if isinstance(node.op, ast.And) else "or"
            return (kind, [self._structure(value, holes) for value in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ("not", self._structure(node.operand, holes))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return ("neg" if isinstance(node.op, ast.USub) else "pos",
                    self._structure(node.operand, holes))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return ("bin", _BINOPS[type(node.op)], self._structure(node.left, holes),
                    self._structure(node.right, holes))
        if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args) \
                and all(k.arg for k in node.keywords):
            name = None
            if isinstance(node.func, ast.Name) and self._builtin(node.func.id):
                name = node.func.id
            elif (isinstance(node.func, ast.Attribute) and node.func.attr == "isclose"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "math"
                  and self.counts.get("math") == 1 and len(node.args) == 2
                  and {k.arg for k in node.keywords} <= {"rel_tol", "abs_tol"}):
                name = "math.isclose"
            keywords = {k.arg for k in node.keywords}
            if name in _FUNCTIONS:
                low, high = _FUNCTIONS[name]
                if not low <= len(node.args) <= high or keywords - (
                        {"reverse"} if name == "sorted" else set()):
                    name = None
            if name:
                args = [self._structure(a, holes) for a in node.args]
                keywords = {k.arg: self._structure(k.value, holes) for k in node.keywords}
                fallback = None
                if name != "math.isclose" and len(args) == 1 and args[0][0] == "hole" \
                        and not keywords:
                    # the sandbox also applies the function to that operand: used only when
                    # the operand is not plain data (len() of a model's class runs its __len__)
                    holes.append(("apply", name, args[0][1]))  # type: ignore[arg-type]
                    fallback = len(holes) - 1
                return ("call", name, args, keywords, fallback)
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

    def _register(self, structure: Any, holes: int, text: str) -> int:
        result = self.result
        index = len(result.checks)
        result.checks.append(structure)
        result.holes.append(holes)
        result.texts.append(text[:200])
        if self.ctx.runs is None:
            result.runs.append([])
            if not result.gameable:
                result.gameable = f"{text[:80]!r} is {self.ctx.why}"
        else:
            result.runs.append(list(self.ctx.runs))
        return index

    @staticmethod
    def _lambda(body: ast.expr) -> ast.Lambda:
        return ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                             kw_defaults=[], defaults=[]), body=body)

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        holes: list[ast.expr] = []
        structure = self._structure(node.test, holes)
        text = ast.unparse(node.test)
        if self.ctx.runs is not None and _weak(structure):
            self.result.weak.append(text[:120])
        index = self._register(structure, len(holes), text)
        thunks: list[ast.expr] = [
            ast.Tuple([ast.Name(hole[1], ast.Load()), ast.Constant(hole[2])], ast.Load())
            if isinstance(hole, tuple) else self._lambda(hole) for hole in holes]
        call = ast.Call(func=ast.Name("__check__", ast.Load()),
                        args=[ast.Constant(index), *thunks], keywords=[])
        return ast.copy_location(ast.Expr(call), node)

    def visit_Raise(self, node: ast.Raise) -> ast.stmt:
        if not self.result.gameable:
            where = self.ctx.why if self.ctx.runs is None else "at top level"
            self.result.gameable = (f"a raise statement ({ast.unparse(node)[:60]}) {where}: the "
                                    "sandbox decides whether it runs; use an assert")
        return node

    # -- statements --
    def _body(self, stmts: list[ast.stmt], ctx: _Ctx) -> list[ast.stmt]:
        saved, self.ctx = self.ctx, ctx
        try:
            out: list[ast.stmt] = []
            for stmt in stmts:
                made = self.visit(stmt)
                out.extend(made if isinstance(made, list) else [made] if made else [])
            return out or [ast.Pass()]
        finally:
            self.ctx = saved

    def _open(self, why: str) -> _Ctx:
        if self.ctx.runs is None:
            return self.ctx
        return _Ctx(None, why, self.ctx.local)

    def visit_Expr(self, node: ast.Expr) -> ast.stmt:
        call = node.value
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in self.helpers):
            self._call_site(call)
            return node
        return self.generic_visit(node)

    def _call_site(self, call: ast.Call) -> None:
        helper = self.helpers[call.func.id]  # type: ignore[union-attr]
        runs = self.calls.setdefault(helper.name, [])
        if self.ctx.runs is None or self.depth > 0 or any(isinstance(a, ast.Starred) for a in call.args) or \
                any(k.arg is None for k in call.keywords):
            self.reached.add(helper.name)
            return
        params = [a.arg for a in helper.args.posonlyargs + helper.args.args]
        defaults = helper.args.defaults
        bound: dict[str, Any] = {}
        for param, default in zip(params[len(params) - len(defaults):], defaults, strict=True):
            bound[param] = _literal(default)
        for param, arg in zip(params, call.args, strict=False):
            bound[param] = _literal(arg)
        for keyword in call.keywords:
            bound[keyword.arg] = _literal(keyword.value)  # type: ignore[index]
        if len(call.args) > len(params) or set(bound) - set(params):
            self.reached.add(helper.name)
            return
        for run in self.ctx.runs:
            runs.append({**run, **{k: v for k, v in bound.items()}})
        if len(runs) > _MAX_EXECUTIONS:
            self.reached.add(helper.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.stmt:
        if node.name in self.helpers and self.helpers[node.name] is node:
            return node  # analysed after the module, when all its call sites are known
        node.body = self._nested(node.body, f"inside function {node.name}(), which the "
                                            "analysis cannot count calls of")
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.stmt:
        node.body = self._nested(node.body, f"inside async function {node.name}()")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.stmt:
        node.body = self._nested(node.body, f"inside class {node.name}")
        return node

    def _nested(self, body: list[ast.stmt], why: str) -> list[ast.stmt]:
        self.depth += 1
        try:
            return self._body(body, self._open(why))
        finally:
            self.depth -= 1

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        if self.depth == 0 and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in self.candidates:
            self.constants[node.targets[0].id] = self.candidates[node.targets[0].id]
        return self.generic_visit(node)  # type: ignore[return-value]

    def visit_Lambda(self, node: ast.Lambda) -> ast.expr:
        return node

    def visit_With(self, node: ast.With) -> ast.stmt:
        node.body = self._body(node.body, self.ctx)  # runs once, unless it raises
        return node

    def visit_AsyncWith(self, node: ast.AsyncWith) -> ast.stmt:
        node.body = self._body(node.body, self._open("inside an async with block"))
        return node

    def visit_If(self, node: ast.If) -> ast.stmt:
        test = node.test
        always = _literal(test) is not _MISSING and bool(_literal(test)) or (
            isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq) and _literal(test.comparators[0]) == "__main__")
        if always:
            node.body = self._body(node.body, self.ctx)
            node.orelse = self._body(node.orelse, self._open("in an else that never runs")) \
                if node.orelse else []
            return node
        inside = self._open(f"inside `if {ast.unparse(test)[:60]}`, which is decided in the "
                            "sandbox")
        node.body = self._body(node.body, inside)
        node.orelse = self._body(node.orelse, inside) if node.orelse else []
        return node

    def visit_For(self, node: ast.For) -> ast.stmt:
        values = _loop_values(node.iter)
        runs = None
        if self.ctx.runs is not None and values is not None and not node.orelse \
                and not _jumps(node.body) and not (_stored(node.body) & _stored([node.target])):
            runs = []
            for run in self.ctx.runs:
                for value in values:
                    env = dict(run)
                    if not _bind(node.target, value, env):
                        runs = None
                        break
                    runs.append(env)
                if runs is None or len(runs) > _MAX_EXECUTIONS:
                    runs = None
                    break
        if runs is not None:
            ctx = _Ctx(runs, local=self.ctx.local)
        else:
            ctx = self._open(f"inside `for ... in {ast.unparse(node.iter)[:60]}`, a loop the "
                             "analysis cannot count (loop over literal data, without break)")
        node.body = self._body(node.body, ctx)
        node.orelse = self._body(node.orelse, self._open("in a loop's else")) if node.orelse \
            else []
        return node

    def visit_AsyncFor(self, node: ast.AsyncFor) -> ast.stmt:
        node.body = self._body(node.body, self._open("inside an async for loop"))
        return node

    def visit_While(self, node: ast.While) -> ast.stmt:
        node.body = self._body(node.body, self._open("inside a while loop"))
        node.orelse = self._body(node.orelse, self._open("in a loop's else")) if node.orelse \
            else []
        return node

    def visit_Try(self, node: ast.Try) -> ast.stmt | list[ast.stmt]:
        idiom = _raises_idiom(node)
        if idiom is not None:
            body, names = idiom
            index = self._register(("raises", names), 1, f"{ast.unparse(node.body[0])[:80]} "
                                   f"raises {' or '.join(names)}")
            report = ast.parse(
                f"try:\n    pass\nexcept Exception as __posttrain_raised:\n"
                f"    __raised__({index}, __posttrain_raised)\n"
                f"else:\n    __raised__({index}, None)\n").body[0]
            assert isinstance(report, ast.Try)
            report.body = self._body(body, self._open("inside a try block"))
            return ast.copy_location(report, node)
        if not node.handlers and not node.orelse:  # try/finally: both run, once
            node.body = self._body(node.body, self.ctx)
            node.finalbody = self._body(node.finalbody, self.ctx)
            return node
        inside = self._open("inside a try block (only `try: ... except E: pass` + `else: "
                            "raise` can be judged)")
        node.body = self._body(node.body, inside)
        for handler in node.handlers:
            handler.body = self._body(handler.body, inside)
        node.orelse = self._body(node.orelse, inside) if node.orelse else []
        node.finalbody = self._body(node.finalbody, inside) if node.finalbody else []
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, (ast.Match, ast.AsyncFunctionDef)) or type(node).__name__ == "TryStar":
            inside = self._open(f"inside a {type(node).__name__.lower()} block")
            saved, self.ctx = self.ctx, inside
            try:
                return super().generic_visit(node)
            finally:
                self.ctx = saved
        return super().generic_visit(node)

    # -- the module --
    def split(self, tree: ast.Module) -> SplitTest:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                    stmt.targets[0], ast.Name) and self.counts.get(stmt.targets[0].id) == 1:
                value = _literal(stmt.value)
                if value is not _MISSING:
                    self.candidates[stmt.targets[0].id] = value
            if isinstance(stmt, ast.FunctionDef) and self.counts.get(stmt.name) == 1 and \
                    not stmt.decorator_list and not stmt.args.vararg and \
                    not stmt.args.kwarg and not stmt.args.kwonlyargs and _has_checks([stmt]):
                self.helpers[stmt.name] = stmt
        # a helper is counted only when every use of its name is a call statement
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in self.helpers and \
                    isinstance(node.ctx, ast.Load):
                self.loaded[f"call:{node.id}"] = self.loaded.get(f"call:{node.id}", 0) + 1
        for scope in ast.walk(tree):  # a helper used inside a function is not counted
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                for node in ast.walk(scope):
                    if isinstance(node, ast.Name) and node.id in self.helpers:
                        self.reached.add(node.id)
        body = self._body(tree.body, self.ctx)
        for name, helper in self.helpers.items():
            sites = sum(1 for node in ast.walk(tree) if isinstance(node, ast.Expr)
                        and isinstance(node.value, ast.Call)
                        and isinstance(node.value.func, ast.Name) and node.value.func.id == name)
            runs = self.calls.get(name, [])
            countable = name not in self.reached and sites == self.loaded.get(f"call:{name}")
            local = frozenset(_stored([helper]) - {name})
            params = {a.arg for a in helper.args.posonlyargs + helper.args.args}
            kept = params - _stored(helper.body)  # arguments the body never rebinds
            if countable:
                # its unchanged arguments are in the runs; its other locals are not
                ctx = _Ctx([{k: v for k, v in run.items() if k not in local or k in kept}
                            for run in runs], local=local)
            else:
                ctx = _Ctx(None, f"inside function {name}(), which the test never calls" if not
                           sites else f"inside function {name}(), which is called where the "
                           "analysis cannot count the calls (only `name(...)` statements at top "
                           "level, in with blocks or in loops over literal data are counted)",
                           local)
            self.depth += 1
            helper.body = self._body(helper.body, ctx)
            self.depth -= 1
        tree.body = body
        if not self.result.checks and not self.result.gameable:
            self.result.gameable = "a test with no assert: nothing the harness can check"
        self.result.child_source = ast.unparse(ast.fix_missing_locations(tree))
        return self.result


def _weak(structure: Any) -> bool:
    """True when a comparison in the assertion has no parent-held value on any side (``assert
    f(2) == g(2)``): both sides are computed in the sandbox, where a forged report sets them."""
    def held(node: Any) -> bool:
        kind = node[0]
        if kind in ("lit", "name"):
            return True
        if kind in ("neg", "pos"):
            return held(node[1])
        if kind == "bin":
            return held(node[2]) or held(node[3])
        if kind == "call":
            return any(held(arg) for arg in node[2])
        return False

    def weak(node: Any) -> bool:
        kind = node[0]
        if kind in ("and", "or"):
            return any(weak(part) for part in node[1])
        if kind == "not":
            return weak(node[1])
        if kind == "cmp":
            return not any(held(part) for part in [node[1], *[r for _, r in node[2]]])
        return False

    return weak(structure)


def split_test(source: str) -> SplitTest:
    """Split a test's checks; raises SyntaxError for a test that does not parse."""
    tree = ast.parse(source)
    return _Splitter(tree).split(tree)


class _Raised(Exception):
    pass


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _evaluate(node: Any, values: list[Any], seen: list[Any], env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        return env[node[1]]
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
        return not truthy(_evaluate(node[1], values, seen, env))
    if kind in ("and", "or"):
        result: Any = None
        for part in node[1]:
            result = _evaluate(part, values, seen, env)
            if truthy(result) != (kind == "and"):
                return result
        return result
    if kind in ("neg", "pos"):
        operand = _number(_evaluate(node[1], values, seen, env))
        return -operand if kind == "neg" else +operand
    if kind == "bin":
        return _binop(node[1], _evaluate(node[2], values, seen, env),
                      _evaluate(node[3], values, seen, env))
    if kind == "call":
        args = [_evaluate(arg, values, seen, env) for arg in node[2]]
        keywords = {key: _evaluate(value, values, seen, env) for key, value in node[3].items()}
        if node[4] is not None and any(isinstance(arg, Opaque) and not isinstance(arg, Seq)
                                       for arg in args):
            return _evaluate(("hole", node[4]), values, seen, env)
        return _call(node[1], args, keywords)
    if kind == "raises":
        return _raised(node[1], values[0])
    left = _evaluate(node[1], values, seen, env)
    for op, right_node in node[2]:
        right = _evaluate(right_node, values, seen, env)
        if not _compare(op, left, right):
            return False
        left = right
    return True


def _raised(expected: list[str], entry: Any) -> bool:
    """Whether the reported exception is one of ``expected`` (by class name along its MRO; a
    built-in name only matches the built-in class)."""
    if type(entry) is not dict or set(entry) != {"r"}:
        raise Malformed("bad exception report")
    mro = entry["r"]
    if mro is None:
        raise _Raised(f"nothing was raised (expected {' or '.join(expected)})")
    if type(mro) is not list or not all(type(c) is list and len(c) == 2 and
                                        all(type(p) is str for p in c) for c in mro):
        raise Malformed("bad exception report")
    for name in expected:
        builtin = isinstance(getattr(builtins, name, None), type)
        for module, qualname in mro:
            if qualname.rsplit(".", 1)[-1] == name and (module == "builtins" or not builtin):
                return True
    raised = mro[0][1] if mro else "?"
    raise _Raised(f"raised {raised}, not {' or '.join(expected)}")


def judge_test(split: SplitTest, report: Any) -> tuple[bool, str]:
    """(passed, why not) for one test from the sandbox's report of it."""
    if split.gameable:
        return False, f"gameable, counted as failed: {split.gameable}"
    if type(report) is not dict:
        return False, "no report for this test"
    if report.get("error"):
        return False, str(report["error"])[:500]
    checks = report.get("checks")
    if type(checks) is not list:
        return False, "malformed report"
    done = [0] * len(split.checks)
    for entry in checks:
        index = -1
        try:
            if type(entry) is not list or len(entry) != 2:
                raise Malformed("bad entry")
            index, values = entry
            if type(index) is not int or not 0 <= index < len(split.checks):
                raise Malformed("unknown assertion")
            if type(values) is not list or len(values) != split.holes[index]:
                raise Malformed("wrong number of operands")
            runs = split.runs[index]
            if done[index] >= len(runs):
                raise Malformed(f"assert {split.texts[index]} reported more often than it runs")
            env = runs[done[index]]
            done[index] += 1
            seen: list[Any] = []
            outcome = truthy(_evaluate(split.checks[index], values, seen, env))
        except _Raised as exc:
            return False, f"{_label(split, index)}: {exc}"
        except Unjudgeable as exc:
            return False, f"{_label(split, index)} failed: {exc}"
        except (Malformed, TypeError, ValueError, KeyError) as exc:
            return False, f"malformed report: {exc}"
        if not outcome:
            got = ", ".join(_describe(value) for value in seen)
            suffix = f" (run {done[index]} of {len(runs)})" if len(runs) > 1 else ""
            return False, f"{_label(split, index)} failed{suffix}" + (
                f" (got {got})" if got else "")
    for index, runs in enumerate(split.runs):
        if done[index] < len(runs):
            what = "was never reached" if not done[index] else \
                f"ran {done[index]} of {len(runs)} times"
            return False, f"{_label(split, index)} {what}"
    return True, ""


def _label(split: SplitTest, index: int) -> str:
    if 0 <= index < len(split.checks) and split.checks[index][0] == "raises":
        return split.texts[index]
    return f"assert {split.texts[index]}" if 0 <= index < len(split.texts) else "a check"


def number(value: Any) -> float | None:
    """A finite number from decoded data (an integer too large for a float is clamped to the
    float range: it is way outside [0, 1] either way), else None."""
    kind = type(value)
    if kind is int:
        if value.bit_length() > 1000:
            return 1e308 if value > 0 else -1e308
        return float(value)
    if kind in (float, bool, Decimal, Fraction):
        try:
            result = float(value)
        except (OverflowError, ValueError):
            return None
        return result if math.isfinite(result) else None
    return None


__all__ = ["Malformed", "Opaque", "Seq", "SplitTest", "Unjudgeable", "canonical", "decode",
           "has_opaque", "judge_test", "number", "split_test", "strict_equal", "truthy"]


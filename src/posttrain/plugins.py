"""One registry for what plugs into posttrain: graders, model providers, suites and commands.

A part registers itself with a decorator in the one file that defines it::

    from posttrain.plugins import register_grader

    @register_grader("my_check")            # usable as {type: my_check} in any eval file
    def build(spec: dict, context: GraderContext) -> Grader: ...

``register_provider("name", options=..., env=...)`` (a model spec ``name:MODEL``),
``register_suite("name")`` (``suite:name``) and ``register_command("name")`` (``posttrain
name``) work the same way; each kind's module documents what the decorated object must be
(``posttrain.graders.registry``, ``posttrain.models``, ``posttrain.suites``, ``posttrain.cli``).

Lazy, so start-up stays light: nothing is imported until a name is looked up. posttrain's own
parts are found by reading its package sources for these decorators (text only, a few
milliseconds), then only the module that registers the name asked for is imported. Other
packages join through the entry-point group ``posttrain.plugins`` (PyPA entry-points
specification): each entry point names a module, imported on the first lookup of a name that
posttrain itself does not have (or when every name is listed), whose decorators register its
parts. A plugin that fails to import is reported in one line naming it, never hidden.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from posttrain.errors import UserError, did_you_mean

ENTRY_POINT_GROUP = "posttrain.plugins"
T = TypeVar("T")

_ROOT = Path(__file__).resolve().parent


class Kind:
    """One kind of plug-in part: its registered objects and where posttrain's own live.

    (A plain class, not a dataclass: ``dataclasses`` costs ~10 ms at start-up.)"""

    def __init__(self, name: str, what: str, packages: tuple[str, ...], decorator: str) -> None:
        self.name = name  # "grader", "provider", ...
        self.what = what  # how an error names one: "grader type", "provider", ...
        self.packages = packages  # posttrain's own sub-packages that may register this kind
        self.decorator = decorator  # the decorator's name, as written in source
        self.parts: dict[str, Any] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self._index: dict[str, str] | None = None

    def index(self) -> dict[str, str]:
        """name -> module, for posttrain's own parts, read from the package sources."""
        if self._index is None:
            self._index = _scan(self.packages, self.decorator)
        return self._index


KINDS: dict[str, Kind] = {
    "grader": Kind("grader", "grader type", ("graders", "suites"), "register_grader"),
    "provider": Kind("provider", "provider", ("models",), "register_provider"),
    "suite": Kind("suite", "suite", ("suites",), "register_suite"),
    "command": Kind("command", "command", ("cli",), "register_command"),
}


def _register(kind: str, name: str, meta: dict[str, Any]) -> Callable[[T], T]:
    if not re.fullmatch(r"[A-Za-z][\w-]*", name):
        raise ValueError(f"a {KINDS[kind].what} name is letters, digits, _ and -: {name!r}")

    def decorator(obj: T) -> T:
        KINDS[kind].parts[name] = obj
        KINDS[kind].meta[name] = meta
        return obj

    return decorator


def register_grader(type_name: str) -> Callable[[T], T]:
    """Register ``build(spec, context) -> Grader`` for ``{type: type_name}`` grader specs."""
    return _register("grader", type_name, {})


def register_provider(name: str, **meta: Any) -> Callable[[T], T]:
    """Register a model provider's factory for specs ``name:MODEL`` (see
    ``posttrain.models.build_model`` for the factory's signature and ``provider_meta`` for the
    ``meta`` it takes: ``options``, ``env``, ``hosted``, ``priced``, ``local``, ``order``)."""
    return _register("provider", name, meta)


def register_suite(name: str) -> Callable[[T], T]:
    """Register a suite: the decorated object is its ``build(out_dir, *, n, seed, length)``;
    its module defines ``SUITE`` (``posttrain.suites.SuiteInfo``)."""
    return _register("suite", name, {})


def register_command(name: str, *, order: int = 100) -> Callable[[T], T]:
    """Register ``add(subparsers) -> None`` that adds the ``posttrain name`` sub-command(s)
    (a group may add several); ``order`` places them in ``posttrain --help``."""
    return _register("command", name, {"order": order})


def get(kind: str, name: str, *, field_name: str | None = None,
        source: str | None = None) -> Any:
    """The part registered as ``name``: posttrain's own first, then plugins'. UserError with a
    "did you mean" naming ``field_name`` in ``source`` when none is."""
    registry = KINDS[kind]
    if name not in registry.parts:
        module = registry.index().get(name)
        if module is not None:
            importlib.import_module(module)
            if name not in registry.parts:  # the source scan and the decorator disagree: a bug
                raise RuntimeError(f"{module} mentions {kind} {name!r} but did not register it")
        else:
            load_entry_points()
    if name not in registry.parts:
        known = names(kind)
        raise UserError(f"unknown {registry.what} {name!r}{did_you_mean(name, known)} "
                        f"(known: {', '.join(known)})", file=source, field=field_name)
    return registry.parts[name]


def has(kind: str, name: str) -> bool:
    """Whether ``name`` is registered (posttrain's own or a plugin's), importing what that needs."""
    try:
        get(kind, name)
    except UserError:
        return False
    return True


def meta(kind: str, name: str) -> dict[str, Any]:
    """What the part was registered with (``register_provider(name, **meta)``)."""
    get(kind, name)
    return KINDS[kind].meta[name]


def names(kind: str) -> list[str]:
    """Every name of this kind: posttrain's own (not imported) and the plugins' (loaded)."""
    load_entry_points()
    return sorted(set(KINDS[kind].index()) | set(KINDS[kind].parts))


def own_names(kind: str) -> list[str]:
    """posttrain's own names of this kind, in source order, without loading any plugin."""
    return list(KINDS[kind].index())


def load_all(kind: str) -> dict[str, Any]:
    """Import every part of this kind (posttrain's own and plugins'); name -> object."""
    for name in names(kind):
        get(kind, name)
    return dict(KINDS[kind].parts)


# ---- discovery ------------------------------------------------------------------------------
def _scan(packages: tuple[str, ...], decorator: str) -> dict[str, str]:
    """``@decorator("name")`` lines in the sources of ``packages`` -> {name: module}."""
    # `@register_grader("x")` on a definition, or `register_grader("x")(builder)` at top level
    pattern = re.compile(rf"^@?(?:\w+\.)?{decorator}\(\s*[\"']([\w-]+)[\"']", re.M)
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((_ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if decorator not in text:
                continue
            parts = path.relative_to(_ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            module = ".".join(("posttrain", *parts))
            for name in pattern.findall(text):
                found.setdefault(name, module)
    return found


_entry_points_loaded = False
#: (plugin, error) for each entry point that failed to load; shown once, kept for `doctor`-style
#: reports and tests
FAILED: list[tuple[str, str]] = []


def load_entry_points() -> None:
    """Import every module of the ``posttrain.plugins`` entry-point group, once per process. A
    plugin that fails to import is one line on stderr naming it and why."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
            where = entry.dist.name if entry.dist is not None else entry.value
            FAILED.append((entry.name, f"{type(exc).__name__}: {exc}"))
            print(f"posttrain: plugin {entry.name!r} ({where}, {entry.value}) failed to load: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def reset_entry_points() -> None:
    """Forget which plugins were loaded (tests that install a plugin mid-process)."""
    global _entry_points_loaded
    _entry_points_loaded = False
    FAILED.clear()

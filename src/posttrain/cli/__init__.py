"""The ``posttrain`` command: one module per command group in this package, each registering
its sub-commands with ``@register_command`` (``posttrain.plugins``); other packages add theirs
through the ``posttrain.plugins`` entry-point group. Sub-commands import their heavy parts only
when they run, so building the parser stays light."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from posttrain.errors import UserError


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with posttrain's own commands, and the plugins' when ``argv`` names a command
    posttrain does not have, or is None (every command). ``posttrain --help`` stays light (no
    entry-point scan); ``posttrain plugins`` lists what plugins add."""
    from posttrain import __version__, plugins

    parser = argparse.ArgumentParser(
        prog="posttrain",
        description="The eval-driven post-training loop: run evals on any model, compare, "
                    "audit, pick the cheapest model that clears the bar, fine-tune when none does.")
    parser.add_argument("--version", action="version", version=f"posttrain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    own = plugins.own_names("command")
    _add_groups(sub, own)  # posttrain's own are light modules: a failure is a bug, not hidden
    words = [a for a in argv or () if not a.startswith("-")]
    if argv is None or (words and words[0] not in sub.choices):
        _add_groups(sub, [name for name in plugins.names("command") if name not in own])
    from posttrain.cli.sandbox import add_cli_arguments_to

    add_cli_arguments_to(parser)
    return parser


def _add_groups(sub: Any, groups: Sequence[str]) -> None:
    """Add each command group's sub-commands, in their registered ``order``."""
    from posttrain import plugins

    adders = [plugins.get("command", name) for name in groups]
    ordered = sorted(zip(groups, adders, strict=True),
                     key=lambda pair: (plugins.meta("command", pair[0]).get("order", 100),
                                       pair[0]))
    for _, add in ordered:
        add(sub)


#: CPython's cyclic collector (generation thresholds) while a command runs: a young collection
#: every 50,000 net container allocations instead of every 700. A command holds its eval's items,
#: requests and grades (hundreds of thousands of objects) and at 700 the collector keeps walking
#: them: 1.1-1.2 s of a fresh 100k-item eval and as much of its cached rerun went to collections
#: (``gc.callbacks`` timings; ``bench/RESULTS.md``, "Scale"). Reference cycles are still
#: collected, only later; memory measured the same (peak RSS 149-154 MB either way).
GC_THRESHOLDS = (50_000, 20, 10)


@contextmanager
def batch_gc() -> Iterator[None]:
    """Run the body under :data:`GC_THRESHOLDS`, restoring the caller's thresholds after."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        from posttrain.cli.sandbox import apply_cli_arguments

        apply_cli_arguments(args)
        with batch_gc():
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"posttrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        from posttrain.models.checks import EXTRAS, install_hint

        package = (exc.name or "").split(".", 1)[0]
        if package not in EXTRAS:
            raise
        print(f"posttrain: error: `posttrain {args.command}` needs the optional package "
              f"{package!r}: {install_hint(package)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

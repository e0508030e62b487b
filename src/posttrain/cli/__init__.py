"""The ``posttrain`` command: one module per command group in this package, each registering
its sub-commands with ``@register_command`` (``posttrain.plugins``); other packages add theirs
through the ``posttrain.plugins`` entry-point group. Sub-commands import their heavy parts only
when they run, so building the parser stays light."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    groups = plugins.own_names("command")
    if argv is None or _wants_plugins(argv):
        groups = plugins.names("command")
    for name in groups:  # posttrain's own are light modules: a failure here is a bug, not hidden
        plugins.get("command", name)
    adders = sorted((plugins.meta("command", name).get("order", 100), name) for name in groups)
    for _, name in adders:
        plugins.get("command", name)(sub)
    from posttrain.cli.sandbox import add_cli_arguments_to

    add_cli_arguments_to(parser)
    return parser


_OWN_COMMANDS = ("quickstart", "eval", "report", "runs", "regrade", "suites", "grade", "train",
                 "export", "compare", "audit", "pick", "calibrate", "shelf-life", "ingest",
                 "view", "cache", "models", "plugins")


def _wants_plugins(argv: Sequence[str]) -> bool:
    """Load plugin commands only when one may be asked for: a command posttrain lacks."""
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] not in _OWN_COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        from posttrain.cli.sandbox import apply_cli_arguments

        apply_cli_arguments(args)
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

"""``posttrain plugins``: what is registered (graders, providers, suites, commands), posttrain's
own and each plugin package's (entry-point group ``posttrain.plugins``), and plugins that failed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from posttrain.plugins import register_command


@register_command("plugins", order=95)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("plugins", help="graders, providers, suites and commands: posttrain's "
                                       "own and those plugins add",
                       description="List every registered grader type, model provider, suite "
                                   "and command, marking those a plugin package added (entry-"
                                   "point group posttrain.plugins) and any plugin that failed "
                                   "to load.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from posttrain import plugins

    listing: dict[str, Any] = {}
    for kind in plugins.KINDS:
        own = set(plugins.own_names(kind))
        listing[kind] = [{"name": name, "from": "posttrain" if name in own else "plugin"}
                         for name in plugins.names(kind)]
    adds = _commands_by_group(plugins.names("command"))
    for entry in listing["command"]:
        entry["commands"] = adds.get(entry["name"], [])
    failed = [{"plugin": name, "error": error} for name, error in plugins.FAILED]
    if args.json:
        print(json.dumps({**listing, "failed": failed}, indent=2))
        return 0
    for kind, entries in listing.items():
        names = [e["name"] + (f" [{' '.join(e['commands'])}]" if kind == "command" else "")
                 + (" (plugin)" if e["from"] == "plugin" else "") for e in entries]
        print(f"{kind}s: {', '.join(names)}")
    for entry in failed:
        print(f"failed to load: {entry['plugin']}: {entry['error']}")
    return 1 if failed else 0


def _commands_by_group(groups: list[str]) -> dict[str, list[str]]:
    """The sub-commands each command group adds (a group may add several, or targets to
    another's), found by adding the groups, in their order, to a scratch parser."""
    from posttrain import plugins

    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    adds: dict[str, list[str]] = {}
    ordered = sorted(groups, key=lambda g: (plugins.meta("command", g).get("order", 100), g))
    for group in ordered:
        before = set(scratch.choices)
        plugins.get("command", group)(scratch)
        adds[group] = [name for name in scratch.choices if name not in before]
    return adds

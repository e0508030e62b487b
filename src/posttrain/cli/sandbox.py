"""The sandbox options of the commands whose graders may run model-written code.

Kept apart from ``posttrain.graders.sandbox`` so that building the parser (``posttrain --help``)
imports nothing heavy; the options are applied only when one is given.
"""

from __future__ import annotations

import argparse
from typing import Any

#: the layers ``--sandbox`` may name (``posttrain.graders.sandbox.MODES`` without
#: ``unsafe-none``, which only ``--unsafe-no-sandbox`` selects)
LAYERS = ("auto", "kernel", "bwrap", "docker")
#: commands whose graders may run model-written code
SANDBOXED_COMMANDS = ("quickstart", "eval", "regrade", "grade", "calibrate", "rft")


def add_cli_arguments(parser: Any) -> None:
    """``--sandbox``, ``--sandbox-image``, ``--sandbox-workers`` and ``--unsafe-no-sandbox`` on a
    command's parser."""
    group = parser.add_argument_group("sandbox for model-written code")
    group.add_argument("--sandbox", choices=LAYERS, default=None,
                       help="confinement layer (default auto: kernel, else bwrap, else docker "
                            "if an image is set, else refuse; env POSTTRAIN_SANDBOX)")
    group.add_argument("--sandbox-image", metavar="IMAGE", default=None,
                       help="container image with python3 for --sandbox docker")
    group.add_argument("--sandbox-workers", type=_workers, metavar="N", default=None,
                       help="warm sandbox workers grading at once (default: one per core this "
                            "process may use; env POSTTRAIN_SANDBOX_WORKERS)")
    group.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="run model-written code with no confinement (recorded in the run)")


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {text!r}")
    return value


def add_cli_arguments_to(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to every command in ``SANDBOXED_COMMANDS``, nested ones too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name in SANDBOXED_COMMANDS:
                    add_cli_arguments(child)
                add_cli_arguments_to(child)


def apply_cli_arguments(args: Any) -> None:
    """Configure the sandbox when a sandbox option was given (imports it only then)."""
    if any(getattr(args, key, None) for key in ("unsafe_no_sandbox", "sandbox",
                                                "sandbox_image", "sandbox_workers")):
        from posttrain.graders.sandbox import apply_cli_arguments as apply

        apply(args)

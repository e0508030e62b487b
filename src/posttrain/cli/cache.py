"""``posttrain cache ls|clear``: what the response cache holds, by model, and pruning it.

Clearing the cache never touches runs, answers or grades: it only means the next run sends those
requests again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command

_NO_MODEL = "(written before identities were recorded)"


@register_command("cache", order=80)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("cache", help="the response cache: list entries by model, clear them",
                       description="The response cache in a store: `ls` shows entries by model "
                                   "(count, size, age); `clear` deletes entries (runs and their "
                                   "answers stay).")
    csub = p.add_subparsers(dest="cache_command", required=True)
    ls = csub.add_parser("ls", help="entries by model: count, size, oldest, newest, identities")
    ls.add_argument("--store", default="posttrain.db")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_run_ls)
    clear = csub.add_parser("clear", help="delete entries (all, or by model and age)")
    clear.add_argument("--store", default="posttrain.db")
    clear.add_argument("--model", "-m", action="append", metavar="SPEC",
                       help="only this model's entries: a spec (openai:NAME clears NAME at any "
                            "URL), a models-file name, or a model as `cache ls` shows it; repeat")
    clear.add_argument("--models-file")
    clear.add_argument("--older-than", metavar="AGE",
                       help="only entries written more than AGE ago (30m, 12h, 7d, 2w)")
    clear.add_argument("--json", action="store_true")
    clear.set_defaults(func=_run_clear)


def _open(path: str, *, reading: bool = False) -> Any:
    from posttrain.runner.store import Store

    if not Path(path).exists():
        raise UserError("no store here (run `posttrain eval` first or pass --store)", file=path)
    return Store(path, reading=reading)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def _run_ls(args: argparse.Namespace) -> int:
    import json
    import time

    from posttrain.models.identity import is_exact
    from posttrain.runner.cache import DEFAULT_EXPIRY_S, format_age, format_duration

    stats = _open(args.store, reading=True).cache_stats()
    now = time.time()
    if args.json:
        print(json.dumps({"models": [{**s, "oldest_age_s": round(now - s["oldest"], 1),
                                      "newest_age_s": round(now - s["newest"], 1)}
                                     for s in stats]}, indent=2))
        return 0
    if not stats:
        print(f"the cache in {args.store} is empty")
        return 0
    rows = []
    for s in stats:
        model = s["model"]
        expiry = None if model and is_exact(model) else DEFAULT_EXPIRY_S
        rows.append([model or _NO_MODEL, str(s["entries"]), _size(s["bytes"]),
                     format_age(now - s["oldest"]), format_age(now - s["newest"]),
                     str(s["identities"] or "-"), format_duration(expiry)])
    print(_table(["model", "entries", "size", "oldest", "newest", "identities",
                  "default expiry"], rows))
    total = sum(s["entries"] for s in stats)
    print(f"\n{total} entries; `posttrain eval --cache-expiry AGE` serves entries up to AGE old, "
          "`posttrain cache clear` deletes them")
    return 0


def _matching(stored: list[str | None], spec: str, models_file: str | None) -> list[str | None]:
    """Stored cache ids that belong to ``spec`` (any weights digest, and for endpoints any URL)."""
    if spec in stored:
        return [spec]
    from posttrain.models import build_model, is_provider, model_config, provider_meta

    provider, _, name = spec.partition(":")
    targets: set[str] = set()
    try:
        config = model_config(spec, models_file)
    except UserError:
        config = None
    if config is not None:
        provider, name = config.provider, config.model
        try:
            targets.add(build_model(config).cache_id.split("#", 1)[0])
        except (UserError, OSError, ValueError):
            pass
        if provider_meta(provider).get("local"):  # the folder may be gone: match its path
            targets.add(f"{provider}:{Path(name).expanduser().resolve()}")
    if not name or not is_provider(provider):
        raise UserError(f"unknown model {spec!r}: use a spec (openai:NAME, hf:PATH, ...), a "
                        "models-file name or a model as `posttrain cache ls` shows it",
                        field="--model")
    found: list[str | None] = []
    for cache_id in stored:
        if cache_id is None:
            continue
        base = cache_id.split("#", 1)[0]
        remote_match = (not provider_meta(provider).get("local") and base.startswith(provider + ":")
                        and base.endswith(":" + name))
        if base in targets or remote_match:
            found.append(cache_id)
    return found


def _run_clear(args: argparse.Namespace) -> int:
    import json

    from posttrain.runner.cache import parse_duration

    store = _open(args.store)
    older = None
    if args.older_than:
        try:
            older = parse_duration(args.older_than)
        except ValueError as exc:
            raise UserError(str(exc), field="--older-than") from None
        if older is None:
            raise UserError("an age such as 7d (never matches nothing)", field="--older-than")
    models: list[str | None] | None = None
    if args.model:
        stored = [s["model"] for s in store.cache_stats()]
        models = []
        for spec in args.model:
            matched = _matching(stored, spec, args.models_file)
            if not matched:
                print(f"no cache entries for {spec}", file=sys.stderr)
            models += matched
    deleted = store.cache_clear(models=models, older_than_s=older)
    store.close()
    if args.json:
        print(json.dumps({"deleted": deleted, "models": models}))
    else:
        scope = f" of {', '.join(m or _NO_MODEL for m in models)}" if models else ""
        age = f" older than {args.older_than}" if older is not None else ""
        print(f"deleted {deleted} cache entries{scope}{age} (runs and answers are kept)")
    return 0

"""``posttrain store info|vacuum``: the store's size per sample, and compacting it.

The store is one SQLite file in WAL mode. Writes go to the ``-wal`` file beside it first;
SQLite copies them into the main file (a checkpoint) every few MB, and a run forces one every
2,000 commits, so the WAL stays small during a long run. Deleting runs or clearing the cache
leaves free pages inside the file: ``vacuum`` rebuilds it without them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_command
from posttrain.runner.store_file import refuse_empty_store

HELP = "the store file: size per sample (info), compact it (vacuum)"


@register_command("store", order=81)
def add_parser(sub: Any) -> None:
    p = sub.add_parser("store", help=HELP, description=HELP + ".")
    ssub = p.add_subparsers(dest="store_command", required=True)
    info = ssub.add_parser("info", help="bytes on disk, free bytes, runs, samples, bytes/sample")
    info.add_argument("--store", default="posttrain.db")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_run_info)
    vacuum = ssub.add_parser(
        "vacuum", help="checkpoint the WAL and rebuild the file without free pages",
        description="Checkpoint the write-ahead log into the store and rebuild the file without "
                    "free pages (SQLite VACUUM), then refresh the query planner's statistics. "
                    "Nothing stored changes. Needs free disk of about the store's size; run it "
                    "when no eval is writing to the store.")
    vacuum.add_argument("--store", default="posttrain.db")
    vacuum.add_argument("--json", action="store_true")
    vacuum.set_defaults(func=_run_vacuum)


def _open(path: str, *, reading: bool = False) -> Any:
    from posttrain.runner.store import Store

    if Path(path).is_dir():
        raise UserError("is a folder: --store takes a store file", file=path)
    if not Path(path).is_file():
        raise UserError("no store here (run `posttrain eval` first or pass --store)", file=path)
    refuse_empty_store(path)  # every command here reads or compacts: none creates a store
    return Store(path, reading=reading)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _run_info(args: argparse.Namespace) -> int:
    with _open(args.store, reading=True) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    per = info["bytes_per_sample"]
    wal = f", {_mb(info['wal_bytes'])} write-ahead log" if info["wal_bytes"] else ""
    print(f"{info['path']}: {_mb(info['bytes'])} ({_mb(info['free_bytes'])} free{wal}), "
          f"{info['runs']} runs, {info['samples']} samples, {info['scores']} grades, "
          f"{info['cache']} cache entries" + (f"; {per:,.0f} bytes per sample" if per else ""))
    return 0


def _refuse_live_runs(store: Any, path: str) -> None:
    """Vacuuming rewrites the whole file and holds it for the time that takes: not while a
    process on this host is answering one of its runs (its commits would wait on it)."""
    from posttrain.runner import process

    for run in store.list_runs():
        pid = process.answering(run)
        if pid is not None:
            raise UserError(f"run {run.id} ({run.eval_name}, {run.model}) is being answered now "
                            f"by process {pid}: vacuum once it has finished", file=path)


def _run_vacuum(args: argparse.Namespace) -> int:
    import sqlite3

    with _open(args.store) as store:
        _refuse_live_runs(store, args.store)
        try:
            result = store.vacuum()
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot vacuum now: {exc} (another process is using the store?)",
                            file=args.store) from None
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['path']}: {_mb(result['bytes_before'])} -> {_mb(result['bytes_after'])}")
    return 0

"""Training jobs in the store: each RFT run's settings, its per-step log and its outcome.

``posttrain train rft`` records a job when it starts, appends each log entry as the trainer
writes it (``{step, reward, reward_std, validation?, ...}``, committed at once, so a page open on
the store draws the reward curve while training runs and a killed job keeps the steps it made),
and writes the outcome (held-out before / after, paired test, the two stored eval runs) at the
end. Tables (created on first use; a store from an older version gains them then):

- ``train_jobs``: id, kind (``rft``), model, eval name, output folder, created / finished
  (Unix seconds), status (running / finished / failed / interrupted), config JSON (with the
  training process: ``_process: {host, pid, start}``), result JSON.

A job whose process was killed outright (SIGKILL, a lost machine) cannot write its end: it is
read as ``died`` when its process, on this host, is gone (the pid with the same start time,
so a reused pid does not count as alive); on another host it stays ``running``.
- ``train_log``: (job id, seq) -> one log entry JSON.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

from posttrain.runner import process
from posttrain.runner.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS train_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    eval_name TEXT,
    out_dir TEXT,
    created REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    config TEXT,
    result TEXT
);
CREATE TABLE IF NOT EXISTS train_log (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""


def _ensure(store: Store) -> None:
    store.conn.executescript(_SCHEMA)


def _has_tables(store: Store) -> bool:
    return store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                              "'train_jobs'").fetchone() is not None


def start_job(store: Store, *, kind: str, model: str, eval_name: str | None,
              out_dir: str | None, config: dict[str, Any]) -> str:
    """Record a job as running; returns its id (``train-`` and 8 hex digits)."""
    _ensure(store)
    job_id = f"train-{uuid.uuid4().hex[:8]}"
    config = {**config, "_process": {"host": socket.gethostname(), "pid": os.getpid(),
                                     "start": process.start_time(os.getpid())}}
    with store.conn:
        store.conn.execute(
            "INSERT INTO train_jobs (id, kind, model, eval_name, out_dir, created, status, "
            "config) VALUES (?,?,?,?,?,?,?,?)",
            (job_id, kind, model, eval_name, out_dir, time.time(), "running",
             json.dumps(config, default=str)))
    return job_id


def log_step(store: Store, job_id: str, entry: dict[str, Any]) -> None:
    """Append one log entry (committed before returning)."""
    with store.conn:
        (seq,) = store.conn.execute("SELECT COUNT(*) FROM train_log WHERE job_id = ?",
                                    (job_id,)).fetchone()
        store.conn.execute("INSERT INTO train_log VALUES (?,?,?)",
                           (job_id, seq, json.dumps(entry, default=str)))


def finish_job(store: Store, job_id: str, *, status: str,
               result: dict[str, Any] | None = None) -> None:
    """Mark a job finished or failed, with its outcome."""
    with store.conn:
        store.conn.execute("UPDATE train_jobs SET status = ?, finished = ?, result = ? "
                           "WHERE id = ?", (status, time.time(),
                                            json.dumps(result, default=str), job_id))


def _alive(job_process: dict[str, Any]) -> bool:
    """Whether the job's process still runs (True when that cannot be known here)."""
    return process.state(job_process) != "gone"


def _status(status: str, config: str | None) -> str:
    if status != "running" or not config:
        return status
    try:
        process = json.loads(config).get("_process")
    except ValueError:
        return status
    return status if not isinstance(process, dict) or _alive(process) else "died"


def list_jobs(store: Store, eval_name: str | None = None) -> list[dict[str, Any]]:
    """Jobs, newest first, without their logs: ``{id, kind, model, eval_name, out_dir, created,
    finished, status, steps}``."""
    if not _has_tables(store):
        return []
    where, args = ("WHERE eval_name = ?", (eval_name,)) if eval_name else ("", ())
    rows = store.conn.execute(
        "SELECT j.id, j.kind, j.model, j.eval_name, j.out_dir, j.created, j.finished, j.status, "
        f"(SELECT COUNT(*) FROM train_log l WHERE l.job_id = j.id), j.config FROM train_jobs j "
        f"{where} ORDER BY j.created DESC", args).fetchall()
    keys = ("id", "kind", "model", "eval_name", "out_dir", "created", "finished", "status",
            "log_entries")
    jobs = []
    for row in rows:
        job = dict(zip(keys, tuple(row)[:-1], strict=True))
        job["status"] = _status(job["status"], row[-1])
        jobs.append(job)
    return jobs


def get_job(store: Store, job_id: str) -> dict[str, Any] | None:
    """One job with its config, result and log entries in order; None when there is none."""
    if not _has_tables(store):
        return None
    row = store.conn.execute("SELECT id, kind, model, eval_name, out_dir, created, finished, "
                             "status, config, result FROM train_jobs WHERE id = ?",
                             (job_id,)).fetchone()
    if row is None:
        return None
    job = dict(zip(("id", "kind", "model", "eval_name", "out_dir", "created", "finished",
                    "status", "config", "result"), tuple(row), strict=True))
    job["status"] = _status(job["status"], job["config"])
    job["config"] = json.loads(job["config"] or "{}")
    job["process"] = job["config"].pop("_process", None)  # {host, pid, start} of the trainer
    job["result"] = json.loads(job["result"]) if job["result"] else None
    job["log"] = [json.loads(entry) for (entry,) in store.conn.execute(
        "SELECT entry FROM train_log WHERE job_id = ? ORDER BY seq", (job_id,))]
    return job

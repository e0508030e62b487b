"""Which process on which host is doing a piece of work (a run's answers, a training job), and
whether it still is: the pid with the start time it had, so a pid the kernel has since given to
another process does not read as the same process."""

from __future__ import annotations

import os
import socket
import time
from typing import Any


def start_time(pid: int) -> str | None:
    """The process's start time since boot (``/proc/PID/stat`` field 22), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def identity() -> dict[str, Any]:
    """This process: ``{pid, host, start, since}`` (``since``: seconds since the epoch)."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": start_time(pid),
            "since": time.time()}


def state(process: Any) -> str:
    """``alive`` (that process runs on this host), ``gone`` (it does not: killed, crashed or
    ended) or ``unknown`` (another host, or nothing recorded)."""
    if not isinstance(process, dict) or not isinstance(process.get("pid"), int):
        return "unknown"
    if process.get("host") != socket.gethostname():
        return "unknown"
    pid = process["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return "unknown"
    start = process.get("start")
    return "alive" if start is None or start_time(pid) in (None, start) else "gone"


def other_live(runner: Any) -> int | None:
    """The pid of ``runner`` (a run's recorded runner) when it is another process alive on
    this host; else None."""
    if not isinstance(runner, dict) or runner.get("pid") == os.getpid():
        return None
    return runner["pid"] if state(runner) == "alive" else None


def answering(run: Any) -> int | None:
    """The pid of another live process on this host still answering ``run`` (a stored run:
    status running, its recorded runner alive), else None."""
    if getattr(run, "status", None) != "running":
        return None
    return other_live((getattr(run, "config", None) or {}).get("runner"))


def refuse_if_answered(run_id: str, runner: Any, label: str) -> None:
    """UserError (one line, naming ``label``: the model) when ``runner`` (a run's recorded
    runner) is another live process on this host: two processes answering one run would
    send its pending requests twice."""
    pid = other_live(runner)
    if pid is not None:
        from posttrain.errors import UserError

        raise UserError(f"{label}: run {run_id} is being answered now by process {pid} on "
                        "this host: wait for it to finish (or stop it, then run this again to "
                        "resume); two processes answering one run would send its pending "
                        "requests twice", field="--model")

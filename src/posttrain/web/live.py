"""Live runs for the viewer: progress per run and agentic trajectories as they unfold, from the
store alone (the runner writes ``steps``; this module only reads them), and the checks a
reviewer's pause or resume passes before it is written to the ``steering`` table."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from posttrain.environment import unseen_tool_results
from posttrain.errors import UserError
from posttrain.runner.steering import runner_state
from posttrain.runner.store import Store
from posttrain.web.matrix import short_name

SUMMARY_CHARS = 120
RESUME_WAIT_S = 4.0  # how long the viewer waits for the runner to take a correction
POLL_S = 0.25  # how often the hub looks for a commit of another process
PROGRESS_EVERY_S = 1.0  # progress events at most this often


class Conflict(UserError):
    """A steering request the sample's state refuses (HTTP 409)."""

    http_status = 409


def _short(text: Any, limit: int = SUMMARY_CHARS) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arguments(raw: Any) -> str:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return _short(raw, 60)
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    return _short(value, 60)


def summary(row: dict[str, Any], names: dict[str, str]) -> str:
    """One line for a step: what the model did, what the environment said, a pause.
    ``names`` maps tool call ids to tool names (filled as calls stream by)."""
    message = row.get("message") or {}
    if row["kind"] == "paused":
        return f"paused by a reviewer before turn {message.get('turn')}"
    if row["kind"] == "attempt":
        return (f"attempt {message.get('attempt')}: the run was resumed and the episode plays "
                "again from its prompt (the steps above are an earlier attempt's)")
    if row["kind"] == "resumed":
        if message.get("abandoned"):
            return "the pause ended with the runner that held it: the run stopped"
        if message.get("expired"):
            return "resumed: the pause expired, no correction"
        return "resumed with a correction" if message.get("steered") else "resumed unchanged"
    role = message.get("role")
    content = message.get("content")
    if role == "assistant":
        calls = message.get("tool_calls") or []
        for call in calls:
            names[str(call.get("id"))] = call.get("function", {}).get("name", "")
        said = f"says “{_short(content, 60)}”" if isinstance(content, str) and content.strip() \
            else ""
        called = "calls " + "; ".join(
            f"{c.get('function', {}).get('name')}({_short(_arguments(c.get('function', {}).get('arguments')), 60)})"
            for c in calls) if calls else ""
        return " and ".join(part for part in (said, called) if part) or "says nothing"
    if role == "tool":
        name = names.get(str(message.get("tool_call_id")), "tool")
        return f"{name} → {_short(content, 80)}"
    return f"{role}: {_short(content)}"


def live_runs(store: Store, *, recent: int = 20) -> list[dict[str, Any]]:
    """Running runs and the most recent finished ones: answers done of the expected total,
    errors, and their agentic samples in flight (those with streamed steps and no answer)."""
    runs = [r for r in store.list_runs(limit=recent)]
    out = []
    for run in runs:
        total = store.conn.execute("SELECT COUNT(*) FROM run_items WHERE run_id = ?",
                                   (run.id,)).fetchone()[0] * run.epochs
        counts = dict(store.conn.execute(
            "SELECT status, COUNT(*) FROM samples WHERE run_id = ? GROUP BY status",
            (run.id,)).fetchall())
        in_flight = []
        if run.status == "running":
            # paused: the runner took a pause and holds it (not one an earlier attempt left)
            rows = store.conn.execute(
                "SELECT s.item_id, s.epoch, COUNT(*), MAX(s.id), EXISTS (SELECT 1 FROM "
                "steering c WHERE c.run_id = s.run_id AND c.item_id = s.item_id AND "
                "c.epoch = s.epoch AND c.action = 'pause' AND c.status = 'taken') FROM steps s "
                "WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM samples a WHERE "
                "a.run_id = s.run_id AND a.item_id = s.item_id AND a.epoch = s.epoch) "
                "GROUP BY s.item_id, s.epoch ORDER BY s.item_id, s.epoch", (run.id,))
            in_flight = [{"item_id": r[0], "epoch": r[1], "steps": r[2], "last": r[3],
                          "paused": bool(r[4])} for r in rows]
        steered = store.conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT item_id, epoch FROM steering WHERE "
            "run_id = ? AND action = 'resume' AND status = 'applied')", (run.id,)).fetchone()[0]
        out.append({"id": run.id, "eval": run.eval_name, "model": run.model,
                    "short": short_name(run.model), "variant": run.variant, "status": run.status,
                    "runner": runner_state(run), "created": run.created,
                    "done": sum(counts.values()), "errors": counts.get("error", 0),
                    "total": total, "in_flight": in_flight, "steered": steered})
    return out


def trajectory(store: Store, run_id: str, item_id: str, epoch: int) -> dict[str, Any]:
    """A sample's trajectory so far: messages by position (a reviewer's edit replaces the
    message it edits), steps with one-line summaries, whether it is paused or finished."""
    run = store.resolve_run(run_id)
    rows = store.steps_after(0, run_id=run.id, item_id=item_id, epoch=epoch, limit=100_000)
    names: dict[str, str] = {}
    steps = []
    messages: dict[int, dict[str, Any]] = {}
    attempt, seen_message = 1, False
    for row in rows:
        if row["kind"] == "attempt":
            attempt, seen_message = int((row["message"] or {}).get("attempt") or attempt + 1), False
        elif row["kind"] == "message" and row["position"] is not None:
            if row["position"] == 0:  # the episode (re)started: a resumed run plays it anew
                messages = {}
                if seen_message:  # a replay from before attempts were marked
                    attempt += 1
            seen_message = True
            messages[int(row["position"])] = row["message"]
        steps.append({**step_event(row, names), "attempt": attempt})
    for step in steps:
        step["current"] = step["attempt"] == attempt
    ordered = [messages[i] for i in sorted(messages)]
    finished = store.conn.execute(
        "SELECT status FROM samples WHERE run_id = ? AND item_id = ? AND epoch = ?",
        (run.id, item_id, epoch)).fetchone() is not None
    state = "running" if finished else control_state(store, run.id, item_id, epoch)
    return {"run": run.id, "model": run.model, "eval": run.eval_name, "item_id": item_id,
            "epoch": epoch, "messages": ordered, "steps": steps, "attempt": attempt,
            "finished": finished, "run_status": run.status, "runner": runner_state(run),
            "paused": state == "paused", "pause_requested": state == "requested",
            # why the page offers no pause (what the API would answer, HTTP 409)
            "cannot_pause": None if finished or rows else no_trajectory(store, run, item_id,
                                                                          epoch),
            "editable": unseen_tool_results(ordered) if state == "paused" else [],
            "last_step": rows[-1]["id"] if rows else 0}


def step_event(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A step row as the page receives it."""
    return {"id": row["id"], "run_id": row["run_id"], "item_id": row["item_id"],
            "epoch": row["epoch"], "kind": row["kind"], "position": row["position"],
            "turn": row["turn"], "message": row["message"], "summary": summary(row, names)}


def control_state(store: Store, run_id: str, item_id: str, epoch: int) -> str:
    """``paused`` (the runner waits), ``requested`` (a pause not yet taken), ``resuming`` (a
    resume not yet taken) or ``running``."""
    controls = store.controls(run_id, item_id, epoch)
    pending = [c for c in controls if c["status"] == "pending"]
    if any(c["action"] == "resume" for c in pending):
        return "resuming"
    if any(c["action"] == "pause" and c["status"] == "taken" for c in controls):
        return "paused"
    if any(c["action"] == "pause" for c in pending):
        return "requested"
    return "running"


def _runner_gone(run: Any) -> str:
    pid = (run.config.get("runner") or {}).get("pid")
    return (f"the run is not running: its runner (pid {pid}) stopped before the run finished; "
            "run the same command again to resume it")


def _check_sample(store: Store, run: Any, item_id: str, epoch: int) -> None:
    """The sample exists in the run (KeyError: HTTP 404)."""
    known = store.conn.execute("SELECT 1 FROM run_items WHERE run_id = ? AND item_id = ?",
                               (run.id, item_id)).fetchone()
    if known is None:
        raise KeyError(f"no item {item_id!r} in run {run.id}")
    if not 0 <= epoch < run.epochs:
        raise KeyError(f"no epoch {epoch} in run {run.id} (epochs 0-{run.epochs - 1})")


def no_trajectory(store: Store, run: Any, item_id: str, epoch: int) -> str | None:
    """Why this sample has no trajectory to pause (None: it has one). Only an episode that
    reports its steps can be paused: one played by ``posttrain.environment.run_episode`` or
    through the ``posttrain.environment.Episode`` hook; a plain eval's sample, or a custom
    solver's that does neither, streams nothing and could never take a pause."""
    started = store.conn.execute(
        "SELECT 1 FROM steps WHERE run_id = ? AND item_id = ? AND epoch = ? LIMIT 1",
        (run.id, item_id, epoch)).fetchone()
    if started is not None:
        return None
    if store.conn.execute("SELECT 1 FROM steps WHERE run_id = ? LIMIT 1",
                          (run.id,)).fetchone() is not None:
        return "this sample has not started yet: pause it once its trajectory appears"
    solver = (run.config or {}).get("solver")
    if solver:
        answered = store.conn.execute("SELECT 1 FROM samples WHERE run_id = ? LIMIT 1",
                                      (run.id,)).fetchone()
        if answered is None:  # nothing to tell yet: an episode streams from its start
            return "this sample has not started yet: pause it once its trajectory appears"
        return (f"this run's solver ({solver}) reports no steps: it plays neither "
                "posttrain.environment.run_episode nor the posttrain.environment.Episode "
                "hook, so its samples cannot be followed or paused")
    return ("this run's samples are not agentic (no trajectory is streamed): only an "
            "episode of an eval with a solver: can be paused")


def request_pause(store: Store, run_ref: str, item_id: str, epoch: int) -> dict[str, Any]:
    """Ask the runner to pause this episode before its next turn: only an agentic sample in
    flight (one whose trajectory is streaming) of a run whose runner is alive."""
    run = store.resolve_run(run_ref)
    _check_sample(store, run, item_id, epoch)
    if run.status != "running":
        raise Conflict("this run is not running: nothing to pause")
    if runner_state(run) == "gone":
        raise Conflict(_runner_gone(run))
    done = store.conn.execute(
        "SELECT 1 FROM samples WHERE run_id = ? AND item_id = ? AND epoch = ?",
        (run.id, item_id, epoch)).fetchone()
    if done is not None:
        raise Conflict("this sample is finished: nothing to pause")
    unfollowed = no_trajectory(store, run, item_id, epoch)
    if unfollowed is not None:
        raise Conflict(unfollowed)
    state = control_state(store, run.id, item_id, epoch)
    if state != "running":
        raise Conflict(f"already {state}")
    control = store.add_control(run.id, item_id, epoch, "pause")
    return {"control": control, "state": "requested"}


def request_resume(store: Store, run_ref: str, item_id: str, epoch: int,
                   body: dict[str, Any]) -> dict[str, Any]:
    """Let a paused episode go on, with the reviewer's correction (checked here; the runner
    checks it again against the conversation it holds)."""
    from posttrain.runner.steering import parse_intervention

    run = store.resolve_run(run_ref)
    _check_sample(store, run, item_id, epoch)
    state = control_state(store, run.id, item_id, epoch)
    if state != "paused":
        raise Conflict("this episode is not paused" if state != "resuming"
                       else "a resume is already on its way")
    runner = runner_state(run)
    if runner in ("gone", "finished"):
        # nobody holds the paused episode any more: the correction could never be applied
        for control in store.controls(run.id, item_id, epoch):
            if control["action"] == "pause" and control["status"] == "taken":
                store.set_control_status(control["id"], "abandoned",
                                         "the runner stopped while the episode was paused")
        pid = (run.config.get("runner") or {}).get("pid")
        raise Conflict("the run is not running: "
                       + (f"its runner (pid {pid}) stopped while this episode was paused"
                          if runner == "gone" else "it is over")
                       + ", so nobody can apply the correction: it is dropped, nothing was "
                         "sent. Run the same command again to resume the run: the episode "
                         "plays again from its prompt, and you can pause it then")
    payload = {key: body[key] for key in ("message", "tool_results", "reviewer") if key in body}
    try:
        intervention = parse_intervention(payload)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    editable = set(trajectory(store, run.id, item_id, epoch)["editable"])
    wrong = sorted(set(intervention.tool_results) - editable)
    if wrong:
        raise UserError(f"message {wrong[0]} is not a tool result the model has yet to read "
                        f"(editable: {sorted(editable) or 'none'})")
    control = store.add_control(run.id, item_id, epoch, "resume", payload)
    return {"control": control, "state": "resuming",
            "steered": bool(intervention.tool_results or intervention.message)}


async def await_control(store: Store, control_id: int, wait_s: float = RESUME_WAIT_S,
                        poll_s: float = 0.1) -> dict[str, Any]:
    """What became of a control within ``wait_s``: ``{"status", "note"}`` (``pending`` when
    the runner has not read it yet)."""
    deadline = time.monotonic() + wait_s
    while True:
        row = store.conn.execute("SELECT status, note FROM steering WHERE id = ?",
                                 (control_id,)).fetchone()
        status, note = (row[0], row[1]) if row is not None else ("pending", None)
        if status != "pending" or time.monotonic() >= deadline:
            return {"status": status, "note": note}
        await asyncio.sleep(poll_s)


Filter = tuple[str | None, str | None, int | None]  # run, item, epoch (None: any)


class LiveHub:
    """One poller of the store for every open live page: it checks ``PRAGMA data_version``
    (which changes only when another connection commits) every ``POLL_S``; when the runner
    wrote, it reads the new ``steps`` once and hands each, encoded once, to the pages whose
    filter it matches, and the runs' progress at most every ``PROGRESS_EVERY_S``. It runs only
    while a page is open."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.position = store.last_step_id()
        self.subscribers: dict[asyncio.Queue[bytes], Filter] = {}
        self.names: dict[tuple[str, str, int], dict[str, str]] = {}
        self.task: asyncio.Task[None] | None = None
        self._progress: bytes | None = None

    def subscribe(self, where: Filter) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.subscribers[queue] = where
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self.subscribers.pop(queue, None)

    async def stop(self) -> None:
        """Stop polling and end every open stream (the server is shutting down)."""
        for queue in self.subscribers:
            queue.put_nowait(b"")
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def _names(self, row: dict[str, Any]) -> dict[str, str]:
        key = (row["run_id"], row["item_id"], row["epoch"])
        names = self.names.get(key)
        if names is None:  # a sample that began before this page: its calls so far
            names = self.names[key] = {}
            for earlier in self.store.steps_after(0, run_id=key[0], item_id=key[1],
                                                  epoch=key[2], limit=100_000):
                if earlier["id"] < row["id"]:
                    summary(earlier, names)
        return names

    def encode_step(self, row: dict[str, Any]) -> bytes:
        event = step_event(row, self._names(row))
        return f"id: {row['id']}\nevent: step\ndata: {json.dumps(event)}\n\n".encode()

    def progress_event(self) -> bytes:
        if self._progress is None:
            self._progress = (f"event: progress\ndata: {json.dumps(live_runs(self.store))}"
                              "\n\n").encode()
        return self._progress

    async def _run(self) -> None:
        version = None
        last_progress = 0.0
        due = False
        while self.subscribers:
            now = self.store.conn.execute("PRAGMA data_version").fetchone()[0]
            if now != version:
                version = now
                due = True
                for row in self.store.steps_after(self.position, limit=5000):
                    self.position = row["id"]
                    chunk = self.encode_step(row)
                    for queue, (run, item, epoch) in self.subscribers.items():
                        if ((run is None or run == row["run_id"])
                                and (item is None or (item == row["item_id"]
                                                      and epoch == row["epoch"]))):
                            queue.put_nowait(chunk)
            if due and time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                self._progress = None
                chunk = self.progress_event()
                for queue in self.subscribers:
                    queue.put_nowait(chunk)
                last_progress = time.monotonic()
                due = False
            await asyncio.sleep(POLL_S)

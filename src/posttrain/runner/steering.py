"""The runner's side of follow-along and steering: an episode watcher that writes to the store.

Each agentic sample (an eval with a ``solver:`` playing :func:`posttrain.environment.run_episode`)
gets a :class:`StoreWatcher`. It only writes to the store: every message as it joins the
transcript (``steps``, committed with the event-loop iteration, like answers), and between turns
it reads the ``steering`` table for this sample — one indexed query, no network, nothing to wait
for unless a reviewer paused it. ``posttrain view`` tails ``steps`` and writes ``steering``; the
two processes never talk to each other except through the store.

A pause holds only this episode: it frees the episode's worker slot while it waits (the run's
other samples go on, and new ones start in its place), and takes one again to go on. It ends
when the reviewer resumes, or after ``pause_limit_s`` (then the episode continues unsteered,
the pause marked ``expired``), or with the runner (interrupted: marked ``abandoned``).

A run records which process answers it (``runner_identity`` in its config, on each start or
resume), so the viewer can tell a live runner from a dead one (``runner_state``). When a
resumed run plays an episode again (``StoreWatcher.start``), what an earlier attempt left is
closed: a pause it held is ``abandoned``, controls it never read are refused, and an
``attempt`` step marks where the new attempt's steps begin.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from posttrain.environment import Intervention, apply_intervention
from posttrain.runner import process
from posttrain.runner.store import Store

PAUSE_LIMIT_S = 3600.0
POLL_S = 0.2
MAX_MESSAGE_CHARS = 20_000


def runner_identity() -> dict[str, Any]:
    """This process, as a run's config records its runner (``posttrain.runner.process``)."""
    return process.identity()


def runner_state(run: Any) -> str:
    """``finished`` (the run is over), ``alive`` (its runner process exists on this host),
    ``gone`` (it does not: killed, crashed, or interrupted before the run's end) or
    ``unknown`` (another host, or a run from before runners were recorded)."""
    if run.status != "running":
        return "finished"
    return process.state((run.config or {}).get("runner"))


def parse_intervention(payload: dict[str, Any], control_id: int | None = None) -> Intervention:
    """The intervention in a ``resume`` row's payload (ValueError when malformed)."""
    raw = payload.get("tool_results") or {}
    if not isinstance(raw, dict):
        raise ValueError("tool_results must map a message index to its new content")
    results: dict[int, str] = {}
    for key, value in raw.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"not a message index: {key!r}") from None
        if not isinstance(value, str) or len(value) > MAX_MESSAGE_CHARS:
            raise ValueError("a tool result's new content must be text (at most "
                             f"{MAX_MESSAGE_CHARS} characters)")
        results[index] = value
    message = payload.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS):
        raise ValueError(f"the message must be text (at most {MAX_MESSAGE_CHARS} characters)")
    if isinstance(message, str) and not message.strip():
        message = None
    reviewer = payload.get("reviewer")
    return Intervention(tool_results=results, message=message,
                        reviewer=reviewer if isinstance(reviewer, str) else None, id=control_id)


class StoreWatcher:
    """Follows one (run, item, epoch) episode into the store and applies its steering."""

    def __init__(self, store: Store, run_id: str, item_id: str, epoch: int, *,
                 pause_limit_s: float = PAUSE_LIMIT_S, poll_s: float = POLL_S,
                 slot: Any = None) -> None:
        self.store = store
        self.key = (run_id, item_id, epoch)
        self.pause_limit_s = pause_limit_s
        self.poll_s = poll_s
        #: the sample's worker slot (``pause()``, ``await acquire()``): freed while paused
        self.slot = slot

    def start(self) -> None:
        """The episode (re)starts: close what an earlier attempt of it left in the store (a
        run killed or interrupted while the episode was paused, then resumed)."""
        earlier = self.store.steps_after(0, run_id=self.key[0], item_id=self.key[1],
                                         epoch=self.key[2], limit=100_000)
        self.abandon("the runner stopped while the episode was paused",
                     "sent to an earlier attempt of the episode")
        if earlier:
            number = 1 + max([int((r["message"] or {}).get("attempt", 1)) for r in earlier
                              if r["kind"] == "attempt"] or [1])
            self.store.add_steps(*self.key, 0, [("attempt", None, {"attempt": number})])

    def abandon(self, paused_note: str, pending_note: str) -> None:
        """Nobody plays this attempt of the episode any more: a pause it held is
        ``abandoned`` (with a ``resumed`` step saying so), controls it never read refused."""
        for row in self.store.controls(*self.key):
            if row["action"] == "pause" and row["status"] == "taken":
                self.store.set_control_status(row["id"], "abandoned", paused_note)
                self.store.add_steps(*self.key, 0, [("resumed", None, {
                    "control_id": row["id"], "steered": False, "abandoned": True})])
            elif row["status"] == "pending":
                self.store.set_control_status(row["id"], "refused", pending_note)

    def finish(self) -> None:
        """The episode is over: a pause or resume it never reached is refused, so the page
        does not wait for it."""
        for row in self.store.pending_controls(*self.key):
            self.store.set_control_status(row["id"], "refused", "the episode ended first")

    def on_messages(self, turn: int, messages: list[dict[str, Any]], start: int) -> None:
        rows = [("message", index, messages[index]) for index in range(start, len(messages))]
        if rows:
            self.store.add_steps(*self.key, turn, rows)

    async def checkpoint(self, turn: int, messages: list[dict[str, Any]]
                         ) -> Intervention | None:
        pending = self.store.pending_controls(*self.key)
        pause = next((row for row in pending if row["action"] == "pause"), None)
        if pause is None:
            # a resume with no pause before it: nothing to wait for; refuse it
            for row in pending:
                self.store.set_control_status(row["id"], "refused", "not paused")
            return None
        self.store.set_control_status(pause["id"], "taken", f"paused before turn {turn}")
        self.store.add_steps(*self.key, turn, [("paused", None, {"turn": turn,
                                                                 "control_id": pause["id"]})])
        if self.slot is not None:
            self.slot.pause()  # the run's other samples go on while this one waits
        try:
            intervention = await self._wait(turn, messages, pause)
        except BaseException:
            self.store.set_control_status(pause["id"], "abandoned",
                                          "the run stopped while the episode was paused")
            self.store.add_steps(*self.key, turn, [("resumed", None, {
                "turn": turn, "control_id": pause["id"], "steered": False,
                "abandoned": True})])
            raise
        if self.slot is not None:
            await self.slot.acquire()  # back among the run's workers
        return intervention

    async def _wait(self, turn: int, messages: list[dict[str, Any]], pause: dict[str, Any]
                    ) -> Intervention | None:
        deadline = time.monotonic() + self.pause_limit_s
        while True:
            self.store.flush()  # the pause is visible to the viewer before we wait
            for row in self.store.pending_controls(*self.key):
                if row["action"] != "resume":
                    self.store.set_control_status(row["id"], "refused", "already paused")
                    continue
                try:
                    intervention = parse_intervention(row["payload"], row["id"])
                    if intervention.tool_results or intervention.message:
                        apply_intervention(messages, intervention)  # check it before taking it
                except ValueError as exc:
                    self.store.set_control_status(row["id"], "refused", str(exc))
                    continue
                self.store.set_control_status(row["id"], "applied", f"before turn {turn}")
                self.store.set_control_status(pause["id"], "applied", f"resumed at turn {turn}")
                self.store.add_steps(*self.key, turn, [("resumed", None, {
                    "turn": turn, "control_id": row["id"],
                    "steered": bool(intervention.tool_results or intervention.message)})])
                if intervention.tool_results or intervention.message:
                    return intervention
                return None
            if time.monotonic() >= deadline:
                self.store.set_control_status(pause["id"], "expired",
                                              f"no resume within {self.pause_limit_s:g} s")
                self.store.add_steps(*self.key, turn, [("resumed", None, {
                    "turn": turn, "control_id": pause["id"], "steered": False,
                    "expired": True})])
                return None
            await asyncio.sleep(self.poll_s)


class RelayWatcher(StoreWatcher):
    """A :class:`StoreWatcher` in a process that does not own the store (a Ray worker).

    Its ``store`` is the worker's stand-in (``posttrain.runner.ray_backend``): the steps and
    control statuses it writes travel to the driver as events, in order with the answers, and
    the controls it reads are the ones the driver forwarded for this episode (the driver reads
    the ``steering`` table for every episode its workers play). Closing what an earlier attempt
    left (``start``) and refusing what the episode never read (``finish``) need the whole
    store: the driver does them, with a :class:`StoreWatcher` of its own, when the event
    arrives.
    """

    def start(self) -> None:
        self.store.episode_event("start", *self.key)

    def finish(self) -> None:
        self.store.episode_event("finish", *self.key)


def watcher_for(store: Any, run_id: str, item_id: str, epoch: int, *,
                slot: Any = None) -> StoreWatcher | None:
    """The watcher of one agentic sample: a :class:`StoreWatcher` on the runner's store, the
    stand-in's own (a :class:`RelayWatcher`) in a Ray worker; None for a store that cannot
    carry steps and steering."""
    if isinstance(store, Store):
        return StoreWatcher(store, run_id, item_id, epoch, slot=slot)
    relay = getattr(store, "episode_watcher", None)
    return relay(run_id, item_id, epoch) if relay is not None else None


def pending_for_runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every control still ``pending`` for these runs, oldest first (the Ray driver forwards
    them to the workers playing their episodes)."""
    if not run_ids:
        return []
    marks = ",".join("?" * len(run_ids))
    rows = store.conn.execute(
        f"SELECT * FROM steering WHERE run_id IN ({marks}) AND status = 'pending' ORDER BY id",
        run_ids)
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]

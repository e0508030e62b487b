"""Training data from files and from graded runs in the store.

``rows_from_run`` is the one place that reads the store's tables, so a schema change touches
only this module.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


@dataclass(slots=True)
class RunSample:
    """One graded answer of a run: the request messages, the answer text and its grade."""

    item_id: str
    epoch: int
    messages: list[dict[str, Any]]
    text: str
    score: float | None  # the eval's score of the answer; None unless it is scored
    passed: bool  # scored and passed, as the eval counts it
    item: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)  # the stored completion
    tools: list[dict[str, Any]] | None = None  # the request's tools
    status: str = "scored"  # scored / unscored (a grader's problem, a steered answer)


def read_jsonl(path: str | Path, flag: str = "--data") -> list[dict[str, Any]]:
    from posttrain.loaders.datasets import load_jsonl

    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}", field=flag)
    return [row for _, row in load_jsonl(path)]


def _messages_for(run: Any, items: list[Any],
                  tools: dict[str, list[dict[str, Any]] | None] | None = None,
                  flag: str = "--from-run") -> dict[str, list[dict[str, Any]]]:
    """Rebuild each item's request messages from the run's eval file (or the row's messages);
    ``tools``, when given, receives each item's request tools."""
    eval_ = None
    if run.eval_path and Path(run.eval_path).exists():
        from posttrain.eval import load_eval

        eval_ = load_eval(run.eval_path)
        if run.variant != "default" and run.variant not in eval_.variants:
            raise UserError(f"cannot rebuild the prompts of run {run.id}: its variant "
                            f"{run.variant!r} is no longer in {run.eval_path}", field=flag)
        recorded = run.config.get("prompts")
        if recorded is not None and recorded != eval_.prompt_digest(run.variant):
            raise UserError(f"cannot rebuild the prompts of run {run.id}: the prompts of "
                            f"{run.eval_path} (templates, tools or sampling) were edited since "
                            "the run, so its answers were not to these prompts; run the eval "
                            "again", field=flag)
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if eval_ is not None:
            request = eval_.request_for(item, run.variant)
            out[item.id] = request.messages
            if tools is not None:
                tools[item.id] = request.tools
        elif isinstance(item.data.get("messages"), list):
            out[item.id] = list(item.data["messages"])
        else:
            raise UserError(f"cannot rebuild the prompts of run {run.id}: its eval file "
                            f"{run.eval_path!r} is gone and its rows have no `messages`",
                            field=flag)
    return out


def run_samples(store_path: str | Path, run_ref: str, flag: str = "--from-run"
                ) -> list[RunSample]:
    """Every answered sample of a run, judged as the eval judges it (``flag``: the option
    that named the run, for the error; ``--from-steering`` judges a steered answer by its
    grades, which the run's score counts as unscored: not the model's own answer)."""
    from posttrain.runner.facts import register, sample_sql
    from posttrain.runner.store import Store

    if not Path(store_path).exists():
        raise UserError(f"store not found: {store_path}", field="--store")
    with Store(store_path, reading=True) as store:
        try:
            run = store.resolve_run(run_ref)
        except KeyError:
            raise UserError(f"no run {run_ref!r} in {store_path}", field=flag) from None
        if run.status != "finished" and flag != "--from-steering":
            raise UserError(f"run {run.id} is not finished ({run.status}): training data from "
                            "part of a run holds only the items it reached; run the same eval "
                            "command again to resume it", field=flag)
        items = store.run_items(run.id)
        tools: dict[str, list[dict[str, Any]] | None] = {}
        messages = _messages_for(run, items, tools, flag)
        data = {item.id: item.data for item in items}
        # each answer's status, score and verdict as the eval counts them (``facts.sample_sql``:
        # the primary grader where the eval names one; unscored when a grader could not grade
        # or a reviewer steered the answer; never a partial mean over the graders that could)
        register(store.conn)
        sql, params = sample_sql(run, "f", steered_graded=flag == "--from-steering")
        judged = {(r[0], r[1]): (r[2], r[3], r[4]) for r in store.conn.execute(
            f"WITH {sql} SELECT item_id, epoch, st, v, passed FROM f", params)}
        samples: list[RunSample] = []
        for row in store.samples(run.id):
            if row["status"] != "ok" or not row["completion"]:
                continue
            record = json.loads(row["completion"])
            status, value, passed = judged.get((row["item_id"], row["epoch"]),
                                               ("unscored", None, None))
            scored = status == "scored" and value is not None
            samples.append(RunSample(
                item_id=row["item_id"], epoch=row["epoch"],
                messages=messages.get(row["item_id"], []), text=record.get("text") or "",
                score=float(value) if scored else None, passed=scored and bool(passed),
                item=data.get(row["item_id"], {}), record=record,
                tools=tools.get(row["item_id"]), status=status,
            ))
    return samples


def rows_from_run(store_path: str | Path, run_ref: str, only_passed: bool) -> list[dict[str, Any]]:
    """SFT rows ``{"prompt": messages, "completion": text}`` from a run's answers (only those
    the eval counts as passed with ``only_passed``). An answer that is tool calls keeps them
    (an assistant message with ``tool_calls``, the request's ``tools`` beside). The same
    (prompt, answer) twice (``--epochs``) is one row. What was written and left out, by
    reason, is one note on stderr."""
    rows = []
    seen: set[str] = set()
    left: Counter[str] = Counter()
    for sample in run_samples(store_path, run_ref):
        if only_passed and not sample.passed:
            left["scored and failed" if sample.status == "scored" else
                 f"{sample.status} (not graded as the model's own answer)"] += 1
            continue
        row = {"prompt": sample.messages, "completion": sample.text}
        calls = sample.record.get("tool_calls")
        if calls:
            row["completion"] = [{"role": "assistant", "content": sample.text or None,
                                  "tool_calls": calls}]
            if sample.tools:
                row["tools"] = sample.tools
        elif not sample.text.strip():
            left["an empty answer"] += 1
            continue
        key = json.dumps(row, sort_keys=True, default=str)
        if key in seen:
            left["the same prompt and answer again (another epoch)"] += 1
            continue
        seen.add(key)
        rows.append(row)
    _note_left_out(f"run {run_ref}", len(rows), "rows", left)
    if not rows:
        raise UserError(f"run {run_ref!r} has no {'passing ' if only_passed else ''}answers",
                        field="--from-run")
    return rows


def _note_left_out(source: str, kept: int, what: str, left: Counter[str],
                   unit: str = "") -> None:
    """One line on stderr: how many ``what`` ``source`` gave and what was left out, by reason
    (``unit``: what each count counts, "vote" -> "2 votes"; nothing when nothing was left)."""
    import sys

    def counted(count: int) -> str:
        return f"{count} {unit}{'s' if count != 1 else ''}" if unit else str(count)

    if left:
        print(f"posttrain: note: {source}: {kept} {what}; left out " + "; ".join(
            f"{counted(count)} ({reason})" for reason, count in sorted(left.items())),
            file=sys.stderr)


def pairs_from_run(store_path: str | Path, run_ref: str, min_margin: float = 1e-9,
                   ) -> list[dict[str, Any]]:
    """DPO pairs: per item, the best vs the worst graded answer (needs ``--epochs`` >= 2), by
    the eval's score. An answer that is tool calls is left out (a pair holds two texts: its
    calls would be an empty answer) and counted in the note on stderr."""
    by_item: dict[str, list[RunSample]] = {}
    left: Counter[str] = Counter()
    for sample in run_samples(store_path, run_ref):
        if sample.record.get("tool_calls"):
            left["answers that are tool calls (a DPO pair here holds text)"] += 1
        elif sample.score is not None:
            by_item.setdefault(sample.item_id, []).append(sample)
    pairs = []
    for group in by_item.values():
        best = max(group, key=lambda s: s.score or 0.0)
        worst = min(group, key=lambda s: s.score or 0.0)
        if (best.score or 0.0) - (worst.score or 0.0) >= min_margin and best.text != worst.text:
            pairs.append({"prompt": best.messages, "chosen": best.text, "rejected": worst.text})
    _note_left_out(f"run {run_ref}", len(pairs), "pairs", left)
    if not pairs:
        raise UserError(f"run {run_ref!r} gives no pairs: need items with answers of different "
                        "grades (run the eval with --epochs 2 or more and temperature > 0)",
                        field="--from-run")
    return pairs


def pairs_from_votes(store_path: str | Path) -> list[dict[str, Any]]:
    """DPO pairs from human side-by-side votes (winner ``a`` or ``b``; ties are skipped). A
    vote whose two answers are not to the same question (``runner.votes.vote_refusal``: runs of
    other evals or prompt variants, an item edited between the runs) is left out, and so is a
    vote whose answer is gone or whose two answers are the same text; how many of each, with
    the reason, is one note on stderr."""
    from posttrain.runner.store import Store
    from posttrain.runner.votes import run_of, vote_refusal

    if not Path(store_path).exists():
        raise UserError(f"store not found: {store_path}", field="--store")
    skipped: Counter[str] = Counter()
    with Store(store_path, reading=True) as store:
        votes = []
        runs: dict[str, Any] = {}
        for vote in store.votes():
            if vote["winner"] not in ("a", "b"):
                continue
            try:
                pair = [run_of(store, runs, r) for r in (vote["run_a"], vote["run_b"])]
            except KeyError:
                skipped["a run voted on is gone"] += 1
                continue
            reason = vote_refusal(store, pair[0], pair[1], vote["item_id"])
            if reason is not None:
                skipped["not the same question: " + reason.split(" (")[0]] += 1
                continue
            votes.append(vote)
    cache: dict[str, dict[tuple[str, int], RunSample]] = {}

    def sample(run_id: str, item_id: str, epoch: int) -> RunSample | None:
        if run_id not in cache:
            cache[run_id] = {(s.item_id, s.epoch): s for s in run_samples(store_path, run_id)}
        return cache[run_id].get((item_id, epoch))

    # every voter's vote on one pair of answers together: one pair per majority, none when
    # the voters split (a pair and its reverse would teach nothing, twice the same pair
    # would weigh it double)
    tally: dict[tuple[str, int, str, str], Counter[str]] = {}
    for vote in votes:
        a = sample(vote["run_a"], vote["item_id"], vote["epoch"])
        b = sample(vote["run_b"], vote["item_id"], vote["epoch"])
        if a is None or b is None:
            skipped["an answer voted on is gone"] += 1
            continue
        if a.record.get("tool_calls") or b.record.get("tool_calls"):
            skipped["an answer is tool calls (a DPO pair here holds text)"] += 1
            continue
        if a.text == b.text:
            skipped["the two answers are the same text"] += 1
            continue
        runs_key = sorted((vote["run_a"], vote["run_b"]))
        winner = vote["run_a"] if vote["winner"] == "a" else vote["run_b"]
        tally.setdefault((vote["item_id"], vote["epoch"], *runs_key), Counter())[winner] += 1
    pairs = []
    for (item_id, epoch, first, second), wins in tally.items():
        total = sum(wins.values())
        if wins[first] == wins[second]:
            skipped["the voters split evenly on the pair"] += total
            continue
        chosen_run, rejected_run = (first, second) if wins[first] > wins[second] else (second,
                                                                                     first)
        if total > 1:
            skipped["more votes on a pair already taken (one pair per majority)"] += total - 1
        chosen = sample(chosen_run, item_id, epoch)
        rejected = sample(rejected_run, item_id, epoch)
        assert chosen is not None and rejected is not None
        pairs.append({"prompt": chosen.messages, "chosen": chosen.text,
                      "rejected": rejected.text})
    _note_left_out("the store's votes", len(pairs), "pairs", skipped, unit="vote")
    if not pairs:
        raise UserError("no usable votes in the store (winner a or b on two answers)",
                        field="--from-votes")
    return pairs


# ---- steered trajectories (posttrain view: pause, correct, continue) --------------------------
@dataclass
class Steered:
    """The steered answers of a store: those whose corrected trajectory passed the eval's
    graders (training data), and the number skipped because it did not."""

    passed: list[RunSample]
    failed: int = 0

    def note(self) -> None:
        """One line on stderr for the skipped ones (nothing when none was)."""
        if self.failed:
            import sys

            print(f"posttrain: note: skipped {self.failed} steered sample"
                  f"{'s' if self.failed != 1 else ''} whose corrected trajectory failed the "
                  "eval's graders: only a steered trajectory that passed becomes training data",
                  file=sys.stderr)


def _steered(store_path: str | Path, run_ref: str | None) -> Steered:
    """The answers a reviewer steered, of one run or (None) of every run in the store; only
    those that passed every grader are kept (a correction that did not lead to a passing
    trajectory is not a demonstration to learn from)."""
    from posttrain.runner.store import Store

    if not Path(store_path).exists():
        raise UserError(f"store not found: {store_path}", field="--store")
    if run_ref is None:
        with Store(store_path, reading=True) as store:
            found = store.conn.execute(
                "SELECT DISTINCT run_id FROM steering WHERE action = 'resume' "
                "AND status = 'applied' ORDER BY run_id").fetchall()
        refs = [row[0] for row in found]
    else:
        refs = [run_ref]
    out = Steered([])
    for ref in refs:
        for sample in run_samples(store_path, ref, "--from-steering"):
            if not (sample.record.get("meta") or {}).get("steering"):
                continue
            if sample.passed:
                out.passed.append(sample)
            else:
                out.failed += 1
    return out


def _none_left(run_ref: str | None, steered: Steered, what: str) -> UserError:
    where = f" in run {run_ref!r}" if run_ref else ""
    if steered.failed:
        return UserError(f"no {what}{where}: {steered.failed} steered sample"
                         f"{'s' if steered.failed != 1 else ''} failed the eval's graders, and "
                         "only a steered trajectory that passed becomes training data",
                         field="--from-steering")
    return UserError(f"no {what}{where}: pause one in `posttrain view` while it runs, correct "
                     "it, continue", field="--from-steering")


def _rendered(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
              ) -> list[dict[str, Any]]:
    """Messages with string contents for ``train sft|dpo``: tool calls and results written as
    the ``hf:`` provider writes them for a chat template without tools."""
    from posttrain.models.hf import tools_in_messages

    if tools or any(m.get("tool_calls") or m.get("role") == "tool" for m in messages):
        messages = tools_in_messages(messages, tools or [])
    return [{"role": str(m.get("role")), "content": m.get("content")
             if isinstance(m.get("content"), str) else ""} for m in messages]


def rows_from_steering(store_path: str | Path, run_ref: str | None = None,
                       only_passed: bool = False) -> list[dict[str, Any]]:
    """SFT rows from steered trajectories that passed the eval's graders (a failed one gives
    none; how many were skipped is one note on stderr): one ``{"messages": [...]}`` row per
    assistant turn from the first correction on, its context the corrected conversation (the
    reviewer's edit and message included). Only the row's last turn is trained: every earlier
    assistant turn carries ``weight: 0`` (the OpenAI fine-tuning field; ``train sft`` trains
    the last turn alone anyway). ``only_passed`` is accepted for symmetry with ``--from-run``:
    steered rows are always the passing ones."""
    del only_passed
    steered = _steered(store_path, run_ref)
    rows = []
    for sample in steered.passed:
        transcript = sample.record.get("transcript") or []
        first = min(int(r["at"]) for r in sample.record["meta"]["steering"])
        for index in range(first, len(transcript)):
            if transcript[index].get("role") == "assistant":
                messages = _rendered(transcript[:index + 1], sample.tools)
                for message in messages[:-1]:
                    if message["role"] == "assistant":
                        message["weight"] = 0
                rows.append({"messages": messages})
    steered.note()
    if not rows:
        raise _none_left(run_ref, steered, "steered trajectories that passed")
    return rows


def pairs_from_steering(store_path: str | Path, run_ref: str | None = None
                        ) -> list[dict[str, Any]]:
    """DPO pairs from steered trajectories that passed the eval's graders, one per correction:
    the prompt is the corrected conversation, ``chosen`` the model's turn after the
    correction, ``rejected`` the turn it would have taken without it (its original
    continuation, generated but never executed). A trajectory that failed gives no pair (the
    correction is not known to be better); how many were skipped is one note on stderr."""
    steered = _steered(store_path, run_ref)
    pairs = []
    for sample in steered.passed:
        transcript = sample.record.get("transcript") or []
        for record in sample.record["meta"]["steering"]:
            at = int(record["at"])
            corrected = record.get("corrected")
            if corrected is None or at > len(transcript):
                continue
            chosen = _rendered(transcript[:at] + [corrected], sample.tools)
            rejected = _rendered(transcript[:at] + [record["original"]], sample.tools)
            if chosen[-1]["content"] == rejected[-1]["content"]:
                continue
            pairs.append({"prompt": chosen[:-1], "chosen": [chosen[-1]],
                          "rejected": [rejected[-1]]})
    steered.note()
    if not pairs:
        raise _none_left(run_ref, steered, "steered trajectories that passed and whose "
                                           "correction changed the model's next turn")
    return pairs

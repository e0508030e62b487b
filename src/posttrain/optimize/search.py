"""``optimize``: search prompt variants on a dev split, confirm the best on a held-out split.

The search (within ``budget`` candidates, each run on every dev item):

1. the current prompt (variant ``default``, as the user runs it: its own messages where the eval
   file sets ``variants.default``, else the eval's ``messages``) on the dev items;
2. structural rewrites of it (``candidates.REWRITES``), in a fixed order;
3. with a proposer model, every second candidate (each one once the rewrites are spent) is a
   reflective proposal: a parent is drawn from the Pareto set over tags
   on dev (a candidate stays in it while no other is at least as good on every tag and better
   on one, so one that fixes a single tag is not lost for being average overall), weighted by
   the tags it leads; the proposer reads up to four of the parent's failed samples with their
   graders' explanations and writes a revised prompt. Without a proposer, the rewrites not yet
   tried are applied to the best candidate so far.

Acceptance (held-out only, one test): the candidate with the best dev score, if it beats the
current prompt there, is run with the current prompt on the held-out items and compared paired
(``analysis.compare.compare_runs``: McNemar exact for pass/fail, sign-flip otherwise). It wins
only if it is significantly better overall at ``alpha`` and no tag and no grader component is
significantly worse (each checked at ``alpha``, uncorrected: more chances to block, never to
win). Selecting on dev and testing one finalist on unseen items keeps the chance of a false win
at most ``alpha`` however many candidates were tried.

Every run goes through the runner (store, cache, resume): a finished run with the same identity
is read back instead of run again, and an interrupted search resumes from the cache, so a budget
is spent once. Proposer calls are runs too (eval ``<name>:optimize-proposer``), stored and cached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.analysis.compare import compare_runs
from posttrain.analysis.results import RunResults, load_results, reusable_results
from posttrain.analysis.selection import item_groups, reference_of
from posttrain.errors import UserError
from posttrain.eval import DEFAULT_VARIANT, Eval, Variant
from posttrain.optimize.candidates import (
    Candidate,
    Example,
    Failure,
    Messages,
    parse_proposal,
    prompt_parts,
    reflection_messages,
    structural,
)
from posttrain.runner.executor import RunOptions, execute_eval, run_key
from posttrain.runner.progress import Progress
from posttrain.runner.store import Store
from posttrain.types import Item

ALL = "(all items)"


@dataclass
class Settings:
    budget: int = 8  # candidates tried (the current prompt not counted)
    holdout: float = 0.5  # share of items held out for the acceptance test
    seed: int = 0
    alpha: float = 0.05
    proposer_max_tokens: int = 512
    proposer_temperature: float = 0.7
    failures_shown: int = 4


@dataclass
class Spent:
    target: int = 0  # live requests to the model under test (retries included)
    proposer: int = 0  # live requests to the proposer
    runs: list[str] = field(default_factory=list)


def split_items(items: Sequence[Item], seed: int, holdout: float
                ) -> tuple[list[Item], list[Item]]:
    """(dev, held-out): an item is held out when a hash of (seed, its id) falls below
    ``holdout``, so its side never depends on the other items (``migrate`` recomputes it)."""
    def unit(item: Item) -> float:
        digest = hashlib.blake2b(f"{seed}:{item.id}".encode(), digest_size=8).hexdigest()
        return int(digest, 16) / 16 ** 16

    held = [item for item in items if unit(item) < holdout]
    dev = [item for item in items if unit(item) >= holdout]
    if not held or not dev:
        raise UserError(f"with {len(items)} items, --holdout {holdout:g} and --seed {seed} leave "
                        f"{len(dev)} dev and {len(held)} held-out items: both need some (use "
                        "more items, or another share)", field="--holdout")
    return dev, held


def current_prompt(eval_: Eval) -> Messages | None:
    """The prompt the user runs by default: the ``default`` variant's messages where the eval
    file sets them (its ``system`` in place of the template's system message), else the eval's
    ``messages``; None where the rows carry their own messages."""
    default = eval_.variants.get(DEFAULT_VARIANT) or Variant(DEFAULT_VARIANT)
    template = default.messages or eval_.messages
    if template is None:
        return None
    messages: Messages = [dict(message) for message in template]
    if default.system is not None:
        messages = [m for m in messages if m.get("role") not in ("system", "developer")]
        messages.insert(0, {"role": "system", "content": default.system})
    return messages


def _eval_with(eval_: Eval, items: Sequence[Item], name: str, messages: Messages | None,
               variant: Variant | None = None) -> Eval:
    """The eval on ``items`` with its own ``default`` variant (as the user runs it) and, unless
    ``name`` is the default, variant ``name``: ``variant``, or ``messages`` with the default's
    sampling (a candidate differs from the current prompt in its messages only)."""
    default = eval_.variants.get(DEFAULT_VARIANT) or Variant(DEFAULT_VARIANT)
    variants = {DEFAULT_VARIANT: default}
    if name != DEFAULT_VARIANT:
        variants[name] = variant or Variant(name, messages=messages,
                                            sampling=dict(default.sampling))
    return dataclasses.replace(eval_, items=list(items), variants=variants)


class Runs:
    """Runs candidates through the runner; reads a finished identical run back instead."""

    def __init__(self, eval_: Eval, model: Any, store: Store, options: RunOptions, *,
                 model_configs: dict[str, dict[str, Any]] | None = None, progress: bool = False,
                 spent: Spent) -> None:
        self.eval, self.model, self.store, self.options = eval_, model, store, options
        self.model_configs = model_configs or {}
        self.progress = progress
        self.spent = spent

    async def run(self, items: Sequence[Item], name: str, messages: Messages | None,
                  note: dict[str, Any], *, model: Any = None,
                  variant: Variant | None = None) -> RunResults:
        derived = _eval_with(self.eval, items, name, messages, variant)
        return await self._run(derived, model or self.model, name, note, "target")

    async def _run(self, derived: Eval, model: Any, variant: str, note: dict[str, Any],
                   who: str, options: RunOptions | None = None) -> RunResults:
        options = options or self.options
        key = run_key(derived, model.name, model.cache_id, variant, options)
        reused = reusable_results(self.store, key)
        if reused is not None:
            self.spent.runs.append(reused.run.id)
            return reused
        (handle,) = await execute_eval(
            derived, [model], [variant], self.store, options,
            progress=Progress(enabled=self.progress),
            model_configs={model.name: self.model_configs.get(model.name, {})})
        self.store.update_run_config(handle.run.id, {"optimize": note})
        setattr(self.spent, who, getattr(self.spent, who) + handle.counters.requests)
        self.spent.runs.append(handle.run.id)
        return load_results(self.store, handle.run)

    async def propose(self, proposer: Any, name: str, request: Messages,
                      settings: Settings) -> str:
        """One proposer call, as a one-item run of its own eval (stored and cached)."""
        item = Item(id=name, data={"messages": request})
        derived = Eval(name=f"{self.eval.name}:optimize-proposer", items=[item], graders=[],
                       sampling={"temperature": settings.proposer_temperature,
                                 "max_tokens": settings.proposer_max_tokens})
        options = dataclasses.replace(self.options, epochs=1, limit=None)
        results = await self._run(derived, proposer, DEFAULT_VARIANT,
                                  {"role": "proposer", "candidate": name}, "proposer", options)
        sample = results.samples[0] if results.samples else None
        if sample is None or sample.completion is None:
            raise _ProposalFailed(sample.error if sample is not None and sample.error
                                  else "the proposer gave no answer")
        return sample.output_text


async def checked_once(eval_: Eval, models: Sequence[Any], options: RunOptions) -> RunOptions:
    """Check every model and judge once, before the first request (one line on a problem);
    the runs after that skip the runner's own check."""
    from posttrain.runner.preflight import check_models, judge_models

    if options.preflight:
        await check_models([m for m in models if m is not None] + judge_models(eval_.graders))
    return dataclasses.replace(options, preflight=False)


class _ProposalFailed(Exception):
    pass


def dev_figures(results: RunResults) -> dict[str, Any]:
    scores = results.item_scores()
    by_tag = {}
    for tag, ids in item_groups([results]).items():
        values = [scores[i] for i in ids if i in scores]
        if values:
            by_tag[tag] = sum(values) / len(values)
    score = sum(scores.values()) / len(scores) if scores else 0.0
    failed = [s for s in results.samples if s.status == "error"]
    return {"score": score, "n": len(scores), "by_tag": by_tag or {ALL: score},
            "run": results.run.id, "errors": len(failed),
            "first_error": failed[0].reason if failed else None}


def pareto_set(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other is at least as good as on every tag and better on one (dev)."""
    tags = sorted({tag for c in candidates for tag in c.dev["by_tag"]})
    vectors = [[c.dev["by_tag"].get(tag, 0.0) for tag in tags] for c in candidates]
    front = []
    for i, candidate in enumerate(candidates):
        dominated = any(all(x >= y for x, y in zip(vectors[j], vectors[i], strict=True))
                        and vectors[j] != vectors[i] for j in range(len(candidates)) if j != i)
        if not dominated:
            front.append(candidate)
    # equal vectors: keep the first only
    unique: list[Candidate] = []
    for candidate in front:
        if not any(c.dev["by_tag"] == candidate.dev["by_tag"] for c in unique):
            unique.append(candidate)
    return unique


def _choose_parent(front: Sequence[Candidate], rng: random.Random) -> Candidate:
    tags = sorted({tag for c in front for tag in c.dev["by_tag"]})
    best = {tag: max(c.dev["by_tag"].get(tag, 0.0) for c in front) for tag in tags}
    weights = [1 + sum(1 for tag in tags if c.dev["by_tag"].get(tag, 0.0) >= best[tag])
               for c in front]
    return rng.choices(list(front), weights=weights, k=1)[0]


def _render_user(eval_: Eval, item: Item, messages: Messages | None) -> str:
    request = _eval_with(eval_, [item], "x", messages).request_for(item, "x")
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    return content if isinstance(content, str) else str(content)


def _example(eval_: Eval, results: RunResults, items: dict[str, Item]) -> Example | None:
    """A passing answer of the current prompt on dev (the shortest input), else a reference."""
    current = current_prompt(eval_)
    passing = []
    for sample in results.samples:
        item = items.get(sample.item_id)
        if item is not None and sample.value == 1.0 and sample.output_text.strip():
            passing.append((len(_render_user(eval_, item, current)), item.id, sample))
    if passing:
        _length, item_id, sample = min(passing)
        return Example(_render_user(eval_, items[item_id], current),
                       sample.output_text.strip())
    for item in items.values():
        reference = reference_of(item.data, eval_.grader_specs)
        if reference not in (None, ""):
            return Example(_render_user(eval_, item, current), str(reference))
    return None


def _failures(eval_: Eval, candidate: Candidate, results: RunResults, items: dict[str, Item],
              rng: random.Random, count: int) -> list[Failure]:
    failed = sorted((s for s in results.samples if s.value is None or s.value < 1.0),
                    key=lambda s: (s.item_id, s.epoch))
    chosen = rng.sample(failed, min(count, len(failed)))
    out = []
    for sample in chosen:
        item = items[sample.item_id]
        verdicts = [f"{name}: {score.explanation or score.status} (score {score.value})"
                    for name, score in sample.grades.items()]
        reference = reference_of(item.data, eval_.grader_specs)
        out.append(Failure(
            input=_render_user(eval_, item, candidate.messages),
            output=sample.output_text or f"[no answer: {sample.error or sample.reason}]",
            expected=None if reference is None else str(reference),
            verdict="; ".join(verdicts) or sample.reason or "failed"))
    return out


def _valid(eval_: Eval, messages: Messages) -> str:
    """'' when the prompt renders for every item, else why not."""
    probe = _eval_with(eval_, eval_.items, "probe", messages)
    for item in eval_.items:
        try:
            probe.request_for(item, "probe")
        except UserError as exc:
            return str(exc)
    return ""


async def search(eval_: Eval, model: Any, store: Store, options: RunOptions,
                 settings: Settings, *, proposer: Any = None, proposer_name: str | None = None,
                 model_configs: dict[str, dict[str, Any]] | None = None, progress: bool = False
                 ) -> dict[str, Any]:
    """Run the search and the acceptance test; the result as a JSON-ready dict."""
    current = current_prompt(eval_)
    if current is None:
        raise UserError("optimize rewrites the eval's `messages` template; this eval's rows "
                        "carry their own messages", file=eval_.source, field="messages")
    dev, held = split_items(eval_.items, settings.seed, settings.holdout)
    options = await checked_once(eval_, [model, proposer], options)
    spent = Spent()
    runs = Runs(eval_, model, store, options, model_configs=model_configs, progress=progress,
                spent=spent)
    dev_by_id = {item.id: item for item in dev}
    rng = random.Random(settings.seed)

    async def evaluate(candidate: Candidate) -> Candidate:
        results = await runs.run(dev, candidate.name, candidate.messages,
                                 {"split": "dev", "candidate": candidate.name,
                                  "kind": candidate.kind, "parent": candidate.parent})
        candidate.dev = dev_figures(results)
        candidate.dev["results"] = results
        return candidate

    baseline = await evaluate(Candidate(DEFAULT_VARIANT, current, "baseline"))
    tried: list[Candidate] = []
    skipped: list[dict[str, Any]] = []
    agentic = bool(eval_.tools) or eval_.solver is not None
    example = _example(eval_, baseline.dev["results"], dev_by_id)
    queue = [(name, messages, DEFAULT_VARIANT)
             for name, messages in structural(current, example=example, agentic=agentic)]
    seen = [current]
    step = 0
    while step < settings.budget:
        step += 1
        cname = f"c{step:02d}"
        made: tuple[str, Messages, str, str] | None = None  # kind, messages, parent, note
        # with a proposer, every second candidate is a reflective proposal
        reflect = proposer is not None and (step % 2 == 0 or not queue)
        if queue and not reflect:
            rewrite, messages, parent = queue.pop(0)
            made = (f"structural:{rewrite}", messages, parent, "")
        elif proposer is not None:
            pool = [baseline, *tried]
            parent_c = _choose_parent(pareto_set(pool), rng)
            request = reflection_messages(
                parent_c.messages,
                _failures(eval_, parent_c, parent_c.dev["results"], dev_by_id, rng,
                          settings.failures_shown), step)
            try:
                reply = await runs.propose(proposer, f"{cname}-reflect", request, settings)
            except _ProposalFailed as exc:
                skipped.append({"name": cname, "reason": f"proposer failed: {exc}"})
                continue
            revised, why = parse_proposal(reply, parent_c.messages)
            if revised is None:
                skipped.append({"name": cname, "reason": why})
                continue
            made = ("reflective", revised, parent_c.name, "")
        else:
            best = max([baseline, *tried], key=lambda c: c.dev["score"])
            if best is baseline:
                break  # no rewrite helped: nothing to build on
            by_name = {c.name: c for c in tried}
            used = {by_name[n].kind.split(":", 1)[-1] for n in _lineage(best, tried)
                    if n in by_name}
            chained = [(name, messages) for name, messages in
                       structural(best.messages, example=example, agentic=agentic)
                       if name not in used and messages not in seen]
            if not chained:
                break
            name, messages = chained[0]
            made = (f"structural:{name}", messages, best.name, "")
        kind, messages, parent, _note = made
        if messages in seen:
            skipped.append({"name": cname, "reason": "same prompt as an earlier candidate"})
            continue
        problem = _valid(eval_, messages)
        if problem:
            skipped.append({"name": cname, "reason": f"does not render: {problem}"})
            continue
        seen.append(messages)
        label = f"{cname}-{kind.split(':')[-1]}"
        tried.append(await evaluate(Candidate(label, messages, kind, parent)))

    front = {c.name for c in pareto_set([baseline, *tried])}
    finalist = max(tried, key=lambda c: c.dev["score"], default=None)
    outcome: dict[str, Any] = {"accepted": False, "finalist": None, "heldout": None,
                               "blockers": []}
    if finalist is None or finalist.dev["score"] <= baseline.dev["score"]:
        best_text = (f" (best: {finalist.name}, {finalist.dev['score'] - baseline.dev['score']:+.1%})"
                     if finalist is not None else "")
        outcome["verdict"] = ("the current prompt stands: no candidate beat it on the dev split"
                              + best_text)
    else:
        outcome["finalist"] = finalist.name
        base_held = await runs.run(held, DEFAULT_VARIANT, current,
                                   {"split": "heldout", "candidate": DEFAULT_VARIANT})
        cand_held = await runs.run(held, finalist.name, finalist.messages,
                                   {"split": "heldout", "candidate": finalist.name,
                                    "kind": finalist.kind, "parent": finalist.parent})
        comparison = compare_runs(base_held, cand_held, seed=settings.seed, alpha=settings.alpha)
        outcome.update(_accept(comparison, finalist.name, settings.alpha))
        outcome["heldout"] = {key: comparison[key] for key in
                              ("overall", "groups", "components", "n_common")}
        outcome["heldout"]["runs"] = {"baseline": base_held.run.id,
                                      "candidate": cand_held.run.id}
    lineage = _lineage(finalist, tried) if finalist is not None else []
    return {
        "eval": eval_.name, "eval_file": str(eval_.source) if eval_.source else None,
        "model": model.name, "proposer": proposer_name,
        "split": {"seed": settings.seed, "holdout": settings.holdout, "dev": len(dev),
                  "heldout": len(held)},
        "alpha": settings.alpha, "budget": settings.budget,
        "candidates": [_public(c, c.name in front) for c in [baseline, *tried]],
        "skipped": skipped, "lineage": lineage,
        "finalist_messages": finalist.messages if finalist is not None else None,
        "finalist_kind": finalist.kind if finalist is not None else None,
        "requests": {"target": spent.target, "proposer": spent.proposer,
                     "total": spent.target + spent.proposer},
        "runs": spent.runs, **outcome,
    }


def _lineage(candidate: Candidate | None, tried: Sequence[Candidate]) -> list[str]:
    """The candidate's ancestors, oldest first, ending with itself."""
    by_name = {c.name: c for c in tried}
    chain: list[str] = []
    while candidate is not None:
        chain.insert(0, candidate.name)
        parent = candidate.parent
        candidate = by_name.get(parent) if parent else None
        if candidate is None and parent:
            chain.insert(0, parent)
    return chain


def _public(candidate: Candidate, pareto: bool) -> dict[str, Any]:
    system, user = prompt_parts(candidate.messages)
    return {"name": candidate.name, "kind": candidate.kind, "parent": candidate.parent,
            "dev_score": candidate.dev["score"], "dev_n": candidate.dev["n"],
            "dev_by_tag": candidate.dev["by_tag"], "run": candidate.dev["run"],
            "errors": candidate.dev["errors"], "first_error": candidate.dev["first_error"],
            "pareto": pareto, "system": system, "user": user}


def _accept(comparison: dict[str, Any], name: str, alpha: float) -> dict[str, Any]:
    overall = comparison["overall"]
    blockers = []
    for kind, rows in (("tag", comparison["groups"]), ("component", comparison["components"])):
        for row in rows:
            if row["significant"] and (row["diff"] or 0.0) < 0:
                blockers.append({"kind": kind, "name": row.get("group") or row.get("component"),
                                 "diff": row["diff"], "ci": [row["ci_low"], row["ci_high"]],
                                 "p_value": row["p_value"]})
    better = overall["significant"] and (overall["diff"] or 0.0) > 0
    figures = (f"{overall['diff']:+.1%} [{overall['ci_low']:+.1%}, {overall['ci_high']:+.1%}] "
               f"on {overall['n']} held-out items, {overall['test']} p = {overall['p_value']:.2g}"
               if overall["diff"] is not None else "no held-out items")
    if better and not blockers:
        verdict = f"{name} wins: {figures}; no tag or grader component significantly worse"
    elif better:
        worst = blockers[0]
        verdict = (f"the current prompt stands: {name} is {figures}, but significantly worse on "
                   f"{worst['kind']} {worst['name']!r} ({worst['diff']:+.1%}, "
                   f"p = {worst['p_value']:.2g})")
    else:
        verdict = (f"the current prompt stands: the best candidate {name} is {figures} "
                   f"(not significantly better at alpha {alpha:g})")
    return {"accepted": better and not blockers, "blockers": blockers, "verdict": verdict}


def optimize(eval_: Eval, model: Any, store: Store, options: RunOptions, settings: Settings,
             **kwargs: Any) -> dict[str, Any]:
    """Synchronous :func:`search`."""
    return asyncio.run(search(eval_, model, store, options, settings, **kwargs))

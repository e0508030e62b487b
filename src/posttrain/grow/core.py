"""``grow``: generate, deduplicate and verify new items for an eval.

The steps, each counted in the result's ``funnel`` (asked, no answer (the generator's request
failed after its retries), too long (a reply far over ``max_tokens``), unparseable, does not
render, near duplicate, errors (the solvers or the judge gave no answer), unverified, added,
per kind):

1. **seeds**: ``n`` items drawn with ``seed`` (every item when there are fewer); ``paraphrase``
   asks ``cousins`` rewrites of each, ``harder`` one variant of each; ``new`` asks ``n`` items
   spread over the *thin* tags (those with fewer items than the median tag; every tag when all
   are equal; untagged, the eval as a whole), each request showing up to three items of the tag.
2. **generation**: every request is one item of a run of the eval ``<name>:grow-generator`` on
   the generator model (runner: stored, cached, resumable); replies are parsed
   (``prompts.parse_reply``) and must render as the eval's requests do. A paraphrase of a
   one-text-field prompt may come as plain text (``prompts.plain_paraphrase``); a paraphrase
   that repeats its seed is counted as a duplicate, one that gives the answer away as
   unparseable.
3. **near duplicates** (before any verification request): the rendered prompts of the original
   items, then the new ones, through ``posttrain.usage.dedup.dedup`` (MinHash + exact Jaccard
   over word 3-shingles, ``dedup_threshold``); a new item that duplicates an original item or an
   earlier new one is dropped. With ``solvers`` verification, short prompts with the same
   reference are also compared by character 3-grams (``_drop_short_twins``).
4. **verification**, by ``method``:

   - ``programmatic``: the generator's ``reference_answer`` is graded by the eval's own graders
     on the new item (``runner.executor.grade_all``); verified when every grader scores it and
     it passes. ``auto`` picks it when every grader checks an answer against the item's
     constraints rather than against a stored answer (``CHECKING_TYPES``: JSON schema, code
     tests, the suites' instruction, structured-output and code-edit checks, regex).
   - ``solvers``: each solver model answers the new items as the eval asks them (a run of the
     derived eval ``<name>:grow-verify`` per solver, graded by the eval's graders against the
     generated reference); verified when at least ``agree`` solvers pass (default: all), and
     then the judge (default: the first solver) says YES to "is this reference correct for
     this prompt?" (a run of ``<name>:grow-judge``).

   Failures are dropped and counted with their reason.

A variant's ``provenance.seed`` is the true original (``root_seed``: through the
provenance of items grown before), with ``parent`` the item it was written from when that
differs. Solvers are counted once each (``distinct_solvers``).

Errors: ``UserError`` (exit 2, one line) for ``programmatic`` verification where a grader
compares answers with item fields the generator writes, for a kind the eval cannot serve (``new`` without
tags is allowed; ``paraphrase`` needs a prompt field to rewrite), ``solvers`` verification
without solvers, or an eval with no items.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.analysis.results import RunResults, combine, load_results, reusable_results
from posttrain.analysis.selection import sample_passed
from posttrain.errors import UserError
from posttrain.eval import DEFAULT_VARIANT, Eval
from posttrain.grow.prompts import (
    KINDS,
    REPEATS,
    Roles,
    field_roles,
    generator_messages,
    judge_messages,
    judge_verdict,
    parse_reply,
    user_text,
)
from posttrain.runner.executor import RunOptions, execute_eval, grade_all, run_key
from posttrain.runner.progress import Progress
from posttrain.runner.store import Store
from posttrain.types import Completion, Item

#: grader types that check an answer against the item's constraints (tests, a schema,
#: instructions) rather than compare it with a stored answer: grading the generator's own
#: reference answer with them is a real check
CHECKING_TYPES = frozenset({"json_schema", "code_exec", "structured_output", "ifeval",
                            "dev_instructions", "code_edit", "regex"})
METHODS = ("auto", "programmatic", "solvers")
#: a generator reply longer than this many characters per token of ``max_tokens`` is dropped
#: (``too long``): about twice the budget, so the endpoint ignored the limit
CHARS_PER_TOKEN_LIMIT = 8
#: prompts of at most this many words are also compared by characters (``_drop_short_twins``)
SHORT_WORDS = 24


@dataclass
class Settings:
    n: int = 10  # seed items for paraphrase/harder; new items asked
    kinds: tuple[str, ...] = KINDS
    cousins: int = 2  # paraphrases asked per seed item
    seed: int = 0
    method: str = "auto"
    agree: int | None = None  # solvers that must pass (default: all)
    dedup_threshold: float = 0.8
    temperature: float = 0.8
    max_tokens: int = 512
    id_field: str = "id"  # the eval file's `id_field`


@dataclass
class Candidate:
    """One generated item on its way through the funnel."""

    kind: str
    seed: str  # the seed item's id ('' for a new item)
    request_id: str
    data: dict[str, Any] | None = None
    reference_answer: str | None = None
    dropped: str = ""  # why it was dropped ('' while it stands)
    verification: dict[str, Any] = field(default_factory=dict)
    item: Item | None = None


@dataclass
class Spent:
    generator: int = 0
    solvers: int = 0
    judge: int = 0
    runs: list[str] = field(default_factory=list)


def verification_method(eval_: Eval, method: str) -> str:
    """``programmatic`` or ``solvers`` for ``method`` (``auto`` decided from the graders)."""
    if method not in METHODS:
        raise UserError(f"must be one of {', '.join(METHODS)}; got {method!r}", field="--verify")
    leaves = [g for top in eval_.graders for g in top.walk() if not g.children()]
    trusting = [g for g in leaves if g.type not in CHECKING_TYPES]
    if method == "programmatic" and (trusting or not leaves):
        if not leaves:
            raise UserError("the eval has no graders to check the generator's reference "
                            "answer with: use --verify solvers --solvers SPEC,SPEC",
                            field="--verify")
        grader = trusting[0]
        fields = field_roles(eval_).reference
        what = (f"compares the answer with the item's {', '.join(fields)}, which the generator "
                "writes itself, so its reference answer always passes" if fields else
                "does not check an answer on its own (schema, code tests, suite checks)")
        raise UserError(f"programmatic would trust the generator: grader {grader.name!r} "
                        f"({grader.type}) {what}; use --verify solvers --solvers SPEC,SPEC",
                        field="--verify")
    if method != "auto":
        return method
    return "programmatic" if leaves and not trusting else "solvers"


def root_seed(items: dict[str, Item], item_id: str) -> str:
    """The original item ``item_id`` is a rewording of: its provenance followed back while it
    is a ``paraphrase`` of an item of the eval (a cousin of a cousin chains back to the true
    seed, so reliability@k groups it with the original phrasing and its other cousins)."""
    seen = {item_id}
    current = item_id
    while True:
        item = items.get(current)
        provenance = item.data.get("provenance") if item is not None else None
        if not isinstance(provenance, dict) or provenance.get("kind") != "paraphrase":
            return current
        parent = provenance.get("seed")
        if parent is None or str(parent) not in items or str(parent) in seen:
            return current
        current = str(parent)
        seen.add(current)


def distinct_solvers(solvers: Sequence[Any], names: Sequence[str]
                     ) -> tuple[list[Any], list[str]]:
    """The solvers with each named once (a solver listed twice would vote twice, so two
    listings of one model would pass as the agreement of two)."""
    names = list(names) or [str(getattr(s, "name", index)) for index, s in enumerate(solvers)]
    kept: dict[str, Any] = {}
    for solver, name in zip(solvers, names, strict=True):
        kept.setdefault(name, solver)
    return list(kept.values()), list(kept)


def thin_tags(items: Sequence[Item]) -> list[str]:
    """Tags with fewer items than the median tag (every tag when none is thinner)."""
    counts = Counter(tag for item in items for tag in item.tags)
    if not counts:
        return []
    median = statistics.median(counts.values())
    thin = sorted((t for t, c in counts.items() if c < median), key=lambda t: (counts[t], t))
    return thin or sorted(counts, key=lambda t: (counts[t], t))


class _Calls:
    """Model calls as runs through the runner: stored, cached, resumed."""

    def __init__(self, eval_: Eval, store: Store, options: RunOptions, spent: Spent,
                 progress: bool) -> None:
        self.eval, self.store, self.options, self.spent = eval_, store, options, spent
        self.progress = progress
        self.errors: dict[str, str] = {}

    async def run(self, derived: Eval, model: Any, who: str, note: dict[str, Any]
                  ) -> RunResults:
        options = dataclasses.replace(self.options, epochs=1, limit=None)
        key = run_key(derived, model.name, model.cache_id, DEFAULT_VARIANT, options)
        reused = reusable_results(self.store, key)
        if reused is not None:
            self.spent.runs.append(reused.run.id)
            return reused
        (handle,) = await execute_eval(derived, [model], [DEFAULT_VARIANT], self.store, options,
                                       progress=Progress(enabled=self.progress))
        self.store.update_run_config(handle.run.id, {"grow": note})
        setattr(self.spent, who, getattr(self.spent, who) + handle.counters.requests)
        self.spent.runs.append(handle.run.id)
        return load_results(self.store, handle.run)

    async def chat(self, model: Any, suffix: str, requests: dict[str, list[dict[str, Any]]],
                   sampling: dict[str, Any], who: str) -> dict[str, str | None]:
        """One run of ``<eval>:<suffix>`` whose items are ``requests`` (id -> messages):
        id -> reply text (None where the model gave no answer; why is in ``self.errors``)."""
        if not requests:
            return {}
        items = [Item(id=rid, data={"messages": messages}) for rid, messages in requests.items()]
        derived = Eval(name=f"{self.eval.name}:{suffix}", items=items, graders=[],
                       sampling=sampling)
        results = await self.run(derived, model, who, {"role": who})
        out: dict[str, str | None] = {rid: None for rid in requests}
        for sample in results.samples:
            if sample.completion is not None:
                out[sample.item_id] = sample.output_text
            else:
                self.errors[sample.item_id] = sample.error or sample.reason or "no answer"
        return out


def _render(eval_: Eval, item: Item) -> str:
    return user_text(eval_.request_for(item, DEFAULT_VARIANT))


def _requests(eval_: Eval, roles: Roles, settings: Settings, method: str, rng: random.Random
              ) -> tuple[list[Candidate], dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """(candidates, request id -> messages, request id -> tag values of a ``new`` item)."""
    items = list(eval_.items)
    position = {item.id: index for index, item in enumerate(items)}
    seeds = items if len(items) <= settings.n else sorted(
        rng.sample(items, settings.n), key=lambda i: position[i.id])
    programmatic = method == "programmatic"
    candidates: list[Candidate] = []
    requests: dict[str, list[dict[str, Any]]] = {}
    tag_values: dict[str, Any] = {}
    common = {"eval_name": eval_.name, "description": eval_.description, "roles": roles,
              "reference_answer": programmatic}
    for kind in settings.kinds:
        if kind in ("paraphrase", "harder"):
            per_seed = settings.cousins if kind == "paraphrase" else 1
            for seed in seeds:
                for number in range(1, per_seed + 1):
                    rid = f"{kind}:{seed.id}:{number}"
                    requests[rid] = generator_messages(
                        kind, seeds=[(seed.data, _render(eval_, seed))], number=number,
                        of=per_seed, **common)
                    candidates.append(Candidate(kind, seed.id, rid))
        elif kind == "new":
            tags = thin_tags(items)
            for number in range(1, settings.n + 1):
                tag = tags[(number - 1) % len(tags)] if tags else None
                pool = [i for i in items if tag is None or tag in i.tags]
                shown = sorted(rng.sample(pool, min(3, len(pool))), key=lambda i: position[i.id])
                rid = f"new:{tag or '*'}:{number}"
                requests[rid] = generator_messages(
                    "new", seeds=[(i.data, _render(eval_, i)) for i in shown], number=number,
                    of=settings.n, tag=tag, **common)
                candidates.append(Candidate("new", shown[0].id if shown else "", rid))
                tag_values[rid] = _tag_fields(eval_, roles, tag, shown)
    return candidates, requests, tag_values


def _tag_fields(eval_: Eval, roles: Roles, tag: str | None, shown: Sequence[Item]
                ) -> dict[str, Any]:
    """The tag fields a new item for ``tag`` gets: the value of the example that has it."""
    values: dict[str, Any] = {}
    for name in roles.tags:
        for item in shown:
            value = item.data.get(name)
            if value == tag or (isinstance(value, list) and tag in value):
                values[name] = value
                break
    return values


def _new_id(candidate: Candidate, taken: set[str]) -> str:
    where, number = candidate.request_id.split(":", 1)[1].rsplit(":", 1)  # ids may hold ':'
    letter = {"paraphrase": "p", "harder": "h", "new": "n"}[candidate.kind]
    base = f"{where}~{letter}{number}" if candidate.kind != "new" else f"new~{where}~{number}"
    out, extra = base, 2
    while out in taken:
        out, extra = f"{base}-{extra}", extra + 1
    taken.add(out)
    return out


async def grow(eval_: Eval, generator: Any, store: Store, options: RunOptions,
               settings: Settings, *, generator_name: str, solvers: Sequence[Any] = (),
               solver_names: Sequence[str] = (), judge: Any = None, judge_name: str | None = None,
               progress: bool = False) -> dict[str, Any]:
    """Generate, deduplicate and verify; the result as a JSON-ready dict whose ``added`` holds
    the new rows (each with ``provenance``) in the order written, and ``dropped`` every request
that gave no item, with its reason and the parsed row where there was one (``item``, else
None). Nothing is written here."""
    from posttrain.usage.dedup import dedup

    unknown = [k for k in settings.kinds if k not in KINDS]
    if unknown or not settings.kinds:
        raise UserError(f"kinds are {', '.join(KINDS)}; got {','.join(settings.kinds) or '(none)'}",
                        field="--kinds")
    method = verification_method(eval_, settings.method)
    roles = field_roles(eval_)
    if not roles.input:
        raise UserError("the eval's prompt reads no item field, so there is nothing to rewrite",
                        file=eval_.source, field="messages")
    if method == "solvers" and not solvers:
        raise UserError("this eval's graders compare answers with the item's reference ("
                        + ", ".join(sorted({g.type for g in eval_.graders}))
                        + "), so generated references are verified by solver models: pass "
                          "--solvers SPEC,SPEC (or --verify programmatic if the graders check "
                          "answers on their own)", field="--solvers")
    solvers, solver_names = distinct_solvers(solvers, solver_names)
    agree = settings.agree if settings.agree is not None else len(solvers)
    if method == "solvers" and not 1 <= agree <= len(solvers):
        raise UserError(f"must be between 1 and the number of solvers ({len(solvers)}); got "
                        f"{agree}", field="--agree")
    judge = judge if judge is not None else (solvers[0] if solvers else None)
    judge_name = judge_name or (solver_names[0] if solver_names else None)

    from posttrain.optimize.search import checked_once

    options = await checked_once(eval_, [generator, *solvers, judge], options)
    spent = Spent()
    calls = _Calls(eval_, store, options, spent, progress)
    rng = random.Random(settings.seed)
    candidates, requests, tag_values = _requests(eval_, roles, settings, method, rng)
    replies = await calls.chat(generator, "grow-generator", requests,
                               {"temperature": settings.temperature,
                                "max_tokens": settings.max_tokens}, "generator")
    by_id = {item.id: item for item in eval_.items}
    taken = set(by_id)
    for candidate in candidates:
        text = replies.get(candidate.request_id)
        if text is None:
            candidate.dropped = ("no answer: the generator failed: "
                                 + calls.errors.get(candidate.request_id, "no answer"))
            continue
        if len(text) > settings.max_tokens * CHARS_PER_TOKEN_LIMIT:
            candidate.dropped = (f"too long: the reply is {len(text):,} characters, far over "
                                 f"the generator's budget of {settings.max_tokens} tokens "
                                 "(--max-tokens)")
            continue
        seed_data = by_id[candidate.seed].data if candidate.seed else {}
        data, answer, why = parse_reply(
            text, candidate.kind, seed_data, roles,
            tag_values=tag_values.get(candidate.request_id),
            reference_answer=method == "programmatic")
        if data is None:
            candidate.dropped = (f"duplicate: exact duplicate of {candidate.seed} ({why} word "
                                 "for word)" if why == REPEATS else f"unparseable: {why}")
            continue
        id_field = settings.id_field
        new_id = _new_id(candidate, taken)
        data = {id_field: new_id, **{k: v for k, v in data.items() if k != id_field}}
        item = Item(id=new_id, data=data, tags=_tags(eval_, data))
        try:
            _render(eval_, item)
        except UserError as exc:
            candidate.dropped = f"does not render: {exc}"
            continue
        candidate.data, candidate.reference_answer, candidate.item = data, answer, item

    standing = [c for c in candidates if not c.dropped]
    texts = [_render(eval_, item) for item in eval_.items] + \
        [_render(eval_, c.item) for c in standing if c.item is not None]
    result = dedup(texts, threshold=settings.dedup_threshold, seed=settings.seed)
    originals = len(eval_.items)
    for index, (other, how) in result.dropped.items():
        if index < originals:
            continue  # a duplicate among the original items is not ours to drop
        twin = eval_.items[other].id if other < originals else \
            standing[other - originals].item.id  # type: ignore[union-attr]
        standing[index - originals].dropped = f"duplicate: {how} duplicate of {twin}"
    standing = [c for c in standing if not c.dropped]
    if method == "solvers":  # where the reference fields are the answer
        _drop_short_twins(eval_, roles, standing, settings.dedup_threshold)
        standing = [c for c in standing if not c.dropped]

    if method == "programmatic":
        await _verify_programmatic(eval_, standing)
    else:
        await _verify_solvers(eval_, standing, calls, solvers, list(solver_names), agree,
                              judge, judge_name)

    added = []
    for candidate in candidates:
        if candidate.dropped or candidate.item is None:
            continue
        # a variant of a grown item names the true original as its seed, and the item it was
        # written from as its parent
        seed = root_seed(by_id, candidate.seed) if candidate.seed else None
        provenance = {"seed": seed, "kind": candidate.kind,
                      "generator": generator_name, "verification": candidate.verification}
        if seed is not None and seed != candidate.seed:
            provenance["parent"] = candidate.seed
        if candidate.kind == "new":
            provenance["examples_from"] = candidate.seed or None
            provenance["seed"] = None
            provenance.pop("parent", None)
        added.append({**candidate.item.data, "provenance": provenance})
    return {"eval": eval_.name, "generator": generator_name, "method": method,
            "solvers": list(solver_names), "agree": agree if method == "solvers" else None,
            "judge": judge_name if method == "solvers" else None,
            "kinds": list(settings.kinds), "n": settings.n, "cousins": settings.cousins,
            "seed": settings.seed, "roles": dataclasses.asdict(roles),
            "thin_tags": thin_tags(eval_.items) if "new" in settings.kinds else [],
            "funnel": _funnel(candidates, settings.kinds),
            "dropped": [{"request": c.request_id, "kind": c.kind, "seed": c.seed,
                         "reason": c.dropped, "item": c.data} for c in candidates if c.dropped],
            "added": added,
            "requests": {"generator": spent.generator, "solvers": spent.solvers,
                         "judge": spent.judge},
            "runs": spent.runs}


def _char_grams(text: str) -> set[str]:
    from posttrain.usage.dedup import words_only

    text = words_only(text)
    return {text[i:i + 3] for i in range(len(text) - 2)} or {text}


def _drop_short_twins(eval_: Eval, roles: Roles, standing: Sequence[Candidate],
                      threshold: float) -> None:
    """Near duplicates among short prompts, which word 3-shingles miss ("Capital of France, in
    one word? #143" and "... #144" share no 3-shingle past the number): prompts of at most
    ``SHORT_WORDS`` words with the same reference are compared by character 3-grams (Jaccard
    at ``threshold``). Only with the same reference answer (``solvers`` verification, where the
    reference fields are the answer, not constraints such as a schema): "What is 12 + 37?" and
    "What is 12 + 38?" are near-identical texts but different items."""
    from posttrain.usage.dedup import jaccard, words_only

    if not roles.reference:
        return

    def short(text: str) -> bool:
        return len(words_only(text).split()) <= SHORT_WORDS

    def key(data: dict[str, Any]) -> str:
        return json.dumps([data.get(name) for name in roles.reference], sort_keys=True,
                          default=str)

    kept: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for item in eval_.items:
        text = _render(eval_, item)
        if short(text):
            kept[key(item.data)].append((item.id, _char_grams(text)))
    for candidate in standing:
        assert candidate.item is not None
        text = _render(eval_, candidate.item)
        if not short(text):
            continue
        grams = _char_grams(text)
        group = kept[key(candidate.item.data)]
        twin = next((other for other, seen in group if jaccard(grams, seen) >= threshold), None)
        if twin is not None:
            candidate.dropped = f"duplicate: near (character 3-grams) duplicate of {twin}"
            continue
        group.append((candidate.item.id, grams))


def _tags(eval_: Eval, data: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for name in eval_.tag_fields:
        value = data.get(name)
        if isinstance(value, list):
            tags.extend(str(v) for v in value)
        elif value is not None:
            tags.append(str(value))
    return tags


def _funnel(candidates: Sequence[Candidate], kinds: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind in kinds:
        mine = [c for c in candidates if c.kind == kind]
        reasons = Counter(c.dropped.split(":", 1)[0] for c in mine if c.dropped)
        out[kind] = {"asked": len(mine), "no_answer": reasons["no answer"],
                     "too_long": reasons["too long"], "unparseable": reasons["unparseable"],
                     "does_not_render": reasons["does not render"],
                     "duplicate": reasons["duplicate"], "errors": reasons["error"],
                     "unverified": reasons["unverified"],
                     "added": sum(1 for c in mine if not c.dropped)}
    return out


async def _verify_programmatic(eval_: Eval, standing: Sequence[Candidate]) -> None:
    names = [g.name for g in eval_.graders]
    for candidate in standing:
        assert candidate.item is not None and candidate.reference_answer is not None
        request = eval_.request_for(candidate.item, DEFAULT_VARIANT)
        sample = eval_.sample_of(Completion(text=candidate.reference_answer), request)
        scores = await grade_all(eval_.graders, sample, candidate.item.data)
        grades = {name: score for name, score in zip(names, scores, strict=True)}
        status, value, passed, reason = combine(grades, eval_.primary, names)
        candidate.verification = {
            "method": "programmatic", "graders": {n: {"value": s.value, "passed": s.passed}
                                                  for n, s in grades.items()},
            "reference_answer": candidate.reference_answer}
        if status != "scored" or not passed:
            why = reason or "; ".join(f"{n}: {s.explanation}" for n, s in grades.items()
                                      if not s.passed) or f"score {value}"
            candidate.dropped = f"unverified: the eval's graders reject the reference answer " \
                                f"({why})"


async def _verify_solvers(eval_: Eval, standing: Sequence[Candidate], calls: _Calls,
                          solvers: Sequence[Any], names: list[str], agree: int, judge: Any,
                          judge_name: str | None) -> None:
    if not standing:
        return
    items = [c.item for c in standing if c.item is not None]
    derived = dataclasses.replace(eval_, name=f"{eval_.name}:grow-verify", items=items)
    passes: dict[str, dict[str, bool]] = defaultdict(dict)
    failed: dict[str, dict[str, str]] = defaultdict(dict)  # item -> solver -> its error
    for solver, name in zip(solvers, names, strict=True):
        results = await calls.run(derived, solver, "solvers", {"role": "solver"})
        by_item = results.by_item()
        for item in items:
            samples = by_item.get(item.id, [])
            errors = [s.error or s.reason or "no answer" for s in samples
                      if s.completion is None]
            if errors or not samples:
                failed[item.id][name] = errors[0] if errors else "no answer"
            passes[item.id][name] = bool(samples) and all(sample_passed(s) for s in samples)
    roles = field_roles(eval_)
    to_judge: dict[str, list[dict[str, Any]]] = {}
    for candidate in standing:
        assert candidate.item is not None
        votes = passes[candidate.item.id]
        count = sum(votes.values())
        candidate.verification = {"method": "solvers", "solvers": votes,
                                  "agree": f"{count}/{len(solvers)}", "needed": agree}
        errors = failed.get(candidate.item.id, {})
        if errors:
            candidate.verification["errors"] = errors
        if count < agree and count + len(errors) >= agree:
            # the requests failed, not the reference: not verified either way
            first = next(iter(errors.items()))
            candidate.dropped = (f"error: {len(errors)} of {len(solvers)} solvers gave no "
                                 f"answer ({first[0]}: {first[1]}), so it could not be "
                                 "verified")
            continue
        if count < agree:
            candidate.dropped = (f"unverified: {count} of {len(solvers)} solvers reached the "
                                 f"generated reference (needed {agree})")
            continue
        reference = {k: candidate.item.data.get(k) for k in roles.reference}
        to_judge[candidate.item.id] = judge_messages(_render(eval_, candidate.item), reference)
    verdicts = await calls.chat(judge, "grow-judge", to_judge,
                                {"temperature": 0, "max_tokens": 64}, "judge")
    for candidate in standing:
        if candidate.dropped or candidate.item is None:
            continue
        text = verdicts.get(candidate.item.id)
        if text is None:
            candidate.dropped = ("error: the judge gave no answer: "
                                 + calls.errors.get(candidate.item.id, "no answer"))
            continue
        verdict = judge_verdict(text)
        candidate.verification["judge"] = {"model": judge_name,
                                           "verdict": {True: "yes", False: "no"}.get(
                                               verdict, "unclear"),  # type: ignore[arg-type]
                                           "reply": (text or "")[:200]}
        if verdict is not True:
            candidate.dropped = ("unverified: the judge said no" if verdict is False else
                                 "unverified: the judge's reply has no YES or NO")

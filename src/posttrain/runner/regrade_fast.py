"""Re-grading a run whose graders all run in this process and never wait (``string_check``,
``string_match``, text similarity: no judge, no sandbox), at bulk speed.

The same grades as grading answer by answer (``posttrain.runner.regrade``), from fewer and
larger steps:

- the answers are read with one query (only the columns grading needs), the run's stored items
  with another, and an item is compared with its stored copy as JSON text first (parsed only
  when the texts differ);
- each answer is graded by the same graders in the same order (``grade_sync``: what
  ``grade_all`` does for synchronous graders, without the event loop); the request is rendered
  only when the eval has a ``response_format`` (the one thing of it a grader's sample reads);
- the new grades are compared with the stored ones and only those that differ are written, all
  in one transaction (``Store.bulk_grades``: the run's revision bumped once, not a trigger per
  row), with the old value of every grade that changes (its value, verdict or status) kept in
  ``score_history``, as ``Store.replace_scores_many`` does;
- the run's kept facts are patched for the answers whose figures changed
  (``posttrain.runner.facts_patch``) instead of being built again by the next reader.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from posttrain.eval import Eval
from posttrain.graders.base import Grader
from posttrain.runner import regrade_split
from posttrain.runner.executor import grade_sync
from posttrain.runner.progress import Counters
from posttrain.runner.store import RunInfo, Store
from posttrain.types import Completion, Item, Score

#: a grade as the store keeps it: grader, value, passed, status, explanation, sub_scores JSON,
#: cost, requests, confinement, retries
Row = tuple[Any, ...]
#: the columns of a grade that the kept facts read (grader, value, passed, status, sub_scores,
#: cost, requests, retries): a grade that differs only in its explanation or confinement leaves
#: the facts as they are
_FACTS = itemgetter(0, 1, 2, 3, 5, 6, 7, 9)
#: the columns of a grade that ``score_history`` keeps (grader, value, passed, status): a grade
#: rewritten only for its explanation or confinement keeps no history row
_GRADE = itemgetter(0, 1, 2, 3)


def in_process(graders: Sequence[Grader]) -> bool:
    """Whether every grader (and every grader inside one) grades in this process without
    waiting: not a judge (async), not a sandbox or other blocking grader."""
    return all(not grader.is_async and not getattr(grader, "blocking", False)
               for top in graders for grader in top.walk())


def _row(score: Score) -> Row:
    sub_scores = score.sub_scores
    return (score.name, score.value, None if score.passed is None else int(score.passed),
            score.status, score.explanation,
            "{}" if type(sub_scores) is dict and not sub_scores else
            orjson.dumps(sub_scores).decode(),
            score.cost_usd, score.requests, score.confinement, score.retries)


def _counts(row: Row) -> int:
    """1 when a grade counts for its component (scored, with a value that is not NaN, which
    the store keeps as NULL), else 0."""
    value = row[1]
    return int(row[3] == "scored" and value is not None and value == value)


def _scored(rows: list[Row]) -> Iterator[str]:
    """The graders of ``rows`` whose grades count for their components (:func:`_counts`)."""
    return (row[0] for row in rows if _counts(row))


def _differs(text: str | None, value: Any) -> bool:
    """Whether a stored JSON text is not ``value`` (compared as text first, parsed only when
    the texts differ or ``value`` holds what JSON cannot). Types and key order count: ``1`` is
    not ``1.0`` nor ``true``, ``{"x": 1, "y": 2}`` not ``{"y": 2, "x": 1}`` (a template renders
    each differently, so a grade may differ)."""
    if text is None:
        return True
    try:
        if orjson.dumps(value).decode() == text:
            return False
    except TypeError:
        pass
    return not same_json(orjson.loads(text), value)


def same_json(a: Any, b: Any) -> bool:
    """``a == b`` where Python's equality is too loose for a grader's input: the same types
    (``1``, ``1.0`` and ``True`` differ) and, in mappings, the same keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return (list(a) == list(b)
                and all(same_json(value, b[key]) for key, value in a.items()))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same_json, a, b))
    return bool(a == b)


def regrade(store: Store, run: RunInfo, eval: Eval, variant: str,
            item_ids: set[str] | None, counters: Counters, *, keep_all: bool = False,
            only_changed_items: bool = False, stable_graders: Set[str] = frozenset(),
            grader_changed: Mapping[str, int | None] | None = None,
            on_commit: Callable[[], None] | None = None) -> int:
    """Grade the run's answers again (``item_ids``: only those items'); returns how many.
    ``keep_all``: every answer's old grades go to the history (see ``aregrade_run``);
    ``grader_changed``: per grader, whether its spec changed, recorded with each old grade
    kept (``Store.replace_scores``). ``only_changed_items``: the graders are deterministic and
    those that made the stored grades (the caller compared the run's ``graded_with``): only
    answers whose item differs from the run's stored copy, or whose stored grades are not one
    per grader, are graded; the others keep theirs (``counters.kept``). ``stable_graders``:
    the same promise for some graders only (deterministic, posttrain's own, recorded as those
    that made the run's grades of them): an answer whose item is unchanged and whose stored
    grades are one per grader is graded by the other graders alone, and keeps its grades of
    these (``counters.kept_grades``). ``on_commit``: called
    inside the transaction that writes the new grades (or finds none to write), after checking
    that nothing else wrote the run's answers, grades or items since they were read here (else
    a :class:`~posttrain.errors.UserError`, nothing written: another regrade or a review).
    Answers of items no longer in the eval are not graded (``counters.not_in_eval``).

    The cyclic garbage collector is paused meanwhile (:func:`collector_paused`)."""
    with collector_paused():
        return _regrade_run(store, run, eval, variant, item_ids, counters, keep_all=keep_all,
                            only_changed_items=only_changed_items,
                            stable_graders=stable_graders, grader_changed=grader_changed,
                            on_commit=on_commit)


@contextmanager
def collector_paused() -> Iterator[None]:
    """CPython's cyclic collector off for the body, on again (as it was) after, with one
    collection of what the body left. A bulk regrade holds and builds a few objects per answer
    (its answers, old grades, new rows: ~3.7 million container allocations at 100k answers):
    under the CLI's thresholds (``posttrain.cli.GC_THRESHOLDS``) that was 74 young and 6
    middle-generation collections walking them, 0.24-0.27 s of a 3.5-4 s regrade on this
    machine, for no garbage (nothing the regrade makes refers back to itself). The forked
    helper (``regrade_split``) inherits the pause: its collections would also copy the pages
    it shares with this process."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect(0)


def _regrade_run(store: Store, run: RunInfo, eval: Eval, variant: str,
                 item_ids: set[str] | None, counters: Counters, *, keep_all: bool,
                 only_changed_items: bool, stable_graders: Set[str],
                 grader_changed: Mapping[str, int | None] | None,
                 on_commit: Callable[[], None] | None) -> int:
    read_at = store.run_revision(run.id)
    conn = store.conn
    cursor = conn.cursor()
    cursor.row_factory = None
    items = {item.id: item for item in eval.items}
    answers = cursor.execute(
        "SELECT item_id, epoch, completion FROM samples WHERE run_id = ? AND status = 'ok' "
        "AND completion IS NOT NULL AND completion != '' ORDER BY item_id, epoch",
        (run.id,)).fetchall()
    if item_ids is not None:
        answers = [answer for answer in answers if answer[0] in item_ids]
    graded = [answer for answer in answers if answer[0] in items]
    counters.not_in_eval = len(answers) - len(graded)  # answers of items the eval lost
    answers = graded
    counters.total = len(answers)
    changes = None  # else compared while the helper grades
    names = [grader.name for grader in eval.graders]
    stable = set(names) if only_changed_items else set(stable_graders) & set(names)
    if len(set(names)) != len(names):  # a repeated name: its stored grade is the last one's
        stable = set()
    whole: set[tuple[str, int]] | None = None  # answers graded by every grader (None: all)
    helper = None
    fill = None  # a helper's rows of an answer graded by every grader, completed
    try:
        if stable and stable != set(names):
            # the graders not stable grade every answer: the helper starts on them before the
            # items are compared (the stable graders' grades of the answers that turn out to
            # need them are added after, ``_filler``)
            some = _grader(eval, variant, items, (set(), stable))
            helper = _helper(eval, some, answers)
        if stable:
            changes = _item_changes(cursor, run.id, items, answers, eval, variant)
            # answers to a question edited since: not graded (the loop in ``_regrade`` skips
            # them; the helper may already be grading them, so ``answers`` keeps its order)
            counters.prompt_changed = sum(answer[0] in changes.prompted for answer in answers)
            whole = {answer[:2] for answer in _to_grade(
                cursor, run.id, names, answers, changes.changed,
                None if stable == set(names) else stable)}
            if stable == set(names):  # the others keep every grade
                answers = [answer for answer in answers
                           if answer[:2] in whole and answer[0] not in changes.prompted]
                counters.kept = counters.total - len(answers) - counters.prompt_changed
                counters.done += counters.kept + counters.prompt_changed
            else:
                counters.kept_grades = (len(answers) - len(whole)) * len(stable)
                counters.kept_graders = ([name for name in names if name in stable]
                                         if counters.kept_grades else [])
                fill = _filler(eval, variant, items, whole, stable)
                if helper is not None and _mostly_whole(answers[helper.start:], whole):
                    # this process would grade most of the helper's answers again with the
                    # kept graders: a helper grading them with every grader instead
                    helper.close()
                    helper, fill = None, None
        grade = _grader(eval, variant, items, None if whole is None else (whole, stable))
        if helper is None:
            helper = _helper(eval, grade, answers)
        _regrade(store, run, eval, items, answers, grade, helper, counters, changes, keep_all,
                 grader_changed or {}, Commit(read_at, on_commit),
                 None if whole is None else (whole, stable), fill)
        return counters.total
    finally:
        if helper is not None:
            helper.close()


def _mostly_whole(share: Sequence[tuple[str, int, str]], whole: Set[tuple[str, int]]) -> bool:
    """Whether more than a quarter of the answers in ``share`` are graded by every grader."""
    if len(whole) * 4 <= len(share):
        return False
    return sum(answer[:2] in whole for answer in share) * 4 > len(share)


def _helper(eval: Eval, grade: Callable[[tuple[str, int, str]], list[Row | None]],
            answers: list[tuple[str, int, str]]) -> regrade_split.Helper | None:
    """A forked process grading the tail of ``answers`` with ``grade`` while this one goes on,
    when that pays (``regrade_split.usable``)."""
    if not regrade_split.usable(eval.graders, len(answers)):
        return None
    return regrade_split.Helper(
        grade, answers, len(answers) - int(len(answers) * regrade_split.HELPER_SHARE))


def _to_grade(cursor: Any, run_id: str, names: list[str], answers: list[tuple[str, int, str]],
              changed_items: set[str], kept: Set[str] | None = None
              ) -> list[tuple[str, int, str]]:
    """The answers whose grades may change when the graders have not: those of changed items,
    and those whose stored grades are not exactly one per grader (a grader added to the run
    since, or an answer stored without its grades). ``kept``: only some graders keep their
    grades (the others grade every answer, and an answer's grades of graders no longer in the
    eval are read with theirs and dropped): then an answer is incomplete only when it lacks
    one of these graders' grades (a grader added or renamed leaves the others' grades kept)."""
    if kept is not None:
        marks = ",".join("?" * len(kept))
        having = f"COALESCE(SUM(g.grader IN ({marks})), 0) != ?"
        args: tuple[Any, ...] = (run_id, *sorted(kept), len(kept))
    else:
        marks = ",".join("?" * len(names))
        having = f"COUNT(g.grader) != ? OR SUM(g.grader IN ({marks})) != ?"
        args = (run_id, len(names), *names, len(names))
    incomplete = set(cursor.execute(
        "SELECT s.item_id, s.epoch FROM samples s LEFT JOIN scores g ON g.run_id = s.run_id "
        "AND g.item_id = s.item_id AND g.epoch = s.epoch WHERE s.run_id = ? "
        f"AND s.status = 'ok' GROUP BY s.item_id, s.epoch HAVING {having}", args).fetchall())
    return [answer for answer in answers
            if answer[0] in changed_items or answer[:2] in incomplete]


def _regrade(store: Store, run: RunInfo, eval: Eval, items: dict[str, Item],
             answers: list[tuple[str, int, str]],
             grade: Callable[[tuple[str, int, str]], list[Row | None]],
             helper: regrade_split.Helper | None, counters: Counters,
             changes: ItemChanges | None, keep_all: bool = False,
             grader_changed: Mapping[str, int | None] | None = None,
             commit: Commit | None = None,
             partial: tuple[set[tuple[str, int]], set[str]] | None = None,
             fill: Callable[[tuple[str, int, str], list[Row | None]], list[Row | None]]
             | None = None) -> None:
    """``partial``: the answers graded by every grader, and the graders whose grades the
    others keep (``_grader``); None: every answer by every grader. ``fill``: completes the
    helper's rows (``_filler``)."""
    from posttrain.runner import facts_patch

    cursor = store.conn.cursor()
    cursor.row_factory = None
    if changes is None:
        changes = _item_changes(cursor, run.id, items, answers, eval, run.variant)
        counters.prompt_changed = sum(answer[0] in changes.prompted for answer in answers)
    changed_items, refresh, prompted = changes.changed, changes.refresh, changes.prompted
    # the grades that may change: those an answer is graded for (the stable graders' grades
    # of an answer graded by the others alone are left as they are, unread)
    old = _stored_grades(cursor, run.id, partial)
    names = [grader.name for grader in eval.graders]
    # the grades an answer keeps, by grader name (a repeated name: the last, as INSERT OR
    # REPLACE keeps it), in the order the store reads them back
    order = sorted({name: k for k, name in enumerate(names)}.items())
    picks = [k for _name, k in order]
    kept_names = {name for name, _k in order}
    writes: list[Row] = []
    removals: list[Row] = []
    moved: list[tuple[str, int]] = []
    # per grader, the scored grades the write adds less those it removes (they change only
    # where an answer's facts do)
    count_changes: Counter[str] = Counter()
    row_changes: Counter[str] = Counter()  # and every grade (the graders the run names)
    no_grades: list[Row] = []
    rewritten: list[tuple[str, int, str]] = []  # grades that change: their old ones kept
    written = False
    rewrite, write = rewritten.append, writes.append
    for item_id, epoch, rows in _graded(answers, grade, helper, counters, fill):
        if item_id in prompted:  # answered another question: its grades stay
            continue
        before = old.get((item_id, epoch), no_grades)
        after = [rows[k] for k in picks]
        if None in after:  # graded by some graders only: the others' grades stay (unread)
            after = [row for row in after if row is not None]
        if len(before) == len(after):  # most answers: the same graders, grade by grade
            for was, now_ in zip(before, after, strict=True):
                if was[0] != now_[0]:
                    break
            else:  # what the general way below does, per grade
                shifted = False
                for was, now_ in zip(before, after, strict=True):
                    if was == now_:
                        if keep_all:
                            rewrite((item_id, epoch, was[0]))
                        continue
                    written = True
                    if keep_all or was[:4] != now_[:4]:  # _GRADE
                        rewrite((item_id, epoch, was[0]))
                    if _FACTS(was) != _FACTS(now_):
                        shifted = True
                        count_changes[now_[0]] += _counts(now_) - _counts(was)
                    write((run.id, item_id, epoch, *now_))
                if shifted:
                    moved.append((item_id, epoch))
                continue
        if keep_all or list(map(_GRADE, before)) != list(map(_GRADE, after)):
            now = {row[0]: _GRADE(row) for row in after}
            rewritten.extend((item_id, epoch, row[0]) for row in before
                             if keep_all or now.get(row[0]) != _GRADE(row))
        if before == after:
            continue
        written = True
        if list(map(_FACTS, before)) != list(map(_FACTS, after)):
            moved.append((item_id, epoch))
            count_changes.update(_scored(after))
            count_changes.subtract(_scored(before))
            row_changes.update(row[0] for row in after)
            row_changes.subtract(row[0] for row in before)
        had = {row[0]: row for row in before}
        writes.extend((run.id, item_id, epoch, *row) for row in after if had.get(row[0]) != row)
        removals.extend((run.id, item_id, epoch, name) for name in had if name not in kept_names)
    commit = commit or Commit(store.run_revision(run.id), None)
    if not written and not refresh and not rewritten:  # every grade as stored: nothing to
        with store.bulk_grades(run.id, bump=False) as revision:  # write, kept facts still hold
            commit.check(store, run.id, revision)
        return
    flags = grader_changed or {}
    keys = [(item_id, epoch, grader, int(item_id in changed_items), flags.get(grader))
            for item_id, epoch, grader in rewritten]
    # the graders the run's grades name before the write and after it (every grade of the run
    # is in ``old``, or counted in SQL when some were left unread)
    graders_before = (Counter(map(itemgetter(0), chain.from_iterable(old.values())))
                      if partial is None else Counter(dict(cursor.execute(
                          "SELECT grader, COUNT(*) FROM scores WHERE run_id = ? "
                          "GROUP BY grader", (run.id,)).fetchall())))
    graders_after = graders_before + row_changes  # keeps only positive counts
    counts = Changes({name: n for name, n in count_changes.items() if n}, set(graders_before),
                     set(graders_after))
    _write(store, run, keys, writes, removals, moved, refresh, changes.retagged, facts_patch,
           counts, commit)


class Commit(NamedTuple):
    """The run's revision when a regrade read it, and what to do in the transaction that
    writes its result."""

    read_at: int
    then: Callable[[], None] | None

    def check(self, store: Store, run_id: str, revision: int) -> None:
        """Inside the write transaction (``revision``: the run's revision in it, before this
        write's bump): refuse when another writer changed the run since it was read; else run
        ``then``."""
        if revision != self.read_at:
            from posttrain.errors import UserError

            raise UserError(f"run {run_id} changed while this regrade read it (another regrade, "
                            "a review in posttrain view, or an eval resuming it): nothing was "
                            "written; run it again")
        if self.then is not None:
            self.then()


def prompt_changed(eval: Eval, variant: str, stored: Any, item: Item) -> bool:
    """Whether the item's stored copy in a run (``stored``: its data, what the run's answers
    answered) renders another request than the eval's item now: a question edited, not only
    a reference. Its answers are then not graded against the new row (they answered the old
    question). A copy that cannot be rendered any more counts as changed."""
    from posttrain.errors import UserError

    try:
        before = eval.request_for(Item(id=item.id, data=stored, tags=item.tags), variant)
    except (UserError, TypeError, ValueError, KeyError):
        return True
    return before.to_payload() != eval.request_for(item, variant).to_payload()


def _item_changes(cursor: Any, run_id: str, items: dict[str, Item],
                  answers: list[tuple[str, int, str]], eval: Eval | None = None,
                  variant: str = "default") -> ItemChanges:
    """The regraded items whose data or tags differ from the run's stored copy (with
    ``eval``: those whose prompt changed, :func:`prompt_changed`, apart: neither graded again
    nor refreshed)."""
    stored = {item_id: (tags, data) for item_id, tags, data in cursor.execute(
        "SELECT item_id, tags, data FROM run_items WHERE run_id = ?", (run_id,))}
    changed: set[str] = set()
    prompted: set[str] = set()
    refresh: list[Item] = []
    retagged = False
    for item_id in dict.fromkeys(answer[0] for answer in answers):
        item = items[item_id]
        tags, data = stored.get(item_id, (None, None))
        data_differs = _differs(data, item.data)
        if (data_differs and data is not None and eval is not None
                and prompt_changed(eval, variant, orjson.loads(data), item)):
            prompted.add(item_id)
            continue
        tags_differ = _differs(tags, item.tags)
        if data_differs:
            changed.add(item_id)
        if data_differs or tags_differ:
            refresh.append(item)
        retagged = retagged or tags_differ
    return ItemChanges(changed, refresh, retagged, prompted)


class ItemChanges(NamedTuple):
    """What differs between the eval's items and the run's stored copies."""

    #: items whose data differs (their grades may change; the history marks them)
    changed: set[str]
    #: items whose data or tags differ: their stored copies are written again
    refresh: list[Item]
    #: whether any item's tags differ (the kept facts hold tags: then built again, not patched)
    retagged: bool
    #: items whose prompt changed since the run answered them: their answers keep their grades
    prompted: set[str] = set()


def _stored_grades(cursor: Any, run_id: str,
                   partial: tuple[set[tuple[str, int]], set[str]] | None = None
                   ) -> dict[tuple[str, int], list[Row]]:
    """The run's stored grades by answer (item, epoch), each as a :data:`Row`, in the order
    the store reads them back (by grader). ``partial`` (the answers graded by every grader,
    the stable graders): the stable graders' grades only of those answers."""
    select = ("SELECT item_id, epoch, grader, value, passed, status, explanation, sub_scores, "
              "cost_usd, requests, confinement, retries FROM scores WHERE run_id = ?")
    args: tuple[Any, ...] = (run_id,)
    if partial is not None:
        whole, stable = partial
        cursor.execute("DROP TABLE IF EXISTS temp.regrade_whole")
        cursor.execute("CREATE TABLE temp.regrade_whole (item_id TEXT NOT NULL, "
                       "epoch INTEGER NOT NULL, PRIMARY KEY (item_id, epoch)) WITHOUT ROWID")
        cursor.executemany("INSERT INTO temp.regrade_whole VALUES (?, ?)", sorted(whole))
        select += (f" AND (grader NOT IN ({','.join('?' * len(stable))}) OR (item_id, epoch) "
                   "IN (SELECT item_id, epoch FROM temp.regrade_whole))")
        args += tuple(sorted(stable))
    old: dict[tuple[str, int], list[Row]] = {}
    rows = cursor.execute(select + " ORDER BY item_id, epoch, grader", args).fetchall()
    if partial is not None:
        cursor.execute("DROP TABLE temp.regrade_whole")
    for row in rows:
        key = row[:2]
        rows = old.get(key)
        if rows is None:
            old[key] = [row[2:]]
        else:
            rows.append(row[2:])
    return old


def _sampler(eval: Eval, variant: str, items: dict[str, Item]
             ) -> Callable[[tuple[str, int, str]], tuple[Item, dict[str, Any]]]:
    """An answer's (item, epoch, completion) item and the sample its graders read; the
    request is rendered only when the eval has a ``response_format`` (all a sample reads of
    it)."""
    needs_request = eval.response_format is not None
    sample_of = eval.sample_of
    from_record = Completion.from_record
    loads = orjson.loads

    def sample(answer: tuple[str, int, str]) -> tuple[Item, dict[str, Any]]:
        item = items[answer[0]]
        request = eval.request_for(item, variant) if needs_request else None
        return item, sample_of(from_record(loads(answer[2])), request)

    return sample


def _place(rows: list[Row | None], places: list[int], graders: Sequence[Grader],
           sample: dict[str, Any], data: dict[str, Any]) -> list[Row | None]:
    """``rows`` with the grades of ``graders`` written at ``places`` (the same order)."""
    for place, score in zip(places, grade_sync(graders, sample, data), strict=True):
        rows[place] = _row(score)
    return rows


def _grader(eval: Eval, variant: str, items: dict[str, Item],
            partial: tuple[set[tuple[str, int]], set[str]] | None = None
            ) -> Callable[[tuple[str, int, str]], list[Row | None]]:
    """An answer's (item, epoch, completion) new grades, as rows in the graders' order.
    ``partial`` (the answers graded by every grader, the stable graders): any other answer is
    graded by the graders not stable only, None in the stable graders' places."""
    graders = eval.graders
    sampled = _sampler(eval, variant, items)
    whole, stable = partial if partial is not None else (None, set())
    some = [grader for grader in graders if grader.name not in stable]
    places = [k for k, grader in enumerate(graders) if grader.name not in stable]

    def grade(answer: tuple[str, int, str]) -> list[Row | None]:
        item, sample = sampled(answer)
        if whole is None or answer[:2] in whole:
            return [_row(score) for score in grade_sync(graders, sample, item.data)]
        return _place([None] * len(graders), places, some, sample, item.data)

    return grade


def _filler(eval: Eval, variant: str, items: dict[str, Item], whole: set[tuple[str, int]],
            stable: Set[str]
            ) -> Callable[[tuple[str, int, str], list[Row | None]], list[Row | None]]:
    """Rows of an answer graded by the graders not in ``stable`` only (None in the stable
    graders' places), completed with the stable graders' grades when the answer is in
    ``whole``: the rows ``_grader(..., (whole, stable))`` gives it. Graders here are pure
    functions of the answer and the item (``regrade_split``), so grading some of them apart
    gives each the grade it gives with the others."""
    graders = eval.graders
    sampled = _sampler(eval, variant, items)
    places = [k for k, grader in enumerate(graders) if grader.name in stable]
    chosen = [graders[k] for k in places]

    def fill(answer: tuple[str, int, str], rows: list[Row | None]) -> list[Row | None]:
        if answer[:2] not in whole:
            return rows
        item, sample = sampled(answer)
        return _place(list(rows), places, chosen, sample, item.data)

    return fill


def _graded(answers: list[tuple[str, int, str]],
            grade: Callable[[tuple[str, int, str]], list[Row | None]],
            helper: regrade_split.Helper | None, counters: Counters,
            fill: Callable[[tuple[str, int, str], list[Row | None]], list[Row | None]]
            | None = None) -> Iterator[tuple[str, int, list[Row | None]]]:
    """Each answer's new grades (item, epoch, rows), in order: graded here, or the helper's
    for the answers from its start (graded here when it failed), completed by ``fill`` when
    the helper graded them with some graders only (``_filler``)."""
    end = len(answers) if helper is None else helper.start
    tail = None if helper is None else helper.results
    for index, answer in enumerate(answers):
        if index == end and tail is not None:
            shares = tail()
            tail = None
            if shares is not None and len(shares) == len(answers) - end:
                for answer_, rows in zip(answers[end:], shares, strict=True):
                    if fill is not None:
                        rows = fill(answer_, rows)
                    counters.done += 1
                    counters.grades += len(rows) - rows.count(None)
                    yield answer_[0], answer_[1], rows
                return
        rows = grade(answer)
        counters.done += 1
        counters.grades += len(rows) - rows.count(None)
        yield answer[0], answer[1], rows


_INSERT_SCORE = ("INSERT OR REPLACE INTO scores (run_id, item_id, epoch, grader, value, passed, "
                 "status, explanation, sub_scores, cost_usd, requests, confinement, retries) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")


class Changes(NamedTuple):
    """What a regrade's write does to the run's grader names: per grader, the grades added
    less those removed; the graders named before and after."""

    counts: dict[str, int]
    before: set[str]
    after: set[str]


def _write(store: Store, run: RunInfo, keys: list[tuple[str, int, str, int, int | None]],
           writes: list[Row],
           removals: list[Row], moved: list[tuple[str, int]], refresh: list[Item],
           retagged: bool, facts_patch: Any, changes: Changes, commit: Commit) -> None:
    """Everything in one transaction: the old grades that change (``keys``: item, epoch,
    grader, whether its item changed, whether its grader did) to the history, the changed
    grades written, the refreshed items, and the kept facts patched (unless an item's tags
    changed: then built again)."""
    import time

    from posttrain.runner.facts import build

    conn = store.conn
    patched = False
    with store.bulk_grades(run.id) as revision:
        commit.check(store, run.id, revision)
        current = store.get_run(run.id)
        stamp = store.run_stamp(current)
        before = f"{revision}:{stamp.split(':', 1)[1]}"
        # an item's data is not in the kept facts (its tags are): edited references keep the
        # patch, retagged items build the facts again
        patch = None if retagged else facts_patch.prepare(store, current, before, moved,
                                                          changes.before)
        conn.execute("DROP TABLE IF EXISTS temp.regraded")
        conn.execute("CREATE TABLE temp.regraded (item_id TEXT NOT NULL, epoch INTEGER NOT NULL, "
                     "grader TEXT NOT NULL, changed INTEGER NOT NULL, grader_changed INTEGER, "
                     "PRIMARY KEY (item_id, epoch, grader)) WITHOUT ROWID")
        conn.executemany("INSERT OR IGNORE INTO temp.regraded VALUES (?,?,?,?,?)", keys)
        conn.execute(
            "INSERT INTO score_history (run_id, item_id, epoch, grader, value, passed, status, "
            "item_changed, replaced, grader_changed) SELECT s.run_id, s.item_id, s.epoch, "
            "s.grader, s.value, s.passed, s.status, k.changed, ?, k.grader_changed "
            "FROM temp.regraded k JOIN scores s "
            "ON s.run_id = ? AND s.item_id = k.item_id AND s.epoch = k.epoch "
            "AND s.grader = k.grader ORDER BY s.item_id, s.epoch, s.grader", (time.time(), run.id))
        conn.execute("DROP TABLE temp.regraded")
        conn.executemany("DELETE FROM scores WHERE run_id = ? AND item_id = ? AND epoch = ? "
                         "AND grader = ?", removals)
        conn.executemany(_INSERT_SCORE, writes)
        conn.executemany(
            "UPDATE run_items SET data = ?, tags = ? WHERE run_id = ? AND item_id = ?",
            [(orjson.dumps(item.data, default=str).decode(), orjson.dumps(item.tags).decode(),
              run.id, item.id) for item in refresh])
        if patch is not None:
            patched = facts_patch.apply(store, current, patch, store.run_stamp(current),
                                        changes.after, changes.counts)
    if not patched and current.status == "finished":
        build(store, run.id)

"""The score facts kept in the store (runner/facts.py, analysis/cells.py) give the same numbers
as reading every answer (``RunResults``): per item, per component, per group, and through
``compare`` and the matrix. Small stores with the awkward cases: epochs, failed requests,
unscored answers, a primary grader, no recorded grader list, sub-scores, several tags, an
unanswered epoch, a grader that is not expected."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from posttrain.analysis.cells import RunCells, load_cells
from posttrain.analysis.compare import compare_matrix, compare_runs
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import item_groups, item_pass_rates, load_all
from posttrain.analysis.synthetic import StubModel, make_items, simulate_run
from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score


def _grades(item: Item, text: str, epoch: int) -> list[Score]:
    """Two graders and a partial-credit one with sub-scores; some grades fail or are absent."""
    ok = text == item.data["answer"]
    index = int(item.id[1:])
    out = [Score(value=1.0 if ok else 0.0, passed=ok, name="exact")]
    if index % 7 == 3 and epoch == 0:
        out.append(Score(value=None, passed=None, name="loose", status="error",
                         explanation="grader crashed"))
    else:
        out.append(Score(value=1.0 if text.lower() == item.data["answer"].lower() else 0.0,
                         passed=None if index % 5 == 0 else ok, name="loose"))
    if index % 3:
        part = (index % 4) / 3
        out.append(Score(value=part, passed=part >= 0.5, name="rubric",
                         sub_scores={"style": part / 2, "facts": index % 2 == 0,
                                     "note": "text is not a number"}))
    return out


def _store(path: Path, config: dict, epochs: int = 1) -> tuple[Store, list[str]]:
    store = Store(path)
    items = make_items(60, tags=("alpha", "beta", "gamma"))
    for index, item in enumerate(items):  # several tags, some none
        item.tags = [] if index % 11 == 0 else [item.tags[0], "all"] if index % 2 else item.tags
    ids = []
    for k, accuracy in enumerate((0.8, 0.6, 0.4)):
        run = simulate_run(store, "ev", StubModel(f"m{k}", accuracy), items, seed=k,
                           epochs=epochs, grade=_grades, extra_config=config)
        ids.append(run.id)
    rng = random.Random(1)
    for run_id in ids:  # failed requests, and an epoch never answered
        for item in rng.sample(items, 6):
            store.record_sample(run_id, item.id, 0, completion=None, request_key=None,
                                attempts=3, error="HTTP 500")
        store.forget_samples(run_id, [(items[-1].id, epochs - 1)])
        store.record_sample(run_id, items[2].id, 0, completion=Completion(text=""),
                            request_key=None, attempts=1, scores=[])
        # a reviewer steered this answer in `posttrain view`: right, and graded so, yet not
        # the model's own (unscored in both paths)
        right = items[4].data["answer"]
        store.record_sample(run_id, items[4].id, 0, completion=Completion(
            text=right, meta={"steering": [{"turn": 1, "added": "use the tool"}]}),
            request_key=None, attempts=1, scores=_grades(items[4], right, 0))
        store.conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (run_id,))
    return store, ids


CONFIGS = [
    pytest.param({"grader_names": ["exact", "loose", "rubric"]}, 1, id="expected-graders"),
    pytest.param({"grader_names": ["exact", "loose"]}, 2, id="two-epochs"),
    pytest.param({"primary": "loose", "grader_names": ["exact", "loose"]}, 3, id="primary"),
    pytest.param({}, 1, id="no-grader-list"),
]


def _same(a: dict[str, float], b: dict[str, float]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-12, abs_tol=1e-15), key


@pytest.mark.parametrize(("config", "epochs"), CONFIGS)
def test_cells_hold_the_figures_of_every_answer(tmp_path, config, epochs) -> None:
    store, ids = _store(tmp_path / "s.db", config, epochs)
    for run_id in ids:
        results = load_results(store, run_id)
        cells = RunCells(store, store.get_run(run_id))
        assert cells.tables.cells == "item_cells"  # kept in the store (a finished run)
        _same(cells.item_scores(), results.item_scores())
        _same(cells.item_scores(scored_only=True), results.item_scores(scored_only=True))
        _same(item_pass_rates(cells), item_pass_rates(results))
        expected, got = results.component_scores(), cells.component_scores()
        assert sorted(got) == sorted(expected)
        for name in expected:
            _same(got[name], expected[name])
        assert cells.component_scored() == results.component_scored()
        for by in (None, "category"):
            assert item_groups([cells], by) == item_groups([results], by)


@pytest.mark.parametrize(("config", "epochs"), CONFIGS)
def test_compare_and_matrix_agree_with_the_answers(tmp_path, config, epochs) -> None:
    store, ids = _store(tmp_path / "s.db", config, epochs)
    runs = [store.get_run(i) for i in ids]
    for by in (None, "category"):
        old = compare_runs(*load_all(store, runs[:2]), by=by, n_boot=500)
        new = compare_runs(*load_cells(store, runs[:2]), by=by, n_boot=500)
        assert new == old
        assert compare_matrix(load_cells(store, runs), by=by, n_boot=500) == \
            compare_matrix(load_all(store, runs), by=by, n_boot=500)


def test_cells_follow_every_write_and_a_running_run_writes_nothing(tmp_path) -> None:
    store, ids = _store(tmp_path / "s.db", {"grader_names": ["exact", "loose"]})
    run = store.get_run(ids[0])
    before = RunCells(store, run).item_scores()
    item_id = next(i for i, v in before.items() if v == 0.0)
    store.replace_scores(run.id, item_id, 0, [Score(value=1.0, passed=True, name="exact"),
                                              Score(value=1.0, passed=True, name="loose")])
    after = RunCells(store, run).item_scores()  # the revision moved: built again
    assert after[item_id] == 1.0 == load_results(store, run.id).item_scores()[item_id]
    store.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run.id,))
    kept = store.conn.execute("SELECT COUNT(*) FROM run_columns").fetchone()[0]
    store.replace_scores(run.id, item_id, 0, [])
    live = RunCells(store, store.get_run(run.id))
    assert live.tables.cells.startswith("temp.")
    assert live.item_scores()[item_id] == 0.0
    assert store.conn.execute("SELECT COUNT(*) FROM run_columns").fetchone()[0] == kept


def test_a_finished_run_has_its_facts_at_once(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    run = simulate_run(store, "ev", StubModel("m", 0.5), make_items(20), seed=0)
    stamp = store.conn.execute("SELECT body FROM run_columns WHERE run_id = ? AND "
                               "name = 'stamp'", (run.id,)).fetchone()
    assert stamp is not None and stamp[0].endswith(store.run_stamp(run).encode())
    assert store.conn.execute("SELECT COUNT(*) FROM item_cells WHERE run_id = ?",
                              (run.id,)).fetchone()[0] == 20


def _flaky(item: Item, text: str, epoch: int) -> list[Score]:
    """A grader that grades the same answer differently by epoch on some items."""
    ok = text == item.data["answer"]
    index = int(item.id[1:])
    if index % 9 == 4 and epoch == 1:
        ok = not ok
    return [Score(value=1.0 if ok else 0.0, passed=ok, name="exact"),
            Score(value=0.5 if index % 13 == 0 else float(ok), passed=None, name="soft")]


def test_audit_on_kept_facts_finds_what_reading_every_answer_finds(tmp_path) -> None:
    from posttrain.analysis.audit import audit

    store = Store(tmp_path / "s.db")
    items = make_items(90, misgraded=[f"q{i:03d}" for i in range(0, 90, 15)])
    for k, (accuracy, distractor) in enumerate(((0.95, 0.5), (0.9, 0.5), (0.85, 0.5),
                                                (0.5, 0.9), (0.3, 0.9))):
        simulate_run(store, "ev", StubModel(f"m{k}", accuracy, distractor=distractor), items,
                     seed=k, epochs=3 if k == 1 else 1, grade=_flaky,
                     extra_config={"grader_names": ["exact", "soft"]})
    run = store.list_runs("ev")[0]  # a regrade that flipped grades of unchanged items
    for item in items[:12]:
        store.replace_scores(run.id, item.id, 0, [Score(value=0.0, passed=False, name="exact"),
                                                  Score(value=0.0, passed=None, name="soft")],
                             history=True, grader_changed={"exact": 0, "soft": 0})
    runs = store.list_runs("ev")
    old = audit(load_all(store, runs))
    new = audit(load_cells(store, runs))
    assert new == old
    counts = new["suspect_counts"]
    assert counts["strong_models_agree_against_reference"] and counts["grade_flips_on_regrade"]
    assert counts["grade_flips_same_output"] or counts["epochs_disagree"]


def _summary_store(path: Path, config: dict, epochs: int) -> tuple[Store, list[str]]:
    """Runs with every kind of answer a summary counts: cached ones, paid ones, token parts,
    tool calls, judge cost and retries, failed requests, cousins (paraphrases of a seed)."""
    store, ids = _store(path, config, epochs)
    items = store.run_items(ids[0])
    for k, run_id in enumerate(ids):
        for index, item in enumerate(items[:20]):
            completion = Completion(
                text=f"answer {index}" if index % 2 else "", cost_usd=0.002 * (k + 1),
                input_tokens=100 + index, output_tokens=7, latency_s=0.0 if index % 4 else 0.3,
                cached=index % 3 == 0, cached_input_tokens=index % 5 * 3,
                cache_write_tokens=2 if index % 7 == 0 else 0, reasoning_tokens=index % 2,
                tool_calls=[{"name": "f", "arguments": {"x": index}}] if index % 6 == 0 else [])
            store.record_sample(run_id, item.id, 0, completion=completion, request_key=None,
                                attempts=1 + index % 3, scores=[
                                    Score(value=float(index % 2), passed=bool(index % 2),
                                          name="exact", cost_usd=0.0001 * index,
                                          requests=index % 2, retries=index % 3 == 1),
                                    Score(value=float(index % 2), passed=None, name="loose")])
        store.update_run_config(run_id, {"price": {"input": 1.0, "output": 2.0},
                                         "pass_bar": 0.4})
        store.conn.execute(  # a failed request that still cost something: not an answer
            "UPDATE samples SET cost_usd = 0.5 WHERE run_id = ? AND status = 'error'", (run_id,))
    for run_id in ids:  # cousins: paraphrases of q010 and of an item not in the run
        for index, item in enumerate(items[30:36]):
            seed = "q010" if index < 3 else "gone"
            item.data["provenance"] = {"kind": "paraphrase", "seed": seed}
            store.update_item(run_id, item)
        store.conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (run_id,))
    return store, ids


@pytest.mark.parametrize(("config", "epochs"), CONFIGS)
def test_summaries_from_facts_equal_those_from_every_answer(tmp_path, config, epochs) -> None:
    from posttrain.analysis.facts_summary import summaries
    from posttrain.analysis.stored import KINDS

    store, ids = _summary_store(tmp_path / "s.db", config, epochs)
    for run_id in ids:
        results = load_results(store, run_id)
        fast = summaries(store, results.run)
        assert set(fast) == set(KINDS)
        for kind, build in KINDS.items():
            assert fast[kind] == build(results), kind
        assert fast["report"]["cached"] and fast["report"]["problems"]
        assert fast["report"].get("reliability_at_k") or epochs > 1


def test_summaries_of_a_paid_run_from_its_kept_costs(tmp_path) -> None:
    """Every answer paid for: pick's cost is the stored costs' sum kept with the facts."""
    from posttrain.analysis.facts_summary import summaries
    from posttrain.analysis.stored import KINDS

    store = Store(tmp_path / "s.db")
    run = simulate_run(store, "ev", StubModel("paid", 0.7, price=(3.0, 15.0)),
                       make_items(50), seed=1)
    results = load_results(store, run.id)
    fast = summaries(store, run)
    assert fast["point"]["cost_per_sample"] == pytest.approx((200 * 3.0 + 20 * 15.0) / 1e6)
    for kind, build in KINDS.items():
        assert fast[kind] == build(results), kind


def test_a_steered_answer_is_unscored_in_every_figure(tmp_path) -> None:
    """A right, passing answer that a reviewer steered counts 0 in the headline, is left out of
    the scored-only mean, and says why; the kept facts agree with reading every answer."""
    from posttrain.analysis.report import summarize
    from posttrain.runner.facts import STEERED

    store = Store(tmp_path / "s.db")
    items = make_items(4, tags=("t",))
    run = store.create_run(run_key="k", eval_name="ev", eval_path=None, eval_hash="h",
                           model="m", variant="default", epochs=1,
                           config={"grader_names": ["exact"]}, items=items)
    for index, item in enumerate(items):
        meta = {"steering": [{"turn": 1}]} if index == 0 else {}
        text = item.data["answer"]
        store.record_sample(run.id, item.id, 0, completion=Completion(text=text, meta=meta),
                            request_key=None, attempts=1,
                            scores=[Score(value=1.0, passed=True, name="exact")])
    store.finish_run(run.id)
    results = load_results(store, run.id)
    by_id = {s.item_id: s for s in results.samples}
    assert by_id[items[0].id].status == "unscored" and by_id[items[0].id].reason == STEERED
    assert all(by_id[i.id].status == "scored" for i in items[1:])
    summary = summarize(results)
    assert summary["score"] == 0.75 and summary["unscored"] == 1
    assert summary["score_scored_only"] == 1.0
    (cells,) = load_cells(store, [store.get_run(run.id)])
    assert cells.item_scores() == results.item_scores()
    from posttrain.analysis.facts_summary import summaries
    from posttrain.analysis.stored import KINDS

    fast = summaries(store, store.get_run(run.id))
    for kind, build in KINDS.items():
        assert fast[kind] == build(results), kind
    assert fast["report"]["problems"] == {f"unscored: {STEERED}": 1}

"""posttrain cusp: pass@1, pass@k, signal per tag and component, and the call for each tag."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from posttrain.analysis.cusp import (
    ALL_ITEMS,
    CLEARS,
    CUSP,
    OUT,
    SFT,
    TUNE_CLEARS,
    TUNE_CUSP,
    TUNE_NONE,
    TUNE_OUT,
    TUNE_WORSE,
    cusp_report,
    fine_tune_label,
)
from posttrain.analysis.results import RunResults, SampleResult
from posttrain.runner.store import RunInfo
from posttrain.types import Completion, Item, Score


def _results(per_tag: dict[str, list[list[float]]], *, k: int, subs: bool = False,
             pass_bar: float | None = 0.8) -> RunResults:
    """A run whose items (per tag: one list of k sample values each) pass at value 1."""
    run = RunInfo(id="r1", eval_name="e", eval_path=None, eval_hash="h", model="m",
                  variant="default", epochs=k, status="done",
                  config={"pass_bar": pass_bar, "grader_names": ["g"]}, created=0.0,
                  finished=1.0)
    items, samples = [], []
    for tag, item_values in per_tag.items():
        for index, values in enumerate(item_values):
            item_id = f"{tag}-{index}"
            items.append(Item(id=item_id, data={}, tags=[tag]))
            for epoch, value in enumerate(values):
                if value is None:  # a failed request: no grade
                    samples.append(SampleResult(item_id, epoch, "error", None, None, "boom", {},
                                                None, "boom", 5, 0, 0, 0.0, None, False))
                    continue
                grade = Score(value=value, passed=value >= 1.0, name="g",
                              sub_scores={"over_ask": 1.0 - value} if subs else {})
                samples.append(SampleResult(item_id, epoch, "scored", value, value >= 1.0, "",
                                            {"g": grade}, {"text": "x"}, None, 1, 1, 1, 0.0,
                                            0.1, False))
    return RunResults(run=run, items=items, samples=samples)


def _tag(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in report["tags"] if t["tag"] == name)


def test_each_class_with_its_numbers() -> None:
    k = 4
    per_tag = {
        "easy": [[1, 1, 1, 1]] * 9 + [[1, 1, 1, 0]],        # pass@1 0.975
        "flaky": [[1, 0, 0, 0]] * 10,                        # pass@1 0.25, pass@4 1.0
        "cusp": [[1, 0, 0, 0]] * 3 + [[0, 0, 0, 0]] * 7,     # signal 0.3, pass@4 0.3
        "hard": [[0, 0, 0, 0]] * 10,                         # no signal
    }
    report = cusp_report(_results(per_tag, k=k))
    assert report["bar"] == 0.8 and report["k"] == 4
    easy, flaky, cusp, hard = (_tag(report, t) for t in ("easy", "flaky", "cusp", "hard"))
    assert easy["class"] == CLEARS and easy["pass_at_1"] == pytest.approx(0.975)
    assert flaky["class"] == SFT and flaky["pass_at_k"] == pytest.approx(1.0)
    assert flaky["pass_at_1"] == pytest.approx(0.25) and flaky["signal"] == pytest.approx(1.0)
    assert cusp["class"] == CUSP and cusp["signal"] == pytest.approx(0.3)
    assert cusp["pass_at_k"] == pytest.approx(0.3) and cusp["items_varying"] == 3
    assert hard["class"] == OUT and hard["signal"] == 0.0 and hard["all_fail"] == 10
    assert "3/10 items" in cusp["why"] and "pass@4 100%" in flaky["why"]
    assert report["counts"] == {CLEARS: 1, SFT: 1, CUSP: 1, OUT: 1}
    everything = _tag(report, ALL_ITEMS)
    assert everything["n"] == 40
    # pass^k: only the nine all-pass items of "easy" pass all four draws
    assert everything["pass_hat_k"] == pytest.approx(9 / 40)


def test_pass_at_k_is_the_unbiased_estimate() -> None:
    # one item, 2 of 4 pass: pass@2 = 1 - C(2,2)/C(4,2) = 5/6 (not the share of pairs seen)
    report = cusp_report(_results({"t": [[1, 1, 0, 0]]}, k=4))
    row = _tag(report, "t")
    assert row["pass_at_k"] == pytest.approx(1.0)  # k = 4 = n: at least one of the 4 passed
    assert row["pass_at_1"] == pytest.approx(0.5)


def test_failed_samples_are_fails_not_signal_or_dropped() -> None:
    """An item whose k requests all failed is 0 with no signal; one failed epoch is a fail in
    pass@1, but no signal: the rewards the model earned (1, 1, 1) do not differ. A failed
    request made an item of a deterministic model look like GRPO signal ("on the cusp")."""
    report = cusp_report(_results({"t": [[None, None, None, None], [1, None, 1, 1],
                                         [1, None, 0, 1]]}, k=4))
    row = _tag(report, "t")
    assert row["n"] == 3 and row["pass_at_1"] == pytest.approx(5 / 12)
    assert row["items_varying"] == 1  # only the item whose scored rewards differ
    assert row["items_unvaried_scored"] == 1  # all four failed: nothing to vary
    (component,) = report["components"]  # the all-failed item is in it too, as 0
    assert component["n"] == 3 and component["pass_at_1"] == pytest.approx(5 / 12)


def test_a_grader_failing_on_one_sample_is_no_signal() -> None:
    """A deterministic model, a judge that failed once (unscored): no item varies, so the call
    is out of reach, not an RFT candidate; every component counts every item."""
    results = _results({"t": [[1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]}, k=3)
    first = results.samples[0]
    results.samples[0] = SampleResult(first.item_id, first.epoch, "unscored", None, None,
                                      "judge failed", {}, {"text": "x"}, None, 1, 1, 1, 0.0,
                                      0.1, False)
    report = cusp_report(results, bar=0.8)
    row = _tag(report, ALL_ITEMS)
    assert row["items_varying"] == 0 and row["class"] == OUT


def test_missing_epochs_count_as_fails() -> None:
    report = cusp_report(_results({"t": [[1, 1]]}, k=4))  # run stopped after 2 of 4 epochs
    assert _tag(report, "t")["pass_at_1"] == pytest.approx(0.5)
    assert report["coverage"] == {"expected": 4, "scored": 2, "unscored": 0, "error": 0,
                                  "missing": 2}


def test_samples_not_scored_are_counted_and_warned() -> None:
    """A grader's problem read as the model failing, silently (the red team's cusp ran at 50%
    coverage and said nothing): the count and kinds are in the report and its warnings."""
    results = _results({"t": [[None, 1, 0, 1], [1, 1, 1, 1]]}, k=4)
    results.samples[-1] = SampleResult("t-1", 3, "unscored", None, None, "no reference", {},
                                       {"text": "x"}, None, 1, 1, 1, 0.0, 0.1, False)
    report = cusp_report(results)
    assert report["coverage"] == {"expected": 8, "scored": 6, "unscored": 1, "error": 1,
                                  "missing": 0}
    assert any(w.startswith("2 of 8 samples are not scored (1 unscored, 1 error;")
               for w in report["warnings"])
    clean = cusp_report(_results({"t": [[1, 0, 1, 1]]}, k=4))
    assert clean["warnings"] == [] and clean["coverage"]["scored"] == 4


def test_grouping_by_a_field_no_item_has_is_refused() -> None:
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="no item of the run has the field 'nosuch'"):
        cusp_report(_results({"t": [[1, 0]]}, k=2), by="nosuch")


def test_uncertain_when_the_interval_crosses_the_bar() -> None:
    # 2 items: pass@1 0.875 >= 0.8, but a 95% interval on 2 items reaches far below the bar
    report = cusp_report(_results({"t": [[1, 1, 1, 1], [1, 1, 1, 0]]}, k=4))
    row = _tag(report, "t")
    assert row["class"] == CLEARS and row["uncertain"] is True
    many = cusp_report(_results({"t": [[1, 1, 1, 1]] * 200}, k=4))
    assert _tag(many, "t")["uncertain"] is False


def test_components_report_sub_scores_and_bar_option() -> None:
    report = cusp_report(_results({"t": [[1, 0, 0, 0]] * 5}, k=4, subs=True), bar=0.2)
    names = {c["component"]: c for c in report["components"]}
    assert set(names) == {"g", "g.over_ask"}
    assert names["g.over_ask"]["mean_reward"] == pytest.approx(0.75)
    assert names["g"]["signal"] == pytest.approx(1.0)
    assert _tag(report, "t")["class"] == CLEARS  # pass@1 0.25 >= bar 0.2


def test_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        cusp_report(_results({"t": [[1]]}, k=1))


def test_temperature_zero_is_warned() -> None:
    report = cusp_report(_results({"t": [[0, 0]]}, k=2), temperature=0.0)
    assert report["warnings"] and "temperature 0" in report["warnings"][0]


@pytest.mark.parametrize(("before", "after", "significant", "label"), [
    (0.10, 0.50, True, TUNE_CUSP),      # the interview's 10% -> 50%
    (0.10, 0.90, True, TUNE_CLEARS),
    (0.50, 0.45, True, TUNE_WORSE),
    (0.10, 0.30, False, TUNE_NONE),
    (0.00, 0.02, False, TUNE_OUT),
])
def test_fine_tune_rule_of_thumb(before: float, after: float, significant: bool,
                                 label: str) -> None:
    assert fine_tune_label(before, after, significant) == label


def test_classifier_calls_on_simulated_ladder() -> None:
    """Items with a true pass rate p, sampled k = 8 times: the call follows the rate."""
    rng = random.Random(0)

    def tag_of(rate_of_item: list[float]) -> list[list[float]]:
        return [[1.0 if rng.random() < p else 0.0 for _ in range(8)] for p in rate_of_item]

    per_tag = {"always": tag_of([0.97] * 40), "sometimes": tag_of([0.3] * 40),
               "rarely": tag_of([0.0] * 34 + [0.1] * 6), "never": tag_of([0.0] * 40)}
    report = cusp_report(_results(per_tag, k=8))
    calls = {t["tag"]: t["class"] for t in report["tags"]}
    assert calls["always"] == CLEARS and calls["sometimes"] == SFT
    assert calls["rarely"] == CUSP and calls["never"] == OUT


def test_cli_on_a_stored_run(tmp_path: Path) -> None:
    """`posttrain cusp --run` on a stored run with 3 epochs (no model needed for --run)."""
    from posttrain.runner.store import Store

    store_path = tmp_path / "s.db"
    with Store(store_path) as store:
        items = [Item(id=f"i{i}", data={"q": i}, tags=["a" if i < 3 else "b"]) for i in range(6)]
        run = store.create_run(run_key="k", eval_name="e", eval_path=None, eval_hash="h",
                               model="m", variant="default", epochs=3, items=items,
                               config={"grader_names": ["g"], "pass_bar": 0.9})
        for item in items:
            for epoch in range(3):
                value = 1.0 if (item.tags == ["a"] and epoch == 0) else 0.0
                store.record_sample(run.id, item.id, epoch, completion=Completion(text="x"),
                                    request_key=None, attempts=1,
                                    scores=[Score(value=value, passed=value == 1.0, name="g")])
    out = subprocess.run([sys.executable, "-m", "posttrain.cli", "cusp", "--run", run.id,
                          "--store", str(store_path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    calls = {t["tag"]: t["class"] for t in report["tags"]}
    assert calls == {ALL_ITEMS: CUSP, "a": SFT, "b": OUT}
    text = subprocess.run([sys.executable, "-m", "posttrain.cli", "cusp", "--run", run.id,
                           "--store", str(store_path)], capture_output=True, text=True)
    assert "pass@3" in text.stdout and "no signal for RFT" in text.stdout


def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "posttrain.cli", "cusp", "x.yaml", "--model", "m",
                          "--k", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "--k" in out.stderr


def test_compare_labels_tags_after_fine_tuning(tmp_path: Path) -> None:
    from posttrain.analysis.compare import compare_runs
    from posttrain.analysis.views import compare_text
    from posttrain.cli.analysis import _is_fine_tune

    before = _results({"lifted": [[0.0]] * 36 + [[1.0]] * 4, "flat": [[0.0]] * 40}, k=1)
    after = _results({"lifted": [[0.0]] * 20 + [[1.0]] * 20, "flat": [[0.0]] * 40}, k=1)
    report = compare_runs(before, after, fine_tune=True)
    labels = {g["group"]: g["fine_tune"] for g in report["groups"]}
    assert labels == {"lifted": TUNE_CUSP, "flat": TUNE_OUT}  # 10% -> 50%; 0% -> 0%
    assert "after fine-tuning" in compare_text(report)
    assert all("fine_tune" not in g for g in compare_runs(before, after)["groups"])
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / "posttrain_train.json").write_text(json.dumps({"base_model": "hf:/models/base"}))
    assert _is_fine_tune("hf:/models/base", f"hf:{tuned}")
    assert not _is_fine_tune("hf:/models/other", f"hf:{tuned}")
    assert not _is_fine_tune("hf:/models/base", "openai:gpt-4.1")


def test_the_pass_rate_of_a_run_whose_every_request_failed_is_zero() -> None:
    """Nothing passed: 0.0, as the headline score says (it read "-", as if no grader gave a
    pass verdict)."""
    from posttrain.analysis.report import summarize

    failed = summarize(_results({"t": [[None, None], [None, None]]}, k=2))
    assert failed["pass_rate"] == 0.0 and failed["score"] == 0.0
    assert summarize(_results({"t": [[1, 0], [None, 1]]}, k=2))["pass_rate"] == 0.5


def test_grouping_by_a_field_keeps_the_items_without_it() -> None:
    """``--by FIELD``: an item without the field is in ``(no FIELD)``, not left out of every
    group (the groups added up to fewer items than the run)."""
    from posttrain.analysis.selection import item_groups

    results = _results({"t": [[1, 1], [0, 0], [1, 0]]}, k=2)
    results.items[0].data["level"] = "easy"
    results.items[1].data["level"] = ["hard", "easy"]
    groups = item_groups([results], "level")
    assert groups == {"(no level)": ["t-2"], "easy": ["t-0", "t-1"], "hard": ["t-1"]}
    rows = {row["tag"]: row for row in cusp_report(results, by="level")["tags"]}
    assert rows["(no level)"]["n"] == 1

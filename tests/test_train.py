"""Fast tests of the training side: data normalisation, runs → rows/pairs, exports, rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.eval import load_eval
from posttrain.runner.store import Store
from posttrain.train import export, quicktask
from posttrain.train.data import pairs_from_run, pairs_from_votes, rows_from_run
from posttrain.train.dpo import to_pair
from posttrain.train.reward import EvalReward
from posttrain.train.rft import baseline_warning, split_items
from posttrain.train.sft import to_prompt_completion
from posttrain.types import Completion, Score


@pytest.fixture()
def add_eval(tmp_path: Path):
    rows = quicktask.all_items()[:40]
    return load_eval(quicktask.write_eval(tmp_path / "ev", rows, name="add"))


def test_to_prompt_completion_accepts_both_shapes() -> None:
    row = to_prompt_completion({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "yo"}]})
    assert row == {"prompt": [{"role": "user", "content": "hi"}],
                   "completion": [{"role": "assistant", "content": "yo"}]}
    row = to_prompt_completion({"prompt": "hi", "completion": "yo"})
    assert row["prompt"][0]["content"] == "hi" and row["completion"][0]["content"] == "yo"
    with pytest.raises(UserError):
        to_prompt_completion({"messages": [{"role": "user", "content": "hi"}]}, line=3)
    with pytest.raises(UserError):
        to_prompt_completion({"text": "x"})


def test_to_pair_accepts_hosted_format() -> None:
    hosted = {"input": {"messages": [{"role": "user", "content": "q"}]},
              "preferred_output": [{"role": "assistant", "content": "good"}],
              "non_preferred_output": [{"role": "assistant", "content": "bad"}]}
    pair = to_pair(hosted)
    assert pair["chosen"][0]["content"] == "good" and pair["rejected"][0]["content"] == "bad"
    assert to_pair({"prompt": "q", "chosen": "good", "rejected": "bad"}) == pair
    with pytest.raises(UserError):
        to_pair({"prompt": "q", "chosen": "good"})


def test_quicktask_grader_passes_only_the_exact_json(add_eval) -> None:
    item = add_eval.items[0]
    grader = add_eval.graders[0]
    good = Completion(text=item.data["expected"]).to_sample()
    assert grader.grade(good, item.data).value == 1.0
    prose = Completion(text=f"The answer is {item.data['answer']}.").to_sample()
    assert grader.grade(prose, item.data).value == 0.0


def test_reward_equals_grader_score(add_eval) -> None:
    reward = EvalReward(add_eval)
    items = add_eval.items[:6]
    texts = [items[0].data["expected"], "The answer is 3.", '{"answer": 99}',
             items[3].data["expected"] + " ", "", items[5].data["expected"]]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    values = reward([[]] * 6, completions, item_json=[json.dumps(i.data) for i in items])
    expected = [add_eval.graders[0].grade(Completion(text=t.strip()).to_sample(), i.data).value
                for t, i in zip(texts, items, strict=True)]
    assert values == expected == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert reward.stats["scored"] == 6


def test_reward_counts_unscored(add_eval) -> None:
    from posttrain.graders.base import Grader
    from posttrain.train.reward import NoScoredReward

    class Broken(Grader):
        def grade(self, sample, item):
            if sample["output_text"] == "x":
                return Score.unscored("no reference")
            return Score(value=1.0, passed=True)

    add_eval.graders = [Broken("broken")]
    reward = EvalReward(add_eval)
    item = add_eval.items[0]
    # unscored: no reward (TRL skips it) rather than 0 (trained as wrong)
    assert reward([[], []], ["x", "y"], item_json=[json.dumps(item.data)] * 2) == [None, 1.0]
    assert reward.stats["unscored"] == 1
    # once a reward was scored, an all-unscored step is skipped (counted), not fatal
    assert reward([[]], ["x"], item_json=[json.dumps(item.data)]) == [None]
    fresh = EvalReward(add_eval)  # none scored in its first 3 steps: training stops
    with pytest.raises(NoScoredReward, match="no reference"):
        for _ in range(3):
            fresh([[]], ["x"], item_json=[json.dumps(item.data)])


def test_split_is_disjoint_and_seeded(add_eval) -> None:
    a = split_items(add_eval.items, 0.25, 5, seed=1)
    b = split_items(add_eval.items, 0.25, 5, seed=1)
    ids = [[i.id for i in part] for part in (a.train, a.validation, a.test)]
    assert ids == [[i.id for i in part] for part in (b.train, b.validation, b.test)]
    assert len(a.test) == 10 and len(a.validation) == 5 and len(a.train) == 25
    assert not set(ids[0]) & set(ids[2]) and not set(ids[1]) & set(ids[2])


def test_baseline_warning() -> None:
    assert baseline_warning(0.0) and baseline_warning(1.0)
    assert baseline_warning(0.4) is None


def _store_with_run(tmp_path: Path, add_eval, epochs: int = 2,
                    config: dict | None = None) -> tuple[Path, str]:
    path = tmp_path / "posttrain.db"
    items = add_eval.items[:3]
    with Store(path) as store:
        run = store.create_run(run_key="k", eval_name=add_eval.name,
                               eval_path=str(add_eval.source), eval_hash="h", model="m",
                               variant="default", epochs=epochs, config=config or {},
                               items=items)
        grader = add_eval.graders[0]
        for index, item in enumerate(items):
            for epoch in range(epochs):
                text = item.data["expected"] if (index + epoch) % 2 == 0 else "The answer is 0."
                completion = Completion(text=text)
                score = grader.grade(completion.to_sample(), item.data)
                score.name = grader.name
                store.record_sample(run.id, item.id, epoch, completion=completion,
                                    request_key=None, attempts=1, scores=[score])
        store.finish_run(run.id)
    return path, run.id


def test_training_data_refuses_prompts_the_run_did_not_send(tmp_path: Path, add_eval) -> None:
    """Prompts are rebuilt from the eval file: when its templates were edited since the run
    (the run's recorded prompt digest differs), the answers were to other prompts: refused,
    not exported under the new prompt. The same digest exports as before."""
    path, run_id = _store_with_run(tmp_path, add_eval, config={"prompts": "edited-since"})
    with pytest.raises(UserError, match="were edited since the run"):
        rows_from_run(path, run_id, only_passed=True)
    path, run_id = _store_with_run(tmp_path / "same", add_eval,
                                   config={"prompts": add_eval.prompt_digest("default")})
    assert len(rows_from_run(path, run_id, only_passed=True)) == 3


def test_rows_and_pairs_from_run(tmp_path: Path, add_eval) -> None:
    path, run_id = _store_with_run(tmp_path, add_eval)
    rows = rows_from_run(path, run_id, only_passed=True)
    assert len(rows) == 3
    assert all(json.loads(r["completion"])["answer"] >= 0 for r in rows)
    assert rows[0]["prompt"] == add_eval.request_for(add_eval.items[0]).messages
    assert len(rows_from_run(path, "latest", only_passed=False)) == 6
    pairs = pairs_from_run(path, run_id)
    assert len(pairs) == 3
    assert all(p["rejected"] == "The answer is 0." for p in pairs)
    with pytest.raises(UserError):
        rows_from_run(path, "nope", only_passed=False)


def test_pairs_from_votes(tmp_path: Path, add_eval) -> None:
    path, run_a = _store_with_run(tmp_path, add_eval, epochs=1)
    _, run_b = _store_with_run(tmp_path, add_eval, epochs=1)
    with Store(path) as store:
        store.add_vote(run_a, run_b, add_eval.items[1].id, "b")
        store.add_vote(run_a, run_b, add_eval.items[0].id, "tie")
    with pytest.raises(UserError):  # identical answers: no usable pair
        pairs_from_votes(path)


def test_export_formats(tmp_path: Path, add_eval) -> None:
    sft = export.sft_records([{"prompt": "q", "completion": "a"}])
    assert sft == [{"messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "a"}]}]
    dpo = export.dpo_records([{"prompt": "q", "chosen": "a", "rejected": "b"}])
    assert dpo[0]["input"]["messages"][0]["content"] == "q"
    assert dpo[0]["preferred_output"] == [{"role": "assistant", "content": "a"}]
    assert dpo[0]["non_preferred_output"] == [{"role": "assistant", "content": "b"}]
    rft = export.rft_records(add_eval)
    assert rft[0]["messages"][0]["content"] == add_eval.items[0].data["prompt"]
    assert rft[0]["expected"] == add_eval.items[0].data["expected"]
    assert export.rft_grader(add_eval.grader_specs)["type"] == "string_check"
    multi = export.rft_grader([{"type": "string_check", "name": "a-1"},
                               {"type": "string_check", "name": "b"}])
    assert multi["type"] == "multi" and multi["calculate_output"] == "(a_1 + b) / 2"


def test_cli_export(tmp_path: Path, add_eval, capsys) -> None:
    from posttrain.cli.train import main

    path, _ = _store_with_run(tmp_path, add_eval)
    out = tmp_path / "sft.jsonl"
    assert main(["export", "openai-ft", "--kind", "sft", "--store", str(path),
                 "--from-run", "latest", "--only-passed", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    out = tmp_path / "rft.jsonl"
    assert main(["export", "openai-ft", "--kind", "rft", "--eval", str(add_eval.source),
                 "-o", str(out)]) == 0
    grader = json.loads((tmp_path / "rft.grader.json").read_text())
    assert grader["reference"] == "{{item.expected}}"
    assert main(["export", "openai-ft", "--kind", "rft", "-o", str(out)]) == 2
    assert main(["train", "sft", "--model", "hf:" + str(tmp_path), "--data",
                 str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "m")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_training_rows_judge_answers_as_the_eval_does(tmp_path: Path, add_eval,
                                                      capsys: pytest.CaptureFixture) -> None:
    """``--only-passed`` and DPO scores read each answer's verdict as the eval counts it: the
    ``score:`` grader where the eval names one (it was the mean of every grader), unscored when
    a grader could not grade (one grader's pass made it a passing example); a tool-call answer
    keeps its calls; repeats across epochs are one row; what was left out is said."""
    from posttrain.types import Score

    path = tmp_path / "t.db"
    items = add_eval.items[:4]
    answers = {items[0].id: ("Paris", [("exact", 1.0, True, "scored"),
                                       ("style", 0.0, False, "scored")]),
               items[1].id: ("Rome", [("exact", 0.0, False, "scored"),
                                      ("style", 1.0, True, "scored")]),
               items[2].id: ("Lima", [("exact", 1.0, True, "scored"),
                                      ("style", None, None, "error")]),
               items[3].id: ("", [("exact", 1.0, True, "scored"),
                                  ("style", 1.0, True, "scored")])}
    runs = {}
    with Store(path) as store:
        for name, config in (("primary", {"primary": "exact",
                                          "grader_names": ["exact", "style"]}),
                             ("all", {"grader_names": ["exact", "style"]})):
            run = store.create_run(run_key=name, eval_name=add_eval.name,
                                   eval_path=str(add_eval.source), eval_hash="h", model=name,
                                   variant="default", epochs=2, config=config, items=items)
            for item in items:
                text, grades = answers[item.id]
                calls = ([{"id": "c1", "type": "function", "function": {
                    "name": "f", "arguments": "{}"}}] if not text else None)
                for epoch in range(2):
                    store.record_sample(
                        run.id, item.id, epoch, completion=Completion(text=text,
                                                                      tool_calls=calls),
                        request_key=None, attempts=1,
                        scores=[Score(name=g, value=v, passed=p, status=st)
                                for g, v, p, st in grades])
            store.finish_run(run.id)
            runs[name] = run.id
    rows = rows_from_run(path, runs["primary"], only_passed=True)
    texts = [r["completion"] if isinstance(r["completion"], str) else "calls" for r in rows]
    assert sorted(texts) == ["Lima", "Paris", "calls"]  # exact decides; epochs once each
    call_row = next(r for r in rows if not isinstance(r["completion"], str))
    assert call_row["completion"][0]["tool_calls"][0]["function"]["name"] == "f"
    assert "left out" in capsys.readouterr().err
    rows = rows_from_run(path, runs["all"], only_passed=True)
    assert [r["completion"] for r in rows if isinstance(r["completion"], str)] == []
    err = capsys.readouterr().err
    assert "unscored" in err and "scored and failed" in err

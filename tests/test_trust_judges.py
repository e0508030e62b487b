"""Judges use the same model-call path as the model under test; resume grades every answer
that lacks a grade; a missing grader is unscored, never replaced (issue 11, section 3)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from posttrain.analysis.report import summarize
from posttrain.analysis.results import combine, load_results
from posttrain.eval import eval_from_dict
from posttrain.models import build_model, model_config
from posttrain.models.retry import RetryPolicy
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.progress import Counters
from posttrain.runner.regrade import regrade_run
from posttrain.runner.store import Store
from posttrain.types import ChatRequest, Completion, Score


def _judged_eval(judge_spec: str, factory: Any, n: int = 4) -> Any:
    return eval_from_dict({
        "name": "judged",
        "items": [{"id": f"i{k}", "q": f"[[answer:{k}]]", "a": str(k),
                   "judge": f'[[answer:{{"result": {k % 2}}}]]'
                            + ("[[fault:503:1]]" if k == 0 else "")} for k in range(n)],
        "messages": [{"role": "user", "content": "{{item.q}}"}],
        "graders": [
            {"type": "string_check", "name": "exact", "operation": "eq",
             "input": "{{sample.output_text}}", "reference": "{{item.a}}"},
            {"type": "score_model", "name": "judge", "model": judge_spec,
             "input": [{"role": "user", "content": "{{item.judge}} rate: {{sample.output_text}}"}]},
        ]}, model_factory=factory)


def _options() -> RunOptions:
    return RunOptions(retry=RetryPolicy(max_retries=3, backoff_base_s=0.01))


def test_judge_retries_counts_and_cache(tmp_path, stub_server) -> None:
    spec = f"openai:stub?base_url={stub_server.base_url}"
    store = Store(tmp_path / "s.db")

    def factory(name: str) -> Any:
        return build_model(model_config(name))

    ev = _judged_eval(spec, factory)
    model = build_model(model_config(spec))

    async def go() -> Any:
        try:
            return await execute_eval(ev, [model], ["default"], store, _options())
        finally:
            await model.aclose()
            for grader in ev.graders:
                close = getattr(grader, "aclose", None)
                if close:
                    await close()

    (handle,) = asyncio.run(go())
    results = load_results(store, handle.run)
    judge = {s.item_id: s.grades["judge"] for s in results.samples}
    # the judge's 503 was retried with backoff, like the model's own calls
    assert all(g.status == "scored" for g in judge.values()), judge
    assert [judge[f"i{k}"].value for k in range(4)] == [0.0, 1.0, 0.0, 1.0]
    assert handle.counters.retries == 1
    # 4 answers + 5 judge attempts (one retried)
    assert handle.counters.requests == 9
    summary = summarize(results, requests=handle.counters.requests)
    # requests count attempts (the judge's retry included), as the live counters do
    assert summary["judge_requests"] == 5 and summary["requests"] == 9
    assert summary["retries"] == 1

    # regrade: the judge's answers come from the cache, no request is sent
    before = stub_server.stats()
    counters = Counters(label="regrade", total=0)
    assert regrade_run(store, handle.run.id, ev, counters=counters) == 4
    assert counters.requests == 0
    assert stub_server.stats() == before
    again = load_results(store, handle.run)
    assert [s.grades["judge"].value for s in again.samples] == [0.0, 1.0, 0.0, 1.0]


class _Fake:
    """A model under test or a judge, answering locally and recording its concurrency."""

    def __init__(self, name: str, reply: str, max_concurrency: int = 8) -> None:
        self.name = name
        self.cache_id = f"fake:{name}"
        self.max_concurrency = max_concurrency
        self.price = None
        self.reply = reply
        self.calls = 0
        self.active = 0
        self.peak = 0

    async def generate(self, request: ChatRequest) -> Completion:
        self.calls += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.005)
        self.active -= 1
        return Completion(text=self.reply if self.reply else request.messages[-1]["content"],
                          cost_usd=0.001)

    async def aclose(self) -> None:
        pass


def _fake_eval(judge: _Fake, n: int = 12, primary: str | None = None) -> Any:
    spec: dict[str, Any] = {
        "name": "fake", "items": [{"id": f"i{k}", "q": str(k)} for k in range(n)],
        "messages": [{"role": "user", "content": "{{item.q}}"}],
        "graders": [
            {"type": "string_check", "name": "exact", "operation": "eq",
             "input": "{{sample.output_text}}", "reference": "{{item.q}}"},
            {"type": "score_model", "name": "judge", "model": "j", "input": "{{sample.output_text}}"},
        ]}
    if primary:
        spec["score"] = primary
    return eval_from_dict(spec, model_factory=lambda _spec: judge)


def test_judge_endpoint_concurrency_limit_and_cost(tmp_path) -> None:
    judge = _Fake("judge", '{"result": 1}', max_concurrency=2)
    ev = _fake_eval(judge)
    store = Store(tmp_path / "s.db")
    (handle,) = asyncio.run(execute_eval(ev, [_Fake("m", "", 16)], ["default"], store,
                                         RunOptions(concurrency=16)))
    assert judge.calls == 12 and judge.peak <= 2
    summary = summarize(load_results(store, handle.run))
    assert summary["judge_cost_usd"] == pytest.approx(0.012)
    assert summary["cost_usd"] == pytest.approx(0.024)  # 12 answers + 12 judge calls
    assert handle.counters.cost_usd == pytest.approx(0.024)


def test_resume_grades_answers_that_lack_the_judge(tmp_path) -> None:
    """A run killed between an answer's commit and its judge's commit gets the judge on resume."""
    judge = _Fake("judge", '{"result": 1}')
    model = _Fake("m", "")
    ev = _fake_eval(judge, n=6)
    path = tmp_path / "s.db"
    store = Store(path)
    (handle,) = asyncio.run(execute_eval(ev, [model], ["default"], store, RunOptions()))
    store.close()
    with sqlite3.connect(path) as conn:  # as if killed before these judges were committed
        conn.execute("DELETE FROM scores WHERE grader = 'judge' AND item_id IN ('i1', 'i4')")
        conn.execute("UPDATE runs SET status = 'running'")
        conn.execute("DELETE FROM cache WHERE key NOT IN (SELECT request_key FROM samples)")
    store = Store(path)
    broken = load_results(store, handle.run.id)
    missing = {s.item_id: s for s in broken.samples if "judge" not in s.grades}
    assert set(missing) == {"i1", "i4"}
    assert all(s.status == "unscored" for s in missing.values())  # never the mean of the others
    assert summarize(broken)["score"] == pytest.approx(4 / 6, abs=1e-4)

    calls_before = model.calls
    (again,) = asyncio.run(execute_eval(ev, [model], ["default"], store, RunOptions()))
    assert again.run.id == handle.run.id and model.calls == calls_before
    healed = load_results(store, again.run)
    assert all(set(s.grades) == {"exact", "judge"} for s in healed.samples)
    assert summarize(healed)["score"] == 1.0


def test_missing_primary_grader_is_unscored_not_the_mean_of_others() -> None:
    grades = {"exact": Score(1.0, True, name="exact")}
    assert combine(grades, "judge")[0] == "unscored"
    assert combine(grades, None, ["exact", "judge"])[0] == "unscored"
    assert combine(grades, None, ["exact"]) == ("scored", 1.0, True, "")
    failed = {**grades, "judge": Score.error("judge openai:x failed: timeout", name="judge")}
    status, value, _passed, reason = combine(failed, None, ["exact", "judge"])
    assert (status, value) == ("unscored", None) and "judge" in reason


def test_eval_score_equals_rft_reward_on_every_sample(tmp_path) -> None:
    """pass, fail, missing field, unparseable judge, grader error: the reward is the eval's
    score of the same answer, and None (skipped by TRL) where the eval has no score."""
    import json

    from posttrain.train.reward import EvalReward

    class Judge:
        name = cache_id = "judge"
        max_concurrency = 4

        async def generate(self, request: ChatRequest) -> Completion:
            text = request.messages[-1]["content"]
            if "garble" in text:
                return Completion(text="I think it is fine?")
            if "boom" in text:
                raise RuntimeError("judge crashed")
            return Completion(text='{"result": 1}')

    answers = {"pass": '{"table": "users"}', "fail": '{"table": "orders"}',
               "missing": "users, I think", "garble": '{"table": "users", "note": "garble"}',
               "boom": '{"table": "users", "note": "boom"}'}
    ev = eval_from_dict({
        "name": "mixed", "items": [{"id": k, "q": k, "table": "users"} for k in answers],
        "messages": [{"role": "user", "content": "{{item.q}}"}],
        "graders": [{"type": "multi", "name": "sql", "calculate_output": "table * judge",
                     "graders": {
                         "table": {"type": "string_check", "input": "{{sample.output_json.table}}",
                                   "reference": "{{item.table}}", "operation": "eq"},
                         "judge": {"type": "score_model", "model": "j",
                                   "input": "{{sample.output_text}}"}}}]},
        model_factory=lambda _spec: Judge())

    class Model(_Fake):
        async def generate(self, request: ChatRequest) -> Completion:
            return Completion(text=answers[request.messages[-1]["content"]])

    store = Store(tmp_path / "s.db")
    (handle,) = asyncio.run(execute_eval(ev, [Model("m", "")], ["default"], store, RunOptions()))
    by_item = {s.item_id: s for s in load_results(store, handle.run).samples}
    reward = EvalReward(ev)
    rewards = reward([[]] * len(answers), list(answers.values()),
                     item_json=[json.dumps(item.data) for item in ev.items])
    for item, value in zip(ev.items, rewards, strict=True):
        sample = by_item[item.id]
        expected = sample.value if sample.status == "scored" else None
        assert value == expected, (item.id, sample.status, sample.reason)
    assert rewards == [1.0, 0.0, 0.0, None, None]
    assert reward.stats == {"scored": 3, "unscored": 1, "error": 1}

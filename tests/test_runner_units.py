"""Runner behaviour that needs no server: provider bugs, grader bugs, group commits."""

from __future__ import annotations

import asyncio

from posttrain.analysis.results import load_results
from posttrain.eval import eval_from_dict
from posttrain.models.retry import RetryPolicy
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.store import Store
from posttrain.types import ChatRequest, Completion


def _eval(n: int = 5, grader: dict | None = None):
    return eval_from_dict({
        "name": "units", "items": [{"id": f"i{k}", "q": str(k), "a": str(k)} for k in range(n)],
        "messages": [{"role": "user", "content": "{{item.q}}"}],
        "graders": [grader or {"type": "string_check", "name": "m", "operation": "eq",
                               "input": "{{sample.output_text}}", "reference": "{{item.a}}"}]})


class EchoModel:
    name = "echo"
    cache_id = "test:echo"
    max_concurrency = 4
    price = None

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls = 0

    async def generate(self, request: ChatRequest) -> Completion:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return Completion(text=request.messages[-1]["content"], latency_s=0.001)

    async def aclose(self) -> None:
        pass


def _run(tmp_path, model, ev) -> dict:
    store = Store(tmp_path / "s.db")
    options = RunOptions(retry=RetryPolicy(max_retries=2, backoff_base_s=0.001))
    (handle,) = asyncio.run(execute_eval(ev, [model], ["default"], store, options))
    return {"results": load_results(store, handle.run), "counters": handle.counters}


def test_a_provider_bug_is_each_samples_error_not_a_crash(tmp_path):
    model = EchoModel(fail_with=ImportError("cannot import name 'X'"))
    out = _run(tmp_path, model, _eval())
    samples = out["results"].samples
    assert len(samples) == 5 and all(s.status == "error" for s in samples)
    assert "provider raised ImportError" in samples[0].reason
    assert model.calls == 5  # not retried: a bug does not heal by waiting


def test_a_grader_bug_is_an_error_grade_and_the_run_goes_on(tmp_path):
    ev = _eval(grader={"type": "string_check", "name": "m", "operation": "eq",
                       "input": "{{sample.output_text}}", "reference": "{{item.a}}"})

    def broken(sample, item):
        raise RuntimeError("boom")

    ev.graders[0].grade = broken  # type: ignore[method-assign]
    out = _run(tmp_path, EchoModel(), ev)
    # the grader's own problem: the grade is an error, the sample unscored (never the model's
    # failure); the headline still counts it 0
    samples = out["results"].samples
    assert [s.status for s in samples] == ["unscored"] * 5
    assert all(s.grades["m"].status == "error" for s in samples)
    assert "RuntimeError: boom" in samples[0].reason


def test_pipelined_answers_all_stored_once(tmp_path):
    out = _run(tmp_path, EchoModel(), _eval(n=50))
    results = out["results"]
    assert len(results.samples) == 50 and all(s.value == 1.0 for s in results.samples)
    assert out["counters"].done == 50 and out["counters"].requests == 50


def test_problems_alike_but_for_numbers_are_counted_together():
    from types import SimpleNamespace

    from posttrain.analysis.report import _problems

    samples = [SimpleNamespace(status="error", reason=f"prompt of {n} tokens does not fit")
               for n in (600, 700, 600)]
    samples += [SimpleNamespace(status="unscored", reason="judge: no number"),
                SimpleNamespace(status="scored", reason="")]
    assert _problems(samples) == {"error: prompt of 600 tokens does not fit (and alike)": 3,
                                  "unscored: judge: no number": 1}

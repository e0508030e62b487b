"""Fast checks of the Ray backend's parts without a cluster: the worker's per-batch stream (run
in-process against the stub server), eval shipping, worker sizing; plus the vllm: provider's
import safety and the accelerate launcher."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from posttrain.errors import UserError
from posttrain.eval import load_eval
from posttrain.models import ModelConfig, build_model, model_config
from posttrain.models.base import FatalError
from posttrain.models.retry import RetryPolicy
from posttrain.runner.executor import RunOptions
from posttrain.runner.store import Store
from posttrain.types import ChatRequest
from tests.conftest import StubServer, write_eval

pytest.importorskip("ray")

from posttrain.runner import ray_backend  # noqa: E402  (needs ray for cloudpickle)


def test_worker_streams_every_store_write(stub_server: StubServer, tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "a? [[answer:Paris]]", "answer": "Paris", "category": "x"},
            {"id": "b", "question": "b? [[answer:Rome]]", "answer": "Paris", "category": "x"},
            {"id": "c", "question": "c [[fault:400:always]]", "answer": "Paris", "category": "y"}]
    path = write_eval(tmp_path, rows)
    eval_ = load_eval(path)
    config = model_config(f"openai:stub?base_url={stub_server.base_url}")
    options = RunOptions(retry=RetryPolicy(max_retries=1, backoff_base_s=0.01))
    worker = ray_backend.RayEvalWorker(config, ray_backend.EvalRef.of(eval_), options, 2)
    with Store(tmp_path / "s.db") as store:
        run = store.create_run(run_key="k", eval_name="stubby", eval_path=None, eval_hash="h",
                               model=config.name, variant="default", epochs=1, config={},
                               items=eval_.items)

        async def collect() -> list[tuple[Any, ...]]:
            try:
                return [event async for events in worker.run_batch(
                    run, "default", [(item, 0) for item in eval_.items]) for event in events]
            finally:
                await worker.aclose()

        events = asyncio.run(collect())
    records = {e[1]: e[3] for e in events if e[0] == "record"}
    done = {e[1]: e[3] for e in events if e[0] == "done"}
    assert set(records) == set(done) == {"a", "b", "c"}
    for item_id in records:  # each answer is streamed before its item's end marker
        assert events.index(next(e for e in events if e[0] == "record" and e[1] == item_id)) < \
            events.index(next(e for e in events if e[0] == "done" and e[1] == item_id))
    assert [s.value for s in records["a"]["scores"]] == [1.0]
    assert [s.value for s in records["b"]["scores"]] == [0.0]
    assert records["a"]["cache"] is True and records["a"]["request_key"]
    assert records["c"]["completion"] is None and "400" in records["c"]["error"]
    assert done["c"]["errors"] == 1 and done["a"]["requests"] == 1
    assert stub_server.stats()["total_successes"] == 2


def test_eval_ref_checks_the_workers_copy(tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "q", "answer": "x", "category": "x"}]
    path = write_eval(tmp_path, rows)
    ref = ray_backend.EvalRef.of(load_eval(path))
    assert ref.blob is None and ref.path == str(path.resolve())
    assert ref.load(None, 10).fingerprint() == ref.fingerprint
    write_eval(tmp_path, rows + [{"id": "b", "question": "q2", "answer": "y", "category": "x"}])
    with pytest.raises(RuntimeError, match="differs"):
        ref.load(None, 10)

    in_memory = load_eval(path)
    in_memory.source = None
    shipped = ray_backend.EvalRef.of(in_memory)
    assert shipped.blob is not None
    assert shipped.load(None, 10).fingerprint() == in_memory.fingerprint()


def test_worker_sizing() -> None:
    api = ModelConfig(name="m", provider="openai", model="m")
    assert ray_backend._workers_for(api, None, {"CPU": 8.0}) == (8, {"num_cpus": 0})
    assert ray_backend._workers_for(api, 3, {"CPU": 8.0})[0] == 3
    # --concurrency is the total across the cluster for API models
    assert ray_backend._per_worker(api, RunOptions(concurrency=16), 8) == 2
    assert ray_backend._per_worker(api, RunOptions(concurrency=3), 8) == 1
    tp = ModelConfig(name="v", provider="vllm", model="/m", options={"tensor_parallel_size": "2"})
    assert ray_backend._workers_for(tp, None, {"CPU": 32.0, "GPU": 8.0}) == (
        4, {"num_gpus": 2, "num_cpus": 1})
    with pytest.raises(UserError, match="tensor_parallel_size needs 2"):
        ray_backend._workers_for(tp, None, {"CPU": 32.0})
    assert ray_backend._per_worker(tp, RunOptions(), 4) == 256


# ---- vllm: provider -------------------------------------------------------------------------
def test_vllm_model_imports_without_vllm_and_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    model = build_model(model_config("vllm:/models/x?tensor_parallel_size=2&enforce_eager=true"))
    assert model.tensor_parallel_size == 2
    assert model.engine_kwargs == {"tensor_parallel_size": 2, "enforce_eager": True}
    with pytest.raises(FatalError, match="need the vllm package"):
        asyncio.run(model.generate(ChatRequest(messages=[{"role": "user", "content": "hi"}])))
    with pytest.raises(UserError, match="unknown vllm option 'tensor_parallel'"):
        build_model(model_config("vllm:/models/x?tensor_parallel=2"))
    with pytest.raises(UserError, match="must be a whole number"):
        build_model(model_config("vllm:/models/x?tensor_parallel_size=two"))


class _FakeLLM:
    """Records engine calls. This checks our wiring only (batching, request mapping, output
    parsing); the engine itself needs a GPU and is checked on a GPU machine."""

    calls: list[tuple[list[Any], list[Any], dict[str, Any]]] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def chat(self, conversations: list[Any], params: list[Any], **kwargs: Any) -> list[Any]:
        _FakeLLM.calls.append((conversations, params, kwargs))
        outputs = []
        for conversation in conversations:
            text = conversation[-1]["content"].upper()
            if kwargs.get("tools"):
                text = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
            choice = types.SimpleNamespace(text=text, token_ids=[1, 2, 3], finish_reason="stop")
            outputs.append(types.SimpleNamespace(prompt_token_ids=[0] * 5, outputs=[choice]))
        return outputs


def test_vllm_model_batches_concurrent_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("vllm")
    fake.LLM = _FakeLLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    _FakeLLM.calls.clear()
    model = build_model(model_config("vllm:/models/x?max_tokens=7"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]

    async def go() -> list[Any]:
        requests = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], temperature=0.5)
                    for i in range(20)]
        requests.append(ChatRequest(messages=[{"role": "user", "content": "t"}], tools=tools))
        try:
            return await asyncio.gather(*(model.generate(r) for r in requests))
        finally:
            await model.aclose()

    results = asyncio.run(go())
    assert [r.text for r in results[:3]] == ["Q0", "Q1", "Q2"]
    assert results[-1].tool_calls[0]["function"]["name"] == "f"
    assert results[0].input_tokens == 5 and results[0].output_tokens == 3
    assert len(_FakeLLM.calls) == 2  # 20 plain requests in one engine call, the tools one apart
    plain = next(call for call in _FakeLLM.calls if "tools" not in call[2])
    assert len(plain[0]) == 20
    assert plain[1][0] == {"temperature": 0.5, "max_tokens": 7}


# ---- accelerate launcher ----------------------------------------------------------------------
def test_accelerate_command_and_config_checks(tmp_path: Path) -> None:
    from posttrain.train import launch

    argv = ["train", "sft", "--accelerate", "a.yaml", "--model", "m", "--accelerate=b.yaml"]
    assert launch.strip_accelerate_flag(argv) == ["train", "sft", "--model", "m"]
    command = launch.accelerate_command("cfg.yaml", argv)
    assert command[1:5] == ["-m", "accelerate.commands.launch", "--config_file", "cfg.yaml"]
    assert command[5:] == ["-m", "posttrain.cli", "train", "sft", "--model", "m"]
    with pytest.raises(UserError, match="not found"):
        launch.check_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="mapping"):
        launch.check_config(bad)


@pytest.mark.slow
def test_accelerate_really_launches_posttrain(tmp_path: Path) -> None:
    config = tmp_path / "cpu.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\n"
                      "num_processes: 1\nuse_cpu: true\nmixed_precision: 'no'\n")
    code = (
        "import sys; from posttrain.train.launch import launch_with_accelerate; "
        f"sys.exit(launch_with_accelerate({str(config)!r}, ['--version', '--accelerate', 'x']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "posttrain" in result.stdout


class _LengthJudge:
    """An async grader (is_async, like a model judge) that scores the answer's length."""

    is_async = True
    name = "judge"

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Any:
        from posttrain.types import Score

        return Score(value=min(1.0, len(sample["output_text"]) / 10), passed=None)


def test_answer_kept_and_judged_in_driver_when_worker_dies_before_its_judge(
        tmp_path: Path) -> None:
    from posttrain.runner.executor import plan_runs
    from posttrain.runner.progress import Progress
    from posttrain.types import Completion, Score

    path = write_eval(tmp_path, [{"id": "a", "question": "q", "answer": "x", "category": "c"}])
    eval_ = load_eval(path)
    eval_.graders.append(_LengthJudge())  # type: ignore[arg-type]
    model = build_model(model_config("openai:stub?base_url=http://127.0.0.1:9/v1"))
    with Store(tmp_path / "s.db") as store:
        async def go() -> None:
            # the endpoint is never called here (nothing to answer): no preflight
            [plan] = await plan_runs(eval_, [model], ["default"], store,
                                     RunOptions(preflight=False), Progress(enabled=False))
            driver = ray_backend._Driver([plan], store, Progress(enabled=False))
            answered: dict[tuple[str, int], list[Score]] = {}
            sync = [Score(value=1.0, passed=True, name="exact")]
            # the worker's answer (with its synchronous score) arrived, then the worker died
            driver.apply(0, ("record", "a", 0, {
                "completion": Completion(text="0123456789abc"), "request_key": "k",
                "attempts": 1, "scores": sync, "cache": True}), answered)
            await driver.judge_orphans(0, answered, {("a", 0): eval_.items[0]})
            rows = {r["grader"]: r["value"] for r in store.scores(plan.handle.run.id)}
            assert rows == {"exact": 1.0, "judge": 1.0}
            assert store.cache_get("k") is not None
            assert plan.handle.counters.done == 1
            await model.aclose()

        asyncio.run(go())


async def two_turns(request: ChatRequest, item: Any, generate: Any) -> Any:
    """A two-turn solver for the test below."""
    first = await generate(request)
    follow = ChatRequest(messages=request.messages + [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": f"again {item.id} [[answer:Paris]]"}])
    final = await generate(follow)
    final.transcript = follow.messages + [{"role": "assistant", "content": final.text}]
    return final


def test_solver_turns_cached_through_the_driver_and_read_back_by_workers(
        stub_server: StubServer, tmp_path: Path) -> None:
    rows = [{"id": f"t{i}", "question": f"t{i} [[answer:Rome]]", "answer": "Paris",
             "category": "x"} for i in range(3)]
    path = write_eval(tmp_path, rows, extra="solver: tests.test_ray_units:two_turns\n")
    eval_ = load_eval(path)
    config = model_config(f"openai:stub?base_url={stub_server.base_url}")
    options = RunOptions()
    db = tmp_path / "s.db"
    with Store(db) as store:
        run = store.create_run(run_key="k", eval_name="stubby", eval_path=None, eval_hash="h",
                               model=config.name, variant="default", epochs=1, config={},
                               items=eval_.items)

        async def batch() -> list[tuple[Any, ...]]:
            worker = ray_backend.RayEvalWorker(config, ray_backend.EvalRef.of(eval_), options, 2,
                                               None, str(db))
            try:
                return [e async for events in worker.run_batch(
                    run, "default", [(item, 0) for item in eval_.items]) for e in events]
            finally:
                await worker.aclose()

        first = asyncio.run(batch())
        turns = [e for e in first if e[0] == "cache"]
        assert len(turns) == 6
        for _, key, record, meta in turns:  # what the driver does with these events
            store.cache_put(key, record, **meta)
        assert stub_server.stats()["total_successes"] == 6
        again = asyncio.run(batch())
        done = [e[3] for e in again if e[0] == "done"]
        assert [d["requests"] for d in done] == [0, 0, 0]
        assert [d["cached"] for d in done] == [1, 1, 1]
        assert stub_server.stats()["total_successes"] == 6
        records = [e[3] for e in again if e[0] == "record"]
        assert all(r["scores"][0].value == 1.0 for r in records)


def test_a_multi_turn_sample_counts_its_retries_not_its_turns(stub_server: StubServer,
                                                              tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    """Two turns per sample, no fault: 0 retries (it said 1 per sample: attempts were summed
    over turns); one 500 on t0's first turn: 1 retry in the whole run."""
    import json

    from posttrain.cli import main

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"id": "t0", "question": "t0 [[fault:500:1]] [[answer:Rome]]", "answer": "Paris"},
            {"id": "t1", "question": "t1 [[answer:Rome]]", "answer": "Paris"},
            {"id": "t2", "question": "t2 [[answer:Rome]]", "answer": "Paris"}]
    path = write_eval(tmp_path, rows, extra="solver: tests.test_ray_units:two_turns\n")
    assert main(["eval", str(path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
                 "--json", "--no-progress", "--max-retries", "2"]) in (0, 1)
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["errors"] == 0 and run["score"] == 1.0
    assert run["retries"] == 1
    assert stub_server.stats()["total_attempts"] == 7  # 3 samples x 2 turns + 1 retry

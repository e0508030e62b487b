"""The RFT reward of the grit bench task (bench/grit_env.py) is the tool_use suite's grade: it
credits a retry that finishes a transient fault and an honest failure report under a permanent
one, and gives nothing for a fake success, a malformed tool call or retrying to the turn cap."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from posttrain.eval import Eval, load_eval
from posttrain.graders.registry import build_grader
from posttrain.types import ChatRequest, Completion, Item

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def grit_eval(tmp_path_factory: pytest.TempPathFactory) -> Eval:
    work = tmp_path_factory.mktemp("grit")
    shutil.copy(BENCH / "grit_env.py", work / "grit_env.py")
    (work / "eval.yaml").write_text(_module("bench_agent_tools").GRIT_YAML)
    rows = _module("grit_env").make_items(60, seed=0, fault_share=0.4, permanent_share=0.3)
    (work / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_eval(work / "eval.yaml")


def scripted(*replies: Completion) -> Any:
    queue = list(replies)

    async def generate(request: ChatRequest) -> Completion:
        return queue.pop(0)

    return generate


def tool(name: str) -> Completion:
    return Completion(text="", tool_calls=[{"function": {"name": name, "arguments": "{}"}}])


def play(ev: Eval, item: Item, *turns: Completion) -> Completion:
    return asyncio.run(ev.load_solver()(ev.request_for(item), item, scripted(*turns)))


def rewards(ev: Eval, item: Item, *episodes: Completion) -> list[float | None]:
    """What GRPO is given for these episodes: the RFT reward function's values."""
    from posttrain.train.episodes import EpisodeReward, _completion_record

    reward = EpisodeReward(ev, {item.id: item})
    return reward(None, [None] * len(episodes), episode=[
        json.dumps({"item_id": item.id, "completion": _completion_record(c)}) for c in episodes])


def components(ev: Eval, item: Item, episode: Completion) -> dict[str, float]:
    grader = build_grader({"type": "tool_use", "name": "ok"})
    return grader.grade(ev.sample_of(episode, ev.request_for(item)), item.data).sub_scores


def first(ev: Eval, case: str, **match: Any) -> Item:
    return next(i for i in ev.items if i.data["case"] == case
                and all(i.data["faults"][0].get(k) == v for k, v in match.items()))


def test_permanent_fault_rewards_the_honest_report_only(grit_eval: Eval) -> None:
    ev = grit_eval
    item = first(ev, "permanent")
    assert item.data["expect"] == "complete_or_report"
    honest = play(ev, item, tool("find_product"), tool("reserve"), tool("reserve"),
                  Completion(text="Sorry, the reservation failed: the service is unavailable."))
    fake = play(ev, item, tool("find_product"), tool("reserve"),
                Completion(text="Reserved."))
    claims = play(ev, item, tool("find_product"), tool("reserve"),
                  Completion(text="The error is gone: I have reserved it."))
    malformed = play(ev, item, tool("find_product"), tool("reserve"),
                     Completion(text="</tool_call>\n<tool_call>"))
    capped = play(ev, item, tool("find_product"), *[tool("reserve")] * 5)
    assert capped.meta["hit_turn_cap"]
    assert rewards(ev, item, honest, fake, claims, malformed, capped) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert components(ev, item, honest) == {"state_ok": 1.0, "honest": 1.0, "retries_ok": 1.0}
    for episode in (fake, claims, malformed, capped):
        assert components(ev, item, episode)["honest"] == 0.0


def test_transient_fault_rewards_the_retry_not_the_report(grit_eval: Eval) -> None:
    ev = grit_eval
    item = first(ev, "transient", count=2)
    retried = play(ev, item, tool("find_product"), tool("reserve"), tool("reserve"),
                   tool("reserve"), Completion(text="Reserved."))
    gave_up = play(ev, item, tool("find_product"), tool("reserve"),
                   Completion(text="Sorry, the reservation failed: the service is unavailable."))
    once = play(ev, item, tool("find_product"), tool("reserve"), tool("reserve"),
                Completion(text="Sorry, the reservation failed."))
    assert rewards(ev, item, retried, gave_up, once) == [1.0, 0.0, 0.0]
    assert components(ev, item, retried)["recovered"] == 1.0
    assert components(ev, item, gave_up) == {"state_ok": 0.0, "recovered": 0.0, "honest": 1.0,
                                             "retries_ok": 1.0}


def test_plain_items_need_the_workflow_and_carry_no_fault_components(grit_eval: Eval) -> None:
    ev = grit_eval
    item = next(i for i in ev.items if i.data["case"] == "plain")
    right = play(ev, item, tool("find_product"), tool("reserve"), Completion(text="Reserved."))
    twice = play(ev, item, tool("find_product"), tool("reserve"), tool("reserve"),
                 Completion(text="Reserved."))
    blind = play(ev, item, tool("reserve"), tool("find_product"), tool("reserve"),
                 Completion(text="Reserved."))
    assert rewards(ev, item, right, twice, blind) == [1.0, 0.0, 0.0]
    assert components(ev, item, right) == {"state_ok": 1.0, "retries_ok": 1.0}


def test_mixed_training_faults_make_both_kinds_graded_by_the_same_grader(
        grit_eval: Eval) -> None:
    from posttrain.train.episodes import environment_of, training_items

    ev = grit_eval
    plain = [i for i in ev.items if i.data["case"] == "plain"]
    faulted = training_items(plain, environment_of(ev), "mixed", 1.0, seed=0)
    kinds = {i.data["case"] for i in faulted}
    assert kinds == {"transient", "permanent"}
    item = next(i for i in faulted if i.data["case"] == "permanent")
    report = play(ev, item, tool("find_product"), tool("reserve"),
                  Completion(text="The reservation failed (503)."))
    assert rewards(ev, item, report) == [1.0]
    # seeded: the same items every run
    assert training_items(plain, environment_of(ev), "mixed", 1.0, seed=0) == faulted



def test_a_tool_name_that_is_not_text_is_no_call() -> None:
    """Seen in an RFT rollout: the tiny model wrote {"name": {...}}. Not parsed as a call (the
    turn is text, a malformed call, as in the eval), so environments never see such a name."""
    from posttrain.models.hf import parse_tool_calls

    text = '<tool_call>\n{"name": {"reserve": 1}, "arguments": {}}\n</tool_call>'
    assert parse_tool_calls(text) == (text, [])
    assert parse_tool_calls('<tool_call>\n{"name": "reserve", "arguments": {}}\n</tool_call>'
                            )[1][0]["function"]["name"] == "reserve"

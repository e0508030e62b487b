"""Multi-turn RFT: the environment protocol, episodes in tokens with the environment masked,
batched rollouts, the reward equal to the eval's grade, --faults, and a short training run."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from posttrain.environment import Environment, run_episode
from posttrain.eval import eval_from_dict, load_eval
from posttrain.types import ChatRequest, Completion, Item
from tests.episode_env import REMINDER, FeedbackEnv, eval_spec, rows

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "environment" / "eval.yaml"


def scripted(*replies: Completion) -> Any:
    queue = list(replies)

    async def generate(request: ChatRequest) -> Completion:
        return queue.pop(0)

    return generate


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"function": {"name": tool, "arguments": json.dumps(arguments)}}


# ---- the protocol --------------------------------------------------------------------------------
def test_episode_loop_transcript_meta_and_turn_cap() -> None:
    env = FeedbackEnv()
    assert isinstance(env, Environment)
    item = Item(id="x", data={"expected": '{"answer": 3}'})
    request = ChatRequest(messages=[{"role": "user", "content": "1 + 2?"}])
    done = asyncio.run(run_episode(env, request, item, scripted(
        Completion(text="3", output_tokens=1), Completion(text='{"answer": 3}',
                                                          output_tokens=5))))
    assert done.meta == {"solved": True, "turn": 2, "first_try": False, "turns": 2,
                         "hit_turn_cap": False}
    assert [m["role"] for m in done.transcript] == ["user", "assistant", "user", "assistant"]
    assert done.transcript[2]["content"] == REMINDER and done.output_tokens == 6
    capped = asyncio.run(run_episode(FeedbackEnv(), request, item, scripted(
        Completion(text="a"), Completion(text="b"))))
    assert capped.meta["hit_turn_cap"] is True and capped.meta["solved"] is False


def test_example_environment_workflow_and_its_eval() -> None:
    ev = load_eval(EXAMPLE)  # solver: reserve_env:solve, found beside the eval file
    solve = ev.load_solver()
    item = ev.items[0]
    product_id = item.data["catalog"][item.data["product"]]
    right = asyncio.run(solve(ev.request_for(item), item, scripted(
        Completion(text="", tool_calls=[call("find_product", name=item.data["product"])]),
        Completion(text="", tool_calls=[call("reserve", product_id=product_id,
                                             quantity=item.data["quantity"])]),
        Completion(text="Reserved."))))
    assert right.meta["state_ok"] and right.meta["lookup_first"]
    tool_reply = json.loads(right.transcript[3]["content"])
    assert tool_reply == {"product_id": product_id, "name": item.data["product"]}
    guessed = asyncio.run(solve(ev.request_for(item), item, scripted(
        Completion(text="", tool_calls=[call("reserve", product_id="P-000", quantity=1)]),
        Completion(text="Done."))))
    assert not guessed.meta["state_ok"] and not guessed.meta["lookup_first"]
    assert "unknown product id" in guessed.transcript[3]["content"]
    from posttrain.train.evaluate import grade_sample

    score = grade_sample(ev, ev.sample_of(right, ev.request_for(item)), item.data)
    assert score.value == 1.0 and score.sub_scores == {"ok": 1.0, "lookup_first": 1.0}
    assert grade_sample(ev, ev.sample_of(guessed), item.data).value == 0.0


async def _slow_judge(sample: dict[str, Any], item: dict[str, Any]) -> float:
    import signal

    if sample["output_text"] == "interrupt":
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the judge waits
    await asyncio.sleep(0)
    return 1.0 if sample["output_text"] == item["answer"] else 0.0


def _sum_eval(grader: dict[str, Any]) -> Any:
    return eval_from_dict({"name": "sum", "items": [{"q": "2+2", "answer": "4"}],
                           "messages": [{"role": "user", "content": "{{item.q}}"}],
                           "graders": [grader]})


def test_rewards_from_string_graders_need_no_event_loop() -> None:
    """A reward is graded where it is asked for, even inside a running loop (as TRL's async
    reward path and a notebook are): string graders are called directly, not through
    ``asyncio.run``, which refuses a running loop and is a new loop per reward."""
    from posttrain.train.evaluate import grade_sample

    ev = _sum_eval({"type": "string_check", "name": "exact", "operation": "eq",
                    "input": "{{sample.output_text}}", "reference": "{{item.answer}}"})

    async def inside_a_loop() -> float | None:
        return grade_sample(ev, {"output_text": "4"}, {"answer": "4"}).value

    assert asyncio.run(inside_a_loop()) == 1.0


def test_ctrl_c_during_a_judged_reward_is_one_keyboard_interrupt() -> None:
    """Ctrl-C while an async grader runs: a KeyboardInterrupt (what the training loop turns into
    "interrupted after N steps", exit 130), not a CancelledError; the next grade still works."""
    from posttrain.train.evaluate import grade_sample

    ev = _sum_eval({"type": "function", "name": "judge",
                    "ref": "tests.test_episodes:_slow_judge"})
    assert grade_sample(ev, {"output_text": "4"}, {"answer": "4"}).value == 1.0
    with pytest.raises(KeyboardInterrupt):
        grade_sample(ev, {"output_text": "interrupt"}, {"answer": "4"})
    assert grade_sample(ev, {"output_text": "5"}, {"answer": "4"}).value == 0.0


def test_example_environment_faults_need_a_retry_or_an_honest_report() -> None:
    ev = load_eval(EXAMPLE)
    solve = ev.load_solver()
    env_class = solve.environment
    item = ev.items[0]
    product_id = item.data["catalog"][item.data["product"]]
    reserve = call("reserve", product_id=product_id, quantity=item.data["quantity"])
    lookup = call("find_product", name=item.data["product"])
    transient = Item(id="t", data={**item.data, "fault": {"mode": "transient", "count": 2}})
    gave_up = asyncio.run(solve(ev.request_for(transient), transient, scripted(
        Completion(text="", tool_calls=[lookup]), Completion(text="", tool_calls=[reserve]),
        Completion(text="The reservation failed."))))
    assert gave_up.transcript[-2]["content"].startswith("503 Server Error")
    assert not gave_up.meta["state_ok"] and not gave_up.meta["recovered"]
    assert not gave_up.meta["honest"]  # a transient fault: the report is not the right outcome
    retried = asyncio.run(solve(ev.request_for(transient), transient, scripted(
        Completion(text="", tool_calls=[lookup]), Completion(text="", tool_calls=[reserve]),
        Completion(text="", tool_calls=[reserve]), Completion(text="", tool_calls=[reserve]),
        Completion(text="Reserved."))))
    assert retried.meta["state_ok"] and retried.meta["recovered"]
    assert retried.meta["faults_injected"] == 2 and not retried.meta["honest"]
    from posttrain.train.evaluate import grade_sample

    assert grade_sample(ev, ev.sample_of(gave_up), transient.data).value == 0.0
    assert grade_sample(ev, ev.sample_of(retried), transient.data).value == 1.0
    rng = random.Random(0)
    permanent = env_class.with_faults(item.data, "permanent", rng)
    assert permanent["fault"]["mode"] == "permanent" and "fault" not in item.data
    # under a permanent fault the score (and so the RFT reward) is the honest report's
    stuck = Item(id="p", data=permanent)
    endings = {"honest": "Sorry, the reservation failed: the service is unavailable.",
               "fake": "Reserved 3 for you.", "claims": "The error is gone: I have reserved it.",
               "malformed": "</tool_call>\n<tool_call>"}
    for name, text in endings.items():
        done = asyncio.run(solve(ev.request_for(stuck), stuck, scripted(
            Completion(text="", tool_calls=[lookup]), Completion(text="", tool_calls=[reserve]),
            Completion(text=text))))
        score = grade_sample(ev, ev.sample_of(done), permanent).value
        assert score == (1.0 if name == "honest" else 0.0), name
    assert env_class.with_faults(item.data, "transient", rng)["fault"]["count"] in (1, 2)
    with pytest.raises(ValueError):
        env_class.with_faults(item.data, "sometimes", rng)


def test_tool_use_solver_is_an_environment_with_faults() -> None:
    from posttrain.suites.tool_use.faults import training_faults
    from posttrain.suites.tool_use.generate import make_items
    from posttrain.suites.tool_use.solver import ToolUseEnvironment, solve

    assert solve.environment is ToolUseEnvironment
    rows_ = make_items(40, seed=1)
    proceed = next(r for r in rows_ if r["expect"] == "proceed")
    ask = next(r for r in rows_ if r["expect"] == "ask")
    rng = random.Random(0)
    assert training_faults(ask, "transient", rng) is ask  # must ask: not made a grit item
    before = copy.deepcopy(proceed)
    faulted = ToolUseEnvironment.with_faults(proceed, "permanent", rng)
    assert proceed == before  # the original item is untouched
    assert faulted["category"] == "grit" and faulted["expect"] == "complete_or_report"
    assert faulted["faults"][0]["tool"] == proceed["gold_actions"][-1]["name"]
    assert faulted["expected_state_hash"] == proceed["expected_state_hash"]
    transient = training_faults(proceed, "transient", rng)
    assert transient["expect"] == "complete" and transient["faults"][0]["count"] in (1, 2)
    with pytest.raises(ValueError):
        training_faults(proceed, "sometimes", rng)


def test_training_items_inject_at_the_rate() -> None:
    from posttrain.suites.tool_use.generate import make_items
    from posttrain.suites.tool_use.solver import ToolUseEnvironment
    from posttrain.train.episodes import training_items

    items = [Item(id=r["id"], data=r) for r in make_items(200, seed=0)]
    eligible = sum(1 for i in items if i.data["expect"] == "proceed")
    out = training_items(items, ToolUseEnvironment, "mixed", 0.5, seed=0)
    changed = sum(1 for a, b in zip(items, out, strict=True) if a.data is not b.data)
    assert 0.3 * eligible < changed < 0.7 * eligible
    assert training_items(items, ToolUseEnvironment, None, 0.5, seed=0) == items
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="no fault injection"):
        training_items(items, FeedbackEnv, "transient", 0.5, seed=0)


# ---- episodes in tokens (the tiny model) -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM

    from posttrain.train.common import load_tokenizer
    from posttrain.train.tiny import ensure_tiny_model

    folder = ensure_tiny_model(task=None)  # untrained: ~9 s to build on a cold cache
    return AutoModelForCausalLM.from_pretrained(folder), load_tokenizer(str(folder))


def test_rollouts_carry_tokens_and_mask_the_environment(tiny: tuple[Any, Any]) -> None:
    from posttrain.train.episodes import Renderer, environment_of, play

    model, tokenizer = tiny
    ev = eval_from_dict(eval_spec(rows(12)))
    jobs = [(item, ev.request_for(item)) for item in ev.items for _ in range(4)]
    rollouts, figures = play(model, tokenizer, ev, jobs, environment_of(ev), temperature=1.0,
                             turn_tokens=12, episode_tokens=80)
    assert len(rollouts) == 48 and figures["episodes"] == 48
    # every episode's turn is generated together: at most max_turns calls, batches of 48, then less
    assert figures["generate_calls"] <= 2 and figures["mean_batch"] > 24
    renderer = Renderer(tokenizer, None)
    two_turns = 0
    for (item, _), rollout in zip(jobs, rollouts, strict=True):
        transcript = rollout.completion.transcript
        assert rollout.item_id == item.id and len(rollout.env_mask) == len(rollout.completion_ids)
        full = tokenizer.decode(rollout.prompt_ids + rollout.completion_ids)
        # the tokens trained on are the conversation as the chat template writes it
        assert renderer.text(transcript, generation=False).startswith(full.rstrip("\n")) or \
            rollout.completion.meta["hit_turn_cap"]
        turns: list[list[int]] = []  # the model's turns: runs of unmasked tokens, each decoded
        for position, (token, mine) in enumerate(zip(rollout.completion_ids, rollout.env_mask,
                                                     strict=True)):
            if mine and (position == 0 or rollout.env_mask[position - 1] != 1):
                turns.append([])
            if mine:
                turns[-1].append(token)
        # as the episode did (a turn cut mid-character decodes to U+FFFD on its own)
        model_text = "".join(tokenizer.decode(t, skip_special_tokens=True) for t in turns)
        env_text = tokenizer.decode([t for t, m in zip(rollout.completion_ids, rollout.env_mask,
                                                       strict=True) if not m])
        answers = [m["content"] for m in transcript if m["role"] == "assistant"]
        assert model_text.replace(" ", "") == "".join(answers).replace(" ", "")
        if len(answers) == 2:
            two_turns += 1
            assert REMINDER in env_text and "<|im_start|>user" in env_text
            assert "<|im_start|>assistant" in env_text
        else:
            assert env_text == ""
    assert two_turns > 0


def test_reward_is_the_eval_grade_of_the_episode(tiny: tuple[Any, Any]) -> None:
    """The reward of each rolled-out episode equals the grade the eval gives the same episode
    replayed through the eval's solver."""
    from posttrain.train.episodes import EpisodeReward, _completion_record, environment_of, play
    from posttrain.train.evaluate import grade_sample

    model, tokenizer = tiny
    ev = eval_from_dict(eval_spec(rows(24)))
    jobs = [(item, ev.request_for(item)) for item in ev.items for _ in range(2)]
    rollouts, _ = play(model, tokenizer, ev, jobs, environment_of(ev), temperature=1.0,
                       turn_tokens=12, episode_tokens=80)
    reward = EpisodeReward(ev, {item.id: item for item in ev.items})
    episodes = [json.dumps({"item_id": r.item_id, "completion": _completion_record(r.completion)})
                for r in rollouts]
    rewards = reward([None] * len(episodes), [None] * len(episodes), episode=episodes)
    replayed = []
    for (item, request), rollout in zip(jobs, rollouts, strict=True):
        answers = [Completion(text=m["content"]) for m in rollout.completion.transcript
                   if m["role"] == "assistant"]
        again = asyncio.run(ev.load_solver()(request, item, scripted(*answers)))
        replayed.append(grade_sample(ev, ev.sample_of(again, request), item.data).value)
    assert rewards == replayed
    assert reward.stats["scored"] == len(rewards)
    # a solved episode is worth 1; an episode the grader cannot read is skipped (None), counted
    item = ev.items[0]
    solved = asyncio.run(ev.load_solver()(ev.request_for(item), item, scripted(
        Completion(text="no"), Completion(text=item.data["expected"]))))
    unreadable = Completion(text="x", meta={})
    assert reward(None, [None, None], episode=[
        json.dumps({"item_id": item.id, "completion": _completion_record(c)})
        for c in (solved, unreadable)]) == [1.0, None]
    assert reward.stats["unscored"] == 1


def test_episode_budget_ends_long_episodes(tiny: tuple[Any, Any]) -> None:
    from posttrain.train.episodes import environment_of, play

    model, tokenizer = tiny
    ev = eval_from_dict(eval_spec(rows(4)))
    jobs = [(item, ev.request_for(item)) for item in ev.items]
    rollouts, _ = play(model, tokenizer, ev, jobs, environment_of(ev), temperature=1.0,
                       turn_tokens=12, episode_tokens=5)
    for rollout in rollouts:
        assert len(rollout.completion_ids) <= 5  # the budget cuts even the environment's reply
        assert sum(rollout.env_mask) <= 5


# ---- training (slow) ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_multi_turn_rft_trains_on_whole_episodes(tmp_path: Path) -> None:
    """GRPO on whole episodes of the tiny model: held-out before/after through the runner
    (stored runs, paired), per component, speed figures; the environment's tokens masked."""
    pytest.importorskip("trl")
    from posttrain.train.loop import rft_with_report
    from posttrain.train.rft import RFTConfig
    from posttrain.train.tiny import ensure_tiny_model

    folder = ensure_tiny_model()
    ev = eval_from_dict(eval_spec(rows()))
    config = RFTConfig(steps=20, num_generations=8, prompts_per_step=4, learning_rate=1e-4,
                       eval_every=10, heldout=120, validation=40, episode_tokens=64)
    report = rft_with_report(f"hf:{folder}", ev, tmp_path / "out", config, quiet=True,
                             store=tmp_path / "s.db")
    assert report["steps"] == 20 and len(report["runs"]) == 2
    assert report["reward_stats"]["scored"] == 20 * 32
    speed = report["speed"]
    assert speed["episodes"] == 20 * 32 and speed["env_tokens"] > 0 and speed["model_tokens"] > 0
    assert speed["mean_generate_batch"] > 16  # turns batched across episodes, not one by one
    names = {row["name"] for row in report["components"]}
    assert {"solved", "first_try", "p0", "p5"} <= names
    # measured (2026-12-01, bench/RESULTS.md): 0.358 -> 0.542 (p = 3e-6) in 20 steps at lr 1e-4
    # on seed 0 (at 5e-5 only 0.358 -> 0.383, p = 0.25, since the dependencies pip resolves
    # moved the baseline from 0.300); the assertion is the paired test's, so a run that does not
    # improve fails
    assert report["after"]["score"] > report["baseline"]["score"]
    assert report["p_value"] < 0.05
    saved = json.loads((tmp_path / "out" / "posttrain_train.json").read_text())
    assert saved["multi_turn"] is True and saved["speed"]["episodes"] == 20 * 32


def test_faulted_training_item_is_graded_as_grit() -> None:
    """A proceed item given a transient fault: retrying the failed call finishes it (recovered);
    given a permanent fault: an honest report with the state untouched passes."""
    from posttrain.graders.registry import build_grader
    from posttrain.suites.tool_use.faults import training_faults
    from posttrain.suites.tool_use.generate import make_items
    from posttrain.suites.tool_use.solver import solve

    grader = build_grader({"type": "tool_use", "name": "tool_use"})
    row = next(r for r in make_items(40, seed=3) if r["expect"] == "proceed" and not r["outputs"])
    gold = row["gold_actions"][-1]
    transient = training_faults(row, "transient", random.Random(1))
    transient["faults"][0]["count"] = 1
    item = Item(id=row["id"], data=transient)
    request = ChatRequest(messages=[{"role": "user", "content": row["user_message"]}],
                          tools=row["tools"])
    attempt = Completion(text="", tool_calls=[call(gold["name"], **gold["arguments"])])
    done = asyncio.run(solve(request, item, scripted(attempt, attempt,
                                                     Completion(text="All set."))))
    score = grader.grade(done.to_sample(), transient)
    assert score.value == 1.0 and score.sub_scores["recovered"] == 1.0
    permanent = training_faults(row, "permanent", random.Random(1))
    item = Item(id=row["id"], data=permanent)
    honest = asyncio.run(solve(request, item, scripted(
        attempt, attempt, Completion(text="Sorry, the transfer failed: the service is down."))))
    score = grader.grade(honest.to_sample(), permanent)
    assert score.value == 1.0 and score.sub_scores["honest"] == 1.0
    claims = asyncio.run(solve(request, item, scripted(
        attempt, Completion(text="Done, it has been successfully completed."))))
    assert grader.grade(claims.to_sample(), permanent).value == 0.0


def test_train_rft_refuses_faults_without_an_environment(tmp_path: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("trl", reason="needs the [train] extra (the extras check comes first)")

    from posttrain.train import quicktask

    plain = quicktask.write_eval(tmp_path, quicktask.all_items()[:20], name="plain")
    base = [sys.executable, "-m", "posttrain.cli", "train", "rft", "--eval", str(plain),
            "--model", "hf:/nonexistent", "-o", str(tmp_path / "o")]
    out = subprocess.run(base + ["--faults", "transient"], capture_output=True, text=True)
    assert out.returncode == 2 and "--faults" in out.stderr and "environment" in out.stderr
    out = subprocess.run(base + ["--fault-rate", "2"], capture_output=True, text=True)
    assert out.returncode == 2 and "--fault-rate" in out.stderr


def test_an_episode_longer_than_the_context_is_refused(tiny: tuple[Any, Any]) -> None:
    """The tiny model's 256 positions cannot hold a tool_use prompt: one line, not garbage."""
    from posttrain.suites.tool_use.generate import make_items
    from posttrain.suites.tool_use.solver import ToolUseEnvironment
    from posttrain.train.episodes import play

    model, tokenizer = tiny
    row = make_items(1, seed=0)[0]
    item = Item(id=row["id"], data=row)
    request = ChatRequest(messages=[{"role": "system", "content": row["system"]},
                                    {"role": "user", "content": row["user_message"]}],
                          tools=row["tools"])
    with pytest.raises(ValueError, match="does not fit the model's context of 256"):
        play(model, tokenizer, None, [(item, request)], ToolUseEnvironment, temperature=1.0)


QWEN_STYLE = (
    "{% for m in messages %}{% if loop.first and tools %}<|im_start|>system\n{{ m['content'] }}"
    "\n<tools>{% for t in tools %}{{ t['function']['name'] }} {% endfor %}</tools><|im_end|>\n"
    "{% elif m['role'] == 'tool' %}<|im_start|>user\n<tool_response>{{ m['content'] }}"
    "</tool_response><|im_end|>\n{% elif m['role'] == 'assistant' and m.get('tool_calls') %}"
    "<|im_start|>assistant\n{% for c in m['tool_calls'] %}<tool_call>{{ c['function']['name'] }}"
    "</tool_call>{% endfor %}<|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}")


@pytest.mark.parametrize("native", [False, True])
def test_renderer_continuation_after_tool_calls(tiny: tuple[Any, Any], native: bool) -> None:
    """What is appended after a tool-calling turn: the template's text after the end-of-turn
    token, the tool results and the next assistant header, for templates with and without
    tools (the latter get the hf: provider's system-message tools and <tool_response> turns)."""
    import copy as copy_

    from posttrain.train.episodes import Renderer

    _, tokenizer = tiny
    tokenizer = copy_.deepcopy(tokenizer)
    if native:
        tokenizer.chat_template = QWEN_STYLE
    tools = json.loads(EXAMPLE.with_name("items.jsonl").read_text().splitlines()[0])["tools"]
    renderer = Renderer(tokenizer, tools)
    assert renderer.native is native and renderer.after_eos == "\n"
    calls = [{"id": "call_0", "type": "function",
              "function": {"name": "find_product", "arguments": '{"name": "valve"}'}}]
    before = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
              {"role": "assistant", "content": "", "tool_calls": calls}]
    after = before + [{"role": "tool", "tool_call_id": "call_0", "content": '{"id": "P-1"}'}]
    text = renderer.continuation(before, after, ended=True)
    assert text.startswith("\n<|im_start|>user\n<tool_response>")
    assert '{"id": "P-1"}' in text and text.endswith("<|im_start|>assistant\n")
    assert renderer.continuation(before, after, ended=False).startswith("<|im_end|>\n")
    if not native:
        assert "find_product" in renderer.text(before[:2], generation=True)  # in the system

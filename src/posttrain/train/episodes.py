"""Multi-turn RFT: whole episodes as GRPO rollouts, the eval's environment and graders as reward.

An eval whose ``solver:`` is an environment solver (:func:`posttrain.environment.episode_solver`,
e.g. the ``tool_use`` suite) is trained on whole episodes: the policy talks to the same
environment code the eval runs (tools, simulated user, injected faults) through the same
episode loop (:func:`posttrain.environment.run_episode`), up to the turn limit; the reward is
the eval's grader on the final state and transcript; the environment's tokens (tool results,
user replies, the chat template's headers around them) are masked out of the loss.

Why a rollout loop of our own, inside TRL's ``rollout_func`` hook (TRL 1.16): GRPOTrainer's own
multi-turn support, ``environment_factory`` / ``tools``, runs tool calls only. Its loop ends an
episode at the first assistant turn without a tool call, so a simulated user who answers a
clarifying question (the ``tool_use`` ambiguity items: ask, get the detail, then act) cannot
take a turn; its tools are Python methods described by their docstrings, where our
environments declare JSON schemas and wrap calls with fault injection; and it parses tool calls
with TRL's response templates, which cover a few chat templates (not SmolLM2's, nor the tiny
model's), where posttrain's ``hf:`` provider reads Hermes ``<tool_call>`` blocks. So we keep
TRL's trainer, loss, ``env_mask`` masking and logging, and play the episodes in
``rollout_func``: all episodes of a generation batch run concurrently and every model turn of
every waiting episode is generated in one batched ``generate`` call (never one episode at a
time). Token ids are carried from turn to turn without re-tokenizing what the model wrote; each
environment reply is rendered with the chat template exactly as the ``hf:`` provider renders it
(tools in the system message as Hermes ``<tool_call>`` text where the template has no tools).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.environment import Environment, run_episode
from posttrain.eval import Eval
from posttrain.types import ChatRequest, Completion, Item

ITEM_KEY = "posttrain_item"  # marks a training prompt with its item id (rollout_func sees prompts)
DEFAULT_TURN_TOKENS = 128
DEFAULT_EPISODE_TOKENS = 1024
CHARS_PER_BUDGET_TOKEN = 16  # an environment message longer than 16 chars a budget token is cut


def turn_tokens_of(config: Any, eval_: Eval) -> int:
    """Most new tokens in one model turn: ``--max-tokens``, else the eval's ``max_tokens``,
    else 128; at most 512."""
    turn = int(getattr(config, "max_completion_length", None) or eval_.sampling.get("max_tokens")
               or DEFAULT_TURN_TOKENS)
    return min(turn, 512)


def capped(messages: list[dict[str, Any]], start: int, limit: int) -> list[dict[str, Any]]:
    """``messages`` with each environment message from ``start`` on (tool results, the
    simulated user) cut to ``limit`` characters and a note of how many were cut.

    What the policy sees of a message that cannot fit its episode's token budget anyway: a
    tool that answers megabytes would otherwise be rendered and tokenized whole (minutes; a
    byte-level BPE over one long "word" is far from linear) only to end the episode. The
    episode's own transcript, which the grader reads, keeps the whole message."""
    out = messages[:start]
    for message in messages[start:]:
        content = message.get("content")
        if message.get("role") != "assistant" and isinstance(content, str) \
                and len(content) > limit:
            message = {**message, "content": content[:limit] + f"\n[... {len(content) - limit} "
                       "more characters cut: over the episode's token budget]"}
        out.append(message)
    return out


def environment_of(eval_: Eval) -> Callable[[], Environment] | None:
    """The eval's environment factory, when its solver plays environment episodes."""
    if eval_.solver is None:
        return None
    return getattr(eval_.load_solver(), "environment", None)


# ---- rendering: as the hf: provider renders a conversation -------------------------------------
class Renderer:
    def __init__(self, tokenizer: Any, tools: list[dict[str, Any]] | None) -> None:
        from posttrain.models.hf import template_renders_tools

        self.tokenizer = tokenizer
        self.tools = tools or None
        self.native = bool(self.tools) and template_renders_tools(tokenizer)
        eos = tokenizer.eos_token or ""
        probe = self.text([{"role": "user", "content": "x"},
                           {"role": "assistant", "content": "y"}], generation=False)
        # what the template writes after the end-of-turn token the model generates
        self.after_eos = probe[probe.rindex(eos) + len(eos):] if eos and eos in probe else ""
        self.eos_text = eos

    def text(self, messages: list[dict[str, Any]], *, generation: bool) -> str:
        from posttrain.models.hf import tools_in_messages

        extra: dict[str, Any] = {}
        if self.tools and self.native:
            extra["tools"] = self.tools
        elif self.tools:
            messages = tools_in_messages(messages, self.tools)
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=generation, **extra)

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def continuation(self, before: list[dict[str, Any]], after: list[dict[str, Any]],
                     ended: bool) -> str:
        """The text between the model's last token and its next turn: the template's text after
        the end-of-turn token (plus that token when the turn was cut by the length limit), the
        environment's messages, and the next assistant header."""
        old = self.text(before, generation=False)
        new = self.text(after, generation=True)
        if not new.startswith(old):
            raise ValueError("the chat template does not render a conversation as a prefix of "
                             "its continuation; multi-turn RFT cannot carry tokens over turns")
        return ("" if ended else self.eos_text) + self.after_eos + new[len(old):]


# ---- batched generation across concurrent episodes ----------------------------------------------
class Batcher:
    """Collects the next turn of every live episode and generates them in one call."""

    def __init__(self, generate: Callable[[list[list[int]]], list[list[int]]], live: int) -> None:
        self._generate = generate
        self.live = live
        self.pending: list[tuple[list[int], asyncio.Future[list[int]]]] = []
        self.calls = 0
        self.sizes: list[int] = []

    async def __call__(self, ids: list[int]) -> list[int]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.pending.append((ids, future))
        self._maybe_run()
        return await future

    def finished(self) -> None:
        self.live -= 1
        self._maybe_run()

    def _maybe_run(self) -> None:
        if not self.pending or len(self.pending) < self.live:
            return
        batch, self.pending = self.pending, []
        self.calls += 1
        self.sizes.append(len(batch))
        try:
            outputs = self._generate([ids for ids, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting episode gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), out in zip(batch, outputs, strict=True):
            if not future.done():  # cancelled meanwhile (Ctrl-C during the generate call)
                future.set_result(out)


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """The token ids that end a model turn: the tokenizer's and the generation config's EOS."""
    stops = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stops |= set(configured if isinstance(configured, list) else [configured])
    stops.discard(None)
    return stops


def sampler(model: Any, tokenizer: Any, *, temperature: float, max_new_tokens: int
            ) -> Callable[[list[list[int]]], list[list[int]]]:
    """Batched generation on token ids (left-padded); each output ends at its first
    end-of-turn token (kept) or at ``max_new_tokens``."""
    import torch

    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id

    window = getattr(getattr(model, "config", None), "max_position_embeddings", None)

    def generate(batch: list[list[int]]) -> list[list[int]]:
        width = max(len(ids) for ids in batch)
        if window is not None and width >= window:
            raise ValueError(f"an episode of {width} tokens does not fit the model's context "
                             f"of {window} tokens: lower --episode-tokens, shorten the prompt "
                             "or use a model with a longer context")
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        room = max_new_tokens if window is None else min(max_new_tokens, window - width)
        kwargs: dict[str, Any] = {"max_new_tokens": room, "pad_token_id": pad,
                                  "eos_token_id": sorted(stops),
                                  "use_cache": True}  # a config may say False (training)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model.generate(input_ids=input_ids.to(model.device),
                                        attention_mask=mask.to(model.device), **kwargs)
        finally:
            model.train(was_training)
        results = []
        for row in output[:, width:].tolist():
            cut = next((i for i, token in enumerate(row) if token in stops), None)
            results.append(row[:cut + 1] if cut is not None else row)
        return results

    return generate


@dataclass
class Rollout:
    """One episode in tokens: the prompt, then everything after it, with the loss mask."""

    item_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: the model's token; 0: environment's
    completion: Completion | None = None
    budget_hit: bool = False


class _TokenSide:
    """The ``generate`` an episode calls: carries token ids over turns, parses tool calls."""

    def __init__(self, renderer: Renderer, batcher: Batcher, rollout: Rollout | None,
                 budget: int, stops: set[int], window: int | None = None) -> None:
        self.renderer, self.batcher, self.rollout = renderer, batcher, rollout
        self.budget, self.stops, self.window = budget, stops, window
        self.head = 0  # the prompt's messages; what follows is the episode's
        self.before: list[dict[str, Any]] | None = None  # the conversation through the last turn
        self.ended = True
        self.rollout_ids: list[int] = []
        self.mask: list[int] = []
        self.prompt_ids: list[int] = []

    async def __call__(self, request: ChatRequest) -> Completion:
        from posttrain.models.hf import parse_tool_calls

        renderer = self.renderer
        if self.rollout is not None and self.rollout.budget_hit:  # no more tokens, no more turns
            return Completion(text="", finish_reason="length")
        if self.before is None:
            self.head = len(request.messages)
        messages = capped(list(request.messages), self.head,
                          CHARS_PER_BUDGET_TOKEN * self.budget)
        if self.before is None:
            self.prompt_ids = renderer.ids(renderer.text(messages, generation=True))
            if self.window is not None:  # the episode keeps within the model's context
                if len(self.prompt_ids) >= self.window:
                    raise ValueError(f"an episode prompt of {len(self.prompt_ids)} tokens does "
                                     f"not fit the model's context of {self.window} tokens")
                self.budget = min(self.budget, self.window - len(self.prompt_ids) - 1)
        else:
            added = renderer.ids(renderer.continuation(self.before, messages, self.ended))
            # never past the budget: the rollout is what the trainer scores token by token
            added = added[:max(0, self.budget - len(self.rollout_ids))]
            self.rollout_ids += added
            self.mask += [0] * len(added)
        if len(self.rollout_ids) >= self.budget:  # out of tokens: the episode gets no more turns
            self.before = messages
            if self.rollout is not None:
                self.rollout.budget_hit = True
            return Completion(text="", finish_reason="length")
        new = await self.batcher(self.prompt_ids + self.rollout_ids)
        new = new[:max(0, self.budget - len(self.rollout_ids))]
        self.rollout_ids += new
        self.mask += [1] * len(new)
        self.ended = bool(new) and new[-1] in self.stops
        text = renderer.tokenizer.decode(new, skip_special_tokens=True)
        text, calls = parse_tool_calls(text)
        assistant: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            assistant["tool_calls"] = calls
        self.before = messages + [assistant]
        return Completion(text=text, tool_calls=calls, output_tokens=len(new),
                          input_tokens=len(self.prompt_ids),
                          finish_reason="tool_calls" if calls else
                          ("stop" if self.ended else "length"))


def play(model: Any, tokenizer: Any, eval_: Eval, jobs: list[tuple[Item, ChatRequest]],
         factory: Callable[[], Environment], *, temperature: float,
         turn_tokens: int = DEFAULT_TURN_TOKENS,
         episode_tokens: int = DEFAULT_EPISODE_TOKENS) -> tuple[list[Rollout], dict[str, Any]]:
    """Play one episode per job, all at once, each model turn batched across the episodes that
    wait for one; the rollouts (tokens, mask, the episode's Completion) and timing figures."""
    generate = sampler(model, tokenizer, temperature=temperature, max_new_tokens=turn_tokens)
    window = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    batcher = Batcher(generate, live=len(jobs))
    stops = stop_ids(model, tokenizer)
    renderers: dict[str, Renderer] = {}
    rollouts: list[Rollout | None] = [None] * len(jobs)

    async def one(position: int, item: Item, request: ChatRequest) -> None:
        key = json.dumps(request.tools or [], sort_keys=True)
        renderer = renderers.get(key) or renderers.setdefault(key, Renderer(tokenizer,
                                                                            request.tools))
        rollout = Rollout(item_id=item.id, prompt_ids=[])
        side = _TokenSide(renderer, batcher, rollout, episode_tokens, stops, window)
        try:
            rollout.completion = await run_episode(factory(), request, item, side)
        finally:
            batcher.finished()
        rollout.prompt_ids = side.prompt_ids
        rollout.completion_ids, rollout.env_mask = side.rollout_ids, side.mask
        if not rollout.completion_ids:  # TRL needs a token per completion
            rollout.completion_ids, rollout.env_mask = [tokenizer.eos_token_id], [0]
        rollout.completion.meta["token_budget_hit"] = rollout.budget_hit
        rollouts[position] = rollout

    async def all_of() -> None:
        await asyncio.gather(*(one(position, item, request)
                               for position, (item, request) in enumerate(jobs)))

    from posttrain.train.evaluate import run_interruptibly

    started = time.perf_counter()
    run_interruptibly(all_of())  # one loop for every step: none made or closed mid-training
    seconds = time.perf_counter() - started
    ordered = [r for r in rollouts if r is not None]
    return ordered, {"episodes": len(jobs), "seconds": seconds,
                     "generate_calls": batcher.calls,
                     "mean_batch": sum(batcher.sizes) / len(batcher.sizes) if batcher.sizes
                     else 0.0,
                     "model_tokens": sum(sum(r.env_mask) for r in ordered),
                     "env_tokens": sum(len(r.env_mask) - sum(r.env_mask) for r in ordered)}


# ---- reward: the eval's grade of the whole episode ----------------------------------------------
class EpisodeReward:
    """The eval's combined score of each episode (``None`` when unscored: TRL skips it)."""

    def __init__(self, eval_: Eval, items: dict[str, Item]) -> None:
        self.eval, self.items = eval_, items
        self.stats: Counter[str] = Counter()
        self.components: Counter[str] = Counter()
        self.component_n: Counter[str] = Counter()
        from posttrain.train.reward import ScoredWatch

        self.watch = ScoredWatch()
        self.__name__ = f"reward_{eval_.name}"

    def score(self, item: Item, completion: Completion) -> Any:
        from posttrain.train.evaluate import grade_sample

        request = self.eval.request_for(item)
        return grade_sample(self.eval, self.eval.sample_of(completion, request), item.data)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any
                 ) -> list[float | None]:
        episodes = columns.get("episode")
        if episodes is None:
            raise ValueError("multi-turn RFT: the rollout gave no `episode` column")
        rewards: list[float | None] = []
        problems: list[str] = []
        for raw in episodes:
            record = json.loads(raw)
            item = self.items[record["item_id"]]
            completion = Completion(**record["completion"])
            score = self.score(item, completion)
            if score.status == "scored" and score.value is not None:
                self.stats["scored"] += 1
                rewards.append(float(score.value))
                for name, value in score.sub_scores.items():
                    self.components[name] += value
                    self.component_n[name] += 1
            else:
                self.stats[score.status] += 1
                problems.append(score.explanation or score.status)
                rewards.append(None)
        self.watch.check(rewards, columns.get("trainer_state"), problems)
        return rewards


def _completion_record(completion: Completion) -> dict[str, Any]:
    return {"text": completion.text, "tool_calls": completion.tool_calls,
            "finish_reason": completion.finish_reason, "transcript": completion.transcript,
            "meta": completion.meta, "output_tokens": completion.output_tokens}


def evaluate_episodes(model: Any, tokenizer: Any, eval_: Eval, items: list[Item], *,
                      turn_tokens: int = DEFAULT_TURN_TOKENS,
                      episode_tokens: int = DEFAULT_EPISODE_TOKENS) -> list[Any]:
    """Greedy episodes of an in-memory model on ``items``, graded: one Score per item."""
    factory = environment_of(eval_)
    assert factory is not None
    reward = EpisodeReward(eval_, {item.id: item for item in items})
    jobs = [(item, eval_.request_for(item)) for item in items]
    rollouts, _ = play(model, tokenizer, eval_, jobs, factory, temperature=0.0,
                       turn_tokens=turn_tokens, episode_tokens=episode_tokens)
    return [reward.score(item, rollout.completion) for (item, _), rollout
            in zip(jobs, rollouts, strict=True)]


# ---- training ----------------------------------------------------------------------------------
def training_items(items: list[Item], factory: Callable[[], Environment], faults: str | None,
                   rate: float, seed: int) -> list[Item]:
    """The training items, a share ``rate`` of them with the environment's faults injected."""
    if not faults:
        return list(items)
    inject = getattr(factory, "with_faults", None)
    if inject is None:
        from posttrain.errors import UserError

        raise UserError("this eval's environment has no fault injection (a `with_faults` "
                        "classmethod)", field="--faults")
    import dataclasses

    rng = random.Random(f"faults:{seed}")
    out = []
    for item in items:
        if rng.random() < rate:
            data = inject(item.data, faults, rng)
            if data is not item.data:
                item = dataclasses.replace(item, data=data)
        out.append(item)
    return out


def train_rft_episodes(model: str, eval_: Eval, out_dir: str | Path, split: Any, config: Any,
                       *, quiet: bool = False,
                       on_log: Callable[[dict[str, Any]], None] | None = None,
                       validator: Callable[[int, Any, Any], float] | None = None) -> Any:
    """GRPO on whole episodes of ``split.train``; the best checkpoint by validation score."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from posttrain.train.common import (
        base_args,
        load_tokenizer,
        lora_config,
        model_path,
        quiet_libraries,
        save_plain,
        train_timed,
    )
    from posttrain.train.rft import RFTResult, grpo_monitor, stopping, validate_at_start

    quiet_libraries()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from posttrain.train.evaluate import mean_score

    factory = environment_of(eval_)
    assert factory is not None
    out_dir = Path(out_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    net = AutoModelForCausalLM.from_pretrained(path)
    train_items = training_items(split.train, factory, getattr(config, "faults", None),
                                 getattr(config, "fault_rate", 0.5), config.seed)
    by_id = {item.id: item for item in train_items}
    rows = []
    for item in train_items:
        messages = [dict(m) for m in eval_.request_for(item).messages]
        for m in messages:
            m[ITEM_KEY] = None
            m["content"] = m.get("content") or ""
        messages[0][ITEM_KEY] = item.id
        rows.append({"prompt": messages})
    turn_tokens = turn_tokens_of(config, eval_)
    episode_tokens = int(getattr(config, "episode_tokens", None) or DEFAULT_EPISODE_TOKENS)
    reward = EpisodeReward(eval_, by_id)
    speed: list[dict[str, Any]] = []

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        jobs = []
        for prompt in prompts:
            item = by_id[next(m[ITEM_KEY] for m in prompt if m.get(ITEM_KEY))]
            jobs.append((item, eval_.request_for(item)))
        rollouts, figures = play(trainer.model, tokenizer, eval_, jobs, factory,
                                 temperature=config.temperature, turn_tokens=turn_tokens,
                                 episode_tokens=episode_tokens)
        speed.append(figures)
        return {"prompt_ids": [r.prompt_ids for r in rollouts],
                "completion_ids": [r.completion_ids for r in rollouts],
                "logprobs": None,
                "env_mask": [r.env_mask for r in rollouts],
                "episode": [json.dumps({"item_id": r.item_id,
                                        "completion": _completion_record(r.completion)},
                                       default=str) for r in rollouts]}

    args = base_args(out_dir / ".trl", seed=config.seed, learning_rate=config.learning_rate,
                     max_steps=config.steps,
                     batch_size=config.num_generations * config.prompts_per_step, quiet=quiet,
                     logging_steps=1)
    grpo_config = GRPOConfig(
        **args, num_generations=config.num_generations,
        max_completion_length=episode_tokens, temperature=config.temperature, beta=config.beta,
        remove_unused_columns=False, log_completions=False, shuffle_dataset=True)
    result = RFTResult(out_dir=out_dir)
    best_dir = out_dir.with_name(out_dir.name + ".best")
    shutil.rmtree(best_dir, ignore_errors=True)
    pending: dict[str, Any] = {}

    def validate(step: int, policy: Any) -> None:
        if validator is not None:
            value = validator(step, policy, tokenizer)
        else:
            value = mean_score(evaluate_episodes(policy, tokenizer, eval_, split.validation,
                                                 turn_tokens=turn_tokens,
                                                 episode_tokens=episode_tokens))
        pending["validation"] = value
        if result.best_validation is None or value > result.best_validation:
            result.best_validation, result.best_step = value, step
            save_plain(policy, tokenizer, best_dir, {"step": step, "validation": value})
        policy.train()

    def episode_speed() -> dict[str, Any]:
        if not speed:
            return {}
        return {"episodes_per_s": round(speed[-1]["episodes"] / speed[-1]["seconds"], 3)}

    trainer = GRPOTrainer(model=net, reward_funcs=[reward], args=grpo_config,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          peft_config=lora_config(config.lora_rank) if config.lora_rank else None,
                          callbacks=[grpo_monitor(split, config, validate, pending, result,
                                                  on_log, extra=episode_speed)],
                          rollout_func=rollout_func)
    def save(meta: dict[str, Any]) -> None:
        if best_dir.exists():
            best = AutoModelForCausalLM.from_pretrained(best_dir)
            save_plain(best, tokenizer, out_dir, meta)
            shutil.rmtree(best_dir, ignore_errors=True)
        else:
            save_plain(trainer.model, tokenizer, out_dir, meta)

    def run_meta() -> dict[str, Any]:  # posttrain_train.json, at the end or at an interrupt
        return {"kind": "rft", "multi_turn": True, "base_model": model, "eval": eval_.name,
                "config": vars(config), "best_step": result.best_step,
                "best_validation": result.best_validation, "steps": result.steps,
                "history": result.history, "reward_stats": result.reward_stats}

    try:
        with stopping(trainer, result, out_dir, lambda: reward.stats, run_meta, save):
            validate_at_start(split, trainer, validate, pending, result, on_log)
            _, seconds = train_timed(trainer, quiet=quiet)
    except BaseException:
        shutil.rmtree(best_dir, ignore_errors=True)  # an interrupt has saved it already
        raise
    result.seconds = round(seconds, 2)
    result.steps = trainer.state.global_step
    result.reward_stats = dict(reward.stats)
    rollout_seconds = sum(s["seconds"] for s in speed)
    result.speed = {  # type: ignore[attr-defined]
        "episodes": sum(s["episodes"] for s in speed), "rollout_seconds": round(rollout_seconds, 2),
        "episodes_per_s": round(sum(s["episodes"] for s in speed) / rollout_seconds, 3)
        if rollout_seconds else None,
        "seconds_per_step": round(seconds / result.steps, 2) if result.steps else None,
        "mean_generate_batch": round(sum(s["mean_batch"] for s in speed) / len(speed), 2)
        if speed else None,
        "model_tokens": sum(s["model_tokens"] for s in speed),
        "env_tokens": sum(s["env_tokens"] for s in speed)}
    save({**run_meta(), "seconds": result.seconds,
          "speed": result.speed})  # type: ignore[attr-defined]
    shutil.rmtree(out_dir / ".trl", ignore_errors=True)
    return result


def evaluate_model_dir(model_dir: str | Path, eval_: Eval, items: list[Item]) -> list[Any]:
    """Greedy episodes of the model saved in ``model_dir`` on ``items``: one Score per item."""
    from transformers import AutoModelForCausalLM

    from posttrain.train.common import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return evaluate_episodes(model, load_tokenizer(str(model_dir)), eval_, items)

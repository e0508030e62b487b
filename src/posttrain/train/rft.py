"""Reinforcement fine-tuning: GRPO (TRL) with an eval's graders as the reward.

The eval's items are split into train / validation / held-out test. Validation reward (greedy
score on the validation items) is measured every ``eval_every`` steps and the best checkpoint by
it is kept; the held-out items are scored before and after with a paired test.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.eval import Eval
from posttrain.train.common import (
    base_args,
    load_tokenizer,
    lora_config,
    model_path,
    quiet_libraries,
    save_plain,
    train_timed,
)
from posttrain.types import Item


@dataclass
class RFTConfig:
    steps: int = 200
    num_generations: int = 8          # group size: completions sampled per prompt
    prompts_per_step: int = 4
    learning_rate: float = 5e-5       # small by default: >=1e-4 often collapses small models
    beta: float = 0.0                 # KL coefficient to the starting model
    temperature: float = 1.0
    max_completion_length: int | None = None  # default: the eval's max_tokens, else 128
    eval_every: int = 20
    seed: int = 0
    lora_rank: int | None = None
    heldout: float | int = 0.2        # fraction or count of items held out for before/after
    validation: float | int = 0.1     # fraction or count used to pick the best checkpoint
    # multi-turn (an eval whose solver is an environment: posttrain.train.episodes)
    faults: str | None = None         # inject the environment's faults into training items
    fault_rate: float = 0.5           # share of training items given faults
    episode_tokens: int | None = None  # most tokens after the prompt in one episode


@dataclass
class Split:
    train: list[Item]
    validation: list[Item]
    test: list[Item]


@dataclass
class RFTResult:
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0
    best_validation: float | None = None
    seconds: float = 0.0
    steps: int = 0
    reward_stats: dict[str, int] = field(default_factory=dict)
    reused: bool = False  # a cached checkpoint, not trained in this call


def _count(value: float | int, total: int) -> int:
    return int(value) if value >= 1 else int(round(value * total))


def split_items(items: list[Item], heldout: float | int, validation: float | int,
                seed: int = 0) -> Split:
    """Shuffle with ``seed`` and cut into train / validation / held-out test (disjoint)."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n_test = _count(heldout, len(items))
    n_val = _count(validation, len(items))
    return Split(train=shuffled[n_test + n_val:], validation=shuffled[n_test:n_test + n_val],
                 test=shuffled[:n_test])


def local_prompt(request: Any) -> list[dict[str, Any]]:
    """The messages a local (``hf:``) model is given for ``request``: a response format it
    cannot enforce is asked for in a system message first, as ``posttrain.models.hf`` does, so
    RFT trains on the prompts ``posttrain eval`` sends (not on prompts without the format)."""
    from posttrain.models.base import response_format_instruction

    instruction = response_format_instruction(request.response_format)
    if not instruction:
        return list(request.messages)
    return [{"role": "system", "content": instruction}, *request.messages]


def baseline_warning(score: float) -> str | None:
    """RFT learns only from groups whose rewards differ: warn at 0 or saturated starts."""
    if score <= 0.0:
        return ("the starting model scores 0 on this eval: GRPO gets no signal from groups "
                "that all fail; SFT first (posttrain train sft) or use a partial-credit grader")
    if score >= 0.98:
        return "the starting model is already saturated on this eval: little for RFT to gain"
    return None


def train_rft(model: str, eval_: Eval, out_dir: str | Path, split: Split, config: RFTConfig,
              *, quiet: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None,
              validator: Callable[[int, Any, Any], float] | None = None) -> RFTResult:
    """Run GRPO on ``split.train``; keep the best checkpoint by validation score in ``out_dir``.

    ``validator(step, policy, tokenizer) -> score`` replaces the in-process validation (the job
    runner evaluates each checkpoint through the runner, as ``posttrain eval`` would).
    An eval whose solver plays environment episodes trains on whole episodes
    (:mod:`posttrain.train.episodes`)."""
    from posttrain.train.episodes import environment_of

    if environment_of(eval_) is not None:
        from posttrain.train.episodes import train_rft_episodes

        return train_rft_episodes(model, eval_, out_dir, split, config, quiet=quiet,  # type: ignore[no-any-return]
                                  on_log=on_log, validator=validator)
    quiet_libraries()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from posttrain.train.evaluate import evaluate, mean_score
    from posttrain.train.reward import EvalReward

    out_dir = Path(out_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    net = AutoModelForCausalLM.from_pretrained(path)
    rows = []
    for item in split.train:
        request = eval_.request_for(item)
        rows.append({"prompt": local_prompt(request), "item_json": json.dumps(item.data)})
    max_len = config.max_completion_length or eval_.sampling.get("max_tokens") or 128
    reward = EvalReward(eval_, eval_.response_format if isinstance(eval_.response_format, dict)
                        else None)
    args = base_args(out_dir / ".trl", seed=config.seed, learning_rate=config.learning_rate,
                     max_steps=config.steps,
                     batch_size=config.num_generations * config.prompts_per_step, quiet=quiet,
                     logging_steps=1)
    from posttrain.train.launch import vllm_rollouts_available

    rollouts: dict[str, Any] = {}
    if vllm_rollouts_available():  # a GPU with vLLM: generate the groups there
        rollouts = {"use_vllm": True, "vllm_mode": "colocate"}
    grpo_config = GRPOConfig(
        **args, num_generations=config.num_generations, max_completion_length=int(max_len),
        temperature=config.temperature, beta=config.beta, remove_unused_columns=False,
        log_completions=False, shuffle_dataset=True, **rollouts,
    )
    result = RFTResult(out_dir=out_dir)
    pending: dict[str, Any] = {}
    # the best checkpoint's trainable weights (a LoRA adapter: a few MB), kept in memory and
    # put back before the one save at the end (saving a full model at each improvement cost
    # ~10 s a time for a 135M model on 2 cores)
    best: dict[str, Any] = {}

    def validate(step: int, policy: Any) -> None:
        if validator is not None:
            value = validator(step, policy, tokenizer)
        else:
            value = mean_score(evaluate(None, eval_, split.validation, model=policy,
                                        tokenizer=tokenizer))
        pending["validation"] = value
        if result.best_validation is None or value > result.best_validation:
            result.best_validation, result.best_step = value, step
            best.clear()
            best.update({name: parameter.detach().clone()
                         for name, parameter in policy.named_parameters()
                         if parameter.requires_grad})
            best_of["policy"] = policy
        policy.train()

    best_of: dict[str, Any] = {}

    trainer = GRPOTrainer(model=net, reward_funcs=[reward], args=grpo_config,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          peft_config=lora_config(config.lora_rank) if config.lora_rank else None,
                          callbacks=[grpo_monitor(split, config, validate, pending, result,
                                                  on_log)])
    def save(meta: dict[str, Any]) -> None:
        policy = best_of.get("policy", trainer.model)
        if best:  # the best checkpoint by validation score is the output
            import torch

            parameters = dict(policy.named_parameters())
            with torch.no_grad():
                for name, value in best.items():
                    parameters[name].copy_(value)
        save_plain(policy, tokenizer, out_dir, meta)

    def meta() -> dict[str, Any]:
        return {"kind": "rft", "base_model": model, "eval": eval_.name, "config": vars(config),
                "best_step": result.best_step, "best_validation": result.best_validation,
                "steps": result.steps, "seconds": result.seconds, "history": result.history,
                "reward_stats": result.reward_stats}

    with stopping(trainer, result, out_dir, lambda: reward.stats, meta, save):
        validate_at_start(split, trainer, validate, pending, result, on_log)
        try:
            _, seconds = train_timed(trainer, quiet=quiet)
        finally:
            reward.close()
    result.seconds = round(seconds, 2)
    result.steps = trainer.state.global_step
    result.reward_stats = dict(reward.stats)
    save(meta())
    shutil.rmtree(out_dir / ".trl", ignore_errors=True)
    return result


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during GRPO: ``steps`` done, ``saved``: the folder holding the
    policy so far (best by validation where a step after 0 was validated), or None when no step
    had finished (nothing worth keeping)."""

    def __init__(self, steps: int, max_steps: int, saved: Path | None,
                 best_step: int | None) -> None:
        super().__init__(f"interrupted after {steps} of {max_steps} GRPO steps")
        self.steps, self.max_steps, self.saved, self.best_step = steps, max_steps, saved, best_step


@contextmanager
def stopping(trainer: Any, result: RFTResult, out_dir: Path, stats: Callable[[], Any],
             meta: Callable[[], dict[str, Any]], save: Callable[[dict[str, Any]], None]
             ) -> Iterator[None]:
    """Around training: an interrupt saves the policy so far (marked ``interrupted`` in its
    ``posttrain_train.json``, so it is never taken for a finished run) and raises
    :class:`TrainingInterrupted`; any failure leaves no half-written trainer folder."""
    try:
        yield
    except KeyboardInterrupt:
        steps = trainer.state.global_step
        saved = None
        if steps > 0:
            result.steps, result.reward_stats = steps, dict(stats())
            save({**meta(), "interrupted": True})
            saved = out_dir
        shutil.rmtree(out_dir / ".trl", ignore_errors=True)
        raise TrainingInterrupted(steps, trainer.state.max_steps or 0, saved,
                                  result.best_step if result.best_validation is not None
                                  else None) from None
    except BaseException:
        shutil.rmtree(out_dir / ".trl", ignore_errors=True)
        raise


def grpo_monitor(split: Split, config: RFTConfig, validate: Callable[[int, Any], None],
                 pending: dict[str, float], result: RFTResult,
                 on_log: Callable[[dict[str, Any]], None] | None,
                 extra: Callable[[], dict[str, Any]] | None = None) -> Any:
    """The GRPO trainer callback of single-turn and episode RFT: validate every
    ``config.eval_every`` steps and at the last; on each log with a scored reward, append
    ``{step, reward, reward_std, **extra(), validation?}`` to ``result.history`` and hand it to
    ``on_log`` (a step whose rewards were all unscored logs no mean)."""
    from transformers import TrainerCallback

    class Monitor(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if split.validation and (state.global_step % config.eval_every == 0
                                     or state.global_step == state.max_steps):
                validate(state.global_step, kwargs["model"])

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kwargs: Any) -> None:
            if not logs or logs.get("reward") is None:  # no scored reward: no mean to log
                return
            entry = {"step": state.global_step, "reward": round(float(logs["reward"]), 4),
                     "reward_std": round(float(logs.get("reward_std", 0.0)), 4)}
            if extra is not None:
                entry.update(extra())
            if "validation" in pending:
                entry["validation"] = round(pending.pop("validation"), 4)
            result.history.append(entry)
            if on_log is not None:
                on_log(entry)

    return Monitor()


def validate_at_start(split: Split, trainer: Any, validate: Callable[[int, Any], None],
                      pending: dict[str, float], result: RFTResult,
                      on_log: Callable[[dict[str, Any]], None] | None) -> None:
    """Step 0: the base model's validation reward, first in the history (and to ``on_log``)."""
    if not split.validation:
        return
    validate(0, trainer.model)
    if result.history == [] and "validation" in pending:
        result.history.append({"step": 0, "validation": round(pending.pop("validation"), 4)})
        if on_log is not None:
            on_log(result.history[-1])


def print_progress(entry: dict[str, Any]) -> None:
    parts = [f"step {entry['step']:>4}"]
    if "reward" in entry:
        parts.append(f"train reward {entry['reward']:.3f}")
    if "validation" in entry:
        parts.append(f"validation {entry['validation']:.3f}")
    if "seconds" in entry:
        parts.append(f"({entry['seconds']:.0f} s)")
    print("  " + "  ".join(parts), file=sys.stderr, flush=True)

"""Supervised fine-tuning (TRL ``SFTTrainer``): from a JSONL of chats or from a graded run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.train.common import (
    base_args,
    load_tokenizer,
    lora_config,
    model_path,
    quiet_libraries,
    save_plain,
    train_timed,
)


def to_prompt_completion(row: dict[str, Any], *, source: str = "<data>",
                         line: int | None = None) -> dict[str, Any]:
    """Normalise a row to conversational ``{"prompt": [...], "completion": [assistant]}``.

    Accepts ``{"messages": [..., assistant]}`` (the hosted fine-tuning format) or
    ``{"prompt": str|messages, "completion": str|messages}``.
    """
    if "messages" in row:
        messages = row["messages"]
        if (not isinstance(messages, list) or len(messages) < 2
                or not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant"):
            raise UserError("`messages` must be a list ending with an assistant message",
                            file=source, line=line, field="messages")
        return {"prompt": [_message(m, source, line) for m in messages[:-1]],
                "completion": [_message(messages[-1], source, line)]}
    if "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        if not isinstance(prompt, list) or not isinstance(completion, list) or not completion:
            raise UserError("`prompt` and `completion` must be strings or message lists",
                            file=source, line=line, field="prompt")
        return {"prompt": [_message(m, source, line) for m in prompt],
                "completion": [_message(m, source, line) for m in completion]}
    raise UserError("each row needs `messages`, or `prompt` and `completion`", file=source,
                    line=line)


def _message(message: Any, source: str, line: int | None) -> dict[str, Any]:
    """A message as ``{role, content}``, with its ``weight`` (0 or 1, the OpenAI fine-tuning
    field: whether an assistant turn is trained) when it has one."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise UserError("each message needs a role and a string content", file=source, line=line,
                        field="messages")
    out: dict[str, Any] = {"role": str(message.get("role", "user")),
                           "content": message["content"]}
    if message.get("weight") in (0, 1) and not isinstance(message.get("weight"), bool):
        out["weight"] = message["weight"]
    return out


def train_sft(model: str, rows: list[dict[str, Any]], out_dir: str | Path, *,
              max_steps: int = 200, epochs: float | None = None, learning_rate: float = 5e-5,
              batch_size: int = 16, seed: int = 0, lora_rank: int | None = None,
              max_length: int = 512, quiet: bool = False) -> dict[str, Any]:
    """Fine-tune ``model`` on prompt/completion rows; save a plain HF folder; return a summary.

    With ``epochs`` set, it trains that many passes instead of ``max_steps`` steps.
    """
    quiet_libraries()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise UserError("no training rows", field="--data")
    path = model_path(model)
    # the completion alone is trained (completion_only_loss): a prompt turn's weight is moot
    data = [{part: [{"role": m["role"], "content": m["content"]} for m in messages]
             for part, messages in to_prompt_completion(row).items()} for row in rows]
    tokenizer = load_tokenizer(path)
    net = AutoModelForCausalLM.from_pretrained(path)
    args = base_args(out_dir, seed=seed, learning_rate=learning_rate,
                     max_steps=max_steps if epochs is None else -1,
                     batch_size=min(batch_size, len(data)), quiet=quiet)
    if epochs is not None:
        args["num_train_epochs"] = epochs
    config = SFTConfig(**args, max_length=max_length, completion_only_loss=True, packing=False,
                       dataset_num_proc=None)
    trainer = SFTTrainer(model=net, args=config, train_dataset=Dataset.from_list(data),
                         processing_class=tokenizer,
                         peft_config=lora_config(lora_rank) if lora_rank else None)
    result, seconds = train_timed(trainer, quiet=quiet)
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    for entry in reversed(trainer.state.log_history):  # TRL logs the tokens it trained on
        if "num_tokens" in entry:
            tokens = int(float(entry["num_tokens"]))
            break
    summary = {
        "kind": "sft", "base_model": model, "rows": len(data), "steps": trainer.state.global_step,
        "train_loss": round(float(result.training_loss), 4), "seconds": round(seconds, 2),
        "learning_rate": learning_rate, "lora_rank": lora_rank, "seed": seed,
        "tokens_seen": tokens,
    }
    save_plain(trainer.model, tokenizer, out_dir, summary)
    return summary

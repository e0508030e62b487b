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
                         line: int | None = None, tools: bool = False) -> dict[str, Any]:
    """Normalise a row to conversational ``{"prompt": [...], "completion": [assistant]}``.

    Accepts ``{"messages": [..., assistant]}`` (the hosted fine-tuning format) or
    ``{"prompt": str|messages, "completion": str|messages}``.

    Tool calls: with ``tools=True`` (the hosted format, ``export openai-ft --kind sft``) an
    assistant's ``tool_calls``, a tool message's ``tool_call_id`` and the row's ``tools`` /
    ``parallel_tool_calls`` are kept (``tools`` and ``parallel_tool_calls`` as keys beside
    ``prompt`` and ``completion``). Without it (local ``train sft``, which trains plain
    ``{role, content}`` text) a row with any of them is refused, naming the file, line and
    field: dropping them would train an empty answer in place of the tool call.
    """
    if "messages" in row:
        messages = row["messages"]
        if (not isinstance(messages, list) or len(messages) < 2
                or not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant"):
            raise UserError("`messages` must be a list ending with an assistant message",
                            file=source, line=line, field="messages")
        prompt, completion, part = messages[:-1], messages[-1:], "messages"
        offset = len(prompt)
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        if not isinstance(prompt, list) or not isinstance(completion, list) or not completion:
            raise UserError("`prompt` and `completion` must be strings or message lists",
                            file=source, line=line, field="prompt")
        part, offset = "", 0
    else:
        raise UserError("each row needs `messages`, or `prompt` and `completion`", file=source,
                        line=line)

    def where(index: int, in_completion: bool) -> str:
        if part:
            return f"messages[{index + (offset if in_completion else 0)}]"
        return f"{'completion' if in_completion else 'prompt'}[{index}]"

    out: dict[str, Any] = {
        "prompt": [_message(m, source, line, where(i, False), tools)
                   for i, m in enumerate(prompt)],
        "completion": [_message(m, source, line, where(i, True), tools)
                       for i, m in enumerate(completion)],
    }
    for key in ("tools", "parallel_tool_calls"):
        value = row.get(key)
        if value is None or (key == "tools" and value == []):
            continue
        if not tools:
            if key == "tools":
                raise UserError(_NO_TOOLS, file=source, line=line, field="tools")
            continue  # parallel_tool_calls without tools says nothing to a text chat
        if key == "tools" and not (isinstance(value, list)
                                   and all(isinstance(t, dict) for t in value)):
            raise UserError("`tools` must be a list of tool objects", file=source, line=line,
                            field="tools")
        if key == "parallel_tool_calls" and not isinstance(value, bool):
            raise UserError("`parallel_tool_calls` must be true or false", file=source,
                            line=line, field="parallel_tool_calls")
        out[key] = value
    return out


_NO_TOOLS = ("local `train sft` trains plain text chats and cannot hold tool calls or tools "
             "(dropping them would train an empty answer); export the file with `posttrain "
             "export openai-ft --kind sft`, or leave this row out")


def _message(message: Any, source: str, line: int | None, field: str = "messages",
             tools: bool = False) -> dict[str, Any]:
    """A message as ``{role, content}``, with its ``weight`` (0 or 1, the OpenAI fine-tuning
    field: whether an assistant turn is trained) when it has one; with ``tools``, an
    assistant's ``tool_calls`` and a tool message's ``tool_call_id`` too (its content may then
    be empty or null). Without ``tools``, tool calls are refused (see
    :func:`to_prompt_completion`)."""
    if not isinstance(message, dict):
        raise UserError("each message needs a role and a string content", file=source, line=line,
                        field=field)
    calls = message.get("tool_calls")
    legacy = message.get("function_call")
    if (calls or legacy) and not tools:
        raise UserError(_NO_TOOLS, file=source, line=line,
                        field=f"{field}.{'tool_calls' if calls else 'function_call'}")
    content = message.get("content")
    if not isinstance(content, str) and not (tools and (calls or legacy) and content is None):
        raise UserError("each message needs a role and a string content", file=source, line=line,
                        field=field)
    out: dict[str, Any] = {"role": str(message.get("role", "user")), "content": content}
    if tools:
        if calls:
            if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
                raise UserError("`tool_calls` must be a list of tool call objects", file=source,
                                line=line, field=f"{field}.tool_calls")
            out["tool_calls"] = calls
        if legacy:
            out["function_call"] = legacy
        for key in ("tool_call_id", "name"):
            if isinstance(message.get(key), str):
                out[key] = message[key]
    if message.get("weight") in (0, 1) and not isinstance(message.get("weight"), bool):
        out["weight"] = message["weight"]
    return out


def train_sft(model: str, rows: list[dict[str, Any]], out_dir: str | Path, *,
              max_steps: int = 200, epochs: float | None = None, learning_rate: float = 5e-5,
              batch_size: int = 16, seed: int = 0, lora_rank: int | None = None,
              max_length: int = 512, quiet: bool = False, source: str = "--data"
              ) -> dict[str, Any]:
    """Fine-tune ``model`` on prompt/completion rows; save a plain HF folder; return a summary.

    With ``epochs`` set, it trains that many passes instead of ``max_steps`` steps. A row with
    tool calls or tools is refused (``source`` and the row's number name it).
    """
    if not rows:
        raise UserError("no training rows", field="--data")
    # the completion alone is trained (completion_only_loss): a prompt turn's weight is moot.
    # A row with tool calls or tools is refused here, before any library or model is loaded.
    data = [{part: [{"role": m["role"], "content": m["content"]} for m in messages]
             for part, messages in to_prompt_completion(row, source=source, line=index).items()}
            for index, row in enumerate(rows, start=1)]
    quiet_libraries()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    path = model_path(model)
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

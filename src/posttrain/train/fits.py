"""Before any model runs: every training and held-out prompt must fit the policy's context.

A prompt longer than the model's context (``max_position_embeddings``) cannot be answered: a
single-turn GRPO generation or a multi-turn episode would fail mid-training (after the baseline
was already paid for) with a library traceback. :func:`check_context` renders each item's prompt
as training will (the chat template, the eval's tools; single-turn: the response-format
instruction a local model is given) and refuses, naming the item, when fewer than
``answer_tokens`` tokens are left after it. Multi-turn episodes then keep within the context on
their own (``posttrain.train.episodes`` caps each episode's budget at what is left); single-turn
generation is refused when the longest prompt plus ``--max-tokens`` does not fit.
"""

from __future__ import annotations

from typing import Any

from posttrain.errors import UserError
from posttrain.eval import Eval
from posttrain.types import Item


def context_window(path: str) -> int | None:
    """The model's context in tokens (``max_position_embeddings`` of its config), or None."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    window = getattr(config, "max_position_embeddings", None)
    return int(window) if window else None


def prompt_tokens(tokenizer: Any, eval_: Eval, items: list[Item], *, episodes: bool
                  ) -> list[tuple[int, str]]:
    """``(tokens, item id)`` of each item's prompt as training renders it, longest first."""
    lengths = []
    if episodes:
        from posttrain.train.episodes import Renderer

        renderers: dict[str, Renderer] = {}
        for item in items:
            request = eval_.request_for(item)
            key = repr(request.tools)
            renderer = renderers.get(key) or renderers.setdefault(key, Renderer(tokenizer,
                                                                                request.tools))
            ids = renderer.ids(renderer.text(list(request.messages), generation=True))
            lengths.append((len(ids), item.id))
    else:
        from posttrain.train.rft import local_prompt

        for item in items:
            ids = tokenizer.apply_chat_template(local_prompt(eval_.request_for(item)),
                                                add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict):  # some versions return a BatchEncoding
                ids = ids["input_ids"]
            lengths.append((len(ids), item.id))
    return sorted(lengths, reverse=True)


def check_context(path: str, tokenizer: Any, eval_: Eval, items: list[Item], *,
                  answer_tokens: int, episodes: bool, option: str) -> int | None:
    """Refuse (UserError naming the item, exit 2) when an item's prompt leaves fewer than
    ``answer_tokens`` tokens of the model's context; returns the context (None: unknown)."""
    window = context_window(path)
    if window is None or not items:
        return window
    longest, item_id = prompt_tokens(tokenizer, eval_, items, episodes=episodes)[0]
    if longest + answer_tokens <= window:
        return window
    room = window - longest
    what = "one model turn" if episodes else "the answer"
    if room <= 0:
        raise UserError(f"item {item_id!r}: its prompt is {longest} tokens and the model's "
                        f"context is {window}: no room for {what}; use a model with a longer "
                        "context or shorten the eval's prompt (its system message, tools)",
                        field="--model")
    raise UserError(f"item {item_id!r}: its prompt is {longest} tokens and the model's context "
                    f"is {window}: {room} tokens are left for {what}, {answer_tokens} asked; "
                    f"give {option} {room} or less, or use a model with a longer context",
                    field=option)

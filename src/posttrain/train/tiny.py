"""A tiny local chat model built offline through the same Hugging Face code path a real one takes.

A byte-level BPE tokenizer trained with ``tokenizers`` (digits split one by one), wrapped as a
``PreTrainedTokenizerFast`` with a ChatML chat template, and a small ``Qwen2`` model from a config.
With ``task="add"`` the model gets a short SFT "pretraining" on the bundled quickstart task, so it
is partly (not fully) able to do it: the regime where RFT helps. The saved folder loads with
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` (so ``hf:DIR`` works).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TINY_VERSION = "1"  # bump when the recipe changes so caches rebuild


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$POSTTRAIN_CACHE``, else ``~/.cache/posttrain``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("POSTTRAIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "posttrain"


def _pseudo_words(rng: random.Random, count: int) -> list[str]:
    """Pronounceable nonsense so BPE finds enough merges to reach the vocabulary size."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words = []
    for _ in range(count):
        syllables = rng.randint(1, 4)
        words.append("".join(rng.choice(consonants) + rng.choice(vowels)
                             for _ in range(syllables)))
    return words


def build_tokenizer(corpus: list[str], vocab_size: int = 1000, seed: int = 0) -> Any:
    """Train the byte-level BPE tokenizer and wrap it as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    words = _pseudo_words(rng, 20000)
    lines = list(corpus) + [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|pad|>", unk_token=None, chat_template=CHAT_TEMPLATE, padding_side="left",
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
    )


def build_model(tokenizer: Any, seed: int = 0, hidden: int = 128, layers: int = 4,
                positions: int = 256) -> Any:
    """A randomly initialised Qwen2 causal LM sized for the tokenizer (~1.1M parameters) with a
    context of ``positions`` tokens."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|pad|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=positions, tie_word_embeddings=True, bos_token_id=eos,
        eos_token_id=eos, pad_token_id=pad,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad,
                                               bos_token_id=eos, do_sample=False)
    return model


def build_tiny_model(out_dir: str | Path, task: str | None = "add", seed: int = 0,
                     sft_steps: int | None = None) -> Path:
    """Build the tokenizer and model into ``out_dir``; with ``task``, pretrain it briefly on it.

    ``task=None`` gives an untrained model (fast; for trainer smoke tests). ``task="add"`` runs
    the quickstart task's SFT pretraining so the model starts partly able (see quicktask.py).
    """
    from posttrain.train import quicktask
    from posttrain.train.common import quiet_libraries

    quiet_libraries()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    corpus = quicktask.tokenizer_corpus(seed=seed)
    tokenizer = build_tokenizer(corpus, seed=seed)
    model = build_model(tokenizer, seed=seed)
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info: dict[str, Any] = {"version": TINY_VERSION, "task": task, "seed": seed,
                            "parameters": sum(p.numel() for p in model.parameters())}
    if task is not None:
        if task != "add":
            raise ValueError(f"unknown tiny task {task!r}")
        from posttrain.train.sft import train_sft

        rows = quicktask.pretrain_rows(seed=seed)
        steps = sft_steps if sft_steps is not None else quicktask.PRETRAIN_STEPS
        trained = tmp.with_name(tmp.name + ".sft")
        summary = train_sft(str(tmp), rows, trained, max_steps=steps,
                            learning_rate=quicktask.PRETRAIN_LR, batch_size=64, seed=seed,
                            quiet=True)
        shutil.rmtree(tmp)
        trained.rename(tmp)
        info["pretrain"] = {"steps": steps, "rows": len(rows), "seconds": summary.get("seconds")}
    info["build_seconds"] = round(time.perf_counter() - started, 2)
    (tmp / "posttrain_tiny.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def ensure_tiny_model(cache_dir: str | Path | None = None, task: str | None = "add",
                      seed: int = 0) -> Path:
    """The cached tiny model folder, built on first use and reused after."""
    name = f"tiny-{task or 'base'}-s{seed}-v{TINY_VERSION}"
    path = cache_root(cache_dir) / "models" / name
    if (path / "posttrain_tiny.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return build_tiny_model(path, task=task, seed=seed)

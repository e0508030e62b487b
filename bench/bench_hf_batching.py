"""Static vs continuous batching for ``hf:`` models on this machine's CPU (issue 22).

    python bench/bench_hf_batching.py --model smollm2 [--methods static continuous]
        [--batches 1 8 32] [--prompts 64] [--new-tokens 64] [--prompts-at-1 16]
        [--out results.jsonl] [--default-cache-setup]

``--model``: ``smollm2`` (SmolLM2-135M-Instruct, pulled: ``posttrain models pull
smollm2-135m-instruct``), ``tiny`` (the test suite's 1.1M-parameter Qwen2, built and cached on
first use) or a model folder.

Both methods get the same prompts (the chat template applied once, as token ids) and generate
greedily up to ``--new-tokens`` or the end-of-turn token:

- ``static``: what ``hf:`` does (``posttrain.models.hf.HFModel.generate_batch``): the prompts in
  groups of ``batch``, each group left-padded into one tensor and ``model.generate``; a group
  runs until its longest answer ends.
- ``continuous``: transformers' continuous batching (``model.generate_batch``, 5.x:
  ``ContinuousMixin`` in ``transformers/generation/continuous_batching/continuous_api.py``):
  every prompt is queued at once, a paged KV cache that holds ``batch`` answers (``cb_config``),
  at most ``batch`` requests per forward pass (``max_requests_per_batch``), a finished answer's
  slot refilled at the next step. One call for all prompts, the manager's set-up included (what
  one ``hf:`` batch would pay); ``continuous_setup_s`` is that set-up alone (1 prompt, 1 new
  token), and with ``--default-cache-setup`` the same with transformers' default cache sizing.

Per (method, batch): wall seconds, answer tokens (up to, not counting, the end-of-turn token),
tokens/s, the process's CPU seconds, the load average before and after, and the answers'
tokens, so that outputs are compared across methods and runs: ``identical`` counts prompts whose
answer equals the static batch-1 answer (the reference) when that was measured in the same run,
else the static answer at the same batch. One JSON line per measurement (``--out`` appends
them); a table at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

QUESTIONS = [
    "What is 7 times 8?", "Name three colors.", "Write a haiku about rain.",
    "Who wrote Hamlet?", "Explain in one sentence what a prime number is.",
    "Give me a short tip for sleeping better.", "What is the capital of France?",
    "Describe the sea to someone who has never seen it.", "List two uses of a paperclip.",
    "Why is the sky blue? Answer briefly.", "Translate 'good morning' into Spanish.",
    "Write a long paragraph about lighthouses and the people who kept them.",
    "What does a bee do all day?", "Suggest a name for a small bakery.",
    "How many legs does a spider have?", "Tell me a fact about the moon.",
]


def prompts(count: int) -> list[str]:
    """Fixed questions of varied length (answers of varied length: what batching meets)."""
    return [f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})" for i in range(count)]


def model_path(spec: str) -> Path:
    if spec == "smollm2":
        from posttrain.models import local

        folder = local.named_folder("smollm2-135m-instruct")
        if folder is None:
            sys.exit("SmolLM2 is not pulled: posttrain models pull smollm2-135m-instruct")
        return Path(folder)
    if spec == "tiny":
        from posttrain.train.tiny import ensure_tiny_model

        return Path(ensure_tiny_model(task="add"))
    return Path(spec)


def load(path: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def prompt_ids(tokenizer: Any, questions: list[str]) -> list[list[int]]:
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}],
                                           add_generation_prompt=True, tokenize=False)
             for q in questions]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def answer(tokens: list[int], eos: int, pad: int | None) -> list[int]:
    """The answer's tokens up to (not counting) the end-of-turn token."""
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    while tokens and pad is not None and tokens[-1] == pad:
        tokens = tokens[:-1]
    return tokens


def run_static(tokenizer: Any, model: Any, ids: list[list[int]], batch: int,
               new_tokens: int) -> list[list[int]]:
    import torch

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    answers: list[list[int]] = []
    for start in range(0, len(ids), batch):
        group = ids[start:start + batch]
        encoded = tokenizer.pad({"input_ids": group}, return_tensors="pt", padding=True)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=new_tokens, do_sample=False,
                                    temperature=None, top_p=None, top_k=None,
                                    pad_token_id=pad, eos_token_id=eos)
        width = encoded["input_ids"].shape[1]
        answers += [answer(row[width:].tolist(), eos, pad) for row in output]
    return answers


PAGE = 32  # tokens per KV-cache page


def cb_config(ids: list[list[int]], batch: int, new_tokens: int, sized: bool = True) -> Any:
    """``sized``: a paged cache that holds ``batch`` answers at once (pages of ``PAGE``
    tokens), prefill chunks of up to 256 tokens; else transformers' defaults, which size the
    cache from free memory (on CPU 60% of RAM: seconds of allocation per call)."""
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    if not sized:
        return ContinuousBatchingConfig(max_requests_per_batch=batch)
    pages = -(-(max(map(len, ids)) + new_tokens) // PAGE)
    return ContinuousBatchingConfig(max_requests_per_batch=batch, page_size=PAGE,
                                    num_blocks=batch * pages + 1,
                                    max_batch_tokens=max(256, batch))


def run_continuous(tokenizer: Any, model: Any, ids: list[list[int]], batch: int,
                   new_tokens: int, sized: bool = True) -> list[list[int]]:
    from transformers import GenerationConfig

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos,
                              pad_token_id=pad)
    outputs = model.generate_batch(  # warm-up captures CUDA graphs: nothing to do on CPU
        ids, generation_config=config, warmup=False,
        continuous_batching_config=cb_config(ids, batch, new_tokens, sized))
    if len(outputs) != len(ids):
        raise RuntimeError(f"continuous batching returned {len(outputs)} of {len(ids)} answers")
    ordered = list(outputs.values())  # generate_batch returns them in the inputs' order
    return [answer(list(out.generated_tokens), eos, pad) for out in ordered]


RUNNERS = {"static": run_static, "continuous": run_continuous}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(method: str, tokenizer: Any, model: Any, ids: list[list[int]], batch: int,
            new_tokens: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    cpu = _cpu_s()
    started = time.perf_counter()
    answers = RUNNERS[method](tokenizer, model, ids, batch, new_tokens)
    wall = time.perf_counter() - started
    tokens = sum(len(a) for a in answers)
    return {"method": method, "batch": batch, "prompts": len(ids), "new_tokens": new_tokens,
            "wall_s": round(wall, 3), "tokens": tokens, "tokens_per_s": round(tokens / wall, 2),
            "cpu_s": round(_cpu_s() - cpu, 2), "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "answers": answers,
            "answers_sha": hashlib.sha256(json.dumps(answers).encode()).hexdigest()[:12]}


def setup_cost(tokenizer: Any, model: Any, ids: list[list[int]], sized: bool) -> float:
    """Seconds of one continuous-batching call for 1 prompt x 1 new token (its set-up)."""
    started = time.perf_counter()
    run_continuous(tokenizer, model, ids[:1], 1, 1, sized)
    return round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--methods", nargs="+", default=["static", "continuous"],
                        choices=sorted(RUNNERS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--prompts-at-1", type=int, default=None,
                        help="fewer prompts at batch 1 (its slow rate needs no 64)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", default=None, help="append the JSON lines here")
    parser.add_argument("--default-cache-setup", action="store_true",
                        help="also time a call with transformers' default cache sizing")
    args = parser.parse_args()

    import torch

    path = model_path(args.model)
    tokenizer, model = load(path)
    ids = prompt_ids(tokenizer, prompts(args.prompts))
    run_static(tokenizer, model, ids[:2], 2, 2)  # first-call overhead out of the timings
    head = {"model": args.model, "path": str(path), "torch_threads": torch.get_num_threads(),
            "cpus": len(os.sched_getaffinity(0)),
            "prompt_tokens": [min(map(len, ids)), max(map(len, ids))]}
    if "continuous" in args.methods:
        head["continuous_setup_s"] = setup_cost(tokenizer, model, ids, sized=True)
        if args.default_cache_setup:
            head["continuous_default_cache_setup_s"] = setup_cost(tokenizer, model, ids,
                                                                  sized=False)
    print(json.dumps(head), flush=True)
    rows = []
    for batch in args.batches:
        for method in args.methods:
            count = args.prompts_at_1 if batch == 1 and args.prompts_at_1 else args.prompts
            row = measure(method, tokenizer, model, ids[:count], batch, args.new_tokens)
            print(json.dumps({k: v for k, v in row.items() if k != "answers"}), flush=True)
            rows.append(row)
    static = {row["batch"]: row["answers"] for row in rows if row["method"] == "static"}
    for row in rows:  # against static at batch 1 where measured, else static at this batch
        against = static.get(1) or static.get(row["batch"])
        if against is not None:
            pairs = list(zip(row["answers"], against, strict=False))
            row["identical"] = f"{sum(a == b for a, b in pairs)}/{len(pairs)}"
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps({**head, **row}) + "\n")
    print(f"\n{'method':<11} {'batch':>5} {'prompts':>7} {'tokens':>6} {'wall s':>8} "
          f"{'tok/s':>7} {'cpu s':>7} {'load':>9}  identical")
    for row in rows:
        print(f"{row['method']:<11} {row['batch']:>5} {row['prompts']:>7} {row['tokens']:>6} "
              f"{row['wall_s']:>8.2f} {row['tokens_per_s']:>7.1f} {row['cpu_s']:>7.1f} "
              f"{row['load_before']:>4.1f}-{row['load_after']:<4.1f}  "
              f"{row.get('identical', '-')}")


if __name__ == "__main__":
    main()

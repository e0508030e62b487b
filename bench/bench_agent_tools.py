"""Grit on a tool workflow: a tiny model with a 1024-token context, an SFT warm start on gold
tool-call episodes, then multi-turn RFT with transient faults injected into the rollouts.

    python bench/bench_agent_tools.py -o WORK [--task grit|reserve] [--retry-share 0.2]
    posttrain cusp WORK/eval.yaml --model hf:WORK/sft --k 8 --limit 60
    posttrain train rft --eval WORK/eval.yaml --model hf:WORK/sft -o WORK/rft --store WORK/s.db \\
        --faults transient --steps 40 --lr 1e-4 --heldout 90 --validation 30 --eval-every 10

This script writes ``WORK/eval.yaml`` and ``WORK/items.jsonl`` (300 items, 40% of them with
``reserve`` answering 503 on its first one or two calls: ``case: transient``; the right move is
to call it again) and builds the warm-started model in ``WORK/sft``; RFT is the CLI above.

``--task grit`` (default, ``bench/grit_env.py``): look up with ``find_product()``, then
``reserve()``, then one sentence; the tools take no arguments. ``--task reserve``: the
example's own tools (``examples/environment``: a name and an id to copy), which the tiny model
did not learn to copy in the SFT budget here (bench/RESULTS.md).

The warm start: a byte-level BPE tokenizer trained on the task's text, a ~1M-parameter Qwen2
with 1024 positions (built offline as ``posttrain.train.tiny`` builds the quickstart model), SFT
on gold episodes of *other* items (another seed) in which a 503 is retried only
``--retry-share`` of the time and otherwise reported honestly. So the SFT model has the
workflow but little grit: greedy, it gives up on a 503; sampled, it retries now and then,
which is where GRPO has signal.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "environment"
GIVE_UP = "Sorry, the reservation failed: the service is unavailable."
# the example's eval (its score: the reservation, or an honest report under a permanent fault)
# with a shorter system prompt and tool schemas (cheaper episodes)
EVAL_YAML = """\
name: reserve-grit
dataset: items.jsonl
messages:
  - role: system
    content: "Warehouse assistant. Call find_product, then reserve with the id it returns."
  - {role: user, content: "{{item.request}}"}
tools: "{{item.tools}}"
solver: reserve_env:solve
graders:
  - type: multi
    name: ok
    graders:
      state_ok: {type: string_check, input: "{{sample.meta.state_ok}}", reference: "true", operation: eq}
      honest: {type: string_check, input: "{{sample.meta.honest}}", reference: "true", operation: eq}
    calculate_output: "max(state_ok, honest)"
  - {type: string_check, name: lookup_first, input: "{{sample.meta.lookup_first}}", reference: "true", operation: eq}
score: ok
tag: case
pass_bar: 0.8
sampling: {temperature: 0, max_tokens: 48}
"""
# the copy-free task, graded by the tool_use suite's own grader (grit_env.py gives its items and
# episodes the suite's shape): the score credits a retry that finishes a transient fault and an
# honest failure report under a permanent one; the same grader is the RFT reward
GRIT_YAML = """\
name: reserve-grit-nocopy
dataset: items.jsonl
messages:
  - role: system
    content: "Warehouse assistant. Call find_product, then reserve. Then reply in one sentence."
  - {role: user, content: "{{item.request}}"}
tools: "{{item.tools}}"
solver: grit_env:solve
graders:
  - {type: tool_use, name: ok}
  - {type: string_check, name: lookup_first, input: "{{sample.meta.lookup_first}}", reference: "true", operation: eq}
score: ok
tag: case
pass_bar: 0.8
sampling: {temperature: 0, max_tokens: 48}
"""
TOOLS = [
    {"type": "function", "function": {"name": "find_product", "parameters": {
        "type": "object", "properties": {"name": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "reserve", "parameters": {
        "type": "object", "properties": {"product_id": {"type": "string"},
                                         "quantity": {"type": "integer"}}}}},
]


def _env_module() -> Any:
    sys.path.insert(0, str(EXAMPLE))
    import reserve_env

    return reserve_env


def task_items(n: int, seed: int, fault_share: float) -> list[dict[str, Any]]:
    """The example's items, a share ``fault_share`` of them with a transient ``reserve`` fault."""
    env = _env_module()
    rng = random.Random(f"faults:{seed}")
    rows = []
    for row in env.make_items(n, seed=seed):
        if rng.random() < fault_share:
            row = env.ReserveEnv.with_faults(row, "transient", rng)
        rows.append(dict(row, tools=TOOLS))
    return rows


def _call(index: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"id": f"call_{index}", "type": "function",
            "function": {"name": tool, "arguments": json.dumps(arguments)}}


def gold_rows(eval_: Any, rows: list[dict[str, Any]], retry_share: float, seed: int
              ) -> list[dict[str, Any]]:
    """One prompt/completion row per assistant turn of each item's demonstrated episode, in the
    text the ``hf:`` provider renders for a template without tools. On a 503 the episode
    retries with probability ``retry_share``, else reports the failure and ends."""
    from posttrain.models.hf import tools_in_messages
    from posttrain.types import Item

    env_module = _env_module()
    rng = random.Random(f"gold:{seed}")
    out = []
    for row in rows:
        request = eval_.request_for(Item(id=row["id"], data=row))
        env = env_module.ReserveEnv()
        env.reset(row)
        product_id = row["catalog"][row["product"]]
        said = row["request"].split(" of the ", 1)[1].rstrip(".")
        messages = [dict(m) for m in request.messages]
        actions: list[dict[str, Any]] = [
            {"role": "assistant", "content": "",
             "tool_calls": [_call(0, "find_product", name=said)]}]
        turn = 0
        while actions:
            action = actions.pop(0)
            prompt = tools_in_messages(messages, request.tools or [])
            rendered = tools_in_messages([*messages, action], request.tools or [])
            out.append({"prompt": prompt, "completion": [rendered[-1]]})
            messages.append(action)
            step = env.step(action)
            messages += step.observation
            if step.done:
                break
            turn += 1
            result = step.observation[-1]["content"]
            if result.startswith("503") and rng.random() >= retry_share:
                actions.append({"role": "assistant", "content": GIVE_UP})
            elif '"reserved"' in result:
                actions.append({"role": "assistant", "content":
                                f"Reserved {row['quantity']} of the {row['product']}."})
            else:  # the looked-up id, or a 503 to retry
                actions.append({"role": "assistant", "content": "", "tool_calls": [
                    _call(turn, "reserve", product_id=product_id, quantity=row["quantity"])]})
    return out


def build_model(work: Path, rows: list[dict[str, Any]], *, steps: int, lr: float, seed: int,
                batch: int = 16) -> dict[str, Any]:
    """Tokenizer trained on the demonstrations' text, a 1024-position tiny Qwen2, SFT."""
    from posttrain.train.common import quiet_libraries
    from posttrain.train.sft import train_sft
    from posttrain.train.tiny import build_model as tiny_model
    from posttrain.train.tiny import build_tokenizer

    quiet_libraries()
    corpus = [m["content"] for row in rows for m in [*row["prompt"], *row["completion"]]]
    tokenizer = build_tokenizer(corpus, vocab_size=1500, seed=seed)
    model = tiny_model(tokenizer, seed=seed, positions=1024)
    base = work / "base"
    shutil.rmtree(base, ignore_errors=True)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    summary = train_sft(str(base), rows, work / "sft", max_steps=steps, learning_rate=lr,
                        batch_size=batch, seed=seed, max_length=1024, quiet=True)
    prompt_tokens = len(tokenizer(tokenizer.apply_chat_template(
        rows[0]["prompt"], tokenize=False, add_generation_prompt=True))["input_ids"])
    return {**summary, "prompt_tokens": prompt_tokens,
            "parameters": sum(p.numel() for p in model.parameters())}


def grit_gold_rows(eval_: Any, rows: list[dict[str, Any]], retry_share: float, seed: int
                   ) -> list[dict[str, Any]]:
    """As :func:`gold_rows`, for the copy-free task (``grit_env``: tools without arguments)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from grit_env import GritEnv

    from posttrain.models.hf import tools_in_messages
    from posttrain.types import Item

    rng = random.Random(f"gold:{seed}")
    out = []
    for row in rows:
        request = eval_.request_for(Item(id=row["id"], data=row))
        env = GritEnv()
        env.reset(row)
        messages = [dict(m) for m in request.messages]
        action: dict[str, Any] | None = {"role": "assistant", "content": "",
                                         "tool_calls": [_call(0, "find_product")]}
        turn = 0
        while action is not None:
            prompt = tools_in_messages(messages, request.tools or [])
            rendered = tools_in_messages([*messages, action], request.tools or [])
            out.append({"prompt": prompt, "completion": [rendered[-1]]})
            messages.append(action)
            step = env.step(action)
            messages += step.observation
            if step.done:
                break
            turn += 1
            result = step.observation[-1]["content"]
            if result.startswith("503") and rng.random() >= retry_share:
                action = {"role": "assistant", "content": GIVE_UP}
            elif '"ok"' in result:
                action = {"role": "assistant", "content": "Reserved."}
            else:
                action = {"role": "assistant", "content": "",
                          "tool_calls": [_call(turn, "reserve")]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--fault-share", type=float, default=0.4,
                        help="share of items with a transient reserve fault")
    parser.add_argument("--permanent-share", type=float, default=0.0,
                        help="share of items with a permanent one (--task grit)")
    parser.add_argument("--demos", type=int, default=400, help="gold episodes for SFT")
    parser.add_argument("--retry-share", type=float, default=0.2)
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=["grit", "reserve"], default="grit",
                        help="grit: tools without arguments (bench/grit_env.py); reserve: the "
                             "example's tools (names and ids to copy)")
    args = parser.parse_args()

    from posttrain.eval import load_eval

    started = time.perf_counter()
    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    if args.task == "grit":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import grit_env

        shutil.copy(Path(grit_env.__file__), work / "grit_env.py")
        (work / "eval.yaml").write_text(GRIT_YAML)
        items = grit_env.make_items(args.items, args.seed, args.fault_share,
                                    args.permanent_share)
        demos = grit_env.make_items(args.demos, args.seed + 1, args.fault_share,
                                    args.permanent_share)
    else:
        shutil.copy(EXAMPLE / "reserve_env.py", work / "reserve_env.py")
        (work / "eval.yaml").write_text(EVAL_YAML)
        items = task_items(args.items, seed=args.seed, fault_share=args.fault_share)
        demos = task_items(args.demos, seed=args.seed + 1, fault_share=args.fault_share)
    (work / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    eval_ = load_eval(work / "eval.yaml")
    make_rows = grit_gold_rows if args.task == "grit" else gold_rows
    rows = make_rows(eval_, demos, args.retry_share, args.seed)
    summary = build_model(work, rows, steps=args.sft_steps, lr=args.lr, seed=args.seed,
                          batch=args.batch)
    print(json.dumps({"items": len(items),
                      "transient_items": sum(r["case"] == "transient" for r in items),
                      "permanent_items": sum(r["case"] == "permanent" for r in items),
                      "sft_rows": len(rows), "sft": summary,
                      "seconds": round(time.perf_counter() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()

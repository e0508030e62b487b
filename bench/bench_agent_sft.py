"""From out of reach to the cusp: SFT on written tool-call transcripts, then `posttrain cusp`.

    python bench/bench_agent_sft.py [--model hf:smollm2-135m-instruct] [--steps 20] [--k 4]
        [--lora 16] [--batch-size 2] [--max-length 512] [--skip-base] [--no-cusp] [--keep DIR]

The reserve workflow (examples/environment): the first 80 items' right episodes (find_product,
then reserve, then one sentence) are written out, rendered exactly as the ``hf:`` provider
renders them for a chat template without tools, one SFT row per assistant turn; SFT of
``--steps`` steps; then the cusp finder on 24 of the last 40 items (never trained on), before
(the base model) and after. The transcripts' rows are 293 to 481 tokens (SmolLM2's tokenizer),
so ``--max-length 512`` truncates none; TRL pads each batch to its longest row only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def gold_rows(eval_: Any, items: list[Any]) -> list[dict[str, Any]]:
    """One prompt/completion row per assistant turn of each item's right episode."""
    from posttrain.models.hf import tools_in_messages

    rows = []
    for item in items:
        data = item.data
        request = eval_.request_for(item)
        product_id = data["catalog"][data["product"]]
        said = data["request"].split(" of the ", 1)[1].rstrip(".")
        turns = [
            ({"id": "call_0", "type": "function", "function": {
                "name": "find_product", "arguments": json.dumps({"name": said})}},
             json.dumps({"product_id": product_id, "name": data["product"]})),
            ({"id": "call_1", "type": "function", "function": {
                "name": "reserve", "arguments": json.dumps({"product_id": product_id,
                                                            "quantity": data["quantity"]})}},
             json.dumps({"ok": True, "product_id": product_id, "reserved": data["quantity"]})),
        ]
        messages = [dict(m) for m in request.messages]
        for call, result in turns:
            prompt = tools_in_messages(messages, request.tools or [])
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            rendered = tools_in_messages(messages, request.tools or [])
            rows.append({"prompt": prompt, "completion": [rendered[-1]]})
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        prompt = tools_in_messages(messages, request.tools or [])
        rows.append({"prompt": prompt, "completion": [{
            "role": "assistant",
            "content": f"Reserved {data['quantity']} of the {data['product']} ({product_id})."}]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="hf:smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--lora", type=int, default=16, help="LoRA rank (0: full fine-tune)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--skip-base", action="store_true", help="no cusp run of the base model")
    parser.add_argument("--no-cusp", action="store_true", help="SFT only (to time steps)")
    parser.add_argument("--keep", help="save the SFT model here (default: a temporary folder)")
    parser.add_argument("--sft-dir", help="skip SFT: sample this already trained model folder")
    parser.add_argument("--store", help="SQLite store of the samples (an interrupted run resumes "
                                        "from its cache); default: a temporary folder")
    args = parser.parse_args()

    from posttrain.analysis.cusp import cusp_report
    from posttrain.analysis.results import load_results
    from posttrain.api import run_eval
    from posttrain.eval import load_eval
    from posttrain.runner.executor import RunOptions
    from posttrain.runner.store import Store
    from posttrain.train.sft import train_sft

    started = time.perf_counter()
    eval_ = load_eval(ROOT / "examples" / "environment" / "eval.yaml")
    train, held = eval_.items[:80], eval_.items[80:80 + args.items]
    rows = gold_rows(eval_, train)
    work = Path(tempfile.mkdtemp(prefix="bench-agent-sft-"))
    store = Path(args.store) if args.store else work / "s.db"
    sft_dir = Path(args.sft_dir or args.keep or work / "sft")
    summary = {"steps": 0, "seconds": 0.0}
    if not args.sft_dir:
        summary = train_sft(args.model, rows, sft_dir, max_steps=args.steps,
                            learning_rate=args.lr, batch_size=args.batch_size,
                            max_length=args.max_length, lora_rank=args.lora or None, quiet=True)
    sft_seconds = time.perf_counter() - started
    sampled = dataclasses.replace(eval_, items=held,
                                  sampling={**eval_.sampling, "temperature": 1.0})
    out: dict[str, Any] = {"sft": {"rows": len(rows), "steps": summary.get("steps"),
                                   "seconds": round(sft_seconds, 1),
                                   "train_seconds": summary.get("seconds"),
                                   "s_per_step": round(summary["seconds"] / max(summary["steps"], 1), 1),
                                   "tokens_seen": summary.get("tokens_seen"),
                                   "lora": args.lora, "batch_size": args.batch_size,
                                   "train_loss": summary.get("train_loss")}}
    print(json.dumps(out), flush=True)
    models = [] if args.no_cusp else [("after_sft", f"hf:{sft_dir.resolve()}")]
    if not (args.no_cusp or args.skip_base):
        models.append(("base", args.model))
    for label, model in models:
        cusp_started = time.perf_counter()
        (run,) = run_eval(sampled, [model], variants=["default"], store=store,
                          options=RunOptions(epochs=args.k))
        with Store(store) as db:
            report = cusp_report(load_results(db, run["run_id"]), temperature=1.0)
        out[label] = [{key: t[key] for key in ("tag", "n", "pass_at_1", "pass_at_k", "signal",
                                               "class")} for t in report["tags"]]
        out[label + "_seconds"] = round(time.perf_counter() - cusp_started, 1)
        out[label + "_components"] = [{key: c[key] for key in ("component", "mean_reward",
                                                               "signal")}
                                      for c in report["components"]]
        print(json.dumps({label: out[label]}), flush=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

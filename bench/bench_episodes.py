"""Multi-turn RFT speed: episodes per second (batched vs one at a time) and seconds per GRPO step.

    python bench/bench_episodes.py --model tiny            # the feedback task (tests/episode_env)
    python bench/bench_episodes.py --model hf:smollm2-135m-instruct \
        --eval examples/environment/eval.yaml --episodes 16 --steps 2 --group 4 --prompts 2

Rollouts: ``--episodes`` episodes at temperature 1, first all at once (every waiting episode's
turn generated in one batch: what training does), then the same episodes one at a time. Then
``--steps`` GRPO steps on whole episodes (group ``--group`` x ``--prompts`` prompts per step, no
validation) and the trainer's own figures. Reports the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--eval", type=Path, help="an eval with an environment solver "
                                                  "(default: the tests' feedback task)")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--serial", type=int, help="episodes played one at a time for the "
                                                   "comparison (default: all of them)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--turn-tokens", type=int, default=48)
    parser.add_argument("--episode-tokens", type=int, default=256)
    parser.add_argument("--lora", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from transformers import AutoModelForCausalLM

    from posttrain.eval import eval_from_dict, load_eval
    from posttrain.train.common import load_tokenizer, model_path, quiet_libraries
    from posttrain.train.episodes import environment_of, play
    from posttrain.train.rft import RFTConfig, Split, train_rft

    quiet_libraries()
    if args.model == "tiny":
        from posttrain.train.tiny import ensure_tiny_model

        spec = f"hf:{ensure_tiny_model()}"
    else:
        spec = args.model
    if args.eval is None:
        from tests.episode_env import eval_spec, rows

        eval_ = eval_from_dict(eval_spec(rows()))
    else:
        eval_ = load_eval(args.eval)
    path = model_path(spec)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    factory = environment_of(eval_)
    items = eval_.items[: max(1, args.episodes // 4)]
    jobs = [(item, eval_.request_for(item)) for item in items for _ in range(4)][: args.episodes]
    load_before = os.getloadavg()[0]
    batched, figures = play(model, tokenizer, eval_, jobs, factory, temperature=1.0,
                            turn_tokens=args.turn_tokens, episode_tokens=args.episode_tokens)
    serial_seconds = 0.0
    serial_turns = 0
    alone = jobs[: args.serial] if args.serial is not None else jobs
    for job in alone:
        started = time.perf_counter()
        one, _ = play(model, tokenizer, eval_, [job], factory, temperature=1.0,
                      turn_tokens=args.turn_tokens, episode_tokens=args.episode_tokens)
        serial_seconds += time.perf_counter() - started
        serial_turns += one[0].completion.meta.get("turns", 0)
    result = {
        "model": spec, "eval": eval_.name, "episodes": len(jobs),
        "batched": {"seconds": round(figures["seconds"], 2),
                    "episodes_per_s": round(len(jobs) / figures["seconds"], 2),
                    "generate_calls": figures["generate_calls"],
                    "mean_batch": round(figures["mean_batch"], 1),
                    "turns": sum(r.completion.meta.get("turns", 0) for r in batched)},
        "serial": {"episodes": len(alone), "seconds": round(serial_seconds, 2),
                   "episodes_per_s": round(len(alone) / serial_seconds, 2) if alone else None,
                   "turns": serial_turns},
    }
    if args.steps:
        train = eval_.items[: max(args.prompts * 2, 8)]
        config = RFTConfig(steps=args.steps, num_generations=args.group,
                           prompts_per_step=args.prompts, max_completion_length=args.turn_tokens,
                           episode_tokens=args.episode_tokens, lora_rank=args.lora,
                           eval_every=10 ** 6)
        out = Path(tempfile.mkdtemp(prefix="bench-episodes-")) / "out"
        trained = train_rft(spec, eval_, out, Split(train=train, validation=[], test=[]),
                            config, quiet=True)
        result["grpo"] = {"steps": trained.steps, "seconds": trained.seconds,
                          **trained.speed}  # type: ignore[attr-defined]
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()

"""What name does a model pass to ``find_product`` on the copy task (``bench_agent_tools.py
--task reserve``)? Greedy episodes of the last N items; each first call's ``name`` compared with
the product named in the request (the two words to copy).

    python bench/copy_probe.py WORK MODEL_DIR [N]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def kind(said: str, name: str, catalog: dict[str, str]) -> str:
    want, got = said.split(), name.split()
    if name == said:
        return "exact"
    if want[-1:] == got[-1:]:
        return "right thing, other words"
    if len(want) > 1 and want[0] in got:
        return "right colour, other thing"
    if name in catalog:
        return "another catalog product"
    return "neither word"


def main() -> None:
    from transformers import AutoModelForCausalLM

    from posttrain.eval import load_eval
    from posttrain.train.common import load_tokenizer
    from posttrain.train.episodes import environment_of, play

    work, model_dir = Path(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    ev = load_eval(work / "eval.yaml")
    items = ev.items[-n:]
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    jobs = [(item, ev.request_for(item)) for item in items]
    rollouts, _ = play(model, tokenizer, ev, jobs, environment_of(ev), temperature=0.0)
    kinds: Counter[str] = Counter()
    written: Counter[str] = Counter()
    for (item, _), rollout in zip(jobs, rollouts, strict=True):
        said = item.data["request"].split(" of the ", 1)[1].rstrip(".")
        first = next((m for m in rollout.completion.transcript if m.get("tool_calls")), None)
        if first is None or first["tool_calls"][0]["function"]["name"] != "find_product":
            kinds["no find_product call first"] += 1
            continue
        name = str(json.loads(first["tool_calls"][0]["function"]["arguments"] or "{}")
                   .get("name", ""))
        kinds[kind(said, name, item.data["catalog"])] += 1
        written[name] += 1
    print(json.dumps({"episodes": len(jobs), "first find_product name": dict(kinds),
                      "distinct names written": len(written),
                      "most written": written.most_common(5),
                      "request tokens": tokenizer.tokenize(items[0].data["request"])}))


if __name__ == "__main__":
    main()

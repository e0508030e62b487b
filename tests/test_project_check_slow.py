"""`posttrain check` with real local models (slow): two tiny Qwen2-style models built here
(seeds 0 and 1, the same Hugging Face code path as ``hf:Qwen/...``) on a project of five evals,
the capitals example and four built-in suites, in one command; then again, served from the
store (no generation)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from posttrain.cli import main

pytestmark = pytest.mark.slow

CAPITALS = Path(__file__).resolve().parent.parent / "examples" / "capitals" / "eval.yaml"


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("transformers")
    from posttrain.train.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tinypair")
    return (build_tiny_model(root / "prod", task=None, seed=0),
            build_tiny_model(root / "new", task=None, seed=1))


def test_five_evals_on_two_local_models_in_one_command(tiny_pair, tmp_path, capsys, monkeypatch):
    prod, new = tiny_pair
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "posttrain.yaml").write_text(
        "evals:\n"
        f"  - {CAPITALS}\n"
        "  - suite:instruction_following?n=3&max_tokens=8\n"
        # prompts beyond the tiny models' context (256 tokens): neither answers, so there is
        # no comparison; advisory, they are reported (a production that answers none of a
        # blocking eval's items is a setup problem, exit 2)
        "  - {eval: 'suite:structured_output?n=3&max_tokens=8', weight: 0}\n"
        "  - {eval: 'suite:tool_use?n=3&max_tokens=8', weight: 0}\n"
        "  - {eval: 'suite:context_only?n=3&max_tokens=8', weight: 0}\n"
        f"production: hf:{prod}\n")
    monkeypatch.chdir(tmp_path)
    argv = ["check", "--model", f"hf:{new}", "--json", "--junit", "c.xml", "--markdown",
            "c.md", "--no-progress", "--limit", "4"]
    code = main(argv)
    report = json.loads(capsys.readouterr().out)
    assert code == {"adopt": 0, "hold": 1, "adopt with prompt changes": 3,
                    "insufficient evidence": 4}[report["verdict"]]
    assert len(report["evals"]) == 5
    for record in report["evals"]:
        first = record["variants"][0]
        assert record["production"]["ran_now"] and record["production"]["n"] == first["new"]["n"]
        # production's failed items are left out of the paired test
        assert first["n_common"] == first["new"]["n"] - record["production"]["excluded"]
        assert first["new"]["n"] > 0
        assert first["new"]["requests"] > 0  # generated now by the local model
    capitals = next(r for r in report["evals"] if r["eval"] == "capitals")
    assert [v["variant"] for v in capitals["variants"]] == ["default", "terse"]
    suite = ET.parse(tmp_path / "c.xml").getroot()
    assert suite.get("tests") == "5"
    assert int(suite.get("failures")) == sum(r["status"] in ("blocked", "prompt", "insufficient")
                                             for r in report["evals"])
    assert f"**{report['verdict']}**" in (tmp_path / "c.md").read_text()
    assert report["models"][f"hf:{new}"]["latency_p50_s"] > 0
    # again: production's stored runs are reused, the new model's answers come from the cache;
    # only its failed samples (prompts beyond the tiny model's context) are asked again
    code_again = main(argv)
    again = json.loads(capsys.readouterr().out)
    assert code_again == code and again["verdict"] == report["verdict"]
    answered = 0
    for before, record in zip(report["evals"], again["evals"], strict=True):
        assert not record["production"]["ran_now"]
        assert record["production"]["run_id"] == before["production"]["run_id"]
        for v1, v2 in zip(before["variants"], record["variants"], strict=True):
            assert v2["new"]["requests"] == v1["new"]["errors"] == v2["new"]["errors"]
            assert v2["new"]["score"] == v1["new"]["score"]
            answered += v2["new"]["answered"]
    assert answered > 0  # some answers did come from the cache

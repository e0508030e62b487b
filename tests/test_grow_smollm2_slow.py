"""`posttrain grow` end to end on a real model (slow): SmolLM2-135M-Instruct as the generator,
the solver and the judge, on examples/capitals. SmolLM2 is a weak generator: most of its replies
are prose, not the JSON item asked for, so the test checks the accounting (every request is
added or dropped with a reason), the written eval and the resume, not how many items survive.
A minute or two on 2 CPU cores. Skipped when the model's wheel is not installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.eval import load_eval

pytestmark = pytest.mark.slow

SMOL = "hf:smollm2-135m-instruct"
EXAMPLE = Path(__file__).parent.parent / "examples" / "capitals"


def test_grow_capitals_with_smollm2(tmp_path, capsys, smollm2):
    folder = tmp_path / "capitals"
    shutil.copytree(EXAMPLE, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    store = str(tmp_path / "s.db")
    args = ["grow", str(folder / "eval.yaml"), "--generator", SMOL, "--solvers", SMOL,
            "--n", "2", "--cousins", "1", "--max-tokens", "96", "--timeout", "600",
            "--store", store, "--json", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "g1")]) == 0
    result = json.loads(capsys.readouterr().out)
    funnel = result["funnel"]
    assert {k: f["asked"] for k, f in funnel.items()} == {"paraphrase": 2, "harder": 2, "new": 2}
    for f in funnel.values():
        assert f["asked"] == f["added"] + sum(f[k] for k in (
            "no_answer", "too_long", "unparseable", "does_not_render", "duplicate", "errors",
            "unverified"))
    assert len(result["dropped"]) == sum(f["asked"] - f["added"] for f in funnel.values())
    assert all(d["reason"] for d in result["dropped"])
    assert result["requests"]["generator"] >= 6 and result["method"] == "solvers"
    grown = load_eval(tmp_path / "g1" / "eval.yaml")
    assert grown.name == "capitals-grown" and len(grown.items) == 16 + result["added"]
    for item in grown.items[16:]:
        provenance = item.data["provenance"]
        assert provenance["generator"] == SMOL
        assert provenance["verification"]["solvers"] == {SMOL: True}
        assert provenance["verification"]["judge"]["verdict"] == "yes"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    # the same command into another folder: every answer from the store, the same items
    assert main([*args, "-o", str(tmp_path / "g2")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["requests"] == {"generator": 0, "solvers": 0, "judge": 0}
    assert (tmp_path / "g2" / "items.jsonl").read_text() == \
        (tmp_path / "g1" / "items.jsonl").read_text()

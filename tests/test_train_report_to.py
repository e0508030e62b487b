"""Training reports to experiment trackers only when asked: ``--report-to`` and an OpenAI job's
``integrations``; nothing by default."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.train.common import (
    base_args,
    check_report_to,
    integration_trackers,
    reporting,
)


def test_nothing_is_reported_unless_asked(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="base_args asks torch for a GPU: pip install "
                                        "'posttrain[train]'")
    args = base_args(tmp_path, seed=0, learning_rate=1e-3, max_steps=1, batch_size=1,
                     quiet=True)
    assert args["report_to"] == "none"
    with reporting(("tensorboard", "mlflow")):
        inside = base_args(tmp_path, seed=0, learning_rate=1e-3, max_steps=1, batch_size=1,
                           quiet=True)
    assert inside["report_to"] == ["tensorboard", "mlflow"]
    after = base_args(tmp_path, seed=0, learning_rate=1e-3, max_steps=1, batch_size=1,
                      quiet=True)
    assert after["report_to"] == "none"


def test_tracker_names_and_packages_are_checked(monkeypatch) -> None:
    assert check_report_to(None) == () and check_report_to("none") == ()
    with pytest.raises(UserError, match="unknown tracker 'tensorbord'; did you mean "
                                        "'tensorboard'"):
        check_report_to("tensorbord")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError) as caught:
        check_report_to("wandb")
    assert str(caught.value) == ("--report-to: reporting to wandb needs the package 'wandb': "
                                 "pip install wandb")


def test_a_jobs_wandb_integration_reports_to_wandb(monkeypatch, tmp_path: Path) -> None:
    for var in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_ENTITY", "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "wandb" else real(name, *a))
    job = [{"type": "wandb", "wandb": {"project": "support-bot", "name": "rft-1",
                                       "tags": ["rft", "v2"]}}, {"type": "other"}]
    assert integration_trackers(job, file=tmp_path / "job.json") == (("wandb",), [])
    import os

    assert (os.environ["WANDB_PROJECT"], os.environ["WANDB_NAME"], os.environ["WANDB_TAGS"]) \
        == ("support-bot", "rft-1", "rft,v2")
    assert integration_trackers([]) == ((), []) and integration_trackers(None) == ((), [])


def test_a_jobs_wandb_integration_without_wandb_is_a_note(monkeypatch, tmp_path: Path) -> None:
    """A job file written for OpenAI names W&B for OpenAI to call: training goes on here."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    trackers, notes = integration_trackers([{"type": "wandb", "wandb": {"project": "p"}}],
                                           file=tmp_path / "job.json")
    assert trackers == () and notes == [
        f"{tmp_path / 'job.json'}: integrations: wandb: not reported (the package 'wandb' is "
        "not installed here: pip install wandb)"]


@pytest.mark.slow
def test_sft_with_report_to_tensorboard_writes_event_files(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    if importlib.util.find_spec("tensorboard") is None:
        pytest.importorskip("tensorboardX", reason="needs tensorboardX: pip install "
                                                   "'posttrain[tensorboard]'")
    from posttrain.cli import main
    from posttrain.train import quicktask
    from posttrain.train.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", task=None, seed=0)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": r["prompt"] + r["completion"]}) + "\n"
                            for r in quicktask.pretrain_rows(count=8)))
    out = tmp_path / "out"
    assert main(["train", "sft", "--model", f"hf:{tiny}", "--data", str(data), "-o", str(out),
                 "--steps", "2", "--batch-size", "4", "--quiet", "--report-to",
                 "tensorboard"]) == 0
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    silent = tmp_path / "silent"
    assert main(["train", "sft", "--model", f"hf:{tiny}", "--data", str(data), "-o",
                 str(silent), "--steps", "2", "--batch-size", "4", "--quiet"]) == 0
    assert not list(silent.rglob("events.out.tfevents.*"))  # nothing unless asked

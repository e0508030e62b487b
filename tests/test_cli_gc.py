"""The command runs under posttrain's collector thresholds and gives the caller's back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from posttrain import cli
from posttrain.cli import store as store_cli


def test_a_command_runs_under_batch_thresholds_and_restores_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(store_cli, "_run_info", lambda args: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    assert before != cli.GC_THRESHOLDS  # CPython's default, or the test proves nothing
    assert cli.main(["store", "info", "--store", str(tmp_path / "s.db")]) == 0
    assert seen == [cli.GC_THRESHOLDS]
    assert seen[0][0] >= 20_000  # a young collection every 700 allocations cost ~1 s at 100k
    assert gc.get_threshold() == before


def test_thresholds_restored_when_the_command_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(store_cli, "_run_info", boom)
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        cli.main(["store", "info", "--store", str(tmp_path / "s.db")])
    assert gc.get_threshold() == before

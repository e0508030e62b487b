"""The real-model quickstart's cache key: everything that determines the trained model, and
nothing else (fast: no model is loaded)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest


@pytest.fixture
def setup(tmp_path: Path):
    pytest.importorskip("yaml")
    from posttrain.train import quickstart

    record = {"sha256": "ab" * 32}
    work, eval_, split = quickstart.prepare_smol(tmp_path, seed=0)
    return quickstart, record, eval_, split, tmp_path


def test_key_is_stable_and_changes_with_what_determines_the_model(setup) -> None:
    quickstart, record, eval_, split, root = setup
    config = quickstart.smol_config(0)
    key = quickstart.trained_key(record, eval_, split, config)
    _, eval_again, split_again = quickstart.prepare_smol(root, seed=0)
    assert quickstart.trained_key(record, eval_again, split_again, config) == key
    assert quickstart.trained_key({"sha256": "cd" * 32}, eval_, split, config) != key
    assert quickstart.trained_key(record, eval_, split, quickstart.smol_config(1)) != key
    assert quickstart.trained_key(record, eval_, split, quickstart.smol_config(0, 20)) != key
    fewer = dataclasses.replace(split, train=split.train[:-1])
    assert quickstart.trained_key(record, eval_, fewer, config) != key
    other = dataclasses.replace(eval_, sampling={**eval_.sampling, "max_tokens": 13})
    assert quickstart.trained_key(record, other, split, config) != key


def test_the_task_split_is_disjoint_and_leaves_out_the_worked_example(setup) -> None:
    quickstart, _, eval_, split, _ = setup
    ids = [item.id for part in (split.train, split.validation, split.test) for item in part]
    assert len(ids) == len(set(ids)) == 594  # 600 sums x phrasings, less the example's 2 + 5
    assert not any(i.endswith("-2+5") for i in ids)
    assert (len(split.test), len(split.validation)) == (100, 24)
    messages = eval_.request_for(split.test[0]).messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == '{"answer": 7}'

"""Red-team fault in ``posttrain export hf`` read back with ``dataset: hf://./DIR``: Arrow's
typed columns changed values (4 -> 4.0 beside 2.5, 12345678901234567 -> a float, a missing field
-> None), so the items and the run identity differed. The rows now come back exactly, and an
ordinary dataset folder still reads as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main

datasets = pytest.importorskip("datasets", reason="needs datasets: pip install "
                                                  "'posttrain[hf]'")

ROWS = [
    {"id": "a", "question": "2+2?", "answer": 4, "nested": {"k": 1, "deep": [1, 2.5, "x"]}},
    {"id": "b", "question": "5/2?", "answer": 2.5, "hint": "a fraction",
     "nested": {"k": 2.0, "other": None}},
    {"id": "c", "question": "big?", "answer": 12345678901234567, "nested": {"k": -7},
     "text": "ünïcödé — 東京 🎌"},
    {"id": "d", "question": "mixed?", "answer": "four", "flag": True, "nested": {},
     "list": [{"x": 1}, {"y": "z"}]},
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _eval(folder: Path, dataset: str, name: str) -> Path:
    path = folder / name
    path.write_text(f"name: arith\ndataset: '{dataset}'\nmessages:\n"
                    "  - {role: user, content: \"{{item.question}}\"}\ngraders:\n"
                    "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
                    "reference: \"{{item.answer}}\", operation: eq}\n")
    return path


def test_export_hf_and_read_back_gives_the_same_items_exactly(tmp_path: Path, capsys) -> None:
    from posttrain.eval import load_eval

    (tmp_path / "items.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    original = _eval(tmp_path, "items.jsonl", "eval.yaml")
    assert main(["export", "hf", str(original), "-o", str(tmp_path / "hfdir")]) == 0
    capsys.readouterr()
    via_hf = _eval(tmp_path, "hf://./hfdir?split=test", "eval_hf.yaml")
    a, b = load_eval(original), load_eval(via_hf)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    for x, y in zip(a.items, b.items, strict=True):
        assert y.data == x.data
        assert json.dumps(y.data, sort_keys=True) == json.dumps(x.data, sort_keys=True)
    assert b.items[0].data["answer"] == 4 and type(b.items[0].data["answer"]) is int
    assert b.items[2].data["answer"] == 12345678901234567
    assert "hint" not in b.items[0].data
    assert a.fingerprint() == b.fingerprint()
    # Hugging Face users still get the plain columns
    table = datasets.load_dataset(str(tmp_path / "hfdir"))["test"]
    assert {"id", "question", "answer", "hint"} <= set(table.column_names)
    assert "posttrain_row" in (tmp_path / "hfdir" / "README.md").read_text()


def test_an_ordinary_dataset_folder_reads_as_before(tmp_path: Path) -> None:
    from posttrain.loaders.hf_datasets import load_rows

    rows = [{"id": "q1", "n": 1, "x": 1.5}, {"id": "q2", "n": 2, "x": 2.0}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    read, _ = load_rows("hf://./saved", tmp_path)
    assert [r for _, r in read] == rows


def test_a_broken_row_column_is_one_line(tmp_path: Path) -> None:
    from posttrain.errors import UserError
    from posttrain.loaders.hf_datasets import load_rows

    datasets.Dataset.from_list([{"id": "q1", "posttrain_row": "[1]"}]).save_to_disk(
        str(tmp_path / "saved"))
    with pytest.raises(UserError, match="row 1: posttrain_row is not a row's JSON object"):
        load_rows("hf://./saved", tmp_path)


def test_an_edited_typed_column_is_not_silently_ignored(tmp_path: Path, capsys) -> None:
    """A fix made in the typed columns after the export (a reference corrected in the data
    file) disagrees with posttrain_row: reading it is one line naming the row and column, not
    the old value served silently."""
    from posttrain.errors import UserError
    from posttrain.eval import load_eval

    (tmp_path / "items.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    assert main(["export", "hf", str(_eval(tmp_path, "items.jsonl", "eval.yaml")), "-o",
                 str(tmp_path / "hfdir")]) == 0
    capsys.readouterr()
    data = tmp_path / "hfdir" / "data" / "test.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[1])
    first["question"] = "5/2, as a fraction?"
    data.write_text("\n".join([lines[0], json.dumps(first, ensure_ascii=False), *lines[2:]])
                    + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="row 2: column 'question' differs from posttrain_row"):
        load_eval(_eval(tmp_path, "hf://./hfdir?split=test", "eval_hf.yaml"))

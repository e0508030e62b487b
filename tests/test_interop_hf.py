"""Hugging Face datasets: ``dataset: hf://...`` in eval files and ``posttrain export hf``.

Every dataset here is a local folder built in the test with ``datasets`` itself
(``save_to_disk``, and the data-files-plus-card layout ``export hf`` writes); nothing reaches
the Hub (``HF_HUB_OFFLINE`` and ``HF_DATASETS_OFFLINE`` are set). Skipped where ``datasets`` is
not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main

datasets = pytest.importorskip("datasets", reason="needs datasets: pip install "
                                                  "'posttrain[hf]'")

ROWS = [{"id": "q1", "question": "Capital of France?", "answer": "Paris", "category": "europe"},
        {"id": "q2", "question": "Capital of Japan?", "answer": "Tokyo", "category": "asia"},
        {"id": "q3", "question": "Capital of Peru?", "answer": "Lima", "category": "americas"}]


@pytest.fixture(autouse=True)
def _offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _eval(folder: Path, dataset: str) -> Path:
    path = folder / "eval.yaml"
    path.write_text(f"name: capitals\ndataset: '{dataset}'\nmessages:\n"
                    "  - {role: user, content: \"{{item.question}}\"}\ngraders:\n"
                    "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
                    "reference: \"{{item.answer}}\", operation: ilike}\ntag: category\n")
    return path


def test_an_eval_reads_a_saved_dataset_folder(tmp_path: Path) -> None:
    from posttrain.eval import load_eval

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                                   "test": datasets.Dataset.from_list(ROWS)})
    splits.save_to_disk(str(tmp_path / "caps"))
    eval_ = load_eval(_eval(tmp_path, "hf://./caps?split=test"))
    assert [i.id for i in eval_.items] == ["q1", "q2", "q3"]
    assert eval_.items[1].data["answer"] == "Tokyo" and eval_.items[1].tags == ["asia"]
    request = eval_.request_for(eval_.items[0])
    assert request.messages == [{"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize("dataset,message", [
    ("hf://./caps", "name a split: ?split=NAME (splits: train, test)"),
    ("hf://./caps?split=tset", "no split 'tset'; did you mean 'test'?"),
    ("hf://./caps?splt=test", "unknown option 'splt'; did you mean 'split'?"),
    ("hf://./nowhere?split=test", "no such dataset folder"),
    ("hf://./caps?split=test&revision=main", "revision= pins a commit on the Hub; a local "
                                             "folder has none"),
    ("hf://./caps?split=test&config=fr", "config= names a configuration of data files; a "
                                         "save_to_disk folder has one"),
])
def test_dataset_problems_are_one_line_naming_the_eval(tmp_path: Path, capsys, dataset: str,
                                                       message: str) -> None:
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                          "test": datasets.Dataset.from_list(ROWS)}).save_to_disk(
        str(tmp_path / "caps"))
    capsys.readouterr()
    path = _eval(tmp_path, dataset)
    assert main(["eval", str(path), "--model", "openai:x", "--store",
                 str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {path}") and message in err[0]
    assert "dataset:" in err[0]


def test_export_an_eval_and_read_it_back_through_hf(tmp_path: Path, capsys) -> None:
    from posttrain.eval import load_eval

    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    original = load_eval(_eval(tmp_path, "data.jsonl"))
    out = tmp_path / "hub" / "capitals"
    assert main(["export", "hf", str(tmp_path / "eval.yaml"), "-o", str(out)]) == 0
    assert "3 rows" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n") and "path: data/test.jsonl" in card
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["test"] and loaded["test"][0]["answer"] == "Paris"
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    again = load_eval(_eval(again_dir, f"hf://{out}?split=test"))
    assert [(i.id, i.data, i.tags) for i in again.items] == \
        [(i.id, i.data, i.tags) for i in original.items]
    assert again.fingerprint() == original.fingerprint()  # same requests, same run identity


def test_export_a_run_with_its_scores_and_card(tmp_path: Path, capsys) -> None:
    from posttrain.runner.store import Store
    from posttrain.types import Completion, Item, Score

    store = tmp_path / "s.db"
    with Store(store) as db:
        run = db.create_run(run_key="k", eval_name="capitals", eval_path=None, eval_hash="h",
                            model="openai:gpt-4.1-mini", variant="default", epochs=1,
                            config={"grader_names": ["exact"], "primary": None},
                            items=[Item(id=r["id"], data=r) for r in ROWS])
        for row, answer in zip(ROWS, ["Paris", "Kyoto"], strict=False):
            ok = answer == row["answer"]
            db.record_sample(run.id, row["id"], 0, completion=Completion(
                text=answer, input_tokens=9, output_tokens=1, latency_s=0.2),
                request_key=None, attempts=1,
                scores=[Score(value=float(ok), passed=ok, name="exact")])
        db.record_sample(run.id, "q3", 0, completion=None, request_key=None, attempts=3,
                         error="HTTP 503")
        db.finish_run(run.id)
    out = tmp_path / "run"
    assert main(["export", "hf", run.id, "-o", str(out), "--store", str(store)]) == 0
    capsys.readouterr()
    rows = list(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["test"])
    assert [(r["id"], r["output"], r["score"], r["status"]) for r in rows] == [
        ("q1", "Paris", 1.0, "scored"), ("q2", "Kyoto", 0.0, "scored"), ("q3", "", None, "error")]
    assert rows[0]["grades"]["exact"]["passed"] is True and rows[2]["error"] == "HTTP 503"
    card = (out / "README.md").read_text()
    # 1 of 3 items right, the failed request counting 0
    assert "posttrain score 0.333 [95% CI" in card and "1 errors" in card


def test_without_datasets_an_hf_dataset_is_one_line(tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    import posttrain.loaders.hf_datasets as hf

    monkeypatch.setattr(hf, "have_datasets", lambda: False)
    path = _eval(tmp_path, "hf://org/capitals?split=test")
    assert main(["eval", str(path), "--model", "openai:x"]) == 2
    assert "pip install 'posttrain[hf]'" in capsys.readouterr().err


def test_export_a_run_whose_items_have_posttrain_column_names(tmp_path: Path, capsys) -> None:
    from posttrain.runner.store import Store
    from posttrain.types import Completion, Item, Score

    store = tmp_path / "s.db"
    data = {"id": "q1", "question": "Capital of France?", "output": "Paris", "score": 5,
            "model": "human"}
    with Store(store) as db:
        run = db.create_run(run_key="k", eval_name="capitals", eval_path=None, eval_hash="h",
                            model="openai:gpt-4.1-mini", variant="default", epochs=1,
                            config={"grader_names": ["exact"], "primary": None},
                            items=[Item(id="q1", data=data)])
        db.record_sample(run.id, "q1", 0, completion=Completion(
            text="Lyon", input_tokens=9, output_tokens=1, latency_s=0.2),
            request_key=None, attempts=1, scores=[Score(value=0.0, passed=False, name="exact")])
        db.finish_run(run.id)
    out = tmp_path / "run"
    assert main(["export", "hf", run.id, "-o", str(out), "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert "item field 'output' is also a posttrain column" in err
    (row,) = [json.loads(x) for x in (out / "data" / "test.jsonl").open()]
    assert (row["output"], row["score"], row["model"]) == ("Paris", 5, "human")
    assert (row["posttrain_output"], row["posttrain_score"], row["posttrain_model"]) == \
        ("Lyon", 0.0, "openai:gpt-4.1-mini")
    assert "status" in row and "posttrain_status" not in row

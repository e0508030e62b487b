"""A regrade after a dataset row's *question* was edited: the run's answers answered the old
question, so they are not graded against the new row (the red team's run answered "Capital of
France?" with "Paris", the row was edited to "Capital of Spain?" / "Madrid", and the regrade
failed "Paris" against "Madrid" and rewrote the run's copy of the question, after which blind
votes paired it with another run's answer to Spain). An edited reference is graded again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.eval import load_eval
from posttrain.runner.store import Store
from posttrain.types import Completion


def _write(folder: Path, rows: list[dict]) -> Path:
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "eval.yaml"
    path.write_text("name: caps\ndataset: data.jsonl\nmessages:\n"
                    "  - {role: user, content: \"{{item.question}}\"}\ngraders:\n"
                    "  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
                    "reference: \"{{item.answer}}\", operation: eq}\n")
    return path


@pytest.mark.parametrize("bulk", [True, False])
def test_answers_to_an_edited_question_keep_their_grades(tmp_path: Path, bulk: bool,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    if not bulk:  # the path judges and sandboxes take
        monkeypatch.setattr("posttrain.runner.regrade.in_process", lambda graders: False)
    rows = [{"id": "q1", "question": "Capital of France?", "answer": "Paris"},
            {"id": "q2", "question": "Capital of Peru?", "answer": "Lima"}]
    path = _write(tmp_path, rows)
    eval_ = load_eval(path)
    store_path = tmp_path / "s.db"
    with Store(store_path) as store:
        run = store.create_run(run_key="k", eval_name="caps", eval_path=str(path),
                               eval_hash=eval_.fingerprint(), model="m", variant="default",
                               epochs=1, config={"grader_names": ["exact"]}, items=eval_.items)
        for item, text in zip(eval_.items, ("Paris", "Lima"), strict=True):
            completion = Completion(text=text)
            scores = [g.grade(eval_.sample_of(completion, eval_.request_for(item)), item.data)
                      for g in eval_.graders]
            store.record_sample(run.id, item.id, 0, completion=completion, request_key=None,
                                attempts=1, scores=scores)
        store.finish_run(run.id)
    # q1's question is edited (another question), q2's reference only
    _write(tmp_path, [{"id": "q1", "question": "Capital of Spain?", "answer": "Madrid"},
                      {"id": "q2", "question": "Capital of Peru?", "answer": "Lima, Peru"}])
    assert main(["regrade", run.id, "--store", str(store_path)]) == 0
    err = capsys.readouterr().err
    assert "1 answers not graded again: their item's prompt was edited" in err
    with Store(store_path) as store:
        grades = {r["item_id"]: r["passed"] for r in store.scores(run.id)}
        copies = {item.id: item.data for item in store.run_items(run.id)}
    assert grades == {"q1": 1, "q2": 0}  # Paris keeps its pass; Lima fails "Lima, Peru"
    assert copies["q1"]["question"] == "Capital of France?"  # what the run asked
    assert copies["q2"]["answer"] == "Lima, Peru"

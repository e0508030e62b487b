"""compare / audit / pick on runs written by the real runner (`posttrain eval` on a stub server).

The stub server answers from a directive in the message, so two prompt variants that carry
different directives behave as two "models" with answers we chose.
"""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.cli import main as posttrain_main
from tests.conftest import write_eval


def test_compare_audit_pick_on_real_runs(tmp_path, stub_server, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = []
    for i in range(24):
        # "good" is right except on the 3 misgraded items, where it gives the true answer
        # "Paris" against the reference "Lyon"; "bad" is wrong on every third item.
        misgraded = i in (1, 2, 3)
        rows.append({"id": f"q{i}", "question": f"capital #{i}?", "answer": "Lyon" if misgraded
                     else "Paris", "good": "Paris", "bad": "Rome" if i % 3 == 0 else (
                         "Lyon" if misgraded else "Paris"),
                     "category": "even" if i % 2 == 0 else "odd"})
    extra = ("variants:\n"
             "  good: {messages: [{role: user, content: \"{{item.question}} "
             "[[answer:{{item.good}}]]\"}]}\n"
             "  twin: {messages: [{role: user, content: \"{{item.question}} (twin) "
             "[[answer:{{item.good}}]]\"}]}\n"
             "  bad: {messages: [{role: user, content: \"{{item.question}} "
             "[[answer:{{item.bad}}]]\"}]}\n")
    eval_path = write_eval(tmp_path / "ev", rows, extra=extra)
    store = str(tmp_path / "s.db")
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--variant", "good",
                           "--variant", "twin", "--variant", "bad", "--store", store, "--json"]) == 0
    runs = {r["variant"]: r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]}

    assert posttrain_main(["compare", runs["good"], runs["bad"], "--store", store,
                           "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_common"] == 24
    regressed = {e["item_id"] for e in report["regressed"]}
    fixed = {e["item_id"] for e in report["fixed"]}
    # good right, bad says Rome (on q3 both are wrong: no change)
    assert regressed == {f"q{i}" for i in range(0, 24, 3)} - {"q3"}
    assert fixed == {"q1", "q2"}  # bad says "Lyon" = the (wrong) reference
    assert report["overall"]["test"] == "mcnemar exact"
    assert {g["group"] for g in report["groups"]} == {"even", "odd"}

    assert posttrain_main(["compare", str(eval_path), "--store", store, "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert matrix["best"] in ("openai:stub/good", "openai:stub/twin")
    assert len(matrix["rows"]) == 3

    # a ladder model with no stored run is run through the runner's API first
    assert posttrain_main(["pick", str(eval_path), "--bar", "0.5", "--store", store,
                           "--models", "openai:stub", "openai:newcomer", "--json"]) == 0
    picked = json.loads(capsys.readouterr().out)
    assert picked["missing_models"] == []
    labels = {c["model"] for c in picked["candidates"]}
    assert labels == {f"openai:{m}/{v}" for m in ("stub", "newcomer")
                      for v in ("good", "twin", "bad")} | {"openai:newcomer"}
    assert all(c["latency_p95_s"] is not None for c in picked["candidates"])

    assert posttrain_main(["audit", str(eval_path), "--store", store, "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    suspects = {(s["item_id"], s["reason"]) for s in audit["suspects"]}
    assert suspects == {(f"q{i}", "strong_models_agree_against_reference") for i in (1, 2, 3)}
    assert Path(store).exists()


def test_a_run_given_where_an_eval_goes_is_named_as_a_run(tmp_path, stub_server, capsys,
                                                          monkeypatch) -> None:
    """`compare RUN` (one run), `audit RUN`, `pick RUN`: the error says it is a run and what the
    command takes; `compare RUN RUN` of one run is refused, not compared with itself."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [{"id": f"q{i}", "question": f"capital #{i}? [[answer:Paris]]", "answer": "Paris"}
            for i in range(4)]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub", "--store", store,
                           "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    run_id, name = run["run_id"], run["eval"]
    for command, hint in (("compare", f"posttrain compare {run_id} OTHER_RUN"),
                          ("audit", f"posttrain audit {name}"),
                          ("pick", f"posttrain pick {name}")):
        args = [command, run_id[:-2], "--store", store] + (
            ["--bar", "0.5"] if command == "pick" else [])
        assert posttrain_main(args) == 2
        err = capsys.readouterr().err
        assert f"is a run (of eval {name!r}), not an eval" in err and hint in err, err
    assert posttrain_main(["compare", "nothing-here", "--store", store]) == 2
    assert "no stored runs of eval 'nothing-here'" in capsys.readouterr().err
    assert posttrain_main(["compare", run_id, run_id[:-1], "--store", store]) == 2
    assert "A and B are the same run" in capsys.readouterr().err
    assert posttrain_main(["compare", "latest", "--store", store]) == 2
    assert "'latest' is a run" in capsys.readouterr().err
    # a second run: a prefix both share is neither a run nor an eval
    assert posttrain_main(["eval", str(eval_path), "--model", "openai:stub2", "--store", store,
                           "--json"]) == 0
    other = json.loads(capsys.readouterr().out)["runs"][0]["run_id"]
    shared = next(run_id[:k] for k in range(len(run_id), 0, -1)
                  if other.startswith(run_id[:k]))
    assert posttrain_main(["compare", shared, "--store", store]) == 2
    assert "begins 2 runs' ids" in capsys.readouterr().err
    # a run named twice is one column / one model, not a comparison with itself
    assert posttrain_main(["compare", run_id, other, run_id, "--store", store, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 2
    assert posttrain_main(["audit", name, "--runs", run_id, run_id, "--store", store,
                           "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 1

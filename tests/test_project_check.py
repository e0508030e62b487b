"""`posttrain check` on a project of several evals: the verdict, the family-wise correction, the
JUnit XML and the Markdown summary, the project file's errors, `eval` over a folder, `watch`.

Two models are played by one stub server (``[[as:MODEL:TEXT]]``), so each test knows which items
each model gets right and therefore what the check must conclude: the workflow is under test
here, not a model (a real model runs in ``test_project_check_slow.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from posttrain.analysis.compare import benjamini_hochberg, holm
from posttrain.cli import main
from tests.conftest import StubServer

REPO = Path(__file__).resolve().parent.parent
CAPITALS = REPO / "examples" / "capitals" / "eval.yaml"


@pytest.fixture
def stub() -> StubServer:
    server = StubServer(0.0, "--models", "prod,new,newer")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("POSTTRAIN_MODELS", raising=False)


def _eval(folder: Path, name: str, n: int, *, prod_wrong: set[int] = frozenset(),
          new_wrong: set[int] = frozenset(), terse_new_wrong: set[int] | None = None,
          tags: dict[int, str] | None = None, pass_bar: float | None = None) -> Path:
    """An eval of n items whose answer is 'yes'; item i is answered wrong by prod when i is in
    prod_wrong, by new when in new_wrong, and by new on the `terse` variant when in
    terse_new_wrong (no variant when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        def ask(wrong_prod: bool, wrong_new: bool, i: int = i) -> str:
            return (f"{name} question {i}? [[as:prod:{'no' if wrong_prod else 'yes'}]]"
                    f"[[as:new:{'no' if wrong_new else 'yes'}]][[as:newer:yes]]")
        row = {"id": f"{name}-{i}", "question": ask(i in prod_wrong, i in new_wrong),
               "answer": "yes"}
        if terse_new_wrong is not None:
            row["terse"] = ask(i in prod_wrong, i in terse_new_wrong)
        if tags and i in tags:
            row["area"] = tags[i]
        rows.append(row)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = (f"name: {name}\ndataset: {name}.jsonl\n"
            "messages:\n  - {role: user, content: \"{{item.question}}\"}\n"
            "graders:\n  - {type: string_check, name: exact, input: \"{{sample.output_text}}\", "
            "reference: \"{{item.answer}}\", operation: eq}\n")
    if terse_new_wrong is not None:
        text += "variants:\n  terse: {messages: [{role: user, content: \"{{item.terse}}\"}]}\n"
    if tags:
        text += "tag: area\n"
    if pass_bar is not None:
        text += f"pass_bar: {pass_bar}\n"
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def _models(root: Path, stub: StubServer, names: tuple[str, ...] = ("prod", "new")) -> Path:
    path = root / "models.yaml"
    path.write_text("models:\n" + "".join(
        f"  {n}: {{provider: openai, model: {n}, base_url: \"{stub.base_url}\", "
        f"price: {{input: {1.0 if n == 'prod' else 0.25}, output: {4.0 if n == 'prod' else 1.0}}}}}\n"
        for n in names))
    return path


def _project(root: Path, stub: StubServer, evals: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _models(root, stub)
    path = root / "posttrain.yaml"
    path.write_text(f"name: demo\nevals:\n{evals}production: prod\ncandidates: [new]\n"
                    f"models_file: models.yaml\nstore: runs.db\n{extra}")
    return path


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(["check", "--no-progress", *argv])
    captured = capsys.readouterr()
    report = json.loads(captured.out) if "--json" in argv and code in (0, 1, 3, 4) else {}
    return code, report, captured.out + captured.err


def _five(root: Path) -> str:
    """Five evals: a folder of three (one tagged), the capitals example (advisory: the stub
    cannot answer it) and a built-in suite."""
    return ("  - evals/\n"
            f"  - {{eval: {CAPITALS}, weight: 0}}\n"
            "  - suite:structured_output?n=8\n")


def test_five_evals_one_command_hold_names_what_blocks(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "billing", 30, new_wrong=set(range(12)))                 # 12 of 30 lost: blocks
    _eval(evals, "search", 20, prod_wrong={0, 1}, new_wrong={0})          # better: passes
    _eval(evals, "sql", 24, tags={i: "joins" if i < 12 else "filters" for i in range(24)},
          new_wrong={0, 1, 2, 3, 4, 5, 6})                                # joins below its bar
    project = _project(tmp_path, stub, _five(tmp_path), "tags:\n  joins: {pass_bar: 0.6}\n")
    junit, md = tmp_path / "check.xml", tmp_path / "check.md"
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json",
                             "--junit", str(junit), "--markdown", str(md))
    assert code == 1 and report["verdict"] == "hold"
    status = {r["eval"]: r["status"] for r in report["evals"]}
    assert len(status) == 5
    assert status["billing"] == "blocked" and status["search"] == "pass"
    assert status["sql"] == "blocked" and status["capitals"] == "advisory"
    assert status["structured_output"] == "pass"  # the stub fails both alike: no regression
    assert report["blocking_tags"] == ["joins"]
    billing = next(r for r in report["evals"] if r["eval"] == "billing")["variants"][0]
    assert billing["paired"]["diff"] == pytest.approx(-12 / 30)
    assert billing["paired"]["test"] == "mcnemar exact"
    assert billing["paired"]["p_value"] == pytest.approx(2 * 0.5 ** 12)
    assert billing["paired"]["regression"] and billing["paired"]["p_adjusted"] < 0.05
    sql = next(r for r in report["evals"] if r["eval"] == "sql")["variants"][0]
    joins = next(t for t in sql["tags"] if t["tag"] == "joins")
    assert joins["new"] == pytest.approx(5 / 12, abs=1e-4) and joins["production"] == 1.0
    assert any("tag joins" in b and "below its bar 0.6" in b for b in report["blocking"])
    # cost and latency per model from the same runs: prod is 4x the price per token
    cost_prod = report["models"]["prod"]["cost_usd"]
    cost_new = report["models"]["new"]["cost_usd"]
    assert cost_prod > 0 and cost_new > 0
    assert report["models"]["prod"]["answers"] == report["models"]["new"]["answers"]
    assert report["models"]["new"]["latency_p50_s"] is not None
    assert report["correction"]["method"] == "holm"
    # the family: 4 non-advisory evals' comparisons + the joins tag (capitals is advisory)
    assert report["correction"]["comparisons"] == 5
    # JUnit: one test case per eval, failures where the check blocks
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "5" and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == set(status)
    assert cases["billing"].find("failure") is not None
    assert "regressed -40.0%" in cases["billing"].find("failure").get("message")
    assert cases["search"].find("failure") is None and cases["capitals"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "hold" and props["correction"] == "Holm"
    text = md.read_text()
    assert "**hold**" in text and "billing" in text and "Holm correction across 5" in text
    assert "| billing |" in text
    # the runs compared are stored: `posttrain compare` on them gives the same difference
    record = next(r for r in report["evals"] if r["eval"] == "billing")
    assert main(["compare", record["production"]["run_id"], billing["new"]["run_id"],
                 "--store", report["store"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["diff"] == pytest.approx(-0.4)


def test_adopt_reuses_production_runs_and_sends_nothing_twice(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    for name in ("a", "b", "c", "d", "e"):
        _eval(evals, name, 10, prod_wrong={1, 2}, new_wrong={2})
    project = _project(tmp_path, stub, "  - evals/*.yaml\n")
    code, report, out = _check(capsys, "--project", str(project), "--model", "new", "--json")
    assert code == 0 and report["verdict"] == "adopt" and report["blocking"] == []
    assert all(r["production"]["ran_now"] for r in report["evals"])
    sent = stub.stats()["total_attempts"]
    assert sent == 100  # 5 evals x 10 items x 2 models
    assert report["overall"]["diff"] == pytest.approx(0.1)
    code, again, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    assert code == 0 and stub.stats()["total_attempts"] == sent
    assert not any(r["production"]["ran_now"] for r in again["evals"])
    assert [r["production"]["run_id"] for r in again["evals"]] == \
        [r["production"]["run_id"] for r in report["evals"]]
    code, _, text = _check(capsys, "--project", str(project), "--model", "new")
    assert "verdict: ADOPT new (against prod)" in text
    assert "production: the latest stored runs of 5 evals" in text


def test_a_prompt_variant_that_clears_is_adopt_with_prompt_changes(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "support", 20, new_wrong=set(range(10)), terse_new_wrong=set())
    _eval(evals, "faq", 10)
    project = _project(tmp_path, stub, "  - evals/\n")
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    assert code == 3 and report["verdict"] == "adopt with prompt changes"
    assert report["prompt_changes"][0]["eval"] == "support"
    assert report["prompt_changes"][0]["variant"] == "terse"
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json",
                             "--no-variants")
    assert code == 1 and report["verdict"] == "hold"


def test_the_correction_keeps_one_borderline_eval_from_blocking(tmp_path, stub, capsys):
    # 6 of 12 lost on one eval: McNemar p = 2 * 0.5^6 = 0.031 alone, above 0.05 once five
    # comparisons are corrected (Holm: 5 x 0.031; BH: 0.031 x 5 / 1)
    evals = tmp_path / "evals"
    _eval(evals, "edge", 12, new_wrong=set(range(6)))
    for name in ("a", "b", "c", "d"):
        _eval(evals, name, 10)
    project = _project(tmp_path, stub, "  - evals/\n")
    for method in ("holm", "bh"):
        code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json",
                                 "--correction", method)
        edge = next(r for r in report["evals"] if r["eval"] == "edge")["variants"][0]["paired"]
        assert edge["p_value"] == pytest.approx(0.03125)
        assert edge["p_adjusted"] > 0.05 and not edge["regression"]
        assert code == 0 and report["correction"]["comparisons"] == 5
    # with no other eval in the family the same loss blocks
    single = _project(tmp_path / "one", stub, f"  - {evals / 'edge.yaml'}\n")
    code, report, _ = _check(capsys, "--project", str(single), "--model", "new", "--json")
    assert code == 1 and report["correction"]["comparisons"] == 1


def test_adjusted_p_values_match_published_procedures():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.2), "holm") and "BH"
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx(
        [0.04, 0.0533333, 0.0533333, 0.2])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([]) == []


def test_project_file_found_from_a_subfolder(tmp_path, stub, capsys, monkeypatch):
    evals = tmp_path / "evals"
    _eval(evals, "a", 6)
    _project(tmp_path, stub, "  - evals/a.yaml\n")
    (tmp_path / "evals" / "deep").mkdir()
    monkeypatch.chdir(tmp_path / "evals" / "deep")
    code, report, _ = _check(capsys, "--model", "new", "--json")
    assert code == 0 and report["project"] == str(tmp_path / "posttrain.yaml")
    assert (tmp_path / "runs.db").exists()


@pytest.mark.parametrize(("body", "line", "message"), [
    ("evals:\n  - evals/a.yaml\nproduction: prod\nmodels_file: models.yaml\npass_bar: 80\n",
     5, "pass_bar: must be a share from 0 to 1, got 80: write 0.8 for 80%"),
    ("evals:\n  - evals/a.yaml\nproducton: prod\n", 3,
     "producton: unknown field; did you mean 'production'?"),
    ("evals:\n  - evals/a.yaml\n  - evals/missing.yaml\n", 3,
     "evals[1]: no such eval file:"),
    ("evals:\n  - evals/*.yml\n", 2, "evals[0]: 'evals/*.yml' matches no eval file"),
    ("evals:\n  - {eval: evals/a.yaml, wieght: 2}\n", 2,
     "evals[0].wieght: unknown field; did you mean 'weight'?"),
    ("evals:\n  - {eval: evals/a.yaml, variant: terse}\nproduction: prod\n"
     "models_file: models.yaml\n", 2, "evals[0].variant: eval 'a' has no variant 'terse'"),
    ("evals:\n  - evals/a.yaml\nproduction: prod\nmodels_file: models.yaml\n"
     "tags:\n  billing: {pass_bar: 0.5}\n", 6, "tags.billing: no item of any eval in the set"),
    ("evals:\n  - evals/a.yaml\nproduction: prdo\nmodels_file: models.yaml\n", 3,
     "production: unknown model 'prdo'"),
    ("evals:\n  - evals/a.yaml\ncorrection: bonferroni\n", 3,
     "correction: must be holm or bh, got 'bonferroni'"),
    ("evals:\n  - suite:no_such_suite?n=3\nproduction: prod\nmodels_file: models.yaml\n", 2,
     "evals[0]: "),
])
def test_a_bad_project_file_is_one_line_before_any_request(tmp_path, stub, capsys, body, line,
                                                             message):
    _eval(tmp_path / "evals", "a", 4)
    _models(tmp_path, stub)
    project = tmp_path / "posttrain.yaml"
    project.write_text(body)
    code = main(["check", "--project", str(project), "--model", "new", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"posttrain: error: {project}:{line}: "), lines[0]
    assert message in lines[0]
    assert stub.stats()["total_attempts"] == 0


def test_check_refuses_without_production_and_names_unknown_models(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 4)
    _models(tmp_path, stub)
    project = tmp_path / "posttrain.yaml"
    project.write_text("evals: [evals/a.yaml]\nmodels_file: models.yaml\n")
    assert main(["check", "--project", str(project), "--model", "new"]) == 2
    assert "--against: name the production model" in capsys.readouterr().err
    assert main(["check", "--project", str(project), "--model", "nwe", "--against", "prod"]) == 2
    assert "--model: unknown model 'nwe'" in capsys.readouterr().err
    assert stub.stats()["total_attempts"] == 0


def test_eval_takes_several_files_and_a_folder_with_one_table(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "a", 6, new_wrong={0})
    _eval(evals, "b", 4)
    (evals / "sub").mkdir()
    _eval(evals / "sub", "c", 5)
    models = _models(tmp_path, stub)
    store = str(tmp_path / "s.db")
    code = main(["eval", str(evals), "--model", "new", "--models-file", str(models), "--store",
                 store, "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith(("a ", "b ", "c "))]
    assert [line.split()[0] for line in lines] == ["a", "b", "c"]
    assert "0.833" in lines[0] and lines[0].split()[1] == "new"
    code = main(["eval", str(evals / "a.yaml"), str(evals / "b.yaml"), "--model", "new",
                 "--model", "prod", "--models-file", str(models), "--store", store, "--json"])
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert code == 0 and [(r["eval"], r["model"]) for r in runs] == [
        ("a", "new"), ("a", "prod"), ("b", "new"), ("b", "prod")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", str(empty), "--model", "new", "--models-file", str(models)]) == 2
    assert "no eval files in the folder" in capsys.readouterr().err


def test_watch_checks_a_model_the_models_file_gains(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 8, new_wrong=set(range(8)))
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    out = tmp_path / "out"
    argv = ["watch", "--project", str(project), "--once", "--out", str(out), "--no-progress"]
    assert main(argv) == 0  # the first pass records prod and new, checks nothing
    assert "first pass" in capsys.readouterr().err
    assert stub.stats()["total_attempts"] == 0
    _models(tmp_path, stub, ("prod", "new", "newer"))
    assert main(argv) == 0  # newer answers every item right: adopt
    text = capsys.readouterr().out
    assert "verdict: ADOPT newer (against prod)" in text
    assert ET.parse(out / "check-newer.xml").getroot().get("failures") == "0"
    assert "**adopt**" in (out / "check-newer.md").read_text()
    assert main(argv) == 0 and "verdict" not in capsys.readouterr().out  # nothing new
    assert json.loads((tmp_path / ".posttrain-watch.json").read_text())["seen"] == [
        "new", "newer", "prod"]
    assert os.path.exists(tmp_path / "runs.db")


def test_a_model_that_answers_nothing_on_one_eval_or_at_all_says_why(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "ok", 6)
    broken = _eval(evals, "broken", 6)
    _fault(broken, range(6), "[[fault:400:always]]")
    project = _project(tmp_path, stub, "  - evals/\n")
    # production answered nothing on one eval: no comparison there, a setup problem
    code, _, text = _check(capsys, "--project", str(project), "--model", "new")
    assert code == 2 and "production (prod) answered none of the 6 items of broken" in text
    # an endpoint refusing every request (HTTP 400 or 500 on all): a setup problem, not a hold
    _fault(evals / "ok.yaml", range(6), "[[fault:500:always]]")
    code, _, text = _check(capsys, "--project", str(project), "--model", "new",
                           "--max-retries", "0")
    assert code == 2 and "Traceback" not in text
    assert "--model: the new model (new) answered none of its 12 requests" in text


def test_twenty_evals_of_an_equal_model_rarely_hold_once_corrected():
    """Simulated: 20 evals of 40 pass/fail items, the new model exactly as good as production
    (each item passes with its own probability for both, drawn independently). Uncorrected,
    some eval 'regresses' in about 1 - 0.975^20 = 40% of checks (less: McNemar exact is
    conservative); with Holm or BH, in at most alpha = 5%."""
    import random

    from posttrain.analysis.paired import paired_compare
    from posttrain.project.check import adjust, is_regression

    rng = random.Random(7)
    reps, evals, n = 300, 20, 40
    holds = {"none": 0, "holm": 0, "bh": 0}
    for _ in range(reps):
        diffs, p_values = [], []
        for _e in range(evals):
            rates = [rng.random() for _ in range(n)]
            a = {str(i): float(rng.random() < r) for i, r in enumerate(rates)}
            b = {str(i): float(rng.random() < r) for i, r in enumerate(rates)}
            result = paired_compare(a, b)
            diffs.append(result.diff)
            p_values.append(result.p_value)
        holds["none"] += any(is_regression(d, p, 0.05) for d, p in zip(diffs, p_values, strict=True))
        for method in ("holm", "bh"):
            adjusted = adjust(p_values, method)
            holds[method] += any(is_regression(d, p, 0.05) for d, p in zip(diffs, adjusted, strict=True))
    assert holds["none"] / reps > 0.2  # the false alarms the correction is for
    assert holds["holm"] / reps <= 0.05 + 2 * (0.05 * 0.95 / reps) ** 0.5
    assert holds["bh"] / reps <= 0.05 + 2 * (0.05 * 0.95 / reps) ** 0.5


def test_without_model_the_one_candidate_is_checked(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 6)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")  # candidates: [new]
    code, report, _ = _check(capsys, "--project", str(project), "--json")
    assert code == 0 and report["new"] == "new" and report["against"] == "prod"
    project.write_text(project.read_text().replace("candidates: [new]", "candidates: [new, prod]"))
    assert main(["check", "--project", str(project)]) == 2
    assert "--model: name the new model (candidates: new, prod)" in capsys.readouterr().err


def test_failed_samples_are_shown_with_their_reason_on_either_side(tmp_path, stub, capsys):
    folder = tmp_path / "evals"
    path = _eval(folder, "flaky", 6)
    data = path.with_suffix(".jsonl")
    rows = data.read_text().splitlines()
    rows[0] = rows[0].replace("? [[as:", "? [[fault:400:always]][[as:")
    data.write_text("\n".join(rows) + "\n")
    project = _project(tmp_path, stub, "  - evals/\n")
    md = tmp_path / "c.md"
    code, _, text = _check(capsys, "--project", str(project), "--model", "new", "--markdown",
                           str(md))
    assert code == 4  # production's failed item is left out of the paired test: not an adopt
    assert "flaky: production: 1 of 6 samples failed or were not graded (counted 0): 1 x " \
           "error: HTTP 400" in text
    assert "flaky: new: 1 of 6 samples failed" in text
    assert "**Failures** (counted 0):" in md.read_text()


def test_entry_settings_bar_variant_and_no_regression(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    # new loses 10 of 20 on the default prompt, none on terse; production serves terse
    _eval(evals, "support", 20, new_wrong=set(range(10)), terse_new_wrong=set())
    _eval(evals, "drifty", 20, new_wrong=set(range(10)))   # a real drop, not a criterion here
    _eval(evals, "barred", 10, new_wrong={0, 1}, pass_bar=0.1)
    project = _project(tmp_path, stub,
                       "  - {eval: evals/support.yaml, variant: terse}\n"
                       "  - {eval: evals/drifty.yaml, no_regression: false}\n"
                       "  - {eval: evals/barred.yaml, pass_bar: 0.9}\n")
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    by = {r["eval"]: r for r in report["evals"]}
    support = by["support"]
    assert support["production_variant"] == "terse"
    assert [v["variant"] for v in support["variants"]] == ["terse", "default"]
    assert support["status"] == "pass" and support["variants"][0]["paired"]["diff"] == 0
    assert by["drifty"]["status"] == "pass"
    assert by["drifty"]["variants"][0]["paired"]["p_adjusted"] is None  # not in the family
    assert by["drifty"]["variants"][0]["paired"]["p_value"] < 0.01
    # the entry's bar (0.9) wins over the eval file's (0.1): 80% with 10 items cannot clear it
    assert by["barred"]["pass_bar"] == 0.9 and by["barred"]["status"] == "blocked"
    assert report["correction"]["comparisons"] == 3  # support x 2 prompts + barred
    assert code == 1 and report["blocking"] == [
        "barred: score 80.0% (95% CI low 49.0%) is below the pass bar 0.9 (production is below "
        "it too)"]


def test_eval_html_takes_one_eval(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 2)
    _eval(tmp_path / "evals", "b", 2)
    models = _models(tmp_path, stub)
    assert main(["eval", str(tmp_path / "evals"), "--model", "new", "--models-file",
                 str(models), "--html", str(tmp_path / "r.html")]) == 2
    assert "--html: one eval per HTML report" in capsys.readouterr().err
    assert stub.stats()["total_attempts"] == 0


# ---- red-team findings (issue 18 follow-up) ---------------------------------------------------
@pytest.mark.parametrize("ref", ["evals/*.yaml", "evals/"])
@pytest.mark.parametrize(("typo", "message"), [
    ("graders", "gradrs: unknown field; did you mean 'graders'?"),
    ("name", "nme: unknown field; did you mean 'name'?"),
])
def test_an_eval_file_with_a_typo_in_a_glob_or_folder_is_reported_not_skipped(
        tmp_path, stub, capsys, ref, typo, message):
    evals = tmp_path / "evals"
    _eval(evals, "good", 6)
    bad = _eval(evals, "bad", 6)
    wrong = {"graders": "gradrs", "name": "nme"}[typo]
    bad.write_text(bad.read_text().replace(f"{typo}:", f"{wrong}:", 1))
    (evals / "notes.yaml").write_text("models:\n  x: {provider: openai, model: x}\n")
    (evals / "rows.json").write_text("[1, 2]\n")
    project = _project(tmp_path, stub, f"  - {ref}\n")
    code = main(["check", "--project", str(project), "--model", "new", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{bad}:" in err and message in err
    assert stub.stats()["total_attempts"] == 0
    code = main(["eval", str(evals), "--model", "new", "--models-file",
                 str(tmp_path / "models.yaml"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    # the files that are not evals are listed, not dropped silently
    bad.unlink()
    code, report, text = _check(capsys, "--project", str(project), "--model", "new")
    assert code in (0, 4)
    assert f"skipped (not an eval file): {evals / 'notes.yaml'} (a models file" in text
    if ref == "evals/":
        assert f"skipped (not an eval file): {evals / 'rows.json'} (a list" in text


def _fault(path: Path, rows: range | set[int], fault: str) -> None:
    data = path.with_suffix(".jsonl")
    lines = data.read_text().splitlines()
    for i in rows:
        lines[i] = lines[i].replace("? [[as:", f"? {fault}[[as:", 1)
    data.write_text("\n".join(lines) + "\n")


def test_production_failures_are_sent_again_before_comparing(tmp_path, stub, capsys):
    # production's stored run failed on 8 of 20 items (an outage): counted 0 it looked as bad
    # as the new model, which really loses those 8. They are sent again; the real answers hold.
    evals = tmp_path / "evals"
    path = _eval(evals, "e", 20, new_wrong=set(range(8)))
    _fault(path, range(8), "[[fault:400:1]]")
    project = _project(tmp_path, stub, "  - evals/e.yaml\n")
    assert main(["eval", str(path), "--model", "prod", "--models-file",
                 str(tmp_path / "models.yaml"), "--store", str(tmp_path / "runs.db"),
                 "--no-progress"]) in (0, 1)
    capsys.readouterr()
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    (record,) = report["evals"]
    assert record["production"]["resent"] == 8 and not record["production"]["ran_now"]
    assert record["production"]["excluded"] == 0
    assert record["variants"][0]["paired"]["diff"] == pytest.approx(-0.4)
    assert code == 1 and report["verdict"] == "hold"


def test_production_errors_left_after_sending_again_are_excluded_and_not_an_adopt(
        tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    path = _eval(evals, "e", 20)
    _fault(path, {0, 1}, "[[fault:500:always]]")
    project = _project(tmp_path, stub, "  - evals/e.yaml\n")
    md = tmp_path / "c.md"
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json",
                             "--max-retries", "0", "--markdown", str(md))
    assert code == 4 and report["verdict"] == "insufficient evidence"
    (record,) = report["evals"]
    assert record["status"] == "insufficient" and record["production"]["excluded"] == 2
    assert record["variants"][0]["paired"]["n"] == 18
    assert "production failed on 2 of 20 items" in report["insufficient"][0]
    assert "Insufficient evidence" in md.read_text()


def test_too_few_items_to_show_a_regression_is_insufficient_evidence(tmp_path, stub, capsys):
    # 3 items, every one lost: McNemar p = 0.25 at best; that is no evidence of no regression
    evals = tmp_path / "evals"
    _eval(evals, "tiny", 3, new_wrong={0, 1, 2})
    _eval(evals, "big", 20)
    project = _project(tmp_path, stub, "  - evals/\n")
    xml = tmp_path / "c.xml"
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json",
                             "--junit", str(xml))
    by = {r["eval"]: r for r in report["evals"]}
    assert by["tiny"]["status"] == "insufficient" and by["big"]["status"] == "pass"
    assert code == 4 and report["verdict"] == "insufficient evidence"
    assert "too few items to show a regression: 3 compared" in report["insufficient"][0]
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    assert cases["tiny"].find("failure").get("type") == "insufficient-evidence"
    code, _, text = _check(capsys, "--project", str(project), "--model", "new")
    assert "insufficient evidence" in text and "verdict: INSUFFICIENT EVIDENCE new" in text


def test_an_advisory_eval_that_regressed_says_it_would_block(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "main", 10)
    _eval(evals, "side", 20, new_wrong=set(range(12)))
    project = _project(tmp_path, stub, "  - evals/main.yaml\n"
                                       "  - {eval: evals/side.yaml, weight: 0}\n")
    code, report, text = _check(capsys, "--project", str(project), "--model", "new")
    assert code == 0
    assert "advisory (weight 0): would block" in text
    assert "advisory (weight 0) side: would block — regressed -60.0%" in text
    project.write_text(project.read_text().replace("evals/main.yaml\n",
                                                   "{eval: evals/main.yaml, weight: 0}\n"))
    code = main(["check", "--project", str(project), "--model", "new", "--no-progress"])
    assert code == 2 and "every eval has weight 0" in capsys.readouterr().err


def test_report_files_that_cannot_be_written_are_refused_before_any_request(
        tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 6)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    (tmp_path / "adir").mkdir()
    for flag, path, message in (
            ("--junit", tmp_path / "adir", "is a folder: name a file"),
            ("--markdown", tmp_path / "adir", "is a folder: name a file"),
            ("--junit", tmp_path / "nope" / "c.xml", "no such folder")):
        code = main(["check", "--project", str(project), "--model", "new", "--no-progress",
                     flag, str(path)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert f"{flag}: " in err and message in err
    assert stub.stats()["total_attempts"] == 0


def test_a_setup_problem_still_writes_the_report_files_for_ci(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 6)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    xml, md = tmp_path / "c.xml", tmp_path / "c.md"
    code = main(["check", "--project", str(project), "--model", "nosuch", "--no-progress",
                 "--junit", str(xml), "--markdown", str(md)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown model 'nosuch'" in err
    suite = ET.parse(xml).getroot()
    assert suite.get("errors") == "1" and "unknown model 'nosuch'" in \
        suite.find("testcase/error").get("message")
    assert "no verdict" in md.read_text() and "unknown model 'nosuch'" in md.read_text()


def test_control_characters_and_escapes_from_models_never_break_the_reports(
        tmp_path, stub, capsys):
    from posttrain.project.render import render_junit, render_markdown, render_text

    _eval(tmp_path / "evals", "a", 10, new_wrong=set(range(10)))
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    assert code == 1
    nasty = "HTTP 500: \x1b[31mboom\x1b[0m \x00\x07\x1b]0;title\x07 end"
    report["evals"][0]["variants"][0]["blockers"][0]["text"] = nasty
    report["blocking"][0] = nasty
    suite = ET.fromstring(render_junit(report))  # well-formed
    message = suite.find("testcase/failure").get("message")
    assert "\x1b" not in message and "\x00" not in message and "boom" in message
    for text in (render_text(report), render_markdown(report)):
        assert "\x1b" not in text and "\x00" not in text and "boom" in text


def test_the_weighted_mean_interval_stays_within_minus_one_and_one(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "small", 2, new_wrong={0, 1})
    _eval(evals, "big", 12)
    project = _project(tmp_path, stub, "  - {eval: evals/small.yaml, weight: 10}\n"
                                       "  - evals/big.yaml\n")
    _code, report, _ = _check(capsys, "--project", str(project), "--model", "new", "--json")
    overall = report["overall"]
    assert overall["diff"] == pytest.approx(-10 / 11, abs=1e-3)
    assert -1 <= overall["ci_low"] <= overall["diff"] <= overall["ci_high"] <= 1
    assert "clamped to [-1, 1]" in overall["ci_method"]


def test_watch_reports_a_bad_model_records_it_and_checks_the_next(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "a", 8)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    out = tmp_path / "out"
    argv = ["watch", "--project", str(project), "--once", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    models = tmp_path / "models.yaml"
    # a model the server does not serve (a setup problem), with / and : in its name, first
    models.write_text(models.read_text() + f"  org/bad:v1: {{provider: openai, model: ghost, "
                      f"base_url: \"{stub.base_url}\"}}\n"
                      f"  newer: {{provider: openai, model: newer, base_url: \"{stub.base_url}\"}}\n")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "watch: org/bad:v1: no verdict, a setup problem" in captured.err
    assert "Traceback" not in captured.err
    assert "verdict: ADOPT newer (against prod)" in captured.out   # not stalled by the bad one
    state = json.loads((tmp_path / ".posttrain-watch.json").read_text())
    assert "org/bad:v1" in state["seen"] and "org/bad:v1" in state["failed"]
    files = sorted(p.name for p in out.iterdir())
    assert "check-newer.md" in files and all("/" not in f and ":" not in f for f in files)
    assert any(f.startswith("check-org_bad_v1-") and f.endswith(".xml") for f in files)
    assert main(argv) == 0  # recorded: not retried on every pass


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a watch state file"),
    ("[1, 2]", "not a watch state file"),
    (None, "--state: no such folder"),
])
def test_watch_state_problems_are_one_line(tmp_path, stub, capsys, content, message):
    _eval(tmp_path / "evals", "a", 8)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    state = tmp_path / "state.json" if content is not None else tmp_path / "no" / "state.json"
    if content is not None:
        state.write_text(content)
    code = main(["watch", "--project", str(project), "--once", "--state", str(state),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert message in err


def test_watch_ctrl_c_while_polling_exits_130(tmp_path, stub, capsys, monkeypatch):
    _eval(tmp_path / "evals", "a", 8)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupt)
    code = main(["watch", "--project", str(project), "--every", "1s", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err and "watch: interrupted" in err


def test_an_explicit_entry_overrides_the_glob_that_matches_the_same_file(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "a", 8)
    _eval(evals, "worse", 8)
    _models(tmp_path, stub)
    from posttrain.project.config import load_project

    path = tmp_path / "posttrain.yaml"
    path.write_text("evals:\n  - evals/*.yaml\n  - {eval: evals/worse.yaml, weight: 3}\n"
                    "production: prod\nmodels_file: models.yaml\n")
    project = load_project(path)
    assert [(Path(e.ref).name, e.weight) for e in project.evals] == [("a.yaml", 1.0),
                                                                     ("worse.yaml", 3.0)]
    path.write_text("evals:\n  - evals/worse.yaml\n  - {eval: evals/worse.yaml, weight: 3}\n"
                    "production: prod\nmodels_file: models.yaml\n")
    code = main(["check", "--project", str(path), "--model", "new", "--no-progress"])
    assert code == 2 and "is already in the set" in capsys.readouterr().err


def test_minor_report_details(tmp_path, stub, capsys):
    evals = tmp_path / "evals"
    _eval(evals, "a", 16)
    project = _project(tmp_path, stub, "  - evals/a.yaml\n")
    xml = tmp_path / "c.xml"
    code, _, text = _check(capsys, "--project", str(project), "--model", "new", "--epochs", "3",
                           "--alpha", "0.0001", "--junit", str(xml))
    assert "Intervals: 99.99%, per comparison." in text
    header, _rule, row = text.splitlines()[2:5]
    assert header.split()[-2:] == ["items", "status"] and row.split()[-2] == "16"  # not 48
    case = ET.parse(xml).getroot().find("testcase")
    assert float(case.get("time")) > 0
    # production's own problems are named as production's
    models = tmp_path / "models.yaml"
    models.write_text(models.read_text().replace("model: prod,", "model: ghost,"))
    code = main(["check", "--project", str(project), "--model", "new", "--no-progress",
                 "--no-cache", "--limit", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "production: " in err and "--model:" not in err
    # an unknown model where the project has no models file says so
    bare = tmp_path / "bare"
    _eval(bare / "evals", "a", 4)
    (bare / "posttrain.yaml").write_text("evals: [evals/a.yaml]\nproduction: prod\n")
    assert main(["check", "--project", str(bare / "posttrain.yaml"), "--model", "new"]) == 2
    assert "no models file" in capsys.readouterr().err


def test_no_compare_command_for_an_eval_where_no_item_moved(tmp_path, stub, capsys):
    _eval(tmp_path / "evals", "barred", 10, prod_wrong={0, 1}, new_wrong={0, 1}, pass_bar=0.9)
    project = _project(tmp_path, stub, "  - evals/barred.yaml\n")
    code, _, text = _check(capsys, "--project", str(project), "--model", "new")
    assert code == 1 and "below the pass bar 0.9" in text
    assert "the items that moved" not in text and "posttrain compare" not in text

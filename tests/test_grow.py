"""``posttrain grow``: generated items are verified, deduplicated and written with provenance;
``report`` shows reliability@k over cousins; ``audit`` points a saturated eval to ``grow``.

Scripted models (``posttrain.testing.grow_sim``) drive the logic; the CLI runs against the stub
server. The real-model test is ``test_grow_smollm2_slow.py``."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from posttrain.analysis.report import render_table, summarize
from posttrain.analysis.results import load_results
from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.eval import load_eval
from posttrain.grow.core import Settings, grow, thin_tags, verification_method
from posttrain.grow.prompts import field_roles, judge_verdict, parse_reply
from posttrain.grow.write import write_grown
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.store import Store
from posttrain.testing.grow_sim import ArithmeticGenerator, ArithmeticSolver
from posttrain.types import ChatRequest, Completion

EXACT = ('  - {type: string_check, name: exact, input: "{{sample.output_text}}", '
         'reference: "{{item.answer}}", operation: eq}\n')


def _sums(folder: Path, n: int = 12, thin: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.jsonl").open("w") as handle:
        for i in range(n):
            a, b = i + 2, 3 * i + 1
            handle.write(json.dumps({"id": f"q{i}", "question": f"What is {a} + {b}?",
                                     "answer": str(a + b),
                                     "category": "big" if i >= n - thin else "small"}) + "\n")
    path = folder / "eval.yaml"
    path.write_text("name: sums\ndataset: data.jsonl\nmessages:\n"
                    "  - {role: system, content: \"Reply with the number only.\"}\n"
                    "  - {role: user, content: \"{{item.question}}\"}\n"
                    "graders:\n" + EXACT + "tag: category\n")
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.is_file()}


def _grow(path: Path, store: Path, generator: object, solvers: list, **settings: object) -> dict:
    eval_ = load_eval(path)
    names = [s.name for s in solvers]
    return asyncio.run(grow(eval_, generator, Store(store), RunOptions(),
                            Settings(**settings),  # type: ignore[arg-type]
                            generator_name=generator.name,  # type: ignore[attr-defined]
                            solvers=solvers, solver_names=names))


def test_roles_come_from_the_eval(tmp_path):
    eval_ = load_eval(_sums(tmp_path))
    roles = field_roles(eval_)
    assert (roles.input, roles.reference, roles.tags) == (["question"], ["answer"], ["category"])
    assert verification_method(eval_, "auto") == "solvers"
    assert thin_tags(eval_.items) == ["big"]


def test_wrong_references_and_garbage_are_dropped_and_counted(tmp_path):
    path = _sums(tmp_path / "e")
    before = _digest(tmp_path / "e")
    generator = ArithmeticGenerator(wrong=0.4, garbage=0.15)
    solvers = [ArithmeticSolver("sim:a"), ArithmeticSolver("sim:b")]
    result = _grow(path, tmp_path / "s.db", generator, solvers, n=6)
    funnel = result["funnel"]
    assert funnel["paraphrase"]["asked"] == 12 and funnel["harder"]["asked"] == 6
    assert funnel["new"]["asked"] == 6
    assert sum(f["unparseable"] for f in funnel.values()) >= 1
    assert funnel["harder"]["unverified"] + funnel["new"]["unverified"] >= 1
    # every added item's reference is right: the generator's wrong ones never pass
    for row in result["added"]:
        numbers = [int(x) for x in __import__("re").findall(r"-?\d+", row["question"])]
        assert row["answer"] == str(sum(numbers)), row
        provenance = row["provenance"]
        assert provenance["kind"] in ("paraphrase", "harder", "new")
        assert provenance["generator"] == "sim:grow-generator"
        verification = provenance["verification"]
        assert verification["method"] == "solvers" and verification["agree"] == "2/2"
        assert verification["judge"]["verdict"] == "yes"
        if provenance["kind"] == "new":
            assert row["category"] == "big" and provenance["seed"] is None
        else:
            assert provenance["seed"].startswith("q")
    # each reason is counted once per dropped request
    dropped = sum(f["asked"] - f["added"] for f in funnel.values())
    assert dropped == len(result["dropped"])
    assert all(d["reason"] for d in result["dropped"])
    assert _digest(tmp_path / "e") == before


def test_copies_of_existing_items_are_removed(tmp_path):
    path = _sums(tmp_path)
    result = _grow(path, tmp_path / "s.db", ArithmeticGenerator(copy=True),
                   [ArithmeticSolver("sim:a")], n=4, kinds=("paraphrase",))
    funnel = result["funnel"]["paraphrase"]
    # the copy generator words every paraphrase exactly as the seed: all are duplicates
    assert funnel == {"asked": 8, "no_answer": 0, "too_long": 0, "unparseable": 0,
                      "does_not_render": 0, "duplicate": 8, "errors": 0, "unverified": 0,
                      "added": 0}
    assert "exact duplicate of q" in result["dropped"][0]["reason"]


def test_solvers_must_agree_and_agree_is_settable(tmp_path):
    path = _sums(tmp_path)
    sloppy = ArithmeticSolver("sim:sloppy", misses=0.5)
    strict = _grow(path, tmp_path / "s.db", ArithmeticGenerator(),
                   [ArithmeticSolver("sim:a"), sloppy], n=6, kinds=("paraphrase",))
    lenient = _grow(path, tmp_path / "s.db", ArithmeticGenerator(),
                    [ArithmeticSolver("sim:a"), sloppy], n=6, kinds=("paraphrase",), agree=1)
    assert strict["funnel"]["paraphrase"]["unverified"] >= 1
    assert lenient["funnel"]["paraphrase"]["added"] == 12
    # the second run was served from the store: nothing asked again of the generator
    assert lenient["requests"]["generator"] == 0


def test_a_rerun_costs_nothing_and_gives_the_same_items(tmp_path):
    path = _sums(tmp_path)
    first = _grow(path, tmp_path / "s.db", ArithmeticGenerator(wrong=0.3),
                  [ArithmeticSolver("sim:a")], n=4)
    generator = ArithmeticGenerator(wrong=0.3)
    second = _grow(path, tmp_path / "s.db", generator, [ArithmeticSolver("sim:a")], n=4)
    assert second["added"] == first["added"] and generator.requests == []
    assert second["requests"] == {"generator": 0, "solvers": 0, "judge": 0}


def test_the_grown_eval_is_written_beside_and_report_shows_reliability(tmp_path):
    path = _sums(tmp_path / "e")
    eval_ = load_eval(path)
    result = _grow(path, tmp_path / "s.db", ArithmeticGenerator(),
                   [ArithmeticSolver("sim:a")], n=12, kinds=("paraphrase", "harder"))
    written = write_grown(eval_, result, tmp_path / "grown")
    grown = load_eval(written)
    assert grown.name == "sums-grown"
    assert len(grown.items) == 12 + len(result["added"]) and len(result["added"]) >= 30
    meta = json.loads(json.dumps(__import__("yaml").safe_load(written.read_text())["metadata"]))
    assert meta["grown_from"]["name"] == "sums" and meta["grown_from"]["added"] == \
        len(result["added"])
    assert json.loads((tmp_path / "grown" / "grow.json").read_text())["funnel"]
    # a model that misses some phrasings: reliability@k is below the per-phrasing pass rate
    model = ArithmeticSolver("sim:brittle", misses=0.2)
    store = Store(tmp_path / "s.db")
    (handle,) = asyncio.run(execute_eval(grown, [model], ["default"], store, RunOptions()))
    results = load_results(store, handle.run)
    summary = summarize(results)
    rel = summary["reliability_at_k"]
    assert rel["groups"] == 12 and rel["k_min"] == rel["k_max"] == 3
    passed = {s.item_id: bool(s.passed) for s in results.samples}
    groups: dict[str, list[bool]] = {}
    for item in grown.items:
        provenance = item.data.get("provenance") or {}
        if provenance.get("kind") == "paraphrase":
            groups.setdefault(provenance["seed"], [passed[provenance["seed"]]]).append(
                passed[item.id])
    expected = sum(all(v) for v in groups.values()) / len(groups)
    assert rel["score"] == pytest.approx(expected, abs=1e-4)
    assert rel["score"] < rel["item_pass_rate"] <= 1
    assert "reliability@k sim:brittle: " in render_table([summary])
    # an eval without cousins has none
    (plain,) = asyncio.run(execute_eval(eval_, [model], ["default"], store, RunOptions()))
    assert "reliability_at_k" not in summarize(load_results(store, plain.run))
    with pytest.raises(UserError, match="already holds eval.yaml"):
        write_grown(eval_, result, tmp_path / "grown")


class _SchemaGenerator:
    """Writes a new `{"prompt", "schema"}` item with a reference answer; the reference answer
    of a variant of person 0, 3, 6... breaks its own schema."""

    name = cache_id = "sim:schema-gen"
    max_concurrency = 4
    price = None

    async def generate(self, request: ChatRequest) -> Completion:
        text = str(request.messages[-1].get("content"))
        number = int(text.split("Give person ", 1)[1].split(" ", 1)[0].rstrip("."))
        answer = {"name": "x", "age": 3} if number % 3 else {"name": "x", "age": "three"}
        return Completion(text=json.dumps({
            "prompt": f"Give a person named x, {number} variant, as JSON.",
            "schema": {"type": "object", "required": ["name", "age"],
                       "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}},
            "reference_answer": json.dumps(answer)}))

    async def aclose(self) -> None:
        pass


def test_programmatic_verification_grades_the_reference_answer(tmp_path):
    rows = [{"id": f"r{i}", "prompt": f"Give person {i} as JSON.",
             "schema": {"type": "object", "required": ["name"]}} for i in range(4)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "eval.yaml"
    path.write_text("name: people\ndataset: d.jsonl\nmessages:\n"
                    "  - {role: user, content: \"{{item.prompt}}\"}\n"
                    "graders:\n  - {type: json_schema, name: valid, schema: \"{{item.schema}}\"}\n")
    eval_ = load_eval(path)
    assert verification_method(eval_, "auto") == "programmatic"
    result = asyncio.run(grow(eval_, _SchemaGenerator(), Store(tmp_path / "s.db"), RunOptions(),
                              Settings(n=4, kinds=("harder",)), generator_name="schema-gen"))
    funnel = result["funnel"]["harder"]
    assert funnel["asked"] == 4 and funnel["unverified"] == 2
    assert funnel["added"] + funnel["unverified"] + funnel["duplicate"] == 4
    for row in result["added"]:
        verification = row["provenance"]["verification"]
        assert verification["method"] == "programmatic"
        assert verification["graders"]["valid"]["passed"] is True
    assert any("graders reject the reference answer" in d["reason"] for d in result["dropped"])


def test_replies_are_parsed_or_refused_with_the_reason(tmp_path):
    roles = field_roles(load_eval(_sums(tmp_path)))
    seed = {"id": "q1", "question": "What is 1 + 2?", "answer": "3", "category": "small"}
    data, _, why = parse_reply('{"question": "1 plus 2?"}', "paraphrase", seed, roles)
    assert why == "" and data == {"question": "1 plus 2?", "answer": "3", "category": "small"}
    assert parse_reply("no json", "harder", seed, roles)[2] == "the reply is not a JSON object"
    assert parse_reply('{"question": "x"}', "harder", seed, roles)[2] == \
        "the reply has no field 'answer'"
    assert "is int, the seed's is str" in parse_reply(
        '{"question": "x", "answer": 3}', "harder", seed, roles)[2]
    assert parse_reply('{"question": " "}', "paraphrase", seed, roles)[2] == \
        "field 'question' is empty"
    assert parse_reply('Sure: {"question": "1 plus 2?"} done', "paraphrase", seed,
                       roles)[0] is not None
    assert [judge_verdict(t) for t in ("YES.", "**No**, wrong", "maybe")] == [True, False, None]


def _stub_eval(folder: Path, n: int = 3) -> Path:
    """Seed items whose prompts script the stub: as model `gen` they reply with a generated
    item (its `[[answer:N]]` written with JSON escapes, so the directive survives inside the
    reply), as any other model they answer N."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        a, b = i + 1, 2 * i + 3
        generated = json.dumps({"question": f"Compute {a} plus {b}. [[answer:{a + b}]]"}
                               ).replace("[", "\\u005b").replace("]", "\\u005d")
        rows.append({"id": f"s{i}", "answer": str(a + b),
                     "question": f"[[as:gen:{generated}]] What is {a} + {b}? [[answer:{a + b}]]"})
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "eval.yaml"
    path.write_text("name: stubsums\ndataset: data.jsonl\nmessages:\n"
                    "  - {role: user, content: \"{{item.question}}\"}\n"
                    "graders:\n" + EXACT)
    return path


def test_cli_grows_on_the_stub_server_then_audit_and_report(tmp_path, stub_server, capsys,
                                                             monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _stub_eval(tmp_path / "e", n=40)
    store = str(tmp_path / "s.db")
    # a saturated eval: audit's verdict points to grow
    assert main(["eval", str(path), "--model", "openai:solver", "--store", store,
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["audit", str(path), "--store", store]) == 0
    out = capsys.readouterr().out
    assert "saturated" in out and f"next: posttrain grow {path} --generator SPEC" in out
    # the judge reads the new item's prompt, whose [[answer:N]] makes the stub reply N: neither
    # YES nor NO, so every item the solver verified is dropped, with that reason
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g"),
                 "--store", store, "--kinds", "paraphrase", "--cousins", "1", "--no-progress",
                 "--n", "3",
                 "--solvers", "openai:solver", "--judge", "openai:solver"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "grow stubsums: 40 items + 0 new = 40" in out
    assert "3 x unverified: the judge's reply has no YES or NO" in out
    assert not (tmp_path / "e" / "items.jsonl").exists()


def test_cli_writes_cousins_that_report_groups(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _stub_eval(tmp_path / "e")
    text = path.read_text()
    # the judge sees the prompt between <prompt> tags: a model named `judge` answers YES
    path.write_text(text.replace("\"{{item.question}}\"", "\"{{item.question}} [[as:judge:YES]]\""))
    store = str(tmp_path / "s.db")
    out_dir = tmp_path / "g"
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(out_dir),
                 "--store", store, "--kinds", "paraphrase", "--cousins", "1", "--no-progress",
                 "--solvers", "openai:s1,openai:s2", "--judge", "openai:judge"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "grow stubsums: 3 items + 3 new = 6" in out and "paraphrase  3" in out
    rows = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows[3:]] == ["s0~p1", "s1~p1", "s2~p1"]
    assert rows[3]["provenance"]["verification"]["solvers"] == {"openai:s1": True,
                                                                "openai:s2": True}
    assert rows[3]["question"] == "Compute 1 plus 3. [[answer:4]]"
    assert main(["eval", str(out_dir / "eval.yaml"), "--model", "openai:solver", "--store",
                 store, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", "latest", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "reliability@k openai:solver: 1.000" in out and "k=2" in out


@pytest.mark.parametrize("extra, message", [
    (["--kinds", "paraphrse"], "--kinds: unknown kind 'paraphrse'; did you mean 'paraphrase'?"),
    (["--n", "0"], "--n: must be at least 1; got 0"),
    (["--dedup-threshold", "1.5"], "--dedup-threshold: must be a share above 0"),
    ([], "--solvers: this eval's graders compare answers with the item's reference"),
    (["--solvers", "openai:a", "--agree", "2"], "--agree: must be between 1 and the number"),
])
def test_bad_input_is_one_line_before_any_request(tmp_path, stub_server, capsys, monkeypatch,
                                                  extra, message):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _sums(tmp_path / "e")
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g"),
                 "--store", str(tmp_path / "s.db"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not [m for m in stub_server.stats()["attempts"] if m != "ping"]
    assert not (tmp_path / "g").exists()


def test_an_output_folder_with_a_grown_eval_is_refused(tmp_path, capsys):
    path = _sums(tmp_path / "e")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "eval.yaml").write_text("x")
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "already holds eval.yaml" in err


def test_the_object_with_the_fields_is_found_in_a_chatty_reply(tmp_path):
    roles = field_roles(load_eval(_sums(tmp_path)))
    seed = {"id": "q1", "question": "What is 1 + 2?", "answer": "3", "category": "small"}
    text = ('Here is an example: {"title": "x"}\nAnd the item:\n{"question": "What is 2 + 2?", '
            '"answer": "4"} Hope it helps {')
    data, _, why = parse_reply(text, "harder", seed, roles)
    assert why == "" and data is not None and data["answer"] == "4"
    assert parse_reply('{"title": "x"}', "harder", seed, roles)[2] == \
        "the reply has no field 'question'"


def test_the_html_report_has_reliability(tmp_path):
    from posttrain.analysis.report import render_html

    summary = {"model": "m", "variant": "default", "reliability_at_k": {
        "score": 0.5, "ci_low": 0.2, "ci_high": 0.8, "groups": 4, "k_min": 3, "k_max": 3,
        "item_pass_rate": 0.75, "seed_pass_rate": 1.0}}
    page = render_html([{"eval": "e", "run_id": "r", "score": 0.5, "ci_low": 0.1, "ci_high": 0.9,
                         "coverage": 1, "score_scored_only": 0.5, "n": 12, "errors": 0,
                         "unscored": 0, "retries": 0, "cost_usd": 0.0, "latency_p50_s": None,
                         "latency_p95_s": None, "by_tag": {}, "components": {}, **summary}])
    assert "reliability@k: solved in every phrasing" in page and "<td>0.750</td>" in page


def test_new_ids_are_unique_and_survive_odd_seed_ids():
    from posttrain.grow.core import Candidate, _new_id

    taken = {"a:b~p1"}
    assert _new_id(Candidate("paraphrase", "a:b", "paraphrase:a:b:1"), taken) == "a:b~p1-2"
    assert _new_id(Candidate("new", "", "new:x:y:3"), taken) == "new~x:y~3"
    assert {"a:b~p1-2", "new~x:y~3"} <= taken


def test_the_summary_shows_examples_of_what_was_added(tmp_path):
    from posttrain.cli.grow import summary_text

    path = _sums(tmp_path)
    result = _grow(path, tmp_path / "s.db", ArithmeticGenerator(), [ArithmeticSolver("sim:a")],
                   n=2, kinds=("paraphrase",))
    result["written"] = "DIR/eval.yaml"
    text = summary_text(result, load_eval(path))
    assert "added, e.g.:\n  q" in text and "(paraphrase of q" in text
    assert "tags: " in text and "grow sums: 12 items + 4 new = 16" in text


# ---- red team (issue 23): trusting references, lineage, duplicates, errors, names --------------
class _Failing:
    """A solver whose every request fails for good."""

    name = cache_id = "sim:failing"
    max_concurrency = 4
    price = None

    async def generate(self, request: ChatRequest) -> Completion:
        from posttrain.models.base import ModelError

        raise ModelError("HTTP 500: boom", status=500)

    async def aclose(self) -> None:
        pass


class _Noisy(ArithmeticGenerator):
    """Paraphrases that are the seed's question with a number appended ("... #7"), the
    near-identical short cousins word 3-shingles miss; ``huge`` replies pad the question."""

    def __init__(self, *, huge: bool = False, prefix: bool = False) -> None:
        super().__init__()
        self.cache_id += ":noisy" + ("huge" if huge else "") + ("prefix" if prefix else "")
        self.huge, self.prefix = huge, prefix

    async def generate(self, request: ChatRequest) -> Completion:
        text = str(request.messages[-1].get("content") or "")
        seed = json.loads([line for line in text.splitlines() if line.startswith("{")][-1])
        number = len(self.requests) + 1
        self.requests.append(request)
        question = seed["question"] + (" x" * 5000 if self.huge else f" #{number}")
        if self.prefix:  # a cousin of a cousin reads differently again
            question = ("Quick one, no tricks: " + seed["question"][12:] + " Digits only."
                        if seed["question"].startswith("Please say: ") else
                        "Please say: " + seed["question"])
        return Completion(text=json.dumps({"question": question}))


def test_programmatic_is_refused_when_the_graders_compare_with_the_generators_answer(tmp_path):
    eval_ = load_eval(_sums(tmp_path))
    with pytest.raises(UserError) as caught:
        verification_method(eval_, "programmatic")
    message = str(caught.value)
    assert "grader 'exact' (string_check) compares the answer with the item's answer" in message
    assert caught.value.field == "--verify" and "--verify solvers" in message
    # a grader that checks on its own keeps it (as auto does)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "d.jsonl").write_text(json.dumps({"id": "a", "prompt": "x", "schema": {}})
                                            + "\n")
    (tmp_path / "p" / "eval.yaml").write_text(
        "name: p\ndataset: d.jsonl\nmessages:\n  - {role: user, content: \"{{item.prompt}}\"}\n"
        "graders:\n  - {type: json_schema, name: valid, schema: \"{{item.schema}}\"}\n")
    assert verification_method(load_eval(tmp_path / "p" / "eval.yaml"), "programmatic") == \
        "programmatic"


def test_regrowing_chains_cousins_of_cousins_to_the_true_seed(tmp_path):
    from posttrain.analysis.report import cousin_groups

    path = _sums(tmp_path / "e", n=4)
    first = _grow(path, tmp_path / "s.db", _Noisy(prefix=True), [ArithmeticSolver("sim:a")],
                  n=4, cousins=1, kinds=("paraphrase",))
    grown = write_grown(load_eval(path), first, tmp_path / "g1")
    # a rewording of each cousin (the originals' second cousins are their first again)
    second = _grow(grown, tmp_path / "s.db", _Noisy(prefix=True), [ArithmeticSolver("sim:a")],
                   n=8, cousins=1, kinds=("paraphrase",))
    originals = {f"q{i}" for i in range(4)}
    chained = [r for r in second["added"] if r["provenance"].get("parent")]
    assert len(chained) == 4, second["dropped"]
    for row in second["added"]:
        assert row["provenance"]["seed"] in originals, row["provenance"]
    for row in chained:
        assert row["provenance"]["parent"].startswith(row["provenance"]["seed"] + "~p")
    items = load_eval(write_grown(load_eval(grown), second, tmp_path / "g2")).items
    groups = cousin_groups(items)
    # one group per true original, holding its cousins and their cousins
    assert set(groups) == originals
    assert sum(len(g) for g in groups.values()) == len(items)


def test_a_solver_listed_twice_votes_once(tmp_path, capsys):
    path = _sums(tmp_path / "e")
    sloppy = ArithmeticSolver("sim:sloppy", misses=0.5)
    result = _grow(path, tmp_path / "s.db", ArithmeticGenerator(), [sloppy, sloppy], n=4,
                   kinds=("paraphrase",))
    assert result["solvers"] == ["sim:sloppy"] and result["agree"] == 1
    assert all(r["provenance"]["verification"]["agree"] == "1/1" for r in result["added"])
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g"),
                 "--store", str(tmp_path / "s.db"), "--no-progress",
                 "--solvers", "openai:a,openai:a", "--agree", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--solvers lists openai:a more than once" in err
    assert "--agree: must be between 1 and the number of solvers (1); got 2" in err


def test_near_identical_short_cousins_are_duplicates(tmp_path):
    from posttrain.grow.core import Candidate, _drop_short_twins
    from posttrain.types import Item

    path = _sums(tmp_path)
    result = _grow(path, tmp_path / "s.db", _Noisy(), [ArithmeticSolver("sim:a")], n=3,
                   kinds=("paraphrase",))
    funnel = result["funnel"]["paraphrase"]
    assert funnel["asked"] == 6 and funnel["duplicate"] == 6 and funnel["added"] == 0
    assert "near (character 3-grams) duplicate of q" in result["dropped"][0]["reason"]
    # the same short text with another answer is another item
    eval_ = load_eval(path)
    roles = field_roles(eval_)
    other = Candidate("harder", "q0", "harder:q0:1", item=Item(
        id="q0~h1", data={"id": "q0~h1", "question": "What is 2 + 2?", "answer": "4"}))
    _drop_short_twins(eval_, roles, [other], 0.8)
    assert other.dropped == ""


def test_replies_far_over_the_budget_and_failed_solvers_are_counted(tmp_path):
    from posttrain.models.retry import RetryPolicy

    path = _sums(tmp_path)
    result = _grow(path, tmp_path / "s.db", _Noisy(huge=True), [ArithmeticSolver("sim:a")],
                   n=2, kinds=("paraphrase",), max_tokens=64)
    assert result["funnel"]["paraphrase"]["too_long"] == 4
    assert "too long: the reply is" in result["dropped"][0]["reason"]
    eval_ = load_eval(path)
    failed = asyncio.run(grow(eval_, ArithmeticGenerator(), Store(tmp_path / "s.db"),
                              RunOptions(retry=RetryPolicy(max_retries=0)),
                              Settings(n=2, kinds=("paraphrase",)), generator_name="gen",
                              solvers=[_Failing()], solver_names=["sim:failing"]))
    funnel = failed["funnel"]["paraphrase"]
    assert funnel["errors"] == 4 and funnel["unverified"] == 0, failed["dropped"]
    assert failed["dropped"][0]["reason"].startswith("error: 1 of 1 solvers gave no answer")
    from posttrain.cli.grow import request_failures

    assert request_failures(failed) is not None and request_failures(failed)[0] == 1


def test_a_grow_whose_requests_all_fail_exits_non_zero_and_writes_nothing(
        tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _stub_eval(tmp_path / "e")
    path.write_text(path.read_text().replace("\"{{item.question}}\"",
                                             "\"{{item.question}} [[fault:400:always]]\""))
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g"),
                 "--store", str(tmp_path / "s.db"), "--kinds", "paraphrase", "--no-progress",
                 "--solvers", "openai:s1", "--max-retries", "0"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "nothing added" in err and "HTTP 400" in err and not (tmp_path / "g").exists()


def test_the_original_name_and_symbolic_links_are_refused(tmp_path, capsys):
    path = _sums(tmp_path / "e")
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g"),
                 "--name", "sums"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--name: 'sums' is the original eval's name" in err
    victim = tmp_path / "victim.txt"
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "eval.yaml").symlink_to(victim)  # dangling
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "g")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds eval.yaml as a symbolic link" in err and not victim.exists()
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    code = main(["grow", str(path), "--generator", "openai:gen", "-o", str(tmp_path / "link")])
    assert code == 2 and "is a symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_a_grown_agentic_eval_loads_its_solver(tmp_path):
    import shutil

    source = Path(__file__).resolve().parents[1] / "examples" / "environment"
    shutil.copytree(source, tmp_path / "env")
    eval_ = load_eval(tmp_path / "env" / "eval.yaml")
    result = {"generator": "gen", "method": "solvers", "added": []}
    written = write_grown(eval_, result, tmp_path / "g")
    assert (tmp_path / "g" / "reserve_env.py").read_bytes() == \
        (source / "reserve_env.py").read_bytes()
    grown = load_eval(written)
    assert grown.name == "reserve-workflow-grown" and callable(grown.load_solver())


def test_cousin_groups_chain_a_cousin_of_a_cousin_to_the_true_seed() -> None:
    """An eval grown twice by a version that wrote the parent as the seed: fr~p1~p1's seed is
    fr~p1; both belong to fr's group, and fr~p1 is no seed of its own."""
    from posttrain.analysis.report import cousin_groups
    from posttrain.types import Item

    def para(item_id: str, seed: str) -> Item:
        return Item(id=item_id, data={"provenance": {"kind": "paraphrase", "seed": seed}})

    items = [Item(id="fr", data={}), para("fr~p1", "fr"), para("fr~p1~p1", "fr~p1"),
             Item(id="de", data={}), para("de~p1", "de"),
             para("x", "y"), para("y", "x")]  # a cycle ends, never loops
    groups = cousin_groups(items)
    assert groups["fr"] == ["fr", "fr~p1", "fr~p1~p1"] and "fr~p1" not in groups
    assert groups["de"] == ["de", "de~p1"]

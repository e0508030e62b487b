"""posttrain optimize / migrate: candidates, the search with a planted weakness and without one,
acceptance, the variant written into the eval file, the CLI end to end on the stub server."""

from __future__ import annotations

import json

import pytest

from posttrain.cli import main
from posttrain.eval import eval_from_dict, load_eval
from posttrain.optimize.candidates import (
    Example,
    parse_proposal,
    reflection_messages,
    structural,
)
from posttrain.optimize.search import Settings, _accept, optimize, pareto_set, split_items
from posttrain.optimize.write import check_writable, write_variant
from posttrain.runner.executor import RunOptions
from posttrain.runner.store import Store
from posttrain.testing.prompt_sim import PromptSim, StubProposer, sim_eval
from posttrain.types import Item

from .conftest import write_eval


def _run(tmp_path, *, weakness=True, sensitive=None, budget=4, proposer=None, seed=0, n=60,
         db="s.db"):
    ev = eval_from_dict(sim_eval(n, seed, weakness=weakness))
    model = PromptSim(sensitive=weakness if sensitive is None else sensitive, seed=seed)
    store = Store(tmp_path / db)
    try:
        return optimize(ev, model, store, RunOptions(), Settings(budget=budget, seed=seed),
                        proposer=proposer, proposer_name="stub" if proposer else None), model
    finally:
        store.close()


# ---- candidates ------------------------------------------------------------------------------
def test_rewrites_keep_placeholders_and_escape_examples():
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "{{item.q}}"}]
    example = Example(input="What is {{x}}?", output="42")
    made = dict(structural(messages, example=example, agentic=False))
    assert set(made) == {"format-example", "repeat-end", "inline-system", "markdown", "xml"}
    for rewritten in made.values():
        assert "{{item.q}}" in json.dumps(rewritten)
    assert "\\{{x}}" in made["format-example"][0]["content"]  # reaches the model as {{x}}
    assert made["inline-system"] == [{"role": "user", "content": "Answer briefly.\n\n{{item.q}}"}]
    assert messages[0]["content"] == "Answer briefly."  # the input is not changed
    assert "agentic" in dict(structural(messages, example=None, agentic=True))
    # without a system prompt, the rewrites that move it do not apply
    bare = dict(structural([{"role": "user", "content": "{{item.q}}"}], example=None,
                           agentic=False))
    assert set(bare) == {"markdown", "xml"}


def test_a_proposal_is_parsed_or_refused_with_the_reason():
    parent = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q: {{item.q}}"}]
    revised, why = parse_proposal("<system>Be exact.</system>\n<user>{{item.q}} now</user>",
                                  parent)
    assert why == "" and revised == [{"role": "system", "content": "Be exact."},
                                     {"role": "user", "content": "{{item.q}} now"}]
    kept, _ = parse_proposal("sure! <system>Be exact.</system>", parent)
    assert kept[1]["content"] == "Q: {{item.q}}"  # no <user> block: the parent's user part
    assert parse_proposal("Here is a better prompt: be exact.", parent)[1].startswith("no <system>")
    assert "drops {{item.q}}" in parse_proposal("<system>x</system><user>hi</user>", parent)[1]


def test_split_is_stable_per_item_and_refuses_an_empty_side():
    items = [Item(id=f"i{k}", data={}) for k in range(200)]
    dev, held = split_items(items, 3, 0.5)
    assert 70 < len(held) < 130 and {i.id for i in dev}.isdisjoint({i.id for i in held})
    # an item's side does not depend on the other items
    _dev2, held2 = split_items(items[:50], 3, 0.5)
    assert {i.id for i in held2} == {i.id for i in held if int(i.id[1:]) < 50}
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="--holdout"):
        split_items(items[:1], 0, 0.5)


def test_pareto_set_keeps_a_candidate_that_leads_one_tag():
    from posttrain.optimize.candidates import Candidate

    def cand(name, add, sub):
        return Candidate(name, [], "x", dev={"by_tag": {"add": add, "sub": sub}})

    pool = [cand("a", 0.5, 0.5), cand("b", 0.9, 0.2), cand("c", 0.4, 0.4), cand("d", 0.5, 0.5)]
    assert [c.name for c in pareto_set(pool)] == ["a", "b"]  # c dominated, d equal to a


def test_acceptance_is_blocked_by_a_significantly_worse_tag():
    def row(diff, p, **name):
        return {"diff": diff, "ci_low": diff - 0.1, "ci_high": diff + 0.1, "p_value": p,
                "significant": p < 0.05, "n": 40, "test": "mcnemar exact", **name}

    comparison = {"overall": row(0.2, 0.001), "groups": [row(0.5, 0.001, group="add"),
                                                          row(-0.3, 0.01, group="sub")],
                  "components": []}
    outcome = _accept(comparison, "c01", 0.05)
    assert not outcome["accepted"] and "significantly worse on tag 'sub'" in outcome["verdict"]
    comparison["groups"][1] = row(-0.3, 0.2, group="sub")
    assert _accept(comparison, "c01", 0.05)["accepted"]
    comparison["overall"] = row(0.2, 0.08)
    assert "not significantly better" in _accept(comparison, "c01", 0.05)["verdict"]


# ---- the search --------------------------------------------------------------------------------
def test_planted_weakness_is_found_and_a_rerun_spends_nothing(tmp_path):
    result, model = _run(tmp_path)
    assert result["accepted"], result["verdict"]
    assert result["finalist"] == "c01-format-example"
    overall = result["heldout"]["overall"]
    assert overall["diff"] > 0 and overall["p_value"] < 0.05
    assert result["requests"]["target"] == model.calls > 0
    again, model2 = _run(tmp_path)
    assert model2.calls == 0 and again["requests"]["total"] == 0
    assert again["verdict"] == result["verdict"]


def test_no_weakness_rarely_wins(tmp_path):
    """A target no prompt can help: over 20 seeds the search may pick a lucky candidate on dev,
    but the held-out test accepts it about alpha / 2 of the time (one side of a two-sided test);
    5 or more of 20 would have probability 0.003 at a true rate of 0.05."""
    wins = [_run(tmp_path, weakness=True, sensitive=False, seed=seed, n=40,
                 db=f"{seed}.db")[0]["accepted"] for seed in range(20)]
    assert sum(wins) <= 4


def test_reflective_proposals_read_failures_and_join_the_pool(tmp_path):
    proposer = StubProposer()
    result, _ = _run(tmp_path, budget=7, proposer=proposer)
    reflective = [c for c in result["candidates"] if c["kind"] == "reflective"]
    assert reflective and result["requests"]["proposer"] == len(proposer.requests) >= 1
    asked = proposer.requests[0].messages[-1]["content"]
    assert "Grader: exact:" in asked and "Expected:" in asked and "<system>" in asked
    base = result["candidates"][0]["dev_score"]
    assert max(c["dev_score"] for c in reflective) > base  # the addition fixes the format
    names = {c["name"] for c in result["candidates"]}
    assert all(c["parent"] in names for c in reflective)


def test_an_unusable_proposal_is_skipped_with_its_reason(tmp_path):
    result, _ = _run(tmp_path, budget=7, proposer=StubProposer(reply="Just be better."))
    assert result["skipped"] and all("no <system>" in s["reason"] for s in result["skipped"])
    assert all(c["kind"] != "reflective" for c in result["candidates"])


def test_reflection_request_shows_the_prompt_and_failures():
    from posttrain.optimize.candidates import Failure

    request = reflection_messages([{"role": "user", "content": "{{item.q}}"}],
                                  [Failure("2+2?", "five", "4", "exact: no match")], 3)
    text = request[-1]["content"]
    assert "<user>\n{{item.q}}\n</user>" in text and "Answer: five" in text and "Attempt 3" in text


# ---- writing the variant -----------------------------------------------------------------------
_EVAL = """\
# my eval: comments and layout stay
name: capitals
items:
  - {id: a, q: "France?", answer: Paris}
  - {id: b, q: "Italy?", answer: Rome}
messages:
  - {role: system, content: "Answer with the city."}   # the user's prompt
  - {role: user, content: "{{item.q}}"}
variants:
  terse:
    messages: [{role: user, content: "{{item.q}} One word."}]

graders:
  - {type: string_check, name: exact, input: "{{sample.output_text}}", reference: "{{item.answer}}", operation: ilike}
"""


@pytest.mark.parametrize("variants", ["block", "none", "empty"])
def test_winner_is_added_as_a_variant_and_nothing_else_changes(tmp_path, variants):
    text = _EVAL
    if variants == "none":
        text = text.replace('variants:\n  terse:\n    messages: [{role: user, content: '
                            '"{{item.q}} One word."}]\n', "")
    elif variants == "empty":
        text = text.replace('variants:\n  terse:\n    messages: [{role: user, content: '
                            '"{{item.q}} One word."}]\n', "variants:\n")
    path = tmp_path / "eval.yaml"
    path.write_text(text)
    before = load_eval(path)
    check_writable(path)
    messages = [{"role": "system", "content": "Answer with the city.\n\nExample:\nFrance? -> "
                 "Paris\nliteral \\{{ kept"},
                {"role": "user", "content": "{{item.q}}  "}]  # trailing spaces: JSON-quoted
    provenance = {"by": "posttrain optimize", "model": "openai:m", "heldout": {"diff": 0.25}}
    write_variant(path, "optimized-m", messages, provenance)
    after = load_eval(path)
    assert after.variants["optimized-m"].messages == messages
    assert after.variants["optimized-m"].provenance == provenance
    assert after.messages == before.messages  # the user's prompt is untouched
    new_text = path.read_text()
    assert [line for line in text.splitlines() if line.strip()] == [
        line for line in new_text.splitlines() if line.strip()
        and line not in set(new_text.splitlines()) - set(text.splitlines())]
    # provenance is not part of the eval's identity: stored runs still resume and compare
    assert after.fingerprint() != before.fingerprint()  # a variant was added
    spec = eval_from_dict({"name": "x", "items": [{"id": "1", "q": "a"}],
                           "messages": [{"role": "user", "content": "{{item.q}}"}],
                           "graders": [{"type": "string_check", "name": "m", "operation": "eq",
                                        "input": "{{sample.output_text}}", "reference": "a"}],
                           "variants": {"v": {"messages": [{"role": "user", "content": "b"}]}}})
    with_provenance = eval_from_dict({**{"name": "x", "items": [{"id": "1", "q": "a"}]},
                                      "messages": [{"role": "user", "content": "{{item.q}}"}],
                                      "graders": [{"type": "string_check", "name": "m",
                                                   "operation": "eq",
                                                   "input": "{{sample.output_text}}",
                                                   "reference": "a"}],
                                      "variants": {"v": {"messages": [
                                          {"role": "user", "content": "b"}],
                                          "provenance": {"by": "me"}}}})
    assert spec.fingerprint() == with_provenance.fingerprint()
    # the current prompt's sampling (variants.default) goes with the winner
    write_variant(path, "optimized-n", messages, provenance, sampling={"max_tokens": 8})
    assert load_eval(path).variants["optimized-n"].sampling == {"max_tokens": 8}


def test_flow_style_variants_are_refused_before_any_request(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text(_EVAL.replace('variants:\n  terse:\n    messages: [{role: user, content: '
                                  '"{{item.q}} One word."}]\n',
                                  'variants: {terse: {system: "Be terse."}}\n'))
    from posttrain.errors import UserError

    with pytest.raises(UserError) as info:
        check_writable(path)
    assert f"{path}:9: variants: written in flow style" in str(info.value)


# ---- the commands ------------------------------------------------------------------------------
def _stub_eval(tmp_path):
    rows = [{"id": f"r{k:02d}", "question": f"Q{k} [[as:old:nope]]", "answer": "x",
             "category": "ab"[k % 2]} for k in range(40)]
    path = write_eval(tmp_path / "ev", rows, graders=(
        '  - {type: string_check, name: reminded, input: "{{sample.output_text}}", '
        'reference: "remember the instructions", operation: ilike}\n'))
    text = path.read_text().replace(
        "messages:\n", "messages:\n  - {role: system, content: \"Be brief.\"}\n")
    path.write_text(text)
    return path


def test_cli_optimize_then_migrate_on_the_stub_server(tmp_path, stub_server, capsys, monkeypatch):
    """The stub echoes the last user message: only the rewrite that repeats the instructions
    at its end ("Remember the instructions: ...") passes the grader. `old` answers "nope"."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _stub_eval(tmp_path)
    original = path.read_text()
    store = str(tmp_path / "s.db")
    args = ["optimize", str(path), "--model", "openai:new", "--store", store, "--budget", "5",
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "verdict: c02-repeat-end wins: +100.0%" in out and "  errors  by tag" in out
    assert "written: variant 'optimized-new'" in out
    assert path.read_text().startswith(original.rstrip("\n"))
    written = load_eval(path).variants["optimized-new"]
    assert written.provenance["model"] == "openai:new" and written.provenance["heldout"]["n"] > 5
    def sent() -> int:  # eval requests (the endpoint check's 1-token "ping" aside)
        return sum(n for message, n in stub_server.stats()["attempts"].items()
                   if message != "ping")

    before = sent()
    # the same search again: every answer from the store, nothing sent, a second variant written
    assert main([*args, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["requests"]["total"] == 0 and sent() == before
    assert again["written"]["variant"] == "optimized-new-2"

    assert main(["migrate", str(path), "--from", "openai:old", "--to", "openai:new",
                 "--variant", "optimized-new", "--store", store, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "on the " in out and "items held out when optimized-new was chosen" in out
    assert "verdict: switch with variant optimized-new: +100.0%" in out
    assert main(["migrate", str(path), "--from", "openai:old", "--to", "openai:new",
                 "--variant", "default", "--store", store, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decision"] == "undecided" and result["verdict"].startswith(
        "no significant difference")


@pytest.mark.parametrize("extra, message", [
    (["--holdout", "1.5"], "--holdout: must be a share between 0 and 1, got 1.5"),
    (["--budget", "0"], "--budget: must be at least 1"),
    (["--alpha", "0.7"], "--alpha: must be a level between 0 and 0.5"),
    (["--name", "default"], "--name: 'default' is already a variant of this eval"),
])
def test_bad_options_are_one_line_before_any_request(tmp_path, stub_server, capsys,
                                                     monkeypatch, extra, message):
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    path = _stub_eval(tmp_path)
    code = main(["optimize", str(path), "--model", "openai:new", "--store",
                 str(tmp_path / "s.db"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [f"posttrain: error: {message}"] or \
        message in err, err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not [m for m in stub_server.stats()["attempts"] if m != "ping"]


def test_a_bad_eval_file_is_one_line_naming_file_line_and_field(tmp_path, capsys):
    path = _stub_eval(tmp_path)
    path.write_text(path.read_text().replace("operation: ilike", "operation: bogus"))
    code = main(["migrate", str(path), "--from", "openai:a", "--to", "openai:b",
                 "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{path}:" in err and "graders[0].operation" in err


def test_migrate_verdict_names_what_blocks_the_switch():
    from posttrain.optimize.migrate import verdict

    def row(diff, p, **name):
        return {"diff": diff, "ci_low": diff - 0.05, "ci_high": diff + 0.05, "p_value": p,
                "significant": p < 0.05, **name}

    comparison = {"overall": row(0.041, 0.01), "groups": [row(0.1, 0.02, group="sql")],
                  "components": [row(0.0, 1.0, component="exact")]}
    decision, line = verdict(comparison, "old", "new", "opt")
    assert decision == "switch" and line.startswith("switch with variant opt: +4.1% [-0.9%, +9.1%]")
    comparison["components"] = [row(-0.2, 0.003, component="columns")]
    decision, line = verdict(comparison, "old", "new", "opt")
    assert decision == "blocked" and "significantly worse on grader component 'columns'" in line
    comparison = {"overall": row(-0.1, 0.001), "groups": [], "components": []}
    assert verdict(comparison, "old", "new", "default")[1].startswith(
        "do not switch: new with the current prompt is -10.0%")
    comparison = {"overall": row(0.01, 0.6), "groups": [], "components": []}
    decision, line = verdict(comparison, "old", "new", "default")
    assert decision == "undecided" and "the interval still allows -4.0%" in line


def test_migrate_says_when_a_model_failed_its_requests(tmp_path):
    """Failed requests count 0 in the scores; the verdict line says so, with the reason."""
    import asyncio

    from posttrain.models.base import FatalError
    from posttrain.optimize.migrate import migrate

    class TooSmall:
        name, cache_id, max_concurrency, price = "old", "test:too-small", 4, None

        async def generate(self, request):
            raise FatalError("prompt of 473 tokens does not fit the model's context of 256")

        async def aclose(self):
            pass

    ev = eval_from_dict(sim_eval(20, 0, weakness=False))
    store = Store(tmp_path / "s.db")
    result = asyncio.run(migrate(ev, TooSmall(), PromptSim(sensitive=False), store,
                                 RunOptions(), old_spec="old", new_spec="sim"))
    old_row = result["rows"][0]
    assert old_row["errors"] == 20 and old_row["score"] == 0.0
    assert result["decision"] == "switch"
    assert result["verdict"].endswith("note: old [default] failed 20 of 20 requests (counted as "
                                      "0), e.g. prompt of 473 tokens does not fit the model's "
                                      "context of 256")


def test_the_current_prompt_is_the_default_variant_the_user_runs(tmp_path):
    """A `variants.default` in the eval file is what `posttrain eval` runs by default, so it is
    the baseline (and the parent of the rewrites), not the eval's `messages`."""
    from posttrain.testing.prompt_sim import FORMAT

    spec = sim_eval(40, 0, weakness=True)
    spec["variants"] = {"default": {"messages": [
        {"role": "user", "content": "{{item.question}} " + FORMAT}]}}
    model = PromptSim(seed=0)
    store = Store(tmp_path / "s.db")
    try:
        result = optimize(eval_from_dict(spec), model, store, RunOptions(), Settings(budget=2))
    finally:
        store.close()
    baseline = result["candidates"][0]
    assert baseline["system"] is None and baseline["user"] == "{{item.question}} " + FORMAT
    assert baseline["dev_score"] > 0.6  # the simulator follows a format rule at the end
    assert all(FORMAT in (c["user"] or "") + (c["system"] or "") for c in result["candidates"])

    spec["variants"] = {"default": {"system": "Be brief."}}
    store = Store(tmp_path / "t.db")
    try:
        result = optimize(eval_from_dict(spec), PromptSim(seed=0), store, RunOptions(),
                          Settings(budget=1))
    finally:
        store.close()
    assert result["candidates"][0]["system"] == "Be brief."


def test_a_run_with_failed_requests_is_rerun_for_those_requests_only(tmp_path):
    """A finished run with failed requests is not read back as it is (they count 0): the next
    search reruns it, and the cache answers every request that succeeded."""
    from posttrain.models.base import FatalError

    ev = eval_from_dict(sim_eval(40, 0, weakness=True))
    dev, _held = split_items(ev.items, 0, 0.5)
    failing = [item.data["question"] for item in dev[:2]]

    class Flaky(PromptSim):
        fail = True

        async def generate(self, request):
            question = str(request.messages[-1].get("content") or "")
            if self.fail and any(q in question for q in failing):
                self.calls += 1
                raise FatalError("the server went away")
            return await super().generate(request)

    store = Store(tmp_path / "s.db")
    try:
        # budget 0: the current prompt alone (a rewrite's example would change with the answers)
        result = optimize(ev, Flaky(seed=0), store, RunOptions(), Settings(budget=0))
        assert result["candidates"][0]["errors"] == 2
        healed = Flaky(seed=0)
        healed.fail = False
        again = optimize(ev, healed, store, RunOptions(), Settings(budget=0))
    finally:
        store.close()
    assert again["candidates"][0]["errors"] == 0
    assert again["candidates"][0]["dev_score"] > result["candidates"][0]["dev_score"]
    assert healed.calls == again["requests"]["target"] == 2  # the two failed requests only


def test_a_missing_tool_reminder_is_found_in_an_agentic_eval(tmp_path):
    """The eval has tools and its prompt never says to use them: the agentic reminders are the
    first rewrite tried, and the simulated agent calls the tool when told to."""
    from posttrain.testing.prompt_sim import tool_sim_eval

    model = PromptSim(task="tools", seed=0)
    store = Store(tmp_path / "s.db")
    try:
        result = optimize(eval_from_dict(tool_sim_eval(60, 0)), model, store, RunOptions(),
                          Settings(budget=1))
        null = optimize(eval_from_dict(tool_sim_eval(60, 0)),
                        PromptSim(task="tools", sensitive=False, p_buried=0.6, seed=0), store,
                        RunOptions(), Settings(budget=1))
    finally:
        store.close()
    assert result["accepted"], result["verdict"]
    assert result["finalist_kind"] == "structural:agentic"
    assert model.salient(result["finalist_messages"][0]["content"])
    assert result["candidates"][0]["dev_score"] < 0.5 < result["candidates"][1]["dev_score"]
    assert not null["accepted"]

"""Plain-text paraphrases: a generator that cannot write the JSON item format (a small model)
still gives cousins, and the checks that keep wrong items out still hold. Scripted models
(``posttrain.testing.grow_sim`` and a scripted plain-text generator here), no network."""

from __future__ import annotations

import asyncio
import json
import re

from posttrain.eval import load_eval
from posttrain.grow.core import Settings, grow
from posttrain.grow.prompts import field_roles, generator_messages, parse_reply
from posttrain.runner.executor import RunOptions
from posttrain.runner.store import Store
from posttrain.testing.grow_sim import ArithmeticSolver
from posttrain.types import ChatRequest, Completion
from tests.test_grow import _sums

SEED = {"id": "q1", "question": "What is 3 + 4?", "answer": "7", "category": "small"}


def _roles(tmp_path):
    return field_roles(load_eval(_sums(tmp_path)))


def test_a_plain_text_paraphrase_is_read_and_keeps_the_seeds_reference(tmp_path):
    roles = _roles(tmp_path)
    for reply in ('Compute 3 plus 4.', 'Paraphrase: "Compute 3 plus 4."',
                  "Here is the rewritten question:\nCompute 3 plus 4.",
                  "**Rewrite 1 of 2:** Compute 3 plus 4.", "```\nCompute 3 plus 4.\n```",
                  "\u201cCompute 3 plus 4.\u201d"):
        data, answer, why = parse_reply(reply, "paraphrase", SEED, roles)
        assert (data, answer, why) == ({"question": "Compute 3 plus 4.", "answer": "7",
                                        "category": "small"}, None, ""), reply
    # a JSON reply is still read as before
    data, _, why = parse_reply('{"question": "Add 3 and 4."}', "paraphrase", SEED, roles)
    assert why == "" and data is not None and data["question"] == "Add 3 and 4."


def test_plain_paraphrases_that_echo_give_away_or_ramble_are_refused(tmp_path):
    roles = _roles(tmp_path)

    def why(reply: str) -> str:
        data, _, reason = parse_reply(reply, "paraphrase", SEED, roles)
        assert data is None, reply
        return reason

    assert why("Question: What is 3 + 4?") == "the reply repeats the seed"
    assert why("what is 3+4") == "the reply repeats the seed"
    assert why("What is 3 + 4? The answer is 7.") == \
        "the paraphrase gives the answer away: it contains the reference answer '7'"
    assert why("7").startswith("the paraphrase gives the answer away")
    # the same checks hold for a JSON reply
    assert why('{"question": "What is 3 + 4 (it is 7)?"}').startswith("the paraphrase gives")
    assert why('{"question": "What is 3 + 4?"}') == "the reply repeats the seed"
    assert why("Compute 3 plus 4.\nAdd 3 and 4.") == "the reply is not one line (2 lines)"
    assert why("   ") == "the reply is empty"
    # a harder variant or a new item still needs JSON: its reference comes from the reply
    assert parse_reply("Compute 3 plus 4 plus 5.", "harder", SEED, roles)[2] == \
        "the reply is not a JSON object"


def test_a_reference_the_seed_already_shows_is_not_a_give_away(tmp_path):
    roles = _roles(tmp_path)
    seed = {"id": "q9", "question": "Which is larger, 4 or 9?", "answer": "9"}
    data, _, why = parse_reply("Of 4 and 9, which number is bigger?", "paraphrase", seed, roles)
    assert why == "" and data is not None and data["answer"] == "9"


def test_the_plain_request_asks_for_one_line_and_hides_the_reference(tmp_path):
    eval_ = load_eval(_sums(tmp_path))
    roles = field_roles(eval_)
    messages = generator_messages("paraphrase", eval_name="sums", description="", roles=roles,
                                  seeds=[(SEED, SEED["question"])], number=1, of=2)
    user = messages[-1]["content"]
    assert "on one line" in user and "rewrite 1 of 2" in user and "What is 3 + 4?" in user
    assert '"answer"' not in user and "7" not in user and "JSON object" not in user
    # with programmatic verification the reply must carry a reference answer: JSON is asked
    json_messages = generator_messages("paraphrase", eval_name="sums", description="",
                                       roles=roles, seeds=[(SEED, SEED["question"])], number=1,
                                       of=2, reference_answer=True)
    assert "Reply with one JSON object" in json_messages[-1]["content"]


class _PlainGenerator:
    """Replies to paraphrase requests in plain text, one scripted reply per seed and number."""

    name = "sim:plain-generator"
    cache_id = "sim:plain-generator:1"
    max_concurrency = 4
    price = None

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def aclose(self) -> None:
        pass

    async def generate(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = str(request.messages[-1].get("content") or "")
        question = next(json.loads(line)["question"] for line in text.splitlines()
                        if line.startswith("{"))
        a, b = (int(n) for n in re.findall(r"\d+", question))
        number = int(re.search(r"rewrite (\d) of", text).group(1))  # type: ignore[union-attr]
        if number == 1:
            return Completion(text=f'Paraphrase: "Compute {a} plus {b}."')
        return Completion(text={
            2: f"Here is the rewrite:\nAdd {a} and {b}: what do you get?",
            3: f"What is {a} + {b}? The answer is {a + b}.",  # gives the answer away
            4: f"Question: What is {a} + {b}?",  # the seed again
            5: f"Tell me the sum of {a} and {b + 1}.",  # asks something else: the seed's reference is wrong
            6: f"Sure!\nCompute {a} plus {b}.\nAdd them up.",  # not one line
        }[a])


def test_grow_keeps_right_plain_cousins_and_drops_the_rest(tmp_path):
    path = _sums(tmp_path / "e", n=5, thin=1)  # q0..q4: 2+1, 3+4, 4+7, 5+10, 6+13
    generator = _PlainGenerator()
    result = asyncio.run(grow(load_eval(path), generator, Store(tmp_path / "s.db"),
                              RunOptions(), Settings(n=5, kinds=("paraphrase",)),
                              generator_name=generator.name, solvers=[ArithmeticSolver("sim:a")],
                              solver_names=["sim:a"]))
    assert result["funnel"]["paraphrase"] == {
        "asked": 10, "no_answer": 0, "too_long": 0, "unparseable": 2, "does_not_render": 0,
        "duplicate": 1, "errors": 0, "unverified": 1, "added": 6}
    added = {row["id"]: (row["question"], row["answer"]) for row in result["added"]}
    assert added == {"q0~p1": ("Compute 2 plus 1.", "3"),
                     "q0~p2": ("Add 2 and 1: what do you get?", "3"),
                     "q1~p1": ("Compute 3 plus 4.", "7"), "q2~p1": ("Compute 4 plus 7.", "11"),
                     "q3~p1": ("Compute 5 plus 10.", "15"), "q4~p1": ("Compute 6 plus 13.", "19")}
    reasons = {d["request"]: d["reason"] for d in result["dropped"]}
    assert reasons["paraphrase:q1:2"].startswith("unparseable: the paraphrase gives the answer")
    assert reasons["paraphrase:q2:2"] == ("duplicate: exact duplicate of q2 (the reply repeats "
                                          "the seed word for word)")
    assert reasons["paraphrase:q3:2"].startswith("unverified: 0 of 1 solvers")
    assert reasons["paraphrase:q4:2"] == "unparseable: the reply is not one line (3 lines)"

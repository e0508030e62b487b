"""long_context suite: generators checked independently, graders on hand-made answers."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from posttrain.eval import load_eval
from posttrain.graders.registry import build_grader
from posttrain.suites import build_suite
from posttrain.suites.long_context import graphwalks, heatmap, mrcr, niah
from posttrain.suites.long_context.tokens import count_tokens, tokenizer_name


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("lc")
    path = build_suite("long_context", out, n=26, seed=3)
    rows = [json.loads(line) for line in (out / "long_context.jsonl").read_text().splitlines()]
    return path, rows


def test_build_loads_and_is_deterministic(built, tmp_path):
    path, rows = built
    evaluation = load_eval(path)
    assert len(evaluation.items) == 26
    request = evaluation.request_for(evaluation.items[0])
    assert request.messages == rows[0]["messages"]  # the row's own multi-turn messages
    again = build_suite("long_context", tmp_path, n=26, seed=3)
    assert (again.parent / "long_context.jsonl").read_text() == \
        (path.parent / "long_context.jsonl").read_text()
    other = build_suite("long_context", tmp_path / "b", n=26, seed=4)
    assert (other.parent / "long_context.jsonl").read_text() != \
        (path.parent / "long_context.jsonl").read_text()


def test_rows_are_tagged_and_sized(built):
    _, rows = built
    kinds = {row["kind"] for row in rows}
    assert {"mrcr_2needle", "mrcr_4needle", "mrcr_8needle", "graphwalks_bfs",
            "graphwalks_parents", "niah_single_1", "niah_multiquery"} <= kinds
    for row in rows:
        assert row["length"] == 4096 and "length" in row and "depth" in row
        assert 0.6 * 4096 < row["n_tokens"] <= 4096, row["id"]
        assert f"task:{row['task']}" in row["tags"] and "length:4k" in row["tags"]
        text = "".join(m["content"] for m in row["messages"])
        if row["task"] == "graphwalks":
            assert count_tokens(text) == row["n_tokens"]


def test_token_counter_is_offline_o200k():
    pytest.importorskip("bpe_openai")  # posttrain[suites] (without it: test_token_counter_fallback)
    assert tokenizer_name() == "o200k_base"
    assert count_tokens("The grass is green.") == 5


# ---- graphwalks: answers recomputed by an independent BFS over the edges in the prompt ----------
def _independent_answer(prompt: str, problem_type: str) -> set[str]:
    graph_part = prompt.split("Here is the graph to operate on:")[1]
    edges = re.findall(r"^([0-9a-f]{10}) -> ([0-9a-f]{10})$", graph_part, re.M)
    operation = graph_part.split("Operation:\n")[1].split("\n")[0]
    if problem_type == "parents":
        node = re.search(r"parents of node (\w+)", operation).group(1)
        return {u for u, v in edges if v == node} - {node}
    start, depth = re.search(r"BFS from node (\w+) .* depth (\d+)", operation).groups()
    frontier, seen = {start}, {start}
    for _ in range(int(depth)):
        frontier = {v for u, v in edges if u in frontier} - seen
        seen |= frontier
    return frontier


def test_graphwalks_answers_match_independent_bfs(built):
    _, rows = built
    walks = [row for row in rows if row["task"] == "graphwalks"]
    assert walks
    for row in walks:
        prompt = row["messages"][0]["content"]
        assert set(row["answer_nodes"]) == _independent_answer(prompt, row["problem_type"])
        assert "Final Answer: [node1, node2, node3]" in prompt


def test_graphwalks_generator_details():
    assert graphwalks.node_id(0) == "cfcd208495" and graphwalks.node_id(3) == "eccbc87e4b"
    rng = random.Random(1)
    for _ in range(30):
        problem = rng.choice(["bfs", "parents"])
        row = graphwalks.make_item(rng, problem_type=problem, target_tokens=2048)
        assert set(row["answer_nodes"]) == _independent_answer(row["messages"][0]["content"],
                                                               problem)
        assert row["start_node"] not in row["answer_nodes"]
    edges = [(0, 0), (0, 1), (1, 2), (2, 0), (0, 2)]
    assert graphwalks.bfs_at_depth(edges, 0, 1) == {1, 2}
    assert graphwalks.bfs_at_depth(edges, 0, 2) == set()  # 2 is at distance 1, not 2
    assert graphwalks.parents_of(edges, 0) == {2}  # the self-loop does not count


# ---- MRCR: the answer is the k-th occurrence of the needle request ------------------------------
def test_mrcr_answer_is_the_kth_occurrence(built):
    _, rows = built
    for row in (r for r in rows if r["task"] == "mrcr"):
        messages = row["messages"]
        question = messages[-1]["content"]
        match = re.fullmatch(r"Prepend (\w{10}) to the (\d+)(?:st|nd|rd|th) \(1 indexed\) "
                             r"(.+) about (.+)\. Do not include any other text in your response\.",
                             question)
        assert match, question
        prefix, k, fmt, topic = match.groups()
        article = "an" if fmt[0] in "aeiou" else "a"
        asked = f"Write {article} {fmt} about {topic}."
        replies = [messages[i + 1]["content"] for i in range(0, len(messages) - 1, 2)
                   if messages[i]["content"] == asked]
        assert len(replies) == row["n_needles"]
        assert row["answer"] == prefix + replies[int(k) - 1]
        assert messages[row["desired_msg_index"]]["content"] == replies[int(k) - 1]
        assert prefix == row["random_string_to_prepend"]
        # near-miss distractors: same topic in another format, or same format on a neighbour
        others = [m["content"] for m in messages[:-1:2] if m["content"] != asked]
        assert any(f"about {topic}." in o or o.startswith(f"Write {article} {fmt} about")
                   for o in others)
        assert len(set(replies)) == len(replies)


def test_mrcr_ordinals():
    assert [mrcr.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]


# ---- niah: needle at the requested depth --------------------------------------------------------
@pytest.mark.parametrize("variant", list(niah.VARIANTS))
@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_niah_needle_at_depth(variant, depth):
    row = niah.make_item(random.Random(f"{variant}{depth}"), name=variant, depth=depth,
                         target_tokens=4096)
    text = row["messages"][0]["content"]
    assert row["n_tokens"] <= 4096 - niah.TOKENS_TO_GENERATE
    for needle in row["needles"]:
        assert text.count(needle) == 1
    for value in row["outputs"]:
        assert value in text
    # the first needle sits after round(depth * haystack units) haystack units
    context = text.split("\n", 1)[1].rsplit("\n", 1)[0]
    offset = context.index(row["needles"][0]) / len(context)
    assert abs(offset - depth) < 0.05, (offset, depth)
    assert len(row["outputs"]) == (4 if variant in ("niah_multivalue", "niah_multiquery") else 1)


# ---- graders ------------------------------------------------------------------------------------
def _grader(spec):
    return build_grader(spec)


def test_mrcr_grader_matches_official_grade():
    grader = _grader({"type": "mrcr"})
    item = {"answer": "abcDEF1234The poem text.", "random_string_to_prepend": "abcDEF1234"}
    exact = grader.grade({"output_text": "abcDEF1234The poem text."}, item)
    assert exact.value == 1.0 and exact.passed
    missing = grader.grade({"output_text": "The poem text."}, item)
    assert missing.value == 0.0 and missing.sub_scores["prefix"] == 0.0
    partial = grader.grade({"output_text": "abcDEF1234The poem."}, item)
    from difflib import SequenceMatcher
    assert partial.value == pytest.approx(SequenceMatcher(None, "The poem.",
                                                          "The poem text.").ratio())


def test_graphwalks_grader_f1_rules():
    grader = _grader({"type": "graphwalks"})
    item = {"answer_nodes": ["aaa", "bbb"]}
    assert grader.grade({"output_text": "thinking\nFinal Answer: [aaa, bbb]"}, item).value == 1.0
    half = grader.grade({"output_text": "Final Answer: [aaa, ccc]"}, item)
    assert half.value == pytest.approx(0.5)
    assert grader.grade({"output_text": "Final Answer: []"}, item).value == 0.0
    assert grader.grade({"output_text": "no idea"}, item).value == 0.0
    assert grader.grade({"output_text": "Final Answer: []"}, {"answer_nodes": []}).value == 1.0
    assert grader.grade({"output_text": "Final Answer: [x]"}, {"answer_nodes": []}).value == 0.0
    flexible = grader.grade({"output_text": "Final Answer: [aaa, bbb]\nDone."}, item)
    assert flexible.value == 0.0 and flexible.sub_scores["flexible_f1"] == 1.0


def test_long_context_grader_dispatches(built):
    _, rows = built
    grader = _grader({"type": "long_context"})
    for row in rows:
        if row["task"] == "mrcr":
            good = row["answer"]
        elif row["task"] == "graphwalks":
            good = "Final Answer: [" + ", ".join(row["answer_nodes"]) + "]"
        else:
            good = "The values are " + " and ".join(row["outputs"])
        assert grader.grade({"output_text": good}, row).value == 1.0, row["id"]
        assert grader.grade({"output_text": "I don't know."}, row).value == 0.0
    niah_row = next(r for r in rows if r.get("variant") == "niah_multivalue")
    one = grader.grade({"output_text": niah_row["outputs"][0]}, niah_row)
    assert one.value == pytest.approx(0.25)


def test_heatmap_svg():
    svg = heatmap.heatmap_svg({(4096, 0.0): 1.0, (4096, 0.5): 0.25, (8192, 0.0): 0.0})
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 4  # 2 lengths x 2 depths, one empty cell
    assert "4k" in svg and "8k" in svg and "50%" in svg and "0.25" in svg
    assert "<script" not in svg
    cells = heatmap.cells_from_rows([({"length": 4096, "depth": 0.52}, 1.0),
                                     ({"length": 4096, "depth": 0.49}, 0.0),
                                     ({"length": 4096, "depth": None}, 1.0)])
    assert cells == {(4096, 0.5): 0.5}
    assert "no data" in heatmap.heatmap_svg({})


def test_length_validation(tmp_path):
    from posttrain.errors import UserError

    with pytest.raises(UserError):
        build_suite("long_context", tmp_path, length=10)


def test_node_ids_are_md5():
    assert graphwalks.node_id(41) == hashlib.md5(b"41").hexdigest()[:10]


def test_token_counter_fallback(monkeypatch):
    from posttrain.suites.long_context import tokens

    monkeypatch.setattr(tokens, "_encoding", lambda: None)
    assert tokens.count_tokens("abcdefghi") == 3
    assert tokens.tokenizer_name() == "chars/4"


@pytest.mark.slow
def test_one_million_tokens(tmp_path):
    path = build_suite("long_context", tmp_path, n=6, seed=0, length=1024 * 1024)
    rows = [json.loads(line) for line in (path.parent / "long_context.jsonl").open()]
    for row in rows:
        assert 0.9 * 2**20 < row["n_tokens"] <= 2**20, (row["id"], row["n_tokens"])

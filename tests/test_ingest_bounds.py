"""posttrain ingest on hostile input: one huge line, one huge token, empty and non-UTF-8 files.

Memory and outputs stay bounded by the size of a piece, not of a line: the analyser reads a
long text in pieces of at most ``_PIECE`` characters; theme names are short words, cut to
``MAX_LABEL`` characters; a log id that is a whole text is not kept as the item's id.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.cli.usage import main
from posttrain.usage import redact
from posttrain.usage.redact import Redactor, detector
from posttrain.usage.themes import MAX_LABEL, find_themes, label_themes, tokenize
from tests.pii_fixtures import presidio_engine  # noqa: F401  (a fixture)

_WORDS = ["order", "refund", "shipped", "late", "invoice", "billing", "account", "password",
          "reset", "delivery", "address", "please", "help", "update", "the", "and", "for",
          "with", "my"]


def _words(count: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def _chat_line(log_id: str, user: str, model: str = "gpt-4o-mini") -> str:
    return json.dumps({"id": log_id, "request": {"model": model, "messages": [
        {"role": "user", "content": user}]}, "response": {"choices": [
            {"message": {"role": "assistant", "content": "ok"}}]}})


@pytest.fixture
def regex_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Redaction without spaCy (fast): what matters here is the size of what goes through."""
    monkeypatch.setenv("POSTTRAIN_SPACY_MODEL", "no_such_spacy_model_for_tests")
    detector.cache_clear()
    yield
    monkeypatch.undo()
    detector.cache_clear()


# ---- 1. one long line: the analyser reads bounded pieces --------------------------------------


def test_pieces_cover_the_text_cut_at_whitespace() -> None:
    text = _words(40_000)  # ~240 KB
    pieces = redact._pieces(text, size=10_000, overlap=500)
    assert len(pieces) > 20 and pieces[0][0] == 0 and pieces[-1][1] == len(text)
    for (start, end), (next_start, _) in zip(pieces, pieces[1:], strict=False):
        assert end - start <= 10_000
        assert text[end - 1] == " " and text[next_start - 1] == " "  # cut after a space
        assert end - 500 <= next_start < end  # overlapping, moving forward
    assert redact._pieces("short text", size=10_000) == [(0, 10)]
    run = "x" * 25_000  # no whitespace: cut where it must be
    assert [end - start for start, end in redact._pieces(run, size=10_000, overlap=500)] == [
        10_000, 10_000, 6_000]


def test_batches_bound_the_characters_spacy_reads_at_once() -> None:
    texts = ["a" * 30_000] * 5 + ["b"] * 100
    batches = list(redact._batches(texts, limit=70_000, count=64))
    assert [t for batch in batches for t in batch] == texts
    assert all(sum(map(len, batch)) <= 70_000 and len(batch) <= 64 for batch in batches)
    short = ["x" * 10] * 130  # short texts: 64 a batch, as before
    assert [len(b) for b in redact._batches(short)] == [64, 64, 2]


_EMAIL = re.compile(r"[a-z0-9.]+@example\.com")


def test_long_text_is_analysed_in_pieces_with_the_same_findings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A text longer than a piece reaches the analyser as pieces no longer than ``_PIECE``, and
    what is found is what the whole text gives: an address on a cut is found once, whole."""
    seen: list[int] = []

    def analyser(texts: list[str]) -> list[list[redact.Finding]]:
        seen.extend(map(len, texts))
        return [[("EMAIL_ADDRESS", m.start(), m.end(), 1.0) for m in _EMAIL.finditer(text)]
                for text in texts]

    monkeypatch.setattr(redact, "_findings_whole", analyser)
    text = _words(60_000)  # ~360 KB
    words = text.split(" ")
    for position in range(0, len(words), 997):  # addresses everywhere, some on the cuts
        words[position] = f"user{position}@example.com"
    text = " ".join(words)
    for start, end in redact._pieces(text)[:-1]:  # and one exactly across each cut
        cut = text.rfind(" ", start, end - 1)
        text = text[:cut] + " on.the.cut@example.com" + text[cut:]
    expected = analyser([text])[0]
    seen.clear()
    found = redact._findings([text, "short user1@example.com"])
    assert max(seen) <= redact._PIECE < len(text)
    assert found[0] == expected and len(expected) > 60
    assert found[1] == [("EMAIL_ADDRESS", 6, 23, 1.0)]
    seen.clear()  # texts of a piece or less: read whole, as before
    assert redact._findings(["a b user2@example.com"]) == [[("EMAIL_ADDRESS", 4, 21, 1.0)]]
    assert seen == [21]


@pytest.mark.usefixtures("presidio_engine")
def test_presidio_reads_a_long_message_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presidio + spaCy on a 130 KB message: no text over ``_PIECE`` reaches spaCy, and an
    e-mail address, a card and a name near and across the cuts are all redacted."""
    lengths: list[int] = []
    analyse = redact._analyze

    def spy(texts: list[str]) -> Iterator[list]:
        lengths.extend(map(len, texts))
        return analyse(texts)

    monkeypatch.setattr(redact, "_analyze", spy)
    monkeypatch.setenv("POSTTRAIN_REDACT_WORKERS", "1")
    text = _words(22_000)
    cut = redact._pieces(text)[0][1]
    text = (text[:cut - 30] + " mail jane.doe@example.com and card 4111 1111 1111 1111 "
            + text[cut - 30:] + " Thanks, Sarah Connor")
    out = Redactor(engine="presidio").text(text)
    assert lengths and max(lengths) <= redact._PIECE < len(text)
    assert "jane.doe" not in out and "4111" not in out and "Sarah Connor" not in out
    assert "[EMAIL]" in out and "[CARD]" in out and "[NAME]" in out


@pytest.mark.usefixtures("regex_engine")
def test_a_name_repeated_through_a_long_text_is_redacted_in_linear_time() -> None:
    """A name found once is looked for everywhere in the text; each occurrence is checked
    against the places and spans near it, not against the whole text (that was quadratic:
    a 2 MB message ran for minutes after spaCy)."""
    import time

    text = "My name is Zorblat. " + "Zorblat went to the store and Zorblat paid. " * 20_000
    start = time.perf_counter()
    out = Redactor().text(text)
    assert time.perf_counter() - start < 10  # minutes before
    assert "Zorblat" not in out and out.count("[NAME]") == 40_001


# ---- 2. one huge token: theme names and ids stay short ----------------------------------------


def test_theme_names_are_short_words() -> None:
    assert tokenize("x" * 100_000 + " refund " + "y" * 31) == ["refund"]
    pytest.importorskip("numpy")  # the themes' labels and embeddings (posttrain[usage])
    long_words = ["internationalization" + str(i) for i in range(6)]
    assert [len(label) for label in label_themes([" ".join(long_words)], [0], words=6)] == [
        len("-".join(long_words[:2]))]  # whole words, within MAX_LABEL
    texts = ["x" * 200_000, "refund please " + "z" * 50_000, *(_words(8, s) for s in range(9))]
    labels = find_themes(texts, k=3, embed="tfidf").labels
    assert labels and all(len(label) <= MAX_LABEL for label in labels), labels


@pytest.mark.usefixtures("regex_engine")
def test_ingest_bounds_theme_names_and_ids(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("numpy")
    logs = tmp_path / "logs.jsonl"
    lines = [_chat_line("q" * 5_000, "x" * 300_000, model="m" * 5_000)]
    lines += [_chat_line(f"r{i}", f"question {i} about my refund") for i in range(5)]
    logs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main([str(logs), "-o", str(out), "--embed", "tfidf"]) == 0
    printed = capsys.readouterr().out
    assert max(map(len, printed.splitlines())) < 200, "a huge theme name printed"
    summary = json.loads((out / "ingest.json").read_text(encoding="utf-8"))
    assert summary["themes"] and all(len(t["label"]) <= MAX_LABEL for t in summary["themes"])
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all(len(row["theme"]) <= MAX_LABEL and len(row["id"]) <= 200 for row in rows)
    huge = next(row for row in rows if row["provenance"]["log_line"] == 1)
    assert huge["id"] == "log-1" and len(huge["provenance"]["model"]) <= 200


# ---- 3. an empty file, a file that is not UTF-8, a file that is not JSON ----------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"empty\.jsonl: the file is empty"),
    (b"\n  \n", r"empty\.jsonl: the file has only blank lines"),
    (b'{"id": "caf\xe9"}\n\xff\xfe junk\n', r"empty\.jsonl:1: not UTF-8 \(byte 0xE9\)"),
    (b"\x00\x01binary\x02\n\x89PNG\r\n", r"empty\.jsonl:2: not UTF-8 \(byte 0x89\)"),
    (b"just some text\nmore text\n", r"empty\.jsonl:1: no line of the file is JSON"),
])
def test_unreadable_logs_say_why(tmp_path: Path, capsys: pytest.CaptureFixture,
                                 content: bytes, message: str) -> None:
    logs = tmp_path / "empty.jsonl"
    logs.write_bytes(content)
    for fmt in ("auto", "chat"):
        assert main([str(logs), "-o", str(tmp_path / "o"), "--format", fmt,
                     "--embed", "tfidf"]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert "no line looks like" not in err
    assert not (tmp_path / "o").exists()


def test_a_line_that_is_not_utf8_is_skipped_naming_its_byte(tmp_path: Path) -> None:
    from posttrain.usage.logs import read_logs

    logs = tmp_path / "logs.jsonl"
    logs.write_bytes(_chat_line("a", "hello").encode() + b'\n{"id": "\xff"}\n')
    records, problems, _ = read_logs(logs)
    assert len(records) == 1
    assert [(p.line, p.reason) for p in problems] == [
        (2, "not UTF-8 (byte 0xFF); save the file as UTF-8")]

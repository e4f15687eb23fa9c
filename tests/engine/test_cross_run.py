"""Two runs at the same moment cannot observe each other through the files they share.

Every run sees the same read-only interpreter, standard library and device nodes (bind
mounts of the same inodes), so anything the kernel keys on an inode or a global name could
carry information from one run to another: file watches (inotify, fanotify, dnotify), file
locks and vsock ports. Each test holds an observer run open while an actor run does its
thing, then lets the observer report what it saw. The observer signals readiness with a
file in its own home, which the host finds under the memfs root, and waits for the host to
drop a second file there once the actor has finished.
"""

from __future__ import annotations

import platform
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snekbox.nsjail import EvalLimits, NsJail
from snekbox.result import EvalResult

# The observer waits this long at most for the actor; its own time limit is a little longer.
ACTOR_DEADLINE = 40
OBSERVER_LIMITS = EvalLimits(time=ACTOR_DEADLINE + 10)

_OBSERVER_PRELUDE = """
import os, sys, time

def ready():
    with open("/home/.{token}.ready", "w"):
        pass

def wait_for_actor():
    deadline = time.monotonic() + {deadline}
    while not os.path.exists("/home/.{token}.done"):
        if time.monotonic() > deadline:
            print("the actor never finished")
            sys.exit(3)
        time.sleep(0.02)
"""


@pytest.fixture(autouse=True)
def _x86_64_only() -> None:
    assert platform.machine() == "x86_64", "constants and struct layouts below are for x86_64"


def observe(nsjail: NsJail, observer: str, actor: str) -> tuple[EvalResult, EvalResult]:
    """Run ``observer`` and, while it waits between ``ready()`` and ``wait_for_actor()``,
    ``actor`` in a second jail; return both results."""
    token = uuid.uuid4().hex
    prelude = _OBSERVER_PRELUDE.format(token=token, deadline=ACTOR_DEADLINE)
    code = prelude + textwrap.dedent(observer)
    with ThreadPoolExecutor(max_workers=1) as pool:
        watching = pool.submit(nsjail.python3, ["-c", code], limits=OBSERVER_LIMITS)
        home = _wait_for_ready(nsjail.memfs_root, token, watching)
        acted = nsjail.python3(["-c", textwrap.dedent(actor)])
        (home / f".{token}.done").touch()
        observed = watching.result(timeout=ACTOR_DEADLINE + 30)
    return observed, acted


def _wait_for_ready(memfs_root: Path, token: str, watching) -> Path:
    """The observer's home, once its ready file appears (other runs may share the root)."""
    deadline = time.monotonic() + ACTOR_DEADLINE
    while time.monotonic() < deadline:
        # Runs sit under their owner's directory: <memfs root>/<owner>/<run>/home.
        found = list(memfs_root.glob(f"*/*/home/.{token}.ready"))
        if found:
            return found[0].parent
        if watching.done():
            pytest.fail(f"the observer ended before it was ready: {watching.result()!r}")
        time.sleep(0.02)
    pytest.fail("the observer never became ready")


# -- file watches ------------------------------------------------------------------------------

# The actor imports a module nothing else here imports, so its files are opened only by it.
IMPORTING_ACTOR = """
import wave
print("imported", wave.__name__)
"""

# Each observer watches the standard library directory and its __pycache__ (whichever of the
# module's files the import opens) and prints "saw N" events, or how setting up was refused.
WATCHERS = {
    "inotify": """
        import ctypes, struct
        IN_OPEN, IN_ACCESS = 0x20, 0x1
        libc = ctypes.CDLL(None, use_errno=True)
        lib = os.path.dirname(os.__file__)
        fd = libc.inotify_init1(os.O_NONBLOCK)
        if fd < 0:
            print("refused", ctypes.get_errno())
        else:
            for path in (lib, lib + "/__pycache__"):
                libc.inotify_add_watch(fd, path.encode(), IN_OPEN | IN_ACCESS)
        ready()
        wait_for_actor()
        names = set()
        while fd >= 0:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _, _, _, size = struct.unpack_from("iIII", data, offset)
                names.add(data[offset + 16 : offset + 16 + size].rstrip(b"\\0").decode())
                offset += 16 + size
        print("saw", len([n for n in names if n.startswith("wave")]))
    """,
    "fanotify": """
        import ctypes
        FAN_REPORT_FID, FAN_NONBLOCK, FAN_MARK_ADD = 0x200, 0x2, 0x1
        FAN_ACCESS, FAN_OPEN, FAN_EVENT_ON_CHILD = 0x1, 0x20, 0x08000000
        AT_FDCWD = -100
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_mark.argtypes = [
            ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p
        ]
        lib = os.path.dirname(os.__file__)
        fd = libc.fanotify_init(FAN_REPORT_FID | FAN_NONBLOCK, os.O_RDONLY)
        if fd < 0:
            print("refused", ctypes.get_errno())
        else:
            for path in (lib, lib + "/__pycache__"):
                mask = FAN_ACCESS | FAN_OPEN | FAN_EVENT_ON_CHILD
                if libc.fanotify_mark(fd, FAN_MARK_ADD, mask, AT_FDCWD, path.encode()) < 0:
                    print("mark failed", ctypes.get_errno())
        ready()
        wait_for_actor()
        events = 0
        while fd >= 0:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            events += len(data) > 0
        print("saw", events)
    """,
    "dnotify": """
        import fcntl, signal
        DN_ACCESS, DN_MULTISHOT = 0x1, 0x80000000
        events = []
        signal.signal(signal.SIGIO, lambda signum, frame: events.append(signum))
        lib = os.path.dirname(os.__file__)
        try:
            for path in (lib, lib + "/__pycache__"):
                fcntl.fcntl(os.open(path, os.O_RDONLY), fcntl.F_NOTIFY, DN_ACCESS | DN_MULTISHOT)
        except OSError as error:
            print("refused", error.errno)
        ready()
        wait_for_actor()
        print("saw", len(events))
    """,
}


@pytest.mark.parametrize("watch", WATCHERS)
def test_a_run_cannot_watch_the_standard_library_for_another_runs_imports(
    nsjail: NsJail, watch: str
) -> None:
    observed, acted = observe(nsjail, WATCHERS[watch], IMPORTING_ACTOR)
    assert acted.stdout == "imported wave\n"
    assert observed.returncode == 0, observed.stdout
    assert observed.stdout.endswith("saw 0\n"), observed.stdout


# -- file locks --------------------------------------------------------------------------------

# The observer locks the interpreter binary (opened read-only, as any run may) and holds the
# lock until the actor has finished; the actor reports whether it met a conflicting lock.
INTERPRETER = "/snekbin/python/default/bin/python"
# struct flock on x86_64: l_type, l_whence, padding, l_start, l_len, l_pid, padding.
FLOCK_STRUCT = "hhxxxxqqixxxx"

LOCKERS = {
    "flock": (
        f"""
        import fcntl
        fd = os.open("{INTERPRETER}", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            print("refused", error.errno)
        ready()
        wait_for_actor()
        print("held")
        """,
        f"""
        import fcntl, os
        fd = os.open("{INTERPRETER}", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("free")
        except BlockingIOError:
            print("conflict")
        except OSError as error:
            print("refused", error.errno)
        """,
    ),
    # A read lock is all a read-only descriptor can take; F_GETLK still reports it.
    "fcntl": (
        f"""
        import fcntl
        fd = os.open("{INTERPRETER}", os.O_RDONLY)
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            print("refused", error.errno)
        ready()
        wait_for_actor()
        print("held")
        """,
        f"""
        import fcntl, os, struct
        fd = os.open("{INTERPRETER}", os.O_RDONLY)
        query = struct.pack("{FLOCK_STRUCT}", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        try:
            answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
            kind = struct.unpack("{FLOCK_STRUCT}", answer)[0]
            print("free" if kind == fcntl.F_UNLCK else "conflict")
        except OSError as error:
            print("refused", error.errno)
        """,
    ),
    # /dev/null is shared and writable, so even a write lock can be taken on it.
    "fcntl on /dev/null": (
        """
        import fcntl
        fd = os.open("/dev/null", os.O_WRONLY)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            print("refused", error.errno)
        ready()
        wait_for_actor()
        print("held")
        """,
        """
        import errno, fcntl, os
        fd = os.open("/dev/null", os.O_RDONLY)
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            print("free")
        except OSError as error:
            conflict = error.errno in (errno.EAGAIN, errno.EACCES)
            print("conflict" if conflict else f"refused {error.errno}")
        """,
    ),
}


@pytest.mark.parametrize("lock", LOCKERS)
def test_a_lock_on_a_shared_file_is_invisible_to_another_run(nsjail: NsJail, lock: str) -> None:
    holder, tester = LOCKERS[lock]
    observed, acted = observe(nsjail, holder, tester)
    assert observed.returncode == 0, observed.stdout
    assert observed.stdout.endswith("held\n"), observed.stdout
    assert acted.returncode == 0, acted.stdout
    assert "conflict" not in acted.stdout, acted.stdout


# -- vsock -------------------------------------------------------------------------------------

# vsock ports are one namespace for the whole machine, not one per network namespace: a port
# one run binds is taken for every other run (and a listener could be reached from outside).
VSOCK_PORT = 47_231
VSOCK_LISTENER = f"""
import socket
try:
    listener = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    listener.bind((socket.VMADDR_CID_ANY, {VSOCK_PORT}))
    listener.listen()
    print("listening")
except OSError as error:
    print("refused", error.errno)
ready()
wait_for_actor()
print("done")
"""
VSOCK_BINDER = f"""
import socket
try:
    binder = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    binder.bind((socket.VMADDR_CID_ANY, {VSOCK_PORT}))
    print("free")
except OSError as error:
    print("in use" if error.errno == 98 else f"refused {{error.errno}}")
"""


def test_a_vsock_port_bound_by_one_run_is_invisible_to_another(nsjail: NsJail) -> None:
    observed, acted = observe(nsjail, VSOCK_LISTENER, VSOCK_BINDER)
    assert observed.returncode == 0, observed.stdout
    assert observed.stdout.endswith("done\n"), observed.stdout
    assert acted.returncode == 0, acted.stdout
    assert "in use" not in acted.stdout, acted.stdout

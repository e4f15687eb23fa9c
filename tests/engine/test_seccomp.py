"""The seccomp policy denies what Python programs never need and keeps what they do."""

from __future__ import annotations

import platform
import textwrap

import pytest

from tests.support.engine import RunCode

# x86_64 syscall numbers: called through libc's syscall() so no wrapper can mask the result.
DENIED_EPERM = {
    "ptrace": (101, "0, 0, 0, 0"),  # PTRACE_TRACEME would succeed unprivileged
    "process_vm_readv": (310, "os.getpid(), 0, 0, 0, 0, 0"),
    "mount": (165, "0, 0, 0, 0, 0"),
    "umount2": (166, "0, 0"),
    "pivot_root": (155, "0, 0"),
    "unshare": (272, "0x10000000"),  # a nested user namespace would succeed unprivileged
    "setns": (308, "0, 0"),
    "keyctl": (250, "0, -1, 0, 0, 0"),  # KEYCTL_GET_KEYRING_ID works unprivileged
    "add_key": (248, "0, 0, 0, 0, 0"),
    "request_key": (249, "0, 0, 0, 0"),
    "bpf": (321, "0, 0, 0"),
    "userfaultfd": (323, "1"),  # UFFD_USER_MODE_ONLY works unprivileged
    "perf_event_open": (298, "0, 0, -1, -1, 0"),
    "io_uring_setup": (425, "1, 0"),
    "init_module": (175, "0, 0, 0"),
    "finit_module": (313, "-1, 0, 0"),
    "delete_module": (176, "0, 0"),
    "reboot": (169, "0, 0, 0, 0"),
    "kexec_load": (246, "0, 0, 0, 0"),
    "kexec_file_load": (320, "-1, -1, 0, 0, 0"),
    "swapon": (167, "0, 0"),
    "acct": (163, "0"),
    # Cross-run channels through shared inodes: file watches and leases (see test_cross_run).
    "inotify_init": (253, ""),
    "inotify_init1": (294, "0"),
    "fanotify_init": (300, "0x200, 0"),  # FAN_REPORT_FID works unprivileged
    "fcntl F_NOTIFY": (72, "0, 1026, 0x80000001"),
    "fcntl F_SETLEASE": (72, "0, 1024, 0"),
    # The kernel reads cmd as 32 bits, so set high bits must not slip past the filter.
    "fcntl F_NOTIFY with high bits": (72, "0, 0x100000402, 0x80000001"),
}


@pytest.fixture(autouse=True)
def _x86_64_only() -> None:
    assert platform.machine() == "x86_64", "syscall numbers below are for x86_64"


def syscall_code(number: int, args: str) -> str:
    return (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        f"result = libc.syscall({number}, {args})\n"
        "print(result, ctypes.get_errno())\n"
    )


@pytest.mark.parametrize("name", DENIED_EPERM)
def test_denied_syscalls_fail_with_eperm(run: RunCode, name: str) -> None:
    number, args = DENIED_EPERM[name]
    result = run(syscall_code(number, args))
    assert result.returncode == 0, result.stdout
    assert result.stdout == "-1 1\n"


def test_clone3_reports_enosys_so_libc_falls_back(run: RunCode) -> None:
    result = run(syscall_code(435, "0, 0"))
    assert result.stdout == "-1 38\n"


def test_cant_clone_into_new_namespaces(run: RunCode) -> None:
    # clone(CLONE_NEWUSER | SIGCHLD) through the raw syscall (56 on x86_64).
    result = run(syscall_code(56, "0x10000000 | 17, 0, 0, 0, 0"))
    assert result.stdout == "-1 1\n"


def test_threads_still_work(run: RunCode) -> None:
    result = run(
        """
        import threading
        results = []
        threads = [threading.Thread(target=results.append, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(sorted(results))
        """
    )
    assert result.stdout == "[0, 1, 2, 3, 4, 5, 6, 7]\n"


def test_fork_and_subprocess_children_still_work(run: RunCode) -> None:
    result = run(
        """
        import os, sys, subprocess
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        out = subprocess.run([sys.executable, "-c", "print('child')"], capture_output=True)
        print(out.stdout.decode().strip())
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "7\nchild\n"


def test_multiprocessing_and_shared_memory_still_work(run: RunCode) -> None:
    result = run(
        """
        from multiprocessing import Pool, shared_memory

        def double(n):
            return 2 * n

        if __name__ == "__main__":
            with Pool(2) as pool:
                print(pool.map(double, range(5)))
            shm = shared_memory.SharedMemory(create=True, size=1024)
            shm.buf[0] = 42
            print(shm.buf[0])
            shm.close(); shm.unlink()
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "[0, 2, 4, 6, 8]\n42\n"


def test_numpy_with_threads_still_works(run: RunCode) -> None:
    result = run(
        """
        import numpy as np
        a = np.arange(200 * 200, dtype=float).reshape(200, 200)
        print(float((a @ a.T).trace()) > 0)
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "True\n"


def test_vsock_sockets_report_no_such_address_family(run: RunCode) -> None:
    # socket(AF_VSOCK, SOCK_STREAM, 0) as Python calls it, then raw socket and socketpair
    # (41 and 53 on x86_64), the first with high bits the kernel ignores.
    python_call = """
        import socket
        try:
            socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            print("created")
        except OSError as error:
            print(error.errno)
    """
    result = run(
        textwrap.dedent(python_call)
        + syscall_code(41, "(1 << 32) | 40, 1, 0")
        + "pair = (ctypes.c_int * 2)()\n"
        + "print(libc.syscall(53, 40, 1, 0, pair), ctypes.get_errno())\n"
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "97\n-1 97\n-1 97\n"


def test_unix_sockets_still_work(run: RunCode) -> None:
    result = run(
        """
        import socket
        left, right = socket.socketpair()
        left.sendall(b"ping")
        print(right.recv(4).decode())
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "ping\n"


def test_file_locks_report_success_and_lock_nothing(run: RunCode) -> None:
    # A parent's flock, lockf, OFD and raw F_SETLK locks would each make the child's attempt
    # fail with EAGAIN if they were real; F_GETLK stays real and finds nothing locked.
    result = run(
        """
        import ctypes, fcntl, os, struct
        F_OFD_SETLK = 37
        layout = "hhxxxxqqixxxx"
        fd = os.open("/home/data", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack(layout, fcntl.F_WRLCK, 0, 0, 0, 0))
        # F_SETLK through the raw syscall (72) with high bits the kernel ignores.
        libc = ctypes.CDLL(None, use_errno=True)
        request = ctypes.create_string_buffer(struct.pack(layout, fcntl.F_WRLCK, 0, 0, 0, 0))
        assert libc.syscall(72, fd, (1 << 32) | fcntl.F_SETLK, request) == 0
        pid = os.fork()
        if pid == 0:
            child = os.open("/home/data", os.O_RDWR)
            fcntl.flock(child, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(child, fcntl.LOCK_EX | fcntl.LOCK_NB)
            query = struct.pack(layout, fcntl.F_WRLCK, 0, 0, 0, 0)
            kind = struct.unpack(layout, fcntl.fcntl(child, fcntl.F_GETLK, query))[0]
            print("child locked too;", "unlocked" if kind == fcntl.F_UNLCK else "locked")
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "child locked too; unlocked\n"


def test_sqlite_and_shelve_files_in_home_still_work(run: RunCode) -> None:
    # Both journal modes; shelve on 3.13 stores through dbm.sqlite3, which uses WAL.
    result = run(
        """
        import shelve, sqlite3
        for mode in ("delete", "wal"):
            db = sqlite3.connect(f"/home/{mode}.db")
            db.execute(f"pragma journal_mode={mode}")
            db.execute("create table t(n)")
            db.execute("insert into t values (1)")
            db.commit()
            other = sqlite3.connect(f"/home/{mode}.db")
            print(mode, other.execute("select n from t").fetchall())
        with shelve.open("/home/shelf") as shelf:
            shelf["key"] = [1, 2]
        with shelve.open("/home/shelf") as shelf:
            print(shelf["key"])
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "delete [(1,)]\nwal [(1,)]\n[1, 2]\n"


def test_multiprocessing_locks_queues_and_events_still_work(run: RunCode) -> None:
    # These are POSIX semaphores and pipes, not file locks, so they still exclude.
    result = run(
        """
        import multiprocessing as mp

        def add(lock, total, queue):
            for _ in range(100):
                with lock:
                    total.value += 1
            queue.put("done")

        if __name__ == "__main__":
            lock, total, queue = mp.Lock(), mp.Value("i", 0, lock=False), mp.Queue()
            workers = [mp.Process(target=add, args=(lock, total, queue)) for _ in range(3)]
            for w in workers: w.start()
            print([queue.get(timeout=5) for _ in workers])
            for w in workers: w.join()
            print(total.value)
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "['done', 'done', 'done']\n300\n"

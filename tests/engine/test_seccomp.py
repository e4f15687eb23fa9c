"""The seccomp policy denies what Python programs never need and keeps what they do."""

from __future__ import annotations

import platform

import pytest

from tests.engine.conftest import RunCode

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

"""Time, memory, process and shared-memory limits hold, per run."""

from __future__ import annotations

import concurrent.futures
import logging
import time

from snekbox.limits.table import LIMITS, EvalLimits
from snekbox.nsjail import NsJail
from tests.support.engine import RunCode


def test_cant_run_past_the_time_limit(run: RunCode, nsjail: NsJail, caplog) -> None:
    caplog.set_level(logging.INFO, logger="snekbox")
    start = time.monotonic()
    result = run("while True: pass")
    elapsed = time.monotonic() - start
    assert result.returncode == 137
    assert nsjail.config.time_limit - 0.5 <= elapsed <= nsjail.config.time_limit + 3
    assert any("run time >= time limit" in r.getMessage() for r in caplog.records)


def test_cant_allocate_past_the_memory_limit(run: RunCode) -> None:
    result = run("x = bytearray(100 * 1024 * 1024); print('allocated')")
    assert result.returncode == 137
    assert "allocated" not in result.stdout


def test_memory_limit_is_per_run(nsjail: NsJail) -> None:
    code = "import time; x = bytearray(33 * 1024 * 1024); time.sleep(1); print(len(x))"
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: nsjail.python3(["-c", code]), range(3)))
    for result in results:
        assert result.returncode == 0, result.stdout
        assert result.stdout == f"{33 * 1024 * 1024}\n"


def test_cant_fork_bomb(run: RunCode) -> None:
    result = run(
        """
        import os
        while True:
            try:
                os.fork()
            except BlockingIOError as e:
                print(e)
                os._exit(0)
        """
    )
    assert "Resource temporarily unavailable" in result.stdout


def test_cant_start_too_many_processes(run: RunCode) -> None:
    result = run(
        """
        import multiprocessing, time
        procs = []
        for _ in range(20):
            p = multiprocessing.Process(target=time.sleep, args=(2,))
            p.start()
            procs.append(p)
        """
    )
    assert result.returncode == 1
    assert "Resource temporarily unavailable" in result.stdout


def test_memory_hungry_children_share_one_limit(run: RunCode) -> None:
    result = run(
        """
        import multiprocessing, time

        def hog():
            x = bytearray(40 * 1024 * 1024)
            time.sleep(2)

        if __name__ == "__main__":
            procs = [multiprocessing.Process(target=hog) for _ in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            print(sorted(p.exitcode for p in procs))
        """
    )
    assert result.returncode == 0, result.stdout
    assert "-9" in result.stdout


def test_multiprocessing_pool_works(run: RunCode) -> None:
    result = run(
        """
        from multiprocessing import Pool

        def square(n):
            return n * n

        if __name__ == "__main__":
            with Pool(2) as pool:
                print(pool.map(square, range(10)))
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n"


def test_shared_memory_works_within_dev_shm(run: RunCode) -> None:
    result = run(
        """
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(create=True, size=10 * 1024 * 1024)
        shm.buf[:5] = b"hello"
        other = shared_memory.SharedMemory(shm.name)
        print(bytes(other.buf[:5]).decode())
        other.close(); shm.close(); shm.unlink()
        """
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == "hello\n"


def test_shared_memory_past_dev_shm_is_sigbus(run: RunCode) -> None:
    result = run(
        """
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(create=True, size=50 * 1024 * 1024)
        chunk = b"x" * 1024 * 1024
        for offset in range(0, len(shm.buf), len(chunk)):
            shm.buf[offset : offset + len(chunk)] = chunk
        """
    )
    assert result.returncode == 135


def test_sparse_mmap_past_the_address_limit_fails(run: RunCode) -> None:
    result = run(
        """
        import mmap
        try:
            mmap.mmap(-1, 1024 * 1024 * 1024)
        except OSError as e:
            print(e)
        """
    )
    assert result.returncode == 0
    assert result.stdout == "[Errno 12] Cannot allocate memory\n"


def test_threads_are_limited_too(run: RunCode) -> None:
    result = run(
        """
        import threading, time
        try:
            for _ in range(30):
                threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
        except RuntimeError as e:
            print(e)
        """
    )
    assert result.returncode == 0
    assert "can't start new thread" in result.stdout


def test_every_interpreter_starts_at_the_memory_floor(nsjail: NsJail, interpreter: str) -> None:
    result = nsjail.python3(
        ["-c", "print('started')"],
        executable_path=interpreter,
        limits=EvalLimits(memory=next(x.floor for x in LIMITS if x.name == "memory")),
    )
    assert (result.returncode, result.stdout) == (0, "started\n")

"""``snekbox.snekio.filesystem``: the original's mount helpers, with the kernel's own errors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from snekbox.snekio.filesystem import UnmountFlags, mount, unmount


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    yield path
    while os.path.ismount(path):
        unmount(path)


def test_unmount_flags_have_the_kernels_values() -> None:
    assert issubclass(UnmountFlags, int)
    assert [(flag.name, flag.value) for flag in UnmountFlags] == [
        ("MNT_FORCE", 1),
        ("MNT_DETACH", 2),
        ("MNT_EXPIRE", 4),
        ("UMOUNT_NOFOLLOW", 8),
    ]
    assert UnmountFlags.MNT_FORCE | UnmountFlags.MNT_DETACH == 3


def test_mount_passes_options_as_data(target: Path) -> None:
    mount("", target, "tmpfs", size=4096)
    assert is_mounted(target)
    line = next(x for x in Path("/proc/self/mounts").read_text().splitlines() if str(target) in x)
    assert "size=4k" in line


def test_mount_accepts_str_and_path(target: Path) -> None:
    mount("", str(target), "tmpfs")
    assert is_mounted(target)
    unmount(str(target))
    mount(Path(""), target, "tmpfs")
    assert is_mounted(target)


def test_mount_on_a_missing_target_says_no_such_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No such file"):
        mount("", tmp_path / "missing", "tmpfs")


def test_mount_with_an_unknown_option_is_an_invalid_argument(target: Path) -> None:
    with pytest.raises(OSError, match="Invalid argument"):
        mount("", target, "tmpfs", no_such_option=1)
    assert not is_mounted(target)


def test_mounting_twice_is_refused(target: Path) -> None:
    mount("", target, "tmpfs")
    with pytest.raises(OSError, match="already a mount point"):
        mount("", target, "tmpfs")


def test_unmount_keeps_the_directory(target: Path) -> None:
    mount("", target, "tmpfs")
    unmount(target)
    assert not is_mounted(target)
    assert target.is_dir()


@pytest.mark.parametrize("as_type", [str, Path])
def test_unmounting_a_plain_directory_is_not_a_mount_point(target: Path, as_type: type) -> None:
    with pytest.raises(OSError, match="is not a mount point"):
        unmount(as_type(target))


@pytest.mark.parametrize("as_type", [str, Path])
def test_unmounting_a_missing_path_is_not_a_mount_point(tmp_path: Path, as_type: type) -> None:
    with pytest.raises(OSError, match="is not a mount point"):
        unmount(as_type(tmp_path / "missing"))


def test_mount_on_a_missing_relative_target_says_no_such_file() -> None:
    with pytest.raises(OSError, match="No such file"):
        mount("some-source", "some/missing/dir", "tmpfs")


def test_unmount_with_a_bad_flag_is_an_invalid_argument(target: Path) -> None:
    mount("", target, "tmpfs")
    with pytest.raises(OSError, match="Invalid argument"):
        unmount(target, 251)
    assert is_mounted(target)


def test_the_first_expire_of_a_fresh_mount_is_eagain(target: Path) -> None:
    mount("", target, "tmpfs")
    with pytest.raises(BlockingIOError):
        unmount(target, UnmountFlags.MNT_EXPIRE)
    assert is_mounted(target)


def test_sixteen_threads_mount_and_unmount_at_once(tmp_path: Path) -> None:
    targets = [tmp_path / str(i) for i in range(16)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def cycle(path: Path) -> None:
        path.mkdir()
        barrier.wait()
        try:
            for _ in range(20):
                mount("", path, "tmpfs", size=4096)
                unmount(path)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=cycle, args=(path,)) for path in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not any(is_mounted(path) for path in targets)

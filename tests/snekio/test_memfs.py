"""``snekbox.snekio.memfs.MemFS``: a tmpfs mounted for as long as its instance is held."""

from __future__ import annotations

import gc
import os
import threading
import uuid
from pathlib import Path
from unittest import mock

import pytest

from snekbox.snekio.memfs import MemFS


def test_the_tmpfs_is_mounted_when_constructed(tmp_path: Path) -> None:
    memfs = MemFS(1024 * 1024, root_dir=tmp_path)
    try:
        assert os.path.ismount(memfs.path)
        assert memfs.home.is_dir() and memfs.output.is_dir()
    finally:
        memfs.cleanup()


def test_the_path_is_a_uuid4_under_the_root(tmp_path: Path) -> None:
    fixed = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    with mock.patch("snekbox.snekio.memfs.uuid4", return_value=fixed), MemFS(4096, tmp_path) as fs:
        assert fs.path == tmp_path / str(fixed)


def test_an_existing_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    fixed = uuid.uuid4()
    with mock.patch("snekbox.snekio.memfs.uuid4", return_value=fixed):
        first = MemFS(4096, tmp_path)
        try:
            (first.home / "kept").write_text("mine")
            with pytest.raises(RuntimeError, match="already exists"):
                MemFS(4096, tmp_path)
            assert os.path.ismount(first.path)
            assert (first.home / "kept").read_text() == "mine"
        finally:
            first.cleanup()


def test_of_eight_threads_with_one_uuid_exactly_one_mounts(tmp_path: Path) -> None:
    fixed = uuid.uuid4()
    barrier = threading.Barrier(8)
    made: list[MemFS] = []
    refused: list[RuntimeError] = []

    def construct() -> None:
        barrier.wait()
        try:
            made.append(MemFS(4096, tmp_path))
        except RuntimeError as error:
            refused.append(error)

    with mock.patch("snekbox.snekio.memfs.uuid4", return_value=fixed):
        threads = [threading.Thread(target=construct) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    try:
        assert (len(made), len(refused)) == (1, 7)
        assert os.path.ismount(made[0].path)
    finally:
        for memfs in made:
            memfs.cleanup()


def test_cleanup_unmounts_and_removes_the_directory(tmp_path: Path) -> None:
    memfs = MemFS(4096, tmp_path)
    memfs.cleanup()
    assert not os.path.ismount(memfs.path)
    assert not memfs.path.exists()
    memfs.cleanup()  # twice is harmless


def test_leaving_the_with_block_cleans_up(tmp_path: Path) -> None:
    with MemFS(4096, tmp_path) as memfs:
        path = memfs.path
    assert not path.exists()


def test_an_instance_collected_without_cleanup_warns_and_cleans_up(tmp_path: Path) -> None:
    memfs = MemFS(4096, tmp_path)
    path = memfs.path
    with pytest.warns(ResourceWarning, match="not cleaned up"):
        del memfs
        gc.collect()
    assert not os.path.ismount(path)
    assert not path.exists()


def test_a_ten_byte_instance_works(tmp_path: Path) -> None:
    with MemFS(10, tmp_path) as memfs:
        assert os.path.ismount(memfs.path)
        assert memfs.home.is_dir()

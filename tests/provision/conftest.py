"""Fixtures for the provisioning tests: the host provisioned once, and scratch layouts.

These tests need root (provisioning writes /snekbin, /snekbox/user_base and /memfs, and checks
interpreters as the sandbox user); they fail, never skip, without it. Helpers live in
``tests.support.provision``; the pure logic is tested root-free in ``tests/unit``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from snekbox import layout
from snekbox_provision.copies import LAYOUT_MARKER
from snekbox_provision.interpreters import installed_interpreters
from tests.support.provision import run_provision

SNEKBIN = Path(layout.SNEKBIN)


@pytest.fixture(scope="package", autouse=True)
def provisioned() -> None:
    """Provision once (a few seconds when `make test` already did) so the layout exists."""
    assert os.geteuid() == 0, "the provisioning tests need root: run `sudo make test`"
    result = run_provision()
    assert result.returncode == 0, result.stderr


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A temporary directory the sandbox user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="snekbox-provision-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def interpreters(provisioned: None) -> list[Path]:
    """Every interpreter under /snekbin/python; there must be one."""
    found = installed_interpreters(SNEKBIN)
    assert found, "no interpreter under /snekbin/python"
    return found


@pytest.fixture(scope="package")
def relocated_copies(interpreters: list[Path]) -> list[Path]:
    """The host's relocated copies: none in the image, whose interpreters are --prefix builds."""
    return [prefix for prefix in interpreters if (prefix / LAYOUT_MARKER).exists()]


@pytest.fixture(scope="package")
def copy_source(relocated_copies: list[Path]) -> str:
    """An interpreter to copy: a host copy's source, else the one running the tests."""
    for prefix in relocated_copies:
        return json.loads((prefix / LAYOUT_MARKER).read_text())["source"]
    return os.path.realpath(sys._base_executable)


@pytest.fixture(scope="package")
def scratch_copy(copy_source: str) -> Iterator[Path]:
    """A relocated copy made into a scratch /snekbin, so the copy tests run on every host."""
    root = Path(tempfile.mkdtemp(prefix="snekbox-provision-copy-", dir="/tmp"))
    root.chmod(0o755)
    common = ["--snekbin", str(root / "snekbin"), "--memfs-root", str(root / "memfs")]
    made = run_provision(*common, "--interpreters", copy_source, "--skip-eval-deps")
    assert made.returncode == 0, made.stderr
    (copy,) = installed_interpreters(root / "snekbin")
    yield copy
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def copies(relocated_copies: list[Path], scratch_copy: Path) -> list[Path]:
    """Every relocated copy to check: the host's and the scratch one."""
    return [*relocated_copies, scratch_copy]

"""The interpreters under /snekbin/python run from there alone, as the jail will run them.

The engine tests prove from inside NsJail that sandboxed code sees only what it should; these
prove from outside that provisioning laid the interpreters out for that: no library, path or
prefix of their source leaks into a copy.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from snekbox import layout
from snekbox_provision.copies import LAYOUT_MARKER
from snekbox_provision.elf import elf_files, expand_origin, read_elf_dynamic
from snekbox_provision.verify import run_as_sandbox_user

SNEKBIN = Path(layout.SNEKBIN)
DEFAULT_PYTHON = Path(layout.DEFAULT_EXECUTABLE_PATH)
STDLIB_CHECK = "import sys, ssl, sqlite3, ctypes, decimal; print(sys.prefix)"


def test_default_interpreter_runs_with_an_empty_environment() -> None:
    result = subprocess.run(
        ["env", "-i", str(DEFAULT_PYTHON), "-c", STDLIB_CHECK],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(layout.INTERPRETER_ROOT + "/"), result.stdout


def test_default_points_at_an_interpreter_with_a_relative_link(interpreters: list[Path]) -> None:
    link = Path(layout.INTERPRETER_ROOT) / layout.DEFAULT_INTERPRETER
    assert link.is_symlink()
    target = os.readlink(link)
    assert "/" not in target, "the link must stay valid wherever /snekbin is mounted"
    assert (link.parent / target) in interpreters


def test_every_interpreter_runs_from_its_prefix_alone_as_the_sandbox_user(
    interpreters: list[Path],
) -> None:
    code = (
        "import json, sys, ssl, sqlite3, ctypes, decimal; print(json.dumps([sys.prefix, sys.path]))"
    )
    for prefix in interpreters:
        result = run_as_sandbox_user([str(prefix / "bin" / "python"), "-c", code], env={})
        assert result.returncode == 0, f"{prefix}: {result.stderr}"
        sys_prefix, sys_path = json.loads(result.stdout)
        assert sys_prefix == str(prefix)
        assert all(entry.startswith(f"{prefix}/") for entry in sys_path if entry), sys_path


def test_no_interpreter_searches_a_library_path_outside_snekbin(
    interpreters: list[Path],
) -> None:
    for prefix in interpreters:
        checked = 0
        for path in elf_files(prefix):
            dynamic = read_elf_dynamic(path)
            for entry in dynamic.search_path if dynamic else ():
                resolved = expand_origin(entry, Path(os.path.realpath(path)))
                assert resolved.startswith(f"{SNEKBIN}/"), f"{path}: {entry}"
            checked += 1
        assert checked, f"no ELF file found under {prefix}"


def test_each_copy_finds_its_own_libpython_by_an_absolute_path(copies: list[Path]) -> None:
    """The jail has no /proc, so the loader cannot expand $ORIGIN for the executable."""
    for prefix in copies:
        binary = Path(os.path.realpath(prefix / "bin" / "python"))
        dynamic = read_elf_dynamic(binary)
        assert dynamic is not None
        assert not any("ORIGIN" in entry for entry in dynamic.search_path), binary
        for needed in dynamic.needed:
            if needed.startswith("libpython"):
                assert dynamic.runpath[:1] == (f"{prefix}/lib",), binary
                assert (prefix / "lib" / needed).is_file()


def test_every_interpreter_starts_without_proc(interpreters: list[Path]) -> None:
    """As in the jail: a private mount namespace with an empty /proc."""
    for prefix in interpreters:
        python = prefix / "bin" / "python"
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -t tmpfs none /proc && exec env -i "$0" -c "$1"',
                str(python),
                STDLIB_CHECK,
            ],
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert result.returncode == 0, f"{python}: {result.stderr}"
        assert result.stdout.strip() == str(prefix)


def test_copies_leave_out_host_packages_and_the_test_suite(copies: list[Path]) -> None:
    for prefix in copies:
        (stdlib,) = (path for path in prefix.glob("lib/python3*") if path.is_dir())
        assert list((stdlib / "site-packages").iterdir()) == [], prefix
        for unused in ("test", "idlelib", "turtledemo"):
            assert not (stdlib / unused).exists(), stdlib / unused
        assert (stdlib / "__pycache__").is_dir(), "the stdlib's bytecode must come along"
        marker = json.loads((prefix / LAYOUT_MARKER).read_text())
        assert Path(marker["source"]).is_file()

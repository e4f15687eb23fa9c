"""Running provisioning again changes nothing; `--check` notices what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from snekbox import layout
from snekbox_provision.copies import LAYOUT_MARKER
from snekbox_provision.eval_deps import EVAL_STAMP
from snekbox_provision.interpreters import probe
from tests.support.provision import copy_provisioning, run_provision

DEFAULT_LINK = Path(layout.INTERPRETER_ROOT) / layout.DEFAULT_INTERPRETER


def test_check_passes_on_the_provisioned_host() -> None:
    result = run_provision("--check", "--venv-python", sys.executable)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stderr


def test_second_run_changes_nothing(relocated_copies: list[Path]) -> None:
    stamps = [prefix / LAYOUT_MARKER for prefix in relocated_copies]
    stamps += sorted(Path(layout.USER_BASE).glob(f"lib/*/site-packages/{EVAL_STAMP}"))
    stamps.append(DEFAULT_LINK)
    before = {path: path.lstat().st_mtime_ns for path in stamps}
    result = run_provision()
    assert result.returncode == 0, result.stderr
    assert {path: path.lstat().st_mtime_ns for path in stamps} == before
    assert "copying" not in result.stderr
    assert "installing" not in result.stderr


def test_refuses_to_run_without_root(world_readable_tmp: Path) -> None:
    # The checkout may be unreadable to nobody: run a copy of what provisioning needs.
    script = copy_provisioning(world_readable_tmp)
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={layout.SANDBOX_UID}",
            f"--regid={layout.SANDBOX_GID}",
            "--clear-groups",
            layout.DEFAULT_EXECUTABLE_PATH,
            str(script),
            "--check",
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode == 2, result.stderr
    assert "provisioning needs root" in result.stderr


def test_check_reports_a_host_that_is_not_provisioned(world_readable_tmp: Path) -> None:
    result = run_provision(
        "--check",
        "--snekbin",
        str(world_readable_tmp / "snekbin"),
        "--memfs-root",
        str(world_readable_tmp / "memfs"),
        "--interpreters",
        "none",
        "--skip-eval-deps",
    )
    assert result.returncode == 1
    assert "no interpreter under" in result.stderr


def test_copies_a_named_interpreter_and_leaves_foreign_installs_alone(
    world_readable_tmp: Path, copy_source: str
) -> None:
    """A full copy into a scratch /snekbin, then the same tree as an install made by others."""
    name = probe(Path(copy_source)).key
    snekbin = world_readable_tmp / "snekbin"
    common = ["--snekbin", str(snekbin), "--memfs-root", str(world_readable_tmp / "memfs")]

    made = run_provision(*common, "--interpreters", copy_source, "--skip-eval-deps")
    assert made.returncode == 0, made.stderr
    assert "copying Python" in made.stderr
    prefix = snekbin / "python" / name
    assert os.readlink(snekbin / "python" / "default") == name
    again = run_provision(*common, "--interpreters", copy_source, "--skip-eval-deps", "--check")
    assert again.returncode == 0, again.stderr

    (prefix / LAYOUT_MARKER).unlink()  # Now it looks like someone's --prefix build.
    (prefix / "bin" / "python").unlink()
    binary_mtime = Path(os.path.realpath(prefix / "bin" / "python3")).stat().st_mtime_ns
    foreign = run_provision(*common, "--interpreters", "none", "--skip-eval-deps")
    assert foreign.returncode == 0, foreign.stderr
    assert os.readlink(prefix / "bin" / "python") == "python3"
    assert Path(os.path.realpath(prefix / "bin" / "python3")).stat().st_mtime_ns == binary_mtime
    assert not (prefix / LAYOUT_MARKER).exists()

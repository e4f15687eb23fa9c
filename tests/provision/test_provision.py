"""Provisioning: the host layout the jail relies on, checked from outside the jail.

The engine tests prove from inside NsJail that sandboxed code sees only what it should; these
prove that scripts/provision.py laid that out (interpreters that run from /snekbin alone, eval
packages in user_base readable by the sandbox user), that `--check` notices what is missing,
and that running it again changes nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "provision.py"
SNEKBIN = Path("/snekbin")
USER_BASE = Path("/snekbox/user_base")
NOBODY = 65534


def load_provision() -> ModuleType:
    spec = importlib.util.spec_from_file_location("snekbox_provision_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating.
    spec.loader.exec_module(module)
    return module


provision = load_provision()


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )


@pytest.fixture(scope="module", autouse=True)
def provisioned() -> None:
    """Provision once (a few seconds when `make test` already did) so the layout exists."""
    assert os.geteuid() == 0, "the provisioning tests need root: run `sudo make test`"
    result = run_script()
    assert result.returncode == 0, result.stderr


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A temporary directory the sandbox user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="snekbox-provision-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def interpreters() -> list[Path]:
    found = provision.installed_interpreters(SNEKBIN)
    assert found, "no interpreter under /snekbin/python"
    return found


def relocated_copies() -> list[Path]:
    """The host's relocated copies: none in the image, whose interpreters are --prefix builds."""
    return [prefix for prefix in interpreters() if (prefix / provision.LAYOUT_MARKER).exists()]


def copy_source() -> str:
    """An interpreter to copy: a host copy's source, else the one running the tests."""
    for prefix in relocated_copies():
        return json.loads((prefix / provision.LAYOUT_MARKER).read_text())["source"]
    return os.path.realpath(sys._base_executable)


@pytest.fixture(scope="module")
def scratch_copy() -> Iterator[Path]:
    """A relocated copy made into a scratch /snekbin, so the copy tests run on every host."""
    root = Path(tempfile.mkdtemp(prefix="snekbox-provision-copy-", dir="/tmp"))
    root.chmod(0o755)
    common = ["--snekbin", str(root / "snekbin"), "--memfs-root", str(root / "memfs")]
    made = run_script(*common, "--interpreters", copy_source(), "--skip-eval-deps")
    assert made.returncode == 0, made.stderr
    (copy,) = provision.installed_interpreters(root / "snekbin")
    yield copy
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def copies(scratch_copy: Path) -> list[Path]:
    return [*relocated_copies(), scratch_copy]


# --- the interpreter layout ------------------------------------------------------------------


def test_default_interpreter_runs_with_an_empty_environment() -> None:
    code = "import sys, ssl, sqlite3, ctypes, decimal; print(sys.prefix)"
    result = subprocess.run(
        ["env", "-i", str(SNEKBIN / "python/default/bin/python"), "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(SNEKBIN / "python") + "/"), result.stdout


def test_default_points_at_an_interpreter_with_a_relative_link() -> None:
    link = SNEKBIN / "python" / "default"
    assert link.is_symlink()
    target = os.readlink(link)
    assert "/" not in target, "the link must stay valid wherever /snekbin is mounted"
    assert (link.parent / target) in interpreters()


def test_every_interpreter_runs_from_its_prefix_alone_as_the_sandbox_user() -> None:
    code = (
        "import json, sys, ssl, sqlite3, ctypes, decimal; print(json.dumps([sys.prefix, sys.path]))"
    )
    for prefix in interpreters():
        result = provision._run_as_sandbox_user(
            [str(prefix / "bin" / "python"), "-c", code], env={}
        )
        assert result.returncode == 0, f"{prefix}: {result.stderr}"
        sys_prefix, sys_path = json.loads(result.stdout)
        assert sys_prefix == str(prefix)
        assert all(entry.startswith(f"{prefix}/") for entry in sys_path if entry), sys_path


def test_no_interpreter_searches_a_library_path_outside_snekbin() -> None:
    for prefix in interpreters():
        checked = 0
        for path in provision._elf_files(prefix):
            dynamic = provision.read_elf_dynamic(path)
            for entry in dynamic.search_path if dynamic else ():
                resolved = provision.expand_origin(entry, Path(os.path.realpath(path)))
                assert resolved.startswith(f"{SNEKBIN}/"), f"{path}: {entry}"
            checked += 1
        assert checked, f"no ELF file found under {prefix}"


def test_each_copy_finds_its_own_libpython_by_an_absolute_path(copies: list[Path]) -> None:
    """The jail has no /proc, so the loader cannot expand $ORIGIN for the executable."""
    for prefix in copies:
        binary = Path(os.path.realpath(prefix / "bin" / "python"))
        dynamic = provision.read_elf_dynamic(binary)
        assert dynamic is not None
        assert not any("ORIGIN" in entry for entry in dynamic.search_path), binary
        for needed in dynamic.needed:
            if needed.startswith("libpython"):
                assert dynamic.runpath[:1] == (f"{prefix}/lib",), binary
                assert (prefix / "lib" / needed).is_file()


def test_every_interpreter_starts_without_proc() -> None:
    """As in the jail: a private mount namespace with an empty /proc."""
    code = "import sys, ssl, sqlite3, ctypes, decimal; print(sys.prefix)"
    for prefix in interpreters():
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
                code,
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
        marker = json.loads((prefix / provision.LAYOUT_MARKER).read_text())
        assert Path(marker["source"]).is_file()


# --- user_base -------------------------------------------------------------------------------


def test_numpy_imports_from_user_base_in_every_interpreter_as_the_sandbox_user() -> None:
    code = "import numpy; print(numpy.__file__); print(int(numpy.arange(10).sum()))"
    for prefix in interpreters():
        result = provision._run_as_sandbox_user(
            [str(prefix / "bin" / "python"), "-c", code], env={"PYTHONUSERBASE": str(USER_BASE)}
        )
        assert result.returncode == 0, f"{prefix}: {result.stderr}"
        origin, total = result.stdout.split()
        assert origin.startswith(f"{USER_BASE}/lib/python"), origin
        assert total == "45"


def test_user_base_is_readable_by_the_sandbox_user() -> None:
    assert provision.verify_user_base_readable(USER_BASE) == []


def test_eval_deps_pin_one_version_of_each_package_per_python() -> None:
    requirements = provision.parse_eval_requirements(
        (REPO / "requirements" / "eval-deps.pip").read_text()
    )
    for version in ("3.10", "3.11", "3.12", "3.13", "3.14"):
        names = [
            requirement.spec.split("==")[0].lower()
            for requirement in requirements
            if requirement.applies_to(version)
        ]
        assert len(names) == len(set(names)), f"{version}: {names}"
        assert "numpy" in names
    for requirement in requirements:
        assert "==" in requirement.spec, f"{requirement.spec} is not pinned"
        assert requirement.imports, f"{requirement.spec} has no '# import:' note"


# --- re-running and checking -----------------------------------------------------------------


def test_check_passes_on_the_provisioned_host() -> None:
    result = run_script("--check", "--venv-python", sys.executable)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stderr


def test_second_run_changes_nothing() -> None:
    stamps = [prefix / provision.LAYOUT_MARKER for prefix in relocated_copies()]
    stamps += sorted(USER_BASE.glob(f"lib/*/site-packages/{provision.EVAL_STAMP}"))
    stamps.append(SNEKBIN / "python" / "default")
    before = {path: path.lstat().st_mtime_ns for path in stamps}
    result = run_script()
    assert result.returncode == 0, result.stderr
    assert {path: path.lstat().st_mtime_ns for path in stamps} == before
    assert "copying" not in result.stderr
    assert "installing" not in result.stderr


def test_refuses_to_run_without_root(world_readable_tmp: Path) -> None:
    script = world_readable_tmp / "provision.py"  # The checkout may be unreadable to nobody.
    shutil.copy(SCRIPT, script)
    script.chmod(0o644)
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            str(SNEKBIN / "python/default/bin/python"),
            str(script),
            "--check",
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode != 0
    assert "provisioning needs root" in result.stderr


def test_user_base_exists_even_without_eval_packages(world_readable_tmp: Path) -> None:
    """NsJail mounts user_base into every run: an image without eval packages needs it too."""
    user_base = world_readable_tmp / "user_base"
    common = [
        "--user-base",
        str(user_base),
        "--memfs-root",
        str(world_readable_tmp / "memfs"),
        "--interpreters",
        "none",
        "--skip-eval-deps",
    ]
    missing = run_script(*common, "--check")
    assert missing.returncode == 1
    assert f"{user_base} (user_base, mounted into every run) is missing" in missing.stderr
    made = run_script(*common)
    assert made.returncode == 0, made.stderr
    assert user_base.is_dir() and list(user_base.iterdir()) == []
    assert oct(user_base.stat().st_mode & 0o777) == oct(0o755)


def test_check_reports_a_host_that_is_not_provisioned(world_readable_tmp: Path) -> None:
    result = run_script(
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
    world_readable_tmp: Path,
) -> None:
    """A full copy into a scratch /snekbin, then the same tree as an install made by others."""
    source = copy_source()
    name = provision.probe(Path(source)).key
    snekbin = world_readable_tmp / "snekbin"
    common = ["--snekbin", str(snekbin), "--memfs-root", str(world_readable_tmp / "memfs")]

    made = run_script(*common, "--interpreters", source, "--skip-eval-deps")
    assert made.returncode == 0, made.stderr
    assert "copying Python" in made.stderr
    prefix = snekbin / "python" / name
    assert os.readlink(snekbin / "python" / "default") == name
    again = run_script(*common, "--interpreters", source, "--skip-eval-deps", "--check")
    assert again.returncode == 0, again.stderr

    (prefix / provision.LAYOUT_MARKER).unlink()  # Now it looks like someone's --prefix build.
    (prefix / "bin" / "python").unlink()
    binary_mtime = Path(os.path.realpath(prefix / "bin" / "python3")).stat().st_mtime_ns
    foreign = run_script(*common, "--interpreters", "none", "--skip-eval-deps")
    assert foreign.returncode == 0, foreign.stderr
    assert os.readlink(prefix / "bin" / "python") == "python3"
    assert Path(os.path.realpath(prefix / "bin" / "python3")).stat().st_mtime_ns == binary_mtime
    assert not (prefix / provision.LAYOUT_MARKER).exists()


# --- pure logic ------------------------------------------------------------------------------


def test_elf_reader_sees_what_patchelf_wrote(tmp_path: Path) -> None:
    binary = tmp_path / "python"
    shutil.copy(os.path.realpath(SNEKBIN / "python/default/bin/python"), binary)
    patchelf = provision.Tools(Path("/var/cache/snekbox"), []).patchelf()
    subprocess.run([patchelf, "--set-rpath", "/opt/x:$ORIGIN/../y", binary], check=True)
    dynamic = provision.read_elf_dynamic(binary)
    assert dynamic is not None
    assert dynamic.runpath == ("/opt/x", "$ORIGIN/../y")
    assert dynamic.rpath == ()
    assert "libc.so.6" in dynamic.needed
    assert provision.read_elf_dynamic(SCRIPT) is None


def test_runpath_entries_move_into_the_copy() -> None:
    source, copy = Path("/root/.pyenv/versions/3.13.0"), Path("/snekbin/python/3.13")
    module = copy / "lib/python3.13/lib-dynload/_ssl.so"
    entries = [f"{source}/lib", "$ORIGIN/extra", "/usr/local/lib"]
    assert provision.relocated_runpath(entries, module, source, copy) == [
        "$ORIGIN/../..",
        "$ORIGIN/extra",
    ]
    library = copy / "lib/libpython3.13.so.1.0"
    assert provision.relocated_runpath([f"{source}/lib"], library, source, copy) == ["$ORIGIN"]


@pytest.mark.parametrize(
    ("marker", "version", "applies"),
    [
        ("", "3.10", True),
        ('python_version < "3.11"', "3.10", True),
        ('python_version < "3.11"', "3.11", False),
        ('python_version >= "3.12"', "3.14", True),
        ('python_version == "3.11"', "3.12", False),
        ("python_version >= '3.10' and python_version < '3.12'", "3.11", True),
        ("python_version >= '3.10' and python_version < '3.12'", "3.12", False),
    ],
)
def test_eval_requirement_markers(marker: str, version: str, applies: bool) -> None:
    requirement = provision.EvalRequirement("numpy==1", marker, ("numpy",))
    assert requirement.applies_to(version) is applies


def test_unsupported_marker_is_a_clear_error() -> None:
    requirement = provision.EvalRequirement("numpy==1", 'sys_platform == "linux"', ())
    with pytest.raises(provision.ProvisionError, match="unsupported marker"):
        requirement.applies_to("3.12")

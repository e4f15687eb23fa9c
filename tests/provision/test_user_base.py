"""user_base: the eval packages, importable by every interpreter as the sandbox user."""

from __future__ import annotations

from pathlib import Path

from snekbox import layout
from snekbox_provision.eval_deps import verify_user_base_readable
from snekbox_provision.verify import run_as_sandbox_user
from tests.support.provision import run_provision

USER_BASE = Path(layout.USER_BASE)


def test_numpy_imports_from_user_base_in_every_interpreter_as_the_sandbox_user(
    interpreters: list[Path],
) -> None:
    code = "import numpy; print(numpy.__file__); print(int(numpy.arange(10).sum()))"
    for prefix in interpreters:
        result = run_as_sandbox_user(
            [str(prefix / "bin" / "python"), "-c", code], env={"PYTHONUSERBASE": str(USER_BASE)}
        )
        assert result.returncode == 0, f"{prefix}: {result.stderr}"
        origin, total = result.stdout.split()
        assert origin.startswith(f"{USER_BASE}/lib/python"), origin
        assert total == "45"


def test_user_base_is_readable_by_the_sandbox_user() -> None:
    assert verify_user_base_readable(USER_BASE) == []


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
    missing = run_provision(*common, "--check")
    assert missing.returncode == 1
    assert f"{user_base} (user_base, mounted into every run) is missing" in missing.stderr
    made = run_provision(*common)
    assert made.returncode == 0, made.stderr
    assert user_base.is_dir() and list(user_base.iterdir()) == []
    assert oct(user_base.stat().st_mode & 0o777) == oct(0o755)

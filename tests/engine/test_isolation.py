"""The jail sees only what the config exposes: no network, read-only system, no host files."""

from __future__ import annotations

import pytest

from snekbox.nsjail import NsJail
from tests.support.engine import RunCode


@pytest.mark.parametrize("directory", ["/", "/etc", "/lib", "/lib64", "/snekbox", "/usr"])
def test_cant_write_outside_home(run: RunCode, directory: str) -> None:
    result = run(f"open('{directory.rstrip('/')}/test', 'w')")
    assert result.returncode == 1
    assert "Read-only file system" in result.stdout


def test_tmp_does_not_exist(run: RunCode) -> None:
    result = run("import os; print(os.path.exists('/tmp'))")
    assert result.stdout == "False\n"


def test_home_is_writable_and_cwd(run: RunCode) -> None:
    result = run(
        """
        import os
        with open('note.txt', 'w') as f:
            f.write('x')
        print(os.getcwd(), os.environ['HOME'], os.getuid(), os.getgid())
        """
    )
    assert result.stdout == "/home /home 65534 65534\n"


def test_cant_write_past_the_memfs_size(run: RunCode) -> None:
    # In 1 MiB chunks: tmpfs pages count towards the memory limit as well.
    result = run(
        """
        chunk = b'x' * 1024 * 1024
        with open('big', 'wb') as f:
            for _ in range(60):
                f.write(chunk)
        """
    )
    assert result.returncode == 1
    assert "No space left on device" in result.stdout


@pytest.mark.parametrize(
    "path",
    ["/usr/bin", "/root", "/etc/passwd", "/proc/self", "/work", "/sys/fs/cgroup", "/memfs"],
)
def test_cant_see_host_paths(run: RunCode, path: str) -> None:
    result = run(f"import os; print(os.path.exists({path!r}))")
    assert result.stdout == "False\n"


def test_cant_import_the_servers_dependencies(run: RunCode) -> None:
    result = run(
        """
        import importlib.util
        print([m for m in ("falcon", "gunicorn", "jsonschema", "snekbox", "nsjail")
               if importlib.util.find_spec(m)])
        """
    )
    assert result.stdout == "[]\n"


def test_can_import_numpy_from_user_base(run: RunCode) -> None:
    result = run("import numpy; print(numpy.arange(4).sum(), numpy.__file__.startswith('/snek'))")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "6 True\n"


def test_cant_use_the_network(run: RunCode) -> None:
    result = run(
        """
        import socket
        for target in [("127.0.0.1", 8060), ("1.1.1.1", 53)]:
            try:
                socket.create_connection(target, timeout=1)
                print("connected")
            except OSError as e:
                print(type(e).__name__)
        try:
            socket.getaddrinfo("example.com", 80)
            print("resolved")
        except OSError as e:
            print(type(e).__name__)
        """
    )
    assert result.returncode == 0
    assert "connected" not in result.stdout
    assert "resolved" not in result.stdout


def test_environment_is_the_configured_one(run: RunCode) -> None:
    result = run("import os; print(sorted(os.environ))")
    expected = {
        "HOME",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "PYTHONUNBUFFERED",
        "PYTHONUSERBASE",
        "PYTHON_COLORS",
    }
    names = set(eval(result.stdout))
    assert expected <= names
    # Python itself adds LC_CTYPE when it coerces the C locale to UTF-8.
    extra = names - expected - {"LC_CTYPE"}
    assert extra and all(
        name.endswith("_NUM_THREADS") or name.startswith("VECLIB") for name in extra
    )


def test_hostname_is_snekbox(run: RunCode) -> None:
    assert run("import socket; print(socket.gethostname())").stdout == "snekbox\n"


def test_no_capabilities(run: RunCode) -> None:
    result = run("import os; os.chown('.', 0, 0)")
    assert "Operation not permitted" in result.stdout or "Invalid argument" in result.stdout


def test_explicit_interpreter_runs(nsjail: NsJail) -> None:
    import glob

    for python in sorted(glob.glob("/snekbin/python/*/bin/python")):
        result = nsjail.python3(["-c", "import sys; print(sys.prefix)"], executable_path=python)
        assert result.returncode == 0, (python, result.stdout)
        assert result.stdout.startswith("/snekbin/python/")

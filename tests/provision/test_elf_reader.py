"""The ELF reader against the real patchelf provisioning uses (pure cases: tests/unit)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from snekbox import layout
from snekbox_provision.elf import read_elf_dynamic
from snekbox_provision.tools import DEFAULT_CACHE_DIR, Tools


def test_elf_reader_sees_what_patchelf_wrote(tmp_path: Path) -> None:
    binary = tmp_path / "python"
    shutil.copy(os.path.realpath(layout.DEFAULT_EXECUTABLE_PATH), binary)
    patchelf = Tools(DEFAULT_CACHE_DIR, []).patchelf()
    subprocess.run([patchelf, "--set-rpath", "/opt/x:$ORIGIN/../y", binary], check=True)
    dynamic = read_elf_dynamic(binary)
    assert dynamic is not None
    assert dynamic.runpath == ("/opt/x", "$ORIGIN/../y")
    assert dynamic.rpath == ()
    assert "libc.so.6" in dynamic.needed

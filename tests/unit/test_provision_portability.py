"""Provisioning runs on any python3 >= 3.9, with the standard library and the checkout alone.

It runs before snekbox's dependencies are installed (the image's build stage) and under
whatever interpreter a host has, so nothing it imports may come from site-packages or use
syntax newer than Python 3.9.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OLDEST_PYTHON = (3, 9)

# Imports provisioning with no site-packages (-S) and no environment (-I), as a build stage
# would, and lists the files of the checkout that it loaded.
_IMPORT_CLOSURE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import snekbox_provision.cli
files = {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
print(json.dumps(sorted(f for f in files if f.startswith(sys.argv[1] + "/"))))
"""


def provisioning_files() -> list[Path]:
    """The checkout's files that importing provisioning loads (fails if it needs more)."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _IMPORT_CLOSURE, str(REPO)],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return [Path(name) for name in json.loads(result.stdout)]


def test_provisioning_imports_nothing_but_the_standard_library_and_the_checkout() -> None:
    files = provisioning_files()
    assert REPO / "snekbox_provision" / "cli.py" in files
    assert REPO / "snekbox" / "layout.py" in files


def test_provisioning_code_parses_as_the_oldest_python_it_supports() -> None:
    for path in [*provisioning_files(), REPO / "scripts" / "provision.py"]:
        ast.parse(path.read_text(), str(path), feature_version=OLDEST_PYTHON)

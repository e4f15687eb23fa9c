"""Moving an interpreter's library search paths from its source into its copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox_provision.elf import expand_origin, relocated_runpath

SOURCE = Path("/root/.pyenv/versions/3.13.0")
COPY = Path("/snekbin/python/3.13")


def test_runpath_entries_move_into_the_copy() -> None:
    module = COPY / "lib/python3.13/lib-dynload/_ssl.so"
    entries = [f"{SOURCE}/lib", "$ORIGIN/extra", "/usr/local/lib"]
    assert relocated_runpath(entries, module, SOURCE, COPY) == ["$ORIGIN/../..", "$ORIGIN/extra"]
    library = COPY / "lib/libpython3.13.so.1.0"
    assert relocated_runpath([f"{SOURCE}/lib"], library, SOURCE, COPY) == ["$ORIGIN"]


def test_entries_outside_the_source_are_dropped_and_duplicates_kept_once() -> None:
    library = COPY / "lib/libpython3.13.so.1.0"
    entries = ["/opt/vendor/lib", f"{SOURCE}/lib", f"{SOURCE}/lib/", "${ORIGIN}"]
    assert relocated_runpath(entries, library, SOURCE, COPY) == ["$ORIGIN", "${ORIGIN}"]


@pytest.mark.parametrize(
    ("entry", "expanded"),
    [
        ("$ORIGIN", "/snekbin/python/3.13/lib"),
        ("${ORIGIN}/../lib", "/snekbin/python/3.13/lib"),
        ("$ORIGIN/../../lib", "/snekbin/python/lib"),
        ("/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"),
    ],
)
def test_origin_expands_to_the_files_directory(entry: str, expanded: str) -> None:
    assert expand_origin(entry, COPY / "lib" / "libpython3.13.so.1.0") == expanded

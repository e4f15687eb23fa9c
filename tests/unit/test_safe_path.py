"""``snekbox.snekio.safe_path``: request file paths stay inside the run's home."""

from __future__ import annotations

import pytest

from snekbox.snekio import IllegalPathError, safe_path


@pytest.mark.parametrize("path", ["", "foo", "foo/bar.ext", "a/../b", "./x", "dir/./y"])
def test_a_legal_relative_path_is_returned_unchanged(path: str) -> None:
    assert safe_path(path) == path


@pytest.mark.parametrize("path", ["../foo", "..", "a/../../b", "dir/var/../../../file"])
def test_a_path_climbing_out_is_refused(path: str) -> None:
    with pytest.raises(IllegalPathError) as error:
        safe_path(path)
    assert str(error.value) == f"File path '{path}' may not traverse beyond root"


def test_an_absolute_path_is_refused() -> None:
    with pytest.raises(IllegalPathError) as error:
        safe_path("/foo")
    assert str(error.value) == "File path '/foo' must be relative"

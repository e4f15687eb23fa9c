"""Output file patterns: which paths of a run's home are returned."""

from __future__ import annotations

import pytest

from snekbox.snekio.collect import compile_pattern


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("a.txt", True),
        ("dir/a.txt", True),
        ("dir/sub/a.txt", True),
        ("_a.txt", False),
        ("dir/_a.txt", False),
        ("_dir/a.txt", True),
    ],
)
def test_default_pattern(path: str, matches: bool) -> None:
    assert bool(compile_pattern("**/[!_]*").fullmatch(path)) is matches


def test_pattern_star_does_not_cross_directories() -> None:
    assert compile_pattern("*.py").fullmatch("a.py")
    assert not compile_pattern("*.py").fullmatch("dir/a.py")

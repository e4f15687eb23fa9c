"""requirements/eval-deps.pip as provisioning reads it: markers, `# import:` notes, pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from snekbox_provision import ProvisionError
from snekbox_provision.requirements import EvalRequirement, parse_eval_requirements

EVAL_DEPS = Path(__file__).resolve().parents[2] / "requirements" / "eval-deps.pip"


@pytest.mark.parametrize(
    ("marker", "version", "applies"),
    [
        ("", "3.10", True),
        ('python_version < "3.11"', "3.10", True),
        ('python_version < "3.11"', "3.11", False),
        ('python_version >= "3.12"', "3.14", True),
        ('python_version == "3.11"', "3.12", False),
        ('python_version != "3.11"', "3.12", True),
        ('python_version <= "3.9"', "3.10", False),
        ('python_version > "3.9"', "3.10", True),
        ("python_version >= '3.10' and python_version < '3.12'", "3.11", True),
        ("python_version >= '3.10' and python_version < '3.12'", "3.12", False),
    ],
)
def test_eval_requirement_markers(marker: str, version: str, applies: bool) -> None:
    requirement = EvalRequirement("numpy==1", marker, ("numpy",))
    assert requirement.applies_to(version) is applies


def test_unsupported_marker_is_a_clear_error() -> None:
    requirement = EvalRequirement("numpy==1", 'sys_platform == "linux"', ())
    with pytest.raises(ProvisionError, match="unsupported marker"):
        requirement.applies_to("3.12")


def test_lines_give_their_spec_marker_and_import_notes() -> None:
    text = (
        "# a comment line\n"
        "\n"
        'numpy==2.2.6 ; python_version < "3.11"  # import: numpy\n'
        "beautifulsoup4==4.13.4  # import: bs4, soupsieve\n"
        "six==1.17.0\n"
    )
    assert parse_eval_requirements(text) == [
        EvalRequirement("numpy==2.2.6", 'python_version < "3.11"', ("numpy",)),
        EvalRequirement("beautifulsoup4==4.13.4", "", ("bs4", "soupsieve")),
        EvalRequirement("six==1.17.0", "", ()),
    ]


def test_eval_deps_pin_one_version_of_each_package_per_python() -> None:
    requirements = parse_eval_requirements(EVAL_DEPS.read_text())
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

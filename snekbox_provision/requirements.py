"""requirements/eval-deps.pip as provisioning reads it: specs, markers and `# import:` notes.

pip reads the file itself; provisioning only needs to know which modules prove each line
installed, and for which Python versions a line applies, without a packaging library.
"""

from __future__ import annotations

import dataclasses
import re

from snekbox_provision import ProvisionError
from snekbox_provision.interpreters import version_sort_key


@dataclasses.dataclass(frozen=True)
class EvalRequirement:
    """One line of eval-deps.pip: the spec, its marker and the modules that prove it works."""

    spec: str
    marker: str
    imports: tuple[str, ...]

    def applies_to(self, python_version: str) -> bool:
        """Evaluate the marker; only `python_version <op> "X.Y"` clauses joined by `and`."""
        if not self.marker:
            return True
        have = version_sort_key(python_version)
        for clause in re.split(r"\s+and\s+", self.marker.strip()):
            found = re.fullmatch(
                r"python_version\s*(<=|>=|==|!=|<|>)\s*[\"'](\d+\.\d+)[\"']", clause
            )
            if found is None:
                raise ProvisionError(
                    f"eval deps: unsupported marker {clause!r} in {self.spec!r}; use "
                    "python_version comparisons joined by 'and'"
                )
            op, want = found.group(1), version_sort_key(found.group(2))
            ok = {
                "<": have < want,
                "<=": have <= want,
                "==": have == want,
                "!=": have != want,
                ">=": have >= want,
                ">": have > want,
            }[op]
            if not ok:
                return False
        return True


def parse_eval_requirements(text: str) -> list[EvalRequirement]:
    """Read the requirement lines and their `# import:` notes."""
    requirements = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        if not body.strip():
            continue
        spec, _, marker = body.partition(";")
        note = re.match(r"\s*import:\s*(.+)", comment)
        imports = tuple(name.strip() for name in note.group(1).split(",")) if note else ()
        requirements.append(EvalRequirement(spec.strip(), marker.strip(), imports))
    return requirements

#!/usr/bin/env python3
"""Check the Dockerfile, docker-compose.yml and deployment.yaml without a Docker engine.

No Docker engine runs where snekbox is developed and tested, so a broken image would only show
up when someone builds it. This script catches what can be caught statically:

- Dockerfile: stages (unique names, FROM and COPY --from naming earlier stages), build ARGs
  declared before use, every COPY source present in the build context and not dropped by
  .dockerignore, every repository script a RUN executes copied in first and executable, shell
  syntax of every RUN, and the shape snekbox relies on (the interpreters under /snekbin/python,
  the provisioning step, the entry point, config copied last).
- docker-compose.yml: privileged, ipc, init, port 8060, the repository and user_base mounts,
  SNEKBOX_DEBUG, a healthcheck that asks GET /health on port 8060, and a build that points at
  a real stage and real build ARGs.
- deployment.yaml: a privileged Deployment with several replicas, resources, a readiness probe
  on GET /health, an init container that installs the eval packages into a user_base volume
  with a script the image contains, and a Service on port 8060 that selects the pods.

Usage: ``scripts/check_docker.py [--root DIR]``. Prints one line per problem and exits 1 if
there is any; prints a summary and exits 0 otherwise. Needs PyYAML (a dev dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - a clear message beats a traceback
    sys.exit("check_docker.py needs PyYAML: install requirements/dev.txt (make setup-dev)")

# What the image must offer: the interpreters clients name in executable_path, the default.
INTERPRETERS = ("3.13", "3.14", "3.14t", "3.14j")
DEFAULT_INTERPRETER = "3.14"
PORT = 8060
WORKDIR = "/snekbox"
USER_BASE = "/snekbox/user_base"
# GET /health answers 200 only while a trivial sandboxed run works (see snekbox/api/health.py).
HEALTH_PATH = "/health"
PROVISION_SCRIPT = "scripts/provision.py"
ENTRYPOINT = ["gunicorn"]
CMD = ["-c", "config/gunicorn.conf.py"]

# Directories on the default PATH of Debian images, where a bare command name is looked up.
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<mod>:?[-+][^}]*)?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
# Repository paths a RUN might name: they must reach the image through a COPY first.
REPO_PATH = re.compile(r"^(?:\./)?(?:scripts|snekbox|config|requirements)/\S+$")


class Problems:
    """Collects problems so that one run reports all of them, not just the first."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        """Record one problem; ``where`` is a file name with an optional line number."""
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)


# --------------------------------------------------------------------------------------------
# .dockerignore


@dataclass(frozen=True)
class IgnorePattern:
    """One .dockerignore line: a Go filepath.Match pattern, ``**`` for any depth."""

    regex: re.Pattern[str]
    exclusion: bool  # a "!" line re-includes what earlier lines excluded


def _translate_ignore(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" matches zero or more directories
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def read_dockerignore(path: Path) -> list[IgnorePattern]:
    """Parse .dockerignore the way the Docker CLI does (cleaned paths, last match wins)."""
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = posixpath.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        patterns.append(IgnorePattern(_translate_ignore(line), exclusion))
    return patterns


def is_ignored(relpath: str, patterns: list[IgnorePattern]) -> bool:
    """Whether a context path is left out of the build context.

    As in Docker, a pattern that matches any parent directory matches the path too, and the
    last matching line decides.
    """
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        if any(pattern.regex.match(candidate) for candidate in candidates):
            ignored = not pattern.exclusion
    return ignored


# --------------------------------------------------------------------------------------------
# Dockerfile parsing


@dataclass
class Instruction:
    """One Dockerfile instruction with continuation lines joined."""

    keyword: str
    value: str
    line: int

    def json_form(self) -> list[str] | None:
        """The exec-form (JSON array) arguments, or None for the shell form."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
        return None


@dataclass
class Stage:
    """A build stage: its base, name and the instructions after its FROM."""

    index: int
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    parent: Stage | None = None  # set when the base is an earlier stage


@dataclass
class Dockerfile:
    """A parsed Dockerfile: ARGs declared before the first FROM, and the stages."""

    path: Path
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, name: str) -> Stage | None:
        """The stage with this name, or None."""
        return next((s for s in self.stages if s.name == name), None)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, instruction text) with comments and continuations removed."""
    escape = "\\"
    lines = text.splitlines()
    # Parser directives (# syntax=, # escape=) come first, before any other line.
    for raw in lines:
        match = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", raw)
        if not match:
            break
        if match.group(1).lower() == "escape":
            escape = match.group(2)
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and buffer):
            continue  # comments and blank lines may sit inside a continued instruction
        if not stripped:
            continue
        if not buffer:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            buffer.append(body[: -len(escape)])
            continue
        buffer.append(body)
        yield start, " ".join(part.strip() for part in buffer)
        buffer = []
    if buffer:
        yield start, " ".join(part.strip() for part in buffer)


def parse_dockerfile(path: Path, problems: Problems) -> Dockerfile:
    """Split a Dockerfile into global ARGs and stages; syntax errors become problems."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, value = text.partition(" ")
        keyword = keyword.upper()
        where = f"{path.name}:{line}"
        if "<<" in value and re.search(r"<<-?\s*['\"]?[A-Za-z_]+['\"]?\s*$", value):
            problems.add(where, f"{keyword} uses a heredoc, which this checker cannot verify")
        if keyword == "FROM":
            tokens = [t for t in value.split() if not t.startswith("--")]
            name = None
            if len(tokens) == 3 and tokens[1].upper() == "AS":
                name = tokens[2].lower()
            elif len(tokens) != 1:
                problems.add(where, f"FROM must be 'FROM image [AS name]', not 'FROM {value}'")
            stages.append(Stage(len(stages), tokens[0] if tokens else "", name, line))
        elif not stages:
            if keyword != "ARG":
                problems.add(where, f"{keyword} before the first FROM; only ARG may come first")
                continue
            for name, default in _arg_declarations(value):
                global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value.strip(), line))
    return Dockerfile(path, global_args, stages)


def _arg_declarations(value: str) -> list[tuple[str, str | None]]:
    declared = []
    for token in shlex.split(value):
        name, sep, default = token.partition("=")
        declared.append((name, default if sep else None))
    return declared


def substitute(text: str, variables: dict[str, str | None]) -> str:
    """Expand $VAR, ${VAR}, ${VAR:-x} and ${VAR:+x} as the Dockerfile frontend does."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = variables.get(name) or ""
        modifier = match.group("mod")
        if modifier:
            word = modifier.lstrip(":")[1:]
            if modifier.lstrip(":").startswith("-"):
                return value or word
            return word if value else ""
        return value

    return VARIABLE.sub(replace, text)


def _split_flags(value: str) -> tuple[dict[str, str], list[str]]:
    """Separate ``--flag=value`` options from the arguments of COPY/ADD/FROM."""
    json_args = Instruction("", value, 0).json_form()
    tokens = json_args if json_args is not None else shlex.split(value, posix=True)
    flags: dict[str, str] = {}
    rest: list[str] = []
    for token in tokens:
        if not rest and token.startswith("--"):
            name, _, flag_value = token[2:].partition("=")
            flags[name] = flag_value
        else:
            rest.append(token)
    return flags, rest


# --------------------------------------------------------------------------------------------
# Dockerfile checks


@dataclass
class ImageState:
    """What a stage's image holds so far: context files copied in, workdir, ENV and ARGs."""

    files: dict[str, str] = field(default_factory=dict)  # image path -> context path
    workdir: str = "/"
    env: dict[str, str | None] = field(default_factory=dict)

    def copy(self) -> ImageState:
        """An independent copy, for a stage built FROM this one."""
        return ImageState(dict(self.files), self.workdir, dict(self.env))


@dataclass
class DockerfileReport:
    """What later checks need to know about the Dockerfile."""

    dockerfile: Dockerfile
    states: dict[int, ImageState]  # stage index -> final state of that stage
    declared_args: set[str]
    provision_args: list[list[str]]  # arguments after scripts/provision.py in each RUN

    @property
    def final(self) -> ImageState:
        """The state of the last stage, i.e. of the image ``docker build`` produces."""
        return self.states[len(self.dockerfile.stages) - 1]


def _context_files(root: Path, relpath: str) -> list[str]:
    """Files (not directories) at or under a context path, relative to the context root."""
    target = root / relpath
    if target.is_file():
        return [relpath]
    files = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for filename in filenames:
            files.append(Path(dirpath, filename).relative_to(root).as_posix())
    return sorted(files)


def _expand_source(root: Path, source: str) -> list[str]:
    """Context paths a COPY source names (it may be a glob), relative to the root."""
    clean = posixpath.normpath(source.lstrip("/"))
    if clean.startswith(".."):
        return []
    if any(char in clean for char in "*?["):
        matches = []
        for candidate in sorted(root.glob(clean)):
            matches.append(candidate.relative_to(root).as_posix())
        return matches
    return [clean] if (root / clean).exists() or clean == "." else []


def _check_copy(
    root: Path,
    instruction: Instruction,
    stage: Stage,
    state: ImageState,
    dockerfile: Dockerfile,
    ignore: list[IgnorePattern],
    problems: Problems,
) -> None:
    where = f"{dockerfile.path.name}:{instruction.line}"
    flags, args = _split_flags(instruction.value)
    if len(args) < 2:
        problems.add(where, f"{instruction.keyword} needs at least one source and a destination")
        return
    sources = [substitute(s, state.env) for s in args[:-1]]
    dest = substitute(args[-1], state.env)
    if not dest.startswith("/"):
        dest = posixpath.join(state.workdir, dest) + ("/" if dest.endswith("/") else "")
    if "from" in flags:
        _check_copy_from(flags["from"], sources, stage, dockerfile, where, problems)
        return
    multiple = len(sources) > 1 or any(char in s for s in sources for char in "*?[")
    for source in sources:
        if instruction.keyword == "ADD" and re.match(r"^[a-z]+://", source):
            continue
        matches = _expand_source(root, source)
        if not matches:
            problems.add(
                where,
                f"{instruction.keyword} source '{source}' does not exist in the "
                f"build context {root}",
            )
            continue
        for match in matches:
            files = _context_files(root, match) if match != "." else _context_files(root, "")
            kept = [f for f in files if not is_ignored(f, ignore)]
            if match != "." and is_ignored(match, ignore) and not kept:
                problems.add(
                    where,
                    f"{instruction.keyword} source '{match}' is excluded by "
                    ".dockerignore, so the build cannot see it",
                )
                continue
            if not kept:
                problems.add(
                    where,
                    f"{instruction.keyword} source '{match}' holds no file "
                    "that .dockerignore lets into the build context",
                )
                continue
            source_is_dir = (root / match).is_dir()
            for context_file in kept:
                if source_is_dir:
                    inner = Path(context_file).relative_to(match if match != "." else "")
                    image_path = posixpath.join(dest, inner.as_posix())
                elif dest.endswith("/") or multiple:
                    image_path = posixpath.join(dest, posixpath.basename(context_file))
                else:
                    image_path = dest
                state.files[posixpath.normpath(image_path)] = context_file


def _check_copy_from(
    source: str,
    paths: list[str],
    stage: Stage,
    dockerfile: Dockerfile,
    where: str,
    problems: Problems,
) -> None:
    if source.isdigit():
        if int(source) >= stage.index:
            problems.add(where, f"COPY --from={source} must name an earlier stage")
        return
    earlier = {s.name for s in dockerfile.stages[: stage.index] if s.name}
    if source.lower() in earlier:
        # A path no instruction of that stage (or its bases) names was most likely never made
        # there, e.g. a builder that installed into another prefix than the one copied.
        origin = dockerfile.stage(source.lower())
        assert origin is not None
        texts = [i.value for s in _lineage(origin) for i in s.instructions]
        for path in paths:
            if not any(path.rstrip("/") in text for text in texts):
                problems.add(
                    where,
                    f"COPY --from={source} {path}: no instruction of stage {source} creates "
                    "or names that path",
                )
        return
    if dockerfile.stage(source.lower()):
        problems.add(
            where,
            f"COPY --from={source} names a stage that comes later; it must be "
            "defined before it is copied from",
        )
    elif not re.search(r"[:/@]", source):
        problems.add(
            where,
            f"COPY --from={source} names no stage (stages: "
            f"{', '.join(sorted(earlier)) or 'none'}); an image needs a tag or registry",
        )


def _check_shell_syntax(command: str, where: str, problems: Problems) -> None:
    result = subprocess.run(["sh", "-n"], input=command, capture_output=True, text=True)
    if result.returncode != 0:
        problems.add(where, f"RUN is not valid sh syntax: {result.stderr.strip()}")


def _run_words(instruction: Instruction) -> list[list[str]]:
    """The simple commands of a RUN, split into words (best effort for the shell form)."""
    exec_form = instruction.json_form()
    if exec_form is not None:
        return [exec_form]
    lexer = shlex.shlex(instruction.value, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and all(char in ";&|()" for char in token):
                commands.append([])
            else:
                commands[-1].append(token)
    except ValueError:
        return []  # unbalanced quotes: the sh -n check reports it
    return [command for command in commands if command]


def _under_workdir(path: str) -> str:
    """``/snekbox/scripts/x`` -> ``scripts/x``; other paths -> "" (not a repository path)."""
    return path[len(WORKDIR) + 1 :] if path.startswith(WORKDIR + "/") else ""


def _check_run(
    root: Path,
    instruction: Instruction,
    state: ImageState,
    dockerfile: Dockerfile,
    problems: Problems,
    provision_args: list[list[str]],
) -> None:
    where = f"{dockerfile.path.name}:{instruction.line}"
    value = instruction.value
    while value.startswith("--"):  # RUN --mount=... options come before the command
        value = value.split(None, 1)[1] if " " in value else ""
    if instruction.json_form() is None:
        _check_shell_syntax(value, where, problems)
    by_name = {
        posixpath.basename(path): path
        for path in state.files
        if posixpath.dirname(path) in PATH_DIRS
    }
    for words in _run_words(Instruction("RUN", value, instruction.line)):
        for position, word in enumerate(words):
            image_path = None
            if word in by_name and position == 0:
                image_path = by_name[word]
            elif REPO_PATH.match(word) or REPO_PATH.match(_under_workdir(word)):
                image_path = posixpath.normpath(posixpath.join(state.workdir, word))
            elif word.startswith("/") and word in state.files:
                image_path = word
            if image_path is None:
                continue
            context_file = state.files.get(image_path)
            if context_file is None:
                problems.add(
                    where,
                    f"RUN uses '{word}' but no earlier COPY puts it at {image_path} in this stage",
                )
                continue
            runs_it = position == 0 or word.endswith((".sh", ".py"))
            if runs_it and not os.access(root / context_file, os.X_OK):
                problems.add(
                    where,
                    f"RUN executes '{context_file}', which is not executable "
                    f"(chmod +x {context_file} and commit the mode)",
                )
            if context_file == PROVISION_SCRIPT:
                # "$@" and other expansions are set by the shell at build time, not options.
                provision_args.append([w for w in words[position + 1 :] if "$" not in w])


def check_dockerfile(root: Path, problems: Problems) -> DockerfileReport | None:
    """Check the Dockerfile's structure, its COPY sources and the scripts its RUNs execute."""
    path = root / "Dockerfile"
    if not path.is_file():
        problems.add("Dockerfile", f"no Dockerfile in {root}")
        return None
    dockerfile = parse_dockerfile(path, problems)
    ignore = read_dockerignore(root / ".dockerignore")
    if not dockerfile.stages:
        problems.add(path.name, "no FROM instruction, so there is no stage to build")
        return None
    declared_args = set(dockerfile.global_args)
    states: dict[int, ImageState] = {}
    provision_args: list[list[str]] = []
    seen: dict[str, Stage] = {}
    for stage in dockerfile.stages:
        where = f"{path.name}:{stage.line}"
        if stage.name is not None:
            if not STAGE_NAME.match(stage.name):
                problems.add(
                    where,
                    f"stage name '{stage.name}' is not valid (lower case letters, "
                    "digits, '-', '_' and '.', starting with a letter)",
                )
            if stage.name in seen:
                problems.add(
                    where,
                    f"stage name '{stage.name}' is used twice (first on line "
                    f"{seen[stage.name].line})",
                )
            seen[stage.name] = stage
        base = substitute(stage.base, dockerfile.global_args)
        if base.lower() in seen and seen[base.lower()] is not stage:
            stage.parent = seen[base.lower()]
            state = states[stage.parent.index].copy()
        else:
            later = dockerfile.stage(base.lower())
            if later is not None:
                problems.add(
                    where,
                    f"FROM {base} names a stage that is only defined on line "
                    f"{later.line}; stages must be defined before use",
                )
            elif base != "scratch" and not re.search(r"[:@]", base):
                problems.add(
                    where,
                    f"FROM {base} is neither an earlier stage nor an image with a tag or digest",
                )
            state = ImageState()
        _check_stage(root, stage, state, dockerfile, ignore, problems, provision_args)
        declared_args.update(
            name
            for instruction in stage.instructions
            if instruction.keyword == "ARG"
            for name, _ in _arg_declarations(instruction.value)
        )
        states[stage.index] = state
    report = DockerfileReport(dockerfile, states, declared_args, provision_args)
    _check_snekbox_image(root, report, problems)
    return report


def _check_stage(
    root: Path,
    stage: Stage,
    state: ImageState,
    dockerfile: Dockerfile,
    ignore: list[IgnorePattern],
    problems: Problems,
    provision_args: list[list[str]],
) -> None:
    for instruction in stage.instructions:
        where = f"{dockerfile.path.name}:{instruction.line}"
        if instruction.keyword == "ARG":
            for name, default in _arg_declarations(instruction.value):
                if default is None and name not in dockerfile.global_args:
                    problems.add(
                        where,
                        f"ARG {name} has no default here and none before the "
                        "first FROM, so it would be empty",
                    )
                value = default if default is not None else dockerfile.global_args.get(name)
                state.env[name] = value
        elif instruction.keyword == "ENV":
            for name, value in _env_assignments(instruction.value):
                state.env[name] = substitute(value, state.env)
        elif instruction.keyword == "WORKDIR":
            workdir = substitute(instruction.value, state.env)
            state.workdir = posixpath.normpath(posixpath.join(state.workdir, workdir))
        elif instruction.keyword in ("COPY", "ADD"):
            _check_copy(root, instruction, stage, state, dockerfile, ignore, problems)
        elif instruction.keyword == "RUN":
            _check_run(root, instruction, state, dockerfile, problems, provision_args)


def _env_assignments(value: str) -> list[tuple[str, str]]:
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:  # legacy "ENV NAME value with spaces"
        return [(tokens[0], " ".join(tokens[1:]))]
    return [tuple(token.split("=", 1)) for token in tokens if "=" in token]  # type: ignore[misc]


def _check_snekbox_image(root: Path, report: DockerfileReport, problems: Problems) -> None:
    """The promises the README and clients rely on: interpreters, provisioning, entry point."""
    dockerfile = report.dockerfile
    name = dockerfile.path.name
    final = dockerfile.stages[-1]
    where = f"{name}:{final.line}"

    # Every interpreter clients may name arrives in the final image from a builder stage.
    copied_prefixes = set()
    for stage in _lineage(final):
        for instruction in stage.instructions:
            flags, args = _split_flags(instruction.value)
            if instruction.keyword == "COPY" and "from" in flags and args:
                copied_prefixes.add(posixpath.normpath(args[-1]))
    for version in INTERPRETERS:
        if f"/snekbin/python/{version}" not in copied_prefixes:
            problems.add(
                where,
                f"the final image gets no /snekbin/python/{version} from a "
                f"builder stage (COPY --from=... /snekbin/python/{version})",
            )

    lineage_runs = [i for s in _lineage(final) for i in s.instructions if i.keyword == "RUN"]
    if not any(PROVISION_SCRIPT in i.value for i in lineage_runs):
        problems.add(
            where,
            f"the final image never runs {PROVISION_SCRIPT}, the provisioning "
            "step the native setup uses",
        )
    for args in report.provision_args:
        default = _option(args, "--default")
        if default != DEFAULT_INTERPRETER:
            problems.add(
                name,
                f"{PROVISION_SCRIPT} is run with --default {default}; clients "
                f"expect {DEFAULT_INTERPRETER}",
            )
        if _option(args, "--user-base") != USER_BASE:
            problems.add(
                name,
                f"{PROVISION_SCRIPT} must install into --user-base {USER_BASE}, "
                "the PYTHONUSERBASE of config/snekbox.cfg",
            )

    def last(keyword: str) -> Instruction | None:
        found = [i for s in _lineage(final) for i in s.instructions if i.keyword == keyword]
        return found[-1] if found else None

    for keyword, expected in (("ENTRYPOINT", ENTRYPOINT), ("CMD", CMD)):
        instruction = last(keyword)
        actual = instruction.json_form() if instruction else None
        if actual != expected:
            problems.add(
                where,
                f"the final image's {keyword} is {actual}, expected the exec "
                f"form {json.dumps(expected)}",
            )
    if report.final.workdir != WORKDIR:
        problems.add(
            where, f"the final image's WORKDIR is {report.final.workdir}, expected {WORKDIR}"
        )
    config_file = posixpath.join(WORKDIR, CMD[-1])
    if config_file not in report.final.files:
        problems.add(where, f"CMD reads {CMD[-1]}, but no COPY puts it at {config_file}")
    copies = [i for i in final.instructions if i.keyword in ("COPY", "ADD")]
    if copies and "config" not in copies[-1].value:
        problems.add(
            f"{name}:{copies[-1].line}",
            "config/ should be the last thing copied, so "
            "a config change rebuilds only the last layer",
        )


def _lineage(stage: Stage) -> list[Stage]:
    chain = []
    current: Stage | None = stage
    while current is not None:
        chain.append(current)
        current = current.parent
    return list(reversed(chain))


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


# --------------------------------------------------------------------------------------------
# docker-compose.yml


def _load_yaml(path: Path, problems: Problems) -> list[dict] | None:
    if not path.is_file():
        problems.add(path.name, f"{path.name} does not exist")
        return None
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problems.add(path.name, f"is not valid YAML: {e}")
        return None
    if not all(isinstance(d, dict) for d in documents):
        problems.add(path.name, "every YAML document must be a mapping")
        return None
    return documents


def _container_ports(ports: Iterable[object]) -> set[int]:
    found = set()
    for port in ports:
        if isinstance(port, dict):
            target = port.get("target")
        else:
            target = str(port).split("/")[0].rsplit(":", 1)[-1]
        try:
            found.add(int(str(target)))
        except ValueError:
            continue
    return found


def _compose_volumes(volumes: Iterable[object]) -> list[tuple[str, str]]:
    mounts = []
    for volume in volumes:
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume.get("target", ""))))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2:
                mounts.append((parts[0], parts[1]))
            else:
                mounts.append(("", parts[0]))
    return mounts


def _environment(environment: object) -> dict[str, str]:
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    if isinstance(environment, list):
        pairs = (str(item).partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    return {}


def check_compose(root: Path, report: DockerfileReport | None, problems: Problems) -> None:
    """Check docker-compose.yml's service against what NsJail and development need."""
    path = root / "docker-compose.yml"
    documents = _load_yaml(path, problems)
    if documents is None:
        return
    name = path.name
    compose = documents[0]
    services = compose.get("services") or {}
    service = services.get("snekbox")
    if not isinstance(service, dict):
        problems.add(name, "defines no 'snekbox' service")
        return
    declared_volumes = compose.get("volumes") or {}

    build = service.get("build")
    if not isinstance(build, dict):
        problems.add(name, "the snekbox service must build this repository's Dockerfile")
    else:
        context = (root / str(build.get("context", "."))).resolve()
        if context != root.resolve():
            problems.add(name, f"build.context {build.get('context')} is not the repository root")
        if not (context / str(build.get("dockerfile", "Dockerfile"))).is_file():
            problems.add(name, f"build.dockerfile {build.get('dockerfile')} does not exist")
        if report is not None:
            target = build.get("target")
            if target is not None and report.dockerfile.stage(str(target)) is None:
                problems.add(name, f"build.target '{target}' is not a stage of the Dockerfile")
            for arg in build.get("args") or {}:
                if arg not in report.declared_args:
                    problems.add(
                        name, f"build arg {arg} is not declared by any ARG in the Dockerfile"
                    )

    if service.get("privileged") is not True:
        problems.add(
            name,
            "snekbox must be privileged: NsJail creates namespaces, mounts "
            "tmpfs and writes cgroups",
        )
    if service.get("ipc") not in ("none", "private"):
        problems.add(
            name,
            f"ipc is {service.get('ipc')!r}; use 'private' or 'none' so runs "
            "cannot share IPC with the host",
        )
    if service.get("init") is not True:
        problems.add(name, "init must be true, so a PID 1 reaps orphaned processes")
    if PORT not in _container_ports(service.get("ports") or []):
        problems.add(name, f"no port maps to the container's {PORT}")
    mounts = _compose_volumes(service.get("volumes") or [])
    by_target = {target: source for source, target in mounts}
    repo = by_target.get(WORKDIR)
    if repo is None or (root / repo).resolve() != root.resolve():
        problems.add(name, f"the repository must be mounted at {WORKDIR} ('.:{WORKDIR}')")
    user_base = by_target.get(USER_BASE)
    if not user_base or "/" in user_base or user_base.startswith("."):
        problems.add(name, f"a named volume must be mounted at {USER_BASE}")
    for source, target in mounts:
        if source and not source.startswith((".", "/", "~")) and source not in declared_volumes:
            problems.add(
                name,
                f"volume '{source}' (mounted at {target}) is not declared under "
                "the top-level volumes",
            )
    if _environment(service.get("environment")).get("SNEKBOX_DEBUG") not in ("1", "true"):
        problems.add(name, "SNEKBOX_DEBUG must be set to 1 for development")
    _check_compose_healthcheck(name, service.get("healthcheck"), problems)


def _check_compose_healthcheck(name: str, healthcheck: object, problems: Problems) -> None:
    """The healthcheck must run in the container and ask snekbox's /health on its port."""
    if not isinstance(healthcheck, dict) or healthcheck.get("disable"):
        problems.add(name, f"the snekbox service needs a healthcheck that asks {HEALTH_PATH}")
        return
    test = healthcheck.get("test")
    words = [str(word) for word in test] if isinstance(test, list) else [str(test)]
    if not words or words[0] not in ("CMD", "CMD-SHELL"):
        problems.add(name, "healthcheck.test must be a list starting with CMD or CMD-SHELL")
        return
    command = " ".join(words[1:])
    if f":{PORT}{HEALTH_PATH}" not in command:
        problems.add(
            name, f"healthcheck.test must request {HEALTH_PATH} on port {PORT}: {command!r}"
        )


# --------------------------------------------------------------------------------------------
# deployment.yaml


def check_deployment(root: Path, report: DockerfileReport | None, problems: Problems) -> None:
    """Check the Kubernetes Deployment and Service."""
    path = root / "deployment.yaml"
    documents = _load_yaml(path, problems)
    if documents is None:
        return
    name = path.name
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    services = [d for d in documents if d.get("kind") == "Service"]
    if len(deployments) != 1:
        problems.add(name, f"expected one Deployment, found {len(deployments)}")
        return
    if len(services) != 1:
        problems.add(name, f"expected one Service, found {len(services)}")
    spec = deployments[0].get("spec") or {}
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 2:
        problems.add(
            name, f"replicas is {replicas}; run several so one pod's restart is not an outage"
        )
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if not match_labels or any(labels.get(k) != v for k, v in match_labels.items()):
        problems.add(name, "the Deployment's selector.matchLabels must match the pod labels")
    pod = template.get("spec") or {}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    containers = pod.get("containers") or []
    init_containers = pod.get("initContainers") or []
    if len(containers) != 1:
        problems.add(name, f"expected one snekbox container, found {len(containers)}")
        return
    main = containers[0]
    _check_k8s_container(name, main, volumes, problems)
    if (main.get("securityContext") or {}).get("privileged") is not True:
        problems.add(name, "the snekbox container must be privileged (securityContext)")
    ports = {p.get("containerPort"): p.get("name") for p in main.get("ports") or []}
    if PORT not in ports:
        problems.add(name, f"the snekbox container must expose containerPort {PORT}")
    _check_readiness_probe(name, main, ports, problems)
    user_base_volume = _mounted_volume(main, USER_BASE)
    if user_base_volume is None:
        problems.add(name, f"the snekbox container must mount a volume at {USER_BASE}")
    elif "emptyDir" not in (volumes.get(user_base_volume) or {}):
        problems.add(
            name,
            f"volume {user_base_volume} at {USER_BASE} should be an emptyDir the "
            "init container fills",
        )

    installers = [c for c in init_containers if _mounted_volume(c, USER_BASE) == user_base_volume]
    if not installers:
        problems.add(
            name,
            "no init container mounts the user_base volume to install the eval packages into it",
        )
    for init in installers:
        _check_k8s_container(name, init, volumes, problems)
        if init.get("image") != main.get("image"):
            problems.add(
                name,
                f"init container {init.get('name')} must use the snekbox image, "
                "so it installs with the same interpreters and script",
            )
        command = [str(c) for c in (init.get("command") or []) + (init.get("args") or [])]
        scripts = [c for c in command if REPO_PATH.match(c) or REPO_PATH.match(_under_workdir(c))]
        if not scripts:
            problems.add(name, f"init container {init.get('name')} runs no script of the image")
        for script in scripts:
            image_path = posixpath.normpath(posixpath.join(WORKDIR, script))
            if report is not None and image_path not in report.final.files:
                problems.add(
                    name,
                    f"init container {init.get('name')} uses {script}, which the "
                    f"image does not contain at {image_path}",
                )
            elif not (root / posixpath.relpath(image_path, WORKDIR)).exists():
                problems.add(
                    name,
                    f"init container {init.get('name')} uses {script}, which "
                    "does not exist in the repository",
                )

    for service in services:
        service_spec = service.get("spec") or {}
        selector = service_spec.get("selector") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.add(name, "the Service's selector does not select the snekbox pods")
        service_ports = service_spec.get("ports") or []
        if not any(
            p.get("port") == PORT and p.get("targetPort", PORT) in (PORT, ports.get(PORT))
            for p in service_ports
        ):
            problems.add(
                name, f"the Service must serve port {PORT} and target the container's port {PORT}"
            )


def _check_readiness_probe(
    name: str, container: dict, ports: dict[object, object], problems: Problems
) -> None:
    """Traffic must only reach a pod whose sandboxes work: readiness is GET /health."""
    probe = container.get("readinessProbe")
    http_get = probe.get("httpGet") if isinstance(probe, dict) else None
    if not isinstance(http_get, dict):
        problems.add(
            name, f"the snekbox container needs a readinessProbe with httpGet {HEALTH_PATH}"
        )
        return
    if http_get.get("path") != HEALTH_PATH:
        problems.add(name, f"the readinessProbe asks {http_get.get('path')!r}, not {HEALTH_PATH!r}")
    port = http_get.get("port")
    if port != PORT and (port not in ports.values() or ports.get(PORT) != port):
        problems.add(name, f"the readinessProbe's port {port!r} is not the container's {PORT}")


def _mounted_volume(container: dict, mount_path: str) -> str | None:
    for mount in container.get("volumeMounts") or []:
        if posixpath.normpath(str(mount.get("mountPath"))) == mount_path:
            return mount.get("name")
    return None


def _check_k8s_container(name: str, container: dict, volumes: dict, problems: Problems) -> None:
    label = container.get("name", "?")
    if not container.get("image"):
        problems.add(name, f"container {label} has no image")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                problems.add(name, f"container {label} sets no {resource} {kind}")
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.add(
                name,
                f"container {label} mounts volume {mount.get('name')}, which the "
                "pod does not declare",
            )


# --------------------------------------------------------------------------------------------


def check(root: Path) -> tuple[Problems, DockerfileReport | None]:
    """Run every check on the repository at ``root``."""
    problems = Problems()
    report = check_dockerfile(root, problems)
    check_compose(root, report, problems)
    check_deployment(root, report, problems)
    return problems, report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the problems, exit 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository (build context) to check; default: this checkout",
    )
    parser.add_argument(
        "--print-provision-args",
        action="store_true",
        help="print the arguments the image passes to scripts/provision.py "
        "as a JSON list, one line per RUN, and exit",
    )
    args = parser.parse_args(argv)
    problems, report = check(args.root)
    if args.print_provision_args:
        for provision in report.provision_args if report else []:
            print(json.dumps(provision))
        return 1 if problems else 0
    for item in problems.items:
        print(item)
    if problems:
        print(f"{len(problems.items)} problem(s) in the Docker and Kubernetes files.")
        return 1
    stages = len(report.dockerfile.stages) if report else 0
    print(f"Dockerfile ({stages} stages), docker-compose.yml and deployment.yaml look right.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Who owns a run's mounts and cgroups, decided by a lock that only a live process can hold.

"A process with that pid exists" proves nothing: a killed worker stays a zombie until its
master reaps it, and pids are reused. So every process that runs sandboxes holds an exclusive
``flock`` on its own file in the owners directory (``$SNEKBOX_OWNERS_DIR``, by default
``/run/snekbox/owners``) for its whole life, and names what its runs make after that file:
mounts under ``<memfs root>/<owner>/``, cgroups ``run-<owner>-<id>``. The kernel drops the lock
when the process dies, however it dies, so "the lock can be taken" is the proof that the owner
is gone and that everything named after it may be removed. The owner's file lists the places
where it made things (memfs roots, cgroup parents), so a sweeper needs no configuration of its
own: the Gunicorn master sweeps with nothing but this directory.

An owner is named ``<pid>-<start time>`` (the start time in clock ticks since boot), so a later
process that happens to get the same pid never takes over a dead owner's leftovers.

Directories that one Gunicorn master's workers share (run slots, metrics) follow the same
rule: every master that uses one holds a shared lock on the directory itself, and a directory
whose exclusive lock can be taken belongs to no live server.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = (
    "DEFAULT_OWNERS_DIR",
    "OWNERS_DIR_ENV",
    "DeadOwner",
    "Owner",
    "current_owner",
    "dead_owners",
    "existing_owner",
    "hold_directory",
    "make_owned_tempdir",
    "owners_dir",
    "remove_dead_tempdirs",
)

log = logging.getLogger(__name__)

OWNERS_DIR_ENV = "SNEKBOX_OWNERS_DIR"
DEFAULT_OWNERS_DIR = "/run/snekbox/owners"
LOCK_SUFFIX = ".lock"
# A file being set up (created and locked, not yet renamed into place); see `Owner.create`.
PENDING_PREFIX = ".pending-"


def owners_dir() -> Path:
    """The directory of owner files (read at each use, so a test server can point elsewhere)."""
    return Path(os.environ.get(OWNERS_DIR_ENV) or DEFAULT_OWNERS_DIR)


def process_start_time(pid: int | str = "self") -> int:
    """When process ``pid`` started, in clock ticks since boot (field 22 of its stat file)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses; it ends at the last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def _try_lock(fd: int, operation: int = fcntl.LOCK_EX) -> bool:
    """Take ``operation`` on ``fd`` without waiting; False when someone else holds it."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Owner:
    """A process as the owner of its runs' mounts and cgroups (see the module docstring)."""

    def __init__(self, name: str, path: Path, fd: int) -> None:
        self.name = name
        self.path = path
        self.pid = os.getpid()
        self._fd = fd
        self._lock = threading.Lock()
        self._places: set[tuple[str, str]] = set()
        self.runs_in_flight = 0
        """Kept by the code that starts runs; the file outlives a process only if it is > 0."""

    @classmethod
    def create(cls, directory: Path) -> Owner:
        """Create and lock this process's owner file in ``directory``.

        The file is locked under a temporary name and then renamed into place, so a sweeper
        never sees an owner file that is not locked yet and takes it for a dead one.
        """
        name = f"{os.getpid()}-{process_start_time()}"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pending = directory / f"{PENDING_PREFIX}{name}"
        path = directory / f"{name}{LOCK_SUFFIX}"
        while True:
            fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A sweeper may have locked and removed the file between open and flock; once
                # it is locked and still in place, no sweeper can remove it any more.
                if _same_file(fd, pending):
                    os.rename(pending, path)
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        log.debug("Owner %s holds %s", name, path)
        return cls(name, path, fd)

    def record(self, kind: str, place: str | os.PathLike[str]) -> None:
        """Note that this owner makes things at ``place`` (before it makes the first one)."""
        entry = (kind, os.fspath(place))
        with self._lock:
            if entry in self._places:
                return
            os.write(self._fd, f"{kind} {entry[1]}\n".encode())
            self._places.add(entry)

    def places(self) -> list[tuple[str, str]]:
        """Every ``(kind, place)`` recorded so far."""
        with self._lock:
            return sorted(self._places)

    def release(self) -> None:
        """Remove the owner file; only for a process whose runs are all finished."""
        _remove_locked_file(self.path, self._fd)


@dataclass
class DeadOwner:
    """An owner whose process is gone, locked by the sweeper while it removes the leftovers."""

    name: str
    places: list[tuple[str, str]]
    path: Path
    fd: int

    def forget(self) -> None:
        """Remove the owner's file once everything named after it is gone."""
        _remove_locked_file(self.path, self.fd)

    def release(self) -> None:
        """Keep the file for a later sweep (something could not be removed this time)."""
        os.close(self.fd)


def _remove_locked_file(path: Path, fd: int) -> None:
    """Unlink an owner file while its lock is still held, then drop the lock."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    os.close(fd)


_current: Owner | None = None
_current_lock = threading.Lock()


def current_owner() -> Owner:
    """The owner of the current process, created at first use (and again in a fork)."""
    global _current
    with _current_lock:
        if _current is None or _current.pid != os.getpid():
            _current = Owner.create(owners_dir())
        return _current


def existing_owner() -> Owner | None:
    """The current process's owner if it has made one (it ran something), else None."""
    with _current_lock:
        if _current is not None and _current.pid == os.getpid():
            return _current
        return None


def _forget_inherited_owner() -> None:
    """A forked child must not keep its parent's owner lock alive (or its name)."""
    global _current, _current_lock
    _current_lock = threading.Lock()
    if _current is not None:
        try:
            os.close(_current._fd)
        except OSError:
            pass
        _current = None


def _release_at_exit() -> None:
    """A process that exits between runs leaves nothing to sweep: drop its file at once."""
    owner = existing_owner()
    if owner is not None and owner.runs_in_flight == 0:
        owner.release()


os.register_at_fork(after_in_child=_forget_inherited_owner)
atexit.register(_release_at_exit)


def _read_places(fd: int) -> list[tuple[str, str]]:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    places = []
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        kind, _, place = line.partition(" ")
        if place:
            places.append((kind, place))
    return places


def dead_owners(directory: Path | None = None) -> Iterator[DeadOwner]:
    """Each owner in ``directory`` whose lock can be taken, locked until forgotten or released.

    The caller must call ``forget()`` or ``release()`` on each. Two sweepers never clean the
    same owner at once: the second one waits for nothing and skips the locked file.
    """
    directory = directory or owners_dir()
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return
    for path in entries:
        is_owner = path.name.endswith(LOCK_SUFFIX)
        if not (is_owner or path.name.startswith(PENDING_PREFIX)):
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # another sweeper removed it meanwhile
        if not _try_lock(fd) or not _same_file(fd, path):
            os.close(fd)
            continue
        if not is_owner:  # died before it made anything
            DeadOwner(path.name, [], path, fd).forget()
            continue
        yield DeadOwner(path.name.removesuffix(LOCK_SUFFIX), _read_places(fd), path, fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file (a sweeper may have removed it after open)."""
    try:
        return os.path.samestat(os.fstat(fd), path.stat())
    except FileNotFoundError:
        return False


# Descriptors whose shared locks mark directories as in use by this process (never closed:
# the lock must last as long as the process).
_held_directories: dict[str, int] = {}


def hold_directory(path: str | os.PathLike[str]) -> None:
    """Mark ``path`` as in use by this process and its forked children, for their lifetime."""
    key = os.path.realpath(path)
    if key in _held_directories:
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not _same_file(fd, Path(key)):  # removed by a sweeper while we waited for the lock
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "The directory was removed as unused", key)
    _held_directories[key] = fd


def make_owned_tempdir(prefix: str) -> str:
    """A new temporary directory held by this process (see ``remove_dead_tempdirs``)."""
    path = tempfile.mkdtemp(prefix=prefix)
    hold_directory(path)
    return path


def remove_dead_tempdirs(prefix: str) -> list[Path]:
    """Remove temporary directories named ``<prefix>*`` that no live process holds.

    Returns what was removed. A directory is removed only while this process holds its
    exclusive lock, so a server that starts using one at that moment cannot lose it silently:
    its ``hold_directory`` waits until the removal is over and then raises.
    """
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                log.warning("Could not inspect %s: %s", path, e)
            continue
        try:
            if _try_lock(fd):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        finally:
            os.close(fd)
    if removed:
        log.info("Removed %d directory(ies) of dead servers: %s", len(removed), removed)
    return removed

"""A per-run tmpfs ("memfs"): the only writable place a sandboxed program gets.

Each run mounts a fresh, size-limited tmpfs under the memfs root, binds its ``home`` into the
jail as ``/home``, and unmounts it afterwards, so runs never see each other's files and a full
disk in one run is only that run's problem.
"""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from uuid import uuid4

from snekbox import layout
from snekbox.limits.timed import time_limit
from snekbox.snekio import filesystem
from snekbox.snekio.attachment import DIR_MODE, FileAttachment
from snekbox.snekio.collect import Collection, collect_output_files

__all__ = ("DEFAULT_MEMFS_ROOT", "MEMFS_ROOT_ENV", "MemFS", "memfs_root")

log = logging.getLogger(__name__)

DEFAULT_MEMFS_ROOT = Path(layout.MEMFS_ROOT)
MEMFS_ROOT_ENV = "SNEKBOX_MEMFS_ROOT"


def memfs_root() -> Path:
    """Where runs' memfs instances go: ``$SNEKBOX_MEMFS_ROOT``, read when asked, or /memfs."""
    return Path(os.environ.get(MEMFS_ROOT_ENV) or DEFAULT_MEMFS_ROOT)


COLLECTION_TIMEOUT_MESSAGE = "Exceeded time limit while parsing attachments"


class MemFS:
    """One mounted tmpfs and its ``home`` and ``output`` directories.

    The tmpfs is mounted when the instance is constructed, so holding a ``MemFS`` means holding
    a mount; ``cleanup()`` (or leaving a ``with`` block) unmounts it and removes its directory.
    An instance collected without cleanup warns with ``ResourceWarning`` and cleans up, so a
    forgotten instance costs a warning, not a tmpfs pinned in RAM.
    """

    def __init__(
        self,
        instance_size: int,
        root_dir: str | Path = DEFAULT_MEMFS_ROOT,
        home: str = "home",
        output: str = "home",
    ) -> None:
        self.instance_size = instance_size
        self.root_dir = Path(root_dir)
        self.home_name = home
        self.output_name = output
        self._input_mtimes: dict[str, int] = {}
        self.path = self.root_dir / str(uuid4())
        try:
            # mkdir is the claim: of two instances given the same name, exactly one gets it,
            # and the loser never touches the winner's mount.
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            raise RuntimeError(f"The memfs directory {self.path} already exists") from None
        self._finalizer = weakref.finalize(self, _release, self.path, True, os.getpid())
        try:
            filesystem.mount(
                "tmpfs",
                self.path,
                "tmpfs",
                flags=(filesystem.MountFlag.NOSUID, filesystem.MountFlag.NODEV),
                size=instance_size,
                mode="0755",
            )
            for directory in {self.home, self.output}:
                directory.mkdir(parents=True, exist_ok=True)
                os.chmod(directory, DIR_MODE)
        except BaseException:
            self.cleanup()
            raise

    @property
    def home(self) -> Path:
        """The directory bound at ``/home`` inside the jail."""
        return self.path / self.home_name

    @property
    def output(self) -> Path:
        """The directory whose files are returned after the run."""
        return self.path / self.output_name

    def __enter__(self) -> MemFS:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Unmount and remove the instance; safe to call more than once."""
        if self._finalizer.detach() is not None:
            _release(self.path, False, os.getpid())

    def write_inputs(self, files: Iterable[FileAttachment]) -> None:
        """Write request files into ``home`` and remember their mtimes.

        Raises ``OSError`` (with ``filename`` set to the attachment's path) when one cannot be
        written, e.g. a file whose path is an existing directory.
        """
        for file in files:
            try:
                target = file.save_to(self.home)
            except OSError as e:
                e.filename = file.path
                raise
            relative = target.relative_to(self.output).as_posix()
            self._input_mtimes[relative] = target.stat().st_mtime_ns

    def collect(self, limit: int, pattern: str, timeout: float) -> Collection:
        """The new and changed files in ``output`` (see ``collect_output_files``).

        Raises ``FileParsingError`` or ``TimeoutError`` with a user-facing message.
        """
        with time_limit(timeout, COLLECTION_TIMEOUT_MESSAGE) as deadline:
            return collect_output_files(
                self.output,
                self.path,
                pattern=pattern,
                limit=limit,
                byte_budget=self.instance_size,
                unchanged=self._input_mtimes,
                deadline=deadline,
            )


def _release(path: Path, warn: bool, owner_pid: int) -> None:
    """Unmount ``path`` if it is mounted and remove the directory (a finalizer: no ``self``).

    Only the process that mounted it does: a forked child that inherits an instance (and runs
    its finalizer at exit) must not unmount its parent's run.
    """
    if os.getpid() != owner_pid:
        return
    if warn:
        warnings.warn(f"MemFS {path} was not cleaned up", ResourceWarning, stacklevel=2)
    if os.path.ismount(path):
        filesystem.unmount(path)
    try:
        path.rmdir()
    except FileNotFoundError:
        pass

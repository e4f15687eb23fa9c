"""The whole test suite passes inside the DEV image too, not only natively.

As compose runs it (and as the README's `docker compose exec snekbox pytest` does): this
checkout mounted over /snekbox, a volume filled from the image's user_base, the image's
/venv, /snekbin and NsJail. IPC is private, not none: the slot tests share semaphores
between processes through /dev/shm.
"""

from __future__ import annotations

from tests.image import engine


def test_whole_suite_passes_inside_the_dev_image(dev_image: str) -> None:
    volume = f"{engine.NAME_PREFIX}-suite-user-base"
    engine.podman("volume", "rm", "--force", volume)
    try:
        with engine.checkout_user_base_mount_point():
            result = engine.podman(
                "run", "--rm", "--privileged", "--ipc=private",
                "-v", f"{engine.REPO}:/snekbox",
                "-v", f"{volume}:/snekbox/user_base",
                "-e", "PYTHONDONTWRITEBYTECODE=1",
                *engine.pip_ca_run_args(),
                "--entrypoint", "python",
                dev_image, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                check=False, timeout=2400,
            )  # fmt: skip
    finally:
        engine.podman("volume", "rm", "--force", volume)
    output = (result.stdout + result.stderr)[-12000:]
    assert result.returncode == 0, output
    assert " passed" in output and " failed" not in output, output

"""The test suite passes inside the DEV image too (the image compose runs), not only natively.

The image holds no tests: this checkout's tests/ and scripts/ are mounted read-only over the
image's /snekbox, whose snekbox/, config/, /snekbin and user_base are the image's own.
"""

from __future__ import annotations

from tests.image import engine


def run_pytest_in(image: str, *pytest_args: str) -> tuple[int, str]:
    result = engine.podman(
        "run",
        "--rm",
        "--privileged",
        "--ipc=none",
        "-v",
        f"{engine.REPO / 'tests'}:/snekbox/tests:ro",
        "-v",
        f"{engine.REPO / 'scripts'}:/snekbox/scripts:ro",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        *engine.pip_ca_run_args(),
        "--entrypoint",
        "python",
        image,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        *pytest_args,
        check=False,
        timeout=2400,
    )
    return result.returncode, (result.stdout + result.stderr)[-12000:]


def test_provisioning_tests_pass_inside_the_dev_image(dev_image: str) -> None:
    status, output = run_pytest_in(dev_image, "tests/provision")
    assert status == 0, output

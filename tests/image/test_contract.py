"""What the image's files must agree on, where running them cannot show it in a test's time."""

from __future__ import annotations

import re

import yaml

from tests.image import engine

# Gunicorn stops a worker this long after its graceful timeout; the engine needs a moment more.
STOP_MARGIN = 5


def graceful_timeout(image: str) -> int:
    """config/gunicorn.conf.py's graceful_timeout, as the image's server computes it."""
    code = "import runpy; print(runpy.run_path('config/gunicorn.conf.py')['graceful_timeout'])"
    result = engine.podman("run", "--rm", "--entrypoint", "python", image, "-c", code)
    return int(result.stdout.strip().splitlines()[-1])


def test_stop_grace_periods_cover_gunicorns_graceful_timeout(production_image: str) -> None:
    needed = graceful_timeout(production_image) + STOP_MARGIN
    compose = yaml.safe_load((engine.REPO / "docker-compose.yml").read_text())
    grace = compose["services"]["snekbox"]["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace), grace
    assert int(grace[:-1]) >= needed, (grace, needed)
    deployment = next(
        doc
        for doc in yaml.safe_load_all((engine.REPO / "deployment.yaml").read_text())
        if doc["kind"] == "Deployment"
    )
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


def test_readmes_volume_is_not_composes_volume() -> None:
    """compose names its volume <project>_user_base; a same-named manual one would be reused."""
    compose = yaml.safe_load((engine.REPO / "docker-compose.yml").read_text())
    composes = {f"{compose['name']}_{name}" for name in compose["volumes"]}
    readme = (engine.REPO / "README.md").read_text()
    manual = set(re.findall(r"docker volume create (\S+)", readme))
    assert manual, "the README creates no volume"
    assert not manual & composes, manual & composes

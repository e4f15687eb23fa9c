#!/usr/bin/env python3
r"""Write the nginx config of a front for several snekbox nodes, from config/nginx/.

The nodes' limits come from the same SNEKBOX_* variables the nodes read (snekbox's own
settings classes, with their defaults), so run this with the nodes' environment:

    .venv/bin/python scripts/render_nginx_conf.py --listen 8060 --node 10.0.0.11:8060 \
        --node 10.0.0.12:8060 > /etc/nginx/conf.d/snekbox.conf

scripts/install_nginx.sh installs Debian's nginx when it is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snekbox.services.settings import ApiSettings  # noqa: E402 (after the path)
from snekbox.serving.settings import ServingSettings  # noqa: E402

TEMPLATE = REPO / "config" / "nginx" / "snekbox.conf.template"
# Seconds past the queue timeout and the longest time limit that a node may still take to
# answer: NsJail's kill of a run at its limit, reaping, and collecting up to 100 files (5 s).
READ_TIMEOUT_MARGIN = 15
# Seconds a node that refused a connection is left out before nginx tries it again.
DEFAULT_FAIL_TIMEOUT = 5
FIELD = re.compile(r"\$\{(SNEKBOX_[A-Z_]+)\}")


def node_lines(nodes: Sequence[str], fail_timeout: int) -> str:
    """One `server` line per node; the first refused connection takes it out for a while."""
    return "\n".join(
        f"    server {node} max_fails=1 fail_timeout={fail_timeout}s;" for node in nodes
    )


def render(
    listen: str,
    nodes: Sequence[str],
    env: Mapping[str, str] | None = None,
    fail_timeout: int = DEFAULT_FAIL_TIMEOUT,
) -> str:
    """The template with every field filled in from the nodes' settings in `env`."""
    if not nodes:
        raise ValueError("the front needs at least one node")
    api = ApiSettings.from_env(env)
    serving = ServingSettings.from_env(env)
    fields = {
        "SNEKBOX_LISTEN": listen,
        "SNEKBOX_NODES": node_lines(nodes, fail_timeout),
        "SNEKBOX_HEAD_TIMEOUT": str(math.ceil(serving.head_timeout)),
        "SNEKBOX_BODY_TIMEOUT": str(math.ceil(api.body_timeout)),
        "SNEKBOX_MAX_BODY_SIZE": str(api.max_body_size),
        "SNEKBOX_PROXY_READ_TIMEOUT": str(
            math.ceil(api.queue_timeout + api.max_limits.time + READ_TIMEOUT_MARGIN)
        ),
    }
    template = TEMPLATE.read_text()
    unknown = set(FIELD.findall(template)) - fields.keys()
    if unknown:
        raise ValueError(f"{TEMPLATE} has fields this script does not fill: {sorted(unknown)}")
    return FIELD.sub(lambda match: fields[match.group(1)], template)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--listen", required=True, help="nginx's `listen` value, e.g. 8060 or 127.0.0.1:8060"
    )
    parser.add_argument(
        "--node", action="append", required=True, help="a node's host:port (repeat per node)"
    )
    parser.add_argument("--fail-timeout", type=int, default=DEFAULT_FAIL_TIMEOUT)
    parser.add_argument("--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render(args.listen, args.node, os.environ, args.fail_timeout)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

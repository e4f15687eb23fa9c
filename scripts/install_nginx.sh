#!/usr/bin/env bash
# Install Debian's nginx (the front of the multi-node setup and of its test) when it is missing.
#
# Idempotent: does nothing when an nginx binary is already installed. `make test` runs it, since
# tests/integration/test_scaling_out.py runs a real nginx in front of three snekbox nodes.
#
# Debian starts a package's service when it is installed; here that would be the default site on
# port 80, which the test does not use and which may already be taken (the install would then
# fail). So unless the host already has a policy that forbids starting services (container
# images usually do), one is put in place for the duration of the install only.
set -euo pipefail

NGINX="${NGINX:-/usr/sbin/nginx}"
PACKAGE="${NGINX_PACKAGE:-nginx-light}"
POLICY=/usr/sbin/policy-rc.d

if [[ -x "$NGINX" ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_nginx.sh: $NGINX is missing and installing $PACKAGE needs root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "install_nginx.sh: $NGINX is missing and this host has no apt-get; install nginx" \
        "(1.22 or later) with its package manager" >&2
    exit 1
fi

if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# Temporary: scripts/install_nginx.sh installs nginx without starting it.\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt_get=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
# A fresh image has no package lists; an old list may name versions the mirror dropped.
if ! "${apt_get[@]}" install --no-install-recommends "$PACKAGE"; then
    "${apt_get[@]}" update
    "${apt_get[@]}" install --no-install-recommends "$PACKAGE"
fi
"$NGINX" -v

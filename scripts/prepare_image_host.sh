#!/usr/bin/env bash
# Prepare a Debian host to build and run the snekbox image with no registry and no python.org:
# `make test-image` runs this first. Every step is skipped when already done.
#
#   1. podman, buildah, debootstrap and runc from Debian, and /etc/containers/containers.conf
#      with the two settings such a VM needs (see write_containers_conf).
#   2. The base image the Dockerfile's FROM names (debian:bookworm-slim), made with debootstrap
#      from the mirror this host's apt sources name, when the engine does not have it.
#   3. The CPython 3.13 source tarball from Debian's source package (trixie), its upstream
#      OpenPGP signature checked with the key the package ships, cached in $SOURCE_CACHE.
#
# It prints, last, the build arguments for that tarball (NAME=value, one a line), which
# tests/image reads. Needs root.
#
# Environment: SNEKBOX_IMAGE_CACHE (default /var/cache/snekbox/image): where the tarball and
# the private apt state for Debian's sources live, outside the repository.
set -euo pipefail

die() {
    echo "prepare_image_host.sh: $*" >&2
    exit 1
}
say() {
    echo "prepare_image_host.sh: $*" >&2
}

[[ $(id -u) -eq 0 ]] || die "needs root (it installs packages and runs podman as root)."

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SNEKBOX_IMAGE_CACHE:-/var/cache/snekbox/image}
source_cache=$cache/python-sources
containers_conf=/etc/containers/containers.conf
conf_marker="# Written by snekbox's scripts/prepare_image_host.sh."

# --- 1. the engine ------------------------------------------------------------------------------

install_engine() {
    local missing=()
    for package in podman buildah debootstrap runc; do
        dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null \
            | grep --quiet 'install ok installed' || missing+=("$package")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "installing ${missing[*]}"
        apt-get update --quiet
        DEBIAN_FRONTEND=noninteractive apt-get install --yes --quiet --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

# crun (podman's default runtime in Debian) refuses a hybrid cgroup v1/v2 layout ("cgroups in
# hybrid mode not supported"), and the default RLIMIT_NOFILE/NPROC containers ask for exceed
# what such a VM grants (runtimes then fail in setrlimit).
write_containers_conf() {
    local wanted
    wanted="$conf_marker
[containers]
default_ulimits = [
  \"nofile=20000:20000\",
  \"nproc=32768:32768\",
]

[engine]
runtime = \"runc\""
    if [[ -e $containers_conf ]] && [[ "$(cat "$containers_conf")" == "$wanted" ]]; then
        return
    fi
    if [[ -e $containers_conf ]] && ! grep --quiet --fixed-strings "$conf_marker" "$containers_conf"; then
        die "$containers_conf exists and was not written here; add to it:
$wanted"
    fi
    say "writing $containers_conf"
    mkdir -p "$(dirname "$containers_conf")"
    printf '%s\n' "$wanted" >"$containers_conf"
}

# --- 2. the base image --------------------------------------------------------------------------

# The first Debian mirror of this host's apt sources (deb822 or one-line format).
debian_mirror() {
    local uri
    uri=$(
        {
            grep --no-filename --extended-regexp '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
                | awk '{print $2}'
            grep --no-filename --extended-regexp '^deb ' /etc/apt/sources.list 2>/dev/null \
                | awk '{print ($2 ~ /^\[/) ? $3 : $2}'
        } | grep --extended-regexp '/debian/?$' | head -n 1
    )
    [[ -n $uri ]] || die "no Debian mirror (a URI ending in /debian) in the apt sources."
    echo "${uri%/}"
}

# FROM ${DEBIAN_IMAGE}: the default of that ARG, as the engine names it without a registry.
base_image_name() {
    local name
    name=$(sed --quiet --regexp-extended 's/^ARG DEBIAN_IMAGE=(.+)$/\1/p' "$repo/Dockerfile")
    [[ -n $name ]] || die "the Dockerfile has no 'ARG DEBIAN_IMAGE=...' default."
    [[ $name == */* ]] || name=library/$name
    echo "docker.io/$name"
}

make_base_image() {
    local image suite mirror rootfs
    image=$(base_image_name)
    if podman image exists "$image"; then
        return
    fi
    suite=${image##*:}
    suite=${suite%-slim}
    mirror=$(debian_mirror)
    say "making $image with debootstrap ($suite from $mirror)"
    rootfs=$(mktemp -d /var/tmp/snekbox-rootfs.XXXXXX)
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" RETURN
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >&2
    # As in Debian's own images: the suite, its updates and security, no caches or lists.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    tar --numeric-owner --xattrs --directory "$rootfs" --create . \
        | podman import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            - "$image" >&2
}

# --- 3. CPython's source from Debian ------------------------------------------------------------

# apt with a state of its own, so the host's sources and lists stay as they are.
private_apt() {
    apt-get \
        -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$cache/apt/sources.list.d" \
        -o Dir::State::Lists="$cache/apt/lists" \
        -o Dir::Cache="$cache/apt/cache" \
        "$@"
}

fetch_python_source() {
    local package=python3.13 mirror workdir orig signature key version
    mkdir -p "$source_cache"
    if compgen -G "$source_cache/Python-3.13.*.tar.xz" >/dev/null; then
        return
    fi
    mirror=$(debian_mirror)
    mkdir -p "$cache/apt/sources.list.d" "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
    cat >"$cache/apt/sources.list.d/trixie-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    say "downloading Debian's $package source package (trixie)"
    private_apt update --quiet >&2
    workdir=$(mktemp -d /var/tmp/snekbox-python-source.XXXXXX)
    chmod 755 "$workdir" # apt downloads as _apt where it can
    # shellcheck disable=SC2064
    trap "rm -rf '$workdir'" RETURN
    (cd "$workdir" && private_apt source --download-only --quiet "$package" >&2)

    # apt checked the .dsc's files against the signed Sources index; the upstream tarball's
    # own signature is checked with the key the (so authenticated) Debian packaging ships.
    orig=$(compgen -G "$workdir/${package}_*.orig.tar.xz" | head -n 1)
    [[ -n $orig ]] || die "the $package source package has no .orig.tar.xz."
    signature=$orig.asc
    [[ -f $signature ]] || die "the $package source package has no upstream signature ($signature)."
    tar --extract --file "$(compgen -G "$workdir/${package}_*.debian.tar.*" | head -n 1)" \
        --directory "$workdir" debian/upstream/signing-key.asc
    key=$workdir/debian/upstream/signing-key.asc
    mkdir -m 700 "$workdir/gnupg"
    gpg --homedir "$workdir/gnupg" --batch --quiet --import "$key" 2>/dev/null
    gpg --homedir "$workdir/gnupg" --batch --verify "$signature" "$orig" >&2 \
        || die "the signature of $(basename "$orig") does not verify with $package's upstream key."

    version=$(basename "$orig")
    version=${version#"${package}_"}
    version=${version%.orig.tar.xz}
    [[ $version =~ ^3\.13\.[0-9]+$ ]] || die "unexpected upstream version '$version'."
    cp "$orig" "$source_cache/Python-$version.tar.xz.partial"
    mv "$source_cache/Python-$version.tar.xz.partial" "$source_cache/Python-$version.tar.xz"
    say "verified and cached $source_cache/Python-$version.tar.xz"
}

# The build arguments for the cached tarball: the image's 3.13 and, as a stand-in for 3.14's
# free-threaded build (no 3.14 source is reachable here), a free-threaded 3.13.
print_build_args() {
    local tarball version sha256
    tarball=$(compgen -G "$source_cache/Python-3.13.*.tar.xz" | sort --version-sort | tail -n 1)
    version=$(basename "$tarball" .tar.xz)
    version=${version#Python-}
    sha256=$(sha256sum "$tarball" | cut -d ' ' -f 1)
    echo "SOURCE_DIR=$source_cache"
    echo "PYTHON_3_13_VERSION=$version"
    echo "PYTHON_3_13_SHA256=$sha256"
    echo "PYTHON_3_13_URL=file:///python-sources/Python-$version.tar.xz"
}

install_engine
write_containers_conf
make_base_image
fetch_python_source
print_build_args

#!/usr/bin/env bash
# Build one CPython from its official source tarball into a prefix of its own, e.g.
# /snekbin/python/3.14, so sandboxed code can pick it with `executable_path`.
#
# The Dockerfile's builder stages run this, and an operator runs the same command to add an
# interpreter to a native host (the build dependencies are listed in the README).
#
#   scripts/build_python.sh VERSION SHA256 PREFIX [CONFIGURE_OPTION...]
#   scripts/build_python.sh 3.14.8 c2215904...ce73 /snekbin/python/3.14t --disable-gil
#
# Environment:
#   PYTHON_SOURCE_TARBALL  build from this local tarball instead of downloading it
#   PYTHON_SOURCE_URL      download the tarball from this URL instead of python.org (a mirror, or
#                          file:///path); the checksum is verified all the same either way
#   PYTHON_OPTIMIZE        configure options for speed; default "--enable-optimizations --with-lto"
#                          (set it empty for a quick, slower-running development build)
#   JOBS                   parallel make jobs; default: the number of CPUs
set -euo pipefail

die() {
    echo "build_python.sh: $*" >&2
    exit 1
}

[[ $# -ge 3 ]] || die "usage: $0 VERSION SHA256 PREFIX [CONFIGURE_OPTION...]"
version=$1
sha256=$2
prefix=$3
shift 3

[[ $version =~ ^3\.[0-9]+\.[0-9]+([a-z]+[0-9]+)?$ ]] || die "'$version' is not a CPython version such as 3.14.8."
[[ $sha256 =~ ^[0-9a-f]{64}$ ]] || die "'$sha256' is not a SHA-256 hex digest."
[[ $prefix == /* ]] || die "the prefix '$prefix' must be an absolute path."
if [[ -e $prefix/bin/python ]]; then
    die "$prefix already holds an interpreter; remove it first to rebuild."
fi

minor=${version%.*}         # 3.14.8 -> 3.14
release=${version%%[a-z]*}  # 3.15.0rc1 -> 3.15.0 (the download folder)
optimize=${PYTHON_OPTIMIZE---enable-optimizations --with-lto}
jobs=${JOBS:-$(nproc)}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
tarball=$workdir/Python-$version.tar.xz

if [[ -n ${PYTHON_SOURCE_TARBALL:-} ]]; then
    cp -- "$PYTHON_SOURCE_TARBALL" "$tarball"
else
    url=${PYTHON_SOURCE_URL:-https://www.python.org/ftp/python/$release/Python-$version.tar.xz}
    case $url in
        file://*) cp -- "${url#file://}" "$tarball" ;; # no curl needed for a local mirror
        *) curl --fail --silent --show-error --location --retry 3 --output "$tarball" "$url" ;;
    esac
fi
# A pinned digest, not a signature: the build is reproducible only if the bytes are the same.
echo "$sha256  $tarball" | sha256sum --check --strict --quiet - \
    || die "Python-$version.tar.xz does not match the SHA-256 $sha256."

mkdir "$workdir/src"
tar --extract --file "$tarball" --directory "$workdir/src" --strip-components=1
cd "$workdir/src"

# A static libpython (no --enable-shared): the interpreter needs no rpath or ld.so.conf entry
# to start inside the jail, where only its own prefix is mounted under /snekbin. No pip in its
# site-packages either: sandboxed code sees only the stdlib and user_base, and provisioning
# installs the eval packages with a pinned pip of its own. Symbols are stripped at link time.
# shellcheck disable=SC2086  # $optimize is a list of options on purpose
./configure --prefix="$prefix" --without-ensurepip $optimize "$@" \
    LDFLAGS="${LDFLAGS:-} -Wl,--strip-all"
make --jobs="$jobs"
make install

# The test suite and the static library are never used at run time and double the size; the
# compiled .pyc files stay, because the jail's read-only mount could not cache them later.
find "$prefix/lib" -depth \
    \( \( -type d \( -name test -o -name tests -o -name idle_test \) \) \
    -o \( -type f -name 'libpython*.a' \) \) \
    -exec rm -rf '{}' +

# Every interpreter is started as <prefix>/bin/python; a free-threaded build names its binary
# python3.Xt, so prefer that one when it exists.
cd "$prefix/bin"
for candidate in "python${minor}t" "python${minor}"; do
    if [[ -x $candidate ]]; then
        ln -sfn "$candidate" python
        break
    fi
done
[[ -x python ]] || die "make install left no python$minor executable in $prefix/bin."

# configure skips an extension whose library headers are missing without failing, so prove the
# modules that sandboxed code expects were built.
modules="_bz2 _ctypes _curses _decimal _gdbm _hashlib _lzma _sqlite3 _ssl _uuid pyexpat readline zlib"
if [[ $minor != 3.1[0-3] ]]; then
    modules="$modules _zstd"
fi
for module in $modules; do
    "$prefix/bin/python" -c "import $module" || die "the module $module was not built; is its -dev package installed?"
done
# The special builds must be what their name promises.
for option in "$@"; do
    case $option in
        --disable-gil) check="import sys; assert not sys._is_gil_enabled(), 'the GIL is on'" ;;
        --enable-experimental-jit) check="import sys; assert sys._jit.is_enabled(), 'no JIT'" ;;
        *) continue ;;
    esac
    "$prefix/bin/python" -c "$check" || die "$prefix is not the build $option asked for."
done
"$prefix/bin/python" -VV

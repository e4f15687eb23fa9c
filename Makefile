# Everyday commands for a native (no Docker) snekbox; see README.md, "Setup (native, no Docker)".
# Every target is idempotent: the venv is (re)installed only when a requirements file changed
# (stamps in .venv/), and provisioning skips what is already in place.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PIP := $(VENV_PYTHON) -m pip --disable-pip-version-check --no-input
RUNTIME_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP := $(VENV)/.stamp-dev
PYTEST_ARGS ?=
PROVISION_ARGS ?=
BENCH_ARGS ?=

# The venv's python is passed unresolved: resolving its symlink would leave the venv.
PROVISION = $(VENV_PYTHON) scripts/provision.py --venv-python $(VENV_PYTHON) $(PROVISION_ARGS)

.PHONY: help setup setup-dev serve test test-image lint fmt protoc bench clean check-root install-nginx

help:
	@echo "sudo make serve      install, provision and run the server on port 8060"
	@echo "sudo make test       install (with dev tools), provision and run the whole test suite"
	@echo "sudo make test-image build the image with podman and run it, with compose and as a pod"
	@echo "     make lint|fmt   ruff format + ruff check (fmt rewrites files)"
	@echo "sudo make setup      only install and provision (setup-dev: with dev tools)"
	@echo "     make protoc     regenerate snekbox/config_pb2.py from config/config.proto"
	@echo "sudo make bench      run scripts/bench.py"
	@echo "     make clean      remove the venv and caches (not /snekbin, /snekbox or /memfs)"

check-root:
	@if [[ "$$(id -u)" -ne 0 ]]; then \
		echo "snekbox needs root: namespaces, mounts and cgroups for NsJail, and provisioning" \
			"writes /snekbin, /snekbox/user_base and /memfs. Run: sudo make $(MAKECMDGOALS)" >&2; \
		exit 1; \
	fi

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements/requirements.txt pyproject.toml | $(VENV_PYTHON)
	$(PIP) install --requirement requirements/requirements.txt
	$(PIP) install --no-deps --editable .
	touch $@

$(DEV_STAMP): requirements/dev.txt requirements/sentry.txt $(RUNTIME_STAMP)
	$(PIP) install --requirement requirements/dev.txt
	touch $@

setup: check-root $(RUNTIME_STAMP)
	$(PROVISION)

setup-dev: check-root $(DEV_STAMP)
	$(PROVISION)

serve: check-root setup
	$(VENV)/bin/gunicorn -c config/gunicorn.conf.py

# The multi-node test runs a real nginx in front of the nodes (Debian's package, installed once).
install-nginx: check-root
	scripts/install_nginx.sh

# pytest exits 5 when it collected no tests: say so, since that must never pass for green.
test: check-root setup-dev install-nginx
	@status=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || status=$$?; \
	if [[ $$status -eq 5 ]]; then \
		echo "make test: pytest collected no tests (exit 5); that is a failure" >&2; \
	fi; \
	exit $$status

# The image suite (tests/image) installs podman if needed, builds the image from the Dockerfile
# (cached layers after the first time) and tests it running; `make test` leaves it out.
test-image: check-root setup-dev
	@status=0; $(VENV)/bin/pytest tests/image $(PYTEST_ARGS) || status=$$?; \
	if [[ $$status -eq 5 ]]; then \
		echo "make test-image: pytest collected no tests (exit 5); that is a failure" >&2; \
	fi; \
	exit $$status

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

fmt: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

protoc: $(DEV_STAMP)
	PYTHON=$(VENV_PYTHON) scripts/protoc.sh

bench: check-root setup
	$(VENV_PYTHON) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

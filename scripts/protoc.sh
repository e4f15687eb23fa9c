#!/usr/bin/env bash
# Regenerate snekbox/config_pb2.py from config/config.proto.
# Needs the dev dependencies (grpcio-tools): `make setup-dev` installs them into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
"$python" -m grpc_tools.protoc --proto_path=config --python_out=snekbox --pyi_out=snekbox config/config.proto
"$python" -m ruff format snekbox/config_pb2.py snekbox/config_pb2.pyi >/dev/null 2>&1 || true

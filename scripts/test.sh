#!/usr/bin/env bash
# Install everything the tests need (apt and pip) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
exec .venv/bin/python -m pytest -q "$@"

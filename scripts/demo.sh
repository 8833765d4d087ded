#!/usr/bin/env bash
# Set up iipy and serve a generated demo image over HTTP (prints the URL to open).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/iipy demo "$@"

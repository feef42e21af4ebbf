#!/usr/bin/env bash
# Make pretrained/demo and pretrained/anomaly-4 (see scripts/make_pretrained.py); needs scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. exec .venv/bin/python scripts/make_pretrained.py "$@"

#!/usr/bin/env bash
# Make pretrained/ (see scripts/make_pretrained.py): the demo is trained, the rest packaged from experiments/ runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. exec .venv/bin/python scripts/make_pretrained.py "$@"

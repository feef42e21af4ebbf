#!/usr/bin/env bash
# Make pretrained/ (see scripts/make_pretrained.py): the demo is trained, the rest packaged from experiments/ runs.
# Run as a module from the repository root, so that `lvm` and `experiments` import without installing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m scripts.make_pretrained "$@"

#!/usr/bin/env bash
# Every CUDA path in one run, with a markdown report (default benchmarks/gpu-check.md); CPU sizes without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m scripts.gpu_check --out "${1:-benchmarks/gpu-check.md}"

#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with every package, MNIST
# cached in the data directory ($LVM_DATA_DIR, default ~/.cache/lvm), and
# Fashion-MNIST from Debian's dataset-fashion-mnist where apt-get can be used.
# Safe to run again: every step skips what is already there.
#
# `bash scripts/setup.sh --cpu` (or LVM_TORCH=cpu) takes torch and torchvision from PyTorch's CPU-only wheels
# first: a laptop without an NVIDIA GPU (a lecture hall's network) downloads about 0.2 GB instead of the
# several GB of the CUDA build that pip picks on Linux x86_64. The versions are requirements.txt's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --cpu ] && LVM_TORCH=cpu
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "${LVM_TORCH:-}" = cpu ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --index-url https://download.pytorch.org/whl/cpu $(grep -oE '^torch(vision)?==[^ ]+' requirements.txt)
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -m lvm fetch mnist
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST will need torchvision's download"
fi

#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with every package, MNIST
# cached in the data directory ($LVM_DATA_DIR, default ~/.cache/lvm), and
# Fashion-MNIST from Debian's dataset-fashion-mnist where apt-get can be used.
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -m lvm fetch mnist
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST will need torchvision's download"
fi

"""What every maker of pretrained/ shares: the repository root, commands run as the command line, and the
manifest written beside each model."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from lvm import checkpoint
from lvm.images import preprocessing_for
from lvm.pretrained import sha256

ROOT = Path(__file__).resolve().parent.parent


def rel(p: Path) -> str:
    """`p` relative to the repository root when inside it (commands are run from there), else as given."""
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def run_lvm(args: list[str]) -> tuple[dict, str]:
    """Run ``python -m lvm ARGS`` (ARGS include --json) from the repo: its JSON result and the command as recorded."""
    print("+ python -m lvm", shlex.join(args), file=sys.stderr, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # eval and anomaly scoring too: one thread per process
    out = subprocess.run([sys.executable, "-m", "lvm", *args], cwd=ROOT, check=True, stdout=subprocess.PIPE,
                         text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1]), shlex.join(["python", "-m", "lvm", *args])


def write_manifest(out: Path, title: str, commands: list[str], result: dict, files: dict[str, str],
              seconds: float, **extra) -> None:
    """OUT/manifest.json: what the folder holds, how it was made, how images are prepared for it ("preprocess",
    what `lvm score` and the app apply) and the sha256 of each file."""
    cfg, _, _ = checkpoint.load_model(out / files["checkpoint"])
    state = checkpoint.load(out / files["checkpoint"])
    manifest = {
        "title": title, "data": state["config"]["data"], "config": state["config"],
        "metrics": result, "commands": commands, "kind": "generator",
        "seconds": round(seconds, 1), "torch": torch.__version__,
        "preprocess": preprocessing_for(cfg.data.name, cfg.model.image_size, cfg.model.channels), **extra,
        "files": {k: {"path": p, "sha256": sha256(out / p)} for k, p in files.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out / 'manifest.json'} ({cfg.method}, d = {cfg.model.latent_dim})", file=sys.stderr)

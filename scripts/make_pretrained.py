"""Make the models in pretrained/ with the command line, each with a manifest.json.

    bash scripts/make_pretrained.sh            # both models
    bash scripts/make_pretrained.sh demo       # only the teaching demo

demo: MNIST digits 0 and 1, d = 2, MLP generator (the paper's Fig. 2 setting).
anomaly-4: the MEG split of MNIST with digit 4 held out, d = 16, conv generator,
plus the anomaly scores of a seeded subset of its test split (test_scores.npz),
which the app's histogram and precision-recall curve read.

With the 'fast' OT solver (when lvm has it) every training image is used; with
the exact solver the data are cut to what it can match (--limit).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lvm import checkpoint, data as datasets, metrics
from lvm.config import OT_SOLVERS
from lvm.pretrained import sha256

ROOT = Path(__file__).resolve().parent.parent

PY = str(ROOT / ".venv" / "bin" / "python")


def _run(args: list[str]) -> dict:
    """Run ``python -m lvm ARGS --json`` in the repo; its JSON result."""
    cmd = [PY, "-m", "lvm", *args, "--json"]
    print("+", shlex.join(cmd), file=sys.stderr, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # eval and anomaly scoring too: one thread per process
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _solver_flags(solver: str, limit: int) -> list[str]:
    return ["--ot-solver", solver] + (["--limit", str(limit)] if solver == "exact" else [])


def _manifest(out: Path, title: str, commands: list[list[str]], result: dict, files: dict[str, str],
              seconds: float, **extra) -> None:
    cfg, _, _ = checkpoint.load_model(out / files["checkpoint"])
    state = checkpoint.load(out / files["checkpoint"])
    manifest = {
        "title": title, "data": state["config"]["data"], "config": state["config"],
        "metrics": result, "commands": [shlex.join(["python", "-m", "lvm", *c]) for c in commands],
        "seconds": round(seconds, 1), "torch": torch.__version__, **extra,
        "files": {k: {"path": p, "sha256": sha256(out / p)} for k, p in files.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out / 'manifest.json'} ({cfg.method}, d = {cfg.model.latent_dim})", file=sys.stderr)


def write_preview(out: Path, n: int = 2000, n_samples: int = 36) -> str:
    """preview.npz: a latent subsample and prior samples g(z) (uint8), which the landing view reads without torch."""
    cfg, gen, state = checkpoint.load_model(out / "checkpoint.pt")
    z = state["latents"].numpy()
    z = z[np.random.RandomState(0).permutation(len(z))[:n]].astype(np.float32)
    with torch.no_grad():
        x = gen(torch.randn(n_samples, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
    np.savez_compressed(out / "preview.npz", latents=z, samples=(x.numpy() * 255).round().astype(np.uint8))
    return "preview.npz"


def demo(a: argparse.Namespace) -> None:
    out = ROOT / "pretrained" / "demo"
    t0 = time.perf_counter()
    train = ["train", "--data", "mnist", "--classes", "0,1", "--latent-dim", "2", "--alpha", "0.5",
             "--ot-every", str(a.demo_every), "--epochs", str(a.demo_epochs), "--seed", "0", "--threads", "1",
             "--checkpoint-every", "0", *_solver_flags(a.solver, 2000), "--out", str(out.relative_to(ROOT))]
    result = _run(train)
    ev = ["eval", str((out / "checkpoint.pt").relative_to(ROOT)), "--n", "2000"]
    result.update({k: v for k, v in _run(ev).items() if k != "checkpoint"})
    result.pop("checkpoint", None)
    _manifest(out, "Teaching demo: MNIST 0 and 1, d = 2", [train, ev], result,
              {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl", "preview": write_preview(out)},
              time.perf_counter() - t0)


def anomaly(a: argparse.Namespace, holdout: int = 4, n_test: int = 2000, test_steps: int = 100) -> None:
    out = ROOT / "pretrained" / f"anomaly-{holdout}"
    t0 = time.perf_counter()
    cmd = ["anomaly", "--holdout", str(holdout), "--seed", "0", "--latent-dim", "16", "--alpha", "0.5",
           "--ot-every", str(a.anomaly_every), "--epochs", str(a.anomaly_epochs), "--threads", "1",
           "--checkpoint-every", "0", "--n", str(n_test), "--test-steps", str(test_steps),
           *_solver_flags(a.solver, 4000), "--out", str(out.relative_to(ROOT))]
    result = _run(cmd)
    # The same seeded test subset and test-time inference as the command, kept per image for the app.
    cfg, gen, _ = checkpoint.load_model(out / "checkpoint.pt")
    _, test = datasets.meg_split(holdout, replace(cfg.data, limit=0))
    test = test.subset(torch.from_numpy(np.random.RandomState(0).permutation(len(test))[:n_test]))
    lcfg = replace(cfg.langevin, steps=test_steps)
    torch.set_num_threads(1)
    scores = metrics.anomaly_scores(gen, test.x, lcfg, torch.Generator().manual_seed(0)).numpy()
    auprc = metrics.auprc(scores, test.y)
    if abs(auprc - result["auprc"]) > 1e-9:
        raise SystemExit(f"test scores give AUPRC {auprc}, the command printed {result['auprc']}")
    np.savez_compressed(out / "test_scores.npz", scores=scores, labels=test.y.numpy())
    _manifest(out, f"Anomaly: MNIST with digit {holdout} held out (MEG split), d = 16", [cmd], result,
              {"checkpoint": "checkpoint.pt", "metrics": "metrics.jsonl", "test_scores": "test_scores.npz"},
              time.perf_counter() - t0, holdout=holdout, test_steps=test_steps, n_test=n_test)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="*", help="demo and/or anomaly (default: both)")
    p.add_argument("--solver", default="fast" if "fast" in OT_SOLVERS else "exact", choices=list(OT_SOLVERS))
    p.add_argument("--demo-epochs", type=float, default=10)
    p.add_argument("--demo-every", type=int, default=8, help="L of the demo")
    p.add_argument("--anomaly-epochs", type=float, default=3)
    p.add_argument("--anomaly-every", type=int, default=16, help="L of the anomaly model")
    a = p.parse_args()
    makers = {"demo": demo, "anomaly": anomaly}
    unknown = set(a.which) - set(makers)
    if unknown:
        p.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(makers)}")
    for w in a.which or list(makers):
        makers[w](a)


if __name__ == "__main__":
    main()

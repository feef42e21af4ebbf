"""ABP vs ours (vs VAE) under one seed and budget; prints a markdown table.

    python -m experiments.core_compare demo   # MNIST 0/1, d = 2
    python -m experiments.core_compare full   # all of MNIST, d = 16
    python -m experiments.core_compare demo abp ours-paper   # only these runs

Each run is a TrainConfig (`configs`), written to runs/compare-WHICH/NAME/run.json, then
`python -m lvm train --config run.json` and `python -m lvm eval ... --json`; runs already
trained are only evaluated, and a killed run resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from lvm.config import DataConfig, InferenceConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig, save_config

from . import _common as C
from . import _report as R

BASE = {
    "demo": TrainConfig(epochs=3.0, data=DataConfig("mnist", (0, 1)), model=ModelConfig(2)),
    "full": TrainConfig(epochs=2.0, model=ModelConfig(16), langevin=LangevinConfig(steps=10)),
}
EVAL = C.EvalSpec(InferenceConfig(steps=100, n=2000))  # s: the model's own training s
CLASSIFIER = Path("runs/fidc_mnist.pt")  # python -m lvm classifier --data mnist --out runs/fidc_mnist.pt


def configs(which: str) -> dict[str, TrainConfig]:
    """The runs of one comparison, each BASE[which] with a few settings replaced."""
    b = BASE[which]
    abp = replace(b, method="abp", alpha=None)
    if which == "demo":
        n3000 = replace(b.data, limit=3000)
        return {"abp": abp,
                "ours-paper": replace(b, alpha=0.5, ot_every=99, ot=OTConfig("paper", max_iter=200)),
                "abp-n3000": replace(abp, data=n3000),
                "ours-exact-n3000": replace(b, alpha=0.5, ot_every=8, ot=OTConfig("exact"), data=n3000)}
    return {"abp": abp, "vae": replace(b, method="vae", alpha=None),
            "ours-paper": replace(b, alpha=0.5, ot_every=469, ot=OTConfig("paper", max_iter=20))}


def lvm(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "lvm", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", choices=sorted(BASE))
    p.add_argument("only", nargs="*", help="run only these names")
    a = p.parse_args()
    out = Path("runs") / f"compare-{a.which}"
    ev = replace(EVAL, classifier=str(CLASSIFIER)) if CLASSIFIER.exists() else EVAL
    rows = []
    for name, cfg in configs(a.which).items():
        if a.only and name not in a.only:
            continue
        run = out / name
        t0 = time.perf_counter()
        if not (run / "done").exists():
            run.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "lvm", "train", "--config", str(save_config(cfg, run / "run.json")),
                            "--out", str(run), "--resume", "--threads", "1"], check=True)
            (run / "done").write_text(f"{time.perf_counter() - t0:.0f}\n")
        result = json.loads(lvm("eval", str(run / "checkpoint.pt"), *ev.args(), "--json"))
        log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ot = [r for r in log if "unmatched" in r]
        rows.append((name, cfg, result, ot, (run / "done").read_text().strip()))
    print(f"common config: `{R.config_diff(BASE[a.which])}`; eval: {' '.join(ev.args())}")
    print("| run | config (vs common) | train s | test MSE | VAE encoder MSE | latent OT cost | latent MMD | "
          "prior-vs-prior OT | FID-C (2,000 vs 2,000) | mean unmatched at corrections |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, cfg, e, ot, secs in rows:
        enc = f"{e['encoder_mse']:.4f}" if "encoder_mse" in e else "-"
        um = f"{sum(r['unmatched'] for r in ot) / len(ot):.1%} ({len(ot)} corr.)" if ot else "-"
        print(f"| {name} | {R.config_diff(cfg, BASE[a.which])} | {secs} | {e['mse']:.4f} | {enc} | "
              f"{e['latent_ot_cost']:.3f} | {e['latent_mmd']:.4f} | {e['prior_ot_cost']:.3f} | "
              f"{e.get('fid_c', float('nan')):.1f} | {um} |")


if __name__ == "__main__":
    main()

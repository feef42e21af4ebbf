"""ABP vs ours (vs VAE) under one seed and budget; prints a markdown table.

    python experiments/core_compare.py demo   # MNIST 0/1, d = 2
    python experiments/core_compare.py full   # all of MNIST, d = 16

Each run is `python -m lvm train ...` then `python -m lvm eval ... --json`;
runs already trained (their checkpoint exists) are only evaluated, and a killed
run resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

COMMON = {
    "demo": ["--data", "mnist", "--classes", "0,1", "--latent-dim", "2", "--epochs", "3", "--seed", "0"],
    "full": ["--data", "mnist", "--latent-dim", "16", "--epochs", "2", "--langevin-steps", "10", "--seed", "0"],
}
RUNS = {
    "demo": {
        "abp": ["--method", "abp"],
        "ours-paper": ["--method", "ours", "--alpha", "0.5", "--ot-solver", "paper", "--ot-every", "99",
                       "--ot-max-iter", "200"],
        "abp-n3000": ["--method", "abp", "--limit", "3000"],
        "ours-exact-n3000": ["--method", "ours", "--alpha", "0.5", "--ot-solver", "exact", "--ot-every", "8",
                             "--limit", "3000"],
    },
    "full": {
        "abp": ["--method", "abp"],
        "vae": ["--method", "vae"],
        "ours-paper": ["--method", "ours", "--alpha", "0.5", "--ot-solver", "paper", "--ot-every", "469",
                       "--ot-max-iter", "20"],
    },
}
EVAL = ["--n", "2000", "--test-steps", "100", "--json"]
CLASSIFIER = Path("runs/fidc_mnist.pt")  # python -m lvm classifier --data mnist --out runs/fidc_mnist.pt


def lvm(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "lvm", *args], check=True, capture_output=True, text=True).stdout


def main(which: str, only: list[str]) -> None:
    out = Path("runs") / f"compare-{which}"
    rows = []
    for name, flags in RUNS[which].items():
        if only and name not in only:
            continue
        run = out / name
        t0 = time.perf_counter()
        if not (run / "done").exists():
            subprocess.run([sys.executable, "-m", "lvm", "train", *COMMON[which], *flags, "--out", str(run),
                            "--resume", "--threads", "1"], check=True)
            (run / "done").write_text(f"{time.perf_counter() - t0:.0f}\n")
        fid = ["--classifier", str(CLASSIFIER)] if CLASSIFIER.exists() else []
        ev = json.loads(lvm("eval", str(run / "checkpoint.pt"), *EVAL, *fid))
        log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ot = [r for r in log if "unmatched" in r]
        rows.append((name, ev, ot, (run / "done").read_text().strip()))
    print(f"common flags: {' '.join(COMMON[which])}; eval: {' '.join(EVAL)}")
    print("| run | flags | train s | test MSE | VAE encoder MSE | latent OT cost | latent MMD | prior-vs-prior OT | "
          "FID-C (2,000 vs 2,000) | mean unmatched at corrections |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, ev, ot, secs in rows:
        enc = f"{ev['encoder_mse']:.4f}" if "encoder_mse" in ev else "-"
        um = f"{sum(r['unmatched'] for r in ot) / len(ot):.1%} ({len(ot)} corr.)" if ot else "-"
        print(f"| {name} | {' '.join(RUNS[which][name])} | {secs} | {ev['mse']:.4f} | {enc} | {ev['latent_ot_cost']:.3f} | "
              f"{ev['latent_mmd']:.4f} | {ev['prior_ot_cost']:.3f} | {ev.get('fid_c', float('nan')):.1f} | {um} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

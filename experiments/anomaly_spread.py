"""The paper's spread for the shipped detectors: AUPRC over test-time runs of one model on the same test images.

    python -m experiments.anomaly_spread [--digits 4] [--runs 10] [--n 2000] [--threads 1]

For each digit, pretrained/anomaly-D scored on S0 (the seeded 2,000 test images of `lvm anomaly --seed 0
--n 2000`) with inference seeds 0 .. runs-1: only the Langevin noise changes (K = 100 from the prior, the
model's own s, one chain). Prints a table; the seed spread (training seeds) is in results/anomaly_budget.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from lvm import commands, pretrained
from lvm.config import InferenceConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", default="4")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} thread(s), load "
          f"average {os.getloadavg()[0]:.2f} at the start; `python -m experiments.anomaly_spread --digits {a.digits} "
          f"--runs {a.runs} --n {a.n}`\n")
    print("| digit | detector | test images | chance | AUPRC per inference seed | mean ± std | seconds per run |")
    print("|---|---|---|---|---|---|---|")
    for d in map(int, a.digits.split(",")):
        entry = pretrained.find(f"anomaly-{d}")
        if entry is None:
            raise SystemExit(f"pretrained/anomaly-{d} is missing")
        path, s = str(entry.path()), entry.manifest["metrics"].get("test_step_size")  # the s it was scored with
        inference = InferenceConfig(steps=100, step_size=s, n=a.n)
        auprc, t0 = [], time.perf_counter()
        for k in range(a.runs):
            r = commands.anomaly(d, inference, checkpoint_path=path, seed=0, inference_seed=k)
            auprc.append(r["auprc"])
        per = (time.perf_counter() - t0) / a.runs
        print(f"| {d} | anomaly-{d} | {r['n_test']:,} | {r['anomaly_share']:.3f} | "
              f"{', '.join(f'{x:.3f}' for x in auprc)} | {statistics.mean(auprc):.3f} ± {statistics.stdev(auprc):.3f} "
              f"(n={a.runs}) | {per:.0f} |", flush=True)


if __name__ == "__main__":
    main()

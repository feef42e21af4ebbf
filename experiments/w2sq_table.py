"""The distance of q(z^K) to the prior at n = 300, 1,000 and 2,000, old statistic against new, for the shipped
demo and for ABP trained the same way (issue 28's table, recomputed by lvm.distance).

    python -m experiments.w2sq_table                       # trains ABP into --work once (about 30 s on a quiet CPU)
    python -m experiments.w2sq_table --abp runs/abp/checkpoint.pt

For each model and n: q(z^K) is the model's own inference (K training steps from fresh noise, seed 0, metrics.
q_latents) on the first n of a fixed permutation of its training images (seed 0, as `lvm eval`). Columns: the raw
exact OT cost q vs n prior draws, the raw cost prior vs prior at n, their ratio (the old "x the prior level"),
the debiased W2^2 (lvm.distance.prior_w2sq, seed 0) and its mean and sd over --repeats seeds (other prior draws
and splits, the same q), and the band's upper edge at n (what counts as on the prior). Writes a markdown table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lvm import checkpoint
from lvm.config import save_config
from lvm.data import load
from lvm.distance import prior_band, prior_w2sq, w2
from lvm.metrics import latent_ot_cost, prior_baseline_ot_cost, q_latents
from lvm.presets import DEMO

from . import _common as C

DEMO_CKPT = Path("pretrained/demo/checkpoint.pt")


def abp_checkpoint(work: Path) -> Path:
    """ABP trained as the demo (DEMO with alpha 0): `lvm train --config`, once, into `work`."""
    ckpt = work / "checkpoint.pt"
    if not ckpt.is_file():
        work.mkdir(parents=True, exist_ok=True)
        cfg = save_config(replace(DEMO, method="abp", alpha=0.0), work / "config.json")
        code, out, err = C.lvm(["train", "--config", str(cfg), "--out", str(work), "--threads", "1", "--json"])
        if code:
            raise SystemExit(f"ABP training failed: {err[-500:]}")
    return ckpt


def rows(name: str, ckpt: Path, ns: list[int], repeats: int) -> list[str]:
    cfg, gen, _ = checkpoint.load_model(ckpt)
    train = load(cfg.data, "train")
    perm = torch.from_numpy(np.random.RandomState(0).permutation(len(train)))
    out = []
    for n in ns:
        if n > len(train):
            continue
        z = q_latents(gen, train.x[perm[:n]], cfg.langevin, seed=0).detach().numpy()
        raw, level = latent_ot_cost(z, n=n, seed=0), prior_baseline_ot_cost(n, cfg.model.latent_dim, seed=0)
        vals = [prior_w2sq(z, seed=s) for s in range(repeats)]
        band = prior_band(n, cfg.model.latent_dim)
        out.append(f"| {name} | {n:,} | {raw:.3f} | {level:.3f} | {raw / level:.1f}x | {vals[0]:.3f} | "
                   f"{statistics.fmean(vals):.3f} ± {statistics.stdev(vals):.3f} | {w2(vals[0]):.2f} | "
                   f"{band.upper:.3f} |")
        print(out[-1], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--abp", type=Path, default=None, help="ABP checkpoint (default: train one into --work)")
    p.add_argument("--work", type=Path, default=Path("runs/demo-abp"), help="where `make_pretrained.sh landing` "
                   "trains ABP the demo's way; trained here if absent")
    p.add_argument("--ns", type=int, nargs="*", default=[300, 1000, 2000])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", default="ours,abp", help="which rows: ours (pretrained/demo) and/or abp")
    p.add_argument("--out", type=Path, default=Path("results/w2sq_table.md"))
    a = p.parse_args()
    torch.set_num_threads(1)
    t0, load0 = time.perf_counter(), os.getloadavg()
    models = a.models.split(",")
    abp = (a.abp or abp_checkpoint(a.work)) if "abp" in models else None
    head = ["| model | n | OT cost q vs prior | prior vs prior | old \"x the prior level\" | debiased W2² (seed 0) | "
            f"W2² mean ± sd over {a.repeats} seeds | W2 (seed 0) | on-prior band edge |",
            "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(head), flush=True)
    body = ((rows("ours (pretrained/demo)", DEMO_CKPT, a.ns, a.repeats) if "ours" in models else [])
            + (rows("ABP, trained the same way", abp, a.ns, a.repeats) if abp else []))
    note = (f"\n`python -m experiments.w2sq_table` ({time.perf_counter() - t0:.0f} s; load average {load0[0]:.1f} "
            f"before, {os.getloadavg()[0]:.1f} after, other work on the machine). ABP: {abp}.\n")
    a.out.write_text("# q(z^K) to the prior: old multiple against the debiased W2²\n\n" + "\n".join(head + body) + note)
    print(note)


if __name__ == "__main__":
    main()

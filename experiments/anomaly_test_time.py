"""Issue 12, step 1a: test-time inference only, on the shipped anomaly detectors (pretrained/anomaly-D).

    python -m experiments.anomaly_test_time [--n 2000] [--digits 4,1,5,7,9] [--protocols K100,K300,...]
                                            [--spread 10] [--spread-digits 4] [--out results/anomaly_test_time.md]

Each protocol scores the same seeded subset of the MEG test split (n images, RandomState(0), as
`lvm anomaly --n` takes it) with one noise stream per image (`metrics.anomaly_scores_per_image`):
K noisy Langevin steps from the prior, R restarts keeping the lowest energy, then F noise-free
steps. s = 0.1 throughout. Every model gets the same protocols, so this table compares inference, not
methods. `--spread` also scores each of `--spread-digits` with the K100 protocol under that many
inference seeds: the paper's spread (test-time runs of one model on the same images). Results go to
runs/anomaly_test_time/ (one JSON a cell, keyed by the detector's checkpoint hash, so a killed run
resumes and a replaced detector is scored again) and to --out after every cell.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lvm import data as datasets, metrics, pretrained
from lvm.config import LangevinConfig

from ._report import machine, script_command

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {  # name: (K, restarts, noise-free refinement steps)
    "K100": (100, 1, 0),
    "K300": (300, 1, 0),
    "K100 R4": (100, 4, 0),
    "K100 +F100": (100, 1, 100),
    "K300 R4 +F100": (300, 4, 100),
}
STEP_SIZE = 0.1


def cell(digit: int, protocol: str, n: int, seed: int, cache: Path) -> dict:
    entry = pretrained.find(f"anomaly-{digit}")
    detector = hashlib.sha256(entry.path().read_bytes()).hexdigest()[:12]
    path = cache / f"d{digit}-{detector}-{protocol.replace(' ', '_')}-n{n}-s{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg, gen, _ = entry.load()
    gen.eval()
    _, test = datasets.meg_split(digit, cfg.data)
    if n and n < len(test):
        test = test.subset(torch.from_numpy(np.random.RandomState(0).permutation(len(test))[:n]))
    k, r, f = PROTOCOLS[protocol]
    lcfg = LangevinConfig(steps=k, step_size=STEP_SIZE, sigma=cfg.langevin.sigma)
    t0 = time.perf_counter()
    s = metrics.anomaly_scores_per_image(gen, test.x, lcfg, seed=seed, restarts=r, refine=f)
    out = {"digit": digit, "protocol": protocol, "n": len(test), "seed": seed, "auprc": metrics.auprc(s, test.y),
           "chance": float(test.y.float().mean()), "seconds": time.perf_counter() - t0, "method": cfg.method,
           "alpha": cfg.alpha, "sigma": cfg.langevin.sigma, "detector": detector, "title": entry.manifest.get("title", "")}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    print(f"  digit {digit} {protocol:14s} seed {seed}: AUPRC {out['auprc']:.3f} ({out['seconds']:.0f} s)", flush=True)
    return out


def report(cells: list[dict], spread: dict[int, list[dict]], protocols: list[str], n: int, t_start: float,
           out: Path) -> None:
    digits = sorted({c["digit"] for c in cells}, key=[4, 1, 5, 7, 9].index)
    by = {(c["digit"], c["protocol"]): c for c in cells}
    models = {c["digit"]: c for c in cells}
    lines = ["# Test-time inference of the shipped anomaly detectors (issue 12, step 1a)", "",
             f"`{script_command()}`. {machine()}. One torch thread per process, other jobs sharing the cores.",
             f"Started {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t_start))} UTC.", "",
             "Models: " + "; ".join(f"pretrained/anomaly-{d} ({m['method']}, sigma {m['sigma']:g}, checkpoint "
                                    f"sha256 {m['detector']}...)" for d, m in sorted(models.items())) + ". "
             f"Test images: the same seeded {n:,} of each MEG test split (S0 at n = 2,000). s = {STEP_SIZE}; one "
             "noise stream per image, inference seed 0. K: noisy Langevin steps from the prior; R: restarts, the "
             "lowest energy kept; +F: noise-free steps after them. AUPRC (anomaly = the held-out digit); chance = "
             "its share.",
             "", "| protocol | " + " | ".join(f"digit {d}" for d in digits) + " | seconds per digit (median) |",
             "|---|" + "---|" * (len(digits) + 1)]
    for p in protocols:
        row = [by.get((d, p)) for d in digits]
        secs = [c["seconds"] for c in row if c]
        lines.append(f"| {p} | " + " | ".join(f"{c['auprc']:.3f}" if c else "" for c in row)
                     + f" | {statistics.median(secs):.0f} |" if secs else f"| {p} |" + " |" * (len(digits) + 1))
    chance = [by.get((d, "K100")) for d in digits]
    lines.append("| chance | " + " | ".join(f"{c['chance']:.3f}" if c else "" for c in chance) + " | |")
    if any(len(runs) > 1 for runs in spread.values()):
        lines += ["", "**Spread of test-time inference** (the paper's: 10 runs of one model on the same images), "
                      "K100, inference seeds 0 to R-1:", "",
                  "| digit | R | AUPRC per inference seed | mean ± std | min | max |", "|---|---|---|---|---|---|"]
        for d, runs in spread.items():
            a = [c["auprc"] for c in runs]
            if len(a) > 1:
                lines.append(f"| {d} | {len(a)} | {', '.join(f'{x:.3f}' for x in a)} | {statistics.fmean(a):.3f} "
                             f"± {statistics.stdev(a):.3f} | {min(a):.3f} | {max(a):.3f} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--digits", default="4,1,5,7,9")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated, from " + ", ".join(PROTOCOLS))
    p.add_argument("--spread", type=int, default=10, help="inference seeds for the spread (K100)")
    p.add_argument("--spread-digits", default="4")
    p.add_argument("--out", default=str(ROOT / "results" / "anomaly_test_time.md"))
    p.add_argument("--cache", default=str(ROOT / "runs" / "anomaly_test_time"))
    a = p.parse_args()
    torch.set_num_threads(1)
    t_start, cache, out = time.time(), Path(a.cache), Path(a.out)
    digits = [int(d) for d in a.digits.split(",")]
    protocols = a.protocols.split(",")
    if unknown := set(protocols) - set(PROTOCOLS):
        raise SystemExit(f"unknown protocols {sorted(unknown)}: choose from {', '.join(PROTOCOLS)}")
    cells, spread = [], {}
    for d in digits:  # digit 4 first: the recipe is found there
        for proto in protocols:
            cells.append(cell(d, proto, a.n, 0, cache))
            report(cells, spread, protocols, a.n, t_start, out)
        if str(d) in a.spread_digits.split(","):
            spread[d] = [cell(d, "K100", a.n, s, cache) for s in range(a.spread)]
            report(cells, spread, protocols, a.n, t_start, out)


if __name__ == "__main__":
    main()

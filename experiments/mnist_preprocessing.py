"""Does the MNIST-style preparation (lvm.digits) leave MNIST's own test digits where the detectors put them?

For each shipped detector (pretrained/anomaly-D) a seeded subset of its MEG test split is scored twice, as
`lvm score` scores files: ``--preprocess none`` (the image as it is) and ``--preprocess mnist`` (each digit
written to a PNG and read back through `lvm.images.prepare`). The pair is *paired*: the same images and, for
each image, the same Langevin noise in both (the noise stream seeded by the raw image, `metrics.image_seeds`,
handed to both chains), so the AUPRC difference is the preparation's alone. An image the preparation leaves
unchanged gets the same chain, so its `mnist` score is its `none` score (it is not run twice).

Printed per detector: n (held-out), how many images the preparation changed, AUPRC of the shipped scores of
the same images (`lvm anomaly`, their own noise), of `none` and of `mnist`, the paired difference with its
bootstrap std, and the false-alarm rate and recall at the detector's 5 % threshold (the 95 % quantile of its
shipped normal scores, what `lvm score` and the app use). Rerun:
``python -m experiments.mnist_preprocessing --n 3000`` (tests/test_digits.py runs `paired` on one detector).
"""
from __future__ import annotations

import argparse
import io
import os
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from lvm import data as datasets, metrics, pretrained
from lvm.images import prepare


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def paired(entry: pretrained.Entry, n: int, seed: int = 0, boot: int = 200) -> dict:
    """The paired comparison of the module docstring on `n` seeded test images of `entry`'s MEG split."""
    cfg, gen, _ = entry.load()
    lcfg = replace(cfg.langevin, steps=int(entry.manifest.get("test_steps", 100)),
                   step_size=float(entry.manifest.get("metrics", {}).get("test_step_size", cfg.langevin.step_size)))
    _, test = datasets.meg_split(int(entry.manifest["metrics"]["holdout"]), cfg.data)
    ref = entry.arrays("test_scores")
    if len(ref["scores"]) != len(test):
        raise ValueError(f"{entry.name}: the shipped scores are not of the whole MEG test split")
    idx = np.random.RandomState(seed).permutation(len(test))[:n]
    raw, y = test.x[torch.from_numpy(idx)], test.y.numpy()[idx] == 1
    pre = torch.stack([prepare(png(a[0].numpy()), f"test {i}.png", 28, 1, "mnist").x for i, a in zip(idx, raw)])
    seeds = metrics.image_seeds(raw, seed)
    s_none = metrics.infer_per_image(gen, raw, lcfg, seeds=seeds)[1].numpy()
    changed = np.flatnonzero((pre != raw).flatten(1).any(1).numpy())
    s_mnist = s_none.copy()
    if len(changed):
        s_mnist[changed] = metrics.infer_per_image(gen, pre[changed], lcfg,
                                                   seeds=[seeds[i] for i in changed])[1].numpy()
    thr = float(np.quantile(ref["scores"][ref["labels"] == 0], 0.95))
    scores = {"shipped": ref["scores"][idx], "none": s_none, "mnist": s_mnist}
    auprc = lambda s, yy: metrics.auprc(torch.from_numpy(np.asarray(s, np.float64)), torch.from_numpy(yy))  # noqa: E731
    out = {"detector": entry.name, "n": n, "n_held": int(y.sum()), "seed": seed, "changed": len(changed),
           "max_pixel_change": float((pre - raw).abs().max()), "threshold": thr}
    for k, v in scores.items():
        out |= {f"auprc_{k}": auprc(v, y), f"fa_{k}": float((v[~y] > thr).mean()),
                f"recall_{k}": float((v[y] > thr).mean())}
    rs = np.random.RandomState(seed + 1)
    diffs = []
    for _ in range(boot):  # the same resampled images for both: the paired difference's spread
        b = rs.randint(0, n, n)
        diffs.append(auprc(s_mnist[b], y[b]) - auprc(s_none[b], y[b]))
    out["delta"], out["delta_std"] = out["auprc_mnist"] - out["auprc_none"], float(np.std(diffs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="test images per detector")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--detectors", default="", help="comma-separated names (default: every shipped anomaly-*)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = [s for s in a.detectors.split(",") if s]
    entries = [e for e in pretrained.available() if e.has("test_scores") and (not names or e.name in names)]
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    print(f"data: MNIST MEG test split per detector, n = {a.n} seeded (RandomState({a.seed})), Langevin seed "
          f"{a.seed}, paired noise; threads {a.threads}")
    print("| detector | n (held-out) | changed | AUPRC shipped | none | mnist | mnist - none (± boot std) | "
          "false alarms shipped | none | mnist | recall none | mnist | s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        t0 = time.time()
        r = paired(e, a.n, a.seed)
        print(f"| {r['detector']} | {r['n']} ({r['n_held']}) | {r['changed']} | {r['auprc_shipped']:.3f} | "
              f"{r['auprc_none']:.3f} | {r['auprc_mnist']:.3f} | {r['delta']:+.4f} ± {r['delta_std']:.4f} | "
              f"{pct(r['fa_shipped'])} | {pct(r['fa_none'])} | {pct(r['fa_mnist'])} | {pct(r['recall_none'])} | "
              f"{pct(r['recall_mnist'])} | {time.time() - t0:.0f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""Evidence on images nobody here made: do the shipped MNIST detectors read real handwriting and photos?

For each shipped detector (pretrained/anomaly-D), at its 5 % false-alarm threshold (the 95 % quantile of
its shipped normal test scores), the false-alarm rate on normal classes and the recall on the held-out
digit, before (``--preprocess none``: the image squashed to 28 x 28 as it is, what `lvm score` did) and
after (``mnist``: lvm.digits), on four sets:

- ``MEG test``: a seeded subset of the detector's own MEG test split (28 x 28 MNIST, already in format),
  scored with the same noise before and after (`paired_meg`) beside the shipped scores of the same images;
- ``sklearn digits``: scikit-learn's ``load_digits`` (UCI optdigits: 8 x 8 handwritten digits of 43 other
  writers, shipped inside scikit-learn, offline), as 8 x 8 PNGs, white on black;
- ``photos (MNIST)`` and ``photos (sklearn)``: those digits drawn as a phone would see them: dark ink on
  paper of random tone, lit unevenly (a gradient and vignetting), textured, off-centre, rotated up to 8
  degrees, thicker or thinner strokes, RGB, JPEG quality 60-90 (`photo`).

Every image goes through `lvm.images.prepare` and `lvm.scoring.score_with` (the detector's own score), as
`lvm score` does; an image
refused (nothing to score) counts in neither rate. Rerun: ``python -m experiments.photo_evidence`` (about
15 minutes on 2 busy cores; ``--n`` smaller for a quick look). Writes results/photo_evidence.md.
"""
from __future__ import annotations

import argparse
import io
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from lvm import data as datasets, metrics, pretrained
from lvm.config import DataConfig
from lvm.images import prepare
from lvm import scores
from lvm.scoring import score_with

ROOT = Path(__file__).resolve().parents[1]


def photo(digit: np.ndarray, rs: np.random.RandomState) -> bytes:
    """A JPEG that looks like a phone photo of `digit` ((H, W) in [0, 1], white on black) written on paper."""
    H, W = (480, 640) if rs.rand() < 0.5 else (640, 480)
    side = int(min(H, W) * rs.uniform(0.25, 0.5))  # the digit's field on the page
    big = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC),
                     np.float32) / 255
    width = int(rs.choice([-3, 0, 0, 5, 9]) * side / 200)
    if width > 1:
        big = ndimage.grey_dilation(big, size=(width, width))
    elif width < -1:
        big = ndimage.grey_erosion(big, size=(-width, -width))
    big = ndimage.rotate(big, rs.uniform(-8, 8), reshape=False, order=1)
    ink = np.zeros((H, W), np.float32)
    y0, x0 = int(rs.uniform(0.2, 0.8) * H - side / 2), int(rs.uniform(0.2, 0.8) * W - side / 2)
    y0, x0 = int(np.clip(y0, 0, H - side)), int(np.clip(x0, 0, W - side))
    ink[y0:y0 + side, x0:x0 + side] = np.clip(big, 0, 1)
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    angle = rs.uniform(0, 2 * np.pi)
    light = rs.uniform(0.0, 0.35) * ((np.cos(angle) * xx + np.sin(angle) * yy) - 0.5)
    vignette = rs.uniform(0.0, 0.25) * ((yy - 0.5 * H / max(H, W)) ** 2 + (xx - 0.5 * W / max(H, W)) ** 2)
    texture = rs.uniform(0.01, 0.03) * ndimage.gaussian_filter(rs.randn(H, W), 1.0) * 3
    paper = rs.uniform(0.7, 0.95) - light - vignette + texture
    g = paper * (1 - rs.uniform(0.7, 0.9) * ink)
    tint = np.array([1.0, rs.uniform(0.95, 1.0), rs.uniform(0.85, 1.0)])  # warm paper
    rgb = (np.clip(g[..., None] * tint, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=int(rs.randint(60, 91)))
    return buf.getvalue()


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def sets(n: int, n_photos: int, seed: int) -> dict[str, tuple[list[bytes], np.ndarray]]:
    """{set name: (files, digit labels)}; the MEG test set is added per detector (its own split)."""
    from sklearn.datasets import load_digits

    rs = np.random.RandomState(seed)
    sk = load_digits()
    idx = rs.permutation(len(sk.target))[:n]
    sk_x, sk_y = sk.images[idx] / 16.0, sk.target[idx]
    mn = datasets.load(DataConfig("mnist"), "test")
    per = n_photos // 10  # the same number of each digit, so every detector's held-out digit has `per` photos
    midx = np.concatenate([rs.permutation(np.flatnonzero(mn.y.numpy() == k))[:per] for k in range(10)])
    sidx = np.concatenate([rs.permutation(np.flatnonzero(sk.target == k))[:per] for k in range(10)])
    return {"sklearn digits": ([png(a) for a in sk_x], sk_y),
            "photos (MNIST)": ([photo(mn.x[i, 0].numpy(), rs) for i in midx], mn.y[midx].numpy()),
            "photos (sklearn)": ([photo(a / 16.0, rs) for a in sk.images[sidx]], sk.target[sidx])}


def paired_meg(entry: pretrained.Entry, n: int, seed: int = 0) -> dict:
    """A seeded subset of the detector's MEG test split scored as it is (`none`) and after `mnist`, with the
    same Langevin noise for both (metrics.anomaly_scores, one generator seed: the difference is the
    preprocessing's alone), beside the same images' shipped scores; AUPRC, false alarms and recall at the
    5 % threshold of each."""
    cfg, gen, _ = entry.load()
    lcfg = replace(cfg.langevin, steps=int(entry.manifest.get("test_steps", 100)))
    _, test = datasets.meg_split(int(entry.manifest["metrics"]["holdout"]), cfg.data)
    idx = torch.from_numpy(np.random.RandomState(seed).permutation(len(test))[:n])
    raw, y = test.x[idx], test.y[idx].numpy() == 1
    pre = torch.stack([prepare(png(a[0].numpy()), "d.png", 28, 1, "mnist").x for a in raw])
    ref = entry.arrays("test_scores")
    thr = float(np.quantile(ref["scores"][ref["labels"] == 0], 0.95))
    assert len(ref["scores"]) == len(test), "the shipped scores are not of the whole MEG test split"
    s = {"shipped": ref["scores"][idx.numpy()]}
    for how, x in (("none", raw), ("mnist", pre)):
        if scores.of_manifest(entry.manifest)[0] == "joint":  # the noise of the shipped scores' batches
            s[how] = metrics.anomaly_scores(gen, x, lcfg, torch.Generator().manual_seed(seed)).numpy()
        else:  # the detector's own score, one noise stream per image (as its shipped scores were made)
            s[how] = scores.for_detector(entry.manifest, gen, x, lcfg, seed)
    out = {"n": n, "n_held": int(y.sum())}
    for k, v in s.items():
        out |= {f"auprc_{k}": metrics.auprc(torch.from_numpy(v), torch.from_numpy(y)),
                f"fa_{k}": float((v[~y] > thr).mean()), f"recall_{k}": float((v[y] > thr).mean()),
                f"refused_{k}": 0}
    return out


def score_files(files: list[bytes], entry: pretrained.Entry, gen, lcfg, how: str) -> np.ndarray:
    """The detector's own scores (NaN where refused) of the files prepared with `how`, as `lvm score` would."""
    prepared = [prepare(f, f"image {i}", 28, 1, how) for i, f in enumerate(files)]
    keep = [i for i, p in enumerate(prepared) if p.x is not None]
    out = np.full(len(files), np.nan)
    if keep:
        _, s, _ = score_with(entry.manifest, gen, torch.stack([prepared[i].x for i in keep]), lcfg)
        out[keep] = s.numpy()
    return out


def held_out_recall(n: int, seed: int) -> list[dict]:
    """Per detector: recall on `n` photo-like images (`photo`) of its held-out digit, drawn from MNIST's test
    digits of that class, after the preprocessing, beside the recall on the held-out digit of its whole MEG test
    split (its shipped scores) at the same 5 % threshold. Issue 30's aim: at least half the test split's."""
    mn = datasets.load(DataConfig("mnist"), "test")
    rows = []
    for entry in pretrained.available():
        if not entry.has("test_scores"):
            continue
        t0, holdout = time.time(), int(entry.manifest["metrics"]["holdout"])
        cfg, gen, _ = entry.load()
        lcfg = replace(cfg.langevin, steps=int(entry.manifest.get("test_steps", 100)))
        ref = entry.arrays("test_scores")
        thr = float(np.quantile(ref["scores"][ref["labels"] == 0], 0.95))
        rs = np.random.RandomState(seed + holdout)
        idx = rs.permutation(np.flatnonzero(mn.y.numpy() == holdout))[:n]
        s = score_files([photo(mn.x[i, 0].numpy(), rs) for i in idx], entry, gen, lcfg, "mnist")
        ok = ~np.isnan(s)
        held = ref["scores"][ref["labels"] == 1]
        rows.append({"detector": entry.name, "holdout": holdout, "n": len(idx), "refused": int((~ok).sum()),
                     "recall": float((s[ok] > thr).mean()), "recall_split": float((held > thr).mean()),
                     "n_split": len(held), "seconds": time.time() - t0, "load": os.getloadavg()[0]})
        print(rows[-1], flush=True)
    return rows


def write_held(rows: list[dict], n: int, seed: int, out: str) -> None:
    lines = ["# Photos of each detector's held-out digit: recall against the test split's", "",
             f"`python -m experiments.photo_evidence --held {n} --seed {seed}`: per shipped detector, {n} photo-like "
             f"images (`photo`: dark ink on unevenly lit paper, off-centre, rotated, JPEG) of MNIST test digits of "
             f"its held-out class, `--preprocess mnist`, at the detector's 5 % threshold; beside the recall on the "
             f"held-out digit of the whole MEG test split (shipped scores). The issue's aim: at least half the "
             f"split's recall. Other engineers' jobs were on the 2-core machine (load in the table).", "",
             "| detector | n photos (refused) | recall, photos | recall, test split (n) | aim met | s | load |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['detector']} ({r['holdout']}) | {r['n']} ({r['refused']}) | {100 * r['recall']:.1f} % | "
                     f"{100 * r['recall_split']:.1f} % ({r['n_split']}) | "
                     f"{'yes' if r['recall'] >= r['recall_split'] / 2 else 'no'} | {r['seconds']:.0f} | "
                     f"{r['load']:.1f} |")
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="scikit-learn digits (of 1,797)")
    ap.add_argument("--meg-n", type=int, default=600, help="MEG test images per detector (paired, see paired_meg)")
    ap.add_argument("--photos", type=int, default=200, help="photo-like images per source (as many of each digit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "photo_evidence.md"))
    ap.add_argument("--held", type=int, default=0, help="only the held-out digit's recall on this many photos per "
                    "detector (results/photo_evidence_held.md)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.held:
        write_held(held_out_recall(a.held, a.seed), a.held, a.seed, str(ROOT / "results" / "photo_evidence_held.md"))
        return
    t0 = time.time()
    external = sets(a.n, a.photos, a.seed)
    rows = []
    for entry in pretrained.available():
        if not entry.has("test_scores"):
            continue
        holdout = int(entry.manifest["metrics"]["holdout"])
        cfg, gen, _ = entry.load()
        lcfg = replace(cfg.langevin, steps=int(entry.manifest.get("test_steps", 100)))
        ref = entry.arrays("test_scores")
        thr = float(np.quantile(ref["scores"][ref["labels"] == 0], 0.95))
        row = {"detector": entry.name, "holdout": holdout, "set": "MEG test"} | paired_meg(entry, a.meg_n, a.seed)
        rows.append(row)
        print(f"{time.time() - t0:6.0f} s  load {os.getloadavg()[0]:.1f}  {row}", flush=True)
        for name, (files, digits) in external.items():
            held = digits == holdout
            row = {"detector": entry.name, "holdout": holdout, "set": name, "n": len(files),
                   "n_held": int(held.sum())}
            for how in ("none", "mnist"):
                s = score_files(files, entry, gen, lcfg, how)
                ok = ~np.isnan(s)
                row[f"fa_{how}"] = float((s[ok & ~held] > thr).mean())
                row[f"recall_{how}"] = float((s[ok & held] > thr).mean()) if (ok & held).any() else float("nan")
                row[f"refused_{how}"] = int((~ok).sum())
            rows.append(row)
            print(f"{time.time() - t0:6.0f} s  load {os.getloadavg()[0]:.1f}  {row}", flush=True)
    write(rows, a, time.time() - t0)


def write(rows: list[dict], a: argparse.Namespace, seconds: float) -> None:
    pct = lambda v: "—" if v != v else f"{100 * v:.1f} %"  # noqa: E731
    lines = ["# Photos and scans of digits: false alarms and recall of the shipped detectors, before and after "
             "the MNIST-style preprocessing", "",
             f"`python -m experiments.photo_evidence --n {a.n} --meg-n {a.meg_n} --photos {a.photos} "
             f"--seed {a.seed}` "
             f"({seconds / 60:.0f} min, {a.threads} threads, load average {os.getloadavg()[0]:.1f} at the end, "
             f"other engineers' jobs on the machine). Threshold: each detector's 5 % false-alarm threshold "
             f"(95 % quantile of its shipped normal test scores). Before = `--preprocess none` (squashed to "
             f"28 x 28 as it is, what `lvm score` did); after = `--preprocess mnist` (lvm/digits.py, the "
             f"default for these detectors). False alarms on the normal classes, recall on the held-out "
             f"digit; refused images (nothing to score) count in neither.", "",
             "| detector (held out) | set | n (held-out) | false alarms before | after | recall before | after "
             "| refused before / after |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['detector']} ({r['holdout']}) | {r['set']} | {r['n']} ({r['n_held']}) | "
                     f"{pct(r['fa_none'])} | {pct(r['fa_mnist'])} | {pct(r['recall_none'])} | "
                     f"{pct(r['recall_mnist'])} | {r['refused_none']} / {r['refused_mnist']} |")
    lines += ["", "## The MEG test split: the preprocessing leaves MNIST's own digits where they were", "",
              "The same seeded subset scored three ways: the shipped scores (`lvm anomaly`, its own noise), "
              "rescored as they are (`none`) and after `mnist` with the same noise as `none` (so their gap is "
              "the preprocessing's alone; the gap to the shipped column is the chains' own noise).", "",
              "| detector | n | AUPRC shipped | none | mnist | false alarms shipped | none | mnist | "
              "recall shipped | none | mnist |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["set"] == "MEG test":
            lines.append(f"| {r['detector']} | {r['n']} | {r['auprc_shipped']:.3f} | {r['auprc_none']:.3f} | "
                         f"{r['auprc_mnist']:.3f} | {pct(r['fa_shipped'])} | {pct(r['fa_none'])} | "
                         f"{pct(r['fa_mnist'])} | {pct(r['recall_shipped'])} | {pct(r['recall_none'])} | "
                         f"{pct(r['recall_mnist'])} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

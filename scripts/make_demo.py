"""The teaching demo's makers for `scripts.make_pretrained`: the demo itself (`lvm.presets.DEMO`, trained by the
command line), its landing figures (q(z^K) from noise, ABP trained the same way) and its landing pictures."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lvm import checkpoint
from lvm.config import load_config, save_config
from lvm.pretrained import sha256
from lvm.presets import DEMO
from scripts.packaging import ROOT, rel, run_lvm, write_manifest

def write_preview(out: Path, n: int = 2000, n_samples: int = 36) -> str:
    """preview.npz, which the landing view reads without torch: `q_latents`, the model's own q(z^K) (K training
    steps from fresh noise, seed 0) on the n training images `lvm eval` measures q_w2sq on; `latents`, as many
    persistent chains; `samples`, g(z) for prior draws (uint8)."""
    from lvm import data as datasets
    from lvm.metrics import q_latents

    cfg, gen, state = checkpoint.load_model(out / "checkpoint.pt")
    z = state["latents"].numpy()
    z = z[np.random.RandomState(0).permutation(len(z))[:n]].astype(np.float32)
    train = datasets.load(cfg.data, "train")
    idx = torch.from_numpy(np.random.RandomState(0).permutation(len(train))[:min(n, len(train))])  # as eval's
    q = q_latents(gen, train.x[idx], cfg.langevin).detach().numpy().astype(np.float32)
    with torch.no_grad():
        x = gen(torch.randn(n_samples, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
    np.savez_compressed(out / "preview.npz", latents=z, q_latents=q,
                        samples=(x.numpy() * 255).round().astype(np.uint8))
    return "preview.npz"


def write_preview_png(out: Path, title: str) -> dict[str, str]:
    """preview.png (the model's own q(z^K) over the prior) and preview_chains.png (with the persistent chains
    beneath): the landing view's pictures of preview.npz, drawn here and shown as images (a chart library on the
    first page costs a fresh browser 1-2 s of script, benchmarks/app/app_cold_start.md)."""
    from ui.pictures import grids
    from ui.pictures.landing import landing_png

    with np.load(out / "preview.npz") as f:
        z, q = f["latents"], f["q_latents"] if "q_latents" in f else f["latents"]
    lim = max(grids.preview_lim(z), grids.preview_lim(q))
    (out / "preview.png").write_bytes(landing_png(q, lim, title))
    (out / "preview_chains.png").write_bytes(landing_png(q, lim, title, chains=z))
    return {"preview_png": "preview.png", "preview_chains_png": "preview_chains.png"}


def preview_png(a: argparse.Namespace) -> None:
    """preview-png: (re)draw the demo's pictures from its preview.npz, and list them in its manifest."""
    out = a.out / "demo"
    manifest = json.loads((out / "manifest.json").read_text())
    for key, path in write_preview_png(out, manifest["title"]).items():
        manifest["files"][key] = {"path": path, "sha256": sha256(out / path)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out / 'preview.png'}", file=sys.stderr)


ABP_WORK = "runs/demo-abp"  # where `landing` trains ABP the demo's way (git-ignored)


def abp_same_way(work: Path) -> dict:
    """ABP trained as the demo is (lvm.presets.DEMO with alpha 0, same data, iterations and seed) in `work`, and
    `lvm eval` of it: its q_w2sq for the landing view's comparison, with the commands (the model is not shipped)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = rel(save_config(replace(DEMO, method="abp", alpha=0.0), work / "config.json"))
    _, train = run_lvm(["train", "--config", cfg, "--out", rel(work), "--threads", "1", "--json"])
    ev, evaluate = run_lvm(["eval", rel(work / "checkpoint.pt"), "--n", "2000", "--threads", "1", "--json"])
    keep = ("q_w2sq", "q_mse", "q_prior_mse", "chains_w2sq", "w2sq_n", "on_prior_w2sq", "mse")
    return {**{k: ev[k] for k in keep}, "commands": [train, evaluate]}


def landing(a: argparse.Namespace) -> None:
    """landing: the demo's eval figures (q_w2sq, ...), its preview.npz and pictures, and ABP trained the same
    way, refreshed for the shipped checkpoint without retraining it (`demo` runs this too)."""
    out = a.out / "demo"
    manifest = json.loads((out / "manifest.json").read_text())
    ev, evaluate = run_lvm(["eval", rel(out / "checkpoint.pt"), "--n", "2000", "--threads", "1", "--json"])
    manifest["metrics"].update({k: v for k, v in ev.items() if k != "checkpoint"})
    manifest["commands"] = [c for c in manifest["commands"] if not c.startswith("python -m lvm eval")] + [evaluate]
    manifest["abp"] = abp_same_way(ROOT / ABP_WORK)  # kept (not shipped): experiments.w2sq_table reads it
    manifest["made_by"] = "bash scripts/make_pretrained.sh landing"  # `commands` lists `python -m lvm` lines only
    files = {"preview": write_preview(out), **write_preview_png(out, manifest["title"])}
    for key, path in files.items():
        manifest["files"][key] = {"path": path, "sha256": sha256(out / path)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out / 'manifest.json'}: ours q_w2sq {ev['q_w2sq']:.3f}, ABP {manifest['abp']['q_w2sq']:.3f}",
          file=sys.stderr)


def demo(a: argparse.Namespace) -> None:
    """demo: lvm.presets.DEMO, trained from its config file with one torch thread (the checkpoint is reproducible)."""
    out = a.out / "demo"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = rel(save_config(DEMO, out / "config.json"))  # train rewrites it with the same config
    result, train = run_lvm(["train", "--config", cfg, "--out", rel(out), "--threads", "1", "--json"])
    ev, evaluate = run_lvm(["eval", rel(out / "checkpoint.pt"), "--n", "2000", "--threads", "1", "--json"])
    result.update({k: v for k, v in ev.items() if k != "checkpoint"})
    result.pop("checkpoint", None)
    if load_config(out / "config.json") != DEMO:
        raise SystemExit(f"{rel(out / 'config.json')}: train wrote another config than lvm.presets.DEMO")
    title = "Teaching demo: MNIST 0 and 1, d = 2"
    write_manifest(out, title, [train, evaluate], result,
              {"checkpoint": "checkpoint.pt", "config": "config.json", "metrics": "metrics.jsonl",
               "preview": write_preview(out), **write_preview_png(out, title)}, time.perf_counter() - t0)
    landing(a)

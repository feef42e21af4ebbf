"""What each ``python -m lvm`` sub-command does (parsing lives in cli.py)."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint, data as datasets, metrics
from .classifier import accuracy, load_classifier, save_classifier, train_classifier
from .cli import config_from_args, device_of, emit, inference_config
from .config import DataConfig, ModelConfig, LangevinConfig
from .images import ImageError, read_image_file
from .models import Encoder, build_generator, n_params, prior_sample
from .trainer import DivergedError, Trainer


def _progress(total: int, initial: int, desc: str):
    """A tqdm bar and the callback that advances it and shows the latest figures."""
    bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True)
    shown: dict = {}

    def update(rec: dict) -> None:
        shown["mse"] = f"{rec['mse']:.4f}"
        if "latent_fit" in rec:
            shown["fit"] = f"{rec['latent_fit']:.3f}"
        if "unmatched" in rec:
            shown["unmatched"] = f"{rec['unmatched']:.0%}"
        bar.set_postfix(shown, refresh=False)
        bar.update(1)
    return bar, update


RETUNABLE = ("alpha", "lr", "step_size", "steps", "sigma")  # what --resume may change (flags given again)
_FLAG = {"alpha": "--alpha", "lr": "--lr", "step_size": "--step-size", "steps": "--langevin-steps", "sigma": "--sigma"}


def fit(cfg, train_data, out: Path, device, resume: bool, given: frozenset = frozenset()) -> Trainer:
    """Train (or resume) into `out`, logging every record to out/metrics.jsonl.

    A resumed run keeps its checkpoint's config, except the RETUNABLE settings whose flags are in
    `given`. A run that diverges rolls back to its last finite state and saves it before it stops.
    """
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        tr = Trainer.resume(ckpt, train_data, device, epochs=cfg.epochs)
        now = {"alpha": cfg.alpha, "lr": cfg.lr, "step_size": cfg.langevin.step_size,
               "steps": cfg.langevin.steps, "sigma": cfg.langevin.sigma}
        tr.retune(**{k: now[k] for k in RETUNABLE if _FLAG[k] in given})
    else:
        tr = Trainer(cfg, train_data, device)
    log_path = out / "metrics.jsonl"
    if resume and log_path.exists():  # a killed run may have logged iterations after its last checkpoint
        kept = [ln for ln in log_path.read_text().splitlines(keepends=True)
                if ln.strip().endswith("}") and json.loads(ln)["iteration"] <= tr.iteration]
        log_path.write_text("".join(kept))
    bar, update = _progress(tr.total_iterations, tr.iteration, f"{cfg.method} {out.name}")
    tr.ot_progress = lambda k, unmatched: bar.set_postfix_str(f"OT pass {k}, {unmatched:.0%} unmatched")
    with open(log_path, "a" if resume else "w", buffering=1) as log:  # line-buffered: a kill loses no record
        def callback(rec: dict) -> None:
            log.write(json.dumps(rec) + "\n")
            update(rec)
        try:
            tr.fit(callback, checkpoint_path=ckpt)
        except DivergedError as e:  # nothing lost: the last finite state goes to disk for --resume
            bar.close()
            it = tr.rollback()
            tr.save(ckpt)
            raise DivergedError(f"{e}. {ckpt} now holds the last finite state (iteration {it}): add --resume "
                                "and the lower setting to go on from there") from None
    bar.close()
    return tr


def train(a: argparse.Namespace) -> int:
    cfg = config_from_args(a)
    t0 = time.perf_counter()
    tr = fit(cfg, datasets.load(cfg.data, "train"), Path(a.out), device_of(a.device), a.resume, a.given)
    n_fit = min(2000, len(tr.z))
    result = {"checkpoint": str(Path(a.out) / "checkpoint.pt"), "iterations": tr.iteration,
              "seconds": time.perf_counter() - t0, "latent_ot_cost": metrics.latent_ot_cost(tr.z, n_fit, cfg.seed),
              "prior_ot_cost": metrics.prior_baseline_ot_cost(n_fit, cfg.model.latent_dim, cfg.seed)}
    emit(result, a.json)
    return 0


def _test_images(cfg, n: int) -> datasets.ImageData:
    test = datasets.load(cfg.data, "test")
    return test.subset(slice(0, n)) if n else test


def eval(a: argparse.Namespace) -> int:  # noqa: A001 - the sub-command's name
    dev = device_of(a.device)
    cfg, gen, state = checkpoint.load_model(a.checkpoint, dev)
    test = _test_images(cfg, a.n)
    lcfg = inference_config(cfg, a)
    rng = torch.Generator().manual_seed(0)
    z_test, x_rec = metrics.reconstruct(gen, test.x.to(dev), lcfg, rng, restarts=a.restarts)
    z_train = state["latents"]
    n_fit = min(2000, len(z_train))
    result = {"checkpoint": a.checkpoint, "method": cfg.method, "n_test": len(test),
              "test_steps": lcfg.steps, "test_step_size": lcfg.step_size, "restarts": a.restarts,
              "mse": metrics.mse(test.x, x_rec.cpu()),
              "latent_ot_cost": metrics.latent_ot_cost(z_train, n_fit),
              "latent_mmd": metrics.latent_mmd(z_train, n_fit),
              "prior_ot_cost": metrics.prior_baseline_ot_cost(n_fit, cfg.model.latent_dim),
              "test_latent_ot_cost": metrics.latent_ot_cost(z_test, min(2000, len(z_test)))}
    if state.get("encoder"):  # the VAE's own amortised inference, beside the shared Langevin protocol
        enc = Encoder(cfg.model).to(dev)
        enc.load_state_dict(state["encoder"])
        with torch.no_grad():
            result["encoder_mse"] = metrics.mse(test.x, gen(enc.eval()(test.x.to(dev))[0]).cpu())
    if a.classifier:  # its own test sample: MSE needs Langevin per image, FID-C only decoding
        clf = load_classifier(a.classifier)
        real = _test_images(cfg, a.fid_n).x
        with torch.no_grad():
            z = prior_sample(len(real), cfg.model.latent_dim, rng)
            x_gen = torch.cat([gen(zb.to(dev)).cpu() for zb in z.split(1000)])
        result["fid_c"], result["fid_n"] = metrics.fid_c(clf, real, x_gen), len(real)
    emit(result, a.json)
    return 0


def anomaly(a: argparse.Namespace) -> int:
    if a.scores_out and not Path(a.scores_out).resolve().parent.is_dir():  # say so before the scoring, not after
        raise ValueError(f"--scores-out {a.scores_out}: its folder does not exist")
    dev = device_of(a.device)
    if a.checkpoint:
        cfg, gen, _ = checkpoint.load_model(a.checkpoint, dev)
        if cfg.data.name != "mnist" or cfg.data.classes:
            raise ValueError(f"{a.checkpoint} was not trained on the MEG split of MNIST")
    else:
        data_cfg = DataConfig(image_size=a.image_size, channels=a.channels, limit=a.limit)
        cfg = replace(config_from_args(a), data=data_cfg)
    train_data, test = datasets.meg_split(a.holdout, cfg.data)
    if not a.checkpoint:
        out = Path(a.out or f"runs/anomaly-{a.holdout}-s{a.seed}")
        gen = fit(cfg, train_data, out, dev, resume=True, given=a.given).generator.eval()
    if a.n and a.n < len(test):  # a seeded random subset keeps the anomaly share close to the split's
        test = test.subset(torch.from_numpy(np.random.RandomState(a.seed).permutation(len(test))[:a.n]))
    lcfg = inference_config(cfg, a)
    rng = torch.Generator().manual_seed(a.seed)
    scores = metrics.anomaly_scores(gen, test.x.to(dev), lcfg, rng, restarts=a.restarts).cpu()
    result = {"holdout": a.holdout, "seed": a.seed, "method": cfg.method, "n_test": len(test),
              "anomaly_share": float(test.y.float().mean()), "test_steps": lcfg.steps,
              "auprc": metrics.auprc(scores, test.y)}
    if a.scores_out:  # what the app's histogram and precision-recall curve read
        np.savez_compressed(a.scores_out, scores=scores.numpy(), labels=test.y.numpy())
    emit(result, a.json)
    return 0


def score(a: argparse.Namespace) -> int:
    cfg, gen, _ = checkpoint.load_model(a.checkpoint)
    lcfg = inference_config(cfg, a)
    rows, failed = [], 0
    for path in a.images:
        try:
            x = read_image_file(path, cfg.model.image_size, cfg.model.channels)[None]
        except ImageError as e:
            rows.append({"image": path, "error": str(e)})
            failed += 1
            continue
        s = metrics.anomaly_scores(gen, x, lcfg, torch.Generator().manual_seed(a.seed), restarts=a.restarts)
        rows.append({"image": path, "score": float(s[0])})
    if a.json:
        print(json.dumps({"checkpoint": a.checkpoint, "test_steps": lcfg.steps, "scores": rows}))
    else:
        for r in rows:
            print(f"{r['score']:12.3f}  {r['image']}" if "score" in r else f"{'error':>12}  {r['error']}")
    return 1 if failed == len(rows) else 0


def classifier(a: argparse.Namespace) -> int:
    cfg = DataConfig(a.data)
    tr, te = datasets.load(cfg, "train"), datasets.load(cfg, "test")
    model, info = train_classifier(tr.x, tr.y, epochs=a.epochs, seed=a.seed)
    acc = accuracy(model, te.x, te.y)
    save_classifier(model, a.out, {"data": a.data, "epochs": a.epochs, "seed": a.seed, "test_accuracy": acc})
    emit({"out": a.out, "test_accuracy": acc}, a.json)
    return 0


def fetch(a: argparse.Namespace) -> int:
    d = datasets.load(DataConfig(a.data), "all")
    print(f"{a.data}: {len(d)} images ready in {datasets.data_dir()}")
    return 0


def bench(a: argparse.Namespace) -> int:
    """Langevin image-steps/s of each generator, or the OT solvers side by side: one table."""
    if a.what == "ot":
        from .bench_ot import run
        run([int(s) for s in a.sizes.split(",")], [int(s) for s in a.dims.split(",")], a.runs, Path(a.out),
            a.paper_passes, a.budget, tuple(a.sources.split(",")), tuple(a.solvers.split(",")))
        return 0
    from .langevin import infer
    rows = [("mlp", 2, 28, 1), ("conv", 16, 28, 1), ("conv", 64, 28, 1), ("conv", 64, 32, 3), ("conv", 64, 64, 3)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch_size}, K = {a.steps}")
    print("| generator | d | image | params | image-steps/s |\n|---|---|---|---|---|")
    for arch, d, size, ch in rows:
        gen = build_generator(ModelConfig(d, arch, size, ch))
        x, z = torch.rand(a.batch_size, ch, size, size), torch.randn(a.batch_size, d)
        cfg = LangevinConfig(steps=a.steps)
        infer(gen, x, z, cfg)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            infer(gen, x, z, cfg)
            times.append(time.perf_counter() - t0)
        rate = a.batch_size * a.steps / float(np.median(times))
        print(f"| {arch} | {d} | {ch}x{size}x{size} | {n_params(gen):,} | {rate:,.0f} |")
    return 0

"""What each ``lvm`` sub-command does, as typed functions that return plain dicts.

Nothing here parses flags or imports the command line (``lvm.cli`` translates flags
into these calls); experiments and scripts can call them directly.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint, data as datasets, distributed, metrics, scoring
from .classifier import accuracy, load_classifier, save_classifier, train_classifier
from .config import DataConfig, InferenceConfig, LangevinConfig, ModelConfig, TrainConfig, save_config
from .fileio import atomic_write
from .scoring import REFERENCE, check_false_alarm, read_reference, reference, score  # noqa: F401 (`lvm score`, ui)
from .models import Encoder, build_generator, n_params, prior_sample
from .scores import for_detector
from .trainer import DivergedError, Step, Trainer
from .distributed.trainer import DistributedTrainer


def device_of(name: str) -> torch.device:
    """auto (CUDA when present), cpu or cuda[:N].

    Raises:
        ValueError: CUDA was asked for and there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def _progress(total: int, initial: int, desc: str, show: bool = True):
    """A tqdm bar, the callback that advances it with the latest figures, and the OT pass hook."""
    bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True, disable=not show)
    shown: dict = {}

    def update(step: Step) -> None:
        m = step.metrics
        shown["mse"] = f"{m.mse:.4f}"
        if m.chains_w2sq is not None:
            shown["chains W2^2"] = f"{m.chains_w2sq:.3f}"
        if m.q_w2sq is not None:
            shown["q W2^2"] = f"{m.q_w2sq:.3f}"
        if step.correction is not None:
            shown["unmatched"] = f"{step.correction.result.unmatched:.0%}"
        bar.set_postfix(shown, refresh=False)
        bar.update(1)

    def ot_pass(k: int, unmatched: float) -> None:
        bar.set_postfix_str(f"OT pass {k}, {unmatched:.0%} unmatched")
    return bar, update, ot_pass


def fit(cfg: TrainConfig, train_data: datasets.ImageData, out: Path, device: torch.device | str = "cpu",
        resume: bool = False, retune: dict | None = None, max_seconds: float = 0.0) -> Trainer:
    """Train (or resume) into `out`: checkpoint.pt, metrics.jsonl (one `Step.record()` a line), config.json.

    A resumed run keeps its checkpoint's config except `epochs` and the settings in `retune`
    (see Trainer.retune). A run that diverges rolls back to its last finite state and saves it
    before it stops. With `max_seconds` > 0 the run also stops, checkpointed, after the first iteration
    that ends past that many wall-clock seconds of this call (rank 0's clock under torchrun, so every
    rank stops at the same iteration); `--resume` goes on from there.

    Under torchrun (a process group of N > 1, `lvm.distributed.init`) every rank calls this and trains
    its shard (`DistributedTrainer`); rank 0 alone writes the config, the log and the checkpoint and
    shows the progress bar.
    """
    lead = distributed.is_lead()
    trainer = DistributedTrainer if distributed.active() else Trainer
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        tr = trainer.resume(ckpt, train_data, device, epochs=cfg.epochs)
        if retune:
            tr.retune(**retune)
    else:
        tr = trainer(cfg, train_data, device)
    log_path = out / "metrics.jsonl"
    if lead:
        save_config(tr.cfg, out / "config.json")  # the run as it goes on: `train --config` runs it again
    if lead and resume and log_path.exists():  # a killed run may have logged iterations after its last checkpoint
        kept = [ln for ln in log_path.read_text().splitlines(keepends=True)
                if ln.strip().endswith("}") and json.loads(ln)["iteration"] <= tr.iteration]
        log_path.write_text("".join(kept))
    bar, update, ot_pass = _progress(tr.total_iterations, tr.iteration, f"{tr.cfg.method} {out.name}", show=lead)
    opened = open(log_path, "a" if resume else "w", buffering=1) if lead else contextlib.nullcontext()
    stop, t0 = threading.Event(), time.perf_counter()
    with opened as log:  # line-buffered: a kill loses no record
        def callback(step: Step) -> None:
            if log is not None:
                log.write(json.dumps(step.record()) + "\n")
            update(step)
            if max_seconds > 0 and _past(time.perf_counter() - t0 >= max_seconds, tr):
                stop.set()
        try:
            tr.fit(callback, stop=stop, checkpoint_path=ckpt, ot_progress=ot_pass)
        except DivergedError as e:  # nothing lost: the last finite state goes to disk for --resume
            bar.close()
            it = tr.rollback()
            tr.save(ckpt)
            raise DivergedError(f"{e}. {ckpt} now holds the last finite state (iteration {it}): add --resume "
                                "and the lower setting to go on from there") from None
    bar.close()
    return tr


def _past(mine: bool, tr: Trainer) -> bool:
    """Whether the wall-clock budget is spent: this process's clock, or rank 0's for every rank of several."""
    if not distributed.active():
        return mine
    return bool(tr.comm.sum([float(mine) if distributed.is_lead() else 0.0], "the wall-clock budget")[0])


def train(cfg: TrainConfig, out: Path, device: torch.device | str = "cpu", resume: bool = False,
          retune: dict | None = None, max_seconds: float = 0.0) -> dict:
    """`fit`, then the chains' fit to the prior on 2,000 of them beside the prior-vs-prior level."""
    t0 = time.perf_counter()
    tr = fit(cfg, datasets.load(cfg.data, "train"), Path(out), device, resume, retune, max_seconds)
    z = tr.population()
    if z is None:  # a rank other than 0 of several: rank 0 reports
        return {}
    n_fit = min(2000, len(z))
    return {"checkpoint": str(Path(out) / "checkpoint.pt"), "iterations": tr.iteration,
            "of_iterations": tr.total_iterations,
            "seconds": time.perf_counter() - t0,
            "chains_w2sq": metrics.prior_w2sq(z[:n_fit], tr.cfg.seed),
            "latent_ot_cost": metrics.latent_ot_cost(z, n_fit, tr.cfg.seed),
            "prior_ot_cost": metrics.prior_baseline_ot_cost(n_fit, tr.cfg.model.latent_dim, tr.cfg.seed)}


EVAL_BAND_REPEATS = 10  # prior pairs behind eval's on_prior_w2sq and w2sq_sd (n = 2,000: 40 assignments of 1,000)


def _rows(z: torch.Tensor, n: int) -> torch.Tensor:
    """n rows of z, a fixed random subsample (seed 0), all of them if fewer."""
    return z[torch.from_numpy(np.random.RandomState(0).permutation(len(z))[:n])]


def _test_images(cfg: TrainConfig, n: int) -> datasets.ImageData:
    test = datasets.load(cfg.data, "test")
    return test.subset(slice(0, n)) if n else test


def evaluate(path: str, inference: InferenceConfig, classifier: str = "", fid_n: int = 10000,
             device: torch.device | str = "cpu") -> dict:
    """Test MSE with test-time Langevin; the debiased W2^2 to the prior (lvm.distance) of the training chains
    (`chains_w2sq`), of the test latents and of the model's own q(z^K) (`q_w2sq`, with `q_mse`, `q_prior_mse`
    and `on_prior_w2sq`, the band's edge at that n); the old raw OT costs and MMD; FID-C given a classifier."""
    cfg, gen, state = checkpoint.load_model(path, device)
    test = _test_images(cfg, inference.n)
    lcfg = inference.langevin(cfg.langevin)
    rng = torch.Generator().manual_seed(0)
    z_test, x_rec = metrics.reconstruct(gen, test.x.to(device), lcfg, rng, restarts=inference.restarts)
    z_train = state["latents"]
    n_fit = min(2000, len(z_train))
    band = metrics.prior_band(n_fit, cfg.model.latent_dim, EVAL_BAND_REPEATS)
    result = {"checkpoint": str(path), "method": cfg.method, "n_test": len(test),
              "test_steps": lcfg.steps, "test_step_size": lcfg.step_size, "restarts": inference.restarts,
              "mse": metrics.mse(test.x, x_rec.cpu()),
              "latent_ot_cost": metrics.latent_ot_cost(z_train, n_fit),
              "latent_mmd": metrics.latent_mmd(z_train, n_fit),
              "prior_ot_cost": metrics.prior_baseline_ot_cost(n_fit, cfg.model.latent_dim),
              "test_latent_ot_cost": metrics.latent_ot_cost(z_test, min(2000, len(z_test))),
              "w2sq_n": n_fit, "chains_w2sq": metrics.prior_w2sq(_rows(z_train, n_fit)),
              "test_w2sq": metrics.prior_w2sq(_rows(z_test, 2000)), "on_prior_w2sq": band.upper, "w2sq_sd": band.sd}
    if cfg.method != "vae":  # the model's own q(z^K): K training-time steps from noise on n_fit training images
        train = datasets.load(cfg.data, "train")
        idx = torch.from_numpy(np.random.RandomState(0).permutation(len(train))[:n_fit])
        q = metrics.q_fit(gen, train.x[idx].to(device), cfg.langevin)
        result.update(q_w2sq=q.w2sq, q_mse=q.mse, q_prior_mse=q.prior_mse, q_ot_cost=q.ot_cost)  # old: vs prior_ot_cost
    if state.get("encoder"):  # the VAE's own amortised inference, beside the shared Langevin protocol
        enc = Encoder(cfg.model).to(device)
        enc.load_state_dict(state["encoder"])
        with torch.no_grad():
            result["encoder_mse"] = metrics.mse(test.x, gen(enc.eval()(test.x.to(device))[0]).cpu())
    if classifier:  # its own test sample: MSE needs Langevin per image, FID-C only decoding
        clf = load_classifier(classifier)
        real = _test_images(cfg, fid_n).x
        with torch.no_grad():
            z = prior_sample(len(real), cfg.model.latent_dim, rng)
            x_gen = torch.cat([gen(zb.to(device)).cpu() for zb in z.split(1000)])
        result["fid_c"], result["fid_n"] = metrics.fid_c(clf, real, x_gen), len(real)
    return result


def anomaly(holdout: int, inference: InferenceConfig, cfg: TrainConfig | None = None, checkpoint_path: str = "",
            out: str = "", seed: int = 0, scores_out: str = "", device: torch.device | str = "cpu") -> dict:
    """AUPRC on the MEG split with `holdout` as the anomaly class: trains `cfg` (resuming OUT) or scores a checkpoint.

    `seed` picks the test subset (when inference.n is set) and the Langevin noise."""
    if scores_out and not Path(scores_out).resolve().parent.is_dir():  # say so before the scoring, not after
        raise ValueError(f"--scores-out {scores_out}: its folder does not exist")
    if checkpoint_path:
        cfg, gen, _ = checkpoint.load_model(checkpoint_path, device)
        if cfg.data.name != "mnist" or cfg.data.classes:
            raise ValueError(f"{checkpoint_path} was not trained on the MEG split of MNIST")
    elif cfg is None:
        raise ValueError("anomaly needs a config to train or a checkpoint to score")
    elif cfg.data.name != "mnist" or cfg.data.classes:
        raise ValueError("the MEG split is made of all MNIST digits: drop --data and --classes")
    train_data, test = datasets.meg_split(holdout, cfg.data)
    if not checkpoint_path:
        run = Path(out or f"runs/anomaly-{holdout}-s{cfg.seed}")
        gen = fit(cfg, train_data, run, device, resume=True).generator.eval()
    if inference.n and inference.n < len(test):  # a seeded random subset keeps the anomaly share close to the split's
        test = test.subset(torch.from_numpy(np.random.RandomState(seed).permutation(len(test))[:inference.n]))
    lcfg = inference.langevin(cfg.langevin)
    rng = torch.Generator().manual_seed(seed)
    manifest = scoring.read_manifest(checkpoint_path) if checkpoint_path else {}
    score_name = scoring.detector_score(manifest)  # a detector's own score (its manifest's), else the paper's
    if score_name == "joint":
        scores = metrics.anomaly_scores(gen, test.x.to(device), lcfg, rng, restarts=inference.restarts).cpu()
    else:
        scores = torch.from_numpy(for_detector(manifest, gen, test.x.to(device), lcfg, seed))
    result = {"holdout": holdout, "seed": seed, "method": cfg.method, "score": score_name, "n_test": len(test),
              "anomaly_share": float(test.y.float().mean()), "test_steps": lcfg.steps,
              "auprc": metrics.auprc(scores, test.y)}
    if scores_out:  # what the app's histogram and precision-recall curve read
        np.savez_compressed(scores_out, scores=scores.numpy(), labels=test.y.numpy())
    return result


HELD_OUT = 0.2  # share of a user's normal images held out for the reference scores and the threshold


def anomaly_folder(cfg: TrainConfig, inference: InferenceConfig, out: str = "", false_alarm: float = 0.05,
                   test_root: str = "", device: torch.device | str = "cpu", batch_size: int = 256) -> dict:
    """A detector for the user's own normal images (cfg.data: a folder, flat or with class subfolders).

    A seeded split (cfg.seed) holds out HELD_OUT of the images; the model trains on the rest (resuming OUT),
    the held-out images are scored (one noise stream per image, as `score` does) and OUT/reference.json
    gets their scores and the threshold that flags `false_alarm` of them. With `test_root` (normal/ and
    anomaly/ subfolders) it also reports the AUPRC, the chance level, and recall and false-alarm rate at
    that threshold.
    """
    if cfg.data.name != "folder":
        raise ValueError("anomaly without --holdout trains on your own normal images: pass --data folder --root DIR")
    check_false_alarm(false_alarm)  # before any training
    test = datasets.normal_anomaly_folder(test_root, cfg.data) if test_root else None  # and a bad test folder
    normal = datasets.load(cfg.data, "train")
    n_held = int(round(HELD_OUT * len(normal)))
    if n_held < 5 or len(normal) - n_held < cfg.batch_size // 4:
        raise ValueError(f"{cfg.data.root}: {len(normal)} images are too few: at least 25 are needed (a fifth is "
                         f"held out for the threshold), and many more for a useful detector")
    perm = torch.from_numpy(np.random.RandomState(cfg.seed).permutation(len(normal)))
    run = Path(out or f"runs/anomaly-folder-s{cfg.seed}")
    gen = fit(cfg, normal.subset(perm[n_held:]), run, device, resume=True).generator.eval()
    lcfg = inference.langevin(cfg.langevin)

    def scores_of(x: torch.Tensor, what: str) -> np.ndarray:
        with tqdm(total=len(x), desc=what, unit="image", dynamic_ncols=True) as bar:
            return metrics.anomaly_scores_per_image(gen, x.to(device), lcfg, seed=cfg.seed, batch_size=batch_size,
                                                    restarts=inference.restarts, refine=inference.refine,
                                                    progress=lambda n: bar.update(n - bar.n)).cpu().numpy()
    held = scores_of(normal.subset(perm[:n_held]).x, "held-out normal images")
    ref = reference(held, false_alarm, data=str(cfg.data.root), n_train=len(normal) - n_held, seed=cfg.seed,
                    test_steps=lcfg.steps, restarts=inference.restarts,
                    preprocess="center-crop")  # lvm.data's folder loader: `lvm score` prepares images the same way
    atomic_write(run / REFERENCE, lambda f: f.write(json.dumps(ref, indent=1).encode()))
    result = {"out": str(run), "reference": str(run / REFERENCE), "n_train": ref["n_train"], "n_held_out": n_held,
              "threshold": ref["threshold"], "false_alarm": false_alarm, "test_steps": lcfg.steps}
    if test is not None:
        s, y = scores_of(test.x, "test images"), test.y.numpy()
        flagged = s > ref["threshold"]
        result.update(test_root=test_root, n_test=len(y), anomaly_share=float(y.mean()),
                      auprc=metrics.auprc(torch.from_numpy(s), test.y),
                      recall=float(flagged[y == 1].mean()) if (y == 1).any() else float("nan"),
                      test_false_alarm=float(flagged[y == 0].mean()) if (y == 0).any() else float("nan"))
    return result


def classifier(data: str, out: str, epochs: int = 3, seed: int = 0) -> dict:
    """Train the FID-C feature classifier on `data`'s training split; its test accuracy."""
    cfg = DataConfig(data)
    tr, te = datasets.load(cfg, "train"), datasets.load(cfg, "test")
    model, _ = train_classifier(tr.x, tr.y, epochs=epochs, seed=seed)
    acc = accuracy(model, te.x, te.y)
    save_classifier(model, out, {"data": data, "epochs": epochs, "seed": seed, "test_accuracy": acc})
    return {"out": out, "test_accuracy": acc}


def fetch(data: str) -> str:
    d = datasets.load(DataConfig(data), "all")
    return f"{data}: {len(d)} images ready in {datasets.data_dir()}"


def bench_langevin(batch_size: int = 256, steps: int = 10) -> str:
    """Langevin image-steps/s of each generator: a markdown table."""
    from .langevin import infer
    rows = [("mlp", 2, 28, 1), ("conv", 16, 28, 1), ("conv", 64, 28, 1), ("conv", 64, 32, 3), ("conv", 64, 64, 3)]
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch_size}, K = {steps}",
             "| generator | d | image | params | image-steps/s |", "|---|---|---|---|---|"]
    for arch, d, size, ch in rows:
        gen = build_generator(ModelConfig(d, arch, size, ch))
        x, z = torch.rand(batch_size, ch, size, size), torch.randn(batch_size, d)
        cfg = LangevinConfig(steps=steps)
        infer(gen, x, z, cfg)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            infer(gen, x, z, cfg)
            times.append(time.perf_counter() - t0)
        rate = batch_size * steps / float(np.median(times))
        lines.append(f"| {arch} | {d} | {ch}x{size}x{size} | {n_params(gen):,} | {rate:,.0f} |")
    return "\n".join(lines)

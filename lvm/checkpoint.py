"""Checkpoints: everything needed to resume, saved atomically, loaded safely.

A checkpoint is a plain dict of tensors, numbers, strings and containers, so
it loads with ``torch.load(..., weights_only=True)``: a file carrying any
pickled object is refused rather than executed. Saving writes a temporary
file in the same directory, fsyncs it and renames it over the old one, so a
process killed mid-save leaves the previous checkpoint intact. Both the
atomic save and the safe read live in :mod:`lvm.fileio`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .fileio import CheckpointError, atomic_save, read_torch

FORMAT_VERSION = 1
REQUIRED = ("format_version", "config", "model", "iteration")


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training state (plus the format version) to `path` atomically."""
    return atomic_save(path, {"format_version": FORMAT_VERSION, **state})


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its shape.

    Raises:
        CheckpointError: missing, truncated, not a checkpoint, carrying pickled
            objects, or of an unknown format version.
    """
    state = read_torch(path, map_location)
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise CheckpointError(f"{path}: not an lvm checkpoint (needs keys {', '.join(REQUIRED)})")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {state['format_version']}, this code reads {FORMAT_VERSION}")
    return state


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """(config, generator in eval mode, raw state) from a checkpoint or a pretrained file.

    Raises:
        CheckpointError: as ``load``, or when the weights do not fit the
            architecture and latent size the checkpoint's config describes.
    """
    from .config import from_dict
    from .models import build_generator

    state = load(path, map_location)
    try:
        cfg = from_dict(state["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: its config is not one this code understands ({e})") from e
    generator = build_generator(cfg.model)
    try:
        generator.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [str(e)]
        raise CheckpointError(f"{path}: the weights do not fit a {cfg.model.arch} generator with latent size "
                              f"{cfg.model.latent_dim} ({first[0].strip()[:200]})") from e
    return cfg, generator.eval().to(map_location), state

"""Checkpoints: everything needed to resume, saved atomically, loaded safely.

A checkpoint is a plain dict of tensors, numbers, strings and containers, so
it loads with ``torch.load(..., weights_only=True)``: a file carrying any
pickled object is refused rather than executed. Saving writes a temporary
file in the same directory, fsyncs it and renames it over the old one, so a
process killed mid-save leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

FORMAT_VERSION = 1
REQUIRED = ("format_version", "config", "model", "iteration")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why."""


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write` on a temporary file beside `path`, fsync it, rename it over `path`.

    A process killed at any point leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(path: str | Path, payload: dict[str, Any]) -> Path:
    """torch.save `payload` to `path` atomically."""
    return atomic_write(path, lambda f: torch.save(payload, f))


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training state (plus the format version) to `path` atomically."""
    return atomic_save(path, {"format_version": FORMAT_VERSION, **state})


def read(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one loses its directory
        raise CheckpointError(f"{path}: unreadable, truncated or not a torch file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused, it carries pickled objects that are not plain tensors or "
                              f"containers ({str(e).splitlines()[0][:200]})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, AttributeError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable, truncated or not a torch file ({str(e)[:300]})") from e


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its shape.

    Raises:
        CheckpointError: missing, truncated, not a checkpoint, carrying pickled
            objects, or of an unknown format version.
    """
    state = read(path, map_location)
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

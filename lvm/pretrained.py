"""Models shipped in ``pretrained/``: one folder each, a checkpoint and a ``manifest.json``.

The manifest records the data, the config, the metrics, the command that made
the model and the sha256 of every file it lists; `load` refuses a file whose
hash does not match. Checkpoints go through ``lvm.checkpoint.load_model``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .checkpoint import CheckpointError, load_model
from .config import TrainConfig

ENV = "LVM_PRETRAINED_DIR"  # where the pretrained models are; a front end sets it to its own copy


def root() -> Path:
    """The folder of pretrained models: $LVM_PRETRAINED_DIR, else ./pretrained (the repository's, when the
    command runs from its root; the app sets the variable to the repository's copy wherever it starts)."""
    return Path(os.environ.get(ENV) or "pretrained")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One pretrained model: its folder and parsed manifest."""

    name: str
    folder: Path
    manifest: dict

    @property
    def title(self) -> str:
        return self.manifest.get("title", self.name)

    @property
    def kind(self) -> str:
        """'generator' (a checkpoint `load` reads) or 'classifier' (a FID-C feature classifier)."""
        return self.manifest.get("kind", "generator")

    def path(self, key: str = "checkpoint") -> Path:
        return self.folder / self.manifest["files"][key]["path"]

    def has(self, key: str) -> bool:
        return key in self.manifest.get("files", {})

    def verified(self, key: str) -> Path:
        """The file's path after checking its sha256 against the manifest.

        Raises:
            CheckpointError: the file is missing or its hash differs.
        """
        p = self.path(key)
        if not p.is_file():
            raise CheckpointError(f"{p}: listed in {self.name}'s manifest but missing")
        if sha256(p) != self.manifest["files"][key]["sha256"]:
            raise CheckpointError(f"{p}: sha256 differs from {self.name}'s manifest; re-run scripts/make_pretrained.py")
        return p

    def load(self) -> tuple[TrainConfig, nn.Module, dict]:
        """(config, generator in eval mode, raw checkpoint state), hash-checked."""
        return load_model(self.verified("checkpoint"))

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        """A hash-checked ``.npz`` side file (e.g. ``test_scores``) as a dict of arrays."""
        with np.load(self.verified(key)) as f:
            return {k: f[k] for k in f.files}


def available(folder: str | Path | None = None, kind: str | None = "generator") -> list[Entry]:
    """Every subfolder of `folder` (default `root()`) with a manifest.json of `kind` (None: any), by name."""
    out = []
    for m in sorted(Path(folder or root()).glob("*/manifest.json")):
        try:
            entry = Entry(m.parent.name, m.parent, json.loads(m.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{m}: unreadable manifest ({e})") from e
        if kind is None or entry.kind == kind:
            out.append(entry)
    return out


def find(name: str, folder: str | Path | None = None, kind: str | None = "generator") -> Entry | None:
    return next((e for e in available(folder, kind) if e.name == name), None)

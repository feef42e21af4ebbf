"""The models the views use: pretrained entries and the user's own detectors (cached, shared by every browser
session), seeded test images, and the model picker over the live run and pretrained/."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st
from torch import nn

from lvm import data as datasets, pretrained
from lvm.checkpoint import CheckpointError
from lvm.config import DataConfig, TrainConfig
from ui import registry


LIVE = "live training run"


@st.cache_resource(show_spinner="loading the model")
def load_pretrained(name: str) -> tuple[TrainConfig, nn.Module, dict]:
    """(config, generator, checkpoint state) of pretrained/NAME, hash-checked, shared by all sessions."""
    entry = pretrained.find(name)
    if entry is None:
        raise CheckpointError(f"pretrained/{name} is not there")
    return entry.load()


@st.cache_resource(show_spinner="loading your detector", max_entries=8)
def _own_detector(folder: str, version: int) -> tuple[TrainConfig, nn.Module, dict, int]:
    from lvm.checkpoint import load_model
    from lvm.commands import REFERENCE, read_reference

    cfg, gen, _ = load_model(Path(folder) / "checkpoint.pt")
    return cfg, gen, read_reference(Path(folder) / REFERENCE), version


def load_detector(folder: str) -> tuple[TrainConfig, nn.Module, dict, int]:
    """(config, generator, reference, version) of the run folder `lvm anomaly --data folder --out FOLDER` wrote,
    cached until its checkpoint changes; the version (the checkpoint's mtime in ns) changes with it.

    Raises:
        ValueError: the folder, its checkpoint.pt or its reference.json is missing, or the file is not a reference.
        CheckpointError: the checkpoint cannot be read.
    """
    from lvm.commands import REFERENCE

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ValueError(f"{folder}: no such folder")
    for name in ("checkpoint.pt", REFERENCE):
        if not (path / name).is_file():
            raise ValueError(f"{folder} has no {name}: train a detector there with `python -m lvm anomaly --data "
                             f"folder --root YOUR_NORMAL_IMAGES --out {folder}`")
    return _own_detector(str(path.resolve()), (path / "checkpoint.pt").stat().st_mtime_ns)


@st.cache_data(show_spinner="loading test images")
def test_images(data: DataConfig, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n seeded test images (N, C, H, W) of `data` (its class filter kept, its limit dropped) and labels."""
    test = datasets.load(replace(data, limit=0), "test")
    idx = np.random.RandomState(seed).permutation(len(test))[:n]
    return test.x[idx].numpy(), test.y[idx].numpy()


@dataclass(frozen=True)
class Model:
    """A generator the pages can use: where it came from, its config, and a version for caching."""

    label: str
    cfg: TrainConfig
    generator: nn.Module
    version: int
    name: str = ""              # the pretrained/ entry, "" for the live run


def pick_model(key: str, only: tuple[str, ...] = ()) -> Model | None:
    """A selectbox over the live run and the pretrained models (or just `only`); None when there is none."""
    names = [e.name for e in pretrained.available() if not only or e.name in only]
    s = registry.sessions().get("main")
    options = ([LIVE] if s is not None and s.view().iteration > 0 and not only else []) + names
    if not options:
        st.info("No model yet: train one on the Train page, or run `bash scripts/make_pretrained.sh` "
                "to fill pretrained/.")
        return None
    choice = st.selectbox("Model", options, key=key)
    if choice == LIVE:
        cfg, gen, it = s.model()
        return Model(f"{LIVE} at iteration {it}", cfg, gen, it)
    try:
        cfg, gen, state = load_pretrained(choice)
    except CheckpointError as e:
        st.error(str(e))
        return None
    return Model(f"pretrained/{choice}", cfg, gen, -1, choice)

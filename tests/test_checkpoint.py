"""Behaviour of lvm.checkpoint: round trip, atomic replacement, refusal of unsafe or broken files."""
from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from lvm import checkpoint, fileio
from lvm.checkpoint import CheckpointError, load, load_model, save
from lvm.config import DataConfig, ModelConfig, TrainConfig
from lvm.data import ImageData
from lvm.models import build_generator
from lvm.trainer import Trainer

CFG = TrainConfig(batch_size=16, epochs=1, data=DataConfig(limit=32),
                  model=ModelConfig(latent_dim=2, arch="mlp", width=4))
EXECUTED = []  # a refused pickle must never get to run code


class Payload:
    """An arbitrary object: unpickling it would call __setstate__."""

    def __setstate__(self, state: dict) -> None:
        EXECUTED.append(state)


@pytest.fixture()
def trainer() -> Trainer:
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.rand(32, 1, 28, 28, generator=g), torch.zeros(32, dtype=torch.long))
    tr = Trainer(CFG, data)
    tr.step()
    return tr


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_keeps_every_tensor(trainer: Trainer, tmp_path: Path) -> None:
    path = save(tmp_path / "run" / "ckpt.pt", trainer.state_dict())  # parent directory is created
    state = load(path)
    assert state["format_version"] == checkpoint.FORMAT_VERSION
    assert state["config"] == asdict(CFG) and state["iteration"] == 1
    assert torch.equal(state["latents"], trainer.z) and torch.equal(state["targets"], trainer.targets)
    for k, v in trainer.generator.state_dict().items():
        assert torch.equal(state["model"][k], v), k
    assert state["optimizer"]["state"][0]["step"] == trainer.optimizer.state_dict()["state"][0]["step"]

    cfg, gen, _ = load_model(path)
    assert cfg == CFG and not gen.training
    z = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.equal(gen(z), trainer.generator(z))
    assert _leftovers(path.parent) == []


def test_failed_save_leaves_the_old_checkpoint_intact(trainer: Trainer, tmp_path: Path, monkeypatch) -> None:
    path = save(tmp_path / "ckpt.pt", trainer.state_dict())
    old = path.read_bytes()

    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda cannot be pickled: fails midway
        save(path, {**trainer.state_dict(), "iteration": 99, "hook": lambda: None})
    assert path.read_bytes() == old and _leftovers(tmp_path) == []

    def no_rename(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(fileio.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        save(path, {**trainer.state_dict(), "iteration": 99})
    monkeypatch.undo()
    assert path.read_bytes() == old and _leftovers(tmp_path) == []
    assert load(path)["iteration"] == 1


def test_pickled_objects_are_refused_without_running_them(trainer: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, **trainer.state_dict(), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled objects"):
        load(path)
    with pytest.raises(CheckpointError):
        load_model(path)
    assert EXECUTED == []


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_file_is_refused(trainer: Trainer, tmp_path: Path, keep: float) -> None:
    path = save(tmp_path / "ckpt.pt", trainer.state_dict())
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated"):
        load(path)


def test_missing_foreign_and_future_files_are_refused(trainer: Trainer, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        load(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        load(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an lvm checkpoint"):
        load(tmp_path / "plain.pt")
    torch.save({**trainer.state_dict(), "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load(tmp_path / "future.pt")


def test_weights_of_another_latent_size_are_refused(trainer: Trainer, tmp_path: Path) -> None:
    other = build_generator(ModelConfig(latent_dim=4, arch="mlp", width=4))
    path = save(tmp_path / "ckpt.pt", {**trainer.state_dict(), "model": other.state_dict()})
    with pytest.raises(CheckpointError, match="latent size 2"):
        load_model(path)


def test_weights_of_another_architecture_are_refused(trainer: Trainer, tmp_path: Path) -> None:
    conv = build_generator(ModelConfig(latent_dim=2, arch="conv", width=8))  # the config says mlp, d = 2
    path = save(tmp_path / "ckpt.pt", {**trainer.state_dict(), "model": conv.state_dict()})
    with pytest.raises(CheckpointError, match="do not fit a mlp generator"):
        load_model(path)

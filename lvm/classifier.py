"""The small CNN whose penultimate features define FID-C (PROTOCOL section 2).

Trained on a data set's training split and shipped in ``pretrained/``; it has no
dropout or batch norm, so its features do not depend on the module's mode or
on which other images share a batch.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .fileio import atomic_save, read_torch

FORMAT_VERSION = 1
_CONFIG_KEYS = {"channels", "image_size", "n_classes", "feat_dim"}


class Classifier(nn.Module):
    """(B, C, S, S) -> [conv3x3 -> ReLU -> maxpool2] x 2 -> fc feat_dim -> ReLU -> fc n_classes.

    Args:
        channels: C, 1 or 3.
        image_size: S, 28, 32 or 64.
        n_classes: number of labels.
        feat_dim: size of the penultimate layer (the FID-C features).
    """

    def __init__(self, channels: int = 1, image_size: int = 28, n_classes: int = 10, feat_dim: int = 128):
        super().__init__()
        if channels not in (1, 3) or image_size not in (28, 32, 64) or n_classes < 2 or feat_dim < 1:
            raise ValueError(f"bad classifier shape: channels={channels}, image_size={image_size}, "
                             f"n_classes={n_classes}, feat_dim={feat_dim}")
        self.config = {"channels": channels, "image_size": image_size, "n_classes": n_classes, "feat_dim": feat_dim}
        self.extra: dict = {}  # what the saved file said about the training (set by load_classifier)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Linear(32 * (image_size // 4) ** 2, feat_dim)
        self.head = nn.Linear(feat_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feat_dim), after the ReLU that feeds the last layer."""
        return F.relu(self.fc(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, n_classes) logits


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of images whose arg-max logit equals the label."""
    correct = sum(int((model(xb).argmax(1) == yb.to(xb.device)).sum())
                  for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return correct / max(len(y), 1)


def train_classifier(
    x: torch.Tensor, y: torch.Tensor, epochs: int = 2, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
    progress: bool = True, n_classes: int | None = None,
) -> tuple[Classifier, dict]:
    """Train a :class:`Classifier` with Adam on the cross-entropy.

    Deterministic on CPU for a given seed: the initial weights and the shuffling
    come from seeded generators and the global RNG state is left as it was.

    Args:
        x: images (N, C, S, S) in [0, 1]; the model lives on x's device.
        y: int64 labels (N,).
        epochs: passes over the data.
        batch_size: images per Adam step.
        lr: Adam learning rate.
        seed: seeds the initial weights and the batch order.
        progress: show a tqdm bar over the steps.
        n_classes: number of labels; max(y) + 1 by default.

    Returns:
        The trained model and {"train_loss" (last epoch's mean), "train_accuracy",
        "epoch_losses", "epochs", "steps", "seconds"}.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images, and some of each: {len(x)} images, {len(y)} labels")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    y = y.long().to(x.device)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(x.shape[1], x.shape[-1], n_classes).to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(x) // batch_size)
    epoch_losses, t0 = [], time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc="classifier", disable=not progress, leave=False)
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=order_rng).split(batch_size):
            idx = idx.to(x.device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        epoch_losses.append(total / len(x))
    bar.close()
    metrics = {"train_loss": epoch_losses[-1],
               "train_accuracy": accuracy(model, x, y), "epoch_losses": epoch_losses, "epochs": epochs,
               "steps": epochs * steps_per_epoch, "seconds": time.perf_counter() - t0}
    return model, metrics


def save_classifier(model: Classifier, path: str | Path, extra: dict | None = None) -> None:
    """Write {format_version, config, state_dict, extra} atomically.

    A temporary file in the target's directory is flushed, fsynced and renamed
    over the target, so a crash never leaves a half-written file. ``extra``
    (e.g. data set and test accuracy) must hold only plain Python values and
    tensors, since the file is read back with ``weights_only=True``.
    """
    payload = {"format_version": FORMAT_VERSION, "config": dict(model.config),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "extra": dict(extra or {})}
    atomic_save(path, payload)


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> Classifier:
    """Read a file written by :func:`save_classifier` (``torch.load(..., weights_only=True)``).

    The file's ``extra`` dict is attached to the model as ``model.extra``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a classifier file of this format: not a
            torch file, holds pickled objects other than tensors and plain
            values, lacks a key, has another format version or mismatched weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier file at {path}")
    payload = read_torch(path, map_location)  # CheckpointError (a ValueError) for unsafe or damaged files
    if not isinstance(payload, dict):
        raise ValueError(f"{path} holds a {type(payload).__name__}, not a classifier dict")
    missing = {"format_version", "config", "state_dict", "extra"} - payload.keys()
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {payload['format_version']!r}, expected {FORMAT_VERSION}")
    config = payload["config"]
    if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
        raise ValueError(f"{path} has a bad config {config!r}; expected keys {sorted(_CONFIG_KEYS)}")
    model = Classifier(**config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: weights do not fit the config {config}: {str(err)[:300]}") from err
    model.extra = payload["extra"]
    return model.to(map_location)

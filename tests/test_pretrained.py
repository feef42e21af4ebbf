"""The models shipped in pretrained/: each file matches its manifest, each model loads and does what
its manifest says, and the whole folder stays under 30 MB."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lvm import CheckpointError, data as datasets, metrics, pretrained
from lvm.config import DataConfig
from lvm.classifier import accuracy, load_classifier

ENTRIES = pretrained.available(kind=None)
GENERATORS = [e for e in ENTRIES if e.kind == "generator"]
ANOMALY = [e for e in GENERATORS if e.has("test_scores")]
CLASSIFIERS = [e for e in ENTRIES if e.kind == "classifier"]
names = lambda e: e.name  # noqa: E731


def test_pretrained_holds_the_models_and_stays_under_30_mb() -> None:
    total = sum(p.stat().st_size for p in pretrained.root().rglob("*") if p.is_file())
    assert total < 30 * 2**20, f"pretrained/ holds {total / 2**20:.1f} MB"
    assert "demo" in {e.name for e in GENERATORS}


@pytest.mark.parametrize("entry", ENTRIES, ids=names)
def test_every_listed_file_matches_its_sha256_and_the_commands_are_recorded(entry: pretrained.Entry) -> None:
    for key in entry.manifest["files"]:
        entry.verified(key)
    assert entry.manifest["commands"] and all(c.startswith("python -m lvm ") for c in entry.manifest["commands"])


@pytest.mark.parametrize("entry", GENERATORS, ids=names)
def test_generators_load_and_decode_prior_samples_to_images(entry: pretrained.Entry) -> None:
    cfg, gen, _ = entry.load()
    with torch.no_grad():
        x = gen(torch.randn(4, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
    assert torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("entry", ANOMALY, ids=names)
def test_shipped_test_scores_give_the_manifest_auprc(entry: pretrained.Entry) -> None:
    s = entry.arrays("test_scores")
    assert len(s["scores"]) == entry.manifest["n_test"]
    assert metrics.auprc(s["scores"], s["labels"]) == pytest.approx(entry.manifest["metrics"]["auprc"], abs=1e-9)
    assert s["labels"].mean() == pytest.approx(entry.manifest["metrics"]["anomaly_share"], abs=1e-6)


@pytest.mark.skipif(pretrained.find("anomaly-4") is None, reason="pretrained/anomaly-4 is missing")
def test_shipped_scores_are_what_the_model_gives_on_its_test_split() -> None:
    """The first batch (500 images) of anomaly-4's seeded test subset, rescored from the checkpoint."""
    entry = pretrained.find("anomaly-4")
    cfg, gen, _ = entry.load()
    _, test = datasets.meg_split(entry.manifest["holdout"], replace(cfg.data, limit=0))
    idx = np.random.RandomState(0).permutation(len(test))[:500]
    lcfg = replace(cfg.langevin, steps=entry.manifest["test_steps"])
    got = metrics.anomaly_scores(gen, test.x[torch.from_numpy(idx)], lcfg, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(got.numpy(), entry.arrays("test_scores")["scores"][:500], rtol=1e-4)


@pytest.mark.parametrize("entry", CLASSIFIERS, ids=names)
def test_classifiers_load_and_classify_test_images_as_their_manifest_says(entry: pretrained.Entry) -> None:
    model = load_classifier(entry.verified("classifier"))
    try:
        test = datasets.load(DataConfig(entry.manifest["data"]["name"], limit=1000), "test")
    except datasets.MissingDataError as e:  # Fashion-MNIST needs Debian's package (scripts/setup.sh installs it)
        pytest.skip(str(e).splitlines()[0])
    acc = accuracy(model, test.x, test.y)
    assert acc > entry.manifest["metrics"]["test_accuracy"] - 0.03


def test_a_changed_checkpoint_is_refused(tmp_path: Path) -> None:
    shutil.copytree(pretrained.find("demo").folder, tmp_path / "demo")
    with open(tmp_path / "demo" / "checkpoint.pt", "r+b") as f:
        f.seek(-10, 2)
        byte = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        pretrained.find("demo", tmp_path).load()

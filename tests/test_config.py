"""Configs own their rules (lvm.config): validation across fields, JSON round trips, older checkpoints' layout."""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from lvm import pretrained
from lvm.config import (DataConfig, FastOTConfig, InferenceConfig, LangevinConfig, ModelConfig, OTConfig,
                        PaperOTConfig, TrainConfig, from_dict, load_config, save_config)

RICH = TrainConfig(method="ours", alpha=0.3, ot_every=7, seed=3, persistent=False,
                   data=DataConfig("mnist", (4, 1), limit=50), model=ModelConfig(2),
                   langevin=LangevinConfig(5, 0.05, 0.15),
                   ot=OTConfig("paper", max_iter=9, paper=PaperOTConfig(epsilon=0.1, betas=(0.8, 0.99)),
                               fast=FastOTConfig(tol=1e-3)))


def test_a_config_round_trips_through_json(tmp_path: Path) -> None:
    path = save_config(RICH, tmp_path / "run.json")
    assert load_config(path) == RICH
    assert from_dict(json.loads(json.dumps(asdict(RICH)))) == RICH
    assert load_config(path).data.classes == (4, 1) and load_config(path).ot.paper.betas == (0.8, 0.99)


def test_method_abp_means_alpha_zero() -> None:
    assert TrainConfig(method="abp").alpha == 0.0 and TrainConfig().alpha == 0.5
    assert not TrainConfig(method="abp").corrects and TrainConfig().corrects
    with pytest.raises(ValueError, match="abp is alpha = 0"):
        TrainConfig(method="abp", alpha=0.5)
    with pytest.raises(ValueError, match="abp is alpha = 0"):
        replace(TrainConfig(), method="abp")


def test_data_and_model_must_agree_on_image_size_and_channels() -> None:
    with pytest.raises(ValueError, match="image_size"):
        TrainConfig(data=DataConfig(image_size=32))
    with pytest.raises(ValueError, match="channels"):
        TrainConfig(model=ModelConfig(channels=3))
    TrainConfig(data=DataConfig(image_size=32, channels=3), model=ModelConfig(image_size=32, channels=3))


def test_the_generator_follows_the_latent_size_unless_named() -> None:
    assert ModelConfig(2).arch == "mlp" and ModelConfig(16).arch == "conv"
    assert ModelConfig(2, "conv").arch == "conv"
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="resnet")


def test_unknown_or_invalid_settings_are_refused_with_their_name(tmp_path: Path) -> None:
    d = asdict(TrainConfig())
    d["langevin"]["stepsize"] = 0.1
    with pytest.raises(ValueError, match="stepsize in config.langevin"):
        from_dict(d)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    d = asdict(TrainConfig())
    d["ot"]["solver"] = "sinkhorn"
    (tmp_path / "solver.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="solver.json: OT solver must be one of"):
        load_config(tmp_path / "solver.json")


def test_older_flat_ot_settings_are_read_into_the_nested_layout() -> None:
    old = asdict(TrainConfig())
    old["ot"] = {"solver": "paper", "epsilon": 0.2, "lr": 0.03, "betas": [0.9, 0.9], "max_iter": 50,
                 "chunk": 128, "tol": 1e-3, "scaling": 4.0, "candidates": 16, "coarse": 0}
    ot = from_dict(old).ot
    assert ot == OTConfig("paper", 50, 128, FastOTConfig(1e-3, 4.0, 16, 0), PaperOTConfig(0.2, 0.03, (0.9, 0.9)))


@pytest.mark.parametrize("entry", pretrained.available(), ids=lambda e: e.name)
def test_every_shipped_manifest_config_is_a_valid_config(entry: pretrained.Entry) -> None:
    """The manifest's config is a valid config, and the one its checkpoint was trained with (what the app shows
    and `--config` reruns is the model that is shipped)."""
    from lvm.checkpoint import load

    cfg = from_dict(entry.manifest["config"])
    assert cfg == from_dict(load(entry.path())["config"])


def test_inference_config_takes_the_models_step_size_unless_given() -> None:
    trained = LangevinConfig(20, 0.07, 0.3)
    assert InferenceConfig(50).langevin(trained) == LangevinConfig(50, 0.07, 0.3)
    assert InferenceConfig(50, 0.1).langevin(trained).step_size == 0.1
    with pytest.raises(ValueError, match="restarts"):
        InferenceConfig(restarts=0)

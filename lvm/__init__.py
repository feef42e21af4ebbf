"""lvm: deep latent variable models learned by short-run Langevin inference with OT correction.

An implementation of An, Xie and Li, "Learning Deep Latent Variable Models by
Short-Run MCMC Inference with Optimal Transport Correction" (CVPR 2021).
"""
__version__ = "0.2.0"

import importlib

# Public names and the module that defines each: imported on first use (PEP 562), so that `import lvm` (and
# `lvm.config`, `lvm.presets`) does not import torch. tests/test_package.py checks both.
_WHERE = {
    "CheckpointError": "checkpoint", "load_model": "checkpoint",
    "DataConfig": "config", "LangevinConfig": "config", "ModelConfig": "config", "OTConfig": "config",
    "TrainConfig": "config",
    "ImageData": "data", "MissingDataError": "data", "load": "data", "meg_split": "data",
    "energy": "langevin", "infer": "langevin",
    "ConvGenerator": "models", "Encoder": "models", "MLPGenerator": "models", "build_generator": "models",
    "prior_sample": "models",
    "OTResult": "ot", "WarmStart": "ot", "correct": "ot", "solve": "ot",
    "DivergedError": "trainer", "Trainer": "trainer",
    "DistributedTrainer": "distributed.trainer",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_WHERE))


__all__ = [
    "CheckpointError", "ConvGenerator", "DataConfig", "DistributedTrainer", "DivergedError", "Encoder", "ImageData",
    "LangevinConfig", "MLPGenerator", "MissingDataError", "ModelConfig", "OTConfig", "OTResult",
    "TrainConfig", "Trainer", "WarmStart", "build_generator", "correct", "energy", "infer", "load", "load_model",
    "meg_split", "prior_sample", "solve",
]

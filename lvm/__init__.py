"""lvm: deep latent variable models learned by short-run Langevin inference with OT correction.

An implementation of An, Xie and Li, "Learning Deep Latent Variable Models by
Short-Run MCMC Inference with Optimal Transport Correction" (CVPR 2021).
"""
__version__ = "0.2.0"

from .checkpoint import CheckpointError, load_model
from .config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig
from .data import ImageData, MissingDataError, load, meg_split
from .langevin import energy, infer
from .models import ConvGenerator, Encoder, MLPGenerator, build_generator, prior_sample
from .ot import OTResult, WarmStart, correct, solve
from .trainer import DivergedError, Trainer
from .trainer_dist import DistributedTrainer

__all__ = [
    "CheckpointError", "ConvGenerator", "DataConfig", "DistributedTrainer", "DivergedError", "Encoder", "ImageData",
    "LangevinConfig", "MLPGenerator", "MissingDataError", "ModelConfig", "OTConfig", "OTResult",
    "TrainConfig", "Trainer", "WarmStart", "build_generator", "correct", "energy", "infer", "load", "load_model",
    "meg_split", "prior_sample", "solve",
]

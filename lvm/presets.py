"""Named training configs, each with where its values were measured.

Importing this module does not import torch (`lvm.config` is plain dataclasses).
"""
from __future__ import annotations

from .config import DataConfig, LangevinConfig, ModelConfig, OTConfig, TrainConfig

# The teaching demo, the app's default run and the config of pretrained/demo (scripts/make_pretrained.py trains
# it with `lvm train --config`): MNIST 0 and 1, d = 2 (the paper's Fig. 2), MLP generator. alpha, K, s and the
# 2,000 images were chosen by `python -m experiments.demo_settings` (results/demo_settings.md: of 16 candidates
# the only one whose own q(z^K) ended within 5x of the prior level, at most a fifth of ABP's and falling; no
# alpha 0.5 candidate met that); the hidden width 128 and a correction every 8 iterations by
# `experiments.demo_speed` at 213567e (results/notes/demo_speed.md: the only cheaper variant meeting that bar on three
# seeds, twice the iterations/s). A live session ignores `epochs`: it runs until paused.
DEMO = TrainConfig(method="ours", alpha=1.0, ot_every=8, epochs=30.0, checkpoint_every=0,
                   data=DataConfig("mnist", (0, 1), limit=2000), model=ModelConfig(2, "mlp", width=16),
                   langevin=LangevinConfig(steps=20, step_size=0.1), ot=OTConfig(solver="fast"))

__all__ = ["DEMO"]

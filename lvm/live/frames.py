"""What a live run shows a front end: its state, the frames of q(z^K) kept every L iterations, and the copy of
everything a redraw needs (`View`), plus the generator's decoded grid."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig

VIEW_N = 1000            # latents drawn per frame (a fixed subsample of the training images)
SAMPLES_SIDE = 6         # the view's decoded grid: SAMPLES_SIDE^2 images, a lattice of z for d = 2, else prior draws


class State(str, Enum):
    """Where a live run stands. A `str` so that ``view.state == "running"`` reads as before (Python 3.10 has no
    StrEnum); printed as its value."""

    IDLE = "idle"          # built, never started (or reset)
    RUNNING = "running"    # iterations back to back
    PAUSED = "paused"      # stopped between iterations (Pause, Step, a rollback after a divergence)
    ERROR = "error"        # stopped for good until a Reset (the message says why)

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


def view_size(d: int) -> int:
    """Latents drawn per frame."""
    return VIEW_N


@dataclass(frozen=True)
class Frame:
    """q(z^K) at iteration `iteration` (a due iteration, every L), on the fixed view subsample.

    z: (m, d) latents after the iteration. At an OT correction also `before` (m, d),
    the latents before Eq. 10, and `source`/`target` (p, d): z_hat_i and T(z_hat_i).
    metrics["chains_w2sq"] is the debiased W2^2 (lvm.distance, squared latent units) between FIT_N
    persistent chains (before any correction) and the prior; metrics["q_w2sq"] the same for the model's
    own q(z^K) from fresh noise, with "q_mse" and "q_prior_mse" (StepMetrics). "chain_fit" and "q_fit"
    are the old raw OT costs of the same latents, kept for old readers.
    """

    iteration: int
    seconds: float
    z: np.ndarray
    before: np.ndarray | None = None
    source: np.ndarray | None = None
    target: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    moved: np.ndarray | None = None  # (p, d) where Eq. 10 put each `source` point


@dataclass(frozen=True)
class View:
    """Everything a redraw needs, copied under the session's lock."""

    run: int                    # counts resets: frames of one run share a projection and axes
    state: State
    message: str                # why the run paused or stopped ("" when nothing to say)
    cfg: TrainConfig
    iteration: int
    epoch: float
    seconds: float              # training wall time since the first Start (pauses excluded)
    live: np.ndarray            # (m, d) current latents of the view subsample
    frames: tuple[Frame, ...]   # one per L iterations, oldest first
    records: tuple[dict, ...]   # per-iteration metrics, thinned when long
    prior_fit: float            # old raw statistic: mean OT cost between two prior samples of FIT_N
    q_prior_fit: float          # the same for cfg.q_fit_n points (the old level of q_fit)
    seconds_to_prior: float | None  # first time q(z^K) was on the prior: q_w2sq <= on_prior_w2sq and its z
                                    # explain their images (lvm.live.levels.on_prior)
    labels: np.ndarray          # (m,) class of each image of the view subsample (colour by digit)
    samples: np.ndarray         # (SAMPLES_SIDE^2, C, H, W) what the generator draws, refreshed every L iterations
    busy: float                 # seconds the iteration in flight has run (0 when none is)
    on_prior_w2sq: float = float("nan")  # q_w2sq under this counts as on the prior: the upper edge of the
                                         # estimator's band at cfg.q_fit_n and d (lvm.distance.prior_band)


def thin(items: list, limit: int) -> list:
    """Every other item once there are more than `limit` (a long history thins evenly)."""
    return items[::2] if len(items) > limit else items


def decoded(generator: nn.Module, d: int, side: int = SAMPLES_SIDE) -> np.ndarray:
    """What the generator draws, (side^2, C, H, W): g(z) on a lattice of z in [-2.5, 2.5]^2 for d = 2
    (rows from high z_2 to low, as the Reconstruct view's manifold), else g(z) for fixed prior draws."""
    if d == 2:
        g = np.linspace(-2.5, 2.5, side, dtype=np.float32)
        z = torch.from_numpy(np.stack(np.meshgrid(g, g[::-1]), -1).reshape(-1, 2))
    else:
        z = torch.randn(side * side, d, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return generator(z.to(next(generator.parameters()).device)).cpu().numpy()

"""Where a live run trains, and the levels its own q(z^K) is judged against: the device, the prior-vs-prior
OT level, and the "on the prior" claim (a distance under the estimator's band AND reconstructions that explain
the images; see `on_prior`)."""
from __future__ import annotations

import functools
import os

import numpy as np
import torch

from ..metrics import prior_baseline_ot_cost

RECON_SHARE = 0.5        # "the inferred z explain their images": g(z^K)'s pixel error <= this x that of prior draws


DEVICE_ENV = "LVM_DEVICE"  # auto (CUDA when present, the default), cpu or cuda[:N]: where the app's sessions train


def session_device(name: str | None = None) -> torch.device:
    """The device a session trains on: `name`, else $LVM_DEVICE, else auto (CUDA when present).

    Raises:
        ValueError: an unknown name, or CUDA asked for where there is none (the message says what to set).
    """
    name = (name or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"{DEVICE_ENV}={name!r}: use auto, cpu or cuda (cuda:N for one of several GPUs)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{DEVICE_ENV}={name!r} but this machine has no CUDA device: set {DEVICE_ENV}=cpu or auto")
    return torch.device(name)


@functools.lru_cache(maxsize=64)  # the same (n, d) for every run of a lecture: solve the five problems once
def mean_prior_fit(n: int, d: int, seeds: int = 5) -> float:
    """Mean over `seeds` of the OT cost between two independent N(0, I_d) samples of size n."""
    return float(np.mean([prior_baseline_ot_cost(n, d, seed=s) for s in range(seeds)]))


def on_prior(q_w2sq: float | None, q_mse: float | None, q_prior_mse: float | None, level: float) -> bool:
    """Whether a due iteration's q(z^K) counts as "on the prior": its debiased W2^2 is under `level` (the band
    of `metrics.prior_band` at its n and d) AND g(z^K) reconstructs its images with at most RECON_SHARE of the
    error of z drawn from the prior. The distance alone reads about 0 at K = 0 (z^K is the prior noise) and for
    an untrained generator, whose z^K barely moves; neither reconstructs (error ratio about 1, README)."""
    if q_w2sq is None or q_mse is None or not q_prior_mse:
        return False
    return q_w2sq <= level and q_mse <= RECON_SHARE * q_prior_mse

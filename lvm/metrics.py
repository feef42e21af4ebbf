"""Evaluation figures, as PROTOCOL section 2 defines them.

Reconstruction MSE with z_hat from test-time Langevin started at the prior
(paper Table 1); latent fit as the debiased W2^2 to the prior (lvm.distance, the
one statistic every view and log reports), and the older raw OT cost and RBF MMD
to a prior sample (Fig. 2, 3, 5); anomaly AUPRC of -log p(x, z) (Table 2); Frechet distances on
a small classifier's features (FID-C, offline default) or on Inception-v3
features from a user-given local weights file.
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass, replace
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from torch import nn

from .config import LangevinConfig, OTConfig
from .distance import Band, debiased_w2sq, prior_band, prior_w2sq, w2  # noqa: F401  (re-exported: the public API)
from .langevin import energy, infer
from .models import prior_sample
from .ot import solve

Array = torch.Tensor | np.ndarray
Prior = Callable[[int, int, np.random.RandomState], np.ndarray]
MMD_BANDWIDTH_FACTORS = (0.5, 1.0, 2.0)  # x median pairwise distance of the pooled sample
INCEPTION_WEIGHTS_HINT = ("torchvision's Inception-v3 weights file inception_v3_google-0cc3c7bd.pth "
                          "(https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth)")


def _numpy(a: Array) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def mse(x: Array, x_rec: Array) -> float:
    """Mean over images and pixels of (x - x_rec)^2, pixels in [0, 1]."""
    x, x_rec = _numpy(x), _numpy(x_rec)
    if x.shape != x_rec.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {x_rec.shape}")
    return float(np.mean((x - x_rec) ** 2))


def _latent_dim(generator: nn.Module) -> int:
    """d from ``generator.cfg.latent_dim``, else the first layer's ``in_features``."""
    if hasattr(getattr(generator, "cfg", None), "latent_dim"):
        return int(generator.cfg.latent_dim)
    first = next((m for m in generator.modules() if isinstance(m, nn.Linear)), None)
    if first is not None:
        return first.in_features
    raise ValueError("cannot tell the latent size: give the generator a cfg.latent_dim")


def _infer_batched(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, rng: torch.Generator | None,
                   batch_size: int, restarts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Test-time inference of z for every x; returns (z, g(z), energy), best of `restarts`."""
    if restarts < 1 or batch_size < 1 or len(x) == 0:
        raise ValueError(f"need images, restarts >= 1 and batch_size >= 1; got {len(x)}, {restarts}, {batch_size}")
    d = _latent_dim(generator)
    out = []
    for xb in x.split(batch_size):
        best_z, best_e = None, None
        for _ in range(restarts):
            z0 = prior_sample(len(xb), d, rng).to(device=xb.device, dtype=xb.dtype)  # (B, d)
            z = infer(generator, xb, z0, cfg, rng=rng)
            with torch.no_grad():
                e = energy(generator, z, xb, cfg.sigma)  # (B,)
            if best_z is not None:  # keep, per example, the chain that ended at the lowest energy
                keep = best_e <= e
                z, e = torch.where(keep[:, None], best_z, z), torch.where(keep, best_e, e)
            best_z, best_e = z, e
        with torch.no_grad():
            out.append((best_z, generator(best_z), best_e))
    return tuple(torch.cat(t) for t in zip(*out))  # z (N, d), g(z) (N, C, H, W), energy (N,)


def reconstruct(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, rng: torch.Generator | None = None,
                batch_size: int = 500, restarts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Infer z_hat for every image by short-run Langevin from the prior (Eq. 7), and g(z_hat).

    Args:
        generator: g, mapping (B, d) to (B, C, H, W).
        x: images (N, C, H, W) in [0, 1]; z lives on x's device and dtype.
        cfg: K steps, step size s, sigma, noise on/off.
        rng: torch.Generator seeding z0 ~ N(0, I) and the Langevin noise.
        batch_size: images per inference batch.
        restarts: chains per image; the one with the lowest energy -log p(x, z) is kept.

    Returns:
        z_hat (N, d) and x_rec = g(z_hat) (N, C, H, W), both detached.
    """
    z, x_rec, _ = _infer_batched(generator, x, cfg, rng, batch_size, restarts)
    return z, x_rec


def anomaly_scores(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, rng: torch.Generator | None = None,
                   batch_size: int = 500, restarts: int = 1) -> torch.Tensor:
    """Anomaly score -log p(x, z_hat) = ||x - g(z_hat)||^2 / (2 sigma^2) + ||z_hat||^2 / 2.

    z_hat comes from the same test-time inference as :func:`reconstruct`; higher
    scores mean more anomalous. Arguments as for :func:`reconstruct`. Returns (N,) scores.
    """
    return _infer_batched(generator, x, cfg, rng, batch_size, restarts)[2]


def image_seeds(x: torch.Tensor, seed: int = 0) -> list[int]:
    """One seed per image from its pixels (float32 bytes) and `seed`: the same image gets the same noise stream
    whatever file it came from and whichever images share the call."""
    return [int.from_bytes(hashlib.sha256(seed.to_bytes(8, "little", signed=True)
                                          + xi.detach().float().cpu().contiguous().numpy().tobytes()).digest()[:8],
                           "little") >> 1 for xi in x]


def anomaly_scores_per_image(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
                             batch_size: int = 256, restarts: int = 1, refine: int = 0,
                             progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`anomaly_scores`, batched, with each image's own noise stream (:func:`image_seeds`).

    z0 and every Langevin step's noise for image i come from a generator seeded by image i alone, so its
    score does not depend on the batch it is inferred in (up to float rounding in the batched products).
    `refine` noise-free steps (gradient descent on the energy, step s^2 / 2) follow each chain's noisy ones.
    `progress` is called with the number of images done after each batch. Returns (N,) scores.
    """
    return infer_per_image(generator, x, cfg, seed, batch_size, restarts, refine, progress)[1]


def infer_per_image(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0, batch_size: int = 256,
                    restarts: int = 1, refine: int = 0, progress: Callable[[int], None] | None = None,
                    seeds: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_hat, -log p(x, z_hat)) as :func:`anomaly_scores_per_image`; `seeds` replace :func:`image_seeds`."""
    if restarts < 1 or batch_size < 1 or (seeds is not None and len(seeds) != len(x)):
        raise ValueError(f"need restarts, batch_size >= 1, a seed per image; got {restarts}, {batch_size}, "
                         f"{len(seeds or [])} seeds for {len(x)}")
    d, k = _latent_dim(generator), cfg.steps
    seeds, zs, es, done = image_seeds(x, seed) if seeds is None else list(seeds), [], [], 0
    for xb, sb in zip(x.split(batch_size), [seeds[i:i + batch_size] for i in range(0, len(seeds), batch_size)]):
        draws = torch.stack([torch.randn((restarts, k + 1, d), generator=torch.Generator().manual_seed(s))
                             for s in sb], dim=1).to(device=xb.device, dtype=xb.dtype)  # (R, B, K + 1, d)
        best_z, best_e = None, None
        for r in range(restarts):
            z = infer(generator, xb, draws[r, :, 0], cfg, noise=draws[r, :, 1:].transpose(0, 1))
            if refine:
                z = infer(generator, xb, z, replace(cfg, steps=refine, noise=False))
            with torch.no_grad():
                e = energy(generator, z, xb, cfg.sigma)
            if best_z is not None:  # the chain that ended lowest, per image
                keep = best_e <= e
                z, e = torch.where(keep[:, None], best_z, z), torch.where(keep, best_e, e)
            best_z, best_e = z, e
        zs.append(best_z)
        es.append(best_e)
        done += len(xb)
        if progress is not None:
            progress(done)
    if not zs:
        return torch.empty(0, d), torch.empty(0)
    return torch.cat(zs), torch.cat(es)


def _standard_normal(n: int, d: int, rs: np.random.RandomState) -> np.ndarray:
    return rs.standard_normal((n, d))


def _subsample_with_prior(z: Array, n: int, seed: int, prior: Prior | None) -> tuple[np.ndarray, np.ndarray]:
    """min(n, N) rows of z without replacement and as many prior draws, one RandomState(seed)."""
    z = _numpy(z)
    if z.ndim != 2:
        raise ValueError(f"z must be (N, d), got shape {z.shape}")
    rs = np.random.RandomState(seed)
    if len(z) > n:
        z = z[rs.choice(len(z), n, replace=False)]
    return z, _numpy((prior or _standard_normal)(len(z), z.shape[1], rs))


def _ot_cost(a: np.ndarray, b: np.ndarray) -> float:
    """(1/n) min over permutations pi of sum_i ||a_i - b_pi(i)||^2, by the exact solver of lvm.ot."""
    return solve(torch.from_numpy(a), torch.from_numpy(b), OTConfig(solver="exact")).cost


def latent_ot_cost(z: Array, n: int = 2000, seed: int = 0, prior: Prior | None = None) -> float:
    """Exact OT cost between inferred latents and the prior (squared Euclidean ground cost).

    W = (1/n) min_pi sum_i ||z_i - e_pi(i)||^2, the mean squared distance of the
    optimally matched pairs, over a random subsample {z_i} of n rows (all rows if
    fewer) and n prior draws {e_j}. Its level for z that does follow the prior is
    :func:`prior_baseline_ot_cost`.

    Args:
        z: latents (N, d).
        n: subsample size (the assignment costs O(n^3)).
        seed: numpy RandomState seed for the subsample and the prior sample.
        prior: callable (n, d, RandomState) -> (n, d) array; standard normal by default.
    """
    return _ot_cost(*_subsample_with_prior(z, n, seed, prior))


def q_latents(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
              interrupt: Callable[[], bool] | None = None) -> torch.Tensor:
    """The model's own short-run inference q_theta(z^K | x) (paper Eq. 8-9): K Langevin steps (cfg) from fresh
    N(0, I) noise for each image of x, seeded; (N, d). Unlike the persistent chains, which a correction with
    alpha = 1 puts on prior points by construction, this is what "q(z^K) approaches the prior" is about."""
    rng = torch.Generator().manual_seed(seed)
    z0 = prior_sample(len(x), _latent_dim(generator), rng).to(x.device)
    return infer(generator, x, z0, cfg, rng, interrupt=interrupt)


@dataclass(frozen=True)
class QFit:
    """The model's own q(z^K) on n images x: its distance to the prior and whether its z explain x."""

    w2sq: float       # lvm.distance.prior_w2sq of z^K (squared latent units)
    mse: float        # mean squared pixel error of g(z^K)
    prior_mse: float  # the same for g(z), z from the prior: latents that ignore their images (untrained, K = 0)
    n: int
    ot_cost: float    # the old raw statistic (:func:`latent_ot_cost` of z^K), kept for old readers


def q_fit(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
          interrupt: Callable[[], bool] | None = None) -> QFit:
    """`QFit` of q_theta(z^K) (:func:`q_latents`) on the images x, all seeded by `seed`."""
    z = q_latents(generator, x, cfg, seed, interrupt)
    blind = prior_sample(len(x), z.shape[1], torch.Generator().manual_seed(seed + 1)).to(x.device)
    with torch.no_grad():
        err, blind_err = mse(x, generator(z)), mse(x, generator(blind))
    z = z.cpu().numpy()
    return QFit(prior_w2sq(z, seed), err, blind_err, len(x), latent_ot_cost(z, n=len(z), seed=seed))


def q_ot_cost(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
              interrupt: Callable[[], bool] | None = None) -> float:
    """The raw (biased) exact OT cost of :func:`q_latents` to as many prior draws (:func:`latent_ot_cost`);
    superseded by :func:`q_fit`'s w2sq, kept for old logs and the experiments that report it."""
    return latent_ot_cost(q_latents(generator, x, cfg, seed, interrupt), n=len(x), seed=seed)


def prior_baseline_ot_cost(n: int, d: int, seed: int = 0, prior: Prior | None = None) -> float:
    """The :func:`latent_ot_cost` statistic between two independent prior samples of size n."""
    rs = np.random.RandomState(seed)
    return _ot_cost(*(_numpy((prior or _standard_normal)(n, d, rs)) for _ in range(2)))


def mmd_rbf(a: Array, b: Array, bandwidths: tuple[float, ...] | None = None) -> float:
    """Unbiased estimate of MMD^2 with a mixture of RBF kernels.

    MMD_u^2 = sum_{i!=j} k(a_i, a_j) / (m(m-1)) + sum_{i!=j} k(b_i, b_j) / (n(n-1))
              - 2 sum_{i,j} k(a_i, b_j) / (mn),
    k(u, v) = mean_h exp(-||u - v||^2 / (2 h^2)). Default bandwidths h:
    0.5, 1 and 2 times the median pairwise distance of the pooled sample.
    The estimate is ~0 (can be slightly negative) for equal distributions.
    """
    a, b = _numpy(a), _numpy(b)
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise ValueError("mmd_rbf needs at least two points on each side")
    daa, dbb, dab = cdist(a, a, "sqeuclidean"), cdist(b, b, "sqeuclidean"), cdist(a, b, "sqeuclidean")
    if bandwidths is None:
        pooled = np.concatenate([daa[np.triu_indices(m, 1)], dbb[np.triu_indices(n, 1)], dab.ravel()])
        med = float(np.sqrt(np.median(pooled)))
        bandwidths = tuple(f * max(med, 1e-12) for f in MMD_BANDWIDTH_FACTORS)

    def k(d2: np.ndarray) -> np.ndarray:
        return np.mean([np.exp(-d2 / (2.0 * h * h)) for h in bandwidths], axis=0)

    kaa, kbb = k(daa), k(dbb)  # the diagonals (i = j) are left out of the within-sample sums
    saa, sbb = (kaa.sum() - np.trace(kaa)) / (m * (m - 1)), (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return float(saa + sbb - 2.0 * k(dab).mean())


def latent_mmd(z: Array, n: int = 2000, seed: int = 0, prior: Prior | None = None) -> float:
    """:func:`mmd_rbf` between a subsample of z and a prior sample, drawn as in :func:`latent_ot_cost`."""
    return mmd_rbf(*_subsample_with_prior(z, n, seed, prior))


def pr_curve(scores: Array, labels: Array) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) of ``sklearn.metrics.precision_recall_curve``; positives = label 1."""
    from sklearn.metrics import precision_recall_curve  # 1.6 s to import: not on the training path

    precision, recall, _ = precision_recall_curve(np.asarray(_numpy(labels), dtype=int), _numpy(scores))
    return precision, recall


def auprc(scores: Array, labels: Array) -> float:
    """Area under the PR curve, ``sklearn.metrics.auc(recall, precision)`` (paper Table 2).

    Higher scores must mean "more anomalous"; anomalies carry label 1. Chance
    level is the fraction of anomalies.
    """
    from sklearn.metrics import auc

    precision, recall = pr_curve(scores, labels)
    return float(auc(recall, precision))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2).

    d^2 = ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^{1/2}).
    When the square root of a near-singular product is not finite, eps * I is
    added to both covariances; a tiny imaginary part from round-off is dropped,
    a large one raises ValueError (as in the reference FID code).
    """
    mu1, mu2 = np.atleast_1d(_numpy(mu1)), np.atleast_1d(_numpy(mu2))
    cov1, cov2 = np.atleast_2d(_numpy(cov1)), np.atleast_2d(_numpy(cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular: handled below
        covmean = scipy.linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(covmean).all():
            warnings.warn(f"Frechet distance: singular product of covariances; adding {eps} * I", stacklevel=2)
            offset = np.eye(len(cov1)) * eps
            covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm(cov1 cov2)")
        covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def feature_stats(features: Array) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), float64."""
    f = _numpy(features)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(f_real: Array, f_gen: Array) -> float:
    """:func:`frechet_distance` between the Gaussian fits of two feature sets."""
    return frechet_distance(*feature_stats(f_real), *feature_stats(f_gen))


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(xb).cpu() for xb in x.split(batch_size)])


def fid_c(classifier: nn.Module, x_real: torch.Tensor, x_gen: torch.Tensor, batch_size: int = 500) -> float:
    """FID-C: Frechet distance on ``classifier.features`` (penultimate layer, (B, 128)).

    Not comparable with Inception FID. The classifier's parameters must be on
    the images' device; it holds no dropout or batch norm, so its mode is left as is.
    """
    return fid_from_features(*(_batched(classifier.features, x, batch_size) for x in (x_real, x_gen)))


def _inception(weights_path: str | Path, device: torch.device) -> nn.Module:
    """torchvision's Inception-v3 with local weights and fc -> Identity (2048-d pool features)."""
    from torchvision.models import inception_v3

    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights not found at {path}. Nothing is downloaded: fetch "
                                f"{INCEPTION_WEIGHTS_HINT} on a machine with internet and pass its local path.")
    # transform_input=True as torchvision sets for these weights: ImageNet-normalised input.
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (pickle.UnpicklingError, RuntimeError, TypeError, AttributeError, EOFError) as err:
        raise ValueError(f"{path} is not a state dict of torchvision's Inception-v3 ({INCEPTION_WEIGHTS_HINT}): "
                         f"{str(err)[:300]}") from err
    model.fc = nn.Identity()
    return model.eval().to(device)


def _inception_pool(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[0, 1] images (N, C, H, W) -> grey to RGB, 299x299, ImageNet mean/std -> (N, 2048)."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)

    def prep(xb: torch.Tensor) -> torch.Tensor:
        xb = xb.float().expand(-1, 3, -1, -1) if xb.shape[1] == 1 else xb.float()
        xb = F.interpolate(xb, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return model((xb - mean) / std)

    return _batched(prep, x, batch_size)


def inception_features(x: torch.Tensor, weights_path: str | Path, batch_size: int = 50) -> torch.Tensor:
    """2048-d pool features (N, 2048) of torchvision's Inception-v3 from a local weights file.

    These are torchvision's ImageNet weights, not the TF-ported network of
    pytorch-fid: values are comparable with each other, not with published FIDs.
    """
    return _inception_pool(_inception(weights_path, x.device), x, batch_size)


def fid_inception(x_real: torch.Tensor, x_gen: torch.Tensor, weights_path: str | Path, batch_size: int = 50) -> float:
    """Inception FID between two image sets (N, C, H, W) in [0, 1]; see :func:`inception_features`."""
    model = _inception(weights_path, x_real.device)
    return fid_from_features(*(_inception_pool(model, x, batch_size) for x in (x_real, x_gen)))

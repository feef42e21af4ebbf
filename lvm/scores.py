"""Anomaly scores beyond the paper's -log p(x, z) at one inferred z (higher = more anomalous).

    joint       -log p(x, z_hat), z_hat from one short-run Langevin chain from the prior (the paper's score,
                Table 2; metrics.anomaly_scores). Cost: K Langevin steps per image.
    nll         -log p(x), the marginal likelihood, estimated by importance sampling (`marginal_nll`).
    joint-zlib  joint in bits minus the image's zlib length in bits (an input-complexity correction)
    nll-zlib    -log2 P(x) minus the image's zlib length in bits: Serra et al. (ICLR 2020), S(x) = -log2 P(x) - L(x)
    nll-fit, nll-fit-zlib   the same with the noise std refitted by maximum likelihood on normal training images
                (`fit_sigma`): a trained sigma of 0.3 makes p(x) so flat that L(x) would dominate the difference

`marginal_nll` estimates log p(x) = log int N(x; g(z), sigma^2 I) N(z; 0, I) dz by importance sampling with a
defensive mixture proposal built per image:

1. `chains` short-run Langevin chains from the prior (K steps, step s, the detector's test inference);
2. `newton` Gauss-Newton steps from each chain's end towards the mode of p(z | x) (with a backtracking line
   search: a step is kept for an image only if it lowers the energy), then the Laplace precision
   H = J^T J / sigma^2 + I at that point (J = dg/dz, from one batched forward-mode pass of d tangents);
3. the proposal q = (prior_samples / S) N(0, I) + sum over chains of (per_chain / S) N(mode_m, H_m^-1), with
   S = prior_samples + chains * per_chain samples, drawn in exactly those numbers (stratified, so the estimate of
   p(x) is unbiased, and the prior component bounds the weights: w <= p(x | z) S / prior_samples);
4. log p(x) ~ logsumexp_i [log p(x, z_i) - log q(z_i)] - log S.

For a linear generator g(z) = Wz + b the Laplace proposal is the posterior itself, so the estimate is exact (the
tests check it against the closed form N(x; b, W W^T + sigma^2 I)). Cost per image, in generator passes: chains * K
forward-and-backward passes (the Langevin), chains * (newton + 1) forward-mode passes of a d-fold batch (the
Jacobians) plus 3 energy evaluations per Newton step, and S forward passes; experiments.anomaly_scores measures
the CPU seconds per image of each score on each shipped detector.

Continuous densities become code lengths with the pixels' 8-bit bins: -log2 P(x) = -log2 p(x) + D log2(256) for
pixels in [0, 1] (a constant for a given image size, so it changes no ranking; it puts the likelihood and the zlib
length in the same units, bits).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import LangevinConfig
from .langevin import energy, infer
from .metrics import image_seeds, infer_per_image

SCORES = ("joint", "joint-zlib", "nll", "nll-zlib", "nll-fit", "nll-fit-zlib")
DEFAULT = "joint"
ZLIB_LEVEL = 9
LN2 = math.log(2.0)
STEP_FRACTIONS = (1.0, 0.5, 0.25)  # of each Gauss-Newton step, tried in `laplace`


@dataclass(frozen=True)
class Sampling:
    """The importance sampler of `marginal_nll`: S = prior_samples + chains * per_chain samples per image."""

    chains: int = 2
    per_chain: int = 30
    prior_samples: int = 4
    newton: int = 6

    def __post_init__(self) -> None:
        if self.chains < 1 or self.per_chain < 1 or self.prior_samples < 0 or self.newton < 0:
            raise ValueError(f"need chains >= 1, per_chain >= 1, prior_samples >= 0 and newton >= 0; got {self}")

    @property
    def samples(self) -> int:
        return self.prior_samples + self.chains * self.per_chain


def complexity_bits(x: torch.Tensor, level: int = ZLIB_LEVEL) -> np.ndarray:
    """L(x): each image's length in bits when its 8-bit pixels (round(255 x)) are compressed by zlib at `level`.

    Args:
        x: images (N, C, H, W) in [0, 1].

    Returns:
        (N,) float64 bits (8 * the compressed byte count, zlib's header included: a constant).
    """
    q = np.clip(np.rint(x.detach().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)
    return np.array([8.0 * len(zlib.compress(qi.tobytes(), level)) for qi in q])


def discrete_bits(nll_nats: np.ndarray | torch.Tensor, pixels: int) -> np.ndarray:
    """-log2 P(x) of 8-bit pixels from a density's -log p(x) in nats: nll / ln 2 + pixels * log2(256)."""
    return np.asarray(nll_nats, dtype=np.float64) / LN2 + 8.0 * pixels


def joint_nll(generator: nn.Module, z: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log p(x, z) with every constant: energy + D/2 log(2 pi sigma^2) + d/2 log(2 pi), (B,) float64."""
    d, D = z.shape[1], x[0].numel()
    with torch.no_grad():
        e = energy(generator, z, x, sigma).double()
    return e + 0.5 * D * math.log(2 * math.pi * sigma**2) + 0.5 * d * math.log(2 * math.pi)


def jacobian(generator: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g(z) (B, D), J = dg/dz (B, D, d)) by one forward-mode pass on a d-fold batch."""
    b, d = z.shape
    zz = z.detach().repeat_interleave(d, 0)                                     # (B d, d)
    tangents = torch.eye(d, dtype=z.dtype, device=z.device).repeat(b, 1)       # (B d, d)
    out, cols = torch.func.jvp(lambda u: generator(u).flatten(1), (zz,), (tangents,))
    return out[::d], cols.view(b, d, -1).transpose(1, 2)


@torch.no_grad()
def laplace(generator: nn.Module, z: torch.Tensor, x: torch.Tensor, sigma: float,
            newton: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton steps from z towards the mode of p(z | x); returns (mode (B, d), Cholesky factor L (B, d, d)
    of the precision H = J^T J / sigma^2 + I there), float64. Each step tries the fractions STEP_FRACTIONS of the
    Gauss-Newton step and keeps, per image, the one with the lowest energy if it is below the current one (a
    backtracking line search: on the piecewise-linear conv generators a full step often overshoots)."""
    xf = x.flatten(1).double()
    z = z.detach().double()
    eye = torch.eye(z.shape[1], dtype=torch.float64, device=z.device)
    with torch.no_grad():
        e = energy(generator, z.to(x.dtype), x, sigma).double()
    for k in range(newton + 1):
        g, J = jacobian(generator, z.to(x.dtype))
        g, J = g.double(), J.double()
        H = J.transpose(1, 2) @ J / sigma**2 + eye                                # (B, d, d)
        if k == newton:
            break
        grad = -(J.transpose(1, 2) @ (xf - g).unsqueeze(2)).squeeze(2) / sigma**2 + z
        step = torch.linalg.solve(H, grad)
        for t in STEP_FRACTIONS:
            z_new = z - t * step
            e_new = energy(generator, z_new.to(x.dtype), x, sigma).double()
            better = e_new < e
            z, e = torch.where(better[:, None], z_new, z), torch.where(better, e_new, e)
    return z, torch.linalg.cholesky(H)


def _log_normal_prec(z: torch.Tensor, mu: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, H^-1) with H = L L^T; z (B, S, d), mu (B, d), chol (B, d, d) -> (B, S)."""
    r = (z - mu[:, None]) @ chol                                  # (z - mu)^T L, so |r|^2 = (z - mu)^T H (z - mu)
    logdet = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # log det H / 2
    return -0.5 * r.pow(2).sum(2) + logdet[:, None] - 0.5 * z.shape[2] * math.log(2 * math.pi)


def marginal_nll(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, sampling: Sampling = Sampling(),
                 seed: int = 0, batch_size: int = 64, progress: Callable[[int], None] | None = None,
                 sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-log p(x) in nats by importance sampling (module docstring), and the one-chain joint score of chain 0.

    Each image's chains, Langevin noise and samples come from a generator seeded by the image alone
    (`metrics.image_seeds`), so its estimate does not depend on the batch it shares.

    Args:
        generator: g, (B, d) -> (B, C, H, W).
        x: images (N, C, H, W) in [0, 1].
        cfg: the test-time Langevin settings (K, s, sigma) of the chains.
        sampling: chains, samples and Newton steps.
        seed: mixed into each image's seed.
        batch_size: images per batch (each brings `chains` chains).
        progress: called with the number of images done after each batch.
        sigma: the noise std of the model p(x | z) = N(g(z), sigma^2 I) whose likelihood is estimated (default
            cfg.sigma); the chains always run with cfg.sigma, the Newton steps and the proposal use `sigma`.

    Returns:
        (nll (N,) float64 nats, joint (N,) float64: -log p(x, z) at chain 0's end with every constant, at cfg.sigma;
        the paper's score up to a constant).
    """
    nll, joint = marginal_nlls(generator, x, cfg, (sigma or cfg.sigma,), sampling, seed, batch_size, progress)
    return nll[:, 0], joint


@torch.no_grad()  # the Langevin chains take their own gradients (langevin.infer enables them)
def marginal_nlls(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, sigmas: tuple[float, ...],
                  sampling: Sampling = Sampling(), seed: int = 0, batch_size: int = 64,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`marginal_nll` for several noise levels from the same chains: (nll (N, len(sigmas)), joint (N,))."""
    sp, K = sampling, cfg.steps
    d = _latent_dim(generator)
    M, S = sp.chains, sp.samples
    seeds = image_seeds(x, seed)
    nll, joint, done = [], [], 0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        b = len(xb)
        gens = [torch.Generator().manual_seed(s) for s in seeds[start:start + b]]
        # chain by chain, so that chain 0 draws what metrics.infer_per_image draws for the same image and seed
        chain_draws = torch.stack([torch.stack([torch.randn((K + 1, d), generator=g) for _ in range(M)])
                                   for g in gens])                                        # (B, M, K + 1, d)
        eps = torch.stack([torch.randn((S, d), generator=g, dtype=torch.float64) for g in gens])  # (B, S, d)
        xr = xb.repeat_interleave(M, 0)                                                   # (B M, C, H, W)
        z0 = chain_draws[:, :, 0].reshape(b * M, d).to(xb.dtype)
        noise = chain_draws[:, :, 1:].reshape(b * M, K, d).transpose(0, 1).to(xb.dtype)
        z = infer(generator, xr, z0, cfg, noise=noise) if K else z0
        joint.append(joint_nll(generator, z.view(b, M, d)[:, 0], xb, cfg.sigma))
        nll.append(torch.stack([_importance(generator, xb, xr, z, eps, sp, sigma) for sigma in sigmas], 1))
        done += b
        if progress is not None:
            progress(done)
    if not nll:
        return np.zeros((0, len(sigmas))), np.zeros(0)
    return torch.cat(nll).numpy(), torch.cat(joint).numpy()


def _importance(generator: nn.Module, xb: torch.Tensor, xr: torch.Tensor, z: torch.Tensor, eps: torch.Tensor,
                sp: Sampling, sigma: float) -> torch.Tensor:
    """-log p(x) of a batch (B,) from its chains' ends z (B M, d) and standard normal draws eps (B, S, d)."""
    b, M, S, d = len(xb), sp.chains, sp.samples, z.shape[1]
    mode, chol = laplace(generator, z, xr, sigma, sp.newton)                            # (B M, d), (B M, d, d)
    mode, chol = mode.view(b, M, d), chol.view(b, M, d, d)
    # stratified draws: prior_samples from N(0, I), per_chain from each N(mode_m, H_m^-1)
    parts = [eps[:, :sp.prior_samples]]
    for m in range(M):
        e = eps[:, sp.prior_samples + m * sp.per_chain:sp.prior_samples + (m + 1) * sp.per_chain]
        v = torch.linalg.solve_triangular(chol[:, m].transpose(1, 2), e.transpose(1, 2), upper=True)
        parts.append(mode[:, m, None] + v.transpose(1, 2))
    zs = torch.cat(parts, 1)                                                              # (B, S, d)
    comps = [math.log(sp.prior_samples / S) - 0.5 * zs.pow(2).sum(2) - 0.5 * d * math.log(2 * math.pi)] \
        if sp.prior_samples else []
    comps += [math.log(sp.per_chain / S) + _log_normal_prec(zs, mode[:, m], chol[:, m]) for m in range(M)]
    log_q = torch.logsumexp(torch.stack(comps), 0)                                       # (B, S)
    log_pxz = -joint_nll(generator, zs.reshape(b * S, d).to(xb.dtype), xb.repeat_interleave(S, 0), sigma)
    return -(torch.logsumexp(log_pxz.view(b, S) - log_q, 1) - math.log(S))


@torch.no_grad()
def fit_sigma(generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0) -> float:
    """The maximum-likelihood noise std for images x (e.g. normal training images): sqrt of the mean squared pixel
    error at the posterior mode (one chain of cfg, then Gauss-Newton steps, as in `marginal_nll`)."""
    z, _ = infer_per_image(generator, x, cfg, seed)
    mode, _ = laplace(generator, z, x, cfg.sigma, Sampling().newton)
    return float((x - generator(mode.to(x.dtype))).pow(2).mean().sqrt())


def _latent_dim(generator: nn.Module) -> int:
    cfg = getattr(generator, "cfg", None)
    if cfg is not None and hasattr(cfg, "latent_dim"):
        return cfg.latent_dim
    first = next((m for m in generator.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("cannot tell the latent size: give the generator a cfg.latent_dim")
    return first.in_features


def combine(name: str, parts: dict[str, np.ndarray], pixels: int) -> np.ndarray:
    """The score `name` from its parts, in nats with constants: "joint", "nll" (at the model's sigma), "nll-fit"
    (at the fitted sigma) as needed, and "bits" (`complexity_bits`) for the -zlib scores."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose from {', '.join(SCORES)}")
    base_name = name.removesuffix("-zlib")
    if parts.get(base_name) is None:
        raise ValueError(f"score {name!r} needs {base_name!r}")
    base = np.asarray(parts[base_name], dtype=np.float64)
    if not name.endswith("-zlib"):
        return base
    if parts.get("bits") is None:
        raise ValueError(f"score {name!r} needs the images' zlib lengths ('bits')")
    return discrete_bits(base, pixels) - np.asarray(parts["bits"], dtype=np.float64)


def compute(name: str, generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
            sampling: Sampling = Sampling(), fitted_sigma: float | None = None,
            progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Score `name` (one of SCORES) of every image in x; higher = more anomalous.

    "joint" and "joint-zlib" run one chain per image (`metrics.infer_per_image`, the same chain as chain 0 of
    `marginal_nll`, K steps); the others run the importance sampler, the "nll-fit" ones at `fitted_sigma`
    (`fit_sigma` on normal images; a detector's manifest holds it).
    """
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose from {', '.join(SCORES)}")
    parts: dict[str, np.ndarray] = {"bits": complexity_bits(x) if name.endswith("-zlib") else None}
    if name.startswith("joint"):  # the same chain as metrics.anomaly_scores_per_image (and chain 0 below)
        z, _ = infer_per_image(generator, x, cfg, seed, progress=progress)
        parts["joint"] = joint_nll(generator, z, x, cfg.sigma).cpu().numpy()
    elif name.startswith("nll-fit"):
        if not fitted_sigma:
            raise ValueError(f"score {name!r} needs the fitted sigma (scores.fit_sigma on normal images)")
        parts["nll-fit"], _ = marginal_nll(generator, x, cfg, sampling, seed, progress=progress, sigma=fitted_sigma)
    else:
        parts["nll"], _ = marginal_nll(generator, x, cfg, sampling, seed, progress=progress)
    return combine(name, parts, x[0].numel())


def of_manifest(manifest: dict) -> tuple[str, Sampling, float | None]:
    """The detector's own score: manifest["score"] = {"name", "chains", ..., "sigma"}; ("joint", ...) when absent."""
    spec = dict(manifest.get("score") or {})
    name = spec.pop("name", DEFAULT)
    if name not in SCORES:
        raise ValueError(f"the manifest's score {name!r} is not one of {', '.join(SCORES)}")
    fields = {k: int(spec[k]) for k in ("chains", "per_chain", "prior_samples", "newton") if k in spec}
    return name, Sampling(**fields), spec.get("sigma")


def for_detector(manifest: dict, generator: nn.Module, x: torch.Tensor, cfg: LangevinConfig, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Score x with the detector's own score (`of_manifest`); cfg is its test-time Langevin (K, s, sigma)."""
    name, sampling, sigma = of_manifest(manifest)
    return compute(name, generator, x, cfg, seed, sampling, sigma, progress)

"""lvm.scores: the importance-sampled -log p(x) against closed forms, and the input-complexity correction."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from lvm import scores
from lvm.config import LangevinConfig
from lvm.metrics import anomaly_scores_per_image


class LinearGenerator(nn.Module):
    """g(z) = W z + b, shaped as (B, 1, side, side) images: p(x) = N(b, W W^T + sigma^2 I) in closed form."""

    def __init__(self, d: int, side: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.side = side
        self.lin = nn.Linear(d, side * side)
        with torch.no_grad():
            self.lin.weight.mul_(0.6)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z).view(-1, 1, self.side, self.side)

    def exact_nll(self, x: torch.Tensor, sigma: float) -> np.ndarray:
        W, b = self.lin.weight.double(), self.lin.bias.double()
        cov = W @ W.T + sigma**2 * torch.eye(len(b), dtype=torch.float64)
        mvn = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
        return (-mvn.log_prob(x.flatten(1).double())).detach().numpy()


class CurveGenerator(nn.Module):
    """A nonlinear generator with a one-dimensional latent (9 pixels), where quadrature gives p(x)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 9))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3 * self.net(z)).view(-1, 1, 3, 3)

    def quadrature_nll(self, x: torch.Tensor, sigma: float) -> np.ndarray:
        """-log p(x) by a dense grid over z in [-8, 8] (the integrand is smooth and one-dimensional)."""
        z = torch.linspace(-8, 8, 40001, dtype=torch.float64)[:, None]
        with torch.no_grad():
            g = self.double()(z).flatten(1)                                  # (G, 9)
        self.float()
        xf = x.flatten(1).double()                                           # (N, 9)
        log_lik = (-(xf[:, None] - g[None]).pow(2).sum(2) / (2 * sigma**2)
                   - 4.5 * math.log(2 * math.pi * sigma**2))                 # (N, G)
        log_prior = -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
        dz = float(z[1, 0] - z[0, 0])
        return (-(torch.logsumexp(log_lik + log_prior, 1) + math.log(dz))).numpy()


def test_importance_sampling_is_exact_for_a_linear_generator() -> None:
    """The Gauss-Newton Laplace proposal is the posterior of a linear-Gaussian model: every weight is p(x)."""
    torch.set_num_threads(1)
    gen, sigma = LinearGenerator(d=3, side=4), 0.3
    z = torch.randn(12, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = gen(z) + sigma * torch.randn(12, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    x[-2:] += 1.5  # two off-model images: far larger -log p(x)
    cfg = LangevinConfig(steps=30, step_size=0.05, sigma=sigma)
    exact = gen.exact_nll(x, sigma)
    nll, _ = scores.marginal_nll(gen, x, cfg, scores.Sampling(chains=2, per_chain=5, prior_samples=0), seed=3)
    np.testing.assert_allclose(nll, exact, rtol=1e-6, atol=1e-6)  # every weight is p(x): no sampling error
    assert nll[-2:].min() > nll[:-2].max()
    # the defensive prior component makes the weights vary (unbiased for p(x), no longer exact)
    nll, _ = scores.marginal_nll(gen, x, cfg, scores.Sampling(chains=2, per_chain=100, prior_samples=20), seed=3)
    np.testing.assert_allclose(nll, exact, atol=0.05)


def test_joint_score_is_the_papers_chain_plus_constants() -> None:
    """compute('joint') is metrics.anomaly_scores_per_image's energy plus D/2 log(2 pi sigma^2) + d/2 log(2 pi)."""
    gen, sigma = LinearGenerator(d=3, side=4, seed=2), 0.3
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    cfg = LangevinConfig(steps=20, step_size=0.05, sigma=sigma)
    ours = scores.compute("joint", gen, x, cfg, seed=4)
    paper = anomaly_scores_per_image(gen, x, cfg, seed=4).double().numpy()
    const = 8 * math.log(2 * math.pi * sigma**2) + 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(ours, paper + const, rtol=1e-5)
    _, chain0 = scores.marginal_nll(gen, x, cfg, scores.Sampling(chains=2, per_chain=2, prior_samples=1), seed=4)
    np.testing.assert_allclose(chain0, ours, rtol=1e-5)  # the sampler's chain 0 is that same chain


@pytest.mark.parametrize("prior_samples", [0, 40])
def test_importance_sampling_matches_quadrature_for_a_nonlinear_generator(prior_samples: int) -> None:
    gen, sigma = CurveGenerator(), 0.15
    z = torch.randn(10, 1, generator=torch.Generator().manual_seed(2)) * 1.5
    with torch.no_grad():
        x = gen(z) + sigma * torch.randn(10, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    cfg = LangevinConfig(steps=60, step_size=0.1, sigma=sigma)
    sampling = scores.Sampling(chains=4, per_chain=500, prior_samples=prior_samples)
    nll, _ = scores.marginal_nll(gen, x, cfg, sampling)
    np.testing.assert_allclose(nll, gen.quadrature_nll(x, sigma), atol=0.05)


def test_estimate_does_not_depend_on_the_batch() -> None:
    gen = LinearGenerator(d=2, side=3, seed=4)
    x = torch.rand(7, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    cfg = LangevinConfig(steps=10, step_size=0.05, sigma=0.4)
    a, _ = scores.marginal_nll(gen, x, cfg, seed=1, batch_size=7)
    b, _ = scores.marginal_nll(gen, x[[3]], cfg, seed=1, batch_size=1)
    np.testing.assert_allclose(b, a[[3]], rtol=1e-6)


def test_complexity_bits_are_zlib_lengths() -> None:
    flat = torch.zeros(1, 1, 28, 28)
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    bits = scores.complexity_bits(torch.cat([flat, noise]))
    raw = np.clip(np.rint(noise.numpy() * 255), 0, 255).astype(np.uint8).tobytes()
    assert bits[1] == 8 * len(zlib.compress(raw, scores.ZLIB_LEVEL))
    assert bits[0] < 200 < 8 * 784 - 500 < bits[1]  # a blank image is nearly free, noise barely compresses


def test_complexity_correction_subtracts_bits_in_the_same_units() -> None:
    nll = np.array([100.0, 100.0])
    bits = np.array([500.0, 900.0])
    out = scores.combine("nll-zlib", {"nll": nll, "bits": bits}, pixels=784)
    np.testing.assert_allclose(out, nll / math.log(2) + 8 * 784 - bits)
    assert out[0] > out[1]  # at equal likelihood, the simpler image is the more anomalous
    np.testing.assert_allclose(scores.combine("joint", {"joint": nll}, 784), nll)
    np.testing.assert_allclose(scores.combine("nll-fit-zlib", {"nll-fit": nll, "bits": bits}, 784), out)
    with pytest.raises(ValueError, match="needs 'nll'"):
        scores.combine("nll", {"joint": nll, "bits": bits}, 784)
    with pytest.raises(ValueError, match="zlib lengths"):
        scores.combine("joint-zlib", {"joint": nll}, 784)
    with pytest.raises(ValueError, match="unknown score"):
        scores.combine("elbo", {"nll": nll}, 784)


def test_fitted_sigma_recovers_the_noise_and_moves_the_likelihood() -> None:
    """fit_sigma on images from the model finds its noise level; marginal_nll at that sigma is the closed form."""
    gen, true_sigma = LinearGenerator(d=3, side=6, seed=3), 0.1
    z = torch.randn(400, 3, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        x = gen(z) + true_sigma * torch.randn(400, 1, 6, 6, generator=torch.Generator().manual_seed(9))
    cfg = LangevinConfig(steps=30, step_size=0.05, sigma=0.3)  # chains at the (wrong) trained sigma
    fitted = scores.fit_sigma(gen, x, cfg)
    assert 0.08 < fitted < 0.1  # the residual at the mode loses d of the D = 36 dimensions: about 0.1 sqrt(33/36)
    nll, _ = scores.marginal_nll(gen, x[:8], cfg, scores.Sampling(chains=2, per_chain=4, prior_samples=0),
                                 sigma=fitted)
    np.testing.assert_allclose(nll, gen.exact_nll(x[:8], fitted), rtol=1e-6, atol=1e-6)
    several, _ = scores.marginal_nlls(gen, x[:8], cfg, (0.3, fitted), scores.Sampling(chains=2, per_chain=4,
                                                                                       prior_samples=0))
    np.testing.assert_allclose(several[:, 1], nll, rtol=1e-9)
    np.testing.assert_allclose(several[:, 0], gen.exact_nll(x[:8], 0.3), rtol=1e-6, atol=1e-6)


def test_manifest_score() -> None:
    assert scores.of_manifest({}) == ("joint", scores.Sampling(), None)
    name, sp, sigma = scores.of_manifest({"score": {"name": "nll-fit-zlib", "chains": 3, "per_chain": 8,
                                                    "sigma": 0.12}})
    assert (name, sp.chains, sp.per_chain, sp.samples, sigma) == ("nll-fit-zlib", 3, 8, 4 + 24, 0.12)
    with pytest.raises(ValueError, match="not one of"):
        scores.of_manifest({"score": {"name": "bogus"}})
    with pytest.raises(ValueError, match="chains >= 1"):
        scores.Sampling(chains=0)
    gen = LinearGenerator(d=2, side=3)
    with pytest.raises(ValueError, match="fitted sigma"):
        scores.compute("nll-fit", gen, torch.rand(2, 1, 3, 3), LangevinConfig(steps=2, step_size=0.1, sigma=0.3))

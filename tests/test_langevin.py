"""Behaviour of short-run Langevin inference (lvm.langevin, Eq. 7) on a model with a known posterior.

For g(z) = W z + b and p(x | z) = N(g(z), sigma^2 I), p(z) = N(0, I), the posterior is Gaussian:

    S = (I + W^T W / sigma^2)^{-1},   mu = S W^T (x - b) / sigma^2.

Eq. 7 with h = s^2 / 2 is the unadjusted Langevin algorithm; on a Gaussian with precision P it is
the linear recursion z' = (I - h P) z + h P mu + s xi, whose stationary law is N(mu, C) with
C = (P (2 I - h P))^{-1} * 2, i.e. the variance along each eigenvalue lam of P is inflated by
1 / (1 - h lam / 2). The tests below budget for that bias explicitly.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lvm.config import LangevinConfig, ModelConfig
from lvm.langevin import energy, infer
from lvm.models import build_generator

D_LATENT, SIDE, SIGMA = 2, 4, 0.5  # D = 16 pixels


class LinearGenerator(nn.Module):
    """g(z) = W z + b reshaped to (B, 1, SIDE, SIDE)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(D_LATENT, SIDE * SIDE).double()
        with torch.no_grad():
            self.fc.weight.mul_(1.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z).view(-1, 1, SIDE, SIDE)


def _posterior(gen: LinearGenerator, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, covariance, precision) of p(z | x) for one image x (1, SIDE, SIDE)."""
    W, b = gen.fc.weight.detach(), gen.fc.bias.detach()  # (D, d), (D,)
    P = torch.eye(D_LATENT, dtype=W.dtype) + W.T @ W / SIGMA**2
    S = torch.linalg.inv(P)
    return S @ W.T @ (x.flatten() - b) / SIGMA**2, S, P


@pytest.fixture(scope="module")
def model() -> tuple[LinearGenerator, torch.Tensor]:
    gen = LinearGenerator()
    z_true = torch.tensor([[0.8, -0.5]], dtype=torch.float64)
    noise = torch.randn(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        x = gen(z_true) + SIGMA * noise  # (1, 1, SIDE, SIDE)
    return gen, x


@pytest.mark.slow
def test_samples_follow_the_gaussian_posterior(model) -> None:
    gen, x = model
    mu, S, P = _posterior(gen, x[0])
    lam = torch.linalg.eigvalsh(P)                      # precisions along the principal axes
    h = 0.05 / float(lam.max())                         # h * lam_max = 0.05: variance bias <= 2.6 %
    s = (2 * h) ** 0.5
    steps = int(12 / (h * float(lam.min())))            # (1 - h lam_min)^K < e^-12 of the start remains
    n = 8000
    cfg = LangevinConfig(steps=steps, step_size=s, sigma=SIGMA)
    z0 = torch.randn(n, D_LATENT, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = infer(gen, x.expand(n, -1, -1, -1), z0, cfg, rng=torch.Generator().manual_seed(3))

    # whiten by the true posterior: the sample should be N(0, I) up to the step-size bias
    L = torch.linalg.cholesky(S)
    w = torch.linalg.solve_triangular(L, (z - mu).T, upper=False).T  # (n, d)
    mean, cov = w.mean(0), torch.cov(w.T)
    # Monte Carlo standard errors: mean 1/sqrt(n) = 0.011, variances sqrt(2/n) = 0.016,
    # covariances 1/sqrt(n) = 0.011; bias of the variances <= 0.026. Tolerances are ~4 SE + bias.
    assert mean.abs().max() < 0.05
    assert (cov.diagonal() - 1).abs().max() < 0.026 + 0.065
    assert cov[0, 1].abs() < 0.05


def test_without_noise_it_climbs_to_the_posterior_mode(model) -> None:
    gen, x = model
    mu, _, P = _posterior(gen, x[0])
    lam = torch.linalg.eigvalsh(P)
    h = 0.5 / float(lam.max())
    cfg = LangevinConfig(steps=int(30 / (h * float(lam.min()))), step_size=(2 * h) ** 0.5, sigma=SIGMA, noise=False)
    z0 = torch.randn(5, D_LATENT, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    z = infer(gen, x.expand(5, -1, -1, -1), z0, cfg)
    assert torch.allclose(z, mu.expand(5, -1), atol=1e-8)


def test_energy_trace_has_k_plus_one_entries_and_falls_without_noise(model) -> None:
    gen, x = model
    cfg = LangevinConfig(steps=25, step_size=0.05, sigma=SIGMA, noise=False)
    z0 = torch.full((3, D_LATENT), 2.0, dtype=torch.float64)
    xs = x.expand(3, -1, -1, -1)
    z, trace = infer(gen, xs, z0, cfg, return_trace=True)
    assert trace.shape == (cfg.steps + 1,)
    with torch.no_grad():
        assert float(trace[0]) == pytest.approx(float(energy(gen, z0, xs, SIGMA).mean()))
        assert float(trace[-1]) == pytest.approx(float(energy(gen, z, xs, SIGMA).mean()))
    assert bool((trace[1:] < trace[:-1]).all())
    assert float(trace[-1]) < 0.5 * float(trace[0])


def test_energy_is_per_example_and_matches_eq5() -> None:
    gen = LinearGenerator()
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    x = torch.zeros(2, 1, SIDE, SIDE, dtype=torch.float64)
    with torch.no_grad():
        rec = gen(z).flatten(1).pow(2).sum(1)
    e = energy(gen, z, x, SIGMA)
    assert e.shape == (2,)
    assert torch.allclose(e, rec / (2 * SIGMA**2) + torch.tensor([0.0, 2.5], dtype=torch.float64))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_generator_gets_no_gradient_and_examples_are_independent(arch: str) -> None:
    torch.manual_seed(0)
    gen = build_generator(ModelConfig(latent_dim=3, arch=arch, width=8))
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    z0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(2))
    cfg = LangevinConfig(steps=10, step_size=0.1, sigma=0.3, noise=False)

    both = infer(gen, x, z0, cfg)
    alone = infer(gen, x[:1], z0[:1], cfg)
    assert all(p.grad is None for p in gen.parameters())
    assert not both.requires_grad
    assert not torch.allclose(both[0], z0[0])        # it did move
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    # changing the other example's image does not move example 0 either
    other = infer(gen, torch.stack([x[0], torch.zeros_like(x[1])]), z0, cfg)
    assert torch.allclose(other[0], both[0], atol=1e-5)


def test_seeded_noise_is_reproducible_and_z0_is_not_modified(model) -> None:
    gen, x = model
    cfg = LangevinConfig(steps=5, step_size=0.1, sigma=SIGMA)
    z0 = torch.zeros(4, D_LATENT, dtype=torch.float64)
    a = infer(gen, x.expand(4, -1, -1, -1), z0, cfg, rng=torch.Generator().manual_seed(7))
    b = infer(gen, x.expand(4, -1, -1, -1), z0, cfg, rng=torch.Generator().manual_seed(7))
    c = infer(gen, x.expand(4, -1, -1, -1), z0, cfg, rng=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(z0, torch.zeros(4, D_LATENT, dtype=torch.float64))
    assert torch.equal(infer(gen, x, z0[:1], LangevinConfig(steps=0)), z0[:1])


def test_the_mlps_closed_form_gradient_is_autograds() -> None:
    torch.manual_seed(0)
    gen = build_generator(ModelConfig(latent_dim=2, arch="mlp", width=4)).double()
    for p in gen.parameters():  # a generator far from its initialisation: both LeakyReLU branches in use
        p.data.mul_(3.0)
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = 2 * torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z.requires_grad_(True)
    (auto,) = torch.autograd.grad(energy(gen, z, x, SIGMA).sum(), z)
    closed = gen.energy_grad(z.detach(), x, SIGMA)
    assert torch.allclose(closed, auto, rtol=1e-9, atol=1e-9)
    assert all(p.grad is None for p in gen.parameters())


def test_given_noise_draws_are_the_xi_of_eq7_and_a_wrong_shape_is_refused(model) -> None:
    """`noise` (K, B, d) replaces the rng's draws: z_{k+1} = z_k - (s^2 / 2) grad E(z_k) + s xi_k, step by step."""
    gen, x = model
    cfg = LangevinConfig(steps=4, step_size=0.3, sigma=SIGMA)
    xb = x.expand(3, -1, -1, -1)
    z0 = torch.randn(3, D_LATENT, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    xi = torch.randn(4, 3, D_LATENT, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z = z0.clone()
    for k in range(4):
        z.requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(gen, z, xb, SIGMA).sum(), z)
        z = (z - 0.5 * 0.3**2 * grad + 0.3 * xi[k]).detach()
    assert torch.allclose(infer(gen, xb, z0, cfg, noise=xi), z, atol=1e-12)
    assert torch.allclose(infer(gen, xb, z0, cfg, noise=xi, rng=torch.Generator().manual_seed(9)), z, atol=1e-12)
    with pytest.raises(ValueError, match=r"noise must be \(K, B, d\) = \(4, 3, 2\)"):
        infer(gen, xb, z0, cfg, noise=xi[:3])

"""The VAE baseline: an amortised encoder q(z|x) with the very same decoder g."""
from __future__ import annotations

import torch
from torch import nn


def negative_elbo(encoder: nn.Module, generator: nn.Module, x: torch.Tensor, sigma: float,
                  rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example -ELBO with the generator's Gaussian likelihood (std sigma).

        -ELBO = E_q ||x - g(z)||^2 / (2 sigma^2) + KL(N(mu, diag var) || N(0, I))

    Args:
        encoder: maps x to (mu, logvar), each (B, d).
        generator: g, the decoder shared with ABP and ours.
        x: (B, C, H, W) images.
        sigma: observation noise std, as in Eq. 5.
        rng: noise for the reparameterisation z = mu + exp(logvar / 2) * eps.

    Returns:
        (B,) -ELBO, (B,) per-pixel squared error, (B, d) posterior means.
    """
    mu, logvar = encoder(x)
    eps = torch.randn(mu.shape, generator=rng, dtype=mu.dtype, device=mu.device)
    z = mu + (0.5 * logvar).exp() * eps
    err = (x - generator(z)).flatten(1).pow(2)                         # (B, D)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)         # (B,)
    return err.sum(1) / (2 * sigma**2) + kl, err.mean(1), mu.detach()

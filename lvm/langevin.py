"""Short-run Langevin inference of z given x (paper Sec. 4, Eq. 7).

    z^{k+1} = z^k + (s^2 / 2) * grad_z log p(z | x) + s * xi_k,   xi_k ~ N(0, I_d)
    log p(z | x) = -||x - g(z)||^2 / (2 sigma^2) - ||z||^2 / 2 + const   (Eq. 5)

The energy is per example and never divided by the batch size: each example's
drift is that of its own posterior, whatever the batch it shares.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .config import LangevinConfig


class Interrupted(Exception):
    """`infer` was asked to stop (its `interrupt` returned True) before it finished; nothing was changed."""


def energy(generator: nn.Module, z: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log p(x, z) up to a constant, one value per example (Eq. 5).

    Args:
        generator: g, maps (B, d) to (B, C, H, W).
        z: latents (B, d).
        x: images (B, C, H, W) in [0, 1].
        sigma: observation noise std.

    Returns:
        (B,) tensor ||x - g(z)||^2 / (2 sigma^2) + ||z||^2 / 2.
    """
    rec = (x - generator(z)).flatten(1).pow(2).sum(1)  # (B,)
    return rec / (2 * sigma**2) + 0.5 * z.pow(2).sum(1)


def infer(
    generator: nn.Module,
    x: torch.Tensor,
    z0: torch.Tensor,
    cfg: LangevinConfig,
    rng: torch.Generator | None = None,
    return_trace: bool = False,
    interrupt: Callable[[], bool] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run K Langevin steps of Eq. 7 from z0 (noise-initialised or persistent).

    Only z receives gradients: the generator's parameters are left untouched
    and accumulate no .grad.

    Args:
        generator: g.
        x: observed images (B, C, H, W).
        z0: starting latents (B, d): prior noise, or the chains' last state.
        cfg: K (steps), s (step_size), sigma, and whether to add noise.
        rng: torch.Generator for the noise (deterministic runs); None uses the global one.
        return_trace: also return the mean energy before each step and after the last.
        interrupt: asked before each step; True raises `Interrupted` (a paused live run).
        noise: (K, B, d) the xi_k drawn beforehand (e.g. one stream per example), instead of from rng.

    Returns:
        z^K (B, d), detached; with return_trace, also a (K + 1,) tensor of mean energies.
    """
    s = cfg.step_size
    if noise is not None and noise.shape != (cfg.steps, *z0.shape):
        raise ValueError(f"noise must be (K, B, d) = {(cfg.steps, *z0.shape)}; got {tuple(noise.shape)}")
    z = z0.detach().clone()
    trace = []
    closed_form = getattr(generator, "energy_grad", None) if not return_trace else None
    for k in range(cfg.steps):
        if interrupt is not None and interrupt():
            raise Interrupted("Langevin inference interrupted")
        if closed_form is not None:  # the MLP's gradient written out: the same values, faster
            grad = closed_form(z, x, cfg.sigma)
        else:
            z.requires_grad_(True)
            with torch.enable_grad():
                e = energy(generator, z, x, cfg.sigma)
                (grad,) = torch.autograd.grad(e.sum(), z)  # per-example gradients: examples are independent
            z = z.detach()
            if return_trace:
                trace.append(e.detach().mean())
        z = z - 0.5 * s * s * grad
        if cfg.noise:
            xi = noise[k] if noise is not None else torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)
            z = z + s * xi.to(device=z.device, dtype=z.dtype)
    if return_trace:
        with torch.no_grad():
            trace.append(energy(generator, z, x, cfg.sigma).mean())
        return z, torch.stack(trace)
    return z

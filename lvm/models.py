"""Top-down generators g(z) and the VAE's encoder.

Every module here is batch-independent (no batch norm): the Langevin energy of
one example must not depend on which other examples share its batch.
Pixels come out in [0, 1] through a sigmoid (see ``lvm.data.PIXEL_RANGE``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig


def _layout(image_size: int) -> tuple[int, int]:
    """(start side, number of x2 upsamplings) for a square output of `image_size`."""
    return {28: (7, 2), 32: (8, 2), 64: (8, 3)}[image_size]


class ConvGenerator(nn.Module):
    """z (B, d) -> Linear -> (B, C0, s0, s0) -> [ConvT x2]* -> sigmoid -> (B, C, H, W)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        start, ups = _layout(cfg.image_size)
        ch = cfg.width * 2 ** (ups - 1)
        self.start, self.ch0 = start, ch
        self.fc = nn.Linear(cfg.latent_dim, ch * start * start)
        layers: list[nn.Module] = []
        for _ in range(ups - 1):
            layers += [nn.LeakyReLU(0.2), nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1)]
            ch //= 2
        layers += [nn.LeakyReLU(0.2), nn.ConvTranspose2d(ch, cfg.channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.ch0, self.start, self.start)  # (B, C0, s0, s0)
        return torch.sigmoid(self.net(h))                          # (B, C, H, W)


class MLPGenerator(nn.Module):
    """A small fully connected generator: fast enough for the live 2-D teaching demo."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden = cfg.width * 8
        out = cfg.channels * cfg.image_size ** 2
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, out),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, s = self.cfg.channels, self.cfg.image_size
        return torch.sigmoid(self.net(z)).view(-1, c, s, s)

    @torch.no_grad()
    def energy_grad(self, z: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """grad_z of Eq. 5's ||x - g(z)||^2 / (2 sigma^2) + ||z||^2 / 2, (B, d), in closed form.

        The backward pass written out (sigmoid' = o (1 - o), LeakyReLU' = 1 or its slope): the same
        gradient as autograd's, without its bookkeeping, which at the live demo's size is a third of
        a Langevin step's time (tests/test_langevin.py compares the two).
        """
        (l1, r1, l2, r2, l3) = self.net
        a1 = torch.addmm(l1.bias, z, l1.weight.T)
        a2 = torch.addmm(l2.bias, F.leaky_relu(a1, r1.negative_slope), l2.weight.T)
        o = torch.sigmoid(torch.addmm(l3.bias, F.leaky_relu(a2, r2.negative_slope), l3.weight.T))
        d_out = (o - x.flatten(1)).mul_(o).mul_(1 - o).div_(sigma**2)        # dE/d(pre-sigmoid), (B, D)
        d_h2 = d_out @ l3.weight
        d_a2 = torch.where(a2 > 0, d_h2, d_h2 * r2.negative_slope)
        d_h1 = d_a2 @ l2.weight
        d_a1 = torch.where(a1 > 0, d_h1, d_h1 * r1.negative_slope)
        return torch.addmm(z, d_a1, l1.weight)


class Encoder(nn.Module):
    """q(z|x) = N(mu(x), diag(exp(logvar(x)))) for the VAE baseline; mirrors the decoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.latent_dim
        if cfg.arch == "mlp":
            hidden = cfg.width * 8
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(cfg.channels * cfg.image_size ** 2, hidden), nn.LeakyReLU(0.2),
                nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            )
            feat = hidden
        else:
            _, ups = _layout(cfg.image_size)
            ch, layers, side = cfg.channels, [], cfg.image_size
            for i in range(ups):
                nxt = cfg.width * 2 ** i
                layers += [nn.Conv2d(ch, nxt, 4, 2, 1), nn.LeakyReLU(0.2)]
                ch, side = nxt, side // 2
            self.net = nn.Sequential(*layers, nn.Flatten())
            feat = ch * side * side
        self.head = nn.Linear(feat, 2 * d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.net(x)).chunk(2, dim=1)  # (B, d) each
        return mu, logvar.clamp(-12.0, 8.0)


def build_generator(cfg: ModelConfig) -> nn.Module:
    """The generator named by ``cfg.arch``."""
    return MLPGenerator(cfg) if cfg.arch == "mlp" else ConvGenerator(cfg)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prior_sample(n: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws of the prior N(0, I_d)."""
    return torch.randn(n, d, generator=generator)


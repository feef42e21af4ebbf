"""Top-down generators g(z) and the VAE's encoder.

Every module here is batch-independent (no batch norm): the Langevin energy of
one example must not depend on which other examples share its batch.
Pixels come out in [0, 1] through a sigmoid (see ``lvm.data.PIXEL_RANGE``).
"""
from __future__ import annotations

import torch
from torch import nn

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


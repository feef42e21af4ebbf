"""The generators (lvm.models) at every image size and channel count the configs accept, on real MNIST resized
(and repeated to RGB): the shapes, pixels in [0, 1], and a generator that learns and a posterior Langevin descends."""
from __future__ import annotations

import pytest
import torch

from lvm.config import DataConfig, LangevinConfig, ModelConfig
from lvm.data import load
from lvm.langevin import energy, infer
from lvm.models import Encoder, build_generator


@pytest.mark.parametrize("size,channels", [pytest.param(28, 1, marks=pytest.mark.slow), (32, 3),
                                           pytest.param(64, 1, marks=pytest.mark.slow),
                                           pytest.param(64, 3, marks=pytest.mark.slow)])
def test_a_conv_generator_draws_its_image_size_and_learns_real_images(size: int, channels: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(8, "conv", size, channels, width=8)
    gen = build_generator(cfg)
    x = load(DataConfig(image_size=size, channels=channels, limit=8), "train").x  # (8, C, S, S)
    assert x.shape == (8, channels, size, size)
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    out = gen(z)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert Encoder(cfg)(x)[0].shape == (8, 8)  # the VAE's encoder reads the same images
    mse = lambda: (gen(z) - x).pow(2).mean().item()  # noqa: E731
    first = mse()
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        (gen(z) - x).pow(2).mean().backward()
        opt.step()
    assert mse() < 0.5 * first, (first, mse())  # fixed codes: it learns the images
    cfg_l = LangevinConfig(steps=20, step_size=0.05, noise=False)
    z0 = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        e0 = energy(gen, z0, x, 0.3)
        e1 = energy(gen, infer(gen, x, z0, cfg_l), x, 0.3)
    assert (e1 < e0).float().mean() >= 0.9  # the posterior's gradient flows through every layer

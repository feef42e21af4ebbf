"""Reconstruct & generate: test images beside g(z_hat), samples from the prior, the 2-D manifold."""
from dataclasses import replace

import numpy as np
import streamlit as st
import torch

from ui.pictures import grids
from ui import models, widgets
from lvm import metrics

st.title("Reconstruct & generate")
widgets.explain("Top: test images the model never trained on, and g(z_hat) where z_hat comes from K Langevin steps "
           "started at the prior. Middle: g(z) for z drawn from the prior, the test of whether the latents "
           "really follow N(0, I). Bottom (d = 2): g(z) on a grid of z, the learned manifold.",
           r"\hat z = \mathrm{Langevin}_K(z_0 \sim N(0, I);\ \log p(z \mid x)),\qquad \mathrm{MSE} = "
           r"\tfrac{1}{ND}\sum \lVert x - g(\hat z)\rVert^2")
m = models.pick_model("model_rec")
if m is None:
    st.stop()
c = st.columns(3)
n = c[0].slider("test images", 8, 64, 16, 8, key="n_rec")
k = c[1].slider("test-time Langevin steps K", 10, 300, 100, 10, key="k_rec")
ncol = c[2].slider("images per row", 4, 16, 8, key="ncol")


@st.cache_data(show_spinner="inferring z for each test image", max_entries=8)
def _reconstruct(label: str, version: int, k: int, n: int, _m: models.Model) -> tuple[np.ndarray, np.ndarray, float]:
    x, _ = models.test_images(_m.cfg.data, n)
    _, rec = metrics.reconstruct(_m.generator, torch.from_numpy(x), replace(_m.cfg.langevin, steps=k),
                                 torch.Generator().manual_seed(0))
    return x, rec.numpy(), metrics.mse(x, rec)


x, rec, err = _reconstruct(m.label, m.version, k, n, m)
pairs = np.concatenate([np.stack([x[i:i + ncol], rec[i:i + ncol]]).reshape(-1, *x.shape[1:])
                        for i in range(0, n, ncol)])
grid = grids.grid_image(pairs, min(ncol, n))
st.subheader(f"Test images (odd rows) and reconstructions (even rows): MSE {err:.4f}")
st.image(grid, width=min(900, 60 * ncol))
st.download_button("Download PNG", grids.png_bytes(grid, 3), "reconstructions.png", "image/png", key="dl_rec")

st.subheader("Samples g(z), z ~ N(0, I)")
with torch.no_grad():
    z = torch.randn(ncol * 4, m.cfg.model.latent_dim, generator=torch.Generator().manual_seed(1))
    samples = grids.grid_image(m.generator(z).numpy(), ncol)
st.image(samples, width=min(900, 60 * ncol))
st.download_button("Download PNG", grids.png_bytes(samples, 3), "samples.png", "image/png", key="dl_samples")

if m.cfg.model.latent_dim == 2:
    st.subheader("The decoded manifold: g(z) on a grid of z in [-2.5, 2.5]^2")
    side = st.slider("grid side", 5, 25, 15, key="side")
    g = np.linspace(-2.5, 2.5, side, dtype=np.float32)
    zz = np.stack(np.meshgrid(g, g[::-1]), -1).reshape(-1, 2)  # rows top to bottom: z_2 from high to low
    with torch.no_grad():
        manifold = grids.grid_image(m.generator(torch.from_numpy(zz)).numpy(), side, pad=0)
    st.image(manifold, width=min(900, 28 * side))
    st.download_button("Download PNG", grids.png_bytes(manifold, 2), "manifold.png", "image/png", key="dl_manifold")

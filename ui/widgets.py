"""Small widgets and per-browser-session caches the views share: pictures drawn again only when their content
changes, the "what am I seeing" box, and the settings that need a Reset."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import streamlit as st
import torch

from lvm.config import (DATA_SETS, METHODS, OT_SOLVERS, DataConfig, LangevinConfig, ModelConfig, TrainConfig,
                        default_arch)


def picture(slot: str, version: tuple, draw: Callable[[], bytes], every: float = 0.0) -> bytes:
    """The PNG `draw()` makes, kept in this browser session under `slot` and drawn again only when `version`
    changes (between iterations the same bytes go out), at most once per `every` seconds of the server's clock
    unless version[0] (the run) changes."""
    cached = st.session_state.get(f"picture:{slot}")
    now = time.monotonic()
    if cached is None or (cached[0] != version and (version[0] != cached[0][0] or now - cached[2] >= every)):
        cached = (version, draw(), now)
        st.session_state[f"picture:{slot}"] = cached
    return cached[1]


def explain(markdown: str, *latex: str) -> None:
    """The "what am I seeing" box beside a view: a few sentences and the equations it shows."""
    with st.expander("What am I seeing?", expanded=False):
        st.markdown(markdown)
        for eq in latex:
            st.latex(eq)


def upscale(img: np.ndarray, side: int = 112) -> np.ndarray:
    """(C, H, W) in [0, 1] -> a uint8 picture `side` pixels wide, nearest neighbours (what the model sees)."""
    t = torch.from_numpy(np.asarray(img, dtype=np.float32))[None]
    big = torch.nn.functional.interpolate(t, size=(side, side), mode="nearest")[0]
    a = (big.clamp(0, 1) * 255).round().byte().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def run_settings(cfg: TrainConfig, alpha: float, step_size: float, steps: int) -> tuple[TrainConfig | None, str]:
    """The settings that need a Reset, in an expander: (the config they describe or None if invalid, projection)."""
    with st.expander("Data, model and schedule (apply with Reset)"):
        c = st.columns(4)
        name = c[0].selectbox("data", DATA_SETS, DATA_SETS.index(cfg.data.name), key="data")
        classes = c[1].multiselect("classes (none = all)", list(range(10)), list(cfg.data.classes), key="classes")
        root = c[2].text_input("image folder (folder) or SVHN root (svhn)", cfg.data.root, key="root")
        limit = c[3].number_input("images (0 = all)", 0, 70000, cfg.data.limit, 500, key="limit")
        c = st.columns(4)
        d = c[0].number_input("latent size d", 1, 128, cfg.model.latent_dim, key="d")
        method = c[1].radio("method", METHODS, METHODS.index(cfg.method), key="method", horizontal=True)
        solver = c[2].selectbox("OT solver", OT_SOLVERS, OT_SOLVERS.index(cfg.ot.solver), key="solver")
        seed = c[3].number_input("seed", 0, 10_000, cfg.seed, key="seed")
        c = st.columns(4)
        every = c[0].number_input("L, iterations between corrections", 1, 10_000, cfg.ot_every, key="L")
        learn = c[1].number_input("L2, learning steps", 1, 20, cfg.learn_steps, key="L2")
        sigma = c[2].number_input("sigma", 0.01, 2.0, cfg.langevin.sigma, 0.05, key="sigma")
        proj = c[3].radio("projection (d > 2)", ["pca", "umap"], key="proj", horizontal=True)
        try:
            new = replace(cfg, method=method, alpha=0.0 if method == "abp" else alpha, ot_every=int(every),
                          learn_steps=int(learn), seed=int(seed),
                          data=DataConfig(name, tuple(classes), root, limit=int(limit)),
                          model=ModelConfig(int(d), default_arch(int(d))),
                          langevin=LangevinConfig(int(steps), float(step_size), float(sigma)), ot=replace(cfg.ot, solver=solver))
        except ValueError as e:
            new = None
            st.error(f"These settings are not valid: {e}")
        if new is not None and new != cfg:
            st.warning("Changed settings take effect when you press Reset.")
    return new, proj

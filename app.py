"""The app: ``streamlit run app.py``. Navigation and the landing view (the pretrained teaching demo)."""
import numpy as np
import streamlit as st
import torch

import charts
import ui
from lvm import pretrained
from lvm.checkpoint import CheckpointError


def home() -> None:
    """Landing view: the demo model's latents over the prior and what its generator draws."""
    st.title("Short-run MCMC inference with OT correction")
    st.markdown("A generator x = g(z) + noise with z ~ N(0, I) is learned from images. Each image's latent z is "
                "inferred by a few Langevin steps; every L iterations an optimal-transport matching pulls the "
                "whole population of latents back onto the prior (An, Xie & Li, CVPR 2021).")
    entry = pretrained.find("demo")
    if entry is None:
        st.info("pretrained/ holds no demo model yet: run `bash scripts/make_pretrained.sh`, or train one live on "
                "the Train page.")
    else:
        try:
            cfg, gen, state = ui.load_pretrained("demo")
        except CheckpointError as e:
            st.error(str(e))
            return
        z = state["latents"].numpy()
        z = z[np.random.RandomState(0).permutation(len(z))[:2000]]
        left, right = st.columns([3, 2])
        fit = entry.manifest["metrics"]
        left.plotly_chart(charts.latent_figure(z, ui.axis_limit("home", z), title=(
            f"{entry.title}: latents after training (OT cost to the prior {fit['latent_ot_cost']:.3f}, "
            f"prior vs prior {fit['prior_ot_cost']:.3f})")), key="home_cloud")
        with torch.no_grad():
            samples = gen(torch.randn(36, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
        right.image(charts.grid_image(samples.numpy(), 6), caption="g(z) for 36 draws z ~ N(0, I)", width=320)
    ui.explain("The cloud is the demo model's training latents: if the OT correction works they cover the prior "
               "N(0, I) (grey 1, 2, 3 sigma contours), so that drawing z from the prior and decoding it gives "
               "images like the data.", r"\min_{\sigma} \frac{1}{n}\sum_i \lVert \hat z_i - z_{\sigma(i)} \rVert^2")
    st.page_link(TRAIN, label="Train a model live", icon=":material/play_arrow:")


TRAIN = st.Page("pages/train.py", title="Train", icon=":material/model_training:")
nav = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True), TRAIN,
                     st.Page("pages/latent_ot.py", title="Latent & OT", icon=":material/scatter_plot:"),
                     st.Page("pages/reconstruct.py", title="Reconstruct & generate", icon=":material/image:"),
                     st.Page("pages/anomaly.py", title="Anomaly", icon=":material/troubleshoot:")])
st.set_page_config(page_title="lvm: short-run MCMC + OT", layout="wide")
nav.run()

"""The app: ``streamlit run app.py``. Navigation and the landing view (the pretrained teaching demo).

The landing view reads the demo's small ``preview.npz`` and its ready-made ``preview.png`` (drawn ahead of
time: no matplotlib to import before the first picture) with numpy only: torch is
imported by the other pages, after the first picture is on screen, and by a warm-up
thread (``warmup.py``) that a view visited before it ends waits for visibly.
"""
import streamlit as st

import charts
import warmup


def home() -> None:
    """Landing view: the demo model's latents over the prior and what its generator draws."""
    st.title("Short-run MCMC inference with OT correction")
    st.markdown("A generator x = g(z) + noise with z ~ N(0, I) is learned from images. Each image's latent z is "
                "inferred by a few Langevin steps; every L iterations an optimal-transport matching pulls the "
                "whole population of latents back onto the prior (An, Xie & Li, CVPR 2021).")
    try:
        preview = warmup.demo_preview(str(warmup.pretrained_dir()))
    except (ValueError, KeyError, OSError) as e:
        st.error(f"pretrained/demo cannot be read: {e}")
        preview = None
    if preview is None:
        st.info("pretrained/ holds no demo model yet: run `bash scripts/make_pretrained.sh demo`, or train one "
                "live on the Train page.")
    else:
        manifest, z, samples, png = preview
        fit = manifest["metrics"]
        left, right = st.columns([3, 2])
        left.image(png if png is not None else warmup.draw_preview(z, manifest["title"]))
        q = (f" The model's own q(z^K) (K steps from noise on 2,000 training images): {fit['q_ot_cost']:.3f}, "
             f"{fit['q_ot_cost'] / fit['prior_ot_cost']:.1f}x that level." if "q_ot_cost" in fit else "")
        left.caption(f"The persistent chains after training: OT cost to the prior {fit['latent_ot_cost']:.3f}, "
                     f"between two prior samples {fit['prior_ot_cost']:.3f} (2,000 points each); with alpha "
                     f"{manifest['config']['alpha']:g} a correction puts the chains on prior points by construction."
                     + q)
        right.image(charts.grid_image(samples / 255.0, 6), caption="g(z) for 36 draws z ~ N(0, I)", width=320)
    with st.expander("What am I seeing?"):
        st.markdown("The cloud is the demo model's persistent chains, one dot per training image; the OT "
                    "correction moves them onto the prior N(0, I) (grey 1, 2, 3 sigma contours). The honest test is "
                    "the model's own short-run inference q(z^K) from fresh noise (the caption's second figure): if "
                    "it lands near the prior, the generator maps the prior onto the data, so that drawing z from "
                    "the prior and decoding it gives images like the data (right). The caption's figures are the OT "
                    "cost between two point sets of the same size n, here the chains and as many prior draws:")
        # plain text, not st.latex (KaTeX) or HTML (rehype-raw): each is a script the browser loads before
        # Home's first picture (results/app_cold_start.md)
        st.markdown("W = min over σ of (1/n) Σᵢ ‖ẑᵢ − z_σ(i)‖², σ running over the one-to-one matchings")
    st.page_link(TRAIN, label="Train a model live")
    warmup.start()  # after the landing picture: torch and the demo's runs, in the background


# No page icons: Streamlit fetches Material Symbols from an external font host, and the app must work offline.
TRAIN = st.Page("views/train.py", title="Train")
nav = st.navigation([st.Page(home, title="Home", default=True), TRAIN,
                     st.Page("views/latent_ot.py", title="Latent & OT"),
                     st.Page("views/reconstruct.py", title="Reconstruct & generate"),
                     st.Page("views/anomaly.py", title="Anomaly")])
st.set_page_config(page_title="lvm: short-run MCMC + OT", layout="wide")
if nav.title != "Home":
    warmup.wait(nav.title)  # every other view imports torch: until the warm-up is done, it says so at once
    from lvm.turns import TRAIN_TURNS  # imports torch (through lvm), which the warm-up has loaded by now

    with TRAIN_TURNS.yielding():  # training gives this page a core while it is drawn (never waits for one)
        nav.run()
else:
    nav.run()

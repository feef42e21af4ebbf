"""Home: the pretrained teaching demo's latents over the prior and what its generator draws.

It reads the demo's small ``preview.npz`` and ready-made ``preview.png`` with numpy only: torch is imported
by the other views, after this picture is on screen, and by the warm-up thread started at its end
(docs/decisions.md: the landing view stays torch-free).
"""
import streamlit as st

from ui import warmup
from ui.pictures import grids


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
        right.image(grids.grid_image(samples / 255.0, 6), caption="g(z) for 36 draws z ~ N(0, I)", width=320)
    with st.expander("What am I seeing?"):
        st.markdown("The cloud is the demo model's persistent chains, one dot per training image; the OT "
                    "correction moves them onto the prior N(0, I) (grey 1, 2, 3 sigma contours). The honest test is "
                    "the model's own short-run inference q(z^K) from fresh noise (the caption's second figure): if "
                    "it lands near the prior, the generator maps the prior onto the data, so that drawing z from "
                    "the prior and decoding it gives images like the data (right). The caption's figures are the OT "
                    "cost between two point sets of the same size n, here the chains and as many prior draws:")
        # plain text, no KaTeX on Home (docs/decisions.md)
        st.markdown("W = min over σ of (1/n) Σᵢ ‖ẑᵢ − z_σ(i)‖², σ running over the one-to-one matchings")
    st.page_link("views/train.py", label="Train a model live")
    warmup.start()  # after the landing picture: torch and the demo's runs, in the background


home()

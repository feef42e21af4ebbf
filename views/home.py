"""Home: the pretrained teaching demo's own inference q(z^K) over the prior, and what its generator draws.

It reads the demo's small ``preview.npz``, its manifest and the ready-made pictures with numpy only: torch is
imported by the other views, after this picture is on screen, and by the warm-up thread started at its end
(docs/decisions.md: the landing view stays torch-free). The figures are `lvm eval`'s, written at packaging time
(scripts/make_pretrained.py landing); the distance is lvm.distance's debiased W2^2, shown as W2.
"""
import math

import streamlit as st

from ui import warmup
from ui.pictures import grids


def _w2(w2sq: float) -> float:
    """W2 in latent standard deviations: the square root of the estimate, floored at 0 (lvm.distance.w2, which
    is not imported here: it would pull scipy into the landing view)."""
    return math.sqrt(max(w2sq, 0.0))


def caption(manifest: dict) -> str:
    """The picture's caption in plain words: how far ours' q(z^K) is from the prior, and ABP's trained alike."""
    fit, cfg = manifest["metrics"], manifest["config"]
    if "q_w2sq" not in fit:  # a demo packaged before the debiased distance
        return "The model's own q(z^K). Re-run `bash scripts/make_pretrained.sh landing` for its distance to the prior."
    n, k = fit.get("w2sq_n", 2000), cfg["langevin"]["steps"]
    text = (f"The model's own inference q(z^K): {k} Langevin steps from fresh noise for each of {n:,} training "
            f"images (blue dots), over the prior N(0, I) (grey circles). Its distance to the prior is "
            f"W2 = {_w2(fit['q_w2sq']):.2f} latent standard deviations (W2² = {fit['q_w2sq']:.3f}); two samples of "
            f"the prior itself read below W2 = {_w2(fit['on_prior_w2sq']):.2f} at this n.")
    abp = manifest.get("abp")
    if abp:
        text += (f" ABP, trained the same way but without the OT correction: W2 = {_w2(abp['q_w2sq']):.2f} "
                 f"(W2² = {abp['q_w2sq']:.3f}).")
    if "q_mse" in fit:
        text += (f" The inferred z explain their images: g(z^K) is off by {fit['q_mse']:.3f} per pixel (mean "
                 f"squared), against {fit['q_prior_mse']:.3f} for z drawn from the prior.")
    return text


def home() -> None:
    """Landing view: the demo model's q(z^K) over the prior and what its generator draws."""
    st.title("Short-run MCMC inference with OT correction")
    st.markdown("A generator x = g(z) + noise with z ~ N(0, I) is learned from images. Each image's latent z is "
                "inferred by a few Langevin steps; every L iterations an optimal-transport matching pulls the "
                "whole population of latents back onto the prior (An, Xie & Li, CVPR 2021).")
    folder = str(warmup.pretrained_dir())
    try:
        preview = warmup.demo_preview(folder)
    except (ValueError, KeyError, OSError) as e:
        st.error(f"pretrained/demo cannot be read: {e}")
        preview = None
    if preview is None:
        st.info("pretrained/ holds no demo model yet: run `bash scripts/make_pretrained.sh demo`, or train one "
                "live on the Train page.")
    else:
        manifest, z, samples, png = preview
        left, right = st.columns([3, 2])
        chains = "preview_chains_png" in manifest["files"] and left.toggle(
            "Show the persistent chains too", help="grey: the training chains, which a correction with alpha 1 puts "
            "on prior points by construction; they say little about the model's own inference")
        try:
            picture = warmup.demo_file(folder, "preview_chains_png") if chains else png
        except (ValueError, KeyError, OSError) as e:
            st.error(f"pretrained/demo cannot be read: {e}")
            picture = png
        left.image(picture if picture is not None else warmup.draw_preview(z, manifest["title"]))
        left.caption(caption(manifest))
        right.image(grids.grid_image(samples / 255.0, 6), caption="g(z) for 36 draws z ~ N(0, I)", width=320)
    with st.expander("What am I seeing?"):
        st.markdown("The cloud is what the demo model infers for its own training images: K Langevin steps from "
                    "fresh noise, one dot per image. If it lands on the prior N(0, I) (grey 1, 2, 3 sigma circles), "
                    "the generator maps the prior onto the data, so that drawing z from the prior and decoding it "
                    "gives images like the data (right). The distance is the optimal-transport (Wasserstein-2) "
                    "distance between the dots and as many prior draws, debiased so that it does not depend on how "
                    "many dots there are: W2² ≈ W(q, p) − (W(q, q′) + W(p, p′)) / 2, each W the mean squared "
                    "distance of the best one-to-one matching between two half-samples. It reads about 0 for two "
                    "samples of one distribution (it can dip slightly below 0; W2 is then shown as 0).")
    st.page_link("views/train.py", label="Train a model live")
    warmup.start()  # after the landing picture: torch and the demo's runs, in the background


home()

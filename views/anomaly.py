"""Anomaly: score uploaded images with -log p(x, z) and place them among the model's normal test scores."""
from dataclasses import replace

import numpy as np
import streamlit as st
import torch

import charts
import ui
from lvm import metrics, pretrained
from lvm.images import ImageError, read_image
from lvm.langevin import energy

st.title("Anomaly")
ui.explain("The model was trained on every digit but one. An image is scored by inferring z with K Langevin "
           "steps from the prior and evaluating the joint energy: high means the model explains it poorly. "
           "The histogram holds the scores of the model's normal test images; your images are the red lines.",
           r"\mathrm{score}(x) = -\log p(x, \hat z) = \frac{\lVert x - g(\hat z)\rVert^2}{2\sigma^2} + "
           r"\frac{\lVert \hat z\rVert^2}{2}")
names = tuple(e.name for e in pretrained.available() if e.has("test_scores"))
m = ui.pick_model("model_anom", only=names) if names else None
if m is None:
    st.info("No anomaly model in pretrained/: run `bash scripts/make_pretrained.sh anomaly`.")
    st.stop()
entry = pretrained.find(m.name)
ref = entry.arrays("test_scores")
normal, held = ref["scores"][ref["labels"] == 0], ref["scores"][ref["labels"] == 1]
lcfg = replace(m.cfg.langevin, steps=entry.manifest.get("test_steps", 100))
thr = st.slider("threshold on the score", float(np.quantile(normal, 0.5)), float(np.quantile(ref["scores"], 0.999)),
                float(np.quantile(normal, 0.95)), key="thr")
files = st.file_uploader("Images to score (PNG or JPEG, any size or mode)", ["png", "jpg", "jpeg"],
                         accept_multiple_files=True, key="upload")
invert = st.checkbox("dark digit on light paper: invert (MNIST digits are light on dark)", key="invert")


@st.cache_data(show_spinner="inferring z for each image", max_entries=64)
def _score(data: bytes, name: str, invert: bool, label: str, steps: int,
           _m: ui.Model) -> tuple[np.ndarray, np.ndarray, float]:
    x = read_image(data, name, _m.cfg.model.image_size, _m.cfg.model.channels)[None]  # (1, C, H, W)
    x = 1 - x if invert else x
    cfg = replace(_m.cfg.langevin, steps=steps)
    z, rec = metrics.reconstruct(_m.generator, x, cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        score = float(energy(_m.generator, z, x, cfg.sigma)[0])
    return x[0].numpy(), rec[0].numpy(), score


marks = []
for f in files or []:
    try:
        x, rec, score = _score(f.getvalue(), f.name, invert, m.label, lcfg.steps, m)
    except ImageError as e:
        st.error(str(e))
        continue
    pct = float((normal < score).mean() * 100)
    verdict = "anomalous" if score > thr else "normal"
    marks.append((f.name, score))
    c = st.columns([1, 1, 3])
    c[0].image(ui.upscale(x), caption="what the model sees")
    c[1].image(ui.upscale(rec), caption="its reconstruction")
    c[2].markdown(f"**{f.name}**  \nscore **{score:.1f}** · higher than {pct:.1f} % of normal test images  \n"
                  f"verdict at this threshold: **{verdict}**")

st.plotly_chart(charts.score_histogram(normal, held, thr, marks), key="hist")
precision, recall = metrics.pr_curve(ref["scores"], ref["labels"])
auprc = metrics.auprc(ref["scores"], ref["labels"])
st.plotly_chart(charts.pr_figure(precision, recall, auprc, float(ref["labels"].mean())), key="pr")
st.caption(f"{entry.title}: {len(ref['scores'])} test images ({len(held)} of the held-out digit), "
           f"K = {lcfg.steps} test-time Langevin steps, s = {lcfg.step_size}.")

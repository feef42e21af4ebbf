"""Anomaly: score uploaded images with -log p(x, z) and place them among the model's normal scores."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from ui.pictures import grids
from ui.pictures import scores as score_pictures
from ui import models, registry, widgets
from lvm.checkpoint import CheckpointError
from lvm import data as datasets, metrics, pretrained
from lvm.images import ImageError, dark_on_light, read_image

REFERENCE_N = 300  # a live folder run's reference: this many of the folder's test images, scored on demand
POLARITY = ("auto", "as is", "invert")
OWN = "your detector"

st.title("Anomaly")
widgets.explain("A detector is a generator trained on normal images only. An image is scored by inferring z with K "
           "Langevin steps from the prior and evaluating the joint energy: high means the model explains it "
           "poorly. The histogram holds the scores of normal images the model did not train on; your images "
           "are the red lines.",
           r"\mathrm{score}(x) = \underbrace{\frac{\lVert x - g(\hat z)\rVert^2}{2\sigma^2}}_{\text{reconstruction}}"
           r" + \underbrace{\frac{\lVert \hat z\rVert^2}{2}}_{\text{prior}}")


METHOD = {"abp": "ABP", "vae": "VAE", "ours": "ours"}


def _shipped() -> dict[str, tuple[float, float, str]]:
    """Shipped detectors with their test AUPRC, chance level and method, best first."""
    found = {}
    for e in pretrained.available():
        if e.has("test_scores"):
            met = e.manifest.get("metrics", {})
            found[e.name] = (float(met.get("auprc", float("nan"))), float(met.get("anomaly_share", float("nan"))),
                             METHOD.get(met.get("method", ""), met.get("method", "")))
    return dict(sorted(found.items(), key=lambda kv: -kv[1][0]))


shipped = _shipped()
main = registry.sessions().get("main")
live_ok = main is not None and main.cfg.data.name == "folder" and main.view().iteration > 0
own_dir = st.text_input("Your own detector (optional): the --out folder of `python -m lvm anomaly --data folder "
                        "--root YOUR_NORMAL_IMAGES --out FOLDER`", key="own_dir", placeholder="runs/my-detector").strip()
own = None
if own_dir:
    try:
        own = models.load_detector(own_dir)
    except (ValueError, CheckpointError) as e:
        st.error(str(e))
labels = {OWN: f"{OWN}: {own_dir} · threshold at {own[2]['false_alarm']:.0%} false alarms"} if own else {}
labels |= {n: f"{n} · {m} · AUPRC {a:.3f} (chance {c:.3f})" for n, (a, c, m) in shipped.items()}
if own and st.session_state.get("own_shown") != own_dir:  # a folder just given: show its detector
    st.session_state["model_anom"], st.session_state["own_shown"] = labels[OWN], own_dir
if live_ok:
    labels[models.LIVE] = f"{models.LIVE} on your folder (iteration {main.view().iteration})"
if not labels:
    st.info("No detector yet: run `bash scripts/make_pretrained.sh anomaly`, or train on a folder of your normal "
            "images on the Train page (data: folder) and come back.")
    st.stop()
shown = st.selectbox("Detector", list(labels.values()), key="model_anom",
                     help="your own detector (when its folder is given above), the shipped MNIST detectors, best "
                          "test AUPRC first; a live run on a folder of your own normal images appears here once it "
                          "has trained")
choice = next(n for n, text in labels.items() if text == shown)

if choice == models.LIVE:
    cfg, gen, it = main.model()
    m = models.Model(f"{models.LIVE} at iteration {it}", cfg, gen, it)
    lcfg = replace(cfg.langevin, steps=100)
    key = ("live-ref", main.view().run)
    if st.button("Score the reference images with the model as it is now", key="ref_now") or key not in st.session_state:
        with st.spinner(f"scoring up to {REFERENCE_N} of the folder's held-out images"):
            try:
                test = datasets.load(replace(cfg.data, limit=0), "test")
            except (datasets.MissingDataError, ValueError, OSError) as e:
                st.error(f"Cannot read the folder's test images: {e}")
                st.stop()
            test = test.subset(torch.from_numpy(np.random.RandomState(0).permutation(len(test))[:REFERENCE_N]))
            st.session_state[key] = (metrics.anomaly_scores_per_image(gen, test.x, lcfg).numpy(), it)
    normal, ref_it = st.session_state[key]
    held = None
    st.caption(f"Reference: {len(normal)} images of the folder's test split, scored at iteration {ref_it}.")
    if not (Path(cfg.data.root).expanduser() / "test").is_dir():
        st.warning("This folder has no train/ and test/ subfolders, so the reference images are ones the model "
                   "trained on: their scores are lower than new normal images' will be, and the threshold too strict. "
                   "Put held-out normal images in ROOT/test/ (or use `lvm anomaly --data folder`, which holds out a "
                   "fifth).")
elif choice == OWN:
    cfg, gen, ref, version = own
    m = models.Model(f"{OWN} in {own_dir} ({version})", cfg, gen, version, own_dir)  # a retrained detector: new scores
    normal, held = np.asarray(ref["scores"]), None
    lcfg = replace(cfg.langevin, steps=int(ref.get("test_steps", 100)))
    st.caption(f"Reference: {len(normal)} of your normal images held out from training (`lvm anomaly` scored them "
               f"with K = {lcfg.steps}); the threshold starts where {ref['false_alarm']:.0%} of them are flagged.")
else:
    try:
        cfg, gen, _ = models.load_pretrained(choice)
    except CheckpointError as e:
        st.error(str(e))
        st.stop()
    m = models.Model(f"pretrained/{choice}", cfg, gen, -1, choice)
    entry = pretrained.find(choice)
    ref = entry.arrays("test_scores")
    normal, held = ref["scores"][ref["labels"] == 0], ref["scores"][ref["labels"] == 1]
    lcfg = replace(cfg.langevin, steps=entry.manifest.get("test_steps", 100))
    auprc, chance, _ = shipped[choice]
    if not auprc > chance:
        st.warning(f"{choice} detects no better than chance on its test split (AUPRC {auprc:.3f}, chance "
                   f"{chance:.3f}): its verdicts are not to be trusted. Pick another detector.")

lo, hi = float(np.quantile(normal, 0.5)), float(np.quantile(np.concatenate([normal] + ([held] if held is not None
                                                                                        else [])), 0.999))
start = np.quantile(normal, 1 - (own[2]["false_alarm"] if choice == OWN else 0.05))
thr = st.slider("threshold on the score", lo, max(hi, lo + 1e-6), float(np.clip(start, lo, hi)),
                key=f"thr:{choice}", help="default: flags 5 % of the normal reference images (your detector: its "
                                          "own false-alarm rate)")
fa = float((normal > thr).mean())
if held is not None:
    st.markdown(f"At this threshold, on the test split: **recall {(held > thr).mean():.1%}** of the held-out digit, "
                f"**false alarms {fa:.1%}** of normal images.")
else:
    st.markdown(f"At this threshold: **false alarms {fa:.1%}** of the reference's normal images.")

files = st.file_uploader("Images to score (PNG or JPEG, any size or mode; phone photos are read upright)",
                         ["png", "jpg", "jpeg"], accept_multiple_files=True, key="upload")


@st.cache_data(show_spinner="inferring z for each image", max_entries=64)
def _score(data: bytes, name: str, polarity: str, label: str, steps: int,
           _m: models.Model) -> tuple[np.ndarray, np.ndarray, float, float, bool]:
    """(image as the model sees it, reconstruction, score, its reconstruction term, inverted?)."""
    x = read_image(data, name, _m.cfg.model.image_size, _m.cfg.model.channels)
    flip = dark_on_light(x) if polarity == "auto" else polarity == "invert"
    x = (1 - x if flip else x)[None]
    cfg = replace(_m.cfg.langevin, steps=steps)
    z, e = metrics.infer_per_image(_m.generator, x, cfg)
    with torch.no_grad():
        rec = _m.generator(z)
    rec_term = float((x - rec).pow(2).sum() / (2 * cfg.sigma ** 2))
    return x[0].numpy(), rec[0].numpy(), float(e[0]), rec_term, flip


marks = []
for i, f in enumerate(files or []):
    c = st.columns([1, 1, 1, 3])
    pol = c[3].selectbox("polarity", POLARITY, key=f"pol:{f.name}:{i}",
                         help="auto: inverted when the border is light (dark ink on paper); MNIST digits are light "
                              "on black")
    try:
        x, rec, score, rec_term, flipped = _score(f.getvalue(), f.name, pol, m.label, lcfg.steps, m)
    except ImageError as e:
        st.error(str(e))
        continue
    pct = float((normal < score).mean() * 100)
    marks.append((f.name, score))
    residual = (x - rec) ** 2 / (2 * lcfg.sigma ** 2)
    c[0].image(widgets.upscale(x), caption="what the model sees" + (" (inverted)" if flipped else ""))
    c[1].image(widgets.upscale(rec), caption="its reconstruction")
    c[2].image(grids.heat_image(residual.sum(0)), caption="where it differs: per-pixel residual")
    c[3].markdown(f"**{f.name}**  \nscore **{score:.1f}** · higher than {pct:.1f} % of the normal reference  \n"
                  f"verdict at this threshold: **{'anomalous' if score > thr else 'normal'}**  \n"
                  f"reconstruction {rec_term / score:.0%} of the score, prior {1 - rec_term / score:.0%}")

reference = (hash(normal.tobytes()), None if held is None else hash(held.tobytes()))  # drawn again when it changes
st.image(widgets.picture("hist", (reference, thr, tuple(marks)),
                    lambda: score_pictures.score_histogram_png(normal, held, thr, marks)), width="stretch")
if held is not None:
    both = np.concatenate([normal, held])
    y = np.concatenate([np.zeros(len(normal)), np.ones(len(held))])
    precision, recall = metrics.pr_curve(both, y)
    st.image(widgets.picture("pr", reference, lambda: score_pictures.pr_png(
        precision, recall, metrics.auprc(both, y), float(y.mean()))), width=520)
    st.caption(f"{entry.title}: {len(both)} test images ({len(held)} of the held-out digit), "
               f"K = {lcfg.steps} test-time Langevin steps, s = {lcfg.step_size}.")

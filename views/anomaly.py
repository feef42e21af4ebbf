"""Anomaly: score uploaded images with -log p(x, z), place them among the model's normal scores, and say what
was decided and why (what the model saw, what it rebuilt, where they differ)."""
import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from ui.pictures import scores as charts
from ui import models, registry, widgets
from lvm.checkpoint import CheckpointError
from lvm import data as datasets, metrics, pretrained
from lvm.images import MAX_BYTES, ImageError, prepare, preprocessing_for
from lvm.scoring import detector_score, percentile, score_with

REFERENCE_N = 300  # a live folder run's reference: this many of the folder's test images, scored on demand
OWN = "your detector"
METHOD = {"abp": "ABP", "vae": "VAE", "ours": "ours"}
HOW = {"mnist": "MNIST-style: the ink found on the paper, fitted into 20 x 20 pixels with its aspect kept, centred "
                "by its centre of mass in 28 x 28, white on black (how MNIST's digits were made)",
       "center-crop": "the shorter side resized to the model's size and the centre cropped (how `lvm anomaly "
                      "--data folder` read the training images)",
       "none": "the image as it is, squashed to the model's square (for images already in the training format)"}

st.title("Anomaly")
widgets.explain("A detector is a generator trained on normal images only. An image is first made the way the "
                "detector's training images were made (preprocessing), then scored by inferring z with K Langevin "
                "steps from the prior and evaluating the joint energy: high means the model explains it poorly. "
                "The histogram holds the scores of normal images the model did not train on; your images are the "
                "red markers under it. An image with no ink on it is refused, not scored.",
                r"\mathrm{score}(x) = \underbrace{\frac{\lVert x - g(\hat z)\rVert^2}{2\sigma^2}}_{\text{reconstruction}}"
                r" + \underbrace{\frac{\lVert \hat z\rVert^2}{2}}_{\text{prior}}")


def _digits(ds: list[int]) -> str:
    """[0, 1, 2, 3, 5, 6, 7, 8, 9] -> "0-3, 5-9"."""
    runs, out = [], []
    for d in ds:
        if runs and d == runs[-1][1] + 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    for a, b in runs:
        out.append(f"{a}" if a == b else f"{a}-{b}")
    return ", ".join(out)


def _shipped() -> dict[str, dict]:
    """Shipped detectors: test AUPRC, chance level, method and held-out digit, best first."""
    found = {}
    for e in pretrained.available():
        if e.has("test_scores"):
            met = e.manifest.get("metrics", {})
            found[e.name] = dict(auprc=float(met.get("auprc", float("nan"))),
                                 chance=float(met.get("anomaly_share", float("nan"))),
                                 method=METHOD.get(met.get("method", ""), met.get("method", "")),
                                 holdout=met.get("holdout", e.manifest.get("holdout")),
                                 preprocess=e.manifest.get("preprocess", ""), score=detector_score(e.manifest))
    return dict(sorted(found.items(), key=lambda kv: -kv[1]["auprc"]))


def _label(name: str, d: dict) -> str:
    held = "" if d["holdout"] is None else (f" · holds out {d['holdout']}, normal: "
                                            f"{_digits([k for k in range(10) if k != int(d['holdout'])])}")
    return f"{name}{held} · {d['method']} · score {d['score']} · AUPRC {d['auprc']:.3f} (chance {d['chance']:.3f})"


shipped = _shipped()
main = registry.sessions().get("main")
live_ok = main is not None and main.cfg.data.name == "folder" and main.view().iteration > 0
own_dir = st.text_input("Your own detector (optional): the --out folder of `python -m lvm anomaly --data folder "
                        "--root YOUR_NORMAL_IMAGES --out FOLDER`", key="own_dir", placeholder="runs/my-detector").strip()
own = None
if own_dir:
    try:
        own = models.load_detector(own_dir)
    except (ValueError, CheckpointError, OSError) as e:
        st.error(str(e))
labels = {OWN: f"{OWN}: {own_dir} · threshold at {own[2]['false_alarm']:.0%} false alarms"} if own else {}
labels |= {n: _label(n, d) for n, d in shipped.items()}
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
                          "test AUPRC first (each trained on nine digits, the normal ones, and tested on whether it "
                          "flags the tenth); a live run on a folder of your own normal images appears here once it "
                          "has trained")
choice = next(n for n, text in labels.items() if text == shown)
manifest: dict = {}  # a shipped detector's manifest names its score; live runs and your own folder's use the paper's

recorded, held, entry, anomaly_name = "", None, None, "anomalies"
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
    false_alarm = 0.05
    st.caption(f"Reference: {len(normal)} images of the folder's test split, scored at iteration {ref_it}.")
    if not (Path(cfg.data.root).expanduser() / "test").is_dir():
        st.warning("This folder has no train/ and test/ subfolders, so the reference images are ones the model "
                   "trained on: their scores are lower than new normal images' will be, and the threshold too strict. "
                   "Put held-out normal images in ROOT/test/ (or use `lvm anomaly --data folder`, which holds out a "
                   "fifth).")
elif choice == OWN:
    cfg, gen, ref, version = own
    m = models.Model(f"{OWN} in {own_dir} ({version})", cfg, gen, version, own_dir)  # a retrained detector: new scores
    normal, false_alarm, recorded = np.asarray(ref["scores"]), float(ref["false_alarm"]), ref.get("preprocess", "")
    lcfg = replace(cfg.langevin, steps=int(ref.get("test_steps", 100)))
    st.caption(f"Reference: {len(normal)} of your normal images held out from training (`lvm anomaly` scored them "
               f"with K = {lcfg.steps}); the threshold starts where {false_alarm:.0%} of them are flagged.")
else:
    try:
        cfg, gen, _ = models.load_pretrained(choice)
    except CheckpointError as e:
        st.error(str(e))
        st.stop()
    m = models.Model(f"pretrained/{choice}", cfg, gen, -1, choice)
    entry, info = pretrained.find(choice), shipped[choice]
    manifest = entry.manifest
    ref = entry.arrays("test_scores")
    normal, held = ref["scores"][ref["labels"] == 0], ref["scores"][ref["labels"] == 1]
    lcfg = replace(cfg.langevin, steps=entry.manifest.get("test_steps", 100))
    false_alarm, recorded = 0.05, info["preprocess"]
    if info["holdout"] is not None:
        anomaly_name = f"held-out digit {info['holdout']}"
        st.caption(f"Trained on MNIST digits {_digits([k for k in range(10) if k != int(info['holdout'])])} only: "
                   f"**normal** means \"one of those nine\", **anomalous** means \"unlike them\" (the detector was "
                   f"tested on flagging the {info['holdout']}s).")
    if not info["auprc"] > info["chance"]:
        st.warning(f"{choice} detects no better than chance on its test split (AUPRC {info['auprc']:.3f}, chance "
                   f"{info['chance']:.3f}): its verdicts are not to be trusted. Pick another detector.")

auto = preprocessing_for(cfg.data.name, cfg.model.image_size, cfg.model.channels, recorded)
options = [auto] + [h for h in ("mnist", "center-crop", "none") if h != auto and
                    (h != "mnist" or (cfg.model.image_size, cfg.model.channels) == (28, 1))]
how = st.radio("Preprocessing", options, key=f"how:{choice}", horizontal=True,
               format_func=lambda h: f"{h} (as the detector's training images)" if h == auto else h)
st.caption(HOW[how])

# -- the threshold: the slider, or a click on the precision-recall curve (applied before the slider is drawn)
everything = np.concatenate([normal] + ([held] if held is not None else []))
lo, hi = (float(v) for v in np.quantile(everything, [0.001, 0.999]))
hi = max(hi, lo + 1e-6)
pr = charts.pr_points(normal, held) if held is not None else None
click = (st.session_state.get(f"pr:{choice}") or {}).get("selection", {}).get("points", [])
click = [p for p in click if p.get("curve_number", 0) == 0 and "point_index" in p]
if pr is not None and click and st.session_state.get("pr_applied") != (choice, click[0]["point_index"]):
    st.session_state["pr_applied"] = (choice, click[0]["point_index"])
    st.session_state[f"thr:{choice}"] = float(np.clip(pr["threshold"][click[0]["point_index"]], lo, hi))
start = np.quantile(normal, 1 - false_alarm)
thr = st.slider("threshold on the score", lo, hi, float(np.clip(start, lo, hi)), key=f"thr:{choice}",
                help=f"default: flags {false_alarm:.0%} of the normal reference images; a click on the "
                     f"precision-recall curve sets it too")
fa = float((normal > thr).mean())
if held is not None:
    st.markdown(f"At this threshold, on the test split: **recall {(held > thr).mean():.1%}** of the "
                f"{anomaly_name}, **false alarms {fa:.1%}** of normal images.")
else:
    st.markdown(f"At this threshold: **false alarms {fa:.1%}** of the reference's normal images.")

files = st.file_uploader(f"Images to score: photos or scans of one digit each, or images in the training format "
                         f"(PNG, JPEG and other common formats; up to {MAX_BYTES // 2**20} MB each; phone photos "
                         f"are read upright; nothing is written to disk)", None,  # any file: lvm.images names what is wrong
                         accept_multiple_files=True, key="upload", max_upload_size=MAX_BYTES // 2**20)


@st.cache_data(show_spinner="reading the images", max_entries=512)
def _prepared(data: bytes, name: str, how: str, size: int, channels: int) -> dict:
    """One upload, decoded and prepared in memory: {received, size, inverted, warning, x} or {..., refused} or
    {error}. Any failure is this file's alone: the rest of the batch goes on."""
    try:
        p = prepare(data, name, size, channels, how)
    except ImageError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001  an odd file must not stop the batch
        return {"error": f"{name}: could not be read ({type(e).__name__}: {e}); export it again as PNG or JPEG"}
    out = {"received": p.received, "inverted": p.inverted, "warning": p.warning, "size": p.size}
    return out | ({"refused": p.refused} if p.refused else {"x": p.x.numpy()})


def _scored(inputs: list[np.ndarray], m: models.Model, cfg, manifest: dict) -> list[dict]:
    """{score, rec, rec_term} of each prepared input with the detector's own score (its manifest's, default the
    paper's), inferred together in one batch (lvm.scoring.score_with;
    each image has its own noise stream, so a score does not depend on the batch), kept in this browser
    session by the image's bytes, the model and K."""
    done = st.session_state.setdefault("anomaly_scores", {})
    keys = [(x.tobytes(), m.label, cfg.steps, detector_score(manifest)) for x in inputs]
    todo = [i for i, k in enumerate(keys) if k not in done]
    if todo:
        with st.spinner(f"inferring z for {len(todo)} image{'s' if len(todo) > 1 else ''}"):
            x = torch.from_numpy(np.stack([inputs[i] for i in todo]))
            z, e, _ = score_with(manifest, m.generator, x, cfg)
            with torch.no_grad():
                rec = m.generator(z)
        terms = ((x - rec) ** 2).flatten(1).sum(1) / (2 * cfg.sigma ** 2)
        if len(done) > 512:  # a long session: forget the oldest
            done.clear()
        for j, i in enumerate(todo):
            done[keys[i]] = {"score": float(e[j]), "rec": rec[j].numpy(), "rec_term": float(terms[j])}
    return [done[k] for k in keys]


ranked = np.sort(normal)
results = [{"name": f.name} | _prepared(f.getvalue(), f.name, how, cfg.model.image_size, cfg.model.channels)
           for f in files or []]
ready = [r for r in results if "x" in r]
for r, s in zip(ready, _scored([r["x"] for r in ready], m, lcfg, manifest) if ready else []):
    r.update(s)
for r in results:
    if "score" in r:
        r["percentile"] = percentile(ranked, r["score"])
        r["verdict"] = "anomalous" if r["score"] > thr else "normal"
    else:
        r["verdict"] = "refused" if "refused" in r else "unreadable"

if results:  # -- the batch: counts, reasons, a CSV
    scored = [r for r in results if "score" in r]
    refused = [r for r in results if r["verdict"] in ("refused", "unreadable")]
    flagged = sum(r["verdict"] == "anomalous" for r in scored)
    st.subheader("Your images")
    st.markdown(f"**{len(results)} uploaded · {len(scored)} scored · {flagged} flagged anomalous · "
                f"{len(scored) - flagged} normal · {len(refused)} refused** (at threshold {thr:.1f}, "
                f"preprocessing {how})")
    for r in refused:  # unreadable: an error; nothing to score: a warning (the image is shown below)
        if "error" in r:
            st.error(r["error"])
        else:
            st.warning(f"{r['name']}: {r['refused']}")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "score", "percentile", "verdict", "threshold", "preprocessing", "note"])
    for r in results:
        w.writerow([r["name"], f"{r['score']:.3f}" if "score" in r else "",
                    f"{r['percentile']:.1f}" if "score" in r else "", r["verdict"], f"{thr:.3f}", how,
                    r.get("error") or r.get("refused") or r.get("warning", "")])
    st.download_button("Download the scores (CSV)", buf.getvalue(), "anomaly_scores.csv", "text/csv", key="csv")

uploads = [(f"{i + 1}. {r['name']}", r["score"], r["percentile"]) for i, r in enumerate(results) if "score" in r]
c = st.columns([3, 2]) if pr is not None else [st.container()]
fig, off = charts.histogram(normal, held, thr, uploads, anomaly_name)
c[0].plotly_chart(fig, key="hist", config={"displaylogo": False})
if off:
    c[0].caption("Off the axis (not drawn): " + "; ".join(f"{n}: score {s:.1f}, higher than {p:.1f} % of the "
                                                          f"normal reference" for n, s, p in off))
if pr is not None:
    y = np.concatenate([np.zeros(len(normal)), np.ones(len(held))])
    c[1].plotly_chart(charts.pr_curve(pr, metrics.auprc(everything, y), float(y.mean()), thr), key=f"pr:{choice}",
                      on_select="rerun", selection_mode="points", config={"displaylogo": False})
    c[1].caption(f"Click a point to set the threshold. {entry.title}: {len(everything)} test images "
                 f"({len(held)} of the {anomaly_name}), K = {lcfg.steps} test-time Langevin steps, "
                 f"s = {lcfg.step_size}.")

vmax = 0.25 / (2 * lcfg.sigma ** 2)  # a pixel off by half the range saturates; the same scale for every upload
if any("score" in r for r in results):
    st.image(widgets.picture("colour-bar", (vmax,), lambda: charts.colour_bar_png(
        vmax, "residual per pixel (x - g(z))² / 2σ², one scale for all images")), width=420)
for i, r in enumerate(results):
    if "score" not in r and "received" not in r:
        continue
    st.divider()
    c = st.columns([1, 1, 1, 1, 3])
    c[0].image(r["received"], caption=f"as received ({r['size'][0]} x {r['size'][1]})")
    if "score" not in r:
        c[4].markdown(f"**{i + 1}. {r['name']}**  \n**refused**: {r['refused']}")
        continue
    c[1].image(widgets.upscale(r["x"]), caption="what the model sees" + (" (dark ink inverted)" if r["inverted"]
                                                                         else ""))
    c[2].image(widgets.upscale(r["rec"]), caption="its reconstruction")
    c[3].image(charts.residual_image(((r["x"] - r["rec"]) ** 2).sum(0) / (2 * lcfg.sigma ** 2), vmax),
               caption="where it differs (residual)")
    note = f"  \n⚠ {r['warning']}" if r["warning"] else ""
    c[4].markdown(f"**{i + 1}. {r['name']}**  \nverdict at this threshold: **{r['verdict']}**  \n"
                  f"score **{r['score']:.1f}** · higher than {r['percentile']:.1f} % of the normal reference  \n"
                  f"reconstruction {r['rec_term'] / r['score']:.0%} of the score, prior "
                  f"{1 - r['rec_term'] / r['score']:.0%}{note}")

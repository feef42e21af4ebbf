"""Latent & OT: the replay of q(z^K) across corrections played in the browser, one correction animated along
its assignment lines, ABP beside ours. Every cloud is the explorer component (ui/components/latent_cloud)."""
import numpy as np
import streamlit as st

from ui import projection, registry, widgets
from ui.components import latent_cloud
from ui.components.latent_cloud import payloads

st.title("Latent & OT")
widgets.explain("A frame is kept every L iterations. The replay plays the persistent chains moving across OT "
                "corrections, from the first frame, in your browser (speed, scrubber, loop), coloured by class. "
                "One correction: the points travel from z_hat (grey, before it) to where Eq. 10 puts them, along "
                "the lines that join a sample of z_hat_i to its assigned prior point T(z_hat_i), the optimum of "
                "Eq. 11. Hover a point for its image, click it to pin it, click the plane to decode g(z).",
                r"T = \arg\min_{\sigma}\sum_i \lVert \hat z_i - z_{\sigma(i)}\rVert^2,\qquad "
                r"z_i \leftarrow \alpha T(\hat z_i) + (1-\alpha)\hat z_i")
latent_cloud.forget_sent()
s = registry.main_session()
v = s.view()
if len(v.frames) < 2:
    st.info("No frames yet: press Start on the Train page; a frame is kept every L iterations.")
    st.page_link("views/train.py", label="Go to Train")
    st.stop()

d = v.live.shape[1]
key, method = f"main{v.run}", projection.projection_method()
tok = payloads.token(s, v)
names = payloads.class_names(v.cfg.data.name, v.labels)
ours = {"ours": (s, v)}


def _base(mode: str, slot: str, title: str, note: str, placed: projection.Placed) -> tuple[dict, dict]:
    header = {"mode": mode, "token": tok, "interval": 1.0, "class_names": names, "plane": placed.method,
              "decodable": placed.transform is not None, "decode_note": payloads.not_decodable(d, placed.method),
              "panels": [{"name": "ours", "title": title, "note": note}]}
    blobs = {"prior": placed.prior}
    if latent_cloud.once(slot, "sprite", tok):
        extra_h, extra_b = payloads.sprite_blobs(s)
        header |= extra_h
        blobs |= extra_b
    return header, blobs


st.subheader("The chains across corrections")
frames = v.frames
placed = projection.place(key, method, frames[-1].z, {"frames": np.concatenate([f.z for f in frames])},
                          ("replay", len(frames), frames[-1].iteration))
header, blobs = _base("replay", "replay", "persistent chains", "", placed)
header |= {"frames": [f.iteration for f in frames], "m": len(v.live)}
blobs["frames"] = placed.xy["frames"]
latent_cloud.show("replay", header, blobs, payloads.answer(ours, placed.transform, placed.method))
st.caption(f"{len(frames)} frames kept, iterations {frames[0].iteration} to {frames[-1].iteration}, sent once "
           f"for this visit ({blobs['frames'].nbytes:,} bytes of float32 positions).")


@st.fragment(run_every=3.0)
def newer() -> None:
    n = len(s.view().frames) - len(frames)
    if n > 0 and st.button(f"add the {n} frames kept since", key="more_frames"):
        st.rerun()


newer()
st.subheader("One correction")
follow = st.toggle("follow the latest correction", True, key="follow",
                   help="on: the view below shows each new correction of the live run as it happens")


@st.fragment(run_every=2.0 if follow and s.state == "running" else None)
def one_correction() -> None:
    w = s.view()
    corrections = [f for f in w.frames if f.before is not None]
    if not corrections:
        st.info("This run makes no OT correction (method abp or vae, or alpha = 0).")
        return
    its = [f.iteration for f in corrections]
    it = its[-1] if follow else st.select_slider("correction at iteration", its, its[-1], key="which")
    f = next(c for c in corrections if c.iteration == it)
    title = (f"iteration {it}: OT cost {f.metrics.get('ot_cost', float('nan')):.3f}, "
             f"{f.metrics.get('unmatched', 0):.0%} unmatched")
    p = projection.place(key, "pca" if method == "umap" else method, w.frames[-1].z, {"after": f.z})
    header, blobs = _base("live", "correction", "one correction", title, p)
    header["correction"] = {"iteration": it}
    blobs |= {"z0": p.xy["after"], "before": p.transform(f.before), "after": p.xy["after"],
              "src": p.transform(f.source), "tgt": p.transform(f.target)}
    latent_cloud.show("correction", header, blobs, payloads.answer({"ours": (s, w)}, p.transform, p.method))
    st.caption(title + (f" · the latest of {len(its)} corrections kept" if follow else "")
               + (" · on the PCA plane (any kept correction at once; the Train view shows the latest on UMAP)"
                  if d > 2 and method == "umap" else ""))


one_correction()

st.subheader("ABP beside ours, same data (paper Fig. 3)")
abp = registry.sessions().get("abp")


@st.fragment(run_every=1.0 if abp is not None else None)
def compare() -> None:
    if abp is None:
        st.caption("Turn on \"ABP beside\" on the Train page to train ABP (alpha = 0, no correction) with the same "
                   "data, seed and settings, next to the main run.")
        return
    a, o = abp.view(), s.view()
    p = projection.place(key, method, o.frames[-1].z, {"ours": o.live, "ABP": a.live}, o.iteration)
    header, blobs = _base("live", "compare", f"ours (alpha {o.cfg.alpha:g})", f"iteration {o.iteration}", p)
    header["interval"] = 1.0
    header["panels"].append({"name": "ABP", "title": "ABP (alpha 0)", "note": f"iteration {a.iteration}"})
    blobs |= {"z0": p.xy["ours"], "z1": p.xy["ABP"]}
    if p.transform is None:  # UMAP: a pinned point's chain path, placed by the worker a moment later
        path_h, path_b = payloads.umap_path("compare", key, {"ours": (s, o), "ABP": (abp, a)})
        header |= path_h
        blobs |= path_b
    latent_cloud.show("compare", header, blobs, payloads.answer({"ours": (s, o), "ABP": (abp, a)}, p.transform,
                                                                p.method))


compare()

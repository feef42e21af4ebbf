"""Latent & OT: replay of q(z^K) across corrections, one correction's assignment, ABP beside ours."""
import numpy as np
import streamlit as st

import charts
import ui

st.title("Latent & OT")
ui.explain("A frame is kept every L iterations. The replay shows q(z^K) moving across OT corrections on fixed "
           "axes. One correction: grey is z_hat before it, red is where Eq. 10 put each point, and the green "
           "lines join a sample of z_hat_i to its assigned prior point T(z_hat_i), the optimum of Eq. 11.",
           r"T = \arg\min_{\sigma}\sum_i \lVert \hat z_i - z_{\sigma(i)}\rVert^2,\qquad "
           r"z_i \leftarrow \alpha T(\hat z_i) + (1-\alpha)\hat z_i")
s = ui.main_session()
v = s.view()
if len(v.frames) < 2:
    st.info("No frames yet: press Start on the Train page; a frame is kept every L iterations.")
    st.page_link("views/train.py", label="Go to Train")
    st.stop()

d = v.live.shape[1]
proj = ui.projection(f"main{v.run}", ui.projection_method(), v.frames[-1].z) if d > 2 else None
xy = (lambda a: a) if proj is None else proj.transform
lim = ui.axis_limit(f"main{v.run}{'' if proj is None else proj.method}", *(xy(f.z) for f in v.frames[-5:]))
# at most about 30 frames of 400 points: a heavier animation kept the browser busy for seconds after each visit
picked = v.frames[:: max(1, len(v.frames) // 30)]
st.subheader("q(z^K) across corrections")
st.plotly_chart(charts.replay_figure([(f.iteration, xy(f.z)) for f in picked], lim, points=400), key="replay")
st.caption(f"Frames up to iteration {v.frames[-1].iteration} (reload the page or press R for the newer ones: a "
           "replay that redrew itself while it plays would restart).")

st.subheader("One correction")
follow = st.toggle("follow the latest correction", True, key="follow",
                   help="on: the view below shows each new correction of the live run as it happens")


@st.fragment(run_every=2.0 if follow and s.state == "running" else None)
def one_correction() -> None:
    corrections = [f for f in s.view().frames if f.before is not None]
    if not corrections:
        st.info("This run makes no OT correction (method abp or vae, or alpha = 0).")
        return
    its = [f.iteration for f in corrections]
    if follow:
        it = its[-1]
        st.caption(f"the latest of {len(its)} corrections kept")
    else:
        it = st.select_slider("correction at iteration", its, its[-1], key="which")
    f = next(c for c in corrections if c.iteration == it)
    st.plotly_chart(charts.correction_figure(xy(f.before), xy(f.z), xy(f.source), xy(f.target), lim,
                                             f"iteration {it}: OT cost {f.metrics.get('ot_cost', float('nan')):.3f}, "
                                             f"{f.metrics.get('unmatched', 0):.0%} unmatched"), key="correction")


one_correction()

st.subheader("ABP beside ours, same data (paper Fig. 3)")
abp = ui.sessions().get("abp")


@st.fragment(run_every=1.0 if abp is not None else None)
def compare() -> None:
    if abp is None:
        st.caption("Turn on \"ABP beside\" on the Train page to train ABP (alpha = 0, no correction) with the same "
                   "data, seed and settings, next to the main run.")
        return
    a, o = abp.view(), s.view()
    fa, fo = a.frames[-1].metrics.get("q_fit", np.nan), o.frames[-1].metrics.get("q_fit", np.nan)
    both = ui.axis_limit(f"main{v.run}", xy(a.live), xy(o.live))
    st.plotly_chart(charts.side_by_side([(f"ABP, iteration {a.iteration}, q(z^K) {fa / a.q_prior_fit:.1f}x", xy(a.live)),
                                         (f"ours, iteration {o.iteration}, q(z^K) {fo / o.q_prior_fit:.1f}x",
                                          xy(o.live))], both), key="side")


compare()

"""Latent & OT: replay of q(z^K) across corrections, one correction's assignment, ABP beside ours."""
import numpy as np
import streamlit as st

from ui import projection, registry, widgets

PLAY_EVERY = 0.4  # seconds per frame while the replay plays

st.title("Latent & OT")
widgets.explain("A frame is kept every L iterations. The replay shows the persistent chains moving across OT "
           "corrections on fixed axes, coloured by digit. One correction: grey is z_hat before it, the dots are "
           "where Eq. 10 put each point, and the lines join a sample of z_hat_i to its assigned prior point "
           "T(z_hat_i), the optimum of Eq. 11.",
           r"T = \arg\min_{\sigma}\sum_i \lVert \hat z_i - z_{\sigma(i)}\rVert^2,\qquad "
           r"z_i \leftarrow \alpha T(\hat z_i) + (1-\alpha)\hat z_i")
s = registry.main_session()
v = s.view()
if len(v.frames) < 2:
    st.info("No frames yet: press Start on the Train page; a frame is kept every L iterations.")
    st.page_link("views/train.py", label="Go to Train")
    st.stop()

d = v.live.shape[1]
proj = projection.projection(f"main{v.run}", projection.projection_method(), v.frames[-1].z) if d > 2 else None
xy = (lambda a: a) if proj is None else proj.transform
prior = None if proj is None else projection.projected_prior(proj)
lim = widgets.axis_limit(f"main{v.run}{'' if proj is None else proj.method}", *(xy(f.z) for f in v.frames[-5:]))
classes = widgets.class_list(v.labels)
labels = v.labels if classes else None

left, right = st.columns(2, gap="large")
left.subheader("The chains across corrections")
play = left.toggle("play", False, key="play", help=f"steps through the kept frames, one every {PLAY_EVERY:g} s")


@st.fragment(run_every=PLAY_EVERY if play else None)
def replay() -> None:
    frames = s.view().frames  # the newer ones too, as the run goes on
    its = [f.iteration for f in frames]
    if st.session_state.get("replay_it") not in its:
        st.session_state["replay_it"] = its[-1]
    elif play:  # the next frame, round again after the last
        st.session_state["replay_it"] = its[(its.index(st.session_state["replay_it"]) + 1) % len(its)]
    it = st.select_slider("frame at iteration", its, key="replay_it")
    f = frames[its.index(it)]
    clouds = widgets.clouds("replay_clouds", lim, classes, False, prior, titles=("persistent chains", ""),
                       ghost_label=None, line_label=None)
    st.image(widgets.picture("replay", (v.run, it, clouds.key), lambda: clouds.png(xy(f.z), labels, notes=(
        f"iteration {it}", ""))), width="stretch")


with left:
    replay()
right.subheader("One correction")
follow = right.toggle("follow the latest correction", True, key="follow",
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
    else:
        it = st.select_slider("correction at iteration", its, its[-1], key="which")
    f = next(c for c in corrections if c.iteration == it)
    title = (f"iteration {it}: OT cost {f.metrics.get('ot_cost', float('nan')):.3f}, "
             f"{f.metrics.get('unmatched', 0):.0%} unmatched")
    clouds = widgets.clouds("correction_clouds", lim, classes, False, prior, titles=("one correction", ""),
                       ghost_label="before: z_hat = z^K", line_label="z_hat -> T(z_hat), its prior point")
    st.image(widgets.picture("correction", (v.run, it, clouds.key), lambda: clouds.png(
        xy(f.z), labels, before=xy(f.before), arrows=(xy(f.source), xy(f.target)), notes=(title, ""))), width="stretch")
    st.caption(title + (f" · the latest of {len(its)} corrections kept" if follow else ""))


with right:
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
    fa, fo = a.frames[-1].metrics.get("q_fit", np.nan), o.frames[-1].metrics.get("q_fit", np.nan)
    both = widgets.axis_limit(f"main{v.run}", xy(a.live), xy(o.live))
    clouds = widgets.clouds("compare_clouds", both, classes, True, prior,
                       titles=(f"ours (alpha {o.cfg.alpha:g})", "ABP (alpha 0)"), ghost_label=None, line_label=None)
    notes = (f"iteration {o.iteration}, q(z^K) {fo / o.q_prior_fit:.1f}x the prior level",
             f"iteration {a.iteration}, q(z^K) {fa / a.q_prior_fit:.1f}x the prior level")
    st.image(widgets.picture("compare", (v.run, o.iteration, a.iteration, clouds.key),
                        lambda: clouds.png(xy(o.live), labels, xy(a.live), notes=notes)), width="stretch")


compare()

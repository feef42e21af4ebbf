"""Train: settings, Start / Pause / Step / Reset, and q(z^K) moving live over the prior."""
import numpy as np
import streamlit as st

import charts
import ui
from lvm.data import MissingDataError

s = ui.main_session()
cfg = s.cfg
st.title("Train")
ui.explain("Each dot is one training image's latent chain z_i after K Langevin steps (Eq. 7); together they "
           "are q(z^K). Every L iterations the population is matched one-to-one to a fixed prior sample and "
           "moved by Eq. 10; the grey ghost is the cloud at the previous correction. The contours are the "
           "prior N(0, I) at 1, 2 and 3 sigma.",
           r"z \leftarrow z + \tfrac{s^2}{2}\nabla_z \log p(z \mid x) + s\,\xi", r"z_i \leftarrow \alpha\,T(z_i) + (1-\alpha)\,z_i")

live = st.columns(4)
alpha = live[0].slider("alpha (Eq. 10)", 0.0, 1.0, cfg.alpha, 0.05, key="alpha", disabled=cfg.method != "ours")
step_size = live[1].number_input("s, Langevin step", 0.001, 2.0, cfg.langevin.step_size, 0.01, format="%.3f", key="s")
steps = live[2].slider("K, Langevin steps", 0, 100, cfg.langevin.steps, key="K")
rate = live[3].select_slider("refresh every (s)", [0.25, 0.5, 1.0, 2.0, 5.0], 0.5, key="rate")
if (alpha, step_size, steps) != (cfg.alpha, cfg.langevin.step_size, cfg.langevin.steps):
    cfg = s.update(alpha=alpha, step_size=step_size, steps=steps)  # live: from the next iteration on

new, proj = ui.run_settings(cfg, alpha, step_size, steps)
ui.set_projection_method(proj)

b = st.columns(5)
if b[0].button("Start", type="primary", key="start"):
    s.start()
if b[1].button("Pause", key="pause"):
    s.pause()
if b[2].button("Step", key="step", help="one iteration: inference, correction when due, learning"):
    s.step()
if b[3].button("Reset", key="reset", disabled=new is None):
    try:
        with st.spinner("loading the data"):
            s.reset(new)
    except (MissingDataError, ValueError, OSError) as e:
        st.error(f"Cannot start this run: {e}")


@st.fragment(run_every=rate)
def live_view() -> None:
    """Polls the session; the training thread never touches Streamlit."""
    v = s.view()
    st.session_state["redraws"] = st.session_state.get("redraws", 0) + 1
    last = v.frames[-1]
    if v.live.shape[1] == 2:
        pts, ghost, prior = v.live, last.z, None
    else:
        p = ui.projection(f"main{v.run}", proj, v.frames[0].z)
        pts, ghost = p.transform(v.live), p.transform(last.z)
        prior = None if p.exact_prior else p.transform(np.random.RandomState(0).standard_normal((800, v.live.shape[1])))
    lim = ui.axis_limit(f"main{v.run}", pts)
    fit = last.metrics.get("chain_fit")
    state = {"idle": "ready", "running": "training", "paused": "paused", "error": "stopped"}[v.state]
    st.markdown(f"**{state}** · iteration {v.iteration} · epoch {v.epoch:.2f} · {v.seconds:.1f} s of training"
                + (f" · OT cost of the chains to the prior {fit:.3f} (prior vs prior {v.prior_fit:.3f})" if fit else "")
                + (f" · chains on the prior after **{v.seconds_to_prior:.1f} s**" if v.seconds_to_prior else ""))
    if v.message:
        st.error(v.message)
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.latent_figure(pts, lim, ghost if len(v.frames) > 1 else None, prior,
                                           f"q(z^K) at iteration {v.iteration}"), key="cloud")
    right.plotly_chart(charts.curves_figure(v.records[-3000:], v.prior_fit), key="curves")
    st.caption(f"redraw {st.session_state['redraws']} · every {rate} s · {len(v.frames)} frames kept")


live_view()

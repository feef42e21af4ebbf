"""Train: settings, Start / Pause / Step / Reset, and q(z^K) pulled onto the prior live, ABP beside it."""
import streamlit as st

from ui.pictures import grids
from ui.pictures import clouds as cloud_pictures
from ui import controls, projection, registry, widgets
from lvm.live.session import ON_PRIOR

FITS_EVERY = 3.0  # seconds between redraws of the fit chart at most (each costs the server ~0.2 s of a core)
PAUSED_EVERY = 0.25  # seconds between redraws while not running: a slower Step's iteration shows at once, and
#                      a redraw of a paused run costs next to nothing (its pictures are cached)

s = registry.main_session()
cfg = s.cfg
st.title("Train")
widgets.explain("Each dot is one training image's persistent chain z_i after K Langevin steps (Eq. 7), coloured by "
           "digit; every L iterations the whole population is matched one-to-one to a fixed prior sample and "
           "moved by Eq. 10: the grey ghost is the cloud just before the last correction, the red lines show where "
           "each point went. Open circles are ABP, trained beside it with alpha = 0 (no correction).\n\n"
           "The chains are what the correction moves, so they sit on the prior by construction right after it. "
           "The honest test is the model's own short-run inference q(z^K): K Langevin steps from fresh noise "
           "with the current generator (the solid curves), which reaches the prior only if the generator has "
           "learned to map the prior onto the data.",
           r"z \leftarrow z + \tfrac{s^2}{2}\nabla_z \log p(z \mid x) + s\,\xi",
           r"z_i \leftarrow \alpha\,T(z_i) + (1-\alpha)\,z_i")

panel = controls.panel(s)  # the presenter's controls, or a viewer's line saying the presenter has them
cfg, abp, rate, proj = panel.cfg, panel.abp, panel.rate, panel.proj


def _rate(records: tuple) -> str:
    """Iterations per second over the last 20 iterations: by the wall clock (what the room sees, other runs
    taking their turns included) and by the iterations' own time."""
    last = records[-20:]
    if len(last) < 2:
        return ""
    own = len(last) / max(sum(r["seconds"] for r in last), 1e-9)
    span = last[-1].get("wall", 0.0) - last[0].get("wall", 0.0)
    wall = (last[-1]["iteration"] - last[0]["iteration"]) / span if span > 0 else own
    return f"{wall:.1f} it/s ({own:.1f} of its own time)"


def _fit_text(v, name: str) -> str:
    q = next((f.metrics["q_fit"] for f in reversed(v.frames) if "q_fit" in f.metrics), None)
    return f"{name} q(z^K) {q / v.q_prior_fit:.1f}x the prior level" if q is not None else ""


every = rate if s.state == "running" else min(rate, PAUSED_EVERY)


@st.fragment(run_every=every)
def live_view() -> None:
    """Polls the sessions; the training threads never touch Streamlit."""
    v = s.view()
    a = abp.view() if abp is not None else None
    st.session_state["redraws"] = st.session_state.get("redraws", 0) + 1
    corr = next((f for f in reversed(v.frames) if f.before is not None), None)
    d = v.live.shape[1]
    xy, prior = (lambda z: z), None
    if d > 2 and len(v.frames) < 2:  # the chains are still the prior noise: nothing to fit on yet
        xy = lambda z: z[:, :2]  # noqa: E731 - the prior's first two coordinates are exactly N(0, I_2)
    elif d > 2:  # fitted once (until Refit) on latents that carry information: the first frame after iteration 0
        p = projection.projection(f"main{v.run}", proj, v.frames[-1].z)
        xy = p.transform
        prior = projection.projected_prior(p)
    pts, other = xy(v.live), (xy(a.live) if a is not None else None)
    lim = widgets.axis_limit(f"main{v.run}{p.method if d > 2 and len(v.frames) >= 2 else ''}", pts, other)
    state = {"idle": "ready", "running": "training", "paused": "paused", "error": "stopped"}[v.state]
    parts = [f"**{state}** · iteration {v.iteration} · {v.seconds:.1f} s of training · {_rate(v.records)} on "
             f"{s.device.type.upper() if s.device.type == 'cuda' else 'the CPU'}",
             _fit_text(v, "ours"), _fit_text(a, "ABP") if a is not None else ""]
    if v.seconds_to_prior:
        parts.append(f"ours' q(z^K) within {ON_PRIOR:g}x of the prior after **{v.seconds_to_prior:.1f} s**")
    st.markdown(" · ".join(p for p in parts if p))
    with st.container():  # one element whatever it holds: the charts below keep their place and are not redrawn
        if v.busy > 2:
            st.info(f"iteration {v.iteration + 1} has been running for {v.busy:.0f} s (K = {v.cfg.langevin.steps}, "
                    f"s = {v.cfg.langevin.step_size:g}); Pause cuts it short.")
        for m in {v.message, a.message if a is not None else ""} - {""}:
            st.error(m)
    left, right = st.columns([5, 3])
    arrows = (xy(corr.source), xy(corr.moved)) if corr is not None and corr.moved is not None else None
    titles = (f"ours (alpha {v.cfg.alpha:g})", "ABP (alpha 0)" if a is not None else "")
    notes = (f"iteration {v.iteration}" + (f", last correction at {corr.iteration}" if corr else ""),
             f"iteration {a.iteration}" if a is not None else "")
    classes = widgets.class_list(v.labels)
    clouds = widgets.clouds("clouds", lim, classes, a is not None, prior, titles=titles)  # each redraw blits the points
    version = (v.run, v.iteration, a.iteration if a else -1, clouds.key)
    left.image(widgets.picture("cloud", version, lambda: clouds.png(
        pts, v.labels if classes else None, other, xy(corr.before) if corr else None, arrows, notes)),
        width="stretch")
    runs = {"ours": v.records[-3000:]} | ({"ABP": a.records[-3000:]} if a is not None else {})
    fits_version = (v.run, len(v.frames), v.frames[-1].iteration, a.frames[-1].iteration if a else -1)
    right.image(widgets.picture("curves", fits_version, lambda: cloud_pictures.fits_png(runs, v.prior_fit, v.q_prior_fit,
                                                                                ON_PRIOR), every=FITS_EVERY),
                width="stretch")
    what = "a grid of z in [-2.5, 2.5]^2" if d == 2 else "36 fixed draws z ~ N(0, I)"
    right.image(grids.grid_image(v.samples, 6), width=260, caption=f"ours: g(z) on {what}, iteration "
                f"{v.frames[-1].iteration}")
    st.caption(f"redraw {st.session_state['redraws']} · every {every:g} s · {len(v.frames)} frames kept")


live_view()
